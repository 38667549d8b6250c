//! funcgraph: trace a kernel function's call graph with durations.
//!
//! A port of perf-tools' `funcgraph` with the same options that passes the kernel's own
//! function_graph text through unchanged. It runs in a private tracefs instance where
//! the kernel can run function_graph there (with a per-instance `set_graph_function`);
//! otherwise it uses the top-level tracer, refusing if another tracer is active, saving
//! every file it changes to a state file first and restoring them on every exit path (a
//! run killed with SIGKILL is restored by the next run or `--cleanup`).

use anyhow::Result;
use clap::Parser;
use std::io::Write;

use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::graph::{self, Printed, Settings, Target};
use perf_tools_ftrace::scope::Scope;
use perf_tools_ftrace::session::{RunAccount, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;

/// Command-line options (the original's, plus `--cleanup`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "funcgraph",
    version,
    about = "Trace kernel function calls as a call graph with durations, using the function_graph tracer",
    long_about = None,
    after_help = "Examples:\n  funcgraph do_nanosleep        # trace do_nanosleep() and children\n  funcgraph -m 3 do_sys_open    # trace do_sys_open() to 3 levels only\n  funcgraph -a do_sys_open      # include timestamps and process name\n  funcgraph -p 198 vfs_read     # trace vfs_read() for PID 198 only\n  funcgraph --cgroup /sys/fs/cgroup/web vfs_read  # only that cgroup's tasks\n  funcgraph -d 1 do_sys_open >out  # trace 1 sec, then write to file\n  funcgraph 'vfs_read vfs_write'   # several functions (or globs)\n\nWARNING: the kernel runs measurably slower while function_graph is active.\nSee the funcgraph(8) man page for more."
)]
pub struct Args {
    /// All info (same as -HPt)
    #[arg(short = 'a')]
    pub all: bool,
    /// Measure on-CPU time only (exclude time asleep)
    #[arg(short = 'C')]
    pub cpu_only: bool,
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Do not show function durations
    #[arg(short = 'D')]
    pub no_durations: bool,
    /// Include column headers
    #[arg(short = 'H')]
    pub headers: bool,
    /// Trace at most this many levels of calls deep (0: no limit, the default)
    #[arg(short = 'm', value_name = "maxdepth", value_parser = perf_tools_core::cli::between::<u32>("maxdepth", 0, 10_000))]
    pub maxdepth: Option<u32>,
    /// Only trace this process: its threads, and those it creates while tracing
    #[arg(short = 'p', value_name = "PID", conflicts_with = "tid", value_parser = perf_tools_core::cli::at_least::<u32>("PID", 1))]
    pub pid: Option<u32>,
    /// Only trace this thread
    #[arg(short = 'L', value_name = "TID", value_parser = perf_tools_core::cli::at_least::<u32>("TID", 1))]
    pub tid: Option<u32>,
    /// Show process names and PIDs on each line
    #[arg(short = 'P')]
    pub proc_names: bool,
    /// Show absolute timestamps
    #[arg(short = 't')]
    pub timestamps: bool,
    /// Comment function tails (`} /* func */`)
    #[arg(short = 'T')]
    pub tails: bool,
    /// Kernel function name(s) or glob(s) to graph, e.g. vfs_read, 'ext4_*'
    #[arg(value_name = "funcstring", required = true)]
    pub functions: Vec<String>,
    /// Container scope, filtered in the kernel (set_ftrace_pid of a private instance)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Restore what killed runs of any tool left behind (instances, top-level settings), then exit
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

/// The overhead warning, printed once per run on stderr before function_graph is enabled.
pub const OVERHEAD_WARNING: &str = graph::OVERHEAD_WARNING;

pub use perf_tools_ftrace::graph::{patterns, untraceable, untraceable_message};

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let funcs = patterns(&args.functions).join(" ");
    let ftext = match (args.pid, args.tid) {
        (Some(p), _) => format!(" for PID {p}"),
        (None, Some(t)) => format!(" for TID {t}"),
        _ => args.scope.banner_text(),
    };
    match args.duration {
        Some(d) => format!("Tracing \"{funcs}\"{ftext} for {d} seconds..."),
        None => format!("Tracing \"{funcs}\"{ftext}... Ctrl-C to end."),
    }
}

/// What funcgraph would use on this host and whether it can run (`--check`, and its row
/// in perf-tools-doctor): the function_graph tracer, set_graph_function, the
/// `kernel.ftrace_enabled` sysctl, and whether a private instance can run function_graph
/// (checked in one that is removed before this returns) or the top level must be used
/// (then free, and its `set_ftrace_filter` readable). Nothing is changed.
pub fn check() -> Result<perf_tools_core::check::Report> {
    graph::check("funcgraph", false)
}

/// Applies the options to the target and turns function_graph on.
fn configure(
    t: &mut Target,
    args: &Args,
    tids: &[u32],
    pats: &[String],
    scope: Option<&mut Scope>,
) -> Result<()> {
    let all = args.all;
    let toggles = [
        ("funcgraph-proc", args.proc_names || all, "1", "-P"),
        ("funcgraph-abstime", args.timestamps || all, "1", "-t"),
        ("funcgraph-duration", args.no_durations, "0", "-D"),
        ("funcgraph-tail", args.tails, "1", "-T"),
        ("sleep-time", args.cpu_only, "0", "-C"),
    ];
    let options = toggles
        .iter()
        .filter(|t| t.1)
        .map(|&(opt, _, value, flag)| (opt, value, flag))
        .collect();
    graph::configure_scoped(
        t,
        &Settings {
            tool: "funcgraph",
            pats,
            tids,
            pid: args.pid,
            maxdepth: args.maxdepth,
            thresh_us: None,
            filter_functions: false,
            options,
        },
        scope,
    )
}

/// The end-of-run account: why a run printed no line.
fn account(args: &Args, pats: &[String], printed: Printed) -> RunAccount {
    let mut a = RunAccount::new("funcgraph", "lines");
    a.rows = printed.lines;
    let funcs = pats.join(" ");
    let who = match (args.pid, args.tid) {
        (Some(p), _) => {
            a.filter(format!("-p {p}"), true);
            format!(" by PID {p}")
        }
        (None, Some(t)) => {
            a.filter(format!("-L {t}"), true);
            format!(" by TID {t}")
        }
        _ => {
            for (option, in_kernel) in args.scope.filter_notes(true) {
                a.filter(option, in_kernel);
            }
            args.scope.banner_text().replace(" for ", " in ")
        }
    };
    a.notes.push(format!(
        "no call of \"{funcs}\"{who} was traced (not called while tracing, or only inlined)"
    ));
    a.lost = printed.lost_events;
    a
}

/// Runs funcgraph.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let pats = patterns(&args.functions);
    if pats.is_empty() {
        return Err(cli::usage(
            "no function given: name a kernel function or glob, e.g. funcgraph vfs_read",
        ));
    }
    let headers = args.headers || args.all;
    args.scope.reject_with_target(args.pid, args.tid)?;
    // Resolved before any kernel state is made: a wrong path changes nothing.
    let mut scope = args.scope.resolve()?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    graph::require_function_graph(&tracefs, "funcgraph")?;
    graph::require_traceable(&tracefs, &pats)?;
    let tids = graph::traced_tids(args.pid, args.tid)?;

    let mut target =
        graph::open_target(&tracefs, "funcgraph", args.maxdepth.is_some_and(|d| d > 0))?;
    configure(&mut target, &args, &tids, &pats, scope.as_mut())?;
    // PT_FAULT=panic (cleanup tests): everything must still be restored while unwinding.
    perf_tools_core::fault::fault_point();
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    out.flush()?;
    let (printed, end) = graph::trace(
        &mut target,
        &shutdown,
        &mut out,
        args.duration,
        headers,
        None,
        scope.as_mut(),
    )?;
    if end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly, restoring everything.
        return target.finish();
    }
    let _ = writeln!(out.buf, "\nEnding tracing...");
    let flushed = out.flush();
    target.finish()?;
    flushed?;
    if printed.lost > 0 {
        eprintln!("WARNING: the kernel lost events {} times (see the [LOST N EVENTS] lines); the graph has gaps", printed.lost);
    }
    if let Some(line) = account(&args, &pats, printed).line() {
        eprintln!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxdepth_zero_means_no_limit_and_is_accepted() {
        // The original's -m 0 is "no depth limit" (max_graph_depth's own default).
        let a = Args::try_parse_from(["funcgraph", "-m", "0", "vfs_read"]).unwrap();
        assert_eq!(a.maxdepth, Some(0));
        let a = Args::try_parse_from(["funcgraph", "-m", "10000", "vfs_read"]).unwrap();
        assert_eq!(a.maxdepth, Some(10_000));
        let e = Args::try_parse_from(["funcgraph", "-m", "10001", "vfs_read"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("maxdepth must be between 0 and 10000"), "{e}");
    }

    #[test]
    fn funcstring_is_required_unless_cleanup() {
        let e = command()
            .try_get_matches_from(["funcgraph", "-m", "3"])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(command()
            .try_get_matches_from(["funcgraph", "--cleanup"])
            .is_ok());
    }

    #[test]
    fn banners_match_the_original() {
        let a = Args::parse_from(["funcgraph", "do_nanosleep"]);
        assert_eq!(banner(&a), "Tracing \"do_nanosleep\"... Ctrl-C to end.");
        let a = Args::parse_from(["funcgraph", "-p", "91", "-d", "5", "vfs_read"]);
        assert_eq!(
            banner(&a),
            "Tracing \"vfs_read\" for PID 91 for 5 seconds..."
        );
        let a = Args::parse_from(["funcgraph", "-L", "7", "vfs_read vfs_write"]);
        assert_eq!(
            banner(&a),
            "Tracing \"vfs_read vfs_write\" for TID 7... Ctrl-C to end."
        );
        let a = Args::parse_from(["funcgraph", "--container", "3f2a", "vfs_read"]);
        assert_eq!(
            banner(&a),
            "Tracing \"vfs_read\" for container 3f2a... Ctrl-C to end."
        );
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["funcgraph"][..],
            &["funcgraph", "-p", "1", "-L", "2", "f"],
            &["funcgraph", "-m", "x", "f"],
            &["funcgraph", "-m", "10001", "f"],
            &["funcgraph", "-d", "0", "f"],
            &["funcgraph", "-d", "abc", "f"],
            &["funcgraph", "-p", "0", "f"],
            &["funcgraph", "-z", "f"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
        assert!(Args::try_parse_from(["funcgraph", "--cleanup"]).is_ok());
        let a = Args::parse_from(["funcgraph", "-a", "f*", "g"]);
        assert!(a.all && a.functions == ["f*", "g"]);
    }

    #[test]
    fn an_empty_run_explains_itself_and_a_run_with_lines_does_not() {
        let a = Args::parse_from(["funcgraph", "-p", "42", "vfs_read"]);
        let pats = patterns(&a.functions);
        assert_eq!(
            account(&a, &pats, Printed::default()).line().unwrap(),
            "funcgraph: 0 lines: no call of \"vfs_read\" by PID 42 was traced (not called while tracing, or only inlined) (filter -p 42); 0 lost; -p 42 filtered in the kernel, which does not count what it leaves out: run without it (or with --check) to see what it excludes"
        );
        let printed = Printed {
            lines: 3,
            ..Default::default()
        };
        assert_eq!(account(&a, &pats, printed).line(), None);
    }
}
