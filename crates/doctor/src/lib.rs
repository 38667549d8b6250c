//! perf-tools-doctor: what this host can trace, and how to fix what it cannot.
//!
//! One screen by default: the facts that are not `yes`, each with its fix, then one
//! verdict per tool ([`render_brief`]). `--all` prints the whole table ([`render`]):
//! tracefs (mount, lockdown, tracing_on, instances, buffer
//! sizes), dynamic probes (kprobes, uprobes, event probes, fprobes, fetch syntax), tracers
//! (function, function_graph at the top level and in an instance, set_ftrace_filter, hist
//! triggers, synthetic events), the events the tools need (block with its layout,
//! syscalls, sched), the CPU (MSR device and module, perf msr PMU, hwmon sensors, the
//! hardware PMU and a 1 ms test count, perf_event_paranoid, capabilities, VM and
//! container), then one verdict per tool with the exact fix for each "no". Facts are
//! verified where that is cheap (probes of this run created and removed, a private
//! instance created and removed), never taken from what the kernel merely documents.
//! `--json` gives the same facts as one object ([`json`]).

pub mod container;
pub mod facts;
pub mod tools;

use anyhow::Result;
use clap::Parser;
use owo_colors::OwoColorize;
use std::fmt::Write as _;
use std::io::Write as _;

use perf_tools_core::check::{Report, Status};

pub use facts::{Facts, Section};

/// Command-line options.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "perf-tools-doctor",
    version,
    about = "Show what this host can trace with perf-tools-rs, and how to fix what it cannot",
    long_about = None,
    after_help = "Examples:\n  perf-tools-doctor          # what is missing (with fixes) and a verdict per tool\n  perf-tools-doctor --all    # every fact, with what was found\n  perf-tools-doctor --json   # the same facts as one JSON object\n\nSee the perf-tools-doctor(8) man page for more."
)]
pub struct Args {
    /// Print every fact with what was found (the whole table), not only what is missing
    #[arg(short = 'a', long, conflicts_with = "json")]
    pub all: bool,

    /// Print the facts and verdicts as one JSON object (field names documented in the man page)
    #[arg(long)]
    pub json: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The version of the `--json` layout: bumped when a field changes meaning or goes.
pub const JSON_VERSION: u32 = 1;

/// Runs the doctor: gathers the facts and the tools' verdicts, prints them.
pub fn run(args: Args) -> Result<()> {
    let facts = facts::gather();
    let reports = tools::reports(&facts);
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = json(&facts, &reports);
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let color = perf_tools_core::output::use_color();
        let text = if args.all {
            render(&facts, &reports, color)
        } else {
            render_brief(&facts, &reports, color)
        };
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn word(s: Status, color: bool, width: usize) -> String {
    let w = format!("{:<width$}", s.word());
    if !color {
        return w;
    }
    match s {
        Status::Yes => w.green().to_string(),
        Status::Degraded => w.yellow().to_string(),
        Status::No => w.red().bold().to_string(),
    }
}

/// The width of the first column: the longest fact or tool name.
fn key_width(facts: &Facts) -> usize {
    facts
        .sections
        .iter()
        .flat_map(|x| x.facts.items.iter().map(|i| i.name.len()))
        .chain(tools::TOOLS.iter().map(|t| t.len()))
        .max()
        .unwrap_or(0)
}

/// The one-screen answer (the default): the facts that are not `yes`, one line each
/// with their fix (`KEY STATUS fix: ...`, or the detail when there is no fix), a line
/// that counts the facts that are fine, then one line per tool (`TOOL VERDICT USES`)
/// with, under a tool that is not `yes`, the fix of its first missing item. The
/// verdicts come last: they stay on the screen.
pub fn render_brief(facts: &Facts, reports: &[Report], color: bool) -> String {
    let mut s = String::new();
    let arch = std::env::consts::ARCH;
    let _ = writeln!(s, "perf-tools-doctor: Linux {} ({arch})", facts.kernel);
    let kw = key_width(facts);
    let all: Vec<_> = facts.sections.iter().flat_map(|x| &x.facts.items).collect();
    let missing: Vec<_> = all.iter().filter(|i| i.status != Status::Yes).collect();
    let _ = writeln!(
        s,
        "\nMISSING ({} of {} facts; the other {} are yes: perf-tools-doctor --all shows each)",
        missing.len(),
        all.len(),
        all.len() - missing.len()
    );
    for i in &missing {
        let what = if i.fix.is_empty() {
            i.detail.clone()
        } else {
            format!("fix: {}", i.fix)
        };
        let _ = writeln!(s, "  {:<kw$}  {}  {what}", i.name, word(i.status, color, 8));
    }
    if missing.is_empty() {
        let _ = writeln!(s, "  nothing");
    }
    let _ = writeln!(s, "\nTOOLS");
    let mut last_fix = "";
    for r in reports {
        let first = r
            .items
            .iter()
            .find(|i| i.status != Status::Yes && !i.fix.is_empty());
        // The same fix as the tool above (funcgraph and funcslower, functrace and
        // funccount) is said once, to keep the view within one screen.
        let same = first.is_some_and(|i| i.fix == last_fix);
        let _ = writeln!(
            s,
            "  {:<kw$}  {}  {}{}",
            r.tool,
            word(r.verdict(), color, 8),
            uses(r),
            if same { " (fix: as above)" } else { "" }
        );
        if let (Some(i), false) = (first, same) {
            let _ = writeln!(s, "  {:<kw$}  {:<8}  fix: {}", "", "", i.fix);
        }
        last_fix = first.map_or("", |i| i.fix.as_str());
    }
    s
}

/// What a tool would use, or in two words whether it can run at all.
fn uses(r: &Report) -> &str {
    match (r.uses.as_str(), r.verdict()) {
        ("", Status::No) => "cannot run",
        ("", _) => "can run",
        (u, _) => u,
    }
}

/// The whole table (`--all`): one block per section (`KEY STATUS DETAIL`, a `fix:` line under each fact
/// that is not `yes` and has one), then the tools (`TOOL VERDICT USES`, each missing
/// item's fix under it). Status words are coloured when `color` is set.
pub fn render(facts: &Facts, reports: &[Report], color: bool) -> String {
    let mut s = String::new();
    let arch = std::env::consts::ARCH;
    let _ = writeln!(s, "perf-tools-doctor: Linux {} ({arch})", facts.kernel);
    let kw = key_width(facts);
    for sec in &facts.sections {
        let _ = writeln!(s, "\n{}", sec.title);
        for i in &sec.facts.items {
            let _ = writeln!(
                s,
                "  {:<kw$}  {}  {}",
                i.name,
                word(i.status, color, 8),
                i.detail
            );
            if i.status != Status::Yes && !i.fix.is_empty() {
                let _ = writeln!(s, "  {:<kw$}  {:<8}  fix: {}", "", "", i.fix);
            }
        }
    }
    let _ = writeln!(s, "\nTOOLS");
    for r in reports {
        let _ = writeln!(
            s,
            "  {:<kw$}  {}  {}",
            r.tool,
            word(r.verdict(), color, 8),
            uses(r)
        );
        for i in r.items.iter().filter(|i| i.status != Status::Yes) {
            let _ = writeln!(s, "  {:<kw$}  {:<8}  {}: {}", "", "", i.name, i.detail);
            if !i.fix.is_empty() {
                let _ = writeln!(s, "  {:<kw$}  {:<8}    fix: {}", "", "", i.fix);
            }
        }
    }
    s
}

/// The facts and verdicts as one JSON object:
///
/// ```text
/// { "version": 1, "kernel": "<uname -r>", "arch": "x86_64",
///   "tracefs": { "<key>": { "status": "yes|degraded|no", "detail": "...", "fix": "..." }, ... },
///   "probes": {...}, "tracers": {...}, "events": {...}, "cpu": {...},
///   "tools": { "<tool>": { "verdict": "yes|degraded|no", "uses": "...", "exit_code": 0|1,
///              "items": [ { "name", "status", "detail", "fix", "required" } ] } } }
/// ```
pub fn json(facts: &Facts, reports: &[Report]) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut top = Map::new();
    top.insert("version".into(), json!(JSON_VERSION));
    top.insert("kernel".into(), json!(facts.kernel));
    top.insert("arch".into(), json!(std::env::consts::ARCH));
    for sec in &facts.sections {
        let mut m = Map::new();
        for i in &sec.facts.items {
            m.insert(
                i.name.clone(),
                json!({"status": i.status.word(), "detail": i.detail, "fix": i.fix}),
            );
        }
        top.insert(sec.key.into(), Value::Object(m));
    }
    let mut t = Map::new();
    for r in reports {
        let items: Vec<Value> = r
            .items
            .iter()
            .map(|i| {
                json!({"name": i.name, "status": i.status.word(), "detail": i.detail,
                       "fix": i.fix, "required": i.required})
            })
            .collect();
        t.insert(
            r.tool.clone(),
            json!({"verdict": r.verdict().word(), "uses": r.uses,
                   "exit_code": r.exit_code(), "items": items}),
        );
    }
    top.insert("tools".into(), Value::Object(t));
    Value::Object(top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sample() -> (Facts, Vec<Report>) {
        let mut r = Report::new("tracefs");
        r.item("mount", Status::Yes, "/sys/kernel/tracing", "", false);
        r.item(
            "lockdown",
            Status::No,
            "confidentiality",
            "boot with lockdown=none",
            false,
        );
        let facts = Facts {
            kernel: "6.1.0-test".into(),
            sections: vec![Section {
                key: "tracefs",
                title: "TRACEFS",
                facts: r,
            }],
        };
        let mut t = Report::new("kprobe");
        t.uses = "nothing".into();
        t.item(
            "kprobe events",
            Status::No,
            "absent",
            "CONFIG_KPROBE_EVENTS=y",
            true,
        );
        (facts, vec![t])
    }

    #[test]
    fn table_colours_only_when_asked() {
        let (f, t) = sample();
        let plain = render(&f, &t, false);
        let arch = std::env::consts::ARCH;
        assert_eq!(
            plain,
            format!(
                // Keys are padded to the longest key or tool name (14: "perf-stat-hist").
                "perf-tools-doctor: Linux 6.1.0-test ({arch})\n\nTRACEFS\n  mount           yes       /sys/kernel/tracing\n  lockdown        no        confidentiality\n                            fix: boot with lockdown=none\n\nTOOLS\n  kprobe          no        nothing\n                            kprobe events: absent\n                              fix: CONFIG_KPROBE_EVENTS=y\n"
            )
        );
        let col = render(&f, &t, true);
        assert!(col.contains("\x1b[32myes     \x1b[39m"), "{col:?}");
        assert!(col.contains("\x1b[1m\x1b[31mno"), "{col:?}");
        // Alignment is the same once the escapes are removed.
        let stripped = {
            let mut s = String::new();
            let mut esc = false;
            for c in col.chars() {
                match (esc, c) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => s.push(c),
                }
            }
            s
        };
        assert_eq!(stripped, plain);
    }

    #[test]
    fn json_layout() {
        let (f, t) = sample();
        let v = json(&f, &t);
        assert_eq!(v["version"], 1);
        assert_eq!(v["kernel"], "6.1.0-test");
        assert_eq!(
            v["tracefs"]["lockdown"],
            serde_json::json!({"status": "no", "detail": "confidentiality", "fix": "boot with lockdown=none"})
        );
        assert_eq!(v["tools"]["kprobe"]["verdict"], "no");
        assert_eq!(v["tools"]["kprobe"]["exit_code"], 1);
        assert_eq!(v["tools"]["kprobe"]["items"][0]["required"], true);
    }

    #[test]
    fn lockdown_mode_is_the_bracketed_word() {
        assert_eq!(
            facts::lockdown_mode("none [integrity] confidentiality\n"),
            Some("integrity")
        );
        assert_eq!(facts::lockdown_mode("none integrity"), None);
    }

    #[test]
    fn entry_offset_of_this_test_binary_is_in_an_executable_segment() {
        let exe = std::env::current_exe().unwrap();
        let off = facts::elf_entry_offset(&exe).unwrap();
        let len = std::fs::metadata(&exe).unwrap().len();
        assert!(off > 0 && off < len, "{off} of {len}");
        assert_eq!(
            facts::elf_entry_offset(Path::new("/proc/self/status")),
            None
        );
    }
}
