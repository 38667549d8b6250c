//! `uprobe --check` on this machine (Linux 6.18, uprobe events but no kprobes): its
//! verdict, its exit status, and nothing left in tracefs afterwards.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

const BIN: &str = env!("CARGO_BIN_EXE_uprobe");

#[test]
fn check_gives_this_hosts_verdict_and_leaves_nothing() {
    if !testkit::live_or_skip("uprobe --check") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    if !std::path::Path::new(testkit::TRACEFS)
        .join("uprobe_events")
        .exists()
    {
        assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
        assert!(out.contains("CONFIG_UPROBE_EVENTS=y"), "{out}");
        return;
    }
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.starts_with("uprobe: can run; uprobes through uprobe_events\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  uprobe events  yes       a test probe on "),
        "{out}"
    );
    assert!(!testkit::instance_of("uprobe", pid), "instance left behind");
    let left = testkit::probes_of(pid);
    assert!(left.is_empty(), "probes left behind: {left:?}");
}
