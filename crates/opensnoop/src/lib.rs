//! opensnoop: trace open(), openat() and openat2() with file names and results.
//!
//! A port of perf-tools' `opensnoop` with the same options, banner, header and columns.
//! The syscalls are traced with their enter/exit tracepoints (a syscall the kernel or
//! architecture lacks is skipped), and the file name comes from the best source the
//! kernel offers ([`Source`]): an event probe on the enter tracepoint, a kprobe on
//! `do_sys_openat2`/`do_sys_open`, the original's `getname` kretprobe, or, without any
//! dynamic probes, `/proc/PID/fd/FD` right after a successful open. Events are decoded
//! from the private instance's binary ring buffers by the kernel's format files; probes
//! are named per run (`ptrs_<pid>`) and removed on every exit path.

use anyhow::{bail, Result};
use clap::Parser;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use perf_tools_core::check::Report;
use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_core::target;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::probe::Probe;
use perf_tools_ftrace::reader::RawReader;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, Session, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;

mod elf;
mod exclusion;
mod opens;
pub mod row;
pub mod source;
mod verify;

use exclusion::Exclusion;
use opens::{fd_table_of, tgid_cached, Comms, Draft, Opens};
pub use row::{
    banner, errno_name, fd_text, header, header_with, row, row_with, SRC_CLOSED, SRC_FAILED,
    SRC_PROC, SRC_REUSED, UNKNOWN,
};
use source::{Ev, EventDecoder, Kind};
pub use source::{Source, SYSCALLS};
use verify::{Live, Sentinel, Trial};

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "opensnoop",
    version,
    about = "Trace open() syscalls (open, openat, openat2) with file names and results",
    long_about = None,
    after_help = "Examples:\n  opensnoop                 # watch open()s live (unbuffered)\n  opensnoop -d 1            # trace 1 sec (buffered)\n  opensnoop -p 181          # trace I/O issued by PID 181 only\n  opensnoop conf            # trace filenames containing \"conf\"\n  opensnoop 'log$'          # filenames ending in \"log\"\n  opensnoop -x --errno      # only failed opens, with the error name\n\nSee the opensnoop(8) man page for more."
)]
pub struct Args {
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Only show opens by processes whose name matches this regex
    #[arg(short = 'n', value_name = "name", conflicts_with_all = ["pid", "tid"])]
    pub name: Option<String>,
    /// Only trace this process (all its threads, also ones created later)
    #[arg(short = 'p', value_name = "PID", conflicts_with = "tid")]
    pub pid: Option<u32>,
    /// Only trace this thread
    #[arg(short = 'L', value_name = "TID")]
    pub tid: Option<u32>,
    /// Include a timestamp column (TIMEs, seconds since boot)
    #[arg(short = 't')]
    pub time: bool,
    /// Only show failed opens
    #[arg(short = 'x')]
    pub failed: bool,
    /// Print FD in decimal and the error name (ENOENT, ...) of failed opens
    #[arg(long)]
    pub errno: bool,
    /// Say on stderr where file names come from (which probe or fallback), and show each
    /// row's name source in a SRC column before FILE
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Also show the opens of this suite's other running tools (processes that own a
    /// perf-tools-rs trace instance, and other copies of opensnoop), hidden by default;
    /// opensnoop's own opens are never shown
    #[arg(long = "include-suite")]
    pub include_suite: bool,
    /// Container scope and its columns
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::ScopeArgs,
    /// Only show files whose name matches this regex (partial strings are fine)
    #[arg(value_name = "filename")]
    pub filename: Option<String>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 2048, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Remove trace instances and probes left behind by killed runs, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Say which source of file names opensnoop would use on this kernel and why the
    /// better ones are not used (each checked with opensnoop's own opens), then exit: 0 if
    /// it can run, 1 if not. Nothing is left in tracefs
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// Checks that a `-p`/`-L` target exists, before any kernel state is created (the
/// suite's rule: [`perf_tools_core::target`]).
fn check_target(args: &Args) -> Result<()> {
    if let Some(p) = args.pid {
        target::require_process(p)?;
    }
    if let Some(t) = args.tid {
        target::require_thread(t)?;
    }
    Ok(())
}

/// What opensnoop would use on this host, and whether it can run (`--check`, and the
/// doctor's row for opensnoop): every source is set up and checked with opensnoop's own
/// opens as a run would, then removed again.
pub fn check() -> Result<Report> {
    check_with(None)
}

/// [`check`], its wait for opensnoop's own opens ended early by `shutdown` (`--check`).
fn check_with(shutdown: Option<&Shutdown>) -> Result<Report> {
    let tracefs = match Tracefs::open() {
        Ok(t) => t,
        Err(e) => {
            let mut r = Report::new("opensnoop");
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
    let mut live = match Live::new(&tracefs, None, shutdown) {
        Ok(l) => l,
        Err(e) => {
            let mut r = Report::new("opensnoop");
            r.item(
                "syscall tracepoints",
                perf_tools_core::check::Status::No,
                format!("{e:#}").replace('\n', " "),
                "a kernel with CONFIG_FTRACE_SYSCALLS=y",
                true,
            );
            return Ok(r);
        }
    };
    let choice = verify::choose(&mut live, &Sentinel::new(), &verify::ORDER);
    live.tear_down();
    if live.interrupted() {
        bail!("interrupted");
    }
    let syscalls = std::mem::take(&mut live.syscalls);
    // Removes the instance if the last source tried kept it.
    drop(live);
    let mut r = verify::report(&syscalls, &choice);
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

/// Runs opensnoop; returns the exit status.
pub fn run(args: Args) -> Result<i32> {
    if args.cleanup {
        cleanup::cleanup_command()?;
        return Ok(0);
    }
    if args.check {
        // Signals end the check in order (nothing is left in tracefs).
        let shutdown = Shutdown::install()?;
        check_with(Some(&shutdown))?.print_check()?;
        return Ok(0);
    }
    let name_re = match &args.name {
        Some(n) => Some(cli::name_regex(n, "-n regex")?),
        None => None,
    };
    let file_re = match &args.filename {
        Some(f) => Some(cli::name_regex(f, "filename regex")?),
        None => None,
    };
    perf_tools_ftrace::scope::reject_with_target(&args.scope, args.pid, args.tid)?;
    check_target(&args)?;
    let mut scope = args.scope.resolve()?;
    let mut columns = args.scope.columns();
    if let Some(sc) = &scope {
        columns.in_scope_of(sc);
    }

    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    // The instance and the chosen source's probes (removed in that order on every path).
    let mut live = Live::new(&tracefs, Some(args.buffer_kb), Some(&shutdown))?;
    let choice = verify::choose(&mut live, &Sentinel::new(), &verify::ORDER);
    if live.interrupted() {
        // Ended (or the output closed) before the header: the run's kernel state is
        // removed as `live` drops.
        return Ok(0);
    }
    let syscalls = live.syscalls.clone();
    if args.verbose {
        if let Some(source) = choice.source {
            eprintln!(
                "opensnoop: tracing {} with file names from {} (verified with its own opens)",
                syscalls.join(", "),
                source.describe()
            );
        }
        for r in &choice.rejected {
            eprintln!("opensnoop: not used: {}: {}", r.source.tag(), r.why);
        }
    }
    let Some(source) = choice.source else {
        let why: Vec<String> = choice
            .rejected
            .iter()
            .map(|r| format!("{}: {}", r.source.tag(), r.why))
            .collect();
        bail!(
            "no source of open events works on this kernel ({}); `opensnoop --check` shows what was tried",
            why.join("; ")
        );
    };
    match source {
        Source::ProcFd => eprintln!("opensnoop: this kernel has no working kprobe, event-probe or uprobe source (-v or --check says why), and syscall tracepoints record only the address of the file name: paths of successful opens are read from /proc/PID/fd/FD afterwards; FILE is {UNKNOWN} for failed opens and for fds closed before their path was read (-v shows each row's source in a SRC column)"),
        Source::Uprobe => eprintln!("opensnoop: this kernel has no working kprobe or event-probe source (-v or --check says why): file names come from uprobes on the C library's open functions; opens that bypass it (static binaries, direct syscalls) are resolved from /proc/PID/fd/FD afterwards, and FILE is {UNKNOWN} when they fail or their fd was closed first (-v shows each row's source in a SRC column)"),
        _ => {}
    }
    live.settle()?;
    // Declared before the session (which takes the instance) so that they are removed
    // after it: the kernel refuses to remove a probe still enabled in an instance.
    let mut probes: Vec<Probe> = std::mem::take(&mut live.probes);
    let mut events = std::mem::take(&mut live.events);
    let mut decoders = std::mem::take(&mut live.decoders);
    let Some(inst) = live.inst.take() else {
        bail!("the trace instance is gone");
    };
    // Where the events carry no process name (or not for every open: uprobes miss those
    // that bypass the C library), follow renames (exec, PR_SET_NAME) so that each
    // thread's name is read from /proc only once, and known after it exits.
    let comm_in_events = decoders
        .iter()
        .any(|d| matches!(d.kind, Kind::Name | Kind::UName) && d.comm.is_some());
    let follows_renames = (!comm_in_events || source.resolves_from_proc())
        && inst.dir().join("events/task/task_rename").is_dir();
    if follows_renames {
        let ev = ("task".to_string(), "task_rename".to_string(), Kind::Rename);
        decoders.push(EventDecoder::new(&inst.event_format(&ev.0, &ev.1)?, ev.2)?);
        events.push(ev);
    }
    let mut exclusion = None;
    if let Some(p) = args.pid.or(args.tid) {
        if args.pid.is_some() {
            if inst.follow_process(p)?.is_empty() {
                bail!("no process with PID {p} (it exited after opensnoop started)");
            }
        } else {
            inst.write("set_event_pid", &p.to_string())?;
        }
    } else {
        if let Some(sc) = scope.as_mut() {
            // In the kernel: the cgroup's threads and their children; the suite's tools
            // (if they run inside the cgroup) are still left out by the filter below.
            sc.apply(&inst)?;
        }
        let ex = Exclusion::new(&tracefs, !args.include_suite);
        for (sys, ev, _) in &events {
            inst.set_filter(sys, ev, &ex.filter())?;
        }
        exclusion = Some(ex);
    }
    if follows_renames {
        inst.enable_event("task", "task_rename")?;
    }
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;

    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    let _ = writeln!(
        out.buf,
        "{}",
        header_with(args.time, args.verbose, &columns.header())
    );
    out.flush()?;

    let mut opens = Opens::default();
    // The process of each thread seen: for -p and to name fd tables.
    let mut tgids: HashMap<u32, Option<u32>> = HashMap::new();
    let mut comms = Comms {
        names: HashMap::new(),
        follows_renames,
    };
    let mut merger: Merger<Ev> = Merger::new();
    let mut batch: Vec<Draft> = Vec::new();
    // Opens::record_fd keeps the latest exit per (fd table, fd) among all events drained
    // so far. Threads share their process's fd table, so the table is named by the
    // thread's process id (threads of one process reuse each other's closed fds).
    let streaming = args.duration.is_none();
    let mut lost = 0u64;
    // For the end-of-run account: rows printed, opens traced (past the filters in the
    // kernel), left out here by -x, -n or the filename regex, and hidden as the suite's.
    let mut tally = Tally::default();
    let poll = Duration::from_millis(100);
    let end = session.stream(&shutdown, args.duration, poll, |reader, inst, turn| {
        let watermark = turn.clock;
        if let Some(ex) = exclusion.as_mut() {
            ex.refresh_if_due();
        }
        if let Some(sc) = scope.as_mut() {
            sc.turn(inst, turn.last, &shutdown, "opensnoop", false)?;
        }
        let drain = |reader: &mut RawReader,
                     merger: &mut Merger<Ev>,
                     tgids: &mut HashMap<u32, Option<u32>>,
                     opens: &mut Opens,
                     lost_counted: u64| {
            let mut state = (merger, tgids, opens);
            let stats = reader.drain_rounds(
                u64::MAX,
                &mut state,
                |(merger, tgids, opens), cpu, ts, payload| {
                    let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
                    else {
                        return;
                    };
                    if let Some(d) = decoders.iter().find(|d| d.id == id) {
                        if let Some(ev) = d.decode(payload) {
                            if source.resolves_from_proc() && ev.kind == Kind::Exit && ev.ret >= 0 {
                                let table = fd_table_of(tgids, ev.tid);
                                opens.record_fd(table, ev.ret, ts);
                            }
                            merger.push(cpu as usize, ts, ev);
                        }
                    }
                },
                // In its place in the CPU's stream, so the merge reaches it in time order.
                |(merger, _, _), gap| {
                    let ev = Ev {
                        kind: Kind::Gap,
                        tid: 0,
                        ret: gap.before.min(i64::MAX as u64) as i64,
                        name: None,
                        comm: None,
                        ptr: None,
                    };
                    merger.push(gap.cpu as usize, gap.after, ev);
                },
                |_, _| {},
            );
            if stats.gaps == 0 {
                return 0;
            }
            // The pages' flags say where events were lost and at least how many; the
            // kernel's counters say exactly how many.
            stats.missed.max(reader.lost_events().saturating_sub(lost_counted))
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
        let missed = drain(reader, &mut merger, &mut tgids, &mut opens, lost);
        note_lost(missed, &mut lost);
        if let Some((_, to)) = turn.state_gap {
            // Another process changed (or put back) our settings: events up to `to` may
            // be missing. As at a loss, forget what was remembered and every name seen
            // up to then (including those the merge still holds).
            opens.gap(to);
            comms.names.clear();
        }
        merger.release(watermark, |ts, ev| match ev.kind {
            Kind::Gap => {
                // Names remembered before the gap may belong to lost exits; so may
                // renames. Names seen up to its end may be followed by a lost exit.
                opens.gap(ev.ret as u64);
                comms.names.clear();
            }
            Kind::Enter => opens.enter(ev.tid, ev.ptr),
            Kind::Name => opens.name(ts, ev.tid, ev.name.take(), ev.comm.take()),
            Kind::UName => opens.uname(ts, ev.tid, ev.ptr, ev.name.take(), ev.comm.take()),
            Kind::Rename => {
                let (Some(new), Some(old)) = (ev.name.take(), ev.comm.take()) else {
                    return;
                };
                // Rows of this batch not yet named had the old name.
                for d in batch.iter_mut().filter(|d| d.tid == ev.tid && d.comm.is_none()) {
                    d.comm = Some(old.clone());
                }
                comms.names.insert(ev.tid, new);
            }
            Kind::Exit => {
                // None: the probe did not see this open (it began before tracing did).
                let Some(p) = opens.exit(ev.tid, !source.resolves_from_proc()) else {
                    return;
                };
                if let Some(sc) = scope.as_mut() {
                    // A task that left the cgroup (the kernel's list keeps it).
                    if !sc.contains(ev.tid) {
                        return;
                    }
                }
                if let Some(want) = args.pid {
                    // A thread of another process (the kernel's -p filter follows forks
                    // too): part of what -p leaves out.
                    if tgid_cached(&mut tgids, ev.tid).is_some_and(|t| t != want) {
                        return;
                    }
                }
                tally.traced += 1;
                if args.failed && ev.ret >= 0 {
                    tally.left_out += 1;
                    return;
                }
                let (comm, probe_comm) = match p.comm {
                    // Only a plausible comm (decoding of $comm differs across kernels).
                    Some(c)
                        if !c.is_empty()
                            && c.len() <= 16
                            && c.iter().all(|b| b.is_ascii_graphic() || *b == b' ') =>
                    {
                        (Some(c), None)
                    }
                    c => (comms.names.get(&ev.tid).cloned(), c.filter(|c| !c.is_empty())),
                };
                batch.push(Draft {
                    ts,
                    comm,
                    probe_comm,
                    tid: ev.tid,
                    ret: ev.ret,
                    name: p.name,
                });
            }
        });
        // Resolve and print the batch. With the /proc fallback a path is read from
        // /proc/TID/fd/FD now, after the fact: if the same thread got the same fd again
        // later (in any event drained so far, including ones held for the next batch),
        // the first file was closed and the fd reused, and its path can't be known. The
        // buffers are drained once more after the paths were read, so that a reuse just
        // before a read is seen too; only paths that survive that check are printed.
        let is_reused = |tgids: &mut HashMap<u32, Option<u32>>,
                         opens: &Opens,
                         d: &Draft| {
            opens.reused(fd_table_of(tgids, d.tid), d.ret, d.ts)
        };
        let mut resolved: Vec<(Draft, Vec<u8>, Vec<u8>, &str)> = Vec::with_capacity(batch.len());
        let mut read_links = false;
        for d in batch.drain(..) {
            let comm = d
                .comm
                .clone()
                .or_else(|| comms.get(d.tid))
                .or_else(|| d.probe_comm.clone())
                .unwrap_or_else(|| b"<...>".to_vec());
            if let Some(ex) = exclusion.as_mut() {
                if ex.hides(d.tid, &comm) {
                    tally.traced = tally.traced.saturating_sub(1);
                    tally.suite += 1;
                    continue;
                }
            }
            if name_re.as_ref().is_some_and(|re| !re.is_match(&comm)) {
                tally.left_out += 1;
                continue;
            }
            // Uprobes miss opens that bypass the C library: those are resolved as in
            // the /proc fallback.
            let from_proc = match source {
                Source::ProcFd => true,
                Source::Uprobe => d
                    .name
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || n == b"(fault)"),
                _ => false,
            };
            let (file, src): (Vec<u8>, &str) = match (from_proc, &d.name) {
                (true, _) if d.ret >= 0 => {
                    if is_reused(&mut tgids, &opens, &d) {
                        (UNKNOWN.as_bytes().to_vec(), SRC_REUSED)
                    } else {
                        read_links = true;
                        match std::fs::read_link(format!("/proc/{}/fd/{}", d.tid, d.ret)) {
                            Ok(path) => (path.into_os_string().into_encoded_bytes(), SRC_PROC),
                            Err(_) => (UNKNOWN.as_bytes().to_vec(), SRC_CLOSED),
                        }
                    }
                }
                (true, _) => (UNKNOWN.as_bytes().to_vec(), SRC_FAILED),
                (false, Some(n)) if !n.is_empty() => (n.clone(), source.tag()),
                (false, _) => (b"(fault)".to_vec(), source.tag()),
            };
            resolved.push((d, comm, file, src));
        }
        if read_links && !turn.last {
            let missed = drain(reader, &mut merger, &mut tgids, &mut opens, lost);
            note_lost(missed, &mut lost);
        }
        for (d, comm, mut file, mut src) in resolved {
            if src == SRC_PROC && is_reused(&mut tgids, &opens, &d) {
                (file, src) = (UNKNOWN.as_bytes().to_vec(), SRC_REUSED);
            }
            if let Some(re) = &file_re {
                let known = src != SRC_REUSED && src != SRC_CLOSED && src != SRC_FAILED;
                if !known || !re.is_match(&file) {
                    tally.left_out += 1;
                    continue;
                }
            }
            tally.rows += 1;
            let mut extra = Vec::new();
            columns.write(&mut extra, d.tid);
            row_with(
                &mut out.buf,
                args.time.then_some(d.ts),
                &comm,
                d.tid,
                &fd_text(d.ret, args.errno),
                args.verbose.then_some(src),
                &extra,
                &file,
            );
        }
        opens.trim(watermark);
        if tgids.len() > 100_000 {
            // Thread ids get reused: forget them now and then.
            tgids.clear();
            columns.forget();
        }
        comms.end_batch();
        if let Some(ex) = exclusion.as_mut().filter(|ex| ex.dirty) {
            let filter = ex.filter();
            for (sys, ev, _) in &events {
                inst.set_filter(sys, ev, &filter)?;
            }
            ex.dirty = false;
        }
        if streaming || turn.last {
            out.flush()?;
        }
        Ok(())
    })?;
    if end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly, cleaning up.
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

/// What a run traced and printed, for its end-of-run account.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Rows printed.
    rows: u64,
    /// Opens traced: returned in the events (past the filters in the kernel), not the
    /// suite's, and begun after tracing did.
    traced: u64,
    /// Of those, left out by -x, -n or the filename regex.
    left_out: u64,
    /// Opens of the suite's other tools, hidden (--include-suite shows them).
    suite: u64,
}

/// The end-of-run account of a run: printed if it printed no rows or a filter here left
/// some out.
fn account(args: &Args, t: &Tally) -> RunAccount {
    let mut a = RunAccount::new("opensnoop", "rows");
    a.rows = t.rows;
    a.left_out = t.left_out;
    if t.traced == 0 {
        a.notes.push(
            if args.pid.is_some() || args.tid.is_some() || args.scope.scoped() {
                "no open by the target was traced".to_string()
            } else if t.suite > 0 {
                "no other open was traced".to_string()
            } else {
                "no open was traced".to_string()
            },
        );
    }
    if t.suite > 0 {
        a.notes.push(format!(
            "{} opens by the suite's own tools hidden (--include-suite shows them)",
            perf_tools_ftrace::session::thousands(t.suite)
        ));
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
    if let Some(n) = &args.name {
        a.filter(format!("-n {n}"), false);
    }
    if args.failed {
        a.filter("-x", false);
    }
    if let Some(f) = &args.filename {
        a.filter(format!("filename {f}"), false);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["opensnoop", "-p", "1", "-n", "x"][..],
            &["opensnoop", "-p", "1", "-L", "2"],
            &["opensnoop", "-n", "x", "-L", "2"],
            &["opensnoop", "-d", "0"],
            &["opensnoop", "-d", "x"],
            &["opensnoop", "a", "b"],
            &["opensnoop", "-z"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn the_account_names_the_filters_and_where_they_apply() {
        let args = Args::try_parse_from(["opensnoop", "-d", "1", "-n", "nope"]).unwrap();
        let t = Tally {
            rows: 0,
            traced: 1204,
            left_out: 1204,
            suite: 0,
        };
        assert_eq!(
            account(&args, &t).line().unwrap(),
            "opensnoop: 0 rows: 1,204 traced, 1,204 left out by -n nope (filter -n nope); 0 lost"
        );
        let args = Args::try_parse_from(["opensnoop", "-x", "-p", "42", "conf"]).unwrap();
        let t = Tally {
            rows: 0,
            traced: 0,
            left_out: 0,
            suite: 0,
        };
        assert_eq!(
            account(&args, &t).line().unwrap(),
            "opensnoop: 0 rows: no open by the target was traced (filters -p 42 -x filename conf); 0 lost; -p 42 filtered in the kernel, which does not count what it leaves out: run without it (or with --check) to see what it excludes"
        );
    }

    #[test]
    fn a_run_with_rows_and_nothing_left_out_has_no_account() {
        let args = Args::try_parse_from(["opensnoop", "-n", "cat"]).unwrap();
        let t = Tally {
            rows: 3,
            traced: 5,
            left_out: 0,
            suite: 2,
        };
        assert_eq!(account(&args, &t).line(), None);
        // Nothing but the suite's opens: said so, with how to see them.
        let args = Args::try_parse_from(["opensnoop"]).unwrap();
        let t = Tally {
            rows: 0,
            traced: 0,
            left_out: 0,
            suite: 7,
        };
        assert_eq!(
            account(&args, &t).line().unwrap(),
            "opensnoop: 0 rows: no other open was traced, 7 opens by the suite's own tools hidden (--include-suite shows them); 0 lost"
        );
    }
}
