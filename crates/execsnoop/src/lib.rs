//! execsnoop: trace new processes (exec) with PID, PPID and arguments.
//!
//! A port of perf-tools' `execsnoop` with the same options, banner, header and columns.
//! Every successful exec is seen through the `sched:sched_process_exec` tracepoint; the
//! arguments come from the best source the kernel offers ([`Source`]), each checked at
//! start with a canary exec of execsnoop's own: event probes on the execve/execveat
//! syscall tracepoints, kprobes on the syscall functions, or, without dynamic probes,
//! `/proc/PID/cmdline` read right after the event (a process gone by then shows
//! `[exited]`, never someone else's arguments). The parent comes from the traced fork
//! (`sched:sched_process_fork`), else from /proc read at once. Events are decoded from
//! the private instance's binary ring buffers by the kernel's format files; probes are
//! named per run (`ptrs_<pid>`) and removed on every exit path.

use anyhow::{bail, Result};
use clap::Parser;
use std::io::Write;
use std::time::Duration;

use perf_tools_core::check::Report;
use perf_tools_core::cli;
use perf_tools_core::output::{escape_into, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::canary::Trial;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::probe::Probe;
use perf_tools_ftrace::reader::RawReader;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, Session, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;

pub mod execs;
pub mod source;
mod suite;
pub mod verify;

use execs::{ArgsText, Changes, Execs, RealProc, Row};
pub use source::Source;
use source::{Ev, EventDecoder};
use verify::Live;

/// The most arguments `-a` allows (as the original).
pub const MAX_ARGC: usize = 16;

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "execsnoop",
    version,
    about = "Trace new processes (exec) with PID, PPID and arguments",
    long_about = None,
    after_help = "Examples:\n  execsnoop                 # watch exec()s live (unbuffered)\n  execsnoop -d 1            # trace 1 sec (buffered)\n  execsnoop grep            # trace process names containing grep\n  execsnoop 'udevd$'        # process names ending in \"udevd\"\n  execsnoop -rt -a 16       # with re-execs, times and up to 16 arguments\n\nSee the execsnoop(8) man page for more."
)]
pub struct Args {
    /// Show at most this many arguments after the program name (0-16); "[...]" marks
    /// more
    #[arg(short = 'a', value_name = "argc", default_value_t = 8, value_parser = perf_tools_core::cli::between::<u32>("-a", 0, MAX_ARGC as u32))]
    pub argc: u32,
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Include re-execs (a process that execs again without forking)
    #[arg(short = 'r')]
    pub reexec: bool,
    /// Include a timestamp column (TIMEs, seconds since boot)
    #[arg(short = 't')]
    pub time: bool,
    /// Say on stderr where arguments come from (which probe or fallback) and why the
    /// better sources are not used, and show each row's source in a SRC column before ARGS
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Also show the execs of the suite's other running tools and of the processes they
    /// start (such as another execsnoop's canary), hidden by default
    #[arg(long = "include-suite")]
    pub include_suite: bool,
    /// Container scope and its columns
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::ScopeArgs,
    /// Only show processes whose name (the exec'd file's base name, as ps shows it)
    /// matches this regex (partial strings are fine)
    #[arg(value_name = "name")]
    pub name: Option<String>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 1024, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Remove trace instances and probes left behind by killed runs, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Say which source of arguments execsnoop would use on this kernel and why the
    /// better ones are not used (each checked with an exec of execsnoop's own), then
    /// exit: 0 if it can run, 1 if not. Nothing is left in tracefs
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let ftext = match &args.name {
        Some(n) => format!(" issued by process name \"{n}\""),
        None => String::new(),
    };
    match args.duration {
        Some(d) => format!("Tracing exec()s{ftext} for {d} seconds (buffered)..."),
        None => format!("Tracing exec()s{ftext}. Ctrl-C to end."),
    }
}

/// The column header line (`src`: the SRC column of `-v`).
pub fn header(time: bool, src: bool) -> String {
    header_with(time, src, "")
}

/// [`header`] with extra columns (`--show-cgroup`, `--show-nspid`: their header text,
/// each followed by a space) just before ARGS.
pub fn header_with(time: bool, src: bool, extra: &str) -> String {
    let mut s = String::new();
    if time {
        s.push_str(&format!("{:<16} ", "TIMEs"));
    }
    s.push_str(&format!("{:>6} {:>6} ", "PID", "PPID"));
    if src {
        s.push_str(&format!("{:<6} ", "SRC"));
    }
    s.push_str(extra);
    s.push_str("ARGS");
    s
}

/// One output row. Arguments and file names come from user space and are escaped
/// ([`escape_into`]) so that they cannot break the row or reach the terminal raw.
pub fn row(out: &mut Vec<u8>, time: bool, src: bool, r: &Row) {
    row_with(out, time, src, b"", r)
}

/// [`row`] with extra columns (formatted, each followed by a space) just before ARGS.
pub fn row_with(out: &mut Vec<u8>, time: bool, src: bool, extra: &[u8], r: &Row) {
    if time {
        let us = (r.ts + 500) / 1000;
        let t = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        let _ = write!(out, "{t:<16} ");
    }
    let _ = write!(out, "{:>6} {:>6} ", r.pid, r.ppid.unwrap_or(0));
    if src {
        let _ = write!(out, "{:<6} ", r.src);
    }
    out.extend_from_slice(extra);
    match &r.args {
        ArgsText::Known(args, more) => {
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                escape_into(out, a);
            }
            if *more {
                out.extend_from_slice(b" [...]");
            }
        }
        ArgsText::Exited => {
            escape_into(out, &r.filename);
            out.extend_from_slice(b" [exited]");
        }
        ArgsText::Unknown => {
            escape_into(out, &r.filename);
            out.extend_from_slice(b" [?]");
        }
    }
    out.push(b'\n');
}

/// What execsnoop would use on this host, and whether it can run (`--check`, and the
/// doctor's row for execsnoop): every source is set up and checked with an exec of
/// execsnoop's own as a run would, then removed again.
pub fn check() -> Result<Report> {
    check_with(None)
}

fn check_with(shutdown: Option<&Shutdown>) -> Result<Report> {
    let tracefs = match Tracefs::open() {
        Ok(t) => t,
        Err(e) => {
            let mut r = Report::new("execsnoop");
            r.item(
                "tracefs",
                perf_tools_core::check::Status::No,
                format!("{e:#}").replace('\n', " "),
                "run as root (CAP_SYS_ADMIN) on a kernel with CONFIG_FTRACE=y; mount it with: mount -t tracefs nodev /sys/kernel/tracing",
                true,
            );
            return Ok(r);
        }
    };
    let mut live = match Live::new(&tracefs, None, 8, shutdown) {
        Ok(l) => l,
        Err(e) => {
            let mut r = Report::new("execsnoop");
            r.item(
                "sched tracepoints",
                perf_tools_core::check::Status::No,
                format!("{e:#}").replace('\n', " "),
                "a kernel with CONFIG_FTRACE=y and CONFIG_EVENT_TRACING=y",
                true,
            );
            return Ok(r);
        }
    };
    let choice = verify::choose(&mut live, 8);
    live.tear_down();
    if live.interrupted() {
        bail!("interrupted");
    }
    drop(live);
    let mut r = verify::report(&choice);
    r.items.insert(
        0,
        perf_tools_core::check::Item {
            name: "tracefs".into(),
            status: perf_tools_core::check::Status::Yes,
            detail: tracefs.root().display().to_string(),
            fix: String::new(),
            required: true,
        },
    );
    Ok(r)
}

/// What a run traced and printed, for its end-of-run account.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    rows: u64,
    traced: u64,
    left_out: u64,
    suite: u64,
    reexecs: u64,
}

fn account(args: &Args, t: &Tally) -> RunAccount {
    let mut a = RunAccount::new("execsnoop", "rows");
    a.rows = t.rows;
    a.left_out = t.left_out;
    if t.traced == 0 {
        a.notes.push(if t.suite > 0 {
            "no other exec was traced".to_string()
        } else {
            "no exec was traced".to_string()
        });
    }
    if t.reexecs > 0 {
        a.notes.push(format!(
            "{} re-execs not shown (-r shows them)",
            perf_tools_ftrace::session::thousands(t.reexecs)
        ));
    }
    if t.suite > 0 {
        a.notes.push(format!(
            "{} execs by the suite's own tools hidden (--include-suite shows them)",
            perf_tools_ftrace::session::thousands(t.suite)
        ));
    }
    for (option, in_kernel) in args.scope.filter_notes(true) {
        a.filter(option, in_kernel);
    }
    if let Some(n) = &args.name {
        a.filter(format!("name {n}"), false);
    }
    a
}

/// The line naming what is instrumented (the original's `Instrumenting <function>`).
fn instrumenting(source: Source) -> &'static str {
    match source {
        Source::Eprobe => "Instrumenting sys_enter_execve",
        Source::Kprobe => "Instrumenting sys_execve",
        Source::Proc => "Instrumenting sched_process_exec",
    }
}

/// Runs execsnoop; returns the exit status.
pub fn run(args: Args) -> Result<i32> {
    if args.cleanup {
        cleanup::cleanup_command()?;
        return Ok(0);
    }
    if args.check {
        let shutdown = Shutdown::install()?;
        check_with(Some(&shutdown))?.print_check()?;
        return Ok(0);
    }
    let name_re = match &args.name {
        Some(n) => Some(cli::name_regex(n, "name regex")?),
        None => None,
    };
    let argc = args.argc as usize;
    let mut scope = args.scope.resolve()?;
    let mut columns = args.scope.columns();
    if let Some(sc) = &scope {
        columns.in_scope_of(sc);
    }
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let mut live = Live::new(&tracefs, Some(args.buffer_kb), argc, Some(&shutdown))?;
    let choice = verify::choose(&mut live, argc);
    if live.interrupted() {
        return Ok(0);
    }
    if args.verbose {
        if let Some(source) = choice.source {
            eprintln!(
                "execsnoop: arguments from {} (verified with its own exec)",
                source.describe()
            );
        }
        for r in &choice.rejected {
            eprintln!("execsnoop: not used: {}: {}", r.source.tag(), r.why);
        }
    }
    let Some(source) = choice.source else {
        let why: Vec<String> = choice
            .rejected
            .iter()
            .map(|r| format!("{}: {}", r.source.tag(), r.why))
            .collect();
        bail!(
            "no source of exec events works on this kernel ({}); `execsnoop --check` shows what was tried",
            why.join("; ")
        );
    };
    if source == Source::Proc {
        eprintln!("execsnoop: this kernel has no working event-probe or kprobe source (-v or --check says why): ARGS are read from /proc/PID/cmdline right after each exec; a process that exited first shows its file name and [exited], one whose arguments cannot be known [?] (-v shows each row's source in a SRC column)");
    }
    live.settle()?;
    let mut probes: Vec<Probe> = std::mem::take(&mut live.probes);
    let decoders: Vec<EventDecoder> = std::mem::take(&mut live.decoders);
    let Some(inst) = live.inst.take() else {
        bail!("the trace instance is gone");
    };
    drop(live);
    let mut suite = suite::Suite::new(&tracefs, !args.include_suite);
    if let Some(sc) = scope.as_mut() {
        // In the kernel: the cgroup's tasks and their children (the suite's tools inside
        // it are still hidden by `suite`).
        sc.apply(&inst)?;
    }
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;

    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    let _ = writeln!(out.buf, "{}", instrumenting(source));
    let _ = writeln!(
        out.buf,
        "{}",
        header_with(args.time, args.verbose, &columns.header())
    );
    out.flush()?;

    let mut execs = Execs::default();
    execs.reexec = args.reexec;
    let mut changes = Changes::default();
    let mut tgids = execs::Tgids::default();
    let mut last_trim = 0u64;
    let mut merger: Merger<Ev> = Merger::new();
    let streaming = args.duration.is_none();
    let mut lost = 0u64;
    let mut tally = Tally::default();
    let poll = Duration::from_millis(100);
    let end = session.stream(&shutdown, args.duration, poll, |reader, inst, turn| {
        let watermark = turn.clock;
        suite.refresh_if_due();
        if let Some(sc) = scope.as_mut() {
            sc.turn(inst, turn.last, &shutdown, "execsnoop", false)?;
        }
        let drain = |reader: &mut RawReader,
                     merger: &mut Merger<Ev>,
                     changes: &mut Changes,
                     lost_counted: u64| {
            let mut state = (merger, changes);
            let stats = reader.drain_rounds(
                u64::MAX,
                &mut state,
                |(merger, changes), cpu, ts, payload| {
                    let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
                    else {
                        return;
                    };
                    if let Some(ev) = decoders
                        .iter()
                        .find(|d| d.id == id)
                        .and_then(|d| d.decode(payload))
                    {
                        changes.note(ts, &ev);
                        merger.push(cpu as usize, ts, ev);
                    }
                },
                |(merger, changes), gap| {
                    changes.gap(gap.after, gap.before);
                    merger.push(gap.cpu as usize, gap.after, Ev::Gap { until: gap.before });
                },
                |_, _| {},
            );
            if stats.gaps == 0 {
                return 0;
            }
            stats
                .missed
                .max(reader.lost_events().saturating_sub(lost_counted))
        };
        let note_lost = |missed: u64, lost: &mut u64| {
            if missed > 0 {
                *lost += missed;
                eprintln!(
                    "WARNING: {missed} events lost: the kernel buffer overflowed (try --buffer-kb larger than {})",
                    args.buffer_kb
                );
            }
        };
        // Events up to now are in the buffers after this drain (on the last batch
        // tracing is off already: none come later, and reads of /proc made after this
        // cannot be confirmed).
        changes.known_until = perf_tools_core::clock::monotonic_ns();
        let missed = drain(reader, &mut merger, &mut changes, lost);
        note_lost(missed, &mut lost);
        if let Some((from, to)) = turn.state_gap {
            changes.gap(from, to);
            execs.event(to, Ev::Gap { until: to });
        }
        let mut drafts = Vec::new();
        merger.release(watermark, |ts, ev| {
            let ev = std::mem::replace(ev, Ev::Gap { until: 0 });
            if let Some(d) = execs.event(ts, ev) {
                drafts.push(d);
            }
        });
        tally.reexecs = execs.reexecs;
        let mut pending = Vec::with_capacity(drafts.len());
        for d in drafts {
            tally.traced += 1;
            if name_re
                .as_ref()
                .is_some_and(|re| !re.is_match(execs::comm_of(&d.filename)))
            {
                tally.left_out += 1;
                continue;
            }
            pending.push(execs::read_proc(d, &RealProc, &mut tgids, &changes));
        }
        if !pending.is_empty() && !turn.last {
            // Everything up to the reads, so that each read can be checked against it.
            changes.known_until = perf_tools_core::clock::monotonic_ns();
            let missed = drain(reader, &mut merger, &mut changes, lost);
            note_lost(missed, &mut lost);
        }
        for p in pending {
            let r = execs::resolve(p, &changes, argc, source);
            if suite.hides(r.pid, r.ppid, &r.filename) {
                tally.traced = tally.traced.saturating_sub(1);
                tally.suite += 1;
                continue;
            }
            if let Some(sc) = scope.as_mut() {
                // A task that left the cgroup (the kernel's list keeps it).
                if !sc.contains(r.pid) {
                    tally.traced = tally.traced.saturating_sub(1);
                    continue;
                }
            }
            tally.rows += 1;
            let mut extra = Vec::new();
            columns.write(&mut extra, r.pid);
            row_with(&mut out.buf, args.time, args.verbose, &extra, &r);
        }
        // Forget old history once a second (each trim walks its tables): the changes
        // of the last 10 s (reads are checked over milliseconds, reused Tgids over 5 s),
        // forks and probe events whose exec has not come within a minute.
        let now = perf_tools_core::clock::monotonic_ns();
        if now.saturating_sub(last_trim) >= 1_000_000_000 {
            last_trim = now;
            let keep = watermark.min(now).saturating_sub(10_000_000_000);
            changes.trim(keep);
            tgids.trim(now.saturating_sub(execs::TGID_TTL));
            execs.trim(keep.saturating_sub(50_000_000_000));
        }
        if streaming || turn.last {
            out.flush()?;
        }
        Ok(())
    })?;
    if end == StreamEnd::OutputClosed {
        session.finish()?;
        return Ok(0);
    }
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported: lost,
            note_on_stderr: false,
            loss_effect: "rows may be missing".into(),
            account: Some(account(&args, &tally)),
        },
        || {
            for p in probes.drain(..) {
                p.remove()?;
            }
            Ok(())
        },
    )?;
    Ok(0)
}
