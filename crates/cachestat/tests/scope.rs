//! Live test of `cachestat --cgroup` (cgroup v2): a task in a cgroup made here reads a
//! cold 1 MiB file (256 pages) and a task outside a cold 16 MiB one (4096 pages); the
//! MISSES of the run count the first and not the second. Needs root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use cachestat::canary;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, live_or_skip, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_cachestat");
const T: Duration = Duration::from_secs(20);

/// A file of `pages` pages on disk, not in the page cache.
fn cold_file(name: &str, pages: u64) -> PathBuf {
    let dir = canary::directory().expect("a disk-backed directory ($TMPDIR, /var/tmp, /tmp)");
    let p = dir.join(format!("{name}-{}", std::process::id()));
    let mut f = File::create(&p).unwrap();
    let page = [0x5au8; 4096];
    for _ in 0..pages {
        f.write_all(&page).unwrap();
    }
    f.sync_all().unwrap();
    canary::drop_pages(&f).unwrap();
    p
}

/// A shell that waits for `go`, then reads `file` with cat.
fn reader(go: &Path, file: &Path) -> Child {
    testkit::cgroup::gated_shell(go, &format!("cat {file} >/dev/null", file = file.display()))
}

#[test]
fn cgroup_counts_its_tasks_misses_only() {
    let _s = testkit::serial();
    if !live_or_skip("cgroup_counts_its_tasks_misses_only") {
        return;
    }
    let cg = TestCgroup::v2("ptrs-scope-cs");
    let name = cg.dir.file_name().unwrap().to_string_lossy().into_owned();
    let small = cold_file("cachestat-scope-in", 256);
    let big = cold_file("cachestat-scope-out", 4096);
    let go = small.with_extension("go");
    let mut inside = reader(&go, &small);
    cg.add(inside.id());
    let mut outside = reader(&go, &big);
    let mut r = spawn(BIN, &["--cgroup", &name, "1"]);
    r.wait_for("HITS", T);
    assert!(instance_of("cachestat", r.child.id()));
    std::fs::write(&go, "").unwrap();
    assert!(inside.wait().unwrap().success());
    assert!(outside.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(2300));
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    for p in [&small, &big, &go] {
        let _ = std::fs::remove_file(p);
    }
    let out = format!("{}\n{err}", r.seen.join("\n"));
    assert_eq!(code, 0, "{out}");
    let misses: u64 = r
        .seen
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    // The 256 pages read inside, and little else (cat's own pages are cached); never
    // the 4096 read outside.
    assert!((256..1024).contains(&misses), "MISSES {misses}: {out}");
    assert!(!instance_of("cachestat", r.child.id()));
}
