//! reset-ftrace: put the top-level ftrace state back to its defaults, and remove what
//! killed runs of this suite left behind.
//!
//! A port of perf-tools' `reset-ftrace` (`-f`, `-q`). The original refused while its
//! lock file said another ftrace tool might be running; this one looks: it refuses,
//! unless `-f`, while a live run of this suite has a trace instance or top-level
//! changes, or while probes that no run of this suite made (user-made kprobes or
//! uprobes) exist, since the reset would disturb them. Live instances of this suite and
//! the probes of live runs are never removed, not even with `-f`; trace instances that
//! are not named like this suite's are never touched. Every change is listed, as
//! `file: before -> after` (`-q`: nothing is printed).

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::fs;
use std::io::Write;
use std::path::Path;

use perf_tools_core::check::{Report, Status};
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::owner::{owner_pid, pid_alive};
use perf_tools_ftrace::probe::{group_owner_pid, parse_probe_line};
use perf_tools_ftrace::toplevel::STATE_DIR;
use perf_tools_ftrace::tracefs::{read_file, Tracefs};

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "reset-ftrace",
    version,
    about = "Put the top-level ftrace state back to its defaults, listing each change",
    long_about = None,
    after_help = "Examples:\n  reset-ftrace              # reset ftrace, unless something live uses it\n  reset-ftrace -f           # reset even while other tracing runs\n  reset-ftrace --check      # what would be reset, and what stops it\n\nSee the reset-ftrace(8) man page for more."
)]
pub struct Args {
    /// Force: reset even while live runs of this suite trace (their instances stay) and
    /// remove user-made kprobes and uprobes
    #[arg(short = 'f')]
    pub force: bool,
    /// Quiet: reset, but say nothing
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Say what would be reset and what would make reset-ftrace refuse without -f
    /// ("degraded"), change nothing, then exit: 0 if it can reset, 1 if not
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// Top-level options whose default the kernel fixes, and that value.
pub const OPTION_DEFAULTS: &[(&str, &str)] = &[
    ("print-parent", "1"),
    ("sym-offset", "0"),
    ("sym-addr", "0"),
    ("verbose", "0"),
    ("raw", "0"),
    ("hex", "0"),
    ("bin", "0"),
    ("block", "0"),
    ("fields", "0"),
    ("trace_printk", "1"),
    ("annotate", "1"),
    ("userstacktrace", "0"),
    ("sym-userobj", "0"),
    ("printk-msg-only", "0"),
    ("context-info", "1"),
    ("latency-format", "0"),
    ("record-cmd", "1"),
    ("record-tgid", "0"),
    ("overwrite", "1"),
    ("disable_on_free", "0"),
    ("irq-info", "1"),
    ("markers", "1"),
    ("event-fork", "0"),
    ("pause-on-trace", "0"),
    ("function-trace", "1"),
    ("function-fork", "0"),
    ("func_stack_trace", "0"),
    ("display-graph", "0"),
    ("stacktrace", "0"),
    ("funcgraph-abstime", "0"),
    ("funcgraph-proc", "0"),
    ("funcgraph-tail", "0"),
    ("funcgraph-duration", "1"),
    ("funcgraph-cpu", "1"),
    ("funcgraph-overhead", "1"),
];

/// Top-level lists cleared by the reset (ftrace function filters and pid lists).
pub const LISTS: &[&str] = &[
    "set_ftrace_filter",
    "set_ftrace_notrace",
    "set_graph_function",
    "set_graph_notrace",
    "set_ftrace_pid",
    "set_ftrace_notrace_pid",
    "set_event_pid",
    "set_event_notrace_pid",
];

/// The kernel's default per-CPU buffer size in bytes (`TRACE_BUF_SIZE_DEFAULT`), unless
/// the kernel command line sets `trace_buf_size=`.
const DEFAULT_BUF_BYTES: u64 = 1_441_792;

/// One change to make: write `value` to `rel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The file, relative to the tracefs root.
    pub rel: String,
    /// What it reads now (shown in the listing).
    pub before: String,
    /// What is written.
    pub value: String,
    /// What the listing shows as the new value.
    pub after: String,
}

/// What the reset would do, and what makes it refuse without `-f`.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Writes, in order.
    pub changes: Vec<Change>,
    /// User-made probes (`group/event` and the control file listing them), removed
    /// with `-f`.
    pub user_probes: Vec<(String, String)>,
    /// Live runs of this suite (descriptions), never disturbed.
    pub live: Vec<String>,
}

impl Plan {
    /// What stops the reset without `-f`, one description each.
    pub fn blockers(&self) -> Vec<String> {
        let mut b = self.live.clone();
        b.extend(
            self.user_probes
                .iter()
                .map(|(p, _)| format!("probe {p}, not made by a run of this suite")),
        );
        b
    }
}

/// The meaningful lines of a list file (no `#` comments, no "no pid").
fn list_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "no pid")
        .collect()
}

fn one_line(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        "(empty)".into()
    } else {
        t.lines().collect::<Vec<_>>().join(", ")
    }
}

/// The command that removes the trigger shown as `line` in a `trigger` file:
/// `hist:keys=pid:vals=hitcount:sort=hitcount:size=2048 [active]` ->
/// `!hist:keys=pid:vals=hitcount:sort=hitcount:size=2048`, `traceoff:unlimited` ->
/// `!traceoff`.
pub fn trigger_removal(line: &str) -> String {
    let mut t = line.trim();
    for suffix in [" [active]", " [paused]"] {
        t = t.strip_suffix(suffix).unwrap_or(t);
    }
    let t = t.strip_suffix(":unlimited").unwrap_or(t);
    // A filter after the trigger (" if ...") is not part of what identifies it.
    let t = t.split(" if ").next().unwrap_or(t).trim();
    format!("!{t}")
}

/// The buffer size (KiB, as `buffer_size_kb` shows it) the kernel starts with:
/// `bytes` in whole sub-buffers of `subbuf_kb` KiB less their 16-byte header.
pub fn default_buffer_kb(bytes: u64, subbuf_kb: u64) -> u64 {
    let data = subbuf_kb * 1024 - 16;
    bytes.div_ceil(data) * data / 1024
}

/// `trace_buf_size=` of the kernel command line, in bytes.
fn cmdline_buf_size(cmdline: &str) -> Option<u64> {
    let v = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("trace_buf_size="))?;
    let (num, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1024),
        b'm' | b'M' => (&v[..v.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// Surveys the top level of `tracefs` (and the state files in `state_dir`) and plans
/// the reset. Changes nothing.
pub fn plan(tracefs: &Tracefs, state_dir: &Path, cmdline: &str) -> Plan {
    let mut p = Plan::default();
    let me = std::process::id();
    let read = |rel: &str| read_file(&tracefs.path(rel)).ok();
    let mut set = |rel: &str, now: &str, value: &str, after: &str| {
        p.changes.push(Change {
            rel: rel.to_string(),
            before: now.to_string(),
            value: value.to_string(),
            after: after.to_string(),
        })
    };
    // The tracer.
    if let Some(t) = read("current_tracer") {
        if t.trim() != "nop" {
            set("current_tracer", t.trim(), "nop", "nop");
        }
    }
    for rel in LISTS {
        if let Some(t) = read(rel) {
            let lines = list_lines(&t);
            if !lines.is_empty() {
                set(rel, &lines.join(", "), "", "(empty)");
            }
        }
    }
    // Events enabled at the top level.
    if let Some(t) = read("set_event") {
        let lines = list_lines(&t);
        if !lines.is_empty() {
            set(
                "events/enable",
                &format!("enabled: {}", lines.join(", ")),
                "0",
                "0",
            );
        }
    }
    // Event filters of the top level.
    if let Ok(systems) = fs::read_dir(tracefs.path("events")) {
        let mut filters = Vec::new();
        let mut triggers = Vec::new();
        for s in systems.flatten().filter(|e| e.path().is_dir()) {
            let Ok(events) = fs::read_dir(s.path()) else {
                continue;
            };
            for e in events.flatten() {
                let tr = e.path().join("trigger");
                if let Ok(text) = read_file(&tr) {
                    let rel = tr
                        .strip_prefix(tracefs.root())
                        .map(|r| r.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    for l in list_lines(&text) {
                        triggers.push((rel.clone(), l.to_string()));
                    }
                }
                let f = e.path().join("filter");
                if let Ok(text) = read_file(&f) {
                    let t = text.trim();
                    if !t.is_empty() && t != "none" {
                        let rel = f
                            .strip_prefix(tracefs.root())
                            .map(|r| r.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        filters.push((rel, t.to_string()));
                    }
                }
            }
        }
        filters.sort();
        for (rel, t) in filters {
            set(&rel, &t, "0", "none");
        }
        triggers.sort();
        for (rel, t) in triggers {
            set(&rel, &t, &trigger_removal(&t), "(removed)");
        }
    }
    if let Some(t) = read("tracing_thresh") {
        if t.trim() != "0" {
            set("tracing_thresh", t.trim(), "0", "0");
        }
    }
    for (o, d) in OPTION_DEFAULTS {
        let rel = format!("options/{o}");
        if let Some(t) = read(&rel) {
            if t.trim() != *d {
                set(&rel, t.trim(), d, d);
            }
        }
    }
    if let Some(t) = read("trace_clock") {
        if !t.contains("[local]") && t.contains("local") {
            let cur = t
                .split_whitespace()
                .find(|w| w.starts_with('['))
                .unwrap_or("")
                .trim_matches(['[', ']']);
            set("trace_clock", cur, "local", "local");
        }
    }
    // The buffer: page-sized sub-buffers, the boot-time size.
    // SAFETY: sysconf has no side effects.
    let page_kb = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) / 1024) as u64;
    if let Some(t) = read("buffer_subbuf_size_kb") {
        if t.trim() != page_kb.to_string() {
            set(
                "buffer_subbuf_size_kb",
                t.trim(),
                &page_kb.to_string(),
                &page_kb.to_string(),
            );
        }
    }
    if let Some(t) = read("buffer_size_kb") {
        let t = t.trim();
        // "7 (expanded: 1408)": never used since boot, at its default.
        if !t.contains("expanded") {
            let bytes = cmdline_buf_size(cmdline).unwrap_or(DEFAULT_BUF_BYTES);
            let kb = default_buffer_kb(bytes, page_kb);
            if t != kb.to_string() {
                set(
                    "buffer_size_kb",
                    t,
                    &bytes.div_ceil(1024).to_string(),
                    &kb.to_string(),
                );
            }
        }
    }
    if let Some(t) = read("tracing_on") {
        if t.trim() != "1" {
            set("tracing_on", t.trim(), "1", "1");
        }
    }
    // What must not be disturbed: live runs of the suite (their instances, their
    // top-level changes), and probes no run of the suite made.
    if let Ok(entries) = fs::read_dir(tracefs.path("instances")) {
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for n in names {
            if let Some(pid) = owner_pid(&n) {
                if pid != me && pid_alive(pid) {
                    p.live.push(format!("instances/{n} of live PID {pid}"));
                }
            }
        }
    }
    if let Ok(entries) = fs::read_dir(state_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_suffix(".state").and_then(owner_pid) {
                if pid != me && pid_alive(pid) {
                    p.live.push(format!(
                        "top-level settings changed by live PID {pid} ({})",
                        e.path().display()
                    ));
                }
            }
        }
    }
    let mut seen = Vec::new();
    for control in ["dynamic_events", "kprobe_events", "uprobe_events"] {
        let Some(text) = read(control) else { continue };
        for line in text.lines() {
            let Some((group, event)) = parse_probe_line(line) else {
                continue;
            };
            let name = format!("{group}/{event}");
            if seen.contains(&name) || group_owner_pid(group).is_some() {
                // The suite's: a dead run's goes with the stale state, a live run's
                // stays with its run.
                continue;
            }
            seen.push(name.clone());
            p.user_probes.push((name, control.to_string()));
        }
    }
    p
}

/// Does the reset; returns the lines of the listing, and the failures.
fn apply(tracefs: &Tracefs, plan: &Plan, force: bool) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for r in cleanup::remove_stale(tracefs) {
        done.push(format!("removed {r}"));
    }
    for c in &plan.changes {
        let path = tracefs.path(&c.rel);
        // O_TRUNC clears a list; an empty write is all it takes.
        match fs::write(&path, &c.value) {
            Ok(()) => {
                let now = read_file(&path)
                    .map(|t| {
                        let l = list_lines(&t);
                        if LISTS.contains(&c.rel.as_str()) {
                            if l.is_empty() {
                                "(empty)".to_string()
                            } else {
                                l.join(", ")
                            }
                        } else {
                            one_line(&t)
                        }
                    })
                    .unwrap_or_else(|_| c.after.clone());
                let now = if c.rel.ends_with("/trigger") {
                    "(removed)".to_string()
                } else if c.rel == "events/enable" {
                    "0 (all events off)".to_string()
                } else if c.rel == "trace_clock" {
                    "local".to_string()
                } else {
                    now
                };
                done.push(format!("{}: {} -> {}", c.rel, c.before, now));
            }
            Err(e) => failed.push(format!("writing '{}' to {}: {e}", c.value, path.display())),
        }
    }
    if force {
        for (name, control) in &plan.user_probes {
            let path = tracefs.path(control);
            let cmd = format!("-:{name}\n");
            let r = fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(cmd.as_bytes()));
            match r {
                Ok(()) => done.push(format!("removed probe {name} ({control})")),
                Err(e) => failed.push(format!(
                    "removing probe {name}: {e} (still enabled in some trace instance? disable it there, then: echo '-:{name}' >> {})",
                    path.display()
                )),
            }
        }
    }
    (done, failed)
}

/// What failed when the list of changes cannot be written.
const STDOUT: &str = "writing to standard output";

/// Runs reset-ftrace.
pub fn run(args: Args) -> Result<()> {
    if args.check {
        return check()?.print_check();
    }
    let tracefs = Tracefs::open()?;
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let plan = plan(&tracefs, Path::new(STATE_DIR), &cmdline);
    let blockers = plan.blockers();
    if !blockers.is_empty() && !args.force {
        bail!(
            "not resetting: it would disturb what is not stale:\n  {}\nrerun with -f to reset anyway (live runs of perf-tools-rs keep their instances and probes{})",
            blockers.join("\n  "),
            if plan.user_probes.is_empty() {
                ""
            } else {
                "; the probes above not made by this suite are removed"
            }
        );
    }
    let mut out = std::io::stdout().lock();
    if !args.quiet {
        writeln!(out, "Resetting ftrace state...").context(STDOUT)?;
        if args.force {
            for b in &plan.live {
                writeln!(out, "left alone (-f): {b}").context(STDOUT)?;
            }
        }
    }
    let (done, failed) = apply(&tracefs, &plan, args.force);
    if !args.quiet {
        for d in &done {
            writeln!(out, "{d}").context(STDOUT)?;
        }
        if done.is_empty() {
            writeln!(out, "nothing to reset: the top level is at its defaults").context(STDOUT)?;
        }
        writeln!(out, "Done.").context(STDOUT)?;
    }
    out.flush().context(STDOUT)?;
    if !failed.is_empty() {
        bail!(
            "{} change(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// What reset-ftrace would do here (`--check`, and its row in perf-tools-doctor): the
/// changes, and what makes it refuse without `-f` (then "degraded": it needs `-f`).
/// Changes nothing.
pub fn check() -> Result<Report> {
    let mut r = Report::new("reset-ftrace");
    r.uses = "the top-level tracefs files (current_tracer, filters, events, options, buffer size, probes)".into();
    let Some(tracefs) = perf_tools_ftrace::check::tracefs(&mut r) else {
        return Ok(r);
    };
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let plan = plan(&tracefs, Path::new(STATE_DIR), &cmdline);
    r.item(
        "changes",
        Status::Yes,
        if plan.changes.is_empty() {
            "none: the top level is at its defaults".to_string()
        } else {
            plan.changes
                .iter()
                .map(|c| format!("{}: {} -> {}", c.rel, c.before, c.after))
                .collect::<Vec<_>>()
                .join("; ")
        },
        "",
        false,
    );
    let blockers = plan.blockers();
    r.item(
        "in use",
        // It can still reset with -f: degraded, not "cannot run".
        if blockers.is_empty() {
            Status::Yes
        } else {
            Status::Degraded
        },
        if blockers.is_empty() {
            "nothing live would be disturbed".to_string()
        } else {
            blockers.join("; ")
        },
        "wait for those runs to end, or use -f (live runs keep their instances; user-made probes are removed)",
        false,
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn triggers_are_removed_by_their_own_text() {
        assert_eq!(
            trigger_removal(
                "hist:keys=common_pid.execname:vals=hitcount:sort=hitcount:size=2048 [active]"
            ),
            "!hist:keys=common_pid.execname:vals=hitcount:sort=hitcount:size=2048"
        );
        assert_eq!(trigger_removal("traceoff:unlimited"), "!traceoff");
        assert_eq!(trigger_removal("traceoff:3 if pid == 1"), "!traceoff:3");
    }

    #[test]
    fn default_buffer_size_is_what_the_kernel_shows() {
        // 1408 KiB in 4 KiB sub-buffers of 4080 data bytes: 354 of them, 1410 KiB.
        assert_eq!(default_buffer_kb(DEFAULT_BUF_BYTES, 4), 1410);
        assert_eq!(
            cmdline_buf_size("ro trace_buf_size=10M quiet"),
            Some(10 << 20)
        );
        assert_eq!(cmdline_buf_size("trace_buf_size=4096"), Some(4096));
        assert_eq!(cmdline_buf_size("ro quiet"), None);
    }

    #[test]
    fn a_fake_dirty_top_level_is_planned_back_to_defaults() {
        let dir = std::env::temp_dir().join(format!("reset-ftrace-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let w = |rel: &str, v: &str| {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, v).unwrap();
        };
        w("current_tracer", "function\n");
        w("set_ftrace_filter", "#### all functions enabled ####\n");
        w("set_ftrace_pid", "no pid\n");
        w("set_event_pid", "42\n");
        w("set_event", "sched:sched_switch\n");
        w("events/sched/sched_switch/filter", "prev_pid == 1\n");
        w("events/sched/sched_wakeup/filter", "none\n");
        w("tracing_thresh", "0\n");
        w("options/record-cmd", "0\n");
        w("options/overwrite", "1\n");
        w("trace_clock", "local global [mono]\n");
        w("buffer_size_kb", "7 (expanded: 1408)\n");
        w("tracing_on", "0\n");
        w(
            "dynamic_events",
            "p:kprobes/mine vfs_read\np:ptrs_4000000/theirs vfs_write\n",
        );
        fs::create_dir_all(dir.join("instances/iosnoop-1")).unwrap();
        fs::create_dir_all(dir.join("instances/mine")).unwrap();
        let p = plan(&Tracefs::at(&dir), &dir.join("state"), "");
        let got: Vec<String> = p
            .changes
            .iter()
            .map(|c| format!("{}={}", c.rel, c.value))
            .collect();
        assert_eq!(
            got,
            [
                "current_tracer=nop",
                "set_event_pid=",
                "events/enable=0",
                "events/sched/sched_switch/filter=0",
                "options/record-cmd=1",
                "trace_clock=local",
                "tracing_on=1",
            ]
        );
        // PID 1 lives: its instance blocks; a user instance does not; a user probe
        // does, a suite probe does not.
        assert_eq!(
            p.blockers(),
            [
                "instances/iosnoop-1 of live PID 1",
                "probe kprobes/mine, not made by a run of this suite"
            ]
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
