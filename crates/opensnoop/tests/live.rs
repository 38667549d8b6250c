//! Live tests: opensnoop against this machine's kernel. On a kernel without kprobes or
//! event probes but with uprobes (CI's) names come from uprobes on the C library's open
//! functions, and opens that bypass it are resolved from /proc/PID/fd as in the
//! tracepoint-only fallback. They need root and tracefs.
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
    let (r, o, _) = trace_err(args, pid_arg);
    (r, o)
}

/// [`trace`], also returning opensnoop's stderr.
fn trace_err(args: &[&str], pid_arg: bool) -> (Running, Opened, String) {
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
    (r, o, err)
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
    // FILE is the path alone (one token here), so `awk '{print $NF}'` prints it.
    assert!(
        rows.iter()
            .any(|c| c[0] == o.comm && c[2] == fd && c.len() == 4 && c[3] == "/etc/hostname"),
        "no row '{} {} {fd} /etc/hostname': {rows:?}",
        o.comm,
        o.tid
    );
    // A failed open's name is known unless the source is the /proc fallback.
    let failed = if source_in_use() == "proc" {
        "[unknown]"
    } else {
        MISSING
    };
    assert!(
        rows.iter()
            .any(|c| c[0] == o.comm && c[2] == "-1" && c.len() == 4 && c[3] == failed),
        "{rows:?}"
    );
}

/// The SRC tag of the source `opensnoop --check` says it would use.
fn source_in_use() -> String {
    let (code, out, err) = testkit::run(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("source ") && !l.contains(" no "))
        .unwrap_or_else(|| panic!("no source in use: {out}"));
    cols(line)[1].to_string()
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

#[test]
fn v_adds_a_src_column_before_file() {
    if !live_or_skip("v_adds_a_src_column_before_file") {
        return;
    }
    let (r, o) = trace(&["-v"], true);
    assert_eq!(r.seen[1], "COMM             PID      FD SRC     FILE");
    let rows = rows_of(&r, o.tid);
    let fd = format!("0x{:x}", o.fd);
    // On this machine's kernel (no kprobes) names come from /proc; with probes from them.
    assert!(
        rows.iter().any(|c| c.len() == 5
            && c[2] == fd
            && ["proc", "eprobe", "kprobe", "getname", "uprobe"].contains(&c[3].as_str())
            && c[4] == "/etc/hostname"),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|c| c.len() == 5
            && c[2] == "-1"
            && ((c[3] == "failed" && c[4] == "[unknown]") || c[4] == MISSING)),
        "{rows:?}"
    );
}

#[test]
fn nonexistent_target_is_an_error_before_any_kernel_state() {
    if !live_or_skip("nonexistent_target_is_an_error_before_any_kernel_state") {
        return;
    }
    for (opt, what) in [("-L", "no thread with TID"), ("-p", "no process with PID")] {
        let (code, out, err, pid) = testkit::run_pid(BIN, &[opt, "99999999"]);
        assert_eq!(code, 1, "{opt}: {err}");
        assert!(err.contains(&format!("{what} 99999999")), "{opt}: {err}");
        // Nothing was set up: no fallback notice, no banner, no instance.
        assert!(!err.contains("kprobe"), "{opt}: {err}");
        assert!(out.is_empty(), "{opt}: {out}");
        assert!(!instance_of("opensnoop", pid));
    }
}

/// A unique path of this test run.
fn unique_path(tag: &str) -> String {
    format!("/tmp/ptrs-opensnoop-{tag}-{}", std::process::id())
}

#[test]
fn two_opensnoops_do_not_trace_each_other() {
    if !live_or_skip("two_opensnoops_do_not_trace_each_other") {
        return;
    }
    let paths: Vec<String> = (0..5).map(|i| unique_path(&format!("two{i}"))).collect();
    for p in &paths {
        std::fs::write(p, "x").unwrap();
    }
    let (tid, _) = whoami();
    let mut a = spawn(BIN, &[]);
    a.wait_for("FILE", T);
    let mut b = spawn(BIN, &[]);
    b.wait_for("FILE", T);
    let (apid, bpid) = (a.child.id(), b.child.id());
    // The workload: open each path once, 0.5 s apart, and keep them open (the /proc
    // fallback reads paths from open fds) until both tools have stopped.
    let mut files = Vec::new();
    for p in &paths {
        files.push(std::fs::File::open(p).unwrap());
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_millis(500));
    a.signal(libc::SIGINT);
    b.signal(libc::SIGINT);
    let (ca, ea) = a.finish(T);
    let (cb, eb) = b.finish(T);
    drop(files);
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!((ca, cb), (0, 0), "stderr A: {ea}\nstderr B: {eb}");
    for (r, me, other) in [(&a, apid, bpid), (&b, bpid, apid)] {
        let rows: Vec<Vec<&str>> = r.seen[2..]
            .iter()
            .map(|l| cols(l))
            .filter(|c| c.len() >= 4)
            .collect();
        for c in &rows {
            let pid: u32 = c[1].parse().unwrap_or(0);
            assert!(
                pid != me && pid != other,
                "opensnoop {me} printed a row of opensnoop {}: {c:?}",
                if pid == me { me } else { other }
            );
        }
        // Each path of the workload exactly once, with the workload's thread.
        for (i, p) in paths.iter().enumerate() {
            let mine: Vec<_> = rows.iter().filter(|c| c[3..].join(" ") == *p).collect();
            assert_eq!(mine.len(), 1, "opensnoop {me}: {p}: {mine:?}");
            assert_eq!(mine[0][1], tid.to_string(), "{p}: {:?}", mine[0]);
            let _ = i;
        }
    }
}

#[test]
fn hostile_names_are_escaped() {
    if !live_or_skip("hostile_names_are_escaped") {
        return;
    }
    let file = format!("{}\nfake 1 3 etc-shadow\x1b[2J", unique_path("hostile"));
    std::fs::write(&file, "x").unwrap();
    let comm = "ev\nfake\x1b[2J";
    let mut r = spawn(BIN, &["-p", &std::process::id().to_string(), "hostile"]);
    r.wait_for("FILE", T);
    let f2 = file.clone();
    // A thread that renames itself after tracing began, then opens the file.
    let (tid, fd) = std::thread::spawn(move || {
        let name = std::ffi::CString::new(comm).unwrap();
        // SAFETY: PR_SET_NAME with a valid NUL-terminated string.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        let f = std::fs::File::open(&f2).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        (tid, f.as_raw_fd())
    })
    .join()
    .unwrap();
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 0, "{err}");
    let want = format!(
        "ev\\nfake\\e[2J    {tid:<6} {:>4} {}\\nfake 1 3 etc-shadow\\e[2J",
        format!("0x{fd:x}"),
        unique_path("hostile")
    );
    let rows: Vec<&String> = r.seen[2..]
        .iter()
        .filter(|l| !l.is_empty() && *l != "Ending tracing...")
        .collect();
    assert_eq!(rows, [&want], "stderr: {err}");
    assert!(r.seen.iter().all(|l| !l.contains('\x1b')));
}

#[test]
fn comm_follows_exec() {
    if !live_or_skip("comm_follows_exec") {
        return;
    }
    let (a, b) = (unique_path("exec-a"), unique_path("exec-b"));
    std::fs::write(&a, "x").unwrap();
    std::fs::write(&b, "x").unwrap();
    let mut r = spawn(
        BIN,
        &[&format!("ptrs-opensnoop-exec-[ab]-{}$", std::process::id())],
    );
    r.wait_for("FILE", T);
    // sh opens a, then becomes tail, which opens b (a stays open as fd 3).
    let mut sh = std::process::Command::new("sh")
        .args(["-c", &format!("exec 3<{a}; exec tail -f {b}")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = sh.id();
    std::thread::sleep(Duration::from_secs(2));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    let _ = sh.kill();
    let _ = sh.wait();
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = r.seen[2..]
        .iter()
        .map(|l| cols(l))
        .filter(|c| c.len() >= 4)
        .collect();
    let pid = pid.to_string();
    assert_eq!(
        rows,
        [
            vec!["sh", pid.as_str(), "0x3", a.as_str()],
            vec!["tail", pid.as_str(), "0x4", b.as_str()]
        ]
    );
}

/// Whether this kernel's opensnoop takes names from uprobes (else the test is skipped).
fn uprobe_source_or_skip(test: &str) -> bool {
    if !live_or_skip(test) {
        return false;
    }
    let s = source_in_use();
    if s != "uprobe" {
        eprintln!("{test}: skipped: opensnoop uses the {s} source here, not uprobes");
        return false;
    }
    true
}

/// Opens `path` with the raw openat syscall, bypassing the C library (as a statically
/// linked program or a direct syscall does): an fd or -errno.
fn raw_openat(path: &str) -> i64 {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: a valid NUL-terminated path; the fd returned (if any) is owned by the caller.
    let r = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c.as_ptr(), libc::O_RDONLY) };
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        r
    }
}

#[test]
fn uprobe_source_names_every_c_library_open_with_its_fd_or_errno() {
    if !uprobe_source_or_skip("uprobe_source_names_every_c_library_open_with_its_fd_or_errno") {
        return;
    }
    let dir = unique_path("uprobe");
    std::fs::create_dir_all(&dir).unwrap();
    let exists = format!("{dir}/exists");
    std::fs::write(&exists, "x").unwrap();
    let (missing, raw_missing, raw_exists) = (
        format!("{dir}/missing"),
        format!("{dir}/raw-missing"),
        format!("{dir}/raw-exists"),
    );
    std::fs::write(&raw_exists, "x").unwrap();
    let mut r = spawn(
        BIN,
        &["-v", "--errno", "-p", &std::process::id().to_string()],
    );
    r.wait_for("FILE", T);
    let tid = testkit::gettid();
    // Through the C library: open64 (std) and openat with a directory fd.
    let f1 = std::fs::File::open(&exists).unwrap();
    assert!(std::fs::File::open(&missing).is_err());
    let d = std::fs::File::open(&dir).unwrap();
    let rel = std::ffi::CString::new("exists").unwrap();
    // SAFETY: valid directory fd and NUL-terminated relative path.
    let f2 = unsafe {
        libc::openat(
            std::os::fd::AsRawFd::as_raw_fd(&d),
            rel.as_ptr(),
            libc::O_RDONLY,
        )
    };
    assert!(f2 >= 0);
    // Bypassing it: resolved from /proc while open, never given a wrong name.
    let raw_ok = raw_openat(&raw_exists);
    assert!(raw_ok >= 0);
    assert_eq!(raw_openat(&raw_missing), -i64::from(libc::ENOENT));
    std::thread::sleep(Duration::from_millis(1500));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    // SAFETY: closing fds this test opened.
    unsafe {
        libc::close(f2);
        libc::close(raw_ok as i32);
    }
    let fd1 = std::os::fd::AsRawFd::as_raw_fd(&f1);
    drop((f1, d));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<String>> = rows_of(&r, tid)
        .into_iter()
        .map(|c| c[2..].to_vec())
        .collect();
    let want: Vec<Vec<String>> = [
        (fd1.to_string(), "uprobe", exists.clone()),
        ("ENOENT".to_string(), "uprobe", missing.clone()),
        (f2.to_string(), "uprobe", "exists".to_string()),
        (raw_ok.to_string(), "proc", raw_exists.clone()),
        ("ENOENT".to_string(), "failed", "[unknown]".to_string()),
    ]
    .into_iter()
    .map(|(fd, src, f)| vec![fd, src.to_string(), f])
    .collect();
    // The directory itself is opened too (for openat).
    let rows: Vec<Vec<String>> = rows.into_iter().filter(|c| c[2] != dir).collect();
    assert_eq!(rows, want, "stderr: {err}\n{:?}", r.seen);
}

#[test]
fn check_says_what_it_would_use_and_leaves_nothing_behind() {
    if !live_or_skip("check_says_what_it_would_use_and_leaves_nothing_behind") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("opensnoop: can run"), "{out}");
    assert!(out.contains("syscall tracepoints  yes"), "{out}");
    // Exactly one source in use, and every better one has its reason.
    let used: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("source ") && !l.contains(" no "))
        .collect();
    assert_eq!(used.len(), 1, "{out}");
    assert!(used[0].contains("verified with its own opens"), "{out}");
    assert!(
        out.lines()
            .filter(|l| l.trim_start().starts_with("source ") && l.contains(" no "))
            .all(|l| l.contains("not used: ")),
        "{out}"
    );
    assert!(!instance_of("opensnoop", pid), "instance left behind");
    let left = testkit::probes_of(pid);
    assert!(left.is_empty(), "probes left behind: {left:?}");
    // It cannot be combined with a run.
    let (code, _, _) = testkit::run(BIN, &["--check", "-d", "1"]);
    assert_eq!(code, 2);
}

#[test]
fn the_sentinel_opens_never_appear_in_the_output() {
    if !live_or_skip("the_sentinel_opens_never_appear_in_the_output") {
        return;
    }
    for args in [
        &["-v", "--include-suite", "-d", "1"][..],
        &["-v", "--include-suite"],
    ] {
        let mut r = spawn(BIN, args);
        r.wait_for("FILE", T);
        let pid = r.child.id();
        std::thread::sleep(Duration::from_millis(500));
        r.signal(libc::SIGINT);
        let (code, err) = r.finish(T);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("(verified with its own opens)"), "{err}");
        for l in &r.seen {
            assert!(!l.contains(&format!("opensnoop-{pid}-")), "{args:?}: {l}");
            assert!(!l.contains("opensnoop-sentinel"), "{args:?}: {l}");
            assert_ne!(cols(l).get(1), Some(&pid.to_string().as_str()), "{l}");
        }
    }
}

#[test]
fn check_without_privilege_says_it_cannot_run_and_how_to_fix_it() {
    if !live_or_skip("check_without_privilege_says_it_cannot_run_and_how_to_fix_it") {
        return;
    }
    let (code, out, err) = testkit::run_as_nobody(BIN, &["--check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("opensnoop: cannot run\n"), "{out}");
    assert!(out.contains("  tracefs  no "), "{out}");
    assert!(out.contains("fix: run as root"), "{out}");
}

/// The end-of-run account line on stderr (`opensnoop: N rows...; N lost...`), if any.
fn account_lines(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.starts_with("opensnoop: ") && l.contains(" lost"))
        .collect()
}

#[test]
fn an_empty_run_names_the_filter_that_left_everything_out() {
    if !live_or_skip("an_empty_run_names_the_filter_that_left_everything_out") {
        return;
    }
    let mut r = spawn(BIN, &["-d", "1", "-n", "no-such-process-name"]);
    r.wait_for("FILE", T);
    // Opens that are traced for certain (this process is not one of the suite's).
    for _ in 0..3 {
        let _ = std::fs::File::open("/etc/hostname").unwrap();
    }
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.seen.last().map(String::as_str), Some("Ending tracing..."));
    let rows: Vec<&String> = r
        .seen
        .iter()
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Tracing ")
                && !l.contains("FILE")
                && *l != "Ending tracing..."
        })
        .collect();
    assert!(rows.is_empty(), "{rows:?}");
    let lines = account_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    let re = regex::Regex::new(
        r"^opensnoop: 0 rows: ([0-9,]+) traced, ([0-9,]+) left out by -n no-such-process-name(, [0-9,]+ opens by the suite's own tools hidden \(--include-suite shows them\))? \(filter -n no-such-process-name\); 0 lost$",
    )
    .unwrap();
    let c = re
        .captures(lines[0])
        .unwrap_or_else(|| panic!("{}", lines[0]));
    assert_eq!(&c[1], &c[2], "{}", lines[0]);
    let n: u64 = c[1].replace(',', "").parse().unwrap();
    assert!(n >= 3, "{}", lines[0]);
}

#[test]
fn a_run_that_printed_rows_and_left_nothing_out_prints_no_account() {
    if !live_or_skip("a_run_that_printed_rows_and_left_nothing_out_prints_no_account") {
        return;
    }
    let (r, o, err) = trace_err(&[], true);
    assert!(!rows_of(&r, o.tid).is_empty(), "{:?}", r.seen);
    assert!(account_lines(&err).is_empty(), "{err}");
}

#[test]
fn rows_left_out_by_x_are_counted_and_the_pid_filter_named() {
    if !live_or_skip("rows_left_out_by_x_are_counted_and_the_pid_filter_named") {
        return;
    }
    let me = std::process::id();
    let (r, o, err) = trace_err(&["-x"], true);
    assert!(!rows_of(&r, o.tid).is_empty(), "{:?}", r.seen);
    let lines = account_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    let re = regex::Regex::new(&format!(
        r"^opensnoop: ([0-9,]+) rows: ([0-9,]+) traced, ([0-9,]+) left out by -x \(filters -p {me} -x\); 0 lost; -p {me} filtered in the kernel, which does not count what it leaves out: run without it \(or with --check\) to see what it excludes$"
    ))
    .unwrap();
    let c = re
        .captures(lines[0])
        .unwrap_or_else(|| panic!("{}", lines[0]));
    let n = |i: usize| c[i].replace(',', "").parse::<u64>().unwrap();
    assert_eq!(n(1) + n(3), n(2), "{}", lines[0]);
    assert!(n(3) >= 1, "the open of /etc/hostname: {}", lines[0]);
}
