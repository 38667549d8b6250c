//! funcslower: show calls of kernel functions slower than a threshold.
//!
//! A port of perf-tools' `funcslower` with the same options and output. The kernel's
//! function_graph tracer times the function itself (`set_ftrace_filter` and
//! `set_graph_function` name it) and, with `tracing_thresh` set, records only the returns
//! that took at least that long: the filtering happens in the kernel, and the lines are the
//! kernel's own function_graph text (`} /* func */` with the duration), passed through.
//!
//! Where the kernel runs function_graph in a private instance the tracer runs there;
//! otherwise at the top level. `tracing_thresh` is one global setting read by every
//! function_graph user, so it is always saved and restored through the top-level state
//! file and lock (see [`perf_tools_ftrace::graph`]), and funcslower refuses to start while
//! another function_graph run (funcgraph, another funcslower) is active.
//!
//! With `--context SECS` (the outlier recorder, [`context`]) `tracing_thresh` is left
//! alone: every call of the function is recorded, the outliers (calls of at least
//! `latency_us`) are decided here from the kernel's text, and each is printed with the
//! calls that returned within SECS before and after it, marked `*` and `-`.

pub mod context;

use anyhow::Result;
use clap::Parser;
use std::io::Write;

use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::graph::{self, Printed, Settings};
use perf_tools_ftrace::session::{RunAccount, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;

/// The largest threshold accepted (one hour): the kernel keeps it in nanoseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Command-line options (the original's, plus `--check` and `--cleanup`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "funcslower",
    version,
    about = "Trace kernel function calls slower than a threshold (microseconds), using the function_graph tracer",
    long_about = None,
    after_help = "Examples:\n  funcslower vfs_read 10000         # trace vfs_read() slower than 10 ms\n  funcslower --context 2 vfs_read 10000  # and every call 2 s before/after each\n  funcslower -HPt vfs_read 10000    # with headers, timestamps, process names\n  funcslower -p 198 vfs_read 10000  # slow vfs_read()s of PID 198 only\n  funcslower --cgroup /sys/fs/cgroup/web vfs_read 10000  # that cgroup's only\n  funcslower -C vfs_read 1000       # on-CPU time only (exclude sleeping)\n  funcslower -d 10 vfs_read 10000   # trace 10 seconds, buffered, then print\n\nWARNING: the kernel runs measurably slower while function_graph is active.\nSee the funcslower(8) man page for more."
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
    /// Include column headers
    #[arg(short = 'H')]
    pub headers: bool,
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
    /// Kernel function name or glob to time (several: space-separated in one argument)
    #[arg(value_name = "funcstring", required = true)]
    pub functions: Option<String>,
    /// Show only calls that took at least this many microseconds (measured in the kernel)
    #[arg(value_name = "latency_us", required = true, value_parser = perf_tools_core::cli::between::<u64>("latency_us", 1, MAX_LATENCY_US))]
    pub latency_us: Option<u64>,
    /// Trace every call and also print the calls that returned within SECS seconds before or after each outlier, from a bounded window in memory; adds a first column: * outlier, - context (tracing_thresh is not used)
    #[arg(long, value_name = "SECS", value_parser = perf_tools_core::cli::seconds("--context", 0.0, 3600.0))]
    pub context: Option<f64>,
    /// With --context, the most calls the window holds (the memory bound); older ones are dropped and the output then says the context was truncated
    #[arg(long = "context-rows", value_name = "N", requires = "context", default_value_t = context::DEFAULT_CONTEXT_ROWS, value_parser = perf_tools_core::cli::between::<usize>("--context-rows", 1000, 10_000_000))]
    pub context_rows: usize,
    /// With --context, stop after N outliers (and the context after the last one)
    #[arg(long, value_name = "N", requires = "context", value_parser = perf_tools_core::cli::between::<u64>("--count", 1, u64::MAX))]
    pub count: Option<u64>,
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

/// The startup line, as the original prints it.
pub fn banner(funcs: &str, args: &Args, thresh: u64) -> String {
    let ftext = match (args.pid, args.tid) {
        (Some(p), _) => format!(" for PID {p}"),
        (None, Some(t)) => format!(" for TID {t}"),
        _ => args.scope.banner_text(),
    };
    let ctx = args
        .context
        .map(|s| format!(", with {s} s of context (every call traced)"))
        .unwrap_or_default();
    match args.duration {
        Some(d) => {
            format!("Tracing \"{funcs}\"{ftext} slower than {thresh} us{ctx} for {d} seconds...")
        }
        None => {
            format!("Tracing \"{funcs}\"{ftext} slower than {thresh} us{ctx}... Ctrl-C to end.")
        }
    }
}

/// With -P the process is on every line, so function_graph's context-switch notes are
/// dropped as the original does: the `----` rules around them, the blank line after,
/// and the ` 0)  task-1  =>  task-2` line itself (the one kind of line without a `|`
/// column separator that has `=>`).
pub fn keep_with_proc(line: &[u8]) -> bool {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() || trimmed.starts_with(b"---") {
        return false;
    }
    let has_bar = trimmed.contains(&b'|');
    let arrow = trimmed.windows(4).any(|w| w == b" => ");
    !arrow || has_bar
}

/// What funcslower would use on this host and whether it can run (`--check`, and its row
/// in perf-tools-doctor): funcgraph's items plus `tracing_thresh` (present and free).
/// Nothing is changed.
pub fn check() -> Result<perf_tools_core::check::Report> {
    graph::check("funcslower", true)
}

/// The end-of-run account: why a run printed no line.
fn account(
    args: &Args,
    pats: &[String],
    thresh: u64,
    printed: Printed,
    seen: Option<u64>,
) -> RunAccount {
    let mut a = RunAccount::new("funcslower", "lines");
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
    let what = if args.cpu_only { "on-CPU time" } else { "time" };
    a.notes.push(match seen {
        None => format!(
            "no call of \"{funcs}\"{who} took {thresh} us or more ({what}, measured in the kernel, which does not count the faster calls)"
        ),
        Some(n) => format!(
            "no call of \"{funcs}\"{who} took {thresh} us or more ({what}; {n} calls seen)"
        ),
    });
    a.lost = printed.lost_events;
    a
}

/// Runs funcslower.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let (Some(funcstring), Some(thresh)) = (args.functions.as_deref(), args.latency_us) else {
        return Err(cli::usage(
            "usage: funcslower [-aChHPt] [-p PID] [-L TID] [--cgroup PATH] [-d secs] [--context SECS] funcstring latency_us",
        ));
    };
    let pats = graph::patterns(&[funcstring.to_string()]);
    if pats.is_empty() {
        return Err(cli::usage(
            "no function given: name a kernel function or glob, e.g. funcslower vfs_read 10000",
        ));
    }
    let headers = args.headers || args.all;
    let proc_names = args.proc_names || args.all;
    args.scope.reject_with_target(args.pid, args.tid)?;
    // Resolved before any kernel state is made: a wrong path changes nothing.
    let mut scope = args.scope.resolve()?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    graph::require_function_graph(&tracefs, "funcslower")?;
    graph::require_traceable(&tracefs, &pats)?;
    let tids = graph::traced_tids(args.pid, args.tid)?;

    let mut target = graph::open_target(&tracefs, "funcslower", false)?;
    let mut options = Vec::new();
    if proc_names {
        options.push(("funcgraph-proc", "1", "-P"));
    }
    let timestamps = args.timestamps || args.all;
    if timestamps || args.context.is_some() {
        options.push(("funcgraph-abstime", "1", "-t or --context"));
    }
    if args.context.is_some() {
        // Every return names its function ("} /* f */", not "}").
        options.push(("funcgraph-tail", "1", "--context"));
    }
    if args.cpu_only {
        options.push(("sleep-time", "0", "-C"));
    }
    graph::configure_scoped(
        &mut target,
        &Settings {
            tool: "funcslower",
            pats: &pats,
            tids: &tids,
            pid: args.pid,
            maxdepth: None,
            // --context: no tracing_thresh (every call is recorded), and only the
            // functions themselves are timed.
            thresh_us: args.context.is_none().then_some(thresh),
            filter_functions: true,
            options,
        },
        scope.as_mut(),
    )?;
    // PT_FAULT=panic (cleanup tests): everything must still be restored while unwinding.
    perf_tools_core::fault::fault_point();
    let keep: Option<graph::Keep> = if proc_names {
        Some(keep_with_proc)
    } else {
        None
    };
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&pats.join(" "), &args, thresh));
    out.flush()?;
    let mut recorder = args.context.map(|secs| {
        context::Recorder::new(thresh, secs, args.context_rows, timestamps, args.count)
    });
    let (printed, end) = match recorder.as_mut() {
        Some(r) => graph::trace_lines(
            &mut target,
            &shutdown,
            &mut out,
            args.duration,
            headers,
            r,
            scope.as_mut(),
        )?,
        None => graph::trace(
            &mut target,
            &shutdown,
            &mut out,
            args.duration,
            headers,
            keep,
            scope.as_mut(),
        )?,
    };
    if end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly, restoring everything.
        return target.finish();
    }
    let _ = writeln!(out.buf, "\nEnding tracing...");
    let flushed = out.flush();
    target.finish()?;
    flushed?;
    if printed.lost > 0 {
        if recorder.is_some() {
            eprintln!("WARNING: the kernel lost events {} times ({} events); calls are missing (a context that covers a loss says so)", printed.lost, printed.lost_events);
        } else {
            eprintln!("WARNING: the kernel lost events {} times (see the [LOST N EVENTS] lines); slow calls are missing", printed.lost);
        }
    }
    let seen = recorder.as_ref().map(|r| r.window.stats.seen);
    if let Some(line) = account(&args, &pats, thresh, printed, seen).line() {
        eprintln!("{line}");
    }
    if let Some(r) = &recorder {
        eprintln!("{}", r.summary());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("funcslower").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    #[test]
    fn banners_match_the_original() {
        let a = args(&["vfs_read", "10000"]);
        assert_eq!(
            banner("vfs_read", &a, 10000),
            "Tracing \"vfs_read\" slower than 10000 us... Ctrl-C to end."
        );
        let a = args(&["-p", "198", "-d", "5", "vfs_read", "10000"]);
        assert_eq!(
            banner("vfs_read", &a, 10000),
            "Tracing \"vfs_read\" for PID 198 slower than 10000 us for 5 seconds..."
        );
        let a = args(&["-L", "7", "vfs_read vfs_write", "1"]);
        assert_eq!(
            banner("vfs_read vfs_write", &a, 1),
            "Tracing \"vfs_read vfs_write\" for TID 7 slower than 1 us... Ctrl-C to end."
        );
        let a = args(&["--cgroup", "/web", "vfs_read", "100"]);
        assert_eq!(
            banner("vfs_read", &a, 100),
            "Tracing \"vfs_read\" for cgroup /web slower than 100 us... Ctrl-C to end."
        );
    }

    #[test]
    fn parses_the_originals_options() {
        let a = args(&["-aC", "-d", "2.5", "ext4_*", "1000"]);
        assert!(a.all && a.cpu_only && !a.headers && !a.proc_names && !a.timestamps);
        assert_eq!(a.duration, Some(2.5));
        assert_eq!(a.functions.as_deref(), Some("ext4_*"));
        assert_eq!(a.latency_us, Some(1000));
        let a = args(&["-HPt", "-p", "42", "vfs_read", "3600000000"]);
        assert!(a.headers && a.proc_names && a.timestamps && a.pid == Some(42));
        assert_eq!(a.latency_us, Some(MAX_LATENCY_US));
        assert!(args(&["--cleanup"]).cleanup);
        for argv in [
            &["vfs_read"][..],
            &["vfs_read", "0"],
            &["vfs_read", "-5"],
            &["vfs_read", "3600000001"],
            &["-p", "1", "-L", "2", "f", "10"],
            &["--cleanup", "f", "10"],
        ] {
            let e = Args::try_parse_from(std::iter::once("funcslower").chain(argv.iter().copied()))
                .unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn an_empty_run_explains_itself_and_a_run_with_lines_does_not() {
        let a = args(&["-C", "-p", "42", "do_nanosleep", "100000"]);
        let pats = graph::patterns(&["do_nanosleep".into()]);
        assert_eq!(
            account(&a, &pats, 100000, Printed::default(), None).line().unwrap(),
            "funcslower: 0 lines: no call of \"do_nanosleep\" by PID 42 took 100000 us or more (on-CPU time, measured in the kernel, which does not count the faster calls) (filter -p 42); 0 lost; -p 42 filtered in the kernel, which does not count what it leaves out: run without it (or with --check) to see what it excludes"
        );
        let a = args(&["vfs_read", "5"]);
        assert_eq!(
            account(&a, &pats, 5, Printed::default(), None).line().unwrap(),
            "funcslower: 0 lines: no call of \"do_nanosleep\" took 5 us or more (time, measured in the kernel, which does not count the faster calls); 0 lost"
        );
        let printed = Printed {
            lines: 2,
            ..Default::default()
        };
        assert_eq!(account(&a, &pats, 5, printed, None).line(), None);
    }

    /// Real output of funcslower on Debian's 6.12.118+deb13-cloud-amd64 (QEMU TCG, one
    /// vCPU, tests/vm/funcslower.sh): `-p PID -d 6 do_nanosleep 100000` (context-switch
    /// note between the two slow returns), then `-a` (timestamps, process, headers).
    const REAL_6_12: &str = concat!(
        " 0) @ 401028.0 us |  } /* do_nanosleep */\n",
        " ------------------------------------------\n",
        " 0)   sleep-185    =>   sleep-187   \n",
        " ------------------------------------------\n",
        "\n",
        " 0) @ 400472.9 us |  } /* do_nanosleep */\n",
        "   40.074958 |   0)   sleep-236    | @ 400558.9 us |  } /* do_nanosleep */\n",
        "   40.579165 |   0)   sleep-239    | @ 400629.2 us |  } /* do_nanosleep */\n",
    );

    #[test]
    fn with_proc_the_context_switch_notes_are_dropped_and_every_return_kept() {
        let kept: Vec<&str> = REAL_6_12
            .split_inclusive('\n')
            .filter(|l| keep_with_proc(l.as_bytes()))
            .collect();
        assert_eq!(
            kept,
            [
                " 0) @ 401028.0 us |  } /* do_nanosleep */\n",
                " 0) @ 400472.9 us |  } /* do_nanosleep */\n",
                "   40.074958 |   0)   sleep-236    | @ 400558.9 us |  } /* do_nanosleep */\n",
                "   40.579165 |   0)   sleep-239    | @ 400629.2 us |  } /* do_nanosleep */\n",
            ]
        );
        // A process named "a => b" (process names are the user's) is still a return line.
        assert!(keep_with_proc(
            b"   40.1 |   0)   a => b-9    | @ 400558.9 us |  } /* do_nanosleep */\n"
        ));
    }
}
