//! Live tests: a thread of the test makes a known number of read()s of known sizes and
//! perf-stat-hist, filtered in the kernel to that thread, counts each in its bucket;
//! usage and "can't" errors; the ways a run ends leave nothing in tracefs.
//! They need root and tracefs; elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Read;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;
use testkit::{gettid, instance_of, libc, live_or_skip, run, spawn_command, Running};

const BIN: &str = env!("CARGO_BIN_EXE_perf-stat-hist");
const T: Duration = Duration::from_secs(10);

fn start(args: &[&str]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let mut r = spawn_command(cmd);
    r.wait_for("Tracing", T);
    r
}

/// The reads of the workload thread: (size, how many).
const READS: &[(usize, usize)] = &[(100, 3), (5000, 5), (1 << 20, 2)];

/// Runs perf-stat-hist with `args` + `-f common_pid == <tid>` on a thread that does
/// [`READS`] of /dev/zero (and no other read) once tracing is on; returns the histogram
/// rows (range, count) and stderr.
fn histogram_of_known_reads(args: &[&str]) -> (Vec<(String, u64)>, String, Running) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let mut f = std::fs::File::open("/dev/zero").unwrap();
        let mut buf = vec![0u8; 1 << 20];
        tid_tx.send(gettid()).unwrap();
        go_rx.recv().unwrap();
        for &(size, n) in READS {
            for _ in 0..n {
                assert_eq!(f.read(&mut buf[..size]).unwrap(), size);
            }
        }
    });
    let tid = tid_rx.recv().unwrap();
    let filter = format!("common_pid == {tid}");
    let mut argv: Vec<&str> = vec!["-f", &filter];
    argv.extend_from_slice(args);
    let mut r = start(&argv);
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    // Let the tool's reader see the events, then end the run.
    std::thread::sleep(Duration::from_millis(500));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}\n{:?}", r.seen);
    let rows = r
        .seen
        .iter()
        .filter(|l| l.contains(" -> "))
        .map(|l| {
            let (range, rest) = l.split_once(':').unwrap();
            let count = rest.split_whitespace().next().unwrap().parse().unwrap();
            (
                range.split_whitespace().collect::<Vec<_>>().join(" "),
                count,
            )
        })
        .collect();
    (rows, err, r)
}

#[test]
fn known_reads_are_counted_exactly_in_power_of_4_buckets() {
    let _serial = testkit::serial();
    if !live_or_skip("known_reads_are_counted_exactly_in_power_of_4_buckets") {
        return;
    }
    let (rows, err, r) = histogram_of_known_reads(&["syscalls:sys_enter_read", "count"]);
    assert!(
        r.seen[0].starts_with("Tracing syscalls:sys_enter_read (Filter: common_pid == ")
            && r.seen[0].ends_with(", power-of-4, max 1048576, until Ctrl-C..."),
        "{:?}",
        r.seen
    );
    assert!(r
        .seen
        .iter()
        .any(|l| l == "            Range          : Count    Distribution"));
    let want: Vec<(String, u64)> = [
        ("-> -1", 0),
        ("0 -> 0", 0),
        ("1 -> 3", 0),
        ("4 -> 15", 0),
        ("16 -> 63", 0),
        ("64 -> 255", 3),
        ("256 -> 1023", 0),
        ("1024 -> 4095", 0),
        ("4096 -> 16383", 5),
        ("16384 -> 65535", 0),
        ("65536 -> 262143", 0),
        ("262144 -> 1048575", 0),
        ("1048576 ->", 2),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), *b))
    .collect();
    assert_eq!(rows, want, "{:?}\n{err}", r.seen);
    // The largest count has the full bar.
    assert!(r
        .seen
        .iter()
        .any(|l| l.contains(": 5        |######################################|")));
    assert!(!err.contains("lost"), "{err}");
    assert!(!instance_of("perf-stat-hist", r.child.id()));
}

#[test]
fn known_reads_are_counted_exactly_in_given_buckets() {
    let _serial = testkit::serial();
    if !live_or_skip("known_reads_are_counted_exactly_in_given_buckets") {
        return;
    }
    let (rows, err, r) =
        histogram_of_known_reads(&["-b", "101 5000 5001", "syscalls:sys_enter_read", "count"]);
    assert!(
        r.seen[0].ends_with(", specified buckets, until Ctrl-C..."),
        "{:?}",
        r.seen
    );
    let want: Vec<(String, u64)> = [
        ("-> 100", 3),
        ("101 -> 4999", 0),
        ("5000 -> 5000", 5),
        ("5001 ->", 2),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), *b))
    .collect();
    assert_eq!(rows, want, "{:?}\n{err}", r.seen);
}

#[test]
fn a_duration_ends_the_run_and_an_empty_run_says_why() {
    let _serial = testkit::serial();
    if !live_or_skip("a_duration_ends_the_run_and_an_empty_run_says_why") {
        return;
    }
    // A filter no read matches: every bucket is 0, and stderr says why.
    let (code, out, err) = run(
        BIN,
        &[
            "-b",
            "10",
            "-f",
            "count == 123456789",
            "syscalls:sys_enter_read",
            "count",
            "0.5",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Tracing syscalls:sys_enter_read (Filter: count == 123456789), specified buckets, for 0.5 seconds...\n"), "{out}");
    assert!(
        out.contains("   ") && out.matches(": 0        |").count() == 2,
        "{out}"
    );
    assert!(
        err.contains("no syscalls:sys_enter_read event fired while tracing"),
        "{err}"
    );
}

#[test]
fn cant_errors_say_why_and_what_to_do() {
    let _serial = testkit::serial();
    if !live_or_skip("cant_errors_say_why_and_what_to_do") {
        return;
    }
    let (code, _, err) = run(BIN, &["syscalls:sys_enter_rad", "count", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("closest: syscalls:sys_enter_read"), "{err}");
    let (code, _, err) = run(BIN, &["syscalls:sys_enter_read", "cuont", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("has no field \"cuont\"") && err.contains("count"),
        "{err}"
    );
    let (code, _, err) = run(
        BIN,
        &["-f", "cnt > 1", "syscalls:sys_enter_read", "count", "1"],
    );
    assert_eq!(code, 1, "{err}");
    // The kernel's own reason, from its error_log.
    assert!(err.contains("Field not found"), "{err}");
    let (code, _, err) = run(BIN, &["-b", "5 2", "a:b", "c"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("must increase"), "{err}");
    let (code, out, err) = run(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("canary"), "{out}");
}

#[test]
fn signals_end_the_run_with_the_histogram_and_leave_nothing() {
    let _serial = testkit::serial();
    if !live_or_skip("signals_end_the_run_with_the_histogram_and_leave_nothing") {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let mut r = start(&["syscalls:sys_enter_read", "count"]);
        let pid = r.child.id();
        assert!(instance_of("perf-stat-hist", pid));
        std::thread::sleep(Duration::from_millis(200));
        r.signal(sig);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "signal {sig}: {err}");
        assert!(
            r.seen.iter().any(|l| l.contains("1048576 ->")),
            "{:?}",
            r.seen
        );
        assert!(
            !instance_of("perf-stat-hist", pid),
            "signal {sig}: instance left"
        );
    }
    // kill -9, then --cleanup removes what it left.
    let mut r = start(&["syscalls:sys_enter_read", "count"]);
    let pid = r.child.id();
    r.signal(libc::SIGKILL);
    let _ = r.finish(T);
    assert!(instance_of("perf-stat-hist", pid));
    let (code, out, err) = run(BIN, &["--cleanup"]);
    assert_eq!(code, 0, "{err}");
    assert!(!instance_of("perf-stat-hist", pid), "{out}");
}

#[test]
fn lost_events_are_reported_and_make_the_counts_a_lower_bound() {
    let _serial = testkit::serial();
    if !live_or_skip("lost_events_are_reported_and_make_the_counts_a_lower_bound") {
        return;
    }
    // The tool is stopped while a thread makes more reads than its smallest buffer
    // holds: the kernel overwrites (and counts) the oldest.
    const N: u64 = 200_000;
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let mut f = std::fs::File::open("/dev/zero").unwrap();
        let mut buf = [0u8; 64];
        tid_tx.send(gettid()).unwrap();
        go_rx.recv().unwrap();
        for _ in 0..N {
            f.read_exact(&mut buf[..7]).unwrap();
        }
    });
    let tid = tid_rx.recv().unwrap();
    let filter = format!("common_pid == {tid}");
    let mut r = start(&[
        "--buffer-kb",
        "64",
        "-b",
        "7 8",
        "-f",
        &filter,
        "syscalls:sys_enter_read",
        "count",
    ]);
    r.signal(libc::SIGSTOP);
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    r.signal(libc::SIGCONT);
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let counted: u64 = r
        .seen
        .iter()
        .find(|l| l.contains(" 7 -> 7 "))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|c| c.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let lost: u64 = err
        .split("WARNING: ")
        .nth(1)
        .and_then(|w| w.split_whitespace().next())
        .unwrap_or_else(|| panic!("no loss warning: {err}"))
        .parse()
        .unwrap();
    assert!(err.contains("every count is a lower bound"), "{err}");
    assert!(counted < N && lost > 0, "counted {counted}, lost {lost}");
    // Every read was either counted or counted as lost.
    assert_eq!(counted + lost, N, "{err}\n{:?}", r.seen);
}
