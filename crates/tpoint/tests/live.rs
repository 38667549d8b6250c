//! Live tests: tpoint against this machine's kernel (block I/O on loop devices over
//! /dev/shm, syscalls of known threads). They need root and tracefs (CI has both);
//! elsewhere they print why they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;
use testkit::{dd_direct, instance_of, libc, live_or_skip, spawn, LoopDev, Running};

const BIN: &str = env!("CARGO_BIN_EXE_tpoint");
const T: Duration = Duration::from_secs(10);

/// The tests whose syscalls storm or are counted exactly (in this process) run one at a
/// time.
static SYSCALLS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn start(args: &[&str]) -> Running {
    let mut r = spawn(BIN, args);
    r.wait_for("Tracing ", T);
    r
}

/// The kernel's `dev` value of a loop device ("7,3" -> 7 << 20 | 3).
fn kdev(lo: &LoopDev) -> u64 {
    let (ma, mi) = lo.dev.split_once(',').unwrap();
    (ma.parse::<u64>().unwrap() << 20) | mi.parse::<u64>().unwrap()
}

/// A line without its timestamp (`<secs>.<usecs>: `), to compare two renderings of one
/// event made in two instances (each stamps the event in its own buffer).
fn without_ts(line: &str) -> String {
    let at = line.find("]").unwrap();
    let (head, rest) = line.split_at(at);
    let colon = rest.find(": ").unwrap();
    let flags_end = rest[..colon].rfind(' ').unwrap();
    format!("{head}{} {}", &rest[..flags_end], &rest[colon + 2..])
}

/// A tracefs instance of the test itself (not named like the suite's), with one event
/// enabled: the kernel's own rendering to compare against.
struct Reference {
    dir: String,
}

impl Reference {
    fn new(event: &str, filter: &str) -> Reference {
        let dir = format!(
            "{}/instances/ptrs-tpoint-ref-{}",
            testkit::TRACEFS,
            std::process::id()
        );
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(format!("{dir}/events/{event}/filter"), filter).unwrap();
        std::fs::write(format!("{dir}/events/{event}/enable"), "1").unwrap();
        Reference { dir }
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(format!("{}/trace", self.dir))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{}/events/enable", self.dir), "0");
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn prints_a_known_block_rq_issue_in_the_kernels_layout_and_honours_the_filter() {
    if !live_or_skip("prints_a_known_block_rq_issue_in_the_kernels_layout_and_honours_the_filter") {
        return;
    }
    let lo = LoopDev::new(16);
    let filter = format!("dev == {} && sector == 2048", kdev(&lo));
    let reference = Reference::new("block/block_rq_issue", &format!("dev == {}", kdev(&lo)));
    let mut r = start(&["block:block_rq_issue", &filter]);
    // Sector 2048 (byte 1 MiB), 4 KiB: the one to print; sector 4096: filtered out.
    let pid = dd_direct(&lo.path, false, 1 << 20, 4096, 1);
    dd_direct(&lo.path, false, 2 << 20, 4096, 1);
    r.collect_until(Duration::from_secs(3), |s| {
        s.iter().any(|l| l.contains("block_rq_issue:"))
    });
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&String> = r
        .seen
        .iter()
        .filter(|l| l.contains("block_rq_issue:"))
        .collect();
    assert_eq!(rows.len(), 1, "{:?}", r.seen);
    let row = rows[0];
    let want_tail = format!(": block_rq_issue: {} R", lo.dev);
    assert!(row.contains(&want_tail), "{row}");
    assert!(row.contains(" 4096 () 2048 + 8 "), "{row}");
    assert!(row.ends_with(" [dd]"), "{row}");
    assert!(row.trim_start().starts_with(&format!("dd-{pid} ")), "{row}");
    // Exactly the kernel's own rendering of that event (another instance's `trace`).
    let theirs: Vec<String> = reference
        .lines()
        .into_iter()
        .filter(|l| l.contains(" 2048 + 8 "))
        .collect();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(without_ts(row), without_ts(&theirs[0]));
    assert_eq!(
        r.seen.first().unwrap(),
        "Tracing block:block_rq_issue. Ctrl-C to end."
    );
    assert!(
        r.seen.iter().any(|l| l == "Ending tracing..."),
        "{:?}",
        r.seen
    );
    assert!(!instance_of("tpoint", r.child.id()));
}

#[test]
fn a_hostile_thread_name_is_escaped_and_forges_no_line() {
    if !live_or_skip("a_hostile_thread_name_is_escaped_and_forges_no_line") {
        return;
    }
    let lo = LoopDev::new(16);
    let filter = format!("dev == {}", kdev(&lo));
    let mut r = start(&["block:block_rq_issue", &filter]);
    let path = lo.path.clone();
    std::thread::spawn(move || {
        testkit::set_thread_name(b"x\n   fake-1 [\x1b");
        testkit::direct_read(&path, 4096 * 8, 4096);
    })
    .join()
    .unwrap();
    r.collect_until(Duration::from_secs(3), |s| {
        s.iter().any(|l| l.contains("block_rq_issue:"))
    });
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGTERM);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&String> = r
        .seen
        .iter()
        .filter(|l| !l.starts_with("Tracing") && !l.is_empty() && *l != "Ending tracing...")
        .collect();
    assert_eq!(rows.len(), 1, "one line, not two: {:?}", r.seen);
    assert!(rows[0].contains("x\\n   fake-1 [\\e-"), "{}", rows[0]);
    assert!(rows[0].ends_with("[x\\n   fake-1 [\\e]"), "{}", rows[0]);
    assert!(!rows[0].contains('\x1b'));
}

#[test]
fn lost_events_are_marked_counted_and_add_up() {
    if !live_or_skip("lost_events_are_marked_counted_and_add_up") {
        return;
    }
    let _serial = SYSCALLS.lock().unwrap_or_else(|e| e.into_inner());
    const CALLS: u64 = 200_000;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let storm = std::thread::spawn(move || {
        tid_tx.send(testkit::gettid()).unwrap();
        go_rx.recv().unwrap();
        for _ in 0..CALLS {
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
        }
    });
    let tid = tid_rx.recv().unwrap().to_string();
    let mut r = start(&[
        "--buffer-kb",
        "64",
        "-L",
        &tid,
        "syscalls:sys_enter_getppid",
    ]);
    // tpoint stopped: the 64 KiB per-CPU buffer overflows.
    r.signal(libc::SIGSTOP);
    go_tx.send(()).unwrap();
    storm.join().unwrap();
    r.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(1500));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    let events = r
        .seen
        .iter()
        .filter(|l| l.ends_with(": sys_getppid()"))
        .count() as u64;
    let marked: u64 = r
        .seen
        .iter()
        .filter_map(|l| {
            l.split("[LOST ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(marked > 0, "no [LOST N EVENTS] line; stderr: {err}");
    let total: u64 = err
        .split("WARNING: ")
        .find_map(|w| w.strip_suffix_or_line(" events lost in total"))
        .unwrap_or_else(|| panic!("no loss total: {err}"));
    assert!(total >= marked, "{total} < {marked}");
    // Every call is either printed or counted lost.
    assert_eq!(
        events + total,
        CALLS,
        "{events} printed + {total} lost; stderr: {err}"
    );
}

trait LineNumber {
    fn strip_suffix_or_line(&self, suffix: &str) -> Option<u64>;
}

impl LineNumber for str {
    /// The number that starts this text, if its first line contains `suffix` after it.
    fn strip_suffix_or_line(&self, suffix: &str) -> Option<u64> {
        let line = self.lines().next()?;
        let n = line
            .split(suffix)
            .next()
            .filter(|_| line.contains(suffix))?;
        n.trim().parse().ok()
    }
}

#[test]
fn a_pid_covers_threads_created_later() {
    if !live_or_skip("a_pid_covers_threads_created_later") {
        return;
    }
    let _serial = SYSCALLS.lock().unwrap_or_else(|e| e.into_inner());
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    // A child process whose thread, created after tpoint starts, calls getppid.
    let me = std::process::id().to_string();
    let mut r = start(&["-p", &me, "syscalls:sys_enter_getppid"]);
    let t = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        tid_tx.send(testkit::gettid()).unwrap();
        for _ in 0..3 {
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
        }
    });
    go_tx.send(()).unwrap();
    let tid = tid_rx.recv().unwrap();
    t.join().unwrap();
    r.collect_until(Duration::from_secs(3), |s| {
        s.iter().filter(|l| l.contains(&format!("-{tid} "))).count() >= 3
    });
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let mine = r
        .seen
        .iter()
        .filter(|l| l.contains(&format!("-{tid} ")) && l.ends_with("sys_getppid()"))
        .count();
    assert_eq!(mine, 3, "{:?}", r.seen);
}

#[test]
fn bad_input_is_explained_and_touches_nothing() {
    if !live_or_skip("tpoint_bad_input_is_explained_and_touches_nothing") {
        return;
    }
    for (args, code_want, needles) in [
        (
            &["block:block_rq_isue"][..],
            1,
            &["the closest are: block:block_rq_issue"][..],
        ),
        (&["rq_issue"], 2, &["system:event", "block:block_rq_issue"]),
        (
            &["block:block_rq_issue", "secto == 1"],
            1,
            &[
                "Field not found",
                "Command: secto == 1",
                "^",
                "tpoint -v block:block_rq_issue",
            ],
        ),
        (
            &["-p", "4999999", "block:block_rq_issue"],
            1,
            &["no process with PID 4999999"],
        ),
        (
            &["-L", "4999999", "block:block_rq_issue"],
            1,
            &["no thread with TID 4999999"],
        ),
        (
            &["-d", "1", "-v", "block:block_rq_issue"],
            2,
            &["cannot be used with"],
        ),
        (&["../../x:y"], 2, &["system:event"]),
    ] {
        let (code, out, err, pid) = testkit::run_pid(BIN, args);
        assert!(!instance_of("tpoint", pid), "{args:?} left an instance");
        assert_eq!(code, code_want, "{args:?}: {out}{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: no {n:?} in {err}");
        }
        assert!(out.is_empty(), "{args:?}: {out}");
    }
}

#[test]
fn view_and_list_read_the_kernels_files() {
    if !live_or_skip("view_and_list_read_the_kernels_files") {
        return;
    }
    let (code, out, err) = testkit::run(BIN, &["-v", "block:block_rq_issue"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        std::fs::read_to_string(format!(
            "{}/events/block/block_rq_issue/format",
            testkit::TRACEFS
        ))
        .unwrap()
    );
    let (code, out, err) = testkit::run(BIN, &["-l"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"block:block_rq_issue"));
    assert!(lines.contains(&"sched:sched_switch"));
    assert!(lines.iter().all(|l| l.split(':').count() == 2), "{out}");
}

#[test]
fn headers_and_stacks() {
    if !live_or_skip("tpoint_headers_and_stacks") {
        return;
    }
    let lo = LoopDev::new(16);
    let filter = format!("dev == {}", kdev(&lo));
    let mut r = start(&["-H", "-s", "block:block_rq_issue", &filter]);
    r.wait_for("TASK-PID", T);
    dd_direct(&lo.path, false, 0, 4096, 1);
    r.collect_until(Duration::from_secs(3), |s| {
        s.iter().any(|l| l.starts_with(" => "))
    });
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(
        r.seen.iter().any(|l| l.starts_with("# tracer: nop")),
        "{:?}",
        r.seen
    );
    let at = r
        .seen
        .iter()
        .position(|l| l.contains("block_rq_issue:"))
        .unwrap();
    assert!(r.seen[at + 1].ends_with(": <stack trace>"), "{:?}", r.seen);
    assert!(r.seen[at + 2].starts_with(" => "), "{:?}", r.seen);
    assert!(
        r.seen.iter().any(|l| l == " => blk_mq_start_request"),
        "{:?}",
        r.seen
    );
}

#[test]
fn duration_mode_prints_at_the_end_and_an_empty_run_says_why() {
    if !live_or_skip("tpoint_duration_mode_prints_at_the_end_and_an_empty_run_says_why") {
        return;
    }
    let lo = LoopDev::new(16);
    let filter = format!("dev == {}", kdev(&lo));
    let (code, out, err) = testkit::run(BIN, &["-d", "0.3", "block:block_rq_issue", &filter]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Tracing block:block_rq_issue for 0.3 seconds (buffered)...\n\nEnding tracing...\n"
    );
    assert!(
        err.contains("tpoint: 0 lines") && err.contains(&format!("(filter '{filter}')")),
        "{err}"
    );
}

#[test]
fn check_reports_and_leaves_nothing() {
    if !live_or_skip("tpoint_check_reports_and_leaves_nothing") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tpoint: can run"), "{out}");
    assert!(!instance_of("tpoint", pid));
}
