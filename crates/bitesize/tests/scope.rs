//! Live test of `bitesize --cgroup` (cgroup v2): dd makes five 64 KiB O_DIRECT reads on
//! a loop device from a cgroup made here, and three 4 KiB ones from outside; only the
//! five are counted. Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Child;
use std::time::Duration;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, live_or_skip, spawn, LoopDev};

const BIN: &str = env!("CARGO_BIN_EXE_bitesize");
const T: Duration = Duration::from_secs(15);

/// A shell that waits for `go`, then runs dd making `count` O_DIRECT reads of `bs`
/// bytes from `dev`.
fn reader(go: &Path, dev: &Path, bs: u32, count: u32) -> Child {
    testkit::cgroup::gated_shell(
        go,
        &format!(
            "dd if={dev} of=/dev/null iflag=direct bs={bs} count={count} 2>/dev/null",
            dev = dev.display()
        ),
    )
}

#[test]
fn cgroup_counts_the_io_its_tasks_issue_only() {
    if !live_or_skip("cgroup_counts_the_io_its_tasks_issue_only") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-bs");
    let name = cg.name();
    let go = cg.gate();
    let lo = LoopDev::new(16);
    let mut inside = reader(&go, &lo.path, 65536, 5);
    cg.add(inside.id());
    let mut outside = reader(&go, &lo.path, 4096, 3);
    let mut r = spawn(BIN, &["-d", &lo.dev, "-b", "16", "--cgroup", &name]);
    r.wait_for("Tracing block I/O size", T);
    assert!(instance_of("bitesize", r.child.id()));
    std::fs::write(&go, "").unwrap();
    assert!(inside.wait().unwrap().success());
    assert!(outside.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(400));
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let counts: Vec<u64> = r
        .seen
        .iter()
        .filter(|l| l.contains(" -> ") && l.ends_with('|'))
        .map(|l| {
            let n = l.split(':').nth(1).unwrap().split_whitespace().next();
            n.unwrap().parse().unwrap()
        })
        .collect();
    // Below 16 KiB: none (the three 4 KiB reads were outside); 16 KiB and up: five.
    assert_eq!(counts, vec![0, 5], "{}\n{err}", r.seen.join("\n"));
    assert!(!instance_of("bitesize", r.child.id()));
}
