//! `funcgraph --check` on this machine (Linux 6.18: block, syscall and sched tracepoints and
//! uprobes; no kprobes, no function_graph): its verdict, its exit status, and nothing left
//! in tracefs afterwards.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

const BIN: &str = env!("CARGO_BIN_EXE_funcgraph");

#[test]
fn check_gives_this_hosts_verdict_and_leaves_nothing() {
    if !testkit::live_or_skip("funcgraph --check") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.starts_with("funcgraph: cannot run"), "{out}");
    assert!(
        out.contains("\n  function_graph tracer  no        available_tracers: "),
        "{out}"
    );
    assert!(
        out.contains("fix: use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y"),
        "{out}"
    );
    assert!(
        err.starts_with(
            "funcgraph: error: funcgraph cannot run on this host: function_graph tracer"
        ),
        "{err}"
    );
    assert!(
        !testkit::instance_of("funcgraph", pid),
        "instance left behind"
    );
    let left = testkit::probes_of(pid);
    assert!(left.is_empty(), "probes left behind: {left:?}");
}

/// --cgroup is checked before tracefs is touched: with -p a usage error (2); a
/// directory that is no cgroup an error (1) naming the cgroup problem, not the kernel's
/// tracer (which this host may lack), and no instance is made.
#[test]
fn cgroup_is_refused_before_tracefs() {
    testkit::cgroup::assert_scope_refusals(BIN, "funcgraph", true, &["vfs_read"]);
}
