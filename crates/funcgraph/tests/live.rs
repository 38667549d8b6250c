//! Live tests on this machine's kernel. The CI kernel has no function_graph tracer, so
//! funcgraph must refuse cleanly there (naming CONFIG_FUNCTION_GRAPH_TRACER, exit 1,
//! nothing left behind); on kernels that have it, the VM test (tests/vm/funcgraph.sh)
//! covers tracing. Usage errors exit 2 everywhere.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use testkit::{instance_of, live_or_skip, run, run_pid, TRACEFS};

const BIN: &str = env!("CARGO_BIN_EXE_funcgraph");

fn has_function_graph() -> bool {
    std::fs::read_to_string(Path::new(TRACEFS).join("available_tracers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|t| t == "function_graph")
}

fn top(file: &str) -> String {
    std::fs::read_to_string(Path::new(TRACEFS).join(file)).unwrap_or_default()
}

#[test]
fn refuses_cleanly_without_function_graph() {
    if !live_or_skip("refuses_cleanly_without_function_graph") {
        return;
    }
    if has_function_graph() {
        eprintln!("SKIPPED refuses_cleanly_without_function_graph: this kernel has function_graph");
        return;
    }
    let tracer = top("current_tracer");
    let (code, out, err, pid) = run_pid(BIN, &["-d", "1", "vfs_read"]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("CONFIG_FUNCTION_GRAPH_TRACER"), "{err}");
    assert!(err.starts_with("funcgraph: error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(!instance_of("funcgraph", pid), "instance left behind");
    assert!(
        !Path::new(&format!("/run/perf-tools-rs/funcgraph-{pid}.state")).exists(),
        "state file left behind"
    );
    assert_eq!(top("current_tracer"), tracer);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["-p", "1", "-L", "1", "vfs_read"],
        &["-m", "abc", "vfs_read"],
        &["-d", "0", "vfs_read"],
        &["-z", "vfs_read"],
    ] {
        let (code, out, err) = run(BIN, args);
        assert_eq!(code, 2, "{args:?}: stdout {out} stderr {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
}

#[test]
fn help_and_cleanup() {
    let (code, out, _) = run(BIN, &["-h"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("-m <maxdepth>") && out.contains("funcstring"),
        "{out}"
    );
    if !live_or_skip("help_and_cleanup") {
        return;
    }
    let (code, out, err) = run(BIN, &["--cleanup"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `-h` showed `Usage: funcgraph [OPTIONS] [funcstring]...`, and a conflict printed only
/// the arguments given: the usage is now the whole synopsis, required operand and all.
#[test]
fn usage_shows_the_required_funcstring_and_the_cleanup_form() {
    let usage = "Usage: funcgraph [-aCDHPtT] [-d secs] [-m maxdepth] [-p PID | -L TID]\n                 [--cgroup PATH | --container ID|NAME] funcstring...\n       funcgraph --cleanup\n";
    let (code, out, _) = run(BIN, &["-h"]);
    assert_eq!(code, 0);
    assert!(out.contains(usage), "{out}");
    for args in [&["-p", "1", "-L", "2", "vfs_read"][..], &["-m", "3"][..]] {
        let (code, out, err) = run(BIN, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(usage), "{args:?}: {err}");
    }
    let (code, _, err) = run(BIN, &["-m", "10001", "vfs_read"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("maxdepth must be between 0 and 10000"),
        "{err}"
    );
}
