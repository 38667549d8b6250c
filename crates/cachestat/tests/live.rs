//! Live tests: the canary (this process's own 16-page file, filtered to its thread)
//! counts exactly, and a run of the tool counts a cold read of a 32 MiB file of ours as
//! at least its 8192 pages of misses, and with --cgroup only the misses of a cgroup's
//! task; nothing is left in tracefs.
//! They need root and tracefs; elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use cachestat::canary::{self, Verdict};
use cachestat::sources::Plan;
use perf_tools_ftrace::tracefs::Tracefs;
use std::path::Path;
use std::process::Child;
use testkit::cgroup::TestCgroup;
use testkit::{instance_of, live_or_skip, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_cachestat");
const PAGES: u64 = 8192;
const T: Duration = Duration::from_secs(20);

fn test_file(name: &str, pages: u64) -> PathBuf {
    let dir = canary::directory().expect("a disk-backed directory ($TMPDIR, /var/tmp, /tmp)");
    let p = dir.join(format!("{name}-{}", std::process::id()));
    let mut f = File::create(&p).unwrap();
    let page = [0xa5u8; 4096];
    for _ in 0..pages {
        f.write_all(&page).unwrap();
    }
    f.sync_all().unwrap();
    p
}

#[test]
fn the_canary_counts_its_own_file_exactly() {
    let _s = testkit::serial();
    if !live_or_skip("the_canary_counts_its_own_file_exactly") {
        return;
    }
    let tracefs = Tracefs::open().unwrap();
    let plan = Plan::choose(&tracefs).unwrap();
    match canary::run(&tracefs, &plan).unwrap() {
        Verdict::Passed(seen) => {
            assert!(
                seen.contains("cold read 16 misses") && seen.contains("warm read added 0"),
                "{seen}"
            );
        }
        v => panic!("canary: {v:?}"),
    }
    drop(plan);
    assert!(!testkit::instance_of("cachestat", std::process::id()));
    assert!(testkit::probes_of(std::process::id()).is_empty());
}

#[test]
fn a_cold_read_of_our_file_is_counted_as_misses() {
    let _s = testkit::serial();
    if !live_or_skip("a_cold_read_of_our_file_is_counted_as_misses") {
        return;
    }
    let path = test_file("cachestat-live", PAGES);
    let f = File::open(&path).unwrap();
    canary::drop_pages(&f).unwrap();
    let mut run = testkit::spawn(BIN, &["-D", "--count", "1", "3"]);
    run.wait_for("HITS", Duration::from_secs(20));
    let mut buf = vec![0u8; 1 << 16];
    let mut r = &f;
    while r.read(&mut buf).unwrap() > 0 {}
    let (rc, err) = run.finish(Duration::from_secs(20));
    let out = format!("{}\n{err}", run.seen.join("\n"));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(rc, 0, "{out}");
    let row = out
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 7 && w[1].parse::<u64>().is_ok()
        })
        .unwrap_or_else(|| panic!("no row in {out}"));
    let w: Vec<&str> = row.split_whitespace().collect();
    // Other programs on the host add their own misses: at least ours.
    let misses: u64 = w[1].parse().unwrap();
    assert!(misses >= PAGES, "MISSES {misses} < {PAGES}: {out}");
    assert!(misses < 50 * PAGES, "MISSES {misses} implausible: {out}");
    let tracefs = Tracefs::open().unwrap();
    if !tracefs.path("kprobe_events").exists() {
        // No source of accesses here: HITS and RATIO are not invented.
        assert_eq!((w[0], w[3]), ("-", "-"), "{row}");
        assert!(out.contains("no kprobe events"), "{out}");
    }
}

/// A file of `pages` pages on disk, not in the page cache.
fn cold_file(name: &str, pages: u64) -> PathBuf {
    let p = test_file(name, pages);
    canary::drop_pages(&File::open(&p).unwrap()).unwrap();
    p
}

// Container scope (cgroup v2): a task in a cgroup made here reads a cold 1 MiB file (256
// pages) and a task outside a cold 16 MiB one (4096 pages); the MISSES of the run count
// the first and not the second.

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
    let name = cg.name();
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
