//! Live tests: execsnoop against this machine's kernel, with known execs of the test's
//! own (unique arguments, this process as their parent). On a kernel without event
//! probes or kprobes (CI's) the arguments come from /proc/PID/cmdline right after the
//! exec: a process that stays alive shows its exact arguments, one that exited first
//! shows its file name and `[exited]`, never other arguments. They need root and tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::{instance_of, libc, live_or_skip, probes_of, spawn, Running};

const BIN: &str = env!("CARGO_BIN_EXE_execsnoop");
const T: Duration = Duration::from_secs(10);

/// A unique token for this test's execs.
fn token(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("ptrs-execsnoop-{what}-{}-{nanos}", std::process::id())
}

/// `/bin/sh -c 'read x' TOKEN "two words"`: alive until its stdin closes.
fn waiting_shell(tok: &str) -> Child {
    Command::new("/bin/sh")
        .args(["-c", "read x", tok, "two words"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap()
}

fn end(mut c: Child) {
    let _ = c.stdin.take().unwrap().write_all(b"\n");
    c.wait().unwrap();
}

/// Runs execsnoop with `args` while `work` runs (after the header; it may wait for rows),
/// then ends it with SIGINT and checks that it cleaned up. Returns the run and its stderr.
fn trace(args: &[&str], header: &str, work: impl FnOnce(&mut Running)) -> (Running, String) {
    let mut r = spawn(BIN, args);
    r.wait_for(header, T);
    work(&mut r);
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(r.seen.last().map(String::as_str), Some("Ending tracing..."));
    let pid = r.child.id();
    assert!(!instance_of("execsnoop", pid), "instance left behind");
    assert!(probes_of(pid).is_empty(), "probes left behind");
    (r, err)
}

/// Waits (up to T) for a row of `pid` (PID first, or after the -t time): a waiting shell
/// is ended only then, so its arguments are read while it lives however late the tool
/// reads the event on a loaded machine.
fn until_row(r: &mut Running, pid: u32) {
    let pid = pid.to_string();
    r.collect_until(T, |seen| {
        seen.iter()
            .any(|l| l.split_whitespace().take(2).any(|f| f == pid))
    });
}

/// The row of `pid`: (PPID, ARGS).
fn row_of(r: &Running, pid: u32) -> Option<(String, String)> {
    r.seen.iter().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() >= 3 && cols[0] == pid.to_string() {
            let args = l.trim_start()[cols[0].len()..].trim_start()[cols[1].len()..]
                .trim_start()
                .to_string();
            Some((cols[1].to_string(), args))
        } else {
            None
        }
    })
}

#[test]
fn shows_a_known_exec_with_its_exact_arguments_and_parent() {
    if !live_or_skip("shows_a_known_exec_with_its_exact_arguments_and_parent") {
        return;
    }
    let tok = token("known");
    let mut pids = (0, 0);
    let (r, _) = trace(&[], "ARGS", |r| {
        let c = waiting_shell(&tok);
        pids.0 = c.id();
        until_row(r, pids.0);
        end(c);
        // Exits at once: exact arguments, or (read from /proc too late) [exited].
        let mut t = Command::new("/bin/true").arg(&tok).spawn().unwrap();
        pids.1 = t.id();
        t.wait().unwrap();
    });
    assert_eq!(r.seen[0], "Tracing exec()s. Ctrl-C to end.");
    assert!(r.seen[1].starts_with("Instrumenting "), "{:?}", r.seen);
    assert_eq!(r.seen[2], "   PID   PPID ARGS");
    let me = std::process::id().to_string();
    let (ppid, args) = row_of(&r, pids.0).unwrap_or_else(|| panic!("no row: {:?}", r.seen));
    assert_eq!(ppid, me);
    assert_eq!(args, format!("/bin/sh -c read x {tok} two words"));
    let (ppid, args) = row_of(&r, pids.1).unwrap_or_else(|| panic!("no row: {:?}", r.seen));
    assert_eq!(ppid, me);
    assert!(
        args == format!("/bin/true {tok}") || args == "/bin/true [exited]",
        "{args}"
    );
}

#[test]
fn a_name_regex_shows_only_matching_processes() {
    if !live_or_skip("a_name_regex_shows_only_matching_processes") {
        return;
    }
    let tok = token("name");
    let mut pids = (0, 0);
    let (r, _) = trace(&["^tru"], "ARGS", |_r| {
        let c = waiting_shell(&tok);
        pids.0 = c.id();
        let mut t = Command::new("/bin/true").arg(&tok).spawn().unwrap();
        pids.1 = t.id();
        t.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        end(c);
    });
    assert_eq!(
        r.seen[0],
        "Tracing exec()s issued by process name \"^tru\". Ctrl-C to end."
    );
    assert!(row_of(&r, pids.0).is_none(), "{:?}", r.seen);
    assert!(row_of(&r, pids.1).is_some(), "{:?}", r.seen);
    // Every row is a "true".
    for l in &r.seen[3..r.seen.len() - 2] {
        assert!(l.contains("true"), "{l}");
    }
}

#[test]
fn a_truncates_the_arguments_and_marks_it_and_t_adds_the_time() {
    if !live_or_skip("a_truncates_the_arguments_and_marks_it_and_t_adds_the_time") {
        return;
    }
    let tok = token("argc");
    let mut pid = 0;
    let (r, _) = trace(&["-t", "-a", "2"], "ARGS", |r| {
        let c = waiting_shell(&tok);
        pid = c.id();
        until_row(r, pid);
        end(c);
    });
    assert_eq!(r.seen[2], "TIMEs               PID   PPID ARGS");
    let l = r
        .seen
        .iter()
        .find(|l| l.split_whitespace().nth(1) == Some(&pid.to_string()))
        .unwrap_or_else(|| panic!("{:?}", r.seen));
    let cols: Vec<&str> = l.split_whitespace().collect();
    let t: f64 = cols[0].parse().unwrap();
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(t > 0.0 && t <= up && up - t < 30.0, "{t} vs uptime {up}");
    assert_eq!(cols[0].split('.').nth(1).map(str::len), Some(6), "{l}");
    assert_eq!(cols[2], std::process::id().to_string());
    assert!(l.ends_with(" /bin/sh -c read x [...]"), "{l}");
}

#[test]
fn verbose_says_the_source_and_marks_each_row() {
    if !live_or_skip("verbose_says_the_source_and_marks_each_row") {
        return;
    }
    let tok = token("verbose");
    let mut pid = 0;
    let (r, err) = trace(&["-v"], "ARGS", |r| {
        let c = waiting_shell(&tok);
        pid = c.id();
        until_row(r, pid);
        end(c);
    });
    assert!(err.contains("execsnoop: arguments from "), "{err}");
    assert_eq!(r.seen[2], "   PID   PPID SRC    ARGS");
    let (code, out, _) = testkit::run(BIN, &["--check"]);
    assert_eq!(code, 0);
    let src = out
        .lines()
        .find(|l| l.trim_start().starts_with("source ") && !l.contains(" no "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let (_, args) = row_of(&r, pid).unwrap();
    assert_eq!(args, format!("{src:<6} /bin/sh -c read x {tok} two words"));
}

#[test]
fn arguments_cannot_forge_rows() {
    if !live_or_skip("arguments_cannot_forge_rows") {
        return;
    }
    let mut pid = 0;
    let (r, _) = trace(&[], "ARGS", |r| {
        let c = Command::new("/bin/sh")
            .args(["-c", "read x", "x\n 1 1 forged\x1b[2J"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        pid = c.id();
        until_row(r, pid);
        end(c);
    });
    let (_, args) = row_of(&r, pid).unwrap();
    assert_eq!(args, "/bin/sh -c read x x\\n 1 1 forged\\e[2J");
    assert!(!r.seen.iter().any(|l| l.starts_with(" 1 1 forged")));
}

#[test]
fn an_empty_run_says_why() {
    if !live_or_skip("an_empty_run_says_why") {
        return;
    }
    let (code, out, err) = testkit::run(BIN, &["-d", "0.5", "no-such-process-name-xyz"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("for 0.5 seconds (buffered)..."), "{out}");
    assert!(
        err.contains("execsnoop: 0 rows:")
            && err.contains("(filter name no-such-process-name-xyz)"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for a in [&["-a", "17"][..], &["-d", "x"], &["a", "b"], &["("]] {
        let (code, _, err) = testkit::run(BIN, a);
        assert_eq!(code, 2, "{a:?}: {err}");
    }
}

#[test]
fn the_parent_is_known_from_the_events_even_when_it_exited_at_once() {
    if !live_or_skip("the_parent_is_known_from_the_events_even_when_it_exited_at_once") {
        return;
    }
    let tok = token("orphan");
    let mut parent = String::new();
    let (r, _) = trace(&[], "ARGS", |_r| {
        // P (sh -c '... &') starts C in the background and exits at once; the outer
        // shell prints P's pid.
        let o = Command::new("/bin/sh")
            .args([
                "-c",
                &format!("/bin/sh -c '/bin/sh -c \"sleep 0.5; true\" {tok} &' & echo $!"),
            ])
            .output()
            .unwrap();
        parent = String::from_utf8(o.stdout).unwrap().trim().to_string();
        std::thread::sleep(Duration::from_millis(800));
    });
    let row = r
        .seen
        .iter()
        .find(|l| l.ends_with(&format!("sleep 0.5; true {tok}")))
        .unwrap_or_else(|| panic!("no row of the child: {:?}", r.seen));
    assert_eq!(
        row.split_whitespace().nth(1),
        Some(parent.as_str()),
        "{row}"
    );
}
