//! Live tests: killsnoop shows a known `kill -USR1` of a test child with its sender,
//! target, signal and result; the ways a run ends leave nothing in tracefs.
//! They need root and tracefs; elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{instance_of, libc, live_or_skip, spawn_command, Running};

const BIN: &str = env!("CARGO_BIN_EXE_killsnoop");
const T: Duration = Duration::from_secs(10);

fn start(args: &[&str]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let mut r = spawn_command(cmd);
    r.wait_for("RETURN", T);
    r
}

#[test]
fn a_known_kill_is_shown_with_sender_target_signal_and_result() {
    let _serial = testkit::serial();
    if !live_or_skip("a_known_kill_is_shown_with_sender_target_signal_and_result") {
        return;
    }
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let target = child.id();
    let mut r = start(&["-s", "-p", &target.to_string()]);
    assert_eq!(
        r.seen[0],
        format!("Tracing kill()s issued to PID {target}. Ctrl-C to end.")
    );
    // The shell's builtin kill: the sender is the shell itself.
    let sh = Command::new("sh")
        .args([
            "-c",
            &format!("kill -USR1 {target}; kill -0 {target}; exit 0"),
        ])
        .spawn()
        .unwrap();
    let sender = sh.id();
    let o = sh.wait_with_output().unwrap();
    assert!(o.status.success());
    let row = r.wait_for(" SIGUSR1 ", T);
    let w: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        w,
        [
            "sh",
            &sender.to_string(),
            &target.to_string(),
            "SIGUSR1",
            "0"
        ],
        "{row}"
    );
    child.wait().unwrap();
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    // The kill -0 after SIGUSR1 ended the child may have found it gone (ESRCH) or not
    // yet reaped (0): its row is there either way.
    let zero: Vec<&String> = r
        .seen
        .iter()
        .filter(|l| l.contains(&format!(" {target} ")))
        .collect();
    assert_eq!(zero.len(), 2, "{:?}", r.seen);
    assert!(
        r.seen.iter().any(|l| l == "Ending tracing..."),
        "{:?}",
        r.seen
    );
    assert!(!instance_of("killsnoop", r.child.id()));
}

#[test]
fn a_failed_kill_shows_its_error_and_a_name_filter_keeps_the_sender() {
    let _serial = testkit::serial();
    if !live_or_skip("a_failed_kill_shows_its_error_and_a_name_filter_keeps_the_sender") {
        return;
    }
    // A copy of sh under a name of its own, sending signal 0 to a pid that cannot exist.
    let dir = std::env::temp_dir().join(format!("killsnoop-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sh = dir.join("ksnoop_sender");
    std::fs::copy("/bin/sh", &sh).unwrap();
    let mut r = start(&["-n", "^ksnoop_sen"]);
    let s = Command::new(&sh)
        .args(["-c", "kill -0 4999999 2>/dev/null; exit 0"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sender = s.id();
    s.wait_with_output().unwrap();
    let row = r.wait_for("ksnoop_sender", T);
    let w: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        w,
        [
            "ksnoop_sender",
            &sender.to_string(),
            "4999999",
            "0",
            &(-libc::ESRCH).to_string()
        ],
        "{row}"
    );
    r.signal(libc::SIGTERM);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_paths_leave_nothing() {
    let _serial = testkit::serial();
    if !live_or_skip("exit_paths_leave_nothing") {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let mut r = start(&[]);
        let pid = r.child.id();
        assert!(instance_of("killsnoop", pid));
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: {err}");
        assert!(!instance_of("killsnoop", pid), "signal {sig}");
    }
    // The reader of standard output goes away (`killsnoop | head -2`): a quiet end.
    let mut child = Command::new(BIN)
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
    assert!(!instance_of("killsnoop", pid));
    // Standard output on /dev/full: the header, written once tracing is on, fails.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let child = Command::new(BIN)
        .args(["-d", "1"])
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!instance_of("killsnoop", pid));
    // A target that does not exist: a clear error before anything is created.
    let (code, _, err, pid) = testkit::run_pid(BIN, &["-p", "4999999"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no process or thread with PID 4999999"),
        "{err}"
    );
    assert!(!instance_of("killsnoop", pid));
    // SIGKILL leaves the instance; --cleanup removes it.
    let mut r = start(&[]);
    let pid = r.child.id();
    r.signal(libc::SIGKILL);
    let _ = r.finish(T);
    assert!(instance_of("killsnoop", pid));
    let (code, out, err) = testkit::run(BIN, &["--cleanup"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("killsnoop-{pid}")), "{out}");
    assert!(!instance_of("killsnoop", pid));
    // --check: verified with its own signal-0 calls, nothing left.
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("2 of killsnoop's own signal-0 calls"), "{out}");
    assert!(!instance_of("killsnoop", pid));
}
