//! `--check` and refusals on this host, as root: the verdict follows what the kernel
//! offers (the function tracer, a readable available_filter_functions), and nothing is
//! left in tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

const BIN: &str = env!("CARGO_BIN_EXE_functrace");

#[test]
fn check_verdict_follows_the_kernel_and_leaves_no_instance() {
    if !testkit::live_or_skip("functrace --check") {
        return;
    }
    let (rc, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    if testkit::function_tracer_usable() {
        assert_eq!(rc, 0, "{out}{err}");
        assert!(
            out.contains("the function tracer in a private instance"),
            "{out}"
        );
    } else {
        assert_eq!(rc, 1, "{out}{err}");
        assert!(out.contains("function tracer  no"), "{out}");
        // A run refuses with the same reason, before changing anything.
        let (rc, _, err, run_pid) = testkit::run_pid(BIN, &["-d", "1", "vfs_read"]);
        assert_eq!(rc, 1, "{err}");
        assert!(err.starts_with("functrace: error: "), "{err}");
        assert!(
            !testkit::instance_of("functrace", run_pid),
            "instance left behind"
        );
    }
    assert!(
        !testkit::instance_of("functrace", pid),
        "instance left behind"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (rc, _, err) = testkit::run(BIN, &["-p", "1", "-L", "2", "f"]);
    assert_eq!(rc, 2, "{err}");
    let (rc, _, err) = testkit::run(BIN, &[]);
    assert_eq!(rc, 2, "{err}");
}

/// --cgroup is checked before tracefs is touched: with -p a usage error (2); a
/// directory that is no cgroup an error (1) naming the cgroup problem, not the kernel's
/// tracer (which this host may lack), and no instance is made.
#[test]
fn cgroup_is_refused_before_tracefs() {
    testkit::cgroup::assert_scope_refusals(BIN, "functrace", true, &["vfs_read"]);
}
