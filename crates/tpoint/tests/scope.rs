//! Live test of `tpoint --cgroup` with a cgroup v1 hierarchy (the `pids` controller of
//! this hybrid host): a cgroup made here, a test shell moved into it; removed again
//! (tasks moved back to the root first) in every case. Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, live_or_skip, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_tpoint");
const T: Duration = Duration::from_secs(15);
const V1: &str = "/sys/fs/cgroup/pids";

/// A shell that waits for `go`, then forks a subshell that opens `file` (its PID goes
/// to `pids`), and waits for it.
fn worker(go: &Path, file: &Path, pids: &Path) -> Child {
    testkit::cgroup::gated_shell(
        go,
        &format!(
            "( exec 3<{file}; sleep 0.5 ) & echo $! >> {pids}; wait",
            file = file.display(),
            pids = pids.display()
        ),
    )
}

/// The task ID of a trace line (`comm-PID [CPU] ...`).
fn pid_of(line: &str) -> Option<String> {
    let head = &line[..line.find(" [")?];
    Some(head.rsplit('-').next()?.trim().to_string())
}

#[test]
fn tpoint_cgroup_v1_traces_the_cgroup_only_and_ends_when_it_is_removed() {
    if !live_or_skip("tpoint_cgroup_v1_traces_the_cgroup_only_and_ends_when_it_is_removed") {
        return;
    }
    assert!(
        Path::new(V1).join("tasks").is_file(),
        "no v1 pids hierarchy at {V1}"
    );
    let name = format!("ptrs-scope-t-{}", std::process::id());
    let cg = TestCgroup::new(Path::new(V1), &name);
    let d = std::env::temp_dir().join(format!("ptrs-scope-t-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let (go, file) = (d.join("go"), d.join("unique"));
    std::fs::write(&file, "x").unwrap();
    let mut w_in = worker(&go, &file, &d.join("in"));
    std::fs::write(cg.dir.join("cgroup.procs"), w_in.id().to_string()).unwrap();
    let mut w_out = worker(&go, &file, &d.join("out"));

    // A path inside the v1 hierarchy as /proc/PID/cgroup shows it.
    let mut r = spawn(
        BIN,
        &[
            "--cgroup",
            &cg.dir.display().to_string(),
            "syscalls:sys_enter_openat",
        ],
    );
    r.wait_for("Ctrl-C", T);
    std::fs::write(&go, "").unwrap();
    w_in.wait().unwrap();
    w_out.wait().unwrap();
    let read = |p: &str| -> String {
        std::fs::read_to_string(d.join(p))
            .unwrap()
            .trim()
            .to_string()
    };
    let (inner, outer) = (read("in"), read("out"));
    r.collect_until(T, |seen| {
        seen.iter().any(|l| pid_of(l).as_deref() == Some(&inner))
    });
    // Removing the cgroup ends the run (exit 0, said on stderr).
    cg.remove();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("was removed"), "{err}");
    let pids: BTreeSet<String> = r.seen.iter().filter_map(|l| pid_of(l)).collect();
    assert!(pids.contains(&inner), "{}", r.seen.join("\n"));
    assert!(!pids.contains(&outer), "{}", r.seen.join("\n"));
    assert!(!pids.contains(&w_out.id().to_string()));
    assert!(!instance_of("tpoint", r.child.id()));
    assert!(!cg.dir.exists());
    // The show columns are not for tpoint: a usage error.
    let (code, _, err) = testkit::run(BIN, &["--show-cgroup", "syscalls:sys_enter_openat"]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(&d);
}
