//! Live tests: every way a bitesize run can end leaves nothing behind (signals, a
//! closed pipe, an error, a panic, kill -9 followed by a later run or `--cleanup`).
//! They need root and tracefs; elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;
use testkit::{instance_of, libc, live_or_skip, run, spawn, Running};

const BIN: &str = env!("CARGO_BIN_EXE_bitesize");
const T: Duration = Duration::from_secs(10);

fn start() -> Running {
    // A device that sees no I/O: the run only sets up, waits and ends.
    let mut r = spawn(BIN, &["-d", "7,255"]);
    r.wait_for("Tracing block I/O size", T);
    r
}

fn assert_clean(pid: u32) {
    assert!(
        !instance_of("bitesize", pid),
        "instance bitesize-{pid} left behind"
    );
}

#[test]
fn signals_end_the_run_with_the_histogram_and_clean_up() {
    let _serial = testkit::serial();
    if !live_or_skip("bitesize_signals_end_the_run_with_the_histogram_and_clean_up") {
        return;
    }
    let before = testkit::top_level_enabled_events();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let mut r = start();
        let pid = r.child.id();
        assert!(instance_of("bitesize", pid), "no instance while running");
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: {err}");
        assert!(
            r.seen.iter().any(|l| l.contains("Distribution")),
            "signal {sig}: no histogram: {:?}",
            r.seen
        );
        assert_clean(pid);
    }
    assert_eq!(testkit::top_level_enabled_events(), before);
}

#[test]
fn a_closed_pipe_ends_the_run_cleanly() {
    let _serial = testkit::serial();
    if !live_or_skip("bitesize_a_closed_pipe_ends_the_run_cleanly") {
        return;
    }
    let pidfile = format!("/tmp/bitesize-pipe-test-{}", std::process::id());
    let script = format!(
        "{{ {BIN} -d 7,255 & echo $! > {pidfile}; wait; }} | head -1; sleep 0.5; \
         [ -e /sys/kernel/tracing/instances/bitesize-$(cat {pidfile}) ] && echo LEFT_BEHIND; \
         kill -0 $(cat {pidfile}) 2>/dev/null && echo STILL_RUNNING; echo DONE"
    );
    let (code, out, err) = run("bash", &["-c", &script]);
    let _ = std::fs::remove_file(&pidfile);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Tracing block I/O size") && out.contains("DONE"),
        "{out}"
    );
    assert!(!out.contains("LEFT_BEHIND"), "{out}");
    assert!(!out.contains("STILL_RUNNING"), "{out}");
}

#[test]
fn a_panic_after_setup_still_removes_the_instance() {
    let _serial = testkit::serial();
    if !live_or_skip("bitesize_a_panic_after_setup_still_removes_the_instance") {
        return;
    }
    let child = std::process::Command::new(BIN)
        .arg("1")
        .env("PT_FAULT", "panic")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{err}");
    assert!(err.contains("injected panic"), "{err}");
    assert_clean(pid);
}

#[test]
fn sigkill_leftover_is_removed_by_cleanup_and_by_the_next_run() {
    let _serial = testkit::serial();
    if !live_or_skip("bitesize_sigkill_leftover_is_removed_by_cleanup_and_by_the_next_run") {
        return;
    }
    let mut r = start();
    let pid = r.child.id();
    r.signal(libc::SIGKILL);
    assert_eq!(r.finish(T).0, -libc::SIGKILL);
    assert!(instance_of("bitesize", pid), "SIGKILL cannot clean up");
    let (code, out, err) = run(BIN, &["--cleanup"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("removed stale trace instance bitesize-{pid}")),
        "{out}"
    );
    assert_clean(pid);

    let mut r = start();
    let pid = r.child.id();
    r.signal(libc::SIGKILL);
    r.finish(T);
    let (code, _, err) = run(BIN, &["-d", "7,255", "0.2"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("removed stale trace instance bitesize-{pid}")),
        "{err}"
    );
    assert_clean(pid);
}

#[test]
fn a_filter_replaced_by_another_process_ends_the_run_with_an_error() {
    let _serial = testkit::serial();
    if !live_or_skip("bitesize_a_filter_replaced_by_another_process_ends_the_run_with_an_error") {
        return;
    }
    let mut r = start();
    let pid = r.child.id();
    let dir = format!("{}/instances/bitesize-{pid}", testkit::TRACEFS);
    std::fs::write(format!("{dir}/events/block/block_rq_issue/filter"), "0").unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("did not put them back"), "{err}");
    assert_clean(pid);
}
