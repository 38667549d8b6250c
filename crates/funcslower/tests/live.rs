//! Live tests on this machine's kernel. The CI kernel has no function_graph tracer, so
//! funcslower must refuse cleanly there (naming CONFIG_FUNCTION_GRAPH_TRACER, exit 1,
//! nothing left behind, tracing_thresh untouched); on kernels that have it, the VM test
//! (tests/vm/funcslower.sh) covers tracing. Usage errors exit 2 everywhere.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use testkit::{instance_of, live_or_skip, run, run_pid, TRACEFS};

const BIN: &str = env!("CARGO_BIN_EXE_funcslower");

fn top(file: &str) -> String {
    std::fs::read_to_string(Path::new(TRACEFS).join(file)).unwrap_or_default()
}

#[test]
fn refuses_cleanly_without_function_graph() {
    if !live_or_skip("refuses_cleanly_without_function_graph") {
        return;
    }
    if top("available_tracers")
        .split_whitespace()
        .any(|t| t == "function_graph")
    {
        eprintln!("SKIPPED refuses_cleanly_without_function_graph: this kernel has function_graph");
        return;
    }
    let (tracer, thresh) = (top("current_tracer"), top("tracing_thresh"));
    let (code, out, err, pid) = run_pid(BIN, &["-d", "1", "vfs_read", "1000"]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.starts_with("funcslower: error: this kernel has no function_graph tracer"),
        "{err}"
    );
    assert!(err.contains("CONFIG_FUNCTION_GRAPH_TRACER"), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(!instance_of("funcslower", pid), "instance left behind");
    assert!(
        !Path::new(&format!("/run/perf-tools-rs/funcslower-{pid}.state")).exists(),
        "state file left behind"
    );
    assert_eq!(top("current_tracer"), tracer);
    assert_eq!(top("tracing_thresh"), thresh);
}

#[test]
fn usage_errors_exit_2_with_the_synopsis() {
    let usage = "Usage: funcslower [-aCHPt] [-d secs] [-p PID | -L TID] [--context SECS]\n                  [--context-rows N] [--count N]\n                  [--cgroup PATH | --container ID|NAME] funcstring latency_us\n       funcslower --cleanup\n       funcslower --check\n";
    for args in [
        &[][..],
        &["vfs_read"],
        &["-p", "1", "-L", "1", "vfs_read", "100"],
        &["vfs_read", "0"],
        &["vfs_read", "10us"],
        &["vfs_read", "3600000001"],
        &["-d", "0", "vfs_read", "100"],
        &["-m", "3", "vfs_read", "100"],
        &["vfs_read", "100", "extra"],
        // --count and --context-rows only with --context; --context above 0.
        &["--count", "1", "vfs_read", "100"],
        &["--context-rows", "5000", "vfs_read", "100"],
        &["--context", "0", "vfs_read", "100"],
        &["--context", "1", "--context-rows", "999", "vfs_read", "100"],
    ] {
        let (code, out, err) = run(BIN, args);
        assert_eq!(code, 2, "{args:?}: stdout {out} stderr {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        // Missing, extra, unknown or conflicting arguments show the whole synopsis; a
        // bad value says what is wrong with it.
        let bad_value = args.contains(&"0")
            || args.contains(&"10us")
            || args.contains(&"3600000001")
            || args.contains(&"999");
        assert_eq!(err.contains(usage), !bad_value, "{args:?}: {err}");
    }
    let (_, _, err) = run(BIN, &["vfs_read", "0"]);
    assert!(
        err.contains("latency_us must be between 1 and 3600000000"),
        "{err}"
    );
}

#[test]
fn help_and_cleanup() {
    let (code, out, _) = run(BIN, &["-h"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("<funcstring>") && out.contains("<latency_us>"),
        "{out}"
    );
    if !live_or_skip("help_and_cleanup") {
        return;
    }
    let (code, out, err) = run(BIN, &["--cleanup"]);
    assert_eq!(code, 0, "{out}{err}");
}
