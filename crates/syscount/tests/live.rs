//! Live tests: syscount counts a helper's known number of `getppid` calls exactly, run
//! as a command, followed with `-p` and in a cgroup (`--cgroup`); the other layouts and
//! `-t`.
//! They need root and tracefs; elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, live_or_skip, spawn, spawn_command};

const BIN: &str = env!("CARGO_BIN_EXE_syscount");
const T: Duration = Duration::from_secs(20);
const CALLS: usize = 4321;

/// Not a test: the workload. This test binary, run with `--ignored --exact
/// getppid_helper` and `SYSCOUNT_GETPPID=N`, makes N getppid calls (after a byte on
/// stdin if `SYSCOUNT_WAIT` is set; in a new thread named `late-thread`, gone before
/// the process exits, if `SYSCOUNT_NEW_THREAD` is set) and exits.
#[test]
#[ignore]
fn getppid_helper() {
    let Some(n) = std::env::var("SYSCOUNT_GETPPID").ok() else {
        return;
    };
    if std::env::var_os("SYSCOUNT_WAIT").is_some() {
        let mut b = [0u8; 1];
        // SAFETY: reading one byte from stdin into our buffer.
        unsafe { testkit::libc::read(0, b.as_mut_ptr().cast(), 1) };
    }
    let n = n.parse::<usize>().unwrap();
    let calls = move || {
        for _ in 0..n {
            // SAFETY: getppid has no arguments and cannot fail.
            unsafe { testkit::libc::syscall(testkit::libc::SYS_getppid) };
        }
    };
    if std::env::var_os("SYSCOUNT_NEW_THREAD").is_some() {
        let t = std::thread::Builder::new()
            .name("late-thread".into())
            .spawn(calls)
            .unwrap();
        t.join().unwrap();
        // Gone from /proc well before the process ends the run.
        std::thread::sleep(Duration::from_millis(300));
    } else {
        calls();
    }
}

fn helper_argv() -> Vec<String> {
    vec![
        std::env::current_exe().unwrap().display().to_string(),
        "--ignored".into(),
        "--exact".into(),
        "getppid_helper".into(),
        "--test-threads=1".into(),
        "-q".into(),
    ]
}

/// The count of the row whose columns before COUNT are `cols`.
fn count_of(out: &str, cols: &[&str]) -> Option<u64> {
    out.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() == cols.len() + 1 && w[..cols.len()] == *cols)
            .then(|| w[cols.len()].parse().unwrap())
    })
}

#[test]
fn counts_a_commands_getppid_calls_exactly() {
    if !live_or_skip("counts_a_commands_getppid_calls_exactly") {
        return;
    }
    let o = Command::new(BIN)
        .arg("-c")
        .args(helper_argv())
        .env("SYSCOUNT_GETPPID", CALLS.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.starts_with("Tracing while running: \""), "{out}");
    assert!(out.contains("\nSYSCALL              COUNT\n"), "{out}");
    assert_eq!(
        count_of(&out, &["getppid"]),
        Some(CALLS as u64),
        "{out}\n{err}"
    );
    // The command's exec is counted: tracing was on before it ran.
    assert_eq!(count_of(&out, &["execve"]), Some(1), "{out}");
    assert!(!err.contains("lost"), "{err}");
}

#[test]
fn a_command_found_in_path_makes_one_execve() {
    if !live_or_skip("a_command_found_in_path_makes_one_execve") {
        return;
    }
    // PATH searched before the fork: the failed execve()s of a search through
    // directories without `true` are not the command's (they were counted once).
    let path = "/nonexistent/a:/nonexistent/b:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let o = Command::new(BIN)
        .args(["-c", "true"])
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(count_of(&out, &["execve"]), Some(1), "{out}");
}

/// Runs `syscount -cv -p` on the helper (with `envs` besides its CALLS getppid calls
/// after a byte on stdin), checking that its instance exists while it runs and not
/// after; returns the helper's PID, syscount's exit code, stdout lines and stderr.
fn count_helper_by_pid(envs: &[(&str, &str)]) -> (u32, i32, Vec<String>, String) {
    let argv = helper_argv();
    let mut helper = Command::new(&argv[0]);
    helper
        .args(&argv[1..])
        .env("SYSCOUNT_GETPPID", CALLS.to_string())
        .env("SYSCOUNT_WAIT", "1")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut helper = helper.spawn().unwrap();
    let hp = helper.id();
    let mut cmd = Command::new(BIN);
    cmd.args(["-cv", "-p", &hp.to_string()]);
    let mut r = spawn_command(cmd);
    r.wait_for("Tracing PID", T);
    assert!(instance_of("syscount", r.child.id()));
    helper.stdin.take().unwrap().write_all(b"x").unwrap();
    helper.wait().unwrap();
    let (code, err) = r.finish(T);
    assert!(!instance_of("syscount", r.child.id()));
    (hp, code, r.seen.clone(), err)
}

#[test]
fn counts_a_pids_getppid_calls_exactly_by_pid_and_name() {
    if !live_or_skip("counts_a_pids_getppid_calls_exactly_by_pid_and_name") {
        return;
    }
    let (hp, code, seen, err) = count_helper_by_pid(&[]);
    let out = seen.join("\n");
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        seen.get(1).map(String::as_str),
        Some("PID    COMM             SYSCALL              COUNT"),
        "{out}"
    );
    // The helper's test thread is named after the test.
    assert_eq!(
        count_of(&out, &[&hp.to_string(), "getppid_helper", "getppid"]),
        Some(CALLS as u64),
        "{out}\n{err}"
    );
}

/// A thread created after -p read the process's threads, and gone before its events
/// were read (the run reads every 100 ms; the thread lives a few ms): its calls are the
/// process's (set_event_pid followed its clone; the kernel's saved_tgids names its
/// process once /proc cannot).
#[test]
fn counts_the_calls_of_a_thread_that_came_and_went() {
    if !live_or_skip("counts_the_calls_of_a_thread_that_came_and_went") {
        return;
    }
    let (hp, code, seen, err) = count_helper_by_pid(&[("SYSCOUNT_NEW_THREAD", "1")]);
    let out = seen.join("\n");
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        count_of(&out, &[&hp.to_string(), "late-thread", "getppid"]),
        Some(CALLS as u64),
        "{out}\n{err}"
    );
    assert!(!err.contains("left out"), "{out}\n{err}");
}

#[test]
fn top_keeps_the_largest_counts_of_the_process_name_layout() {
    if !live_or_skip("top_keeps_the_largest_counts_of_the_process_name_layout") {
        return;
    }
    let (code, out, err) = testkit::run(BIN, &["-t", "3", "-d", "0.5"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Tracing for 0.5 seconds. Top 3 only...");
    assert_eq!(lines[1], "COMM                COUNT");
    assert!(lines.len() <= 5, "{out}");
    let counts: Vec<u64> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{out}");
}

#[test]
fn a_dead_pid_or_a_missing_command_is_a_clear_error() {
    if !live_or_skip("a_dead_pid_or_a_missing_command_is_a_clear_error") {
        return;
    }
    let (code, _, err, pid) = testkit::run_pid(BIN, &["-p", "4999999"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no process with PID 4999999"), "{err}");
    assert!(!instance_of("syscount", pid));
    let (code, _, err, pid) = testkit::run_pid(BIN, &["-c", "/nonexistent/syscount-cmd"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot run \"/nonexistent/syscount-cmd\""),
        "{err}"
    );
    assert!(!instance_of("syscount", pid));
}

#[test]
fn check_counts_its_own_canaries_and_leaves_nothing() {
    if !live_or_skip("check_counts_its_own_canaries_and_leaves_nothing") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 of 3 getppid calls"), "{out}");
    assert!(out.contains("is getppid"), "{out}");
    assert!(!instance_of("syscount", pid));
}

/// The helper with `calls` getppid calls, waiting for a byte on its stdin first.
fn waiting_helper(calls: usize) -> std::process::Child {
    let argv = helper_argv();
    Command::new(&argv[0])
        .args(&argv[1..])
        .env("SYSCOUNT_GETPPID", calls.to_string())
        .env("SYSCOUNT_WAIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

// Container scope (cgroup v2): two helpers make known numbers of getppid calls, one in a
// cgroup made here and one outside; only the first is counted, exactly. A cgroup
// removed mid-run ends the run cleanly.

#[test]
fn cgroup_counts_its_tasks_syscalls_only_and_exactly() {
    if !live_or_skip("cgroup_counts_its_tasks_syscalls_only_and_exactly") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-sc");
    let name = cg.name();
    let mut inside = waiting_helper(3210);
    cg.add(inside.id());
    let mut outside = waiting_helper(1234);
    let mut r = spawn(BIN, &["-cv", "--cgroup", &name]);
    r.wait_for("Tracing.", T);
    assert!(instance_of("syscount", r.child.id()));
    for h in [&mut inside, &mut outside] {
        h.stdin.take().unwrap().write_all(b"x").unwrap();
    }
    inside.wait().unwrap();
    outside.wait().unwrap();
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    let out = r.seen.join("\n");
    assert_eq!(code, 0, "{out}\n{err}");
    let (pi, po) = (inside.id().to_string(), outside.id().to_string());
    assert_eq!(
        count_of(&out, &[&pi, "getppid_helper", "getppid"]),
        Some(3210),
        "{out}\n{err}"
    );
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().next() == Some(&po)),
        "a task outside the cgroup was counted:\n{out}"
    );
    assert!(!instance_of("syscount", r.child.id()));
}

#[test]
fn a_removed_cgroup_ends_the_run_cleanly() {
    if !live_or_skip("a_removed_cgroup_ends_the_run_cleanly") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-sg");
    let name = cg.name();
    let mut r = spawn(BIN, &["--cgroup", &name]);
    r.wait_for("Tracing.", T);
    cg.remove();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("the cgroup {name} was removed")),
        "{err}"
    );
    assert!(
        err.contains("no task of the cgroup made a syscall while traced"),
        "{err}"
    );
    assert!(!instance_of("syscount", r.child.id()));
}

#[test]
fn cgroup_with_a_pid_or_a_command_is_a_usage_error_and_a_bad_path_a_clear_one() {
    for args in [
        &["--cgroup", "/", "-p", "1"][..],
        &["--cgroup", "/", "true"],
        &["--cgroup", "/", "--container", "abcd"],
    ] {
        let (code, _, err) = testkit::run(BIN, args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    if !live_or_skip("cgroup bad path") {
        return;
    }
    let (code, _, err, pid) =
        testkit::run_pid(BIN, &["--cgroup", "/no/such/cgroup/here", "-d", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("syscount: error: "), "{err}");
    assert!(err.contains("/no/such/cgroup/here"), "{err}");
    assert!(!instance_of("syscount", pid));
}
