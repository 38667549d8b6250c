//! `iolatency --check` on this machine (Linux 6.18: block, syscall and sched tracepoints and
//! uprobes; no kprobes, no function_graph): its verdict, its exit status, and nothing left
//! in tracefs afterwards.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

const BIN: &str = env!("CARGO_BIN_EXE_iolatency");

#[test]
fn check_gives_this_hosts_verdict_and_leaves_nothing() {
    if !testkit::live_or_skip("iolatency --check") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.starts_with("iolatency: can run"), "{out}");
    assert!(
        out.contains("\n  layout                   yes       6.11+ (with ioprio);"),
        "{out}"
    );
    assert!(out.contains("\n  block:block_rq_insert    yes "), "{out}");
    assert!(out.contains("\n  block:block_rq_requeue   yes "), "{out}");
    assert!(!err.contains("error"), "{err}");
    assert!(
        !testkit::instance_of("iolatency", pid),
        "instance left behind"
    );
    let left = testkit::probes_of(pid);
    assert!(left.is_empty(), "probes left behind: {left:?}");
}
