//! cachestat: page cache hits, misses and dirties per interval.
//!
//! A port of perf-tools' `cachestat` with the same options, banner, header and columns.
//! The original counted four kernel functions with the function profiler; their names
//! changed with the folio conversions, and this host class often has no function tracer
//! at all. Here every source is chosen at run time by what the running kernel has
//! ([`sources`]) and verified by a canary of the tool's own file I/O before the first
//! interval ([`canary`]):
//!
//! * page additions (misses): the tracepoint `filemap:mm_filemap_add_to_page_cache`,
//! * page dirties: the tracepoint `writeback:writeback_dirty_folio` (or
//!   `writeback:writeback_dirty_page` before folios),
//! * page accesses (hits): a kprobe on `folio_mark_accessed` (or `mark_page_accessed`
//!   before folios), and on `mark_buffer_dirty`; there is no tracepoint for them.
//!
//! All are counted from the raw buffers of a private instance. Without kprobes there is
//! no source of accesses: HITS and RATIO are then printed as `-` (never invented) and the
//! run says so on stderr. An impossible derived value (negative hits or misses) is
//! printed as `?` with an explanation on stderr, never clamped.

use anyhow::{bail, Result};
use clap::Parser;
use std::io::Write;
use std::time::{Duration, Instant};

use perf_tools_core::output::Output;
use perf_tools_core::signals::{Shutdown, Wake};
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::session::{EndOfRun, Session};
use perf_tools_ftrace::tracefs::Tracefs;

pub mod calc;
pub mod canary;
pub mod sources;

use calc::Tally;
use sources::Plan;

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "cachestat",
    version,
    about = "Show page cache hits, misses and dirties per interval",
    long_about = None,
    after_help = "Examples:\n  cachestat                 # show stats every second\n  cachestat 5               # show stats every 5 seconds\n  cachestat -t              # with a TIME column\n  cachestat -D              # with the raw counters\n\nSee the cachestat(8) man page for the kernel functions and tracepoints used per kernel."
)]
pub struct Args {
    /// Print the raw counters after each row (debug)
    #[arg(short = 'D')]
    pub debug: bool,
    /// Include a timestamp (HH:MM:SS)
    #[arg(short = 't')]
    pub timestamp: bool,
    /// Output interval in seconds
    #[arg(value_name = "interval", default_value_t = 1, value_parser = perf_tools_core::cli::at_least::<u64>("interval", 1))]
    pub interval: u64,
    /// Exit after this many intervals (default: until Ctrl-C)
    #[arg(long, value_name = "N", value_parser = perf_tools_core::cli::at_least::<u64>("--count", 1))]
    pub count: Option<u64>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Container scope: only the page cache events of a cgroup's tasks (filtered in the
    /// kernel); BUFFERS_MB stays the system's, CACHE_MB becomes the cgroup's page cache
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Remove trace instances and probes left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Say which kernel functions and tracepoints cachestat would count on this host
    /// (verified with its own file I/O), then exit: 0 if it can run, 1 if not
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The startup line, as the original prints it.
pub fn banner(interval: u64) -> String {
    format!("Counting cache functions... Output every {interval} seconds.")
}

/// The header line (without newline), as the original prints it.
pub fn header(timestamp: bool, debug: bool) -> String {
    let mut s = String::new();
    if timestamp {
        s.push_str(&format!("{:<8} ", "TIME"));
    }
    s.push_str(&format!(
        "{:>8} {:>8} {:>8} {:>8} {:>12} {:>10}",
        "HITS", "MISSES", "DIRTIES", "RATIO", "BUFFERS_MB", "CACHE_MB"
    ));
    if debug {
        s.push_str("  DEBUG");
    }
    s
}

/// Runs cachestat.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let mut scope = args.scope.resolve()?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    // Probes first: they must outlive (be dropped after) the instances using them.
    let plan = Plan::choose(&tracefs)?;
    for n in &plan.notes {
        eprintln!("cachestat: note: {n}");
    }
    match canary::run(&tracefs, &plan) {
        Ok(canary::Verdict::Passed(_)) => {}
        Ok(canary::Verdict::Skipped(why)) => {
            eprintln!("cachestat: note: sources not verified: {why}")
        }
        Ok(canary::Verdict::Failed(why)) => bail!(
            "the canary failed: {why}; the counts would be wrong on this kernel, so cachestat does not run (report this kernel as a bug of perf-tools-rs)"
        ),
        Err(e) => return Err(e.context("running the canary")),
    }
    let inst = cleanup::start_instance(&tracefs, "cachestat")?;
    inst.set_tracing_on(false)?;
    inst.ensure("trace_clock", "mono")?;
    inst.ensure("buffer_size_kb", &args.buffer_kb.to_string())?;
    let _ = inst.ensure("buffer_percent", "25");
    let dec = plan.enable(&inst, None)?;
    if let Some(sc) = scope.as_mut() {
        sc.apply(&inst)?;
    }
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;
    perf_tools_core::fault::fault_point();

    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(args.interval));
    let _ = writeln!(out.buf, "{}", header(args.timestamp, args.debug));
    if let Err(e) = out.flush() {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return session.finish();
        }
        return Err(anyhow::Error::from(e).context("writing the header"));
    }
    let interval = Duration::from_secs(args.interval);
    let mut next = Instant::now() + interval;
    let mut tally = Tally::default();
    let mut lost_total = 0u64;
    let mut lost_interval = 0u64;
    let mut undecoded = 0u64;
    // Events of tasks that had left the cgroup: not counted.
    let mut left_out = 0u64;
    let mut printed = 0u64;
    let poll = Duration::from_millis(250);
    loop {
        let timeout = poll.min(next.saturating_duration_since(Instant::now()));
        let wake = session.reader.wait(&shutdown, timeout);
        if wake == Wake::OutputClosed {
            return session.finish();
        }
        session.check_state()?;
        if session.take_state_gap().is_some() {
            eprintln!("WARNING: another process changed this run's trace settings: the counts of this interval may be too low");
        }
        if let Some(sc) = scope.as_mut() {
            sc.turn(
                &session.instance,
                wake == Wake::Shutdown,
                &shutdown,
                "cachestat",
                false,
            )?;
        }
        let stats = session.reader.drain(|_, _, payload| {
            // A task that moved out of the cgroup stays in the kernel's list.
            if let Some(sc) = scope.as_mut() {
                if !dec.pid(payload).is_some_and(|p| sc.contains(p)) {
                    left_out += 1;
                    return;
                }
            }
            if !dec.count(payload, &mut tally) {
                undecoded += 1;
            }
        });
        if stats.gaps > 0 || stats.missed > 0 {
            let now = session.reader.lost_events().max(lost_total + stats.missed);
            if now > lost_total {
                lost_interval += now - lost_total;
                lost_total = now;
            }
        }
        if wake == Wake::Shutdown {
            break;
        }
        let now = Instant::now();
        if now >= next {
            // One row per interval; if this process was held up past a whole interval,
            // the next row still covers a whole one (no short catch-up row).
            next += interval;
            if next <= now {
                next = now + interval;
            }
            let mut mem = calc::Meminfo::read();
            if let Some(sc) = &scope {
                mem.cached_mb = calc::cgroup_cache_mb(&sc.cgroup().dir);
            }
            let stamp = args
                .timestamp
                .then(|| chrono::Local::now().format("%H:%M:%S").to_string());
            let counts = tally.take();
            let row = calc::derive(&counts, plan.has_accesses());
            let line =
                calc::format_row(stamp.as_deref(), &row, &mem, args.debug.then_some(&counts));
            let _ = writeln!(out.buf, "{line}");
            if let Err(e) = out.flush() {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return session.finish();
                }
                return Err(e.into());
            }
            for p in &row.problems {
                eprintln!("cachestat: {p}");
            }
            if lost_interval > 0 {
                eprintln!(
                    "WARNING: {lost_interval} events lost in this interval: the kernel buffer overflowed (try --buffer-kb larger than {}); its counts are too low",
                    args.buffer_kb
                );
                lost_interval = 0;
            }
            printed += 1;
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
        }
    }
    if undecoded > 0 {
        eprintln!("WARNING: {undecoded} events could not be decoded and were not counted");
    }
    if left_out > 0 {
        eprintln!("cachestat: note: {left_out} events of tasks that had moved out of the cgroup were not counted");
    }
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported: lost_total,
            note_on_stderr: true,
            loss_effect: "the counts are too low".into(),
            account: None,
        },
        || Ok(()),
    )?;
    drop(plan);
    Ok(())
}

/// What cachestat would count on this host and whether it can run (`--check`, and its
/// row in perf-tools-doctor): each source chosen, then the canary of its own file I/O.
pub fn check() -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    let mut r = Report::new("cachestat");
    r.uses = "page cache tracepoints (and kprobes for accesses) counted from a private instance's raw buffers".into();
    let Some(tracefs) = perf_tools_ftrace::check::tracefs(&mut r) else {
        return Ok(r);
    };
    let plan = match Plan::choose(&tracefs) {
        Ok(p) => p,
        Err(e) => {
            r.item(
                "sources",
                Status::No,
                format!("{e:#}"),
                "a kernel with CONFIG_TRACEPOINTS and the filemap and writeback events",
                true,
            );
            return Ok(r);
        }
    };
    r.uses = plan.describe();
    for (role, what, ok) in plan.items() {
        r.item(
            role,
            if ok { Status::Yes } else { Status::Degraded },
            what,
            if ok {
                ""
            } else {
                "a kernel with CONFIG_KPROBE_EVENTS=y (kprobes) for HITS and RATIO"
            },
            false,
        );
    }
    match canary::run(&tracefs, &plan) {
        Ok(canary::Verdict::Passed(what)) => {
            r.item("canary", Status::Yes, what, "", true);
        }
        Ok(canary::Verdict::Skipped(why)) => {
            r.item(
                "canary",
                Status::Degraded,
                format!("not run: {why}"),
                "set TMPDIR to a directory on a disk-backed file system",
                false,
            );
        }
        Ok(canary::Verdict::Failed(why)) => {
            r.item(
                "canary",
                Status::No,
                why,
                "report this kernel as a bug of perf-tools-rs",
                true,
            );
        }
        Err(e) => {
            r.item(
                "canary",
                Status::No,
                format!("{e:#}"),
                "run as root with tracefs mounted",
                true,
            );
        }
    }
    drop(plan);
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_and_banner_match_the_original() {
        assert_eq!(
            header(false, false),
            "    HITS   MISSES  DIRTIES    RATIO   BUFFERS_MB   CACHE_MB"
        );
        assert_eq!(
            header(true, true),
            "TIME         HITS   MISSES  DIRTIES    RATIO   BUFFERS_MB   CACHE_MB  DEBUG"
        );
        assert_eq!(
            banner(1),
            "Counting cache functions... Output every 1 seconds."
        );
    }

    #[test]
    fn usage_errors_exit_2() {
        for argv in [
            &["cachestat", "0"][..],
            &["cachestat", "x"],
            &["cachestat", "-x"],
            &["cachestat", "1", "2"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
        let a = Args::try_parse_from(["cachestat", "-Dt", "5"]).unwrap();
        assert!(a.debug && a.timestamp);
        assert_eq!(a.interval, 5);
    }
}
