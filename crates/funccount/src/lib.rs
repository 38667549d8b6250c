//! funccount: count kernel function calls matching a glob, per interval or for a
//! duration.
//!
//! A port of perf-tools' `funccount` with the same options and columns (`FUNC`,
//! `COUNT`, ascending, `-t` keeping the largest). The original reads the kernel's function
//! profiler, which exists only at the top level, shares the top level's
//! `set_ftrace_filter` with any function tracer running there, and is missing from many
//! distribution kernels (CONFIG_FUNCTION_PROFILER; Debian's). funccount never takes over
//! the top level; it chooses, verifies with a canary and names the best counter the
//! running kernel offers in a private instance (`instances/funccount-<pid>`), so it runs
//! beside funcgraph, another funccount or any other ftrace user:
//!
//! 1. hist triggers on one fprobe event per function (Linux 6.7+, CONFIG_FPROBE_EVENTS,
//!    CONFIG_HIST_TRIGGERS): counted in the kernel, nothing goes through the ring buffer,
//!    nothing can be lost;
//! 2. the same on kprobe events (kernels without fprobe events);
//! 3. the function tracer's records counted in user space from the binary buffer (any
//!    kernel with the function tracer; the kernel's losses are counted and reported).
//!
//! The in-kernel counters are used for up to [`kernel::MAX_PROBES`] functions (each is a
//! probe the kernel creates and removes one by one).

use anyhow::Result;
use clap::Parser;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use perf_tools_core::check::{Report, Status};
use perf_tools_core::cli;
use perf_tools_core::output::{escape_into, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::canary;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::function::{self, FunctionEvent, Setup, Symbols};
use perf_tools_ftrace::hist::ProbeKind;
use perf_tools_ftrace::session::{thousands, Session, StreamEnd};
use perf_tools_ftrace::toplevel::filter_function_names;
use perf_tools_ftrace::tracefs::Tracefs;

pub mod kernel;

/// Command-line options (the original's, plus `--force`, `--buffer-kb`, `--cleanup`,
/// `--check`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "funccount",
    version,
    about = "Count kernel function calls matching a glob, using the function tracer",
    long_about = None,
    after_help = "Examples:\n  funccount 'vfs*'          # trace all funcs that match \"vfs*\"\n  funccount -d 5 'tcp*'     # trace \"tcp*\" funcs for 5 seconds\n  funccount -t 10 'ext3*'   # show top 10 \"ext3*\" funcs\n  funccount -i 1 'ext3*'    # summary every 1 second\n  funccount -i 1 -d 5 'ext3*' # 5 x 1 second summaries\n  funccount --cgroup /sys/fs/cgroup/web 'vfs_*'  # calls by that cgroup's tasks\n\nWARNING: every counted call costs the kernel time; see the funccount(8) man page."
)]
pub struct Args {
    /// Total duration of the trace, in seconds
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Print a summary every this many seconds
    #[arg(short = 'i', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration)]
    pub interval: Option<f64>,
    /// Show the top this many functions only
    #[arg(short = 't', value_name = "top", value_parser = perf_tools_core::cli::at_least::<usize>("top", 1))]
    pub top: Option<usize>,
    /// Include a timestamp before each summary
    #[arg(short = 'T')]
    pub timestamps: bool,
    /// Count even when the glob matches more than 1000 functions
    #[arg(long)]
    pub force: bool,
    /// The counter: the best this kernel verifies (auto), or only the one named
    #[arg(long, value_enum, default_value_t = Counter::Auto)]
    pub counter: Counter,
    /// Per-CPU trace buffer size in KiB (the records counter's)
    #[arg(long, value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1 << 20))]
    pub buffer_kb: u32,
    /// Kernel function name(s) or glob(s) to count, e.g. 'vfs_*'
    #[arg(value_name = "funcstring", required = true)]
    pub functions: Vec<String>,
    /// Container scope, filtered in the kernel (set_ftrace_pid of the private instance)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Remove what killed runs of any tool left behind (instances, top-level settings), then exit
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

/// The counters funccount can use (`--counter`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// The first of fprobe, kprobe, records that works and passes its canary.
    Auto,
    /// Hist triggers on fprobe events, counted in the kernel.
    Fprobe,
    /// Hist triggers on kprobe events, counted in the kernel.
    Kprobe,
    /// Function tracer records counted in user space.
    Records,
}

impl Counter {
    /// The counters tried, best first.
    pub fn order(self) -> &'static [Counter] {
        match self {
            Counter::Auto => &[Counter::Fprobe, Counter::Kprobe, Counter::Records],
            Counter::Fprobe => &[Counter::Fprobe],
            Counter::Kprobe => &[Counter::Kprobe],
            Counter::Records => &[Counter::Records],
        }
    }
}

/// The records counter, as named on stderr and in `--check`.
pub const COUNTER: &str =
    "function tracer records counted in user space (private instance, binary buffer)";

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let funcs = function::patterns(&args.functions).join(" ");
    let stext = args.scope.banner_text();
    let ttext = args
        .top
        .map(|t| format!(" Top {t} only."))
        .unwrap_or_default();
    match args.duration {
        Some(d) => format!("Tracing \"{funcs}\"{stext} for {d} seconds.{ttext}.."),
        None => format!("Tracing \"{funcs}\"{stext}.{ttext}.. Ctrl-C to end."),
    }
}

/// Appends one summary: a blank line, the date with `-T`, the column header and the
/// functions by ascending count (ties by name), only the last `top` with `-t`.
pub fn summary(
    out: &mut Vec<u8>,
    counts: &HashMap<String, u64>,
    top: Option<usize>,
    date: Option<&str>,
) {
    out.push(b'\n');
    if let Some(d) = date {
        out.extend_from_slice(d.as_bytes());
        out.push(b'\n');
    }
    let _ = writeln!(out, "{:<30} {:>8}", "FUNC", "COUNT");
    let mut rows: Vec<(&String, &u64)> = counts.iter().filter(|(_, &n)| n > 0).collect();
    rows.sort_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)));
    let skip = top.map_or(0, |t| rows.len().saturating_sub(t));
    for (name, n) in rows.into_iter().skip(skip) {
        let start = out.len();
        escape_into(out, name.as_bytes());
        let w = out.len() - start;
        for _ in w..30 {
            out.push(b' ');
        }
        let _ = writeln!(out, " {n:>8}");
    }
}

/// Counts per function address, named at each summary.
#[derive(Debug, Default)]
struct Counts {
    by_ip: HashMap<u64, u64>,
    /// Events the kernel reported lost since the last summary.
    lost: u64,
}

impl Counts {
    fn named(&self, syms: &mut Symbols) -> HashMap<String, u64> {
        let mut m: HashMap<String, u64> = HashMap::new();
        let mut buf = Vec::new();
        for (&ip, &n) in &self.by_ip {
            buf.clear();
            syms.render(&mut buf, ip, false);
            *m.entry(String::from_utf8_lossy(&buf).into_owned())
                .or_default() += n;
        }
        m
    }
}

/// What funccount would use on this host and whether it can run (`--check`, and its
/// row in perf-tools-doctor): the counters it knows, best first, each in-kernel one
/// verified with its canary in a private instance (removed before this returns), and
/// which it takes.
pub fn check() -> Result<Report> {
    let mut r = function::check_report("funccount")?;
    let Ok(tracefs) = Tracefs::open() else {
        return Ok(r);
    };
    let profiler = tracefs.path("function_profile_enabled").exists();
    r.item(
        "function profiler",
        Status::Yes,
        if profiler {
            "present (top level only): not used; it shares the top level's set_ftrace_filter with any function tracer there, so funccount counts in a private instance instead and never takes over the top level"
        } else {
            "absent (kernel built without CONFIG_FUNCTION_PROFILER): not needed"
        },
        "",
        false,
    );
    if r.uses.starts_with("nothing") {
        return Ok(r);
    }
    r.uses = COUNTER.into();
    let names_text = function::available_functions(&tracefs).unwrap_or_default();
    let names = filter_function_names(&names_text);
    let Ok(inst) = cleanup::start_instance(&tracefs, "funccount") else {
        return Ok(r);
    };
    let support = perf_tools_ftrace::probe::Support::detect(&tracefs);
    let mut chosen = None;
    let mut failed = Vec::new();
    for kind in [ProbeKind::Fprobe, ProbeKind::Kprobe] {
        let name = format!("hist triggers on {} events", kind.name());
        match perf_tools_ftrace::hist::canary(&tracefs, &inst, &support, kind, &names) {
            Ok(f) => {
                r.item(
                    name,
                    Status::Yes,
                    format!(
                        "verified: {} {f} calls counted exactly{}",
                        perf_tools_ftrace::hist::CANARY_CALLS,
                        if chosen.is_some() {
                            " (not needed)"
                        } else {
                            ""
                        }
                    ),
                    "",
                    false,
                );
                chosen.get_or_insert(kind);
            }
            Err(e) => failed.push((name, canary::one_line(&e))),
        }
    }
    // Missing in-kernel counters degrade funccount only if none works.
    for (name, why) in failed {
        r.item(
            name,
            if chosen.is_some() { Status::Yes } else { Status::Degraded },
            why,
            "for in-kernel counting without loss use Linux 6.7+ built with CONFIG_FPROBE_EVENTS=y and CONFIG_HIST_TRIGGERS=y (or CONFIG_KPROBE_EVENTS=y and CONFIG_HIST_TRIGGERS=y); funccount counts records in user space meanwhile",
            false,
        );
    }
    inst.remove()?;
    if let Some(kind) = chosen {
        r.uses = format!(
            "{} for up to {} functions, else {COUNTER}",
            kernel::Counters::describe(kind),
            kernel::MAX_PROBES
        );
    }
    Ok(r)
}

/// Runs funccount.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let pats = function::patterns(&args.functions);
    if pats.is_empty() {
        return Err(cli::usage(
            "no function given: name a kernel function or glob, e.g. funccount 'vfs_*'",
        ));
    }
    // Resolved before any kernel state is made: a wrong path changes nothing.
    let mut scope = args.scope.resolve()?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    function::require_function_tracer(&tracefs, "funccount")?;
    let aff = function::available_functions(&tracefs)?;
    let names = filter_function_names(&aff);
    let matched = function::check_selection("funccount", &pats, &names, args.force)?;
    let mut selected = function::matching(&pats, &names);
    selected.sort_unstable();
    selected.dedup();
    // Declared before the instance: probes go after it (a probe with a trigger is busy).
    let mut in_kernel: Option<kernel::Counters> = None;
    let inst = cleanup::start_instance(&tracefs, "funccount")?;
    let mut rejected = Vec::new();
    for &counter in args.counter.order() {
        let kind = match counter {
            Counter::Fprobe => ProbeKind::Fprobe,
            Counter::Kprobe => ProbeKind::Kprobe,
            Counter::Auto | Counter::Records => break,
        };
        if pats.iter().any(|p| function::kernel_only(p)) {
            rejected.push(format!("{}: the patterns hold one the kernel interprets itself (!negation, :mod:, [class]), so the functions to probe are not known", kind.name()));
            continue;
        }
        match kernel::set_up(&tracefs, &inst, kind, &selected, &names, scope.as_mut()) {
            Ok(c) => {
                in_kernel = Some(c);
                break;
            }
            Err(e) => rejected.push(format!("{}: {}", kind.name(), canary::one_line(&e))),
        }
    }
    if in_kernel.is_none() && !args.counter.order().contains(&Counter::Records) {
        inst.remove()?;
        anyhow::bail!(
            "the {:?} counter cannot count on this kernel: {}; try --counter auto",
            args.counter,
            rejected.join("; ")
        );
    }
    if args.counter == Counter::Auto {
        for r in &rejected {
            eprintln!("funccount: not counting with hist triggers on {r}");
        }
    }
    if let Some(set) = &in_kernel {
        eprintln!(
            "funccount: counting {} functions with {} (verified: {} {} calls counted exactly); calls by funccount itself are not counted",
            set.counters.len(),
            kernel::Counters::describe(set.kind),
            perf_tools_ftrace::hist::CANARY_CALLS,
            set.canary
        );
        // PT_FAULT=panic (cleanup tests): everything must still be removed while unwinding.
        perf_tools_core::fault::fault_point();
        let mut out = Output::stdout();
        let _ = writeln!(out.buf, "{}", banner(&args));
        out.flush()?;
        // After the banner, as the records counter turns tracing on after it: what the
        // counters held before is not counted (reading them all takes a while).
        let baseline = set.baseline()?;
        let (total, summaries, closed) = kernel::run(
            &args,
            &inst,
            set,
            baseline,
            scope.as_mut(),
            &shutdown,
            &mut out,
        )?;
        inst.remove()?;
        if closed {
            return Ok(());
        }
        let _ = writeln!(out.buf, "\nEnding tracing...");
        out.flush()?;
        if total == 0 {
            say_none(&args, &pats, matched, summaries, 0);
        }
        return Ok(());
    }
    if let Some(why) = function::instance_unfit(&inst) {
        inst.remove()?;
        anyhow::bail!("{why}: funccount counts only in a private instance and does not take over the top-level tracer (which funcgraph or another tool may be using)");
    }
    let decoder = FunctionEvent::of(&inst)?;
    function::configure_scoped(
        &inst,
        "funccount",
        &Setup {
            patterns: pats.clone(),
            tids: Vec::new(),
            follow_forks: false,
            buffer_kb: Some(args.buffer_kb),
        },
        scope.as_mut(),
    )?;
    eprintln!(
        "funccount: counting {matched} functions with the {COUNTER}; calls by funccount itself are not counted"
    );
    let mut syms = Symbols::load();
    if syms.is_empty() {
        eprintln!("funccount: WARNING: no kernel symbols in /proc/kallsyms (kernel.kptr_restrict?): functions print as hex addresses; fix: run as root, sysctl kernel.kptr_restrict=1");
    }
    // PT_FAULT=panic (cleanup tests): everything must still be removed while unwinding.
    perf_tools_core::fault::fault_point();
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    out.flush()?;
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;

    let interval = args.interval.map(Duration::from_secs_f64);
    let start = Instant::now();
    let mut next = interval.map(|i| start + i);
    // The summary at the end of the duration is the last batch's: an interval ending
    // there is not printed on its own too.
    let end_at = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut counts = Counts::default();
    let mut total_lost = 0u64;
    let mut lost_seen = 0u64;
    let mut summaries = 0u64;
    let mut total_calls = 0u64;
    let end = session.stream(
        &shutdown,
        args.duration,
        Duration::from_millis(100),
        |reader, inst, batch| {
            if let Some(sc) = scope.as_mut() {
                sc.turn(inst, batch.last, &shutdown, "funccount", true)?;
            }
            let stats = reader.drain(|_, _, p| {
                if let Some(c) = decoder.decode(p) {
                    // Tasks that moved out of the cgroup stay in the kernel's list.
                    if scope.as_mut().is_none_or(|sc| sc.contains(c.pid as u32)) {
                        *counts.by_ip.entry(c.ip).or_default() += 1;
                    }
                }
            });
            // The kernel's loss counters since the last batch (the pages' flags are a
            // lower bound of the same losses).
            let now_lost = reader.lost_events();
            let lost = stats.missed.max(now_lost.saturating_sub(lost_seen));
            lost_seen = now_lost;
            counts.lost += lost;
            let due = next.is_some_and(|n| Instant::now() >= n && end_at.is_none_or(|e| n < e));
            if !(batch.last || due) {
                return Ok(());
            }
            if let (Some(n), Some(i)) = (next.as_mut(), interval) {
                while *n <= Instant::now() {
                    *n += i;
                }
            }
            let date = args
                .timestamps
                .then(|| chrono::Local::now().format("%a %b %e %H:%M:%S %Y").to_string());
            let named = counts.named(&mut syms);
            total_calls += named.values().sum::<u64>();
            summary(&mut out.buf, &named, args.top, date.as_deref());
            out.flush()?;
            summaries += 1;
            if counts.lost > 0 {
                total_lost += counts.lost;
                eprintln!("funccount: WARNING: {} events lost in this summary's interval (the buffer overflowed): its counts are too low; try a larger --buffer-kb than {}, or fewer functions", thousands(counts.lost), args.buffer_kb);
            }
            counts = Counts::default();
            Ok(())
        },
    )?;
    function::stop(&session.instance);
    if end == StreamEnd::OutputClosed {
        return session.finish();
    }
    let lost = session.lost_events().max(total_lost);
    session.finish()?;
    let _ = writeln!(out.buf, "\nEnding tracing...");
    out.flush()?;
    if lost > total_lost {
        eprintln!(
            "funccount: WARNING: {} events lost in total (kernel counters): counts are too low",
            thousands(lost)
        );
    }
    if total_calls == 0 {
        say_none(&args, &pats, matched, summaries, lost);
    }
    Ok(())
}

/// Says on stderr why a run counted nothing.
fn say_none(args: &Args, pats: &[String], matched: usize, summaries: u64, lost: u64) {
    eprintln!(
        "funccount: 0 calls of \"{}\"{} counted in {summaries} summaries ({matched} functions matched; not called while tracing, or only inlined); {} lost",
        pats.join(" "),
        args.scope.banner_text().replace(" for ", " in "),
        thousands(lost)
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn banners_match_the_original() {
        let a = Args::parse_from(["funccount", "vfs*"]);
        assert_eq!(banner(&a), "Tracing \"vfs*\"... Ctrl-C to end.");
        let a = Args::parse_from(["funccount", "-i", "1", "-t", "5", "tcp_*"]);
        assert_eq!(
            banner(&a),
            "Tracing \"tcp_*\". Top 5 only... Ctrl-C to end."
        );
        let a = Args::parse_from(["funccount", "-d", "5", "tcp*"]);
        assert_eq!(banner(&a), "Tracing \"tcp*\" for 5 seconds...");
        let a = Args::parse_from(["funccount", "--cgroup", "/web", "-d", "5", "tcp*"]);
        assert_eq!(
            banner(&a),
            "Tracing \"tcp*\" for cgroup /web for 5 seconds..."
        );
    }

    #[test]
    fn summaries_have_the_original_columns_order_and_top() {
        let mut c = HashMap::new();
        c.insert("bio_put".to_string(), 729);
        c.insert("bio_alloc".to_string(), 536);
        c.insert("bio_endio".to_string(), 536);
        c.insert("bio_attempt_back_merge".to_string(), 26);
        c.insert("never".to_string(), 0);
        let mut out = Vec::new();
        summary(&mut out, &c, None, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\nFUNC                              COUNT\nbio_attempt_back_merge               26\nbio_alloc                           536\nbio_endio                           536\nbio_put                             729\n"
        );
        let mut out = Vec::new();
        summary(&mut out, &c, Some(2), Some("Wed Dec  2 09:29:02 2026"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\nWed Dec  2 09:29:02 2026\nFUNC                              COUNT\nbio_endio                           536\nbio_put                             729\n"
        );
    }

    #[test]
    fn counts_are_named_and_merged_by_symbol() {
        let mut syms = Symbols::parse(
            "ffffffff81000000 T a_func\nffffffff81000100 T b_func\nffffffff81000200 T end\n",
        );
        let mut c = Counts::default();
        c.by_ip.insert(0xffffffff81000000, 3);
        c.by_ip.insert(0xffffffff81000104, 2);
        c.by_ip.insert(0xffffffff81000100, 1);
        let n = c.named(&mut syms);
        assert_eq!(n.get("a_func"), Some(&3));
        assert_eq!(n.get("b_func"), Some(&3));
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["funccount"][..],
            &["funccount", "-t", "0", "f"],
            &["funccount", "-i", "0", "f"],
            &["funccount", "-d", "x", "f"],
            &["funccount", "-z", "f"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
        assert!(Args::try_parse_from(["funccount", "--check"]).is_ok());
        let e = Args::try_parse_from(["funccount", "--counter", "profiler", "f"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn counters_are_tried_best_first_or_only_the_one_named() {
        let a = Args::parse_from(["funccount", "f"]);
        assert_eq!(
            a.counter.order(),
            [Counter::Fprobe, Counter::Kprobe, Counter::Records]
        );
        let a = Args::parse_from(["funccount", "--counter", "kprobe", "f"]);
        assert_eq!(a.counter.order(), [Counter::Kprobe]);
    }
}
