//! funcgraph: trace a kernel function's call graph with durations.
//!
//! A port of perf-tools' `funcgraph` with the same options that passes the kernel's own
//! function_graph text through unchanged. It runs in a private tracefs instance where
//! the kernel can run function_graph there (with a per-instance `set_graph_function`);
//! otherwise it uses the top-level tracer, refusing if another tracer is active, saving
//! every file it changes to a state file first and restoring them on every exit path (a
//! run killed with SIGKILL is restored by the next run or `--cleanup`).

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use perf_tools_core::cli;
use perf_tools_core::output::{LineEscaper, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::session::{RunAccount, StreamEnd};
use perf_tools_ftrace::text_pipe::{self, TextPipe};
use perf_tools_ftrace::toplevel::{self, TopLevel};
use perf_tools_ftrace::tracefs::{read_file, Tracefs};

/// Command-line options (the original's, plus `--cleanup`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "funcgraph",
    version,
    about = "Trace kernel function calls as a call graph with durations, using the function_graph tracer",
    long_about = None,
    after_help = "Examples:\n  funcgraph do_nanosleep        # trace do_nanosleep() and children\n  funcgraph -m 3 do_sys_open    # trace do_sys_open() to 3 levels only\n  funcgraph -a do_sys_open      # include timestamps and process name\n  funcgraph -p 198 vfs_read     # trace vfs_read() for PID 198 only\n  funcgraph -d 1 do_sys_open >out  # trace 1 sec, then write to file\n  funcgraph 'vfs_read vfs_write'   # several functions (or globs)\n\nWARNING: the kernel runs measurably slower while function_graph is active.\nSee the funcgraph(8) man page for more."
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
pub const OVERHEAD_WARNING: &str = "WARNING: while function_graph is active the kernel runs measurably slower (50% or more), even when nothing is printed; trace briefly and narrowly";

/// The patterns of the positional arguments (each may hold a space-separated list).
pub fn patterns(functions: &[String]) -> Vec<String> {
    functions
        .iter()
        .flat_map(|f| f.split_whitespace())
        .map(str::to_string)
        .collect()
}

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let funcs = patterns(&args.functions).join(" ");
    let ftext = match (args.pid, args.tid) {
        (Some(p), _) => format!(" for PID {p}"),
        (None, Some(t)) => format!(" for TID {t}"),
        _ => String::new(),
    };
    match args.duration {
        Some(d) => format!("Tracing \"{funcs}\"{ftext} for {d} seconds..."),
        None => format!("Tracing \"{funcs}\"{ftext}... Ctrl-C to end."),
    }
}

/// Patterns that do not match any traceable function: `(pattern, close matches)`.
/// Patterns the kernel interprets specially (`!negation`, `:mod:` commands, `[classes]`)
/// are left to the kernel.
pub fn untraceable<'a>(pats: &[String], names: &[&'a str]) -> Vec<(String, Vec<&'a str>)> {
    pats.iter()
        .filter(|p| !p.starts_with('!') && !p.contains(':') && !p.contains('['))
        .filter(|p| !names.iter().any(|n| toplevel::glob_match(p, n)))
        .map(|p| (p.clone(), toplevel::close_matches(p, names, 8)))
        .collect()
}

/// Explains untraceable patterns.
pub fn untraceable_message(missing: &[(String, Vec<&str>)]) -> String {
    let mut s = String::new();
    for (i, (p, close)) in missing.iter().enumerate() {
        if i > 0 {
            s.push_str("\n  ");
        }
        s.push_str(&format!(
            "\"{p}\" matches no traceable kernel function (not in available_filter_functions: inlined, notrace, or not in this kernel)"
        ));
        if close.is_empty() {
            s.push_str("; no close matches");
        } else {
            s.push_str(&format!("; close matches: {}", close.join(" ")));
        }
    }
    s.push_str(
        "\n  list candidates with: grep <name> /sys/kernel/tracing/available_filter_functions",
    );
    s
}

/// Where the graph is traced: a private instance, or the saved-and-restored top level.
enum Target {
    Instance(InstanceTarget),
    Top(TopLevel, PathBuf),
}

/// An instance whose tracer is set back to nop before the instance is removed.
struct InstanceTarget {
    inst: Option<Instance>,
    dir: PathBuf,
}

impl InstanceTarget {
    fn stop(&self) {
        let _ = std::fs::write(self.dir.join("tracing_on"), "0");
        let _ = std::fs::write(self.dir.join("current_tracer"), "nop");
    }
}

impl Drop for InstanceTarget {
    fn drop(&mut self) {
        if self.inst.is_some() {
            self.stop();
        }
    }
}

impl Target {
    fn dir(&self) -> &Path {
        match self {
            Target::Instance(i) => &i.dir,
            Target::Top(_, root) => root,
        }
    }

    fn has(&self, rel: &str) -> bool {
        self.dir().join(rel).exists()
    }

    fn read(&self, rel: &str) -> Result<String> {
        let p = self.dir().join(rel);
        read_file(&p).with_context(|| format!("reading {}", p.display()))
    }

    fn set(&mut self, rel: &str, value: &str) -> Result<()> {
        match self {
            Target::Instance(i) => {
                let p = i.dir.join(rel);
                std::fs::write(&p, value)
                    .with_context(|| format!("writing {value:?} to {}", p.display()))
            }
            Target::Top(t, _) => t.set(rel, value),
        }
    }

    /// Ends tracing and undoes everything, reporting a failure.
    fn finish(self) -> Result<()> {
        match self {
            Target::Instance(mut i) => {
                i.stop();
                match i.inst.take() {
                    Some(inst) => inst.remove(),
                    None => Ok(()),
                }
            }
            Target::Top(t, _) => t.restore(),
        }
    }
}

fn has_word(text: &str, word: &str) -> bool {
    text.split_whitespace().any(|w| w == word)
}

/// What funcgraph would use on this host and whether it can run (`--check`, and its row
/// in perf-tools-doctor): the function_graph tracer, set_graph_function, the
/// `kernel.ftrace_enabled` sysctl, and whether a private instance can run function_graph
/// (checked in one that is removed before this returns) or the top level must be used
/// (then free, and its `set_ftrace_filter` readable). Nothing is changed.
pub fn check() -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut r = Report::new("funcgraph");
    let Some(tracefs) = fc::tracefs(&mut r) else {
        return Ok(r);
    };
    let tracers = read_file(&tracefs.path("available_tracers")).unwrap_or_default();
    let graph = has_word(&tracers, "function_graph");
    r.item(
        "function_graph tracer",
        if graph { Status::Yes } else { Status::No },
        format!(
            "available_tracers: {}",
            if tracers.trim().is_empty() {
                "none"
            } else {
                tracers.trim()
            }
        ),
        "use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y (most distribution kernels are)",
        true,
    );
    let sgf = tracefs.path("set_graph_function").exists();
    r.item(
        "set_graph_function",
        if sgf { Status::Yes } else { Status::No },
        if sgf { "present" } else { "missing" },
        "use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y and CONFIG_DYNAMIC_FTRACE=y",
        true,
    );
    let enabled = std::fs::read_to_string("/proc/sys/kernel/ftrace_enabled")
        .map(|v| v.trim() != "0")
        .unwrap_or(true);
    r.item(
        "kernel.ftrace_enabled",
        if enabled { Status::Yes } else { Status::No },
        if enabled {
            "1"
        } else {
            "0: function tracing is disabled"
        },
        "sysctl -w kernel.ftrace_enabled=1",
        true,
    );
    if !graph {
        r.uses = "nothing: this kernel has no function_graph tracer".into();
        return Ok(r);
    }
    let why_not = match fc::instance(&tracefs, "funcgraph", &mut r) {
        Some(inst) => {
            let tracers = inst.read("available_tracers").unwrap_or_default();
            let why_not = if !has_word(&tracers, "function_graph") {
                Some("this kernel runs function_graph only in the top-level instance")
            } else if !inst.dir().join("set_graph_function").exists() {
                Some("this kernel's instances have no set_graph_function")
            } else {
                None
            };
            inst.remove()?;
            why_not
        }
        None => Some("private trace instances are not available"),
    };
    let Some(why_not) = why_not else {
        r.item(
            "target",
            Status::Yes,
            "a private instance (function_graph and set_graph_function work there)",
            "",
            true,
        );
        r.uses = "function_graph in a private instance".into();
        return Ok(r);
    };
    let cur = read_file(&tracefs.path("current_tracer")).unwrap_or_default();
    let cur = cur.trim();
    if cur != "nop" {
        r.item(
            "target",
            Status::No,
            format!("{why_not}, and the top-level tracer is in use ({cur})"),
            format!(
                "stop the other user of ftrace first (if a crashed tool left it: echo nop > {})",
                tracefs.path("current_tracer").display()
            ),
            true,
        );
        r.uses = "nothing: the top-level tracer is busy".into();
        return Ok(r);
    }
    let filter = std::fs::File::open(tracefs.path("set_ftrace_filter"));
    r.item(
        "set_ftrace_filter",
        if filter.is_ok() {
            Status::Yes
        } else {
            Status::No
        },
        match &filter {
            Ok(_) => "readable (saved and cleared at the top level, restored on exit)".to_string(),
            Err(e) => format!("cannot be opened: {e}"),
        },
        "use a kernel built with CONFIG_DYNAMIC_FTRACE=y, and no lockdown mode",
        true,
    );
    r.item(
        "target",
        Status::Degraded,
        format!("the top-level instance ({why_not}); its settings are saved and restored"),
        "none needed: it runs, as the only user of the top-level tracer while it does",
        false,
    );
    r.uses = "function_graph at the top level (saved and restored)".into();
    Ok(r)
}

/// Checks that the kernel can run function_graph at all, before anything is changed.
fn require_function_graph(tracefs: &Tracefs) -> Result<()> {
    let tracers = read_file(&tracefs.path("available_tracers")).unwrap_or_default();
    if !has_word(&tracers, "function_graph") {
        bail!(
            "this kernel has no function_graph tracer (available_tracers: {}): it was built without CONFIG_FUNCTION_GRAPH_TRACER, so funcgraph cannot run here; use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y (most distribution kernels are)",
            if tracers.trim().is_empty() { "none" } else { tracers.trim() }
        );
    }
    if !tracefs.path("set_graph_function").exists() {
        bail!(
            "{} has no set_graph_function: the kernel lacks CONFIG_DYNAMIC_FTRACE, which funcgraph needs to graph single functions",
            tracefs.root().display()
        );
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/ftrace_enabled") {
        if v.trim() == "0" {
            bail!("function tracing is disabled (sysctl kernel.ftrace_enabled = 0); enable it with: sysctl -w kernel.ftrace_enabled=1");
        }
    }
    Ok(())
}

/// The threads to trace: every current thread of `-p PID`, or the `-L TID`.
fn traced_tids(args: &Args) -> Result<Vec<u32>> {
    if let Some(pid) = args.pid {
        let dir = PathBuf::from(format!("/proc/{pid}/task"));
        let mut tids: Vec<u32> = std::fs::read_dir(&dir)
            .with_context(|| format!("no process with PID {pid} (reading {})", dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        if tids.is_empty() {
            bail!("process {pid} has no threads left (it is exiting)");
        }
        return Ok(tids);
    }
    if let Some(tid) = args.tid {
        if !Path::new(&format!("/proc/{tid}/status")).exists() {
            bail!("no thread with TID {tid}");
        }
        return Ok(vec![tid]);
    }
    Ok(Vec::new())
}

/// Picks a private instance when function_graph and set_graph_function (and
/// max_graph_depth, for -m) work there, else the top level.
fn open_target(tracefs: &Tracefs, need_depth: bool) -> Result<Target> {
    let why_not = match cleanup::start_instance(tracefs, "funcgraph") {
        Ok(inst) => {
            let tracers = inst.read("available_tracers").unwrap_or_default();
            let why_not = if !has_word(&tracers, "function_graph") {
                "this kernel runs function_graph only in the top-level instance"
            } else if !inst.dir().join("set_graph_function").exists() {
                "this kernel's instances have no set_graph_function"
            } else if need_depth && !inst.dir().join("max_graph_depth").exists() {
                "this kernel's instances have no max_graph_depth (-m)"
            } else {
                let dir = inst.dir().to_path_buf();
                return Ok(Target::Instance(InstanceTarget {
                    inst: Some(inst),
                    dir,
                }));
            };
            inst.remove()?;
            why_not
        }
        Err(_) => "private trace instances are not available",
    };
    let (top, restored) = TopLevel::begin(tracefs, "funcgraph")?;
    for r in restored {
        eprintln!("funcgraph: removed {r} left behind by a killed run");
    }
    let cur = top.read("current_tracer")?;
    let cur = cur.trim();
    if cur != "nop" {
        bail!(
            "ftrace is in use: the top-level tracer is {cur:?} (current_tracer), and {why_not}, so funcgraph would have to take it over; stop the other user first (if it was left behind by a crashed tool: echo nop > {})",
            tracefs.path("current_tracer").display()
        );
    }
    eprintln!(
        "funcgraph: {why_not}: using the top-level tracer; the original settings are saved in {} and restored on exit",
        top.state_file().display()
    );
    Ok(Target::Top(top, tracefs.root().to_path_buf()))
}

/// Applies the options to the target and turns function_graph on.
fn configure(t: &mut Target, args: &Args, tids: &[u32], pats: &[String]) -> Result<()> {
    if matches!(t, Target::Top(..)) {
        // function_graph also honours set_ftrace_filter: clear it (saved, restored later).
        let filter = t.read("set_ftrace_filter")?;
        if filter
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(':'))
        {
            bail!("set_ftrace_filter holds function triggers (another ftrace user is active); funcgraph will not remove them. Clear them first if they are left over");
        }
        if !toplevel::normalize("set_ftrace_filter", &filter).is_empty() {
            t.set("set_ftrace_filter", "")?;
        }
    }
    if let Some(d) = args.maxdepth {
        if t.has("max_graph_depth") {
            t.set("max_graph_depth", &d.to_string())?;
        } else if d > 0 {
            bail!("this kernel has no max_graph_depth (-m needs Linux 3.18 or later)");
        }
        // -m 0 without max_graph_depth: such a kernel has no depth limit at all.
    }
    if !tids.is_empty() {
        let list: Vec<String> = tids.iter().map(u32::to_string).collect();
        t.set("set_ftrace_pid", &list.join(" "))
            .context("limiting tracing to the given PID")?;
        if args.pid.is_some() {
            if t.has("options/function-fork") {
                t.set("options/function-fork", "1")?;
            } else {
                eprintln!("funcgraph: this kernel has no options/function-fork (Linux 4.15+): threads PID {} creates from now on are not traced", args.pid.unwrap_or(0));
            }
        }
    }
    if tids.is_empty() {
        // Never trace ourselves: reading trace_pipe and writing the output run through
        // vfs_read/vfs_write and friends, and tracing that would feed on itself.
        if t.has("set_ftrace_notrace_pid") {
            let orig =
                toplevel::normalize("set_ftrace_notrace_pid", &t.read("set_ftrace_notrace_pid")?);
            let me = std::process::id().to_string();
            let list = if orig.is_empty() {
                me
            } else {
                format!("{orig} {me}")
            };
            t.set("set_ftrace_notrace_pid", &list)
                .context("excluding funcgraph itself from tracing")?;
        } else {
            eprintln!("funcgraph: this kernel has no set_ftrace_notrace_pid (Linux 5.8+), so funcgraph's own reads and writes are traced too: avoid functions on its I/O path (vfs_read, vfs_write, ...) or use -p");
        }
    }
    let funcs = pats.join(" ");
    // The trailing newline makes the kernel parse the last pattern during write(2), so
    // a pattern that matches nothing fails here (EINVAL). Without it the kernel parses
    // that word when the file is closed, ignores the error and installs an empty list:
    // function_graph would then trace every function.
    if let Err(e) = t.set("set_graph_function", &format!("{funcs}\n")) {
        bail!("the kernel refused set_graph_function \"{funcs}\" ({e:#}); check the names against available_filter_functions");
    }
    let all = args.all;
    let toggles = [
        ("funcgraph-proc", args.proc_names || all, "1", "-P"),
        ("funcgraph-abstime", args.timestamps || all, "1", "-t"),
        ("funcgraph-duration", args.no_durations, "0", "-D"),
        ("funcgraph-tail", args.tails, "1", "-T"),
        ("sleep-time", args.cpu_only, "0", "-C"),
    ];
    for (opt, wanted, value, flag) in toggles {
        if !wanted {
            continue;
        }
        let rel = format!("options/{opt}");
        if !t.has(&rel) {
            bail!("this kernel has no {rel}, which {flag} needs (older kernel?)");
        }
        t.set(&rel, value)?;
    }
    if t.read("tracing_on")?.trim() != "1" {
        t.set("tracing_on", "1")?;
    }
    eprintln!("funcgraph: {OVERHEAD_WARNING}");
    t.set("current_tracer", "function_graph")
        .context("enabling the function_graph tracer")?;
    verify(t)
}

/// Checks, cheaply, that the kernel took the settings that make rows appear: the tracer
/// is function_graph and tracing_on reads 1.
fn verify(t: &Target) -> Result<()> {
    let dir = t.dir().display();
    let tracer = t.read("current_tracer")?;
    if tracer.trim() != "function_graph" {
        bail!(
            "the kernel did not start the function_graph tracer in {dir}: current_tracer reads {:?}; another ftrace user may have changed it",
            tracer.trim()
        );
    }
    let on = t.read("tracing_on")?;
    if on.trim() != "1" {
        bail!(
            "tracing_on in {dir} reads {:?} after funcgraph turned it on: recording is disabled (a kernel warning with traceoff_on_warning, or another ftrace user); nothing would be traced",
            on.trim()
        );
    }
    Ok(())
}

/// Copies the `#` header lines at the top of the target's `trace` file.
fn copy_header(dir: &Path, out: &mut Output) -> Result<()> {
    let p = dir.join("trace");
    let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
    let mut r = BufReader::new(f);
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 || !line.starts_with(b"#") {
            break;
        }
        out.buf.extend_from_slice(&line);
    }
    out.flush()?;
    Ok(())
}

/// What a run printed: lines of the graph (not counting `#` headers) and lost-event
/// markers.
#[derive(Debug, Default, Clone, Copy)]
struct Printed {
    lines: u64,
    /// `[LOST N EVENTS]` markers.
    lost: u64,
    /// The sum of their counts.
    lost_events: u64,
}

impl Printed {
    /// Counts `text` (any chunk of the kernel's text, not only whole lines).
    fn add(&mut self, text: &[u8]) {
        let (lost, events) = text_pipe::lost_markers(text);
        self.lost += lost;
        self.lost_events += events;
        let newlines = text.iter().filter(|&&b| b == b'\n').count() as u64;
        self.lines += newlines.saturating_sub(lost);
    }
}

/// Streams `trace_pipe` until a signal or a closed output pipe.
fn stream(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    headers: bool,
) -> Result<(Printed, StreamEnd)> {
    let mut pipe = TextPipe::open(t.dir())?;
    if headers {
        copy_header(t.dir(), out)?;
    }
    let mut printed = Printed::default();
    // The kernel's text, with control characters in process names spelled out.
    let mut escaper = LineEscaper::default();
    let end = pipe.stream(
        shutdown,
        Duration::from_millis(250),
        || t.set("tracing_on", "0"),
        |text, last| {
            printed.add(text);
            escaper.push(text, &mut out.buf);
            if last {
                escaper.finish(&mut out.buf);
            }
            out.flush()?;
            Ok(())
        },
    )?;
    Ok((printed, end))
}

/// Traces for `secs`, then prints the `trace` file (without `#` lines unless `headers`).
fn buffered(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    secs: f64,
    headers: bool,
) -> Result<Printed> {
    shutdown.sleep(Duration::from_secs_f64(secs));
    t.set("tracing_on", "0")?;
    let p = t.dir().join("trace");
    let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut line = Vec::new();
    let mut printed = Printed::default();
    let mut escaper = LineEscaper::default();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", p.display()))?
            == 0
        {
            break;
        }
        if line.starts_with(b"#") {
            if !headers {
                continue;
            }
        } else {
            printed.add(&line);
        }
        escaper.push(&line, &mut out.buf);
        if out.buf.len() >= 1 << 16 {
            out.flush()?;
        }
    }
    escaper.finish(&mut out.buf);
    out.flush()?;
    Ok(printed)
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
        _ => String::new(),
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
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    require_function_graph(&tracefs)?;
    let aff = read_file(&tracefs.path("available_filter_functions"))
        .context("reading available_filter_functions")?;
    let names = toplevel::filter_function_names(&aff);
    let missing = untraceable(&pats, &names);
    if !missing.is_empty() {
        bail!("{}", untraceable_message(&missing));
    }
    drop(names);
    drop(aff);
    let tids = traced_tids(&args)?;

    let mut target = open_target(&tracefs, args.maxdepth.is_some_and(|d| d > 0))?;
    configure(&mut target, &args, &tids, &pats)?;
    // PT_FAULT=panic (cleanup tests): everything must still be restored while unwinding.
    perf_tools_core::fault::fault_point();
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    out.flush()?;
    let (printed, end) = match args.duration {
        Some(d) => (
            buffered(&mut target, &shutdown, &mut out, d, headers)?,
            StreamEnd::Finished,
        ),
        None => stream(&mut target, &shutdown, &mut out, headers)?,
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
    fn reports_untraceable_functions_with_close_matches() {
        let names = ["vfs_read", "vfs_readv", "do_sys_openat2", "ksys_read"];
        let pats = patterns(&["vfs_read do_sys_open".into(), "ext4_*".into(), "!x".into()]);
        let m = untraceable(&pats, &names);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].0, "do_sys_open");
        assert_eq!(m[0].1, vec!["do_sys_openat2"]);
        assert_eq!(m[1].0, "ext4_*");
        let msg = untraceable_message(&m);
        assert!(msg.contains("close matches: do_sys_openat2"), "{msg}");
        assert!(msg.contains("no close matches"), "{msg}");
        assert!(untraceable(&patterns(&["vfs_rea*".into()]), &names).is_empty());
    }

    #[test]
    fn counts_lines_and_lost_markers_across_chunks() {
        let mut p = Printed::default();
        p.add(b" 0)   |  f() {\nCPU:1 [LOST 12 EVENTS]\n 0)   ");
        p.add(b"|  }\nCPU:0 [LOST 3 EVENTS]\n");
        assert_eq!((p.lines, p.lost, p.lost_events), (2, 2, 15));
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
