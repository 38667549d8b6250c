//! Live tests: every way a tcpretrans run can end leaves nothing in tracefs (its
//! instance `instances/tcpretrans-<pid>` gone): the duration, every catchable
//! terminating signal, an ignored hangup, a closed output pipe, an error after setup, a
//! panic after setup, a file size limit, another process turning tracing off, and
//! `kill -9` followed by a later run or by `--cleanup`. With `-ls` too, whose stack
//! option lives in the instance only.
//! They need root and tracefs; elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{instance_of, libc, live_or_skip, spawn_command, Running};

const BIN: &str = env!("CARGO_BIN_EXE_tcpretrans");
const T: Duration = Duration::from_secs(10);

fn start(cmd: Command) -> Running {
    let mut r = spawn_command(cmd);
    r.wait_for("RADDR:RPORT", T);
    r
}

fn tcpretrans(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    cmd
}

fn assert_clean(pid: u32) {
    assert!(
        !instance_of("tcpretrans", pid),
        "instance tcpretrans-{pid} left behind"
    );
}

#[test]
fn the_duration_and_every_catchable_terminating_signal_end_the_run_cleanly() {
    let _serial = testkit::serial();
    if !live_or_skip("the_duration_and_every_catchable_terminating_signal_end_the_run_cleanly") {
        return;
    }
    let mut r = start(tcpretrans(&["--duration", "0.3", "-ls"]));
    let pid = r.child.id();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(r.seen.iter().any(|l| l == "Ending tracing..."));
    assert_clean(pid);
    let mut sigs = vec![
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
    ];
    sigs.extend([libc::SIGRTMIN(), libc::SIGRTMAX()]);
    for sig in sigs {
        let mut r = start(tcpretrans(&["-ls"]));
        let pid = r.child.id();
        assert!(instance_of("tcpretrans", pid), "no instance while running");
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: exit {code}, stderr: {err}");
        assert_clean(pid);
    }
}

#[test]
fn a_hangup_ignored_at_start_stays_ignored_like_nohup() {
    let _serial = testkit::serial();
    if !live_or_skip("a_hangup_ignored_at_start_stays_ignored_like_nohup") {
        return;
    }
    let mut cmd = tcpretrans(&[]);
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut r = start(cmd);
    let pid = r.child.id();
    r.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        r.child.try_wait().unwrap().is_none(),
        "an ignored SIGHUP ended the run"
    );
    r.signal(libc::SIGTERM);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_clean(pid);
}

#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    let _serial = testkit::serial();
    if !live_or_skip("a_closed_output_pipe_ends_the_run_quietly") {
        return;
    }
    // `tcpretrans | head -1`: the reader goes away after the header.
    let mut child = tcpretrans(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("TIME     PID"), "{line}");
    drop(out);
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running with its output closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert_clean(pid);
}

#[test]
fn errors_after_setup_and_a_panic_leave_nothing() {
    let _serial = testkit::serial();
    if !live_or_skip("errors_after_setup_and_a_panic_leave_nothing") {
        return;
    }
    // The header cannot be written (standard output is /dev/full): exit 1, cleaned up.
    let child = tcpretrans(&["-s"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_clean(pid);
    // A panic once tracing is on (PT_FAULT=panic): the instance is removed while it
    // unwinds.
    let child = tcpretrans(&["-l"])
        .env("PT_FAULT", "panic")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(101), "{err}");
    assert!(err.contains("injected panic"), "{err}");
    assert_clean(pid);
}

#[test]
fn output_past_the_file_size_limit_is_an_error_not_a_leak() {
    let _serial = testkit::serial();
    if !live_or_skip("output_past_the_file_size_limit_is_an_error_not_a_leak") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pt-tcpretrans-xfsz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::fs::File::create(dir.join("out")).unwrap();
    let mut cmd = tcpretrans(&["--duration", "1"]);
    cmd.stdout(out);
    // SAFETY: setrlimit(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            // 16 bytes: the header line alone is longer.
            let lim = libc::rlimit {
                rlim_cur: 16,
                rlim_max: 16,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains("File too large"), "stderr: {err}");
    assert_clean(pid);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tracing_turned_off_by_another_process_ends_the_run_with_an_error() {
    let _serial = testkit::serial();
    if !live_or_skip("tracing_turned_off_by_another_process_ends_the_run_with_an_error") {
        return;
    }
    let mut r = start(tcpretrans(&[]));
    let pid = r.child.id();
    let dir = format!("{}/instances/tcpretrans-{pid}", testkit::TRACEFS);
    std::fs::write(format!("{dir}/tracing_on"), "0").unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("WARNING: another process changed"), "{err}");
    assert!(err.contains("did not put them back"), "{err}");
    assert_clean(pid);
}

#[test]
fn a_killed_run_is_removed_by_the_next_run_or_by_cleanup() {
    let _serial = testkit::serial();
    if !live_or_skip("a_killed_run_is_removed_by_the_next_run_or_by_cleanup") {
        return;
    }
    for then in ["rerun", "--cleanup"] {
        let mut r = start(tcpretrans(&["-ls"]));
        let pid = r.child.id();
        r.signal(libc::SIGKILL);
        let (code, _) = r.finish(T);
        assert_eq!(code, -libc::SIGKILL);
        assert!(
            instance_of("tcpretrans", pid),
            "kill -9 left nothing: the step below would prove nothing"
        );
        let mark = format!("tcpretrans-{pid}");
        // Any run of any tool removes what dead runs left (concurrent tests too): the
        // message is required unless it was gone before this step began.
        let present = instance_of("tcpretrans", pid);
        let said = if then == "rerun" {
            let (code, _out, err) = testkit::run(BIN, &["--duration", "0.2"]);
            assert_eq!(code, 0, "{err}");
            err
        } else {
            let (code, out, err) = testkit::run(BIN, &["--cleanup"]);
            assert_eq!(code, 0, "{err}");
            out
        };
        assert!(
            !present || said.contains(&format!("stale trace instance {mark}")),
            "{then}: {said}"
        );
        assert_clean(pid);
    }
}
