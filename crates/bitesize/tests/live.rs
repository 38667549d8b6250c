//! Live tests: bitesize against this machine's kernel, on loop devices over /dev/shm,
//! with O_DIRECT reads of known sizes. They need root and tracefs (CI has both);
//! elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;
use testkit::{dd_direct, instance_of, live_or_skip, spawn, LoopDev, Running};

const BIN: &str = env!("CARGO_BIN_EXE_bitesize");
const T: Duration = Duration::from_secs(10);

fn start(args: &[&str]) -> Running {
    let mut r = spawn(BIN, args);
    r.wait_for("Tracing block I/O size", T);
    // The banner comes once tracing is on.
    r
}

/// The I/O column of each histogram row, in order.
fn counts(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.contains(" -> ") && l.ends_with('|'))
        .map(|l| {
            l.split(':')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn known_direct_io_sizes_land_in_their_buckets_exactly() {
    if !live_or_skip("known_direct_io_sizes_land_in_their_buckets_exactly") {
        return;
    }
    let lo = LoopDev::new(16);
    let mut r = start(&["-d", &lo.dev, "-b", "4 16 64"]);
    // < 4 KiB: 2; 4..15.9: 3 + 1; 16..63.9: 4; 64 and up: 2 + 1.
    dd_direct(&lo.path, false, 0, 512, 2);
    dd_direct(&lo.path, false, 4096, 4096, 3);
    dd_direct(&lo.path, true, 1 << 20, 8192, 1);
    dd_direct(&lo.path, false, 2 << 20, 16384, 4);
    dd_direct(&lo.path, false, 4 << 20, 65536, 2);
    dd_direct(&lo.path, true, 8 << 20, 131072, 1);
    std::thread::sleep(Duration::from_millis(300));
    r.signal(testkit::libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(counts(&r.seen), vec![2, 4, 4, 3], "{}", r.seen.join("\n"));
    let text = r.seen.join("\n");
    assert!(
        text.contains("            Kbytes         : I/O      Distribution"),
        "{text}"
    );
    assert!(
        text.contains(
            "         16.0 -> 63.9      : 4        |######################################|"
        ),
        "{text}"
    );
    assert!(!err.contains("lost"), "{err}");
    assert!(!instance_of("bitesize", r.child.id()));
}

#[test]
fn per_process_histogram_counts_one_named_thread_exactly() {
    if !live_or_skip("per_process_histogram_counts_one_named_thread_exactly") {
        return;
    }
    let lo = LoopDev::new(16);
    let name = format!("bsz{}", std::process::id() % 100_000);
    let mut r = start(&["-d", &lo.dev, "-b", "8", "--per-process"]);
    let (path, n) = (lo.path.clone(), name.clone());
    std::thread::spawn(move || {
        testkit::set_thread_name(n.as_bytes());
        testkit::direct_read(&path, 0, 4096);
        testkit::direct_read(&path, 8192, 4096);
        testkit::direct_read(&path, 1 << 20, 32768);
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    r.signal(testkit::libc::SIGTERM);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let at = r
        .seen
        .iter()
        .position(|l| l == &format!("Process name: {name}"))
        .unwrap_or_else(|| panic!("no histogram for {name}: {}", r.seen.join("\n")));
    assert_eq!(
        counts(&r.seen[at..at + 4]),
        vec![2, 1],
        "{}",
        r.seen.join("\n")
    );
}

#[test]
fn an_empty_run_says_why() {
    if !live_or_skip("an_empty_run_says_why") {
        return;
    }
    let lo = LoopDev::new(16);
    let (code, out, err) = testkit::run(BIN, &["-d", &lo.dev, "0.3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        counts(&out.lines().map(String::from).collect::<Vec<_>>()),
        vec![0; 5]
    );
    assert!(
        err.contains("bitesize: 0 I/Os in the histogram: ")
            && err.contains(&format!("(filter -d {})", lo.dev)),
        "{err}"
    );
}

#[test]
fn bad_input_is_a_usage_error_and_touches_nothing() {
    if !live_or_skip("bitesize_bad_input_is_a_usage_error_and_touches_nothing") {
        return;
    }
    for (args, needle) in [
        (&["-b", "16 8"][..], "must increase"),
        (&["-b", "x"], "whole number"),
        (&["abc"], "seconds"),
        (&["-d", "202"], "major,minor"),
        (&["-z"], "-z"),
    ] {
        let (code, out, err, pid) = testkit::run_pid(BIN, args);
        assert!(!instance_of("bitesize", pid), "{args:?} left an instance");
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    // A device that does not exist: a runtime error, before any kernel state.
    let (code, _, err, pid) = testkit::run_pid(BIN, &["-d", "nosuchdisk0"]);
    assert_eq!(code, 1, "{err}");
    assert!(!instance_of("bitesize", pid));
}

#[test]
fn check_reports_the_layout_and_leaves_nothing() {
    if !live_or_skip("bitesize_check_reports_the_layout_and_leaves_nothing") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("bitesize: can run"), "{out}");
    assert!(out.contains("nr_sector"), "{out}");
    assert!(!instance_of("bitesize", pid));
}
