//! Live tests: the ways a run can end besides its duration (every catchable signal, an
//! ignored hangup, `ulimit -f`, `ulimit -n`, another process changing the run's tracing
//! settings), on iosnoop as the representative of the tracing tools: they share
//! `perf_tools_core::{signals, fdreserve, session}`.
//! They need root and tracefs (CI has both); elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;
use testkit::{instance_of, libc, live_or_skip, spawn_command, Running};

const BIN: &str = env!("CARGO_BIN_EXE_iosnoop");
const T: Duration = Duration::from_secs(10);

fn start(cmd: Command) -> Running {
    let mut r = spawn_command(cmd);
    r.wait_for("LATms", T);
    r
}

fn iosnoop() -> Command {
    let mut cmd = Command::new(BIN);
    // A device that sees no I/O: the run only sets up, waits and ends.
    cmd.args(["-d", "7,255"]);
    cmd
}

fn assert_clean(pid: u32) {
    assert!(
        !instance_of("iosnoop", pid),
        "instance iosnoop-{pid} left behind"
    );
}

#[test]
fn every_catchable_terminating_signal_ends_the_run_cleanly() {
    if !live_or_skip("every_catchable_terminating_signal_ends_the_run_cleanly") {
        return;
    }
    let mut sigs = vec![
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGIO,
    ];
    sigs.extend([libc::SIGRTMIN(), libc::SIGRTMIN() + 5, libc::SIGRTMAX()]);
    for sig in sigs {
        let mut r = start(iosnoop());
        let pid = r.child.id();
        assert!(instance_of("iosnoop", pid), "no instance while running");
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: exit {code}, stderr: {err}");
        assert_clean(pid);
    }
}

#[test]
fn a_hangup_ignored_at_start_stays_ignored_like_nohup() {
    if !live_or_skip("a_hangup_ignored_at_start_stays_ignored_like_nohup") {
        return;
    }
    let mut cmd = iosnoop();
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
    assert!(instance_of("iosnoop", pid));
    r.signal(libc::SIGTERM);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_clean(pid);
}

#[test]
fn output_past_the_file_size_limit_is_an_error_not_a_leak() {
    if !live_or_skip("output_past_the_file_size_limit_is_an_error_not_a_leak") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pt-xfsz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::fs::File::create(dir.join("out")).unwrap();
    let mut cmd = iosnoop();
    cmd.arg("1").stdout(out);
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
    let child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "status {:?}, stderr: {err}",
        o.status
    );
    assert!(err.contains("File too large"), "stderr: {err}");
    assert_clean(pid);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tight_descriptor_limit_fails_before_tracing_or_not_at_all() {
    if !live_or_skip("a_tight_descriptor_limit_fails_before_tracing_or_not_at_all") {
        return;
    }
    for n in (4..=16).chain([64]) {
        let mut cmd = iosnoop();
        cmd.arg("0.3");
        // SAFETY: setrlimit(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let o = child.wait_with_output().unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_clean(pid);
        match o.status.code() {
            // Traced the whole run and cleaned up.
            Some(0) => assert!(out.contains("Ending tracing"), "ulimit -n {n}: {out}"),
            // Refused during setup: nothing was traced, and it says why.
            Some(1) => {
                assert!(
                    !out.contains("LATms"),
                    "ulimit -n {n}: failed after tracing started: {err}"
                );
                assert!(
                    err.contains("Too many open files") || err.contains("file descriptors"),
                    "ulimit -n {n}: {err}"
                );
                assert!(n < 64, "ulimit -n 64 must be enough: {err}");
            }
            c => panic!("ulimit -n {n}: exit {c:?}, stderr: {err}"),
        }
    }
}

/// Starts a run, waits until it traces, and returns it with its instance directory.
fn start_traced() -> (Running, String) {
    let r = start(iosnoop());
    let dir = format!("{}/instances/iosnoop-{}", testkit::TRACEFS, r.child.id());
    (r, dir)
}

#[test]
fn tracing_turned_off_by_another_process_ends_the_run_with_an_error() {
    if !live_or_skip("tracing_turned_off_by_another_process_ends_the_run_with_an_error") {
        return;
    }
    let (mut r, dir) = start_traced();
    let pid = r.child.id();
    std::fs::write(format!("{dir}/tracing_on"), "0").unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("WARNING: another process changed"), "{err}");
    assert!(err.contains(r#"tracing_on: "1" -> "0""#), "{err}");
    assert!(err.contains("did not put them back"), "{err}");
    assert_clean(pid);
}

#[test]
fn a_filter_replaced_by_another_process_ends_the_run_with_an_error() {
    if !live_or_skip("a_filter_replaced_by_another_process_ends_the_run_with_an_error") {
        return;
    }
    let (mut r, dir) = start_traced();
    let pid = r.child.id();
    std::fs::write(format!("{dir}/events/block/block_rq_issue/filter"), "0").unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(
        err.contains("events/block/block_rq_issue/filter") && err.contains("did not put them back"),
        "{err}"
    );
    assert_clean(pid);
}

#[test]
fn an_interrupt_ignored_at_start_still_ends_the_run_like_a_scripts_background_job() {
    if !live_or_skip(
        "an_interrupt_ignored_at_start_still_ends_the_run_like_a_scripts_background_job",
    ) {
        return;
    }
    // sh starts `iosnoop &` with SIGINT and SIGQUIT ignored; `kill -INT` must still stop it.
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        let mut cmd = iosnoop();
        // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGQUIT, libc::SIG_IGN);
                Ok(())
            });
        }
        let mut r = start(cmd);
        let pid = r.child.id();
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: stderr: {err}");
        assert_clean(pid);
    }
}
