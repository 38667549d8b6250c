//! tpoint: trace any tracepoint, with an optional in-kernel filter.
//!
//! A port of perf-tools' `tpoint` with the same options and output: each event as the
//! kernel renders it (the event's `print fmt`, with the kernel's context columns), so
//! lines compare with the kernel's documentation and other ftrace users' output. Unlike
//! the original it traces in a private instance (`instances/tpoint-<pid>`, removed on
//! every exit path), reads each entry with its bounds from the kernel so names from user
//! space are escaped and cannot forge lines ([`entry`]), reports lost events, suggests
//! the closest names for an unknown tracepoint ([`names`]) and explains a rejected
//! filter with the kernel's reason and position.

use anyhow::{bail, Result};
use clap::Parser;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::{Shutdown, Wake};
use perf_tools_core::target;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::session::RunAccount;
use perf_tools_ftrace::text_pipe::TextPipe;
use perf_tools_ftrace::tracefs::Tracefs;

pub mod entry;
pub mod names;

use names::Tracepoint;
use perf_tools_ftrace::scope::{Refresh, Scope};

/// The tool's name (instance `instances/tpoint-<pid>`).
pub const TOOL: &str = "tpoint";

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tpoint",
    version,
    about = "Trace a tracepoint, with an optional in-kernel filter",
    long_about = None,
    after_help = "Examples:\n  tpoint -l | grep open                 # find tracepoints containing \"open\"\n  tpoint syscalls:sys_enter_openat      # trace openat() syscall entry\n  tpoint block:block_rq_issue           # trace block I/O issue\n  tpoint -s block:block_rq_issue        # show kernel stacks\n  tpoint -v block:block_rq_issue        # show the format (fields for filters)\n  tpoint block:block_rq_issue 'bytes > 65536'\n                                        # only I/O larger than 64 KiB\n  tpoint -p 181 syscalls:sys_enter_read # only PID 181 (and its new threads)\n\nSee the tpoint(8) man page for more."
)]
pub struct Args {
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration, conflicts_with = "view")]
    pub duration: Option<f64>,
    /// Only events of this process: every thread, also ones it creates while tracing
    #[arg(short = 'p', value_name = "PID", conflicts_with = "tid", value_parser = perf_tools_core::cli::at_least::<u32>("PID", 1))]
    pub pid: Option<u32>,
    /// Only events of this thread
    #[arg(short = 'L', value_name = "TID", value_parser = perf_tools_core::cli::at_least::<u32>("TID", 1))]
    pub tid: Option<u32>,
    /// Print the tracepoint's format file (its fields, for filters) and exit
    #[arg(short = 'v')]
    pub view: bool,
    /// Print the kernel's column headers first
    #[arg(short = 'H')]
    pub headers: bool,
    /// Print the kernel stack after each event
    #[arg(short = 's')]
    pub stack: bool,
    /// List every tracepoint of this kernel (system:event) and exit
    #[arg(short = 'l', exclusive = true)]
    pub list: bool,
    /// Container scope (tpoint: --cgroup and --container; its lines are the kernel's
    /// text, so --show-cgroup and --show-nspid are not supported)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::ScopeArgs,
    /// The tracepoint, as system:event (e.g. block:block_rq_issue)
    #[arg(value_name = "tracepoint", required = true)]
    pub tracepoint: Option<String>,
    /// Optional ftrace filter expression on the event's fields, e.g. 'sector == 2048'
    #[arg(value_name = "filter")]
    pub filter: Option<String>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Print what this tool would use on this host and why, then exit: 0 if it can run, 1 if not (nothing is left in tracefs)
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The startup line, as the original prints it.
pub fn banner(tp: &Tracepoint, duration: Option<f64>) -> String {
    match duration {
        Some(d) => format!("Tracing {tp} for {d} seconds (buffered)..."),
        None => format!("Tracing {tp}. Ctrl-C to end."),
    }
}

/// The error for a tracepoint this kernel does not have, with the closest names.
pub fn not_found(tracefs: &Tracefs, typed: &str) -> anyhow::Error {
    let all = names::list(&tracefs.path("events")).unwrap_or_default();
    let close = names::suggest(&all, typed, 6);
    let hint = if close.is_empty() {
        "no tracepoint has a similar name".to_string()
    } else {
        format!("the closest are: {}", close.join(", "))
    };
    anyhow::anyhow!(
        "tracepoint {typed} not found in {}: {hint} (tpoint -l lists all {})",
        tracefs.path("events").display(),
        all.len()
    )
}

/// Text options of the instance this tool's output depends on, and their values: the
/// kernel's default layout with the context columns. A new instance copies the
/// top-level options, so a user's `raw`, `hex` or `fields` setting would change it.
const TEXT_OPTIONS: &[(&str, &str)] = &[
    ("context-info", "1"),
    ("raw", "0"),
    ("hex", "0"),
    ("bin", "0"),
    ("fields", "0"),
    ("latency-format", "0"),
    ("verbose", "0"),
];

/// The private instance, configured: text options, buffer, filters (the user's, `-L`,
/// and this process left out), `-p`'s thread list and `-s`'s stack traces. Returns it
/// with the filter in force.
fn setup_instance(
    tracefs: &Tracefs,
    args: &Args,
    tp: &Tracepoint,
    scope: Option<&mut Scope>,
) -> Result<Instance> {
    let inst = cleanup::start_instance(tracefs, TOOL)?;
    for (opt, value) in TEXT_OPTIONS {
        let rel = format!("options/{opt}");
        if inst.dir().join(&rel).exists() {
            inst.ensure(&rel, value)?;
        }
    }
    inst.ensure("buffer_size_kb", &args.buffer_kb.to_string())?;
    let (sys, ev) = (tp.system.as_str(), tp.event.as_str());
    let mut filter = args.filter.clone().unwrap_or_default();
    if !filter.is_empty() {
        // The user's expression alone first, so a rejection points into their text.
        inst.set_filter(sys, ev, &filter)?;
    }
    if let Some(t) = args.tid {
        filter = and(&filter, &format!("common_pid == {t}"));
        inst.set_filter(sys, ev, &filter)?;
    }
    if args.tid.is_none() && args.pid.is_none() {
        // Leave out tpoint's own activity (a syscall tracepoint would otherwise see
        // every read of the trace, and each read would make more).
        filter = and(&filter, &format!("common_pid != {}", std::process::id()));
        inst.set_filter(sys, ev, &filter)?;
    }
    if let Some(pid) = args.pid {
        if inst.follow_process(pid)?.is_empty() {
            bail!("no process with PID {pid} (it exited after tpoint started)");
        }
    }
    if let Some(sc) = scope {
        sc.apply(&inst)?;
    }
    if args.stack {
        if !inst.dir().join("options/stacktrace").exists() {
            bail!(
                "this kernel has no stacktrace option in trace instances ({}/options/stacktrace): -s needs CONFIG_STACKTRACE (and Linux 4.x+ instance options); run without -s",
                inst.dir().display()
            );
        }
        inst.write("options/stacktrace", "1")?;
    }
    Ok(inst)
}

/// `a && b`, parenthesized, or `b` alone.
fn and(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("({a}) && {b}")
    }
}

/// The `#` header lines at the top of the instance's `trace` file (the kernel's column
/// legend), read while the buffer is empty.
fn header_lines(inst: &Instance) -> Vec<String> {
    let mut text = Vec::new();
    if let Ok(f) = std::fs::File::open(inst.dir().join("trace")) {
        let _ = f.take(16 * 1024).read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text)
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// What a run printed and lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Event lines.
    pub events: u64,
    /// Stack entries.
    pub stacks: u64,
    /// Events lost per the kernel's markers in the text.
    pub lost_marked: u64,
    /// Entries of an unexpected layout (printed as one escaped line each).
    pub odd: u64,
}

/// Most entries rendered per turn before the output is written (a busy event cannot
/// keep tpoint from writing, or from noticing a signal).
const TURN_ENTRIES: usize = 4096;

/// What -p, -L and the filter were, for the end-of-run account.
fn account(args: &Args, counts: &Counts, lost: u64) -> RunAccount {
    let mut a = RunAccount::new(TOOL, "lines");
    a.rows = counts.events;
    a.lost = lost;
    if let Some(f) = &args.filter {
        a.filter(format!("'{f}'"), true);
    }
    if let Some(p) = args.pid {
        a.filter(format!("-p {p}"), true);
    }
    if let Some(t) = args.tid {
        a.filter(format!("-L {t}"), true);
    }
    for (option, in_kernel) in args.scope.filter_notes(true) {
        a.filter(option, in_kernel);
    }
    if a.filters.is_empty() {
        a.notes
            .push("the tracepoint did not fire (tpoint's own events are left out)".to_string());
    }
    a
}

/// Runs tpoint.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    if args.list {
        let tracefs = Tracefs::open()?;
        let all = names::list(&tracefs.path("events"))
            .map_err(|e| anyhow::anyhow!("listing {}: {e}", tracefs.path("events").display()))?;
        let mut out = Output::stdout();
        for n in all {
            out.buf.extend_from_slice(n.as_bytes());
            out.buf.push(b'\n');
        }
        out.flush()?;
        return Ok(());
    }
    let Some(typed) = args.tracepoint.as_deref() else {
        return Err(cli::usage(
            "no tracepoint given (e.g. block:block_rq_issue)",
        ));
    };
    let tp = match names::parse(typed) {
        Ok(tp) => tp,
        Err(e) => {
            // Probably an event name alone: say which tracepoints it could be.
            let close = Tracefs::open()
                .ok()
                .and_then(|t| names::list(&t.path("events")).ok())
                .map(|all| names::suggest(&all, typed, 6))
                .unwrap_or_default();
            return Err(cli::usage(if close.is_empty() {
                e
            } else {
                format!("{e}; the closest are: {}", close.join(", "))
            }));
        }
    };
    perf_tools_ftrace::scope::reject_with_target(&args.scope, args.pid, args.tid)?;
    // The suite's rule: a target that does not exist is an error before any state.
    if let Some(p) = args.pid {
        target::require_process(p)?;
    }
    if let Some(t) = args.tid {
        target::require_thread(t)?;
    }
    if let Err(e) = perf_tools_ftrace::scope::reject_columns(&args.scope, TOOL) {
        return Err(cli::usage(format!("{e:#}")));
    }
    let mut scope = args.scope.resolve()?;
    let tracefs = Tracefs::open()?;
    if !tracefs.has_event(&tp.system, &tp.event) {
        return Err(not_found(&tracefs, typed));
    }
    if args.view {
        let path = tracefs.path(format!("events/{}/{}/format", tp.system, tp.event));
        let text = perf_tools_ftrace::tracefs::read_file(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut out = Output::stdout();
        out.buf.extend_from_slice(text.as_bytes());
        out.flush()?;
        return Ok(());
    }
    let shutdown = Shutdown::install()?;
    let inst = setup_instance(&tracefs, &args, &tp, scope.as_mut()).map_err(|e| {
        if args.filter.is_some() && format!("{e:#}").contains("rejected the filter") {
            e.context(format!(
                "the filter was not accepted (tpoint -v {tp} lists the fields it can use)"
            ))
        } else {
            e
        }
    })?;
    let headers = if args.headers {
        header_lines(&inst)
    } else {
        Vec::new()
    };
    let mut pipe = TextPipe::open(inst.dir())?;
    inst.enable_event(&tp.system, &tp.event)?;
    let losses_before = inst.loss_stats().total();
    inst.set_tracing_on(true)?;

    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&tp, args.duration));
    for h in &headers {
        let _ = writeln!(out.buf, "{h}");
    }
    out.flush()?;

    let mut counts = Counts::default();
    let mut held = perf_tools_core::spill::Held::new();
    let streaming = args.duration.is_none();
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let poll = Duration::from_millis(100);
    let mut watch = StateWatch::new();
    let mut chunk = Vec::with_capacity(4096);
    let mut lost_reported = 0u64;
    loop {
        let timeout = deadline.map_or(poll, |dl| {
            poll.min(dl.saturating_duration_since(Instant::now()))
        });
        let wake = shutdown.wait(&[pipe.fd()], timeout);
        if wake == Wake::OutputClosed {
            // Nobody reads our output any more: end quietly, cleaning up.
            drop(pipe);
            return inst.remove();
        }
        let mut gone = false;
        if let Some(sc) = scope.as_mut() {
            if sc.refresh(&inst, false)? == Refresh::Gone {
                sc.say_gone(TOOL);
                gone = true;
            }
        }
        let last =
            gone || wake == Wake::Shutdown || deadline.is_some_and(|dl| Instant::now() >= dl);
        watch.check(&inst, last)?;
        if last {
            inst.set_tracing_on(false)?;
        }
        // Read what the pipe holds (all of it at the end), rendering entry by entry.
        loop {
            let mut n = 0;
            while n < TURN_ENTRIES {
                chunk.clear();
                if !pipe.read_entry(&mut chunk)? {
                    break;
                }
                n += 1;
                let k = entry::render(&chunk, &mut out.buf);
                counts.events += u64::from(k.event);
                counts.stacks += u64::from(k.stack);
                counts.odd += u64::from(k.odd);
                counts.lost_marked += k.lost;
            }
            if streaming {
                out.flush()?;
            } else if out.buf.len() >= perf_tools_core::spill::MEMORY_LIMIT {
                held.absorb(&mut out.buf)?;
            }
            if n < TURN_ENTRIES {
                break;
            }
        }
        if counts.lost_marked > lost_reported {
            eprintln!(
                "WARNING: {} events lost: the kernel buffer overflowed (try --buffer-kb larger than {}, or a filter)",
                counts.lost_marked - lost_reported,
                args.buffer_kb
            );
            lost_reported = counts.lost_marked;
        }
        if last {
            break;
        }
    }
    if !streaming {
        held.finish(&mut out)?;
    }
    let lost = inst
        .loss_stats()
        .total()
        .saturating_sub(losses_before)
        .max(counts.lost_marked);
    drop(pipe);
    inst.remove()?;
    let _ = writeln!(out.buf, "\nEnding tracing...");
    out.flush()?;
    if lost > 0 {
        eprintln!("WARNING: {lost} events lost in total; lines are missing");
    }
    if counts.odd > 0 {
        eprintln!(
            "note: {} entries were not in the kernel's usual line layout; each was printed escaped on one line",
            counts.odd
        );
    }
    if let Some(line) = account(&args, &counts, lost).line() {
        eprintln!("{line}");
    }
    Ok(())
}

/// Notices another process changing this run's settings (tracing_on, the event's enable
/// or filter): warns at once, and ends the run with an error if the change stays.
struct StateWatch {
    next: Instant,
    changed: bool,
}

impl StateWatch {
    fn new() -> StateWatch {
        StateWatch {
            next: Instant::now() + Duration::from_secs(1),
            changed: false,
        }
    }

    fn check(&mut self, inst: &Instance, last: bool) -> Result<()> {
        if Instant::now() < self.next && !(last && self.changed) {
            return Ok(());
        }
        self.next = Instant::now() + Duration::from_secs(1);
        let changes = inst.state_changes(true);
        let dir = inst.dir().display();
        match (changes.is_empty(), self.changed) {
            (true, false) => {}
            (true, true) => {
                eprintln!("WARNING: this run's tracing settings in {dir} were put back; events while they were changed are missing");
                self.changed = false;
            }
            (false, false) => {
                eprintln!(
                    "WARNING: another process changed this run's tracing settings in {dir}: {}; until it is put back, lines may be missing or not filtered as asked",
                    changes.join(", ")
                );
                self.changed = true;
            }
            (false, true) => bail!(
                "another process changed this run's tracing settings in {dir} ({}) and did not put them back: the output would be incomplete, so the run ends here; make sure no other program writes to this run's instance",
                changes.join(", ")
            ),
        }
        Ok(())
    }
}

/// What tpoint would use on this host and whether it can run (`--check`, and its row
/// in perf-tools-doctor): tracefs, a private instance, a tracepoint recorded and read
/// back through the instance's trace_pipe, the stacktrace option (`-s`) and error_log
/// (filter errors explained). The instance is removed before this returns.
pub fn check() -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut report = Report::new(TOOL);
    let Some(tracefs) = fc::tracefs(&mut report) else {
        return Ok(report);
    };
    let all = names::list(&tracefs.path("events")).unwrap_or_default();
    report.item(
        "tracepoints",
        if all.is_empty() {
            Status::No
        } else {
            Status::Yes
        },
        format!("{} in {}", all.len(), tracefs.path("events").display()),
        "use a kernel built with CONFIG_EVENT_TRACING=y",
        true,
    );
    let Some(inst) = fc::instance(&tracefs, TOOL, &mut report) else {
        return Ok(report);
    };
    let dir = inst.dir().to_path_buf();
    let has = |rel: &str| dir.join(rel).exists();
    report.item(
        "stacktrace option",
        if has("options/stacktrace") {
            Status::Yes
        } else {
            Status::Degraded
        },
        if has("options/stacktrace") {
            "options/stacktrace in the instance: -s available"
        } else {
            "no options/stacktrace in the instance: -s unavailable"
        },
        "use a kernel built with CONFIG_STACKTRACE=y",
        false,
    );
    report.item(
        "error_log",
        if has("error_log") {
            Status::Yes
        } else {
            Status::Degraded
        },
        if has("error_log") {
            "rejected filters are explained with the kernel's reason and position"
        } else {
            "no error_log (Linux 5.4+): rejected filters are explained from the filter file"
        },
        "Linux 5.4+",
        false,
    );
    if let Some(tp) = [
        "sched:sched_switch",
        "syscalls:sys_enter_getppid",
        "block:block_rq_issue",
    ]
    .into_iter()
    .chain(all.iter().map(String::as_str))
    .find_map(|n| {
        names::parse(n)
            .ok()
            .filter(|t| tracefs.has_event(&t.system, &t.event))
    }) {
        fc::verify_recording(&inst, &[(&tp.system, &tp.event)], &mut report);
    }
    inst.remove()?;
    report.uses = if report.verdict() == Status::No {
        "nothing: tracepoints cannot be traced".to_string()
    } else {
        "any tracepoint, in the kernel's text (trace_pipe) of a private instance".to_string()
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn banners_match_the_original() {
        let tp = names::parse("block:block_rq_issue").unwrap();
        assert_eq!(
            banner(&tp, None),
            "Tracing block:block_rq_issue. Ctrl-C to end."
        );
        assert_eq!(
            banner(&tp, Some(5.0)),
            "Tracing block:block_rq_issue for 5 seconds (buffered)..."
        );
    }

    #[test]
    fn filters_combine_in_parentheses() {
        assert_eq!(and("", "common_pid == 5"), "common_pid == 5");
        assert_eq!(
            and("a || b", "common_pid != 9"),
            "(a || b) && common_pid != 9"
        );
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["tpoint"][..],
            &["tpoint", "-d", "1", "-v", "a:b"],
            &["tpoint", "-p", "1", "-L", "2", "a:b"],
            &["tpoint", "-l", "a:b"],
            &["tpoint", "-d", "0", "a:b"],
            &["tpoint", "-p", "0", "a:b"],
            &["tpoint", "a:b", "f", "extra"],
            &["tpoint", "-z", "a:b"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
        let a = Args::try_parse_from(["tpoint", "-Hs", "-d", "2", "a:b", "x == 1"]).unwrap();
        assert!(a.headers && a.stack);
        assert_eq!(a.filter.as_deref(), Some("x == 1"));
        assert!(Args::try_parse_from(["tpoint", "-l"]).unwrap().list);
    }
}
