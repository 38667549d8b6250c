//! Live tests: opensnoop against this machine's kernel. On a kernel without kprobes or
//! event probes (CI's) this exercises the tracepoint-only fallback, where the paths of
//! successful opens are resolved from /proc/PID/fd. They need root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::fd::AsRawFd;
use std::time::Duration;
use testkit::{instance_of, libc, live_or_skip, spawn, Running};

const BIN: &str = env!("CARGO_BIN_EXE_opensnoop");
const T: Duration = Duration::from_secs(10);
const MISSING: &str = "/nonexistent-ptrs-opensnoop-test";

/// What this thread opened: (tid, comm, fd of /etc/hostname).
struct Opened {
    tid: u32,
    comm: String,
    fd: i32,
}

/// This thread's id and name, read before tracing starts: reading them opens a file, and
/// in the /proc fallback that file's fd could be reused by another test thread (threads
/// share one fd table) before opensnoop resolves it.
fn whoami() -> (u32, String) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .unwrap()
        .trim()
        .to_string();
    (tid, comm)
}

/// Opens /etc/hostname (kept open for 3 seconds, so that its path can be resolved) and
/// MISSING from this thread, after `delay`.
fn open_known(me: (u32, String), delay: Duration) -> Opened {
    std::thread::sleep(delay);
    let (tid, comm) = me;
    let f = std::fs::File::open("/etc/hostname").unwrap();
    assert!(std::fs::File::open(MISSING).is_err());
    // Keep it open long enough for opensnoop to resolve /proc/TID/fd/N even when a busy
    // CI machine delays its reads (the fallback can only resolve fds still open).
    std::thread::sleep(Duration::from_secs(3));
    let fd = f.as_raw_fd();
    drop(f);
    Opened { tid, comm, fd }
}

fn cols(l: &str) -> Vec<&str> {
    l.split_whitespace().collect()
}

fn rows_of(r: &Running, tid: u32) -> Vec<Vec<String>> {
    r.seen
        .iter()
        .map(|l| cols(l))
        .filter(|c| c.len() >= 4 && c[1] == tid.to_string())
        .map(|c| c.into_iter().map(String::from).collect())
        .collect()
}

/// Runs opensnoop with `args` (plus `-p <this process>` if `pid_arg`) around the opens.
fn trace(args: &[&str], pid_arg: bool) -> (Running, Opened) {
    let me = std::process::id().to_string();
    let mut a: Vec<&str> = args.to_vec();
    if pid_arg {
        a.extend(["-p", &me]);
    }
    let who = whoami();
    let mut r = spawn(BIN, &a);
    r.wait_for("FILE", T);
    let o = open_known(who, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(r.seen.last().map(String::as_str), Some("Ending tracing..."));
    assert!(
        !instance_of("opensnoop", r.child.id()),
        "instance left behind"
    );
    (r, o)
}

#[test]
fn reports_successful_and_failed_opens() {
    if !live_or_skip("reports_successful_and_failed_opens") {
        return;
    }
    let (r, o) = trace(&[], false);
    assert_eq!(r.seen[0], "Tracing open()s. Ctrl-C to end.");
    assert_eq!(r.seen[1], "COMM             PID      FD FILE");
    let rows = rows_of(&r, o.tid);
    let fd = format!("0x{:x}", o.fd);
    assert!(
        rows.iter().any(|c| c[0] == o.comm
            && c[2] == fd
            && c[3..].join(" ") == "/etc/hostname [via /proc]"),
        "no row '{} {} {fd} /etc/hostname': {rows:?}",
        o.comm,
        o.tid
    );
    assert!(
        rows.iter()
            .any(|c| c[0] == o.comm && c[2] == "-1" && c[3] == "[unknown]"),
        "{rows:?}"
    );
}

#[test]
fn failed_only_for_one_process_with_errno_names() {
    if !live_or_skip("failed_only_for_one_process_with_errno_names") {
        return;
    }
    let (r, o) = trace(&["-x", "--errno"], true);
    assert!(r.seen[0].starts_with("Tracing open()s issued by PID "));
    let me = std::process::id();
    let rows: Vec<_> = r.seen[2..].iter().filter(|l| cols(l).len() >= 4).collect();
    for l in &rows {
        let c = cols(l);
        let tid: u32 = c[1].parse().unwrap();
        // -p: only threads of this test process (exited ones cannot be checked).
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{tid}/status")) {
            assert!(st.contains(&format!("\nTgid:\t{me}\n")), "-p: {l}");
        }
        assert!(c[2].starts_with('E'), "-x --errno: {l}");
    }
    let mine = rows_of(&r, o.tid);
    assert!(mine.iter().any(|c| c[2] == "ENOENT"), "{:?}", r.seen);
}

#[test]
fn filename_regex_filters() {
    if !live_or_skip("filename_regex_filters") {
        return;
    }
    let (r, o) = trace(&["host.ame$"], true);
    let rows = rows_of(&r, o.tid);
    assert_eq!(rows.len(), 1, "{:?}", r.seen);
    assert_eq!(rows[0][3], "/etc/hostname");
    assert!(r.seen[2..]
        .iter()
        .filter(|l| cols(l).len() >= 4)
        .all(|l| l.contains("/etc/hostname")));
}

#[test]
fn unknown_process_is_a_runtime_error_and_conflicts_are_usage_errors() {
    if !live_or_skip("unknown_process_is_a_runtime_error") {
        return;
    }
    let (code, _, err) = testkit::run(BIN, &["-p", "999999999"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = testkit::run(BIN, &["-p", "1", "-L", "1"]);
    assert_eq!(code, 2);
}
