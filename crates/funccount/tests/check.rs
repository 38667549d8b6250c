//! `--check`, refusals and usage errors on this host, as root: the verdict follows what
//! the kernel offers (the function tracer, a readable available_filter_functions), a run
//! refuses for the same reason before it changes anything, and nothing is left in tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

const BIN: &str = env!("CARGO_BIN_EXE_funccount");

#[test]
fn check_verdict_follows_the_kernel_and_leaves_no_instance() {
    if !testkit::live_or_skip("funccount --check") {
        return;
    }
    let (rc, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    // The counter funccount does not use is reported either way, never as a blocker.
    assert!(out.contains("\n  function profiler  "), "{out}");
    if testkit::function_tracer_usable() {
        assert_eq!(rc, 0, "{out}{err}");
        assert!(out.starts_with("funccount: can run"), "{out}");
    } else {
        assert_eq!(rc, 1, "{out}{err}");
        assert!(
            out.starts_with("funccount: cannot run; nothing: no usable function tracer"),
            "{out}"
        );
        assert!(out.contains("\n  function tracer   "), "{out}");
        assert!(
            out.contains("fix: use a kernel built with CONFIG_FUNCTION_TRACER=y"),
            "{out}"
        );
        let (rc, _, err, run_pid) = testkit::run_pid(BIN, &["-d", "1", "vfs_*"]);
        assert_eq!(rc, 1, "{err}");
        assert!(err.starts_with("funccount: error: "), "{err}");
        assert!(
            !testkit::instance_of("funccount", run_pid),
            "instance left behind"
        );
    }
    assert!(
        !testkit::instance_of("funccount", pid),
        "instance left behind"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["-t", "0", "f"],
        &["-d", "x", "f"],
        &["--check", "f"],
    ] {
        let (rc, _, err) = testkit::run(BIN, args);
        assert_eq!(rc, 2, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

/// --cgroup is checked before tracefs is touched: with -p a usage error (2); a
/// directory that is no cgroup an error (1) naming the cgroup problem, not the kernel's
/// tracer (which this host may lack), and no instance is made.
#[test]
fn cgroup_is_refused_before_tracefs() {
    testkit::cgroup::assert_scope_refusals(BIN, "funccount", false, &["vfs_read"]);
}
