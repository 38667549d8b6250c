//! Live test of `iolatency --cgroup` (cgroup v2): dd makes five 64 KiB O_DIRECT reads
//! on a loop device from a cgroup made here and three 4 KiB ones from outside; the
//! histograms count the five only (decided in user space by the issuing thread). Each dd
//! is forked after tracing began and exits at once, before any poll of the cgroup can
//! list it: the scope knows it from its fork. Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, live_or_skip, spawn, LoopDev};

const BIN: &str = env!("CARGO_BIN_EXE_iolatency");
const T: Duration = Duration::from_secs(15);

#[test]
fn cgroup_counts_the_io_of_tasks_forked_and_gone_between_polls() {
    if !live_or_skip("cgroup_counts_the_io_of_tasks_forked_and_gone_between_polls") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-iol");
    let name = cg.name();
    let go = cg.gate();
    let lo = LoopDev::new(16);
    let mut inside = testkit::cgroup::gated_dd(&go, &lo.path, (65536, 5, 0), false);
    cg.add(inside.id());
    let mut outside = testkit::cgroup::gated_dd(&go, &lo.path, (4096, 3, 2048), true);
    let mut r = spawn(BIN, &["--json", "-d", &lo.dev, "--cgroup", &name, "1"]);
    // The first interval's line: tracing is on.
    r.wait_for("\"histograms\"", T);
    assert!(instance_of("iolatency", r.child.id()));
    std::fs::write(&go, "").unwrap();
    assert!(inside.wait().unwrap().success());
    assert!(outside.wait().unwrap().success());
    // Two more intervals end after the last I/O.
    std::thread::sleep(Duration::from_millis(2200));
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let total: u64 = r
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 5, "{}\n{err}", r.seen.join("\n"));
    assert!(!err.contains("exited before"), "{err}");
    assert!(!instance_of("iolatency", r.child.id()));
}
