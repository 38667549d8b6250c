//! Live tests of the container scope (`--cgroup`, `--container`, `--show-cgroup`,
//! `--show-nspid`) on this machine's cgroup hierarchies: cgroups made here, test shells
//! moved into them, and removed again (their tasks moved back to the root first) in
//! every case. They need root, tracefs and a cgroup v2 mount (or the hybrid host's
//! /sys/fs/cgroup/unified).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::cgroup::{done_gate, sh_wait_for, v2_root, TestCgroup};
use testkit::{instance_of, line_written, live_or_skip, spawn, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_opensnoop");
const T: Duration = Duration::from_secs(15);

/// A shell that waits for `go` to exist, then forks a subshell that opens FILE and stays
/// a second (so that its cgroup can still be read when its row is printed; the fork's
/// PID goes to `pids`), and waits for it.
fn worker(go: &Path, file: &Path, pids: &Path) -> Child {
    testkit::cgroup::gated_shell(
        go,
        &format!(
            "( exec 3<{file}; {done} ) & echo $! >> {pids}; wait",
            file = file.display(),
            done = sh_wait_for(&done_gate(go)),
            pids = pids.display()
        ),
    )
}

fn pids_in(p: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ptrs-scope-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Rows of `seen` naming `file`, as whitespace columns.
fn rows_naming(seen: &[String], file: &Path) -> Vec<Vec<String>> {
    let f = file.display().to_string();
    seen.iter()
        .filter(|l| l.ends_with(&f))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn cgroup_scope_sees_members_and_their_children_and_late_joiners_only() {
    if !live_or_skip("cgroup_scope_sees_members_and_their_children_and_late_joiners_only") {
        return;
    }
    let root = v2_root();
    let name = format!("ptrs-scope-a-{}", std::process::id());
    let cg = TestCgroup::new(&root, &name);
    let d = scratch("a");
    let (go, file) = (d.join("go"), d.join("unique-file"));
    std::fs::write(&file, "x").unwrap();
    let (in_pids, out_pids, late_pids) = (d.join("in"), d.join("out"), d.join("late"));
    let left_pids = d.join("left");
    // In the cgroup before the run; outside; moved in after the run started.
    let mut w_in = worker(&go, &file, &in_pids);
    cg.add(w_in.id());
    let mut w_out = worker(&go, &file, &out_pids);
    let mut w_late = worker(&go, &file, &late_pids);
    // In the cgroup at the start, moved out after: the kernel still follows it and its
    // children (its PID stays in set_event_pid), its rows must not be shown.
    let mut w_left = worker(&go, &file, &left_pids);
    cg.add(w_left.id());

    let mut r = spawn(
        BIN,
        &[
            "--cgroup",
            &name,
            "--show-cgroup",
            "--show-nspid",
            "unique-file",
        ],
    );
    let header = r.wait_for("FILE", T);
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["COMM", "PID", "FD", "CGROUP", "NSPID", "FILE"]
    );
    // The leaver moves out first, then the late joiner in: once a poll of the cgroup
    // (every 100 ms) has put the joiner in the kernel's PID filter, the same or an
    // earlier poll saw the leaver gone. Waited for, not slept on: a loaded machine may
    // poll late.
    std::fs::write(root.join("cgroup.procs"), w_left.id().to_string()).unwrap();
    cg.add(w_late.id());
    let filter = format!(
        "/sys/kernel/tracing/instances/opensnoop-{}/set_event_pid",
        r.child.id()
    );
    let late = w_late.id().to_string();
    wait_until(&format!("the late joiner {late} in {filter}"), T, || {
        let list = std::fs::read_to_string(&filter).ok()?;
        list.split_whitespace().any(|p| p == late).then_some(())
    });
    std::fs::write(&go, "").unwrap();
    let want: BTreeSet<String> = [&in_pids, &late_pids].map(|p| line_written(p, T)).into();
    assert_eq!(want.len(), 2);
    // The other two opened at the same time: their rows, if any, are out by now too.
    line_written(&out_pids, T);
    line_written(&left_pids, T);
    r.collect_until(T, |seen| {
        let got: BTreeSet<String> = rows_naming(seen, &file)
            .iter()
            .map(|c| c[1].clone())
            .collect();
        want.is_subset(&got)
    });
    std::fs::write(done_gate(&go), "").unwrap();
    for w in [&mut w_in, &mut w_out, &mut w_late, &mut w_left] {
        w.wait().unwrap();
    }
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let rows = rows_naming(&r.seen, &file);
    let got: BTreeSet<String> = rows.iter().map(|c| c[1].clone()).collect();
    // The member's child forked after the start and the late joiner's child; not the
    // identical open from outside, nor that of the child of the task that left.
    assert_eq!(pids_in(&left_pids).len(), 1);
    assert!(got.is_disjoint(&pids_in(&left_pids)));
    assert!(got.is_disjoint(&pids_in(&out_pids)));
    assert_eq!(got, want, "rows:\n{}", r.seen.join("\n"));
    for c in &rows {
        assert_eq!(c[0], "sh");
        // CGROUP names the test cgroup; NSPID is the host PID (no PID namespace here).
        assert_eq!(c[3], name);
        assert_eq!(c[4], c[1]);
    }
    assert!(!instance_of("opensnoop", r.child.id()));
    drop(cg);
    assert!(!root.join(&name).exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// A 64-hex container ID unique to this test run.
fn hex_id(n: u32) -> String {
    let s = format!("{:08x}{:04x}", std::process::id(), n);
    format!("{s}{}", "ab".repeat(26))
}

#[test]
fn container_ids_resolve_by_short_prefix_and_bad_input_is_explained() {
    if !live_or_skip("container_ids_resolve_by_short_prefix_and_bad_input_is_explained") {
        return;
    }
    let root = v2_root();
    let top = format!("ptrs-scope-k-{}", std::process::id());
    let tree = TestCgroup::new(&root, &top);
    let docker = hex_id(1);
    let kube = hex_id(0x200);
    let uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let dcg = TestCgroup::new(&root, &format!("{top}/system.slice/docker-{docker}.scope"));
    let kcg = TestCgroup::new(&root, &format!("{top}/kubepods/burstable/pod{uid}/{kube}"));
    let d = scratch("k");
    let (go, file) = (d.join("go"), d.join("unique-file"));
    std::fs::write(&file, "x").unwrap();

    for (cg, id, pids) in [(&dcg, &docker, d.join("d")), (&kcg, &kube, d.join("k"))] {
        let _ = std::fs::remove_file(&go);
        let _ = std::fs::remove_file(done_gate(&go));
        let mut w = worker(&go, &file, &pids);
        cg.add(w.id());
        let short = &id[..10];
        let mut r = spawn(BIN, &["--container", short, "--show-cgroup", "unique-file"]);
        r.wait_for("FILE", T);
        std::fs::write(&go, "").unwrap();
        let cat = line_written(&pids, T);
        r.collect_until(T, |seen| {
            rows_naming(seen, &file).iter().any(|c| c[1] == cat)
        });
        std::fs::write(done_gate(&go), "").unwrap();
        w.wait().unwrap();
        r.signal(testkit::libc::SIGINT);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "{err}");
        let rows = rows_naming(&r.seen, &file);
        assert_eq!(rows.len(), 1, "{}", r.seen.join("\n"));
        // The container's short ID (12 characters, as docker ps shows it).
        assert_eq!(rows[0][3], id[..12]);
    }

    // Not a cgroup.
    let (code, _, err) = testkit::run(BIN, &["--cgroup", "/tmp", "-d", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/tmp is not a cgroup"), "{err}");
    // No match: near matches listed.
    let (code, _, err) = testkit::run(BIN, &["--container", "fedcba9876", "-d", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no container matches 'fedcba9876'"), "{err}");
    assert!(err.contains(&docker[..12]), "{err}");
    // Several: every match listed.
    let prefix = format!("{:08x}", std::process::id());
    let (code, _, err) = testkit::run(BIN, &["--container", &prefix, "-d", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("'{prefix}' matches 2 containers")),
        "{err}"
    );
    assert!(err.contains(&docker) && err.contains(&kube), "{err}");
    // Usage errors: --cgroup with -p, --cgroup with --container.
    let (code, _, _) = testkit::run(BIN, &["--cgroup", &top, "-p", "1"]);
    assert_eq!(code, 2);
    let (code, _, _) = testkit::run(BIN, &["--cgroup", &top, "--container", &prefix]);
    assert_eq!(code, 2);

    drop(dcg);
    drop(kcg);
    drop(tree);
    assert!(!root.join(&top).exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_empty_cgroup_traces_nothing_and_its_removal_ends_the_run_cleanly() {
    if !live_or_skip("an_empty_cgroup_traces_nothing_and_its_removal_ends_the_run_cleanly") {
        return;
    }
    let root = v2_root();
    let name = format!("ptrs-scope-e-{}", std::process::id());
    let cg = TestCgroup::new(&root, &name);
    let d = scratch("e");
    let file = d.join("unique-file");
    std::fs::write(&file, "x").unwrap();
    let mut r = spawn(BIN, &["--cgroup", &root.join(&name).display().to_string()]);
    r.wait_for("FILE", T);
    let pid = r.child.id();
    let inst = format!("/sys/kernel/tracing/instances/opensnoop-{pid}");
    // Seeded with a PID no task has: never an empty list (which would trace everything).
    let list = std::fs::read_to_string(format!("{inst}/set_event_pid")).unwrap();
    assert_eq!(list.trim(), "4194304");
    assert_eq!(
        std::fs::read_to_string(format!("{inst}/options/event-fork"))
            .unwrap()
            .trim(),
        "1"
    );
    // Opens outside are not shown.
    for _ in 0..5 {
        std::fs::read(&file).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    drop(cg);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(
        err.contains(&format!(
            "the cgroup {} was removed",
            root.join(&name).display()
        )),
        "{err}"
    );
    assert!(
        rows_naming(&r.seen, &file).is_empty(),
        "{}",
        r.seen.join("\n")
    );
    assert!(!Path::new(&inst).exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn nspid_is_the_pid_inside_the_tasks_own_pid_namespace() {
    if !live_or_skip("nspid_is_the_pid_inside_the_tasks_own_pid_namespace") {
        return;
    }
    let root = v2_root();
    let name = format!("ptrs-scope-ns-{}", std::process::id());
    let cg = TestCgroup::new(&root, &name);
    let d = scratch("ns");
    let (go, file, nsfile) = (d.join("go"), d.join("unique-file"), d.join("ns"));
    std::fs::write(&file, "x").unwrap();
    // In a new PID namespace: `$!` there is the namespace's PID of the opening subshell.
    let script = format!(
        "{go}; ( exec 3<{file}; {done} ) & echo $! > {ns}; wait",
        go = sh_wait_for(&go),
        file = file.display(),
        done = sh_wait_for(&done_gate(&go)),
        ns = nsfile.display()
    );
    let mut w = Command::new("unshare")
        .args(["-p", "-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // unshare forks the shell at once: move both (a move does not carry children).
    cg.add(w.id());
    let kids = format!("/proc/{0}/task/{0}/children", w.id());
    let deadline = Instant::now() + T;
    let child = loop {
        let k = std::fs::read_to_string(&kids).unwrap_or_default();
        if let Some(c) = k.split_whitespace().next() {
            break c.parse::<u32>().unwrap();
        }
        assert!(Instant::now() < deadline, "unshare forked no child");
        std::thread::sleep(Duration::from_millis(10));
    };
    cg.add(child);
    let mut r = spawn(BIN, &["--cgroup", &name, "--show-nspid", "unique-file"]);
    r.wait_for("FILE", T);
    std::fs::write(&go, "").unwrap();
    r.collect_until(T, |seen| !rows_naming(seen, &file).is_empty());
    std::fs::write(done_gate(&go), "").unwrap();
    w.wait().unwrap();
    let ns = std::fs::read_to_string(&nsfile).unwrap().trim().to_string();
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let rows = rows_naming(&r.seen, &file);
    // COMM PID FD NSPID FILE
    assert_eq!(rows.len(), 1, "{}", r.seen.join("\n"));
    assert_eq!(rows[0][3], ns);
    assert_ne!(rows[0][1], ns);
    drop(cg);
    let _ = std::fs::remove_dir_all(&d);
}
