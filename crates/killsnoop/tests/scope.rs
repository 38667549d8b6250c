//! Live test of `killsnoop --cgroup --show-cgroup --show-nspid` (cgroup v2): two shells
//! each send signal 0 to themselves, one in a cgroup made here and one outside; only the
//! first is shown, with its cgroup's name and its PID as its namespace sees it. Needs
//! root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Child;
use std::time::Duration;
use testkit::cgroup::{done_gate, sh_wait_for, TestCgroup};
use testkit::{instance_of, live_or_skip, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_killsnoop");
const T: Duration = Duration::from_secs(15);

/// A shell that waits for `go`, sends signal 0 to itself with the builtin kill, then
/// waits for `go` with the extension `done` (written once its row is out: its cgroup and
/// PID namespace can still be read when its row is printed, however late).
fn sender(go: &Path) -> Child {
    testkit::cgroup::gated_shell(go, &format!("kill -0 $$; {}", sh_wait_for(&done_gate(go))))
}

#[test]
fn cgroup_shows_its_senders_only_with_cgroup_and_nspid_columns() {
    if !live_or_skip("cgroup_shows_its_senders_only_with_cgroup_and_nspid_columns") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-ks");
    let name = cg.name();
    let go = cg.gate();
    let mut inside = sender(&go);
    cg.add(inside.id());
    let mut outside = sender(&go);
    let mut r = spawn(BIN, &["--cgroup", &name, "--show-cgroup", "--show-nspid"]);
    r.wait_for("Tracing kill()s", T);
    let header = r.wait_for("COMM", T);
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["COMM", "PID", "TPID", "SIGNAL", "CGROUP", "NSPID", "RETURN"],
        "{header}"
    );
    assert!(instance_of("killsnoop", r.child.id()));
    std::fs::write(&go, "").unwrap();
    let pi = inside.id().to_string();
    let row = r.wait_for(&format!(" {pi} "), T);
    std::fs::write(done_gate(&go), "").unwrap();
    inside.wait().unwrap();
    outside.wait().unwrap();
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [
            "sh",
            pi.as_str(),
            pi.as_str(),
            "0",
            name.as_str(),
            pi.as_str(),
            "0"
        ],
        "{row}"
    );
    let po = outside.id().to_string();
    let all = r.seen.join("\n");
    assert!(
        !r.seen
            .iter()
            .any(|l| l.split_whitespace().nth(1) == Some(&po)),
        "a sender outside the cgroup was shown:\n{all}"
    );
    assert!(!instance_of("killsnoop", r.child.id()));
}
