//! Live test: reset-ftrace against a dirty top level staged here (an event enabled, an
//! event filter and trigger, tracing_thresh, buffer_size_kb, a stale `instances/iosnoop-<dead pid>`
//! and a stale uprobe group `ptrs_<dead pid>`): everything is put back and each change is
//! listed; with a live run's instance present it refuses without -f and leaves that
//! instance alone with -f. The staged state is restored by a guard on every path, and
//! the test holds the cross-process tracefs lock of the suite's tests. Needs root.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use testkit::{live_or_skip, run, TRACEFS};

const BIN: &str = env!("CARGO_BIN_EXE_reset-ftrace");

fn t(rel: &str) -> PathBuf {
    Path::new(TRACEFS).join(rel)
}

fn read(rel: &str) -> String {
    fs::read_to_string(t(rel))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn append(rel: &str, line: &str) -> std::io::Result<()> {
    fs::OpenOptions::new()
        .append(true)
        .open(t(rel))?
        .write_all(format!("{line}\n").as_bytes())
}

/// A pid that no process has (a child that has exited and been reaped).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

const EVENT: &str = "events/syscalls/sys_enter_getppid/enable";
const FILTER: &str = "events/syscalls/sys_enter_getpid/filter";
const TRIGGER: &str = "events/syscalls/sys_enter_getpid/trigger";

/// Everything the test staged, put back on drop (also when an assertion fails).
struct Staged {
    thresh: Option<String>,
    buffer_kb: String,
    stale_instance: String,
    probe: String,
    live_child: Option<Child>,
    live_instance: Option<String>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::write(t(EVENT), "0");
        let _ = fs::write(t(FILTER), "0");
        let _ = fs::write(t(TRIGGER), "!traceon");
        if let Some(v) = &self.thresh {
            let _ = fs::write(t("tracing_thresh"), v);
        }
        if !self.buffer_kb.contains("expanded") && read("buffer_size_kb") != self.buffer_kb {
            let _ = fs::write(t("buffer_size_kb"), &self.buffer_kb);
        }
        let _ = fs::remove_dir(t(&self.stale_instance));
        let _ = append("uprobe_events", &format!("-:{}", self.probe));
        if let Some(i) = &self.live_instance {
            let _ = fs::remove_dir(t(i));
        }
        if let Some(c) = self.live_child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_staged_dirty_top_level_is_reset_and_each_change_listed() {
    if !live_or_skip("a_staged_dirty_top_level_is_reset_and_each_change_listed") {
        return;
    }
    let _lock = testkit::tracefs_lock();
    let dead = dead_pid();
    let mut s = Staged {
        thresh: t("tracing_thresh").exists().then(|| read("tracing_thresh")),
        buffer_kb: read("buffer_size_kb"),
        stale_instance: format!("instances/iosnoop-{dead}"),
        probe: format!("ptrs_{dead}/reset_test"),
        live_child: None,
        live_instance: None,
    };
    // The staged state.
    fs::write(t(EVENT), "1").unwrap();
    fs::write(t(FILTER), "common_pid == 1").unwrap();
    // A harmless trigger (tracing is on anyway).
    fs::write(t(TRIGGER), "traceon").unwrap();
    if s.thresh.is_some() {
        fs::write(t("tracing_thresh"), "100").unwrap();
    }
    fs::write(t("buffer_size_kb"), "1500").unwrap();
    let staged_kb = read("buffer_size_kb");
    fs::create_dir(t(&s.stale_instance)).unwrap();
    append("uprobe_events", &format!("p:{} /bin/true:0x1000", s.probe)).unwrap();

    // A live run's instance (a process of ours, named like iosnoop's): refused without
    // -f, and nothing is changed.
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let live_pid = child.id();
    let live = format!("instances/iosnoop-{live_pid}");
    s.live_child = Some(child);
    fs::create_dir(t(&live)).unwrap();
    s.live_instance = Some(live.clone());
    let (code, out, err) = run(BIN, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("{live} of live PID")) && err.contains("-f"),
        "{err}"
    );
    assert_eq!(read(EVENT), "1");
    assert!(t(&s.stale_instance).is_dir());

    // With -f (other runs on this machine may be live too): everything staged is back,
    // each change listed; the live instance stays.
    let (code, out, err) = run(BIN, &["-f"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    let has = |want: &str| lines.contains(&want);
    assert!(lines.first() == Some(&"Resetting ftrace state..."), "{out}");
    assert!(lines.last() == Some(&"Done."), "{out}");
    assert!(
        has(&format!("left alone (-f): {live} of live PID {live_pid}")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("events/enable: enabled: ")
                && l.contains("syscalls:sys_enter_getppid")
                && l.ends_with(" -> 0 (all events off)")),
        "{out}"
    );
    assert!(has(&format!("{FILTER}: common_pid == 1 -> none")), "{out}");
    assert!(
        has(&format!("{TRIGGER}: traceon:unlimited -> (removed)")),
        "{out}"
    );
    assert!(
        !read(TRIGGER).lines().any(|l| !l.starts_with('#')),
        "{}",
        read(TRIGGER)
    );
    if s.thresh.is_some() {
        assert!(has("tracing_thresh: 100 -> 0"), "{out}");
        assert_eq!(read("tracing_thresh"), "0");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("buffer_size_kb: {staged_kb} -> "))),
        "{out}"
    );
    assert!(
        has(&format!("removed stale trace instance iosnoop-{dead}")),
        "{out}"
    );
    assert!(has(&format!("removed stale probe {}", s.probe)), "{out}");
    assert_eq!(read(EVENT), "0");
    assert_eq!(read(FILTER), "none");
    assert_ne!(read("buffer_size_kb"), staged_kb);
    assert!(!t(&s.stale_instance).exists());
    assert!(!read("uprobe_events").contains(&s.probe));
    assert!(t(&live).is_dir(), "a live run's instance was removed");

    // -q: nothing printed; run again with nothing of ours left to reset.
    let (code, out, err) = run(BIN, &["-f", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "");
    drop(s);
}

#[test]
fn check_and_usage() {
    if !live_or_skip("check_and_usage") {
        return;
    }
    let (code, out, err) = run(BIN, &["--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("in use"), "{out}");
    let (code, _, err) = run(BIN, &["-x"]);
    assert_eq!(code, 2, "{err}");
}
