//! Live tests: every way an execsnoop run can end leaves nothing behind (its instance
//! `instances/execsnoop-<pid>` and its probes `ptrs_<pid>`): the end of `-d`, SIGINT,
//! SIGTERM, SIGHUP, SIGPIPE (`execsnoop | head`), an error (another process turning its
//! tracing off), and kill -9 followed by `--cleanup` or by a later run. They need root
//! and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{instance_of, libc, live_or_skip, probes_of, spawn, Running};

const BIN: &str = env!("CARGO_BIN_EXE_execsnoop");
const T: Duration = Duration::from_secs(10);

fn assert_clean(pid: u32) {
    assert!(
        !instance_of("execsnoop", pid),
        "instance execsnoop-{pid} left behind"
    );
    assert!(probes_of(pid).is_empty(), "probes of {pid} left behind");
}

fn start(args: &[&str]) -> Running {
    let mut r = spawn(BIN, args);
    r.wait_for("ARGS", T);
    r
}

#[test]
fn signals_end_the_run_cleanly() {
    let _serial = testkit::serial();
    if !live_or_skip("signals_end_the_run_cleanly") {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let mut r = start(&[]);
        let pid = r.child.id();
        assert!(instance_of("execsnoop", pid), "no instance while running");
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: stderr: {err}");
        assert_eq!(r.seen.last().map(String::as_str), Some("Ending tracing..."));
        assert_clean(pid);
    }
}

#[test]
fn the_duration_ends_the_run_cleanly() {
    let _serial = testkit::serial();
    if !live_or_skip("the_duration_ends_the_run_cleanly") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["-d", "0.3"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Tracing exec()s for 0.3 seconds (buffered)...\n"),
        "{out}"
    );
    assert!(out.ends_with("\nEnding tracing...\n"), "{out}");
    assert_clean(pid);
}

#[test]
fn a_closed_pipe_ends_the_run_quietly_and_cleanly() {
    let _serial = testkit::serial();
    if !live_or_skip("a_closed_pipe_ends_the_run_quietly_and_cleanly") {
        return;
    }
    let mut child = Command::new(BIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    use std::io::Read;
    let _ = out.read(&mut buf).unwrap();
    drop(out);
    // Execs to print, so that the closed pipe is noticed by a write too.
    for _ in 0..5 {
        Command::new("/bin/true").status().unwrap();
    }
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < T,
            "execsnoop did not end after its reader went away"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert_clean(pid);
}

#[test]
fn tracing_turned_off_by_another_process_is_an_error_and_cleaned_up() {
    let _serial = testkit::serial();
    if !live_or_skip("tracing_turned_off_by_another_process_is_an_error_and_cleaned_up") {
        return;
    }
    let mut r = start(&[]);
    let pid = r.child.id();
    let dir = format!("{}/instances/execsnoop-{pid}", testkit::TRACEFS);
    std::fs::write(format!("{dir}/tracing_on"), "0").unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("another process changed"), "{err}");
    assert_clean(pid);
}

#[test]
fn a_killed_run_is_cleaned_up_by_cleanup_and_by_a_later_run() {
    let _serial = testkit::serial();
    if !live_or_skip("a_killed_run_is_cleaned_up_by_cleanup_and_by_a_later_run") {
        return;
    }
    for later in [&["--cleanup"][..], &["-d", "0.2"]] {
        let mut r = start(&[]);
        let pid = r.child.id();
        r.signal(libc::SIGKILL);
        let _ = r.finish(T);
        assert!(
            instance_of("execsnoop", pid),
            "kill -9 left nothing to clean up?"
        );
        let (code, _, err) = testkit::run(BIN, later);
        assert_eq!(code, 0, "{later:?}: {err}");
        assert_clean(pid);
    }
}
