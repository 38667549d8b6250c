//! functrace: trace kernel function calls, one line per call with the task, CPU,
//! timestamp, function and caller.
//!
//! A port of perf-tools' `functrace` with the same options and the kernel's own line
//! layout (`comm-pid [cpu] flags timestamp: func <-parent`, and with `-H` the `#` header
//! of the `trace` file). It runs the function tracer in a private tracefs instance
//! (`instances/functrace-<pid>`), reads the `ftrace/function` records (`ip`,
//! `parent_ip`) from the binary buffers and names the addresses with `/proc/kallsyms`.
//! Another ftrace user (funcgraph at the top level, a second functrace) is never
//! disturbed: each run has its own instance, filter and PID list.

use anyhow::{bail, Result};
use clap::Parser;
use std::io::Write;
use std::time::Duration;

use perf_tools_core::check::Report;
use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::comm::Comms;
use perf_tools_ftrace::function::{self, Context, FunctionEvent, Setup, Symbols};
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, Session, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;

/// Command-line options (the original's, plus `--force`, `--buffer-kb`, `--cleanup`,
/// `--check`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "functrace",
    version,
    about = "Trace kernel function calls matching a glob: task, CPU, time, function and caller, using the function tracer",
    long_about = None,
    after_help = "Examples:\n  functrace do_nanosleep        # trace the do_nanosleep() function\n  functrace '*sleep'            # trace functions ending in \"sleep\"\n  functrace -p 198 'vfs*'       # trace \"vfs*\" funcs for PID 198\n  functrace --cgroup /sys/fs/cgroup/web vfs_read  # that cgroup's tasks only\n  functrace 'tcp*' > out        # trace all \"tcp*\" funcs to out file\n  functrace -d 1 'tcp*' > out   # trace 1 sec, then write out file\n\nWARNING: every traced call costs the kernel time; see the functrace(8) man page."
)]
pub struct Args {
    /// Trace for this many seconds, then print (default: live until Ctrl-C)
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
    /// Trace even when the glob matches more than 1000 functions
    #[arg(long)]
    pub force: bool,
    /// Per-CPU trace buffer size in KiB
    #[arg(long, value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1 << 20))]
    pub buffer_kb: u32,
    /// Kernel function name(s) or glob(s) to trace, e.g. do_nanosleep, 'vfs_*'
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

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let funcs = function::patterns(&args.functions).join(" ");
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

/// What functrace would use on this host and whether it can run (`--check`, and its
/// row in perf-tools-doctor): the function tracer, `kernel.ftrace_enabled`, and a
/// private instance that can run it with its own filter (checked in one removed before
/// this returns). Nothing else is changed.
pub fn check() -> Result<Report> {
    function::check_report("functrace")
}

/// Runs functrace.
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
            "no function given: name a kernel function or glob, e.g. functrace do_nanosleep",
        ));
    }
    args.scope.reject_with_target(args.pid, args.tid)?;
    // Resolved before any kernel state is made: a wrong path changes nothing.
    let mut scope = args.scope.resolve()?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    function::require_function_tracer(&tracefs, "functrace")?;
    let matched = function::check_available(&tracefs, "functrace", &pats, args.force)?;
    if matched > function::BROAD_LIMIT {
        eprintln!("functrace: WARNING: tracing {matched} functions (--force): the kernel slows down and events may be lost");
    }
    let tids = function::traced_tids(args.pid, args.tid)?;
    let inst = cleanup::start_instance(&tracefs, "functrace")?;
    if let Some(why) = function::instance_unfit(&inst) {
        inst.remove()?;
        bail!("{why}: functrace runs only in a private instance and does not take over the top-level tracer (which funcgraph or another tool may be using)");
    }
    let decoder = FunctionEvent::of(&inst)?;
    function::configure_scoped(
        &inst,
        "functrace",
        &Setup {
            patterns: pats.clone(),
            tids,
            follow_forks: args.pid.is_some(),
            buffer_kb: Some(args.buffer_kb),
        },
        scope.as_mut(),
    )?;
    let (head, style) = function::header(&inst)?;
    let syms = Symbols::load();
    if syms.is_empty() {
        eprintln!("functrace: WARNING: no kernel symbols in /proc/kallsyms (kernel.kptr_restrict?): functions print as hex addresses; fix: run as root, sysctl kernel.kptr_restrict=1");
    }
    let mut ctx = Context::new(style, syms);
    // PT_FAULT=panic (cleanup tests): everything must still be removed while unwinding.
    perf_tools_core::fault::fault_point();
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    if args.headers {
        out.buf.extend_from_slice(head.as_bytes());
    }
    out.flush()?;
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;

    let streaming = args.duration.is_none();
    let mut merger: Merger<(u32, Vec<u8>)> = Merger::new();
    let mut comms = Comms::new(&tracefs);
    let mut rows = 0u64;
    let mut lost_pages = 0u64;
    let end = session.stream(
        &shutdown,
        args.duration,
        Duration::from_millis(100),
        |reader, inst, batch| {
            if let Some(sc) = scope.as_mut() {
                sc.turn(inst, batch.last, &shutdown, "functrace", true)?;
            }
            let stats = reader.drain_rounds(
                u64::MAX,
                &mut (&mut merger, scope.as_mut()),
                |(m, sc), cpu, ts, p| {
                    let Some(call) = decoder.decode(p) else {
                        return;
                    };
                    // Tasks that moved out of the cgroup stay in the kernel's list.
                    if sc.as_mut().is_none_or(|sc| sc.contains(call.pid as u32)) {
                        m.push(cpu as usize, ts, (cpu, p.to_vec()));
                    }
                },
                |_, _| {},
                |_, _| {},
            );
            if stats.missed > 0 {
                lost_pages += stats.missed;
                eprintln!("functrace: WARNING: {} events lost: the kernel buffer overflowed (trace fewer functions, or a larger --buffer-kb than {})", stats.missed, args.buffer_kb);
            }
            let mut ready = Vec::new();
            merger.release(batch.clock, |ts, ev| {
                ready.push((ts, std::mem::take(ev)));
            });
            comms.resolve(
                ready
                    .iter()
                    .filter_map(|(_, (_, p))| decoder.decode(p))
                    .map(|c| c.pid as u32),
            );
            for (ts, (cpu, p)) in &ready {
                let Some(call) = decoder.decode(p) else {
                    continue;
                };
                decoder.render(&mut out.buf, &mut ctx, comms.get(call.pid as u32), *cpu, *ts, p);
                rows += 1;
            }
            if streaming || batch.last {
                out.flush()?;
            }
            Ok(())
        },
    )?;
    if end == StreamEnd::OutputClosed {
        function::stop(&session.instance);
        return session.finish();
    }
    function::stop(&session.instance);
    let mut account = RunAccount::new("functrace", "lines");
    account.rows = rows;
    let who = match (args.pid, args.tid) {
        (Some(p), _) => {
            account.filter(format!("-p {p}"), true);
            format!(" by PID {p}")
        }
        (None, Some(t)) => {
            account.filter(format!("-L {t}"), true);
            format!(" by TID {t}")
        }
        _ => {
            for (option, in_kernel) in args.scope.filter_notes(true) {
                account.filter(option, in_kernel);
            }
            args.scope.banner_text().replace(" for ", " in ")
        }
    };
    account.notes.push(format!(
        "no call of \"{}\"{who} was traced (not called while tracing, or only inlined)",
        pats.join(" ")
    ));
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported: lost_pages,
            note_on_stderr: false,
            loss_effect: "calls are missing from the output".into(),
            account: Some(account),
        },
        || Ok(()),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn banners_match_the_original() {
        let a = Args::parse_from(["functrace", "do_nanosleep"]);
        assert_eq!(banner(&a), "Tracing \"do_nanosleep\"... Ctrl-C to end.");
        let a = Args::parse_from(["functrace", "-p", "91", "-d", "5", "vfs_read"]);
        assert_eq!(
            banner(&a),
            "Tracing \"vfs_read\" for PID 91 for 5 seconds..."
        );
        let a = Args::parse_from(["functrace", "-L", "7", "vfs_read vfs_write"]);
        assert_eq!(
            banner(&a),
            "Tracing \"vfs_read vfs_write\" for TID 7... Ctrl-C to end."
        );
        let a = Args::parse_from(["functrace", "--cgroup", "/web", "-d", "2", "vfs_read"]);
        assert_eq!(
            banner(&a),
            "Tracing \"vfs_read\" for cgroup /web for 2 seconds..."
        );
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["functrace"][..],
            &["functrace", "-p", "1", "-L", "2", "f"],
            &["functrace", "-d", "0", "f"],
            &["functrace", "-d", "abc", "f"],
            &["functrace", "-p", "0", "f"],
            &["functrace", "-z", "f"],
            &["functrace", "--buffer-kb", "1", "f"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
        assert!(Args::try_parse_from(["functrace", "--cleanup"]).is_ok());
        let a = Args::parse_from(["functrace", "-H", "--force", "f*", "g"]);
        assert!(a.headers && a.force && a.functions == ["f*", "g"]);
    }
}
