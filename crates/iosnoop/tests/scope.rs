//! Live test of `iosnoop --cgroup --show-cgroup --show-nspid` (cgroup v2): O_DIRECT reads on a loop device from a
//! task in a cgroup made here and an identical one from outside; the cgroup is removed
//! again (tasks moved back to the root first). Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Child;
use std::time::Duration;
use testkit::cgroup::{done_gate, sh_wait_for, v2_root, TestCgroup};
use testkit::{libc, line_written, live_or_skip, spawn, LoopDev};

const BIN: &str = env!("CARGO_BIN_EXE_iosnoop");
const T: Duration = Duration::from_secs(15);

/// A shell that waits for `go`, then forks a `dd` reading 1 MiB with O_DIRECT at MiB
/// `skip` of `dev` into a pipe drained only once `go` with the extension `done` exists
/// (written when the rows are out: dd is still alive when its I/O is attributed, however
/// late); dd's PID goes to `pidfile`. Two workers read at different
/// offsets: requests in flight at one sector cannot be told apart (see
/// testkit::cgroup::gated_dd).
fn worker(go: &Path, dev: &Path, skip: u32, pidfile: &Path) -> Child {
    testkit::cgroup::gated_shell(
        go,
        &format!(
            "sh -c 'echo $$ > {pidfile}; exec dd if={dev} of=/dev/stdout iflag=direct bs=1M count=1 skip={skip} 2>/dev/null' | ({done}; cat >/dev/null)",
        dev = dev.display(),
        done = sh_wait_for(&done_gate(go)),
        pidfile = pidfile.display()
        ),
    )
}

#[test]
fn iosnoop_cgroup_attributes_by_the_issuing_task() {
    if !live_or_skip("iosnoop_cgroup_attributes_by_the_issuing_task") {
        return;
    }
    let root = v2_root();
    let name = format!("ptrs-scope-io-{}", std::process::id());
    let cg = TestCgroup::new(&root, &name);
    let lo = LoopDev::new(16);
    let d = std::env::temp_dir().join(format!("ptrs-scope-io-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let go = d.join("go");
    let mut w_in = worker(&go, &lo.path, 0, &d.join("in"));
    std::fs::write(cg.dir.join("cgroup.procs"), w_in.id().to_string()).unwrap();
    let mut w_out = worker(&go, &lo.path, 8, &d.join("out"));
    let mut r = spawn(
        BIN,
        &[
            "-d",
            &lo.dev,
            "--cgroup",
            &name,
            "--show-cgroup",
            "--show-nspid",
        ],
    );
    let header = r.wait_for("LATms", T);
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["COMM", "PID", "TYPE", "DEV", "BLOCK", "BYTES", "CGROUP", "NSPID", "LATms"],
        "{header}"
    );
    std::fs::write(&go, "").unwrap();
    // Each dd's PID, once its shell has written it.
    let (inner, outer) = (
        line_written(&d.join("in"), T),
        line_written(&d.join("out"), T),
    );
    r.collect_until(T, |seen| {
        seen.iter()
            .any(|l| l.split_whitespace().nth(1) == Some(inner.as_str()))
    });
    std::fs::write(done_gate(&go), "").unwrap();
    w_in.wait().unwrap();
    w_out.wait().unwrap();
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = r
        .seen
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() > 3 && c[3] == lo.dev)
        .collect();
    // COMM PID TYPE DEV BLOCK BYTES CGROUP NSPID LATms: only the member's dd (1 MiB in
    // one or more requests, starting at block 0), named by its cgroup and its PID in its
    // own namespace (this one); none of the identical read from outside.
    assert!(!rows.is_empty(), "{}", r.seen.join("\n"));
    assert!(
        rows.iter().all(|c| c.len() == 9
            && c[0] == "dd"
            && c[1] == inner
            && c[6] == name
            && c[7] == inner),
        "{}",
        r.seen.join("\n")
    );
    assert!(rows.iter().all(|c| c[1] != outer));
    assert!(rows.iter().any(|c| c[4] == "0"));
    let bytes: u64 = rows.iter().map(|c| c[5].parse::<u64>().unwrap()).sum();
    assert_eq!(bytes, 1 << 20);
    drop(cg);
    assert!(!root.join(&name).exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn iosnoop_cgroup_places_a_task_forked_and_gone_between_polls_by_its_fork() {
    if !live_or_skip("iosnoop_cgroup_places_a_task_forked_and_gone_between_polls_by_its_fork") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-iofork");
    let name = cg.name();
    let go = cg.gate();
    let lo = LoopDev::new(16);
    let mut inside = testkit::cgroup::gated_dd(&go, &lo.path, (65536, 4, 0), false);
    cg.add(inside.id());
    let mut outside = testkit::cgroup::gated_dd(&go, &lo.path, (4096, 3, 2048), true);
    let mut r = spawn(BIN, &["-d", &lo.dev, "--cgroup", &name]);
    r.wait_for("LATms", T);
    std::fs::write(&go, "").unwrap();
    assert!(inside.wait().unwrap().success());
    assert!(outside.wait().unwrap().success());
    r.collect_until(T, |seen| {
        seen.iter()
            .filter(|l| l.split_whitespace().nth(3) == Some(lo.dev.as_str()))
            .count()
            >= 4
    });
    // Late rows of the outside reads would show up here too.
    std::thread::sleep(Duration::from_millis(500));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    // COMM PID TYPE DEV BLOCK BYTES LATms: the member's four 64 KiB reads at blocks 0,
    // 128, 256, 384 (512-byte blocks), none of the 4 KiB reads from outside, and no I/O
    // left unplaced.
    let mut blocks: Vec<(String, String, String)> = r
        .seen
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() == 7 && c[3] == lo.dev)
        .map(|c| (c[0].to_string(), c[4].to_string(), c[5].to_string()))
        .collect();
    blocks.sort_by_key(|b| b.1.parse::<u64>().unwrap());
    let want: Vec<(String, String, String)> = [0, 128, 256, 384]
        .iter()
        .map(|b| ("dd".to_string(), b.to_string(), "65536".to_string()))
        .collect();
    assert_eq!(blocks, want, "{}\n{err}", r.seen.join("\n"));
    assert!(!err.contains("exited before"), "{err}");
}
