//! The function_graph tracer, shared by funcgraph and funcslower: the checks that the
//! kernel has it, the choice of where it runs (a private instance where the kernel can run
//! function_graph there, else the saved-and-restored top level), its settings, and the
//! streaming of the kernel's own text rendering (`trace_pipe`, or `trace` after a timed
//! run) with control characters in process names spelled out.
//!
//! function_graph has no binary decoder in this suite: its lines are the kernel's text,
//! passed through (optionally dropping whole lines a tool does not want).
//!
//! `--cgroup`/`--container` ([`configure_scoped`]): the cgroup's threads go to the
//! target's `set_ftrace_pid` with `options/function-fork` before function_graph starts
//! ([`Scope::seed_function`]), and the list is kept current while the run lasts
//! ([`Scope::turn_in`], appending). At the top level (stock kernels' instances have no
//! `set_graph_function`) both files are changed through [`TopLevel::set`] like every
//! other top-level file: their original values are saved in the state file first and
//! written back on every exit path (normal end, error, signal, panic; after SIGKILL by
//! the next run or `--cleanup`), which also drops every PID appended meanwhile. The
//! lines are the kernel's text, so the scope is the kernel's list: a task that moves
//! out of the cgroup mid-run stays traced until it exits (the kernel keeps it listed).
//!
//! `tracing_thresh` (funcslower) is one global setting for every function_graph user of
//! the kernel (an instance's graph tracer reads it too), so a run that sets it holds the
//! top-level lock, refuses while any other function_graph user is active, and a run that
//! does not set it refuses while it is non-zero.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use perf_tools_core::check::{Report, Status};
use perf_tools_core::output::{LineEscaper, Output};
use perf_tools_core::signals::Shutdown;

use crate::cleanup;
use crate::instance::Instance;
use crate::owner;
use crate::scope::Scope;
use crate::session::StreamEnd;
use crate::text_pipe::{self, TextPipe};
use crate::toplevel::{self, TopLevel};
use crate::tracefs::{read_file, Tracefs};

/// The overhead warning, printed once per run on stderr before function_graph is enabled.
pub const OVERHEAD_WARNING: &str = "WARNING: while function_graph is active the kernel runs measurably slower (50% or more), even when nothing is printed; trace briefly and narrowly";

/// Whether `word` is one of the whitespace-separated words of `text`.
pub fn has_word(text: &str, word: &str) -> bool {
    text.split_whitespace().any(|w| w == word)
}

/// The patterns of the positional arguments (each may hold a space-separated list).
pub fn patterns(functions: &[String]) -> Vec<String> {
    functions
        .iter()
        .flat_map(|f| f.split_whitespace())
        .map(str::to_string)
        .collect()
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

/// Fails with [`untraceable_message`] when a pattern matches no traceable function.
pub fn require_traceable(tracefs: &Tracefs, pats: &[String]) -> Result<()> {
    let aff = read_file(&tracefs.path("available_filter_functions"))
        .context("reading available_filter_functions")?;
    let names = toplevel::filter_function_names(&aff);
    let missing = untraceable(pats, &names);
    if !missing.is_empty() {
        bail!("{}", untraceable_message(&missing));
    }
    Ok(())
}

/// Checks that the kernel can run function_graph at all, before anything is changed.
pub fn require_function_graph(tracefs: &Tracefs, tool: &str) -> Result<()> {
    let tracers = read_file(&tracefs.path("available_tracers")).unwrap_or_default();
    if !has_word(&tracers, "function_graph") {
        bail!(
            "this kernel has no function_graph tracer (available_tracers: {}): it was built without CONFIG_FUNCTION_GRAPH_TRACER, so {tool} cannot run here; use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y (most distribution kernels are)",
            if tracers.trim().is_empty() { "none" } else { tracers.trim() }
        );
    }
    if !tracefs.path("set_graph_function").exists() {
        bail!(
            "{} has no set_graph_function: the kernel lacks CONFIG_DYNAMIC_FTRACE, which {tool} needs to graph single functions",
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

/// The threads to trace: every current thread of `pid`, or `tid`, or none (everything).
pub fn traced_tids(pid: Option<u32>, tid: Option<u32>) -> Result<Vec<u32>> {
    if let Some(pid) = pid {
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
    if let Some(tid) = tid {
        if !Path::new(&format!("/proc/{tid}/status")).exists() {
            bail!("no thread with TID {tid}");
        }
        return Ok(vec![tid]);
    }
    Ok(Vec::new())
}

/// An instance whose tracer is set back to nop before the instance is removed.
pub struct InstanceTarget {
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

/// Where the graph is traced: a private instance (with the top level saved and locked
/// too when a global file such as `tracing_thresh` must change), or the saved-and-restored
/// top level.
pub enum Target {
    /// A private instance; `top` is taken by [`Target::set_global`]. Fields drop in
    /// order: the instance's tracer stops before the global settings are restored.
    Instance {
        /// The instance.
        inst: InstanceTarget,
        /// The top level, when a global setting was changed.
        top: Option<TopLevel>,
        /// The tracefs of the instance.
        tracefs: Tracefs,
        /// The tool (for the state file's name).
        tool: &'static str,
    },
    /// The top level: its saved state, the tracefs root, the tool.
    Top(TopLevel, PathBuf, &'static str),
}

impl Target {
    /// The directory holding the tracer's files.
    pub fn dir(&self) -> &Path {
        match self {
            Target::Instance { inst, .. } => &inst.dir,
            Target::Top(_, root, _) => root,
        }
    }

    /// Turns recording off (`tracing_on` 0; saved first at the top level).
    fn stop_recording(top: Option<&mut TopLevel>, inst: Option<&Instance>) -> Result<()> {
        match (top, inst) {
            (Some(t), _) => t.set("tracing_on", "0"),
            (None, Some(i)) => i.write("tracing_on", "0"),
            (None, None) => Ok(()),
        }
    }

    /// The target split into its instance (shared), its top level (when the tracer
    /// runs there), its directory and its tool, so that a read loop can stop recording
    /// while it keeps a scope's list current.
    fn split(
        &mut self,
    ) -> (
        Option<&Instance>,
        Option<&mut TopLevel>,
        &Path,
        &'static str,
    ) {
        match self {
            Target::Instance { inst, tool, .. } => (inst.inst.as_ref(), None, &inst.dir, *tool),
            Target::Top(t, root, tool) => (None, Some(t), root, *tool),
        }
    }

    /// The tool running on this target.
    fn tool(&self) -> &'static str {
        match self {
            Target::Instance { tool, .. } | Target::Top(_, _, tool) => tool,
        }
    }

    /// Whether the run uses the top-level tracer.
    pub fn is_top(&self) -> bool {
        matches!(self, Target::Top(..))
    }

    /// Whether the target has this file.
    pub fn has(&self, rel: &str) -> bool {
        self.dir().join(rel).exists()
    }

    /// Reads a file of the target.
    pub fn read(&self, rel: &str) -> Result<String> {
        let p = self.dir().join(rel);
        read_file(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// Writes a file of the target (saving its original value first at the top level).
    pub fn set(&mut self, rel: &str, value: &str) -> Result<()> {
        match self {
            Target::Instance { inst, .. } => {
                let p = inst.dir.join(rel);
                std::fs::write(&p, value)
                    .with_context(|| format!("writing {value:?} to {}", p.display()))
            }
            Target::Top(t, ..) => t.set(rel, value),
        }
    }

    /// The top level (its lock taken and a state file started on first use), for the
    /// global files every instance shares.
    pub fn top(&mut self) -> Result<&mut TopLevel> {
        match self {
            Target::Instance {
                top, tracefs, tool, ..
            } => {
                if top.is_none() {
                    let (t, restored) = TopLevel::begin(tracefs, tool)?;
                    for r in restored {
                        eprintln!("{tool}: removed {r} left behind by a killed run");
                    }
                    *top = Some(t);
                }
                match top.as_mut() {
                    Some(t) => Ok(t),
                    None => bail!("internal: top level not taken"),
                }
            }
            Target::Top(t, ..) => Ok(t),
        }
    }

    /// Ends tracing and undoes everything, reporting a failure.
    pub fn finish(self) -> Result<()> {
        match self {
            Target::Instance { mut inst, top, .. } => {
                inst.stop();
                let removed = match inst.inst.take() {
                    Some(i) => i.remove(),
                    None => Ok(()),
                };
                let restored = match top {
                    Some(t) => t.restore(),
                    None => Ok(()),
                };
                removed.and(restored)
            }
            Target::Top(t, ..) => t.restore(),
        }
    }
}

/// Picks a private instance when function_graph and set_graph_function (and
/// max_graph_depth, if `need_depth`) work there, else the top level.
pub fn open_target(tracefs: &Tracefs, tool: &'static str, need_depth: bool) -> Result<Target> {
    let why_not = match cleanup::start_instance(tracefs, tool) {
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
                return Ok(Target::Instance {
                    inst: InstanceTarget {
                        inst: Some(inst),
                        dir,
                    },
                    top: None,
                    tracefs: tracefs.clone(),
                    tool,
                });
            };
            inst.remove()?;
            why_not
        }
        Err(_) => "private trace instances are not available",
    };
    let (top, restored) = TopLevel::begin(tracefs, tool)?;
    for r in restored {
        eprintln!("{tool}: removed {r} left behind by a killed run");
    }
    let cur = top.read("current_tracer")?;
    let cur = cur.trim();
    if cur != "nop" {
        bail!(
            "ftrace is in use: the top-level tracer is {cur:?} (current_tracer), and {why_not}, so {tool} would have to take it over; stop the other user first (if it was left behind by a crashed tool: echo nop > {})",
            tracefs.path("current_tracer").display()
        );
    }
    eprintln!(
        "{tool}: {why_not}: using the top-level tracer; the original settings are saved in {} and restored on exit",
        top.state_file().display()
    );
    Ok(Target::Top(top, tracefs.root().to_path_buf(), tool))
}

/// The global `tracing_thresh` in microseconds (0: off; `None`: the kernel has no such
/// file).
pub fn tracing_thresh(tracefs: &Tracefs) -> Option<u64> {
    let text = read_file(&tracefs.path("tracing_thresh")).ok()?;
    text.trim().parse().ok()
}

/// Instances other than `own` whose tracer is function_graph: `(name, live owner pid)`.
pub fn graph_instances(tracefs: &Tracefs, own: Option<&Path>) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(tracefs.path("instances")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|e| own != Some(e.path().as_path()))
        .filter(|e| {
            read_file(&e.path().join("current_tracer"))
                .map(|t| t.trim() == "function_graph")
                .unwrap_or(false)
        })
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match owner::owner_pid(&name) {
                Some(pid) => format!("instances/{name} (PID {pid})"),
                None => format!("instances/{name}"),
            }
        })
        .collect();
    out.sort();
    out
}

/// What one run sets up: the functions, who is traced, and the options.
pub struct Settings<'a> {
    /// The tool's name (messages).
    pub tool: &'a str,
    /// Function patterns for `set_graph_function`.
    pub pats: &'a [String],
    /// Threads to trace (empty: all but this process).
    pub tids: &'a [u32],
    /// `-p PID`: follow the threads it creates (function-fork).
    pub pid: Option<u32>,
    /// `max_graph_depth`.
    pub maxdepth: Option<u32>,
    /// `tracing_thresh` in microseconds (funcslower): only returns slower than this are
    /// recorded, and `set_ftrace_filter` is set to the patterns so only they are timed.
    pub thresh_us: Option<u64>,
    /// `set_ftrace_filter` is set to the patterns without a threshold, so only they are
    /// timed and every call of them is recorded (funcslower `--context`).
    pub filter_functions: bool,
    /// Trace options to set: `(option, value, the flag that asks for it)`.
    pub options: Vec<(&'a str, &'a str, &'a str)>,
}

/// Refuses to set `tracing_thresh` while another function_graph user or top-level tracer
/// is active, and refuses to run function_graph without it while it is set (the kernel
/// would record only the slow returns, corrupting a graph).
fn thresh_conflicts(t: &mut Target, s: &Settings) -> Result<()> {
    let tool = s.tool;
    let tracefs = match t {
        Target::Instance { tracefs, .. } => tracefs.clone(),
        Target::Top(_, root, _) => Tracefs::at(root.clone()),
    };
    let own = (!t.is_top()).then(|| t.dir().to_path_buf());
    match s.thresh_us {
        None => {
            if let Some(th) = tracing_thresh(&tracefs).filter(|&v| v != 0) {
                bail!(
                    "tracing_thresh is {th} us (set by a running funcslower, or another ftrace user): every function_graph tracer would then record only returns slower than that, so {tool} would show a wrong graph; wait for that user to end (if a crashed tool left it: echo 0 > {})",
                    tracefs.path("tracing_thresh").display()
                );
            }
        }
        Some(_) => {
            if !tracefs.path("tracing_thresh").exists() {
                bail!("{} has no tracing_thresh (a kernel built without CONFIG_TRACER_MAX_TRACE/FUNCTION_GRAPH_TRACER support for it); {tool} needs it", tracefs.root().display());
            }
            // Take the top-level lock (one top-level user of this suite at a time) before
            // looking, so another funcslower cannot start in between.
            let top = t.top()?;
            let cur = top.read("current_tracer")?;
            if cur.trim() != "nop" && !matches!(t, Target::Top(..)) {
                bail!(
                    "the top-level tracer is {:?}: it may depend on tracing_thresh, which {tool} has to change; stop the other ftrace user first",
                    cur.trim()
                );
            }
            if let Some(th) = tracing_thresh(&tracefs).filter(|&v| v != 0) {
                bail!(
                    "tracing_thresh is already {th} us: another ftrace user (a latency tracer, or a crashed tool) set it, and {tool} would overwrite it; if it is left over: echo 0 > {}",
                    tracefs.path("tracing_thresh").display()
                );
            }
            let others = graph_instances(&tracefs, own.as_deref());
            if !others.is_empty() {
                bail!(
                    "function_graph is running in {}: tracing_thresh is global, so setting it would change that run's graph; wait for it to end, or stop it",
                    others.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Applies the settings to the target and turns function_graph on.
pub fn configure(t: &mut Target, s: &Settings) -> Result<()> {
    configure_scoped(t, s, None)
}

/// [`configure`] for a run limited to a cgroup: the cgroup's threads go to the
/// target's `set_ftrace_pid` with `options/function-fork` before the tracer starts
/// ([`Scope::seed_function`]; at the top level saved first and restored on every exit
/// path, see the module documentation). [`stream`] and [`buffered`] keep the list
/// current.
pub fn configure_scoped(t: &mut Target, s: &Settings, scope: Option<&mut Scope>) -> Result<()> {
    let tool = s.tool;
    if scope.is_some() && !s.tids.is_empty() {
        bail!("internal: {tool} was given both a cgroup scope and -p/-L threads");
    }
    thresh_conflicts(t, s)?;
    let funcs = s.pats.join(" ");
    let only_functions = s.thresh_us.is_some() || s.filter_functions;
    if t.is_top() || only_functions {
        // function_graph also honours set_ftrace_filter: clear it at the top level (saved,
        // restored later), or (with a threshold) limit it to the functions themselves.
        let filter = t.read("set_ftrace_filter")?;
        if filter
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(':'))
        {
            bail!("set_ftrace_filter holds function triggers (another ftrace user is active); {tool} will not remove them. Clear them first if they are left over");
        }
        if only_functions {
            if let Err(e) = t.set("set_ftrace_filter", &format!("{funcs}\n")) {
                bail!("the kernel refused set_ftrace_filter \"{funcs}\" ({e:#}); check the names against available_filter_functions");
            }
        } else if !toplevel::normalize("set_ftrace_filter", &filter).is_empty() {
            t.set("set_ftrace_filter", "")?;
        }
    }
    if let Some(d) = s.maxdepth {
        if t.has("max_graph_depth") {
            t.set("max_graph_depth", &d.to_string())?;
        } else if d > 0 {
            bail!("this kernel has no max_graph_depth (-m needs Linux 3.18 or later)");
        }
        // -m 0 without max_graph_depth: such a kernel has no depth limit at all.
    }
    if !s.tids.is_empty() {
        let list: Vec<String> = s.tids.iter().map(u32::to_string).collect();
        t.set("set_ftrace_pid", &list.join(" "))
            .context("limiting tracing to the given PID")?;
        if let Some(pid) = s.pid {
            if t.has("options/function-fork") {
                t.set("options/function-fork", "1")?;
            } else {
                eprintln!("{tool}: this kernel has no options/function-fork (Linux 4.15+): threads PID {pid} creates from now on are not traced");
            }
        }
    }
    if let Some(sc) = scope {
        let label = sc.label().to_string();
        sc.seed_function(|rel, value| t.set(rel, value))
            .with_context(|| format!("limiting function tracing to the {label}"))?;
    }
    if s.tids.is_empty() {
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
                .with_context(|| format!("excluding {tool} itself from tracing"))?;
        } else {
            eprintln!("{tool}: this kernel has no set_ftrace_notrace_pid (Linux 5.8+), so {tool}'s own reads and writes are traced too: avoid functions on its I/O path (vfs_read, vfs_write, ...) or use -p");
        }
    }
    // The trailing newline makes the kernel parse the last pattern during write(2), so
    // a pattern that matches nothing fails here (EINVAL). Without it the kernel parses
    // that word when the file is closed, ignores the error and installs an empty list:
    // function_graph would then trace every function.
    if let Err(e) = t.set("set_graph_function", &format!("{funcs}\n")) {
        bail!("the kernel refused set_graph_function \"{funcs}\" ({e:#}); check the names against available_filter_functions");
    }
    for &(opt, value, flag) in &s.options {
        let rel = format!("options/{opt}");
        if !t.has(&rel) {
            bail!("this kernel has no {rel}, which {flag} needs (older kernel?)");
        }
        t.set(&rel, value)?;
    }
    if t.read("tracing_on")?.trim() != "1" {
        t.set("tracing_on", "1")?;
    }
    if let Some(us) = s.thresh_us {
        // Read by function_graph when it starts: set before the tracer.
        t.top()?
            .set("tracing_thresh", &us.to_string())
            .context("setting tracing_thresh")?;
    }
    eprintln!("{tool}: {OVERHEAD_WARNING}");
    t.set("current_tracer", "function_graph")
        .context("enabling the function_graph tracer")?;
    verify(t, tool)
}

/// Checks, cheaply, that the kernel took the settings that make rows appear: the tracer
/// is function_graph and tracing_on reads 1.
fn verify(t: &Target, tool: &str) -> Result<()> {
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
            "tracing_on in {dir} reads {:?} after {tool} turned it on: recording is disabled (a kernel warning with traceoff_on_warning, or another ftrace user); nothing would be traced",
            on.trim()
        );
    }
    Ok(())
}

/// The `#` header lines at the top of the target's `trace` file.
fn header(dir: &Path) -> Result<Vec<u8>> {
    let p = dir.join("trace");
    let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
    let mut r = BufReader::new(f);
    let mut line = Vec::new();
    let mut out = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 || !line.starts_with(b"#") {
            break;
        }
        out.extend_from_slice(&line);
    }
    Ok(out)
}

/// A consumer of the kernel's text line by line, instead of passing it through
/// (funcslower `--context`: it decides what to print from each call's duration).
pub trait LineSink {
    /// Takes one whole line (escaped like printed text, with its newline; `#` header
    /// lines too when headers were asked for) and appends what is to be printed to
    /// `out`.
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>);
    /// Called after each read while streaming (at least every 250 ms, also when
    /// nothing came) and once at the end (`last`); returns true when the run can end
    /// (the run is then ended as by a signal: the rest is read and handed on first).
    fn tick(&mut self, last: bool, out: &mut Vec<u8>) -> bool;
}

/// Where the kernel's lines go.
enum Lines<'s> {
    /// Printed as they are, less those the predicate rejects.
    Print(Option<Keep>),
    /// Handed whole to a sink, which prints what it decides.
    Sink(&'s mut dyn LineSink),
}

impl Lines<'_> {
    /// Escapes `text` (a chunk, or the rest with `last`) and prints or hands on its
    /// whole lines; counts what is printed and the kernel's lost-event markers.
    fn push(
        &mut self,
        text: &[u8],
        last: bool,
        st: &mut LinesState,
        printed: &mut Printed,
        out: &mut Vec<u8>,
    ) {
        match self {
            Lines::Print(keep) => {
                let text = match keep {
                    Some(keep) => {
                        let f = st.filter.get_or_insert_with(|| LineFilter {
                            keep: *keep,
                            partial: Vec::new(),
                        });
                        st.kept.clear();
                        f.push(text, last, &mut st.kept);
                        &st.kept[..]
                    }
                    None => text,
                };
                printed.add(text);
                st.escaper.push(text, out);
                if last {
                    st.escaper.finish(out);
                }
            }
            Lines::Sink(sink) => {
                let (lost, events) = text_pipe::lost_markers(text);
                printed.lost += lost;
                printed.lost_events += events;
                st.kept.clear();
                st.escaper.push(text, &mut st.kept);
                if last {
                    st.escaper.finish(&mut st.kept);
                    if !st.kept.is_empty() && !st.kept.ends_with(b"\n") {
                        st.kept.push(b'\n');
                    }
                }
                let start = out.len();
                for line in st.kept.split_inclusive(|&b| b == b'\n') {
                    sink.line(line, out);
                }
                printed.lines += out[start..].iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
    }

    /// The sink's tick (see [`LineSink::tick`]); false when printing.
    fn tick(&mut self, last: bool, printed: &mut Printed, out: &mut Vec<u8>) -> bool {
        match self {
            Lines::Print(_) => false,
            Lines::Sink(sink) => {
                let start = out.len();
                let done = sink.tick(last, out);
                printed.lines += out[start..].iter().filter(|&&b| b == b'\n').count() as u64;
                done
            }
        }
    }

    /// Prints the header lines, or hands them to the sink.
    fn header(&mut self, text: &[u8], out: &mut Vec<u8>) {
        match self {
            Lines::Print(_) => out.extend_from_slice(text),
            Lines::Sink(sink) => {
                for line in text.split_inclusive(|&b| b == b'\n') {
                    sink.line(line, out);
                }
            }
        }
    }
}

/// The state of [`Lines::push`] across reads.
#[derive(Default)]
struct LinesState {
    escaper: LineEscaper,
    filter: Option<LineFilter>,
    kept: Vec<u8>,
}

/// What a run printed: lines of the graph (not counting `#` headers) and lost-event
/// markers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Printed {
    /// Lines printed.
    pub lines: u64,
    /// `[LOST N EVENTS]` markers.
    pub lost: u64,
    /// The sum of their counts.
    pub lost_events: u64,
}

impl Printed {
    /// Counts `text` (any chunk of the kernel's text, not only whole lines).
    pub fn add(&mut self, text: &[u8]) {
        let (lost, events) = text_pipe::lost_markers(text);
        self.lost += lost;
        self.lost_events += events;
        let newlines = text.iter().filter(|&&b| b == b'\n').count() as u64;
        self.lines += newlines.saturating_sub(lost);
    }
}

/// A predicate on whole lines (with their newline) of the kernel's text: false drops it.
pub type Keep = fn(&[u8]) -> bool;

/// Splits chunks of text into whole lines and keeps those `keep` accepts.
struct LineFilter {
    keep: Keep,
    partial: Vec<u8>,
}

impl LineFilter {
    /// Appends the kept whole lines of `text` to `out`; the tail of the last chunk too.
    fn push(&mut self, text: &[u8], last: bool, out: &mut Vec<u8>) {
        self.partial.extend_from_slice(text);
        let mut start = 0;
        while let Some(n) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[start..start + n + 1];
            if (self.keep)(line) {
                out.extend_from_slice(line);
            }
            start += n + 1;
        }
        self.partial.drain(..start);
        if last && !self.partial.is_empty() {
            if (self.keep)(&self.partial) {
                out.extend_from_slice(&self.partial);
            }
            self.partial.clear();
        }
    }
}

/// The run of a graph tool: [`buffered`] for `duration` seconds when given (then
/// always [`StreamEnd::Finished`]), else [`stream`].
pub fn trace(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    duration: Option<f64>,
    headers: bool,
    keep: Option<Keep>,
    scope: Option<&mut Scope>,
) -> Result<(Printed, StreamEnd)> {
    run_lines(
        t,
        shutdown,
        out,
        duration,
        headers,
        Lines::Print(keep),
        scope,
    )
}

/// [`trace`] with every whole line (escaped) handed to `sink`, which prints what it
/// decides ([`LineSink`]); [`Printed::lines`] counts the lines it printed.
pub fn trace_lines(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    duration: Option<f64>,
    headers: bool,
    sink: &mut dyn LineSink,
    scope: Option<&mut Scope>,
) -> Result<(Printed, StreamEnd)> {
    run_lines(
        t,
        shutdown,
        out,
        duration,
        headers,
        Lines::Sink(sink),
        scope,
    )
}

fn run_lines(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    duration: Option<f64>,
    headers: bool,
    lines: Lines,
    scope: Option<&mut Scope>,
) -> Result<(Printed, StreamEnd)> {
    match duration {
        Some(d) => Ok((
            buffered_lines(t, shutdown, out, d, headers, lines, scope)?,
            StreamEnd::Finished,
        )),
        None => stream_lines(t, shutdown, out, headers, lines, scope),
    }
}

/// Streams `trace_pipe` until a signal or a closed output pipe, dropping lines `keep`
/// rejects (all are kept with `None`); with a `scope`, keeps the target's
/// `set_ftrace_pid` current ([`Scope::turn_in`]) and ends the run when the cgroup is
/// removed.
pub fn stream(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    headers: bool,
    keep: Option<Keep>,
    scope: Option<&mut Scope>,
) -> Result<(Printed, StreamEnd)> {
    stream_lines(t, shutdown, out, headers, Lines::Print(keep), scope)
}

fn stream_lines(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    headers: bool,
    mut lines: Lines,
    mut scope: Option<&mut Scope>,
) -> Result<(Printed, StreamEnd)> {
    let mut pipe = TextPipe::open(t.dir())?;
    if headers {
        let text = header(t.dir())?;
        lines.header(&text, &mut out.buf);
        out.flush()?;
    }
    let (inst, mut top, dir, tool) = t.split();
    let mut printed = Printed::default();
    // The kernel's text, with control characters in process names spelled out.
    let mut st = LinesState::default();
    let end = pipe.stream(
        shutdown,
        Duration::from_millis(250),
        || Target::stop_recording(top.as_deref_mut(), inst),
        |text, last| {
            if let Some(sc) = scope.as_deref_mut() {
                sc.turn_in(dir, &["set_ftrace_pid"], last, shutdown, tool)?;
            }
            lines.push(text, last, &mut st, &mut printed, &mut out.buf);
            if lines.tick(last, &mut printed, &mut out.buf) && !last {
                // The sink has all it wants (--count): end as a signal would.
                shutdown.request();
            }
            out.flush()?;
            Ok(())
        },
    )?;
    Ok((printed, end))
}

/// Traces for `secs`, then prints the `trace` file (without `#` lines unless `headers`;
/// without the lines `keep` rejects); with a `scope`, keeps the target's
/// `set_ftrace_pid` current meanwhile ([`Scope::sleep_in`]) and ends early when the
/// cgroup is removed.
pub fn buffered(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    secs: f64,
    headers: bool,
    keep: Option<Keep>,
    scope: Option<&mut Scope>,
) -> Result<Printed> {
    buffered_lines(t, shutdown, out, secs, headers, Lines::Print(keep), scope)
}

fn buffered_lines(
    t: &mut Target,
    shutdown: &Shutdown,
    out: &mut Output,
    secs: f64,
    headers: bool,
    mut lines: Lines,
    scope: Option<&mut Scope>,
) -> Result<Printed> {
    match scope {
        Some(sc) => {
            let (dir, tool) = (t.dir().to_path_buf(), t.tool());
            sc.sleep_in(&dir, &["set_ftrace_pid"], shutdown, secs, tool)?;
        }
        None => {
            shutdown.sleep(Duration::from_secs_f64(secs));
        }
    }
    t.set("tracing_on", "0")?;
    let p = t.dir().join("trace");
    let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut line = Vec::new();
    let mut printed = Printed::default();
    let mut st = LinesState::default();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", p.display()))?
            == 0
        {
            break;
        }
        if line.starts_with(b"#") {
            if headers {
                lines.header(&line, &mut out.buf);
            }
            continue;
        }
        lines.push(&line, false, &mut st, &mut printed, &mut out.buf);
        if out.buf.len() >= 1 << 16 {
            out.flush()?;
        }
    }
    lines.push(b"", true, &mut st, &mut printed, &mut out.buf);
    lines.tick(true, &mut printed, &mut out.buf);
    out.flush()?;
    Ok(printed)
}

/// What a function_graph tool would use on this host and whether it can run (`--check`,
/// and its row in perf-tools-doctor): the function_graph tracer, set_graph_function, the
/// `kernel.ftrace_enabled` sysctl, `tracing_thresh` (when `thresh`), and whether a
/// private instance can run function_graph (checked in one that is removed before this
/// returns) or the top level must be used (then free, and its `set_ftrace_filter`
/// readable). Nothing is changed.
pub fn check(tool: &'static str, thresh: bool) -> Result<Report> {
    use crate::check as fc;
    let mut r = Report::new(tool);
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
    if thresh {
        let (status, detail) = match tracing_thresh(&tracefs) {
            None => (Status::No, "missing".to_string()),
            Some(0) => (
                Status::Yes,
                "0 (free; set for the run, restored on exit)".to_string(),
            ),
            Some(v) => (
                Status::No,
                format!("{v} us: another ftrace user (or a crashed tool) has set it"),
            ),
        };
        r.item(
            "tracing_thresh",
            status,
            detail,
            format!(
                "stop the other user; if it is left over: echo 0 > {}",
                tracefs.path("tracing_thresh").display()
            ),
            true,
        );
    }
    if !graph {
        r.uses = "nothing: this kernel has no function_graph tracer".into();
        return Ok(r);
    }
    let why_not = match fc::instance(&tracefs, tool, &mut r) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(chunks: &[&[u8]], keep: Keep) -> Vec<u8> {
        let mut f = LineFilter {
            keep,
            partial: Vec::new(),
        };
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            f.push(c, i + 1 == chunks.len(), &mut out);
        }
        out
    }

    #[test]
    fn line_filter_sees_whole_lines_across_chunks() {
        fn no_x(l: &[u8]) -> bool {
            !l.contains(&b'x')
        }
        let out = filtered(&[b"ab", b"c\nx", b"x\nd\ne"], no_x);
        assert_eq!(out, b"abc\nd\ne");
        let out = filtered(&[b"a\n", b"", b"tail x"], no_x);
        assert_eq!(out, b"a\n");
    }

    #[test]
    fn counts_lines_and_lost_markers_across_chunks() {
        let mut p = Printed::default();
        p.add(b" 0)   |  f() {\nCPU:1 [LOST 12 EVENTS]\n 0)   ");
        p.add(b"|  }\nCPU:0 [LOST 3 EVENTS]\n");
        assert_eq!((p.lines, p.lost, p.lost_events), (2, 2, 15));
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
    fn finds_other_instances_running_function_graph() {
        let dir = std::env::temp_dir().join(format!("graph-others-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, tracer) in [
            ("funcgraph-77", "function_graph\n"),
            ("iosnoop-78", "nop\n"),
            ("mine", "function_graph\n"),
            ("user", "function_graph\n"),
        ] {
            let d = dir.join("instances").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("current_tracer"), tracer).unwrap();
        }
        std::fs::write(dir.join("tracing_thresh"), "150\n").unwrap();
        let t = Tracefs::at(dir.clone());
        let own = dir.join("instances/mine");
        assert_eq!(
            graph_instances(&t, Some(&own)),
            vec![
                "instances/funcgraph-77 (PID 77)".to_string(),
                "instances/user".to_string()
            ]
        );
        assert_eq!(tracing_thresh(&t), Some(150));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fake tracefs top level with the files funcslower changes (a directory; the
    /// kernel's semantics are not modelled, only what is read and written).
    fn fake_tracefs(name: &str, thresh: &str) -> (PathBuf, Tracefs) {
        let dir = std::env::temp_dir().join(format!("graph-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("options")).unwrap();
        std::fs::create_dir_all(dir.join("instances")).unwrap();
        std::fs::create_dir_all(dir.join("state")).unwrap();
        for (f, v) in [
            ("current_tracer", "nop\n"),
            ("tracing_thresh", thresh),
            ("tracing_on", "1\n"),
            ("set_ftrace_filter", "#### all functions enabled ####\n"),
            ("set_graph_function", "vfs_write\n"),
            ("set_ftrace_notrace_pid", "no pid\n"),
            ("options/funcgraph-proc", "0\n"),
        ] {
            std::fs::write(dir.join(f), v).unwrap();
        }
        let t = Tracefs::at(dir.clone());
        (dir, t)
    }

    fn top_target(dir: &Path, t: &Tracefs, tool: &'static str) -> Target {
        let (top, _) = TopLevel::begin_in(t, tool, &dir.join("state")).unwrap();
        Target::Top(top, dir.to_path_buf(), tool)
    }

    fn slower<'a>(pats: &'a [String]) -> Settings<'a> {
        Settings {
            tool: "funcslower",
            pats,
            tids: &[],
            pid: None,
            maxdepth: None,
            thresh_us: Some(150),
            filter_functions: false,
            options: vec![("funcgraph-proc", "1", "-P")],
        }
    }

    fn read(dir: &Path, f: &str) -> String {
        std::fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn a_scope_at_the_top_level_is_saved_and_restored() {
        // Any mounted cgroup will do (its root); a host without one has nothing to test.
        let args = crate::scope::CgroupArgs {
            cgroup: Some("/".into()),
            container: None,
        };
        let Ok(Some(mut sc)) = args.resolve() else {
            eprintln!("skipped: no cgroup hierarchy mounted");
            return;
        };
        let (dir, t) = fake_tracefs("scope", "0\n");
        std::fs::write(dir.join("set_ftrace_pid"), "no pid\n").unwrap();
        std::fs::write(dir.join("options/function-fork"), "0\n").unwrap();
        let pats = vec!["vfs_read".to_string()];
        let settings = Settings {
            tool: "funcgraph",
            pats: &pats,
            tids: &[],
            pid: None,
            maxdepth: None,
            thresh_us: None,
            filter_functions: false,
            options: Vec::new(),
        };
        let mut target = top_target(&dir, &t, "funcgraph");
        configure_scoped(&mut target, &settings, Some(&mut sc)).unwrap();
        assert_eq!(read(&dir, "options/function-fork"), "1");
        let pids = read(&dir, "set_ftrace_pid");
        assert!(
            pids.split(' ').all(|p| p.parse::<u32>().is_ok()),
            "{pids:?}"
        );
        // The originals are in the state file before anything changes.
        let state = read(
            &dir,
            &format!("state/funcgraph-{}.state", std::process::id()),
        );
        let saved = toplevel::parse_state(&state).unwrap();
        assert!(
            saved.contains(&("set_ftrace_pid".into(), String::new())),
            "{saved:?}"
        );
        assert!(
            saved.contains(&("options/function-fork".into(), "0".into())),
            "{saved:?}"
        );
        target.finish().unwrap();
        assert_eq!(read(&dir, "set_ftrace_pid"), "");
        assert_eq!(read(&dir, "options/function-fork"), "0");
        assert_eq!(read(&dir, "current_tracer"), "nop");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_threshold_run_sets_filter_graph_and_thresh_and_restores_them() {
        let (dir, t) = fake_tracefs("ok", "0\n");
        let pats = vec!["do_nanosleep".to_string()];
        let mut target = top_target(&dir, &t, "funcslower");
        configure(&mut target, &slower(&pats)).unwrap();
        assert_eq!(read(&dir, "tracing_thresh"), "150");
        assert_eq!(read(&dir, "set_ftrace_filter"), "do_nanosleep\n");
        assert_eq!(read(&dir, "set_graph_function"), "do_nanosleep\n");
        assert_eq!(read(&dir, "current_tracer"), "function_graph");
        assert_eq!(read(&dir, "options/funcgraph-proc"), "1");
        assert_eq!(
            read(&dir, "set_ftrace_notrace_pid"),
            std::process::id().to_string()
        );
        // The originals are in the state file before anything changes.
        let state = read(
            &dir,
            &format!("state/funcslower-{}.state", std::process::id()),
        );
        let saved = toplevel::parse_state(&state).unwrap();
        assert!(
            saved.contains(&("tracing_thresh".into(), "0".into())),
            "{saved:?}"
        );
        assert!(
            saved.contains(&("current_tracer".into(), "nop".into())),
            "{saved:?}"
        );
        assert!(
            saved.contains(&("set_graph_function".into(), "vfs_write".into())),
            "{saved:?}"
        );
        target.finish().unwrap();
        assert_eq!(read(&dir, "tracing_thresh"), "0");
        assert_eq!(read(&dir, "current_tracer"), "nop");
        assert_eq!(read(&dir, "set_ftrace_filter"), "");
        assert_eq!(read(&dir, "set_graph_function"), "vfs_write");
        assert_eq!(read(&dir, "options/funcgraph-proc"), "0");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_beside_another_graph_user_and_changes_nothing() {
        let pats = vec!["do_nanosleep".to_string()];
        // funcgraph running in an instance: funcslower would change its graph.
        let (dir, t) = fake_tracefs("inst", "0\n");
        let inst = dir.join("instances/funcgraph-77");
        std::fs::create_dir_all(&inst).unwrap();
        std::fs::write(inst.join("current_tracer"), "function_graph\n").unwrap();
        let mut target = top_target(&dir, &t, "funcslower");
        let e = configure(&mut target, &slower(&pats))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("function_graph is running in instances/funcgraph-77 (PID 77): tracing_thresh is global"),
            "{e}"
        );
        target.finish().unwrap();
        assert_eq!(read(&dir, "tracing_thresh"), "0\n");
        assert_eq!(read(&dir, "current_tracer"), "nop\n");
        std::fs::remove_dir_all(&dir).unwrap();

        // tracing_thresh already set (a funcslower, or a latency tracer): funcslower
        // refuses; funcgraph refuses too.
        let (dir, t) = fake_tracefs("thresh", "5000\n");
        let mut target = top_target(&dir, &t, "funcslower");
        let e = configure(&mut target, &slower(&pats))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tracing_thresh is already 5000 us"), "{e}");
        target.finish().unwrap();
        let mut target = top_target(&dir, &t, "funcgraph");
        let graph = Settings {
            tool: "funcgraph",
            thresh_us: None,
            options: Vec::new(),
            ..slower(&pats)
        };
        let e = configure(&mut target, &graph).unwrap_err().to_string();
        assert!(
            e.starts_with("tracing_thresh is 5000 us (set by a running funcslower"),
            "{e}"
        );
        target.finish().unwrap();
        assert_eq!(read(&dir, "tracing_thresh"), "5000\n");
        assert_eq!(read(&dir, "set_graph_function"), "vfs_write\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
