//! Live test of `perf-stat-hist --cgroup` (cgroup v2): dd makes 7 reads of 77777 bytes
//! in a cgroup made here and 3 identical ones outside; only the 7 are counted, in their
//! bucket. Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Child;
use std::time::Duration;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, libc, live_or_skip, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_perf-stat-hist");
const T: Duration = Duration::from_secs(15);

/// A shell that waits for `go`, then runs dd making `n` reads of 77777 bytes.
fn reader(go: &Path, n: u32) -> Child {
    testkit::cgroup::gated_shell(
        go,
        &format!("dd if=/dev/zero of=/dev/null bs=77777 count={n} 2>/dev/null"),
    )
}

#[test]
fn cgroup_counts_its_tasks_events_only() {
    if !live_or_skip("cgroup_counts_its_tasks_events_only") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-psh");
    let name = cg.name();
    let go = cg.gate();
    let mut inside = reader(&go, 7);
    cg.add(inside.id());
    let mut outside = reader(&go, 3);
    let mut r = spawn(
        BIN,
        &[
            "--cgroup",
            &name,
            "-b",
            "77777 77778",
            "syscalls:sys_enter_read",
            "count",
        ],
    );
    r.wait_for("Tracing", T);
    assert!(instance_of("perf-stat-hist", r.child.id()));
    std::fs::write(&go, "").unwrap();
    assert!(inside.wait().unwrap().success());
    assert!(outside.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(400));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let row = r
        .seen
        .iter()
        .find(|l| l.trim_start().starts_with("77777 -> 77777 "))
        .unwrap_or_else(|| panic!("no 77777 bucket:\n{}", r.seen.join("\n")));
    assert_eq!(
        row.rsplit(':').next().unwrap().split_whitespace().next(),
        Some("7"),
        "{}",
        r.seen.join("\n")
    );
    assert!(!instance_of("perf-stat-hist", r.child.id()));
}
