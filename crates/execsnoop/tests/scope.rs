//! Live test of `execsnoop --cgroup` (cgroup v2): a cgroup made here, a test shell moved
//! into it, removed again (tasks moved back to the root first). Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Child;
use std::time::Duration;
use testkit::cgroup::{v2_root, TestCgroup};
use testkit::{line_written, live_or_skip, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_execsnoop");
const T: Duration = Duration::from_secs(15);

/// A shell that waits for `go`, then runs `sleep 29.7` (its PID goes to `pids`), which
/// the test kills once its row is out: alive while execsnoop reads its arguments and
/// cgroup from /proc, however late a loaded machine lets it.
fn worker(go: &Path, pids: &Path) -> Child {
    testkit::cgroup::gated_shell(
        go,
        &format!(
            "sleep 29.7 & echo $! >> {pids}; wait",
            pids = pids.display()
        ),
    )
}

#[test]
fn execsnoop_cgroup_shows_the_cgroups_execs_only() {
    if !live_or_skip("execsnoop_cgroup_shows_the_cgroups_execs_only") {
        return;
    }
    let root = v2_root();
    let name = format!("ptrs-scope-x-{}", std::process::id());
    let cg = TestCgroup::new(&root, &name);
    let d = std::env::temp_dir().join(format!("ptrs-scope-x-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let go = d.join("go");
    let mut w_in = worker(&go, &d.join("in"));
    std::fs::write(cg.dir.join("cgroup.procs"), w_in.id().to_string()).unwrap();
    let mut w_out = worker(&go, &d.join("out"));
    let mut r = spawn(BIN, &["--cgroup", &name, "--show-cgroup"]);
    r.wait_for("ARGS", T);
    std::fs::write(&go, "").unwrap();
    let (inner, outer) = (
        line_written(&d.join("in"), T),
        line_written(&d.join("out"), T),
    );
    r.collect_until(T, |seen| {
        seen.iter()
            .any(|l| l.split_whitespace().next() == Some(&inner))
    });
    for p in [&inner, &outer] {
        // SAFETY: kill with the PID of a sleep this test started.
        unsafe { testkit::libc::kill(p.parse().unwrap(), testkit::libc::SIGKILL) };
    }
    w_in.wait().unwrap();
    w_out.wait().unwrap();
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = r
        .seen
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.last() == Some(&"29.7"))
        .collect();
    // PID PPID CGROUP ARGS...: the member's sleep only, named by its cgroup.
    assert_eq!(rows.len(), 1, "{}", r.seen.join("\n"));
    assert_eq!(rows[0][0], inner);
    assert_ne!(rows[0][0], outer);
    assert_eq!(rows[0][2], name);
    assert_eq!(rows[0][3..], ["sleep", "29.7"]);
    drop(cg);
    assert!(!root.join(&name).exists());
    let _ = std::fs::remove_dir_all(&d);
}
