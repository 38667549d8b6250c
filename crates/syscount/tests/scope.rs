//! Live test of `syscount --cgroup` (cgroup v2): two helpers make known numbers of
//! getppid calls, one in a cgroup made here and one outside; only the first is counted,
//! exactly. A cgroup removed mid-run ends the run cleanly. Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, live_or_skip, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_syscount");
const T: Duration = Duration::from_secs(20);

/// Not a test: the workload. Run with `--ignored --exact getppid_helper` and
/// `SYSCOUNT_GETPPID=N`, it waits for a byte on stdin, makes N getppid calls and exits.
#[test]
#[ignore]
fn getppid_helper() {
    let Some(n) = std::env::var("SYSCOUNT_GETPPID").ok() else {
        return;
    };
    let mut b = [0u8; 1];
    // SAFETY: reading one byte from stdin into our buffer.
    unsafe { testkit::libc::read(0, b.as_mut_ptr().cast(), 1) };
    for _ in 0..n.parse::<usize>().unwrap() {
        // SAFETY: getppid has no arguments and cannot fail.
        unsafe { testkit::libc::syscall(testkit::libc::SYS_getppid) };
    }
}

fn helper(calls: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "getppid_helper",
            "--test-threads=1",
            "-q",
        ])
        .env("SYSCOUNT_GETPPID", calls.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
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
fn cgroup_counts_its_tasks_syscalls_only_and_exactly() {
    if !live_or_skip("cgroup_counts_its_tasks_syscalls_only_and_exactly") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-sc");
    let name = cg.dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut inside = helper(3210);
    cg.add(inside.id());
    let mut outside = helper(1234);
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
    let name = cg.dir.file_name().unwrap().to_string_lossy().into_owned();
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
