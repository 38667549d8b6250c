//! Live tests on this machine's kernel. Where the kernel lacks kprobe events (CI's),
//! kprobe must refuse cleanly, naming CONFIG_KPROBE_EVENTS, with exit status 1.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use testkit::{instance_of, live_or_skip, run_pid};

const BIN: &str = env!("CARGO_BIN_EXE_kprobe");

#[test]
fn refuses_cleanly_without_kprobe_events() {
    if !live_or_skip("refuses_cleanly_without_kprobe_events") {
        return;
    }
    if std::path::Path::new(testkit::TRACEFS)
        .join("kprobe_events")
        .exists()
    {
        eprintln!("SKIPPED: this kernel has kprobe events (covered by tests/vm/kprobe.sh)");
        return;
    }
    let (code, out, err, pid) = run_pid(BIN, &["p:do_sys_openat2 $arg2"]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("CONFIG_KPROBE_EVENTS"), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(!instance_of("kprobe", pid));
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err, _) = run_pid(BIN, &["q:foo"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p: or r:"), "{err}");
}
