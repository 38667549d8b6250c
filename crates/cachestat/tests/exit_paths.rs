//! Live tests: the ways a cachestat run can end besides --count (signals, an output that
//! goes away, an error once tracing is on, a panic, SIGKILL then `--cleanup`), each
//! leaving nothing in tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{instance_of, libc, live_or_skip, spawn_command, Running};

const BIN: &str = env!("CARGO_BIN_EXE_cachestat");
const T: Duration = Duration::from_secs(10);

fn start(args: &[&str]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let mut r = spawn_command(cmd);
    r.wait_for("HITS", T);
    r
}

#[test]
fn signals_end_the_run_and_leave_nothing() {
    let _serial = testkit::serial();
    if !live_or_skip("signals_end_the_run_and_leave_nothing") {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let mut r = start(&["1"]);
        let pid = r.child.id();
        assert!(instance_of("cachestat", pid));
        std::thread::sleep(Duration::from_millis(200));
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: {err}");
        assert!(r.seen.iter().any(|l| l.contains("HITS")), "{:?}", r.seen);
        assert!(
            !instance_of("cachestat", pid),
            "signal {sig}: instance left"
        );
    }
}

#[test]
fn a_closed_output_a_full_disk_a_panic_and_sigkill_leave_nothing() {
    let _serial = testkit::serial();
    if !live_or_skip("a_closed_output_a_full_disk_a_panic_and_sigkill_leave_nothing") {
        return;
    }
    // The reader of standard output goes away (`cachestat | head -1`): a quiet end.
    let mut child = Command::new(BIN)
        .arg("1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!instance_of("cachestat", pid));

    // Standard output on /dev/full: the banner and header, written once tracing is on, fail.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let child = Command::new(BIN)
        .args(["--count", "1", "1"])
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!instance_of("cachestat", pid));

    // A panic once tracing is on.
    let o = Command::new(BIN)
        .args(["--count", "1", "1"])
        .env("PT_FAULT", "panic")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    // (run_pid-like: the pid of an exited child is not reused this quickly)
    let left: Vec<String> = testkit::instances()
        .into_iter()
        .filter(|i| {
            i.strip_prefix("cachestat-")
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        })
        .collect();
    assert!(left.is_empty(), "after a panic: {left:?}");

    // SIGKILL leaves the instance; --cleanup removes it.
    let mut r = start(&["1"]);
    let pid = r.child.id();
    r.signal(libc::SIGKILL);
    let _ = r.finish(T);
    assert!(instance_of("cachestat", pid), "SIGKILL cannot clean up");
    let (code, out, err) = testkit::run(BIN, &["--cleanup"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("cachestat-{pid}")), "{out}");
    assert!(!instance_of("cachestat", pid));
}
