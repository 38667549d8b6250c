//! kprobe: create, trace and remove one dynamic kernel probe.
//!
//! A port of perf-tools' `kprobe`: the same options and definition syntax (`p:` or `r:`,
//! alias optional), the kernel's event lines as output, plus: the lines are rendered from
//! the probe's binary records ([`render`]), so names from user space are escaped and
//! cannot forge lines; the probe lives in a per-run group `ptrs_<pid>` and is traced in a
//! private instance (never the top level), rejected definitions are explained from tracefs `error_log` with the position the
//! kernel points at, aliases are sanitized into valid event names, kretprobe misses are
//! reported, and the probe is removed on every exit path (or by the next run's
//! stale-state cleanup after `kill -9`).

use anyhow::{bail, Result};
use clap::Parser;
use std::io::{Read, Write};
use std::time::Duration;

use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_core::target;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::probe::{self, Probe, ProbeError};
use perf_tools_ftrace::session::{RunAccount, Session, StreamEnd};
use perf_tools_ftrace::text_pipe::{self, TextPipe};
use perf_tools_ftrace::tracefs::Tracefs;

pub mod faults;
pub mod render;

use faults::FaultWatch;

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "kprobe",
    version,
    about = "Create, trace and remove one dynamic kernel probe (kprobe or kretprobe)",
    long_about = None,
    after_help = "Examples:\n  kprobe p:do_sys_openat2                    # trace do_sys_openat2() entry\n  kprobe r:do_sys_openat2                    # trace its return\n  kprobe 'r:do_sys_openat2 $retval'          # with the return value\n  kprobe 'p:myopen do_sys_openat2 filename=+0($arg2):ustring'\n                                             # file name (2nd argument)\n  kprobe 'p:myopen do_sys_openat2 filename=+0($arg2):ustring' 'filename ~ \"*stat\"'\n                                             # only names ending in stat\n  kprobe -s p:vfs_fsync                      # with kernel stack traces\n  kprobe -p 91 p:vfs_read                    # only PID 91\n  kprobe -v 'p:do_sys_openat2 $arg1 $arg2'   # show the format, trace nothing\n\n$argN and $retval are portable across architectures (Linux 4.20+); register names\n(%di, %x0, ...) are not. See the kprobe(8) man page and the kernel's kprobetrace.rst."
)]
pub struct Args {
    /// Force: skip the available_filter_functions safety check
    #[arg(short = 'F')]
    pub force: bool,
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration, conflicts_with = "view")]
    pub duration: Option<f64>,
    /// Only trace this process (all its threads, also ones created later)
    #[arg(short = 'p', value_name = "PID", conflicts_with = "tid")]
    pub pid: Option<u32>,
    /// Only trace this thread
    #[arg(short = 'L', value_name = "TID")]
    pub tid: Option<u32>,
    /// Create the probe, print its format, remove it (trace nothing)
    #[arg(short = 'v')]
    pub view: bool,
    /// Print the trace's column headers
    #[arg(short = 'H')]
    pub headers: bool,
    /// Print the kernel stack after each event
    #[arg(short = 's')]
    pub stack: bool,
    /// Probe definition: p:[alias] func [args] or r:[alias] func [args]
    #[arg(value_name = "kprobe_definition", required = true)]
    pub definition: Option<String>,
    /// Optional ftrace filter expression, e.g. 'filename ~ "*stat"'
    #[arg(value_name = "filter")]
    pub filter: Option<String>,
    /// Remove trace instances and probes left behind by killed runs, then exit
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

/// A parsed probe definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// `p`, `r` or `rN` (maxactive).
    pub kind: String,
    /// The (sanitized) event name.
    pub event: String,
    /// The probed place: `func`, `func+off` or `module:func`.
    pub func: String,
    /// The fetch arguments, as given.
    pub args: String,
}

/// Parses `p:[alias] func [args]` / `r:[alias] func [args]`. Without an alias (the second
/// word is missing or is an argument: contains `=`, `%`, `$`, `(` or `@`) the event is
/// named after the function, sanitized (`foo.isra.0` → `foo_isra_0`).
pub fn parse_definition(def: &str) -> Result<Definition, String> {
    let def = def.trim();
    let Some((kind, rest)) = def.split_once(':') else {
        return Err("invalid kprobe definition (should start with p: or r:)".into());
    };
    let kind_ok =
        kind == "p" || (kind.starts_with('r') && kind[1..].bytes().all(|b| b.is_ascii_digit()));
    if !kind_ok {
        return Err("invalid kprobe definition (should start with p: or r:)".into());
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let Some(&first) = words.first() else {
        return Err("kprobe definition has no function".into());
    };
    let is_arg = |w: &str| w.contains(['=', '%', '$', '(', '@']);
    let (alias, func, args) = match words.get(1) {
        Some(w) if !is_arg(w) => (first, *w, &words[2..]),
        _ => (first, first, &words[1..]),
    };
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    Ok(Definition {
        kind: kind.to_string(),
        event: probe::sanitize_event_name(alias),
        func: func.to_string(),
        args: args.join(" "),
    })
}

/// The function name to look up in `available_filter_functions` (no offset or module).
pub fn base_function(place: &str) -> &str {
    let f = place.rsplit(':').next().unwrap_or(place);
    f.split('+').next().unwrap_or(f)
}

/// True if `func` is listed in the text of `available_filter_functions`.
pub fn function_available(list: &str, func: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().next() == Some(func))
}

/// Kretprobe misses of `event` from the text of `kprobe_profile`.
pub fn misses(profile: &str, event: &str) -> Option<u64> {
    profile_counts(profile, event).map(|(_, m)| m)
}

/// `(hits, misses)` of `event` from the text of `kprobe_profile`. The hits count every
/// time the probe fired, before any event filter or PID filter.
pub fn profile_counts(profile: &str, event: &str) -> Option<(u64, u64)> {
    profile.lines().find_map(|l| {
        let c: Vec<&str> = l.split_whitespace().collect();
        let name = c.first()?;
        if name.rsplit('/').next() != Some(event) || c.len() < 3 {
            return None;
        }
        Some((c[1].parse().ok()?, c[2].parse().ok()?))
    })
}

/// What kprobe would use on this host and whether it can run (`--check`, and its row in
/// perf-tools-doctor): kprobe events (verified by creating and removing a probe of this
/// run on a function the kernel lists), the control file, and the fetch syntax the
/// kernel's README documents (`$argN`, `ustring`). Nothing is left behind.
pub fn check() -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut r = Report::new("kprobe");
    let Some(tracefs) = fc::tracefs(&mut r) else {
        return Ok(r);
    };
    let support = probe::Support::detect(&tracefs);
    if !support.kprobes {
        r.item(
            "kprobe events",
            Status::No,
            format!("{} does not exist", tracefs.path("kprobe_events").display()),
            "use a kernel built with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y",
            true,
        );
        r.uses = "nothing: no kprobe events".into();
        return Ok(r);
    }
    let list =
        std::fs::read_to_string(tracefs.path("available_filter_functions")).unwrap_or_default();
    let func = ["vfs_read", "do_sys_openat2", "do_sys_open", "schedule"]
        .into_iter()
        .find(|f| function_available(&list, f))
        .unwrap_or("vfs_read");
    match Probe::create(
        &tracefs,
        support.kprobe_control(),
        "p",
        "perf_tools_check",
        func,
    ) {
        Ok(p) => {
            p.remove()?;
            r.item(
                "kprobe events",
                Status::Yes,
                format!(
                    "a test probe on {func} created and removed through {}",
                    support.kprobe_control()
                ),
                "",
                true,
            );
        }
        Err(e) => {
            r.item(
                "kprobe events",
                Status::No,
                format!("{e:#}").replace('\n', " "),
                "check the host's lockdown mode (/sys/kernel/security/lockdown) and that kprobes are not disabled (debug.kprobes-optimization, /sys/kernel/debug/kprobes/enabled)",
                true,
            );
            r.uses = "nothing: kprobes cannot be created".into();
            return Ok(r);
        }
    }
    r.item(
        "available_filter_functions",
        if list.is_empty() {
            Status::Degraded
        } else {
            Status::Yes
        },
        if list.is_empty() {
            "not readable: functions cannot be checked before probing (-F needed)"
        } else {
            "readable: functions are checked before probing"
        },
        "use a kernel built with CONFIG_DYNAMIC_FTRACE=y, or pass -F",
        false,
    );
    r.item(
        "$argN",
        if support.args {
            Status::Yes
        } else {
            Status::Degraded
        },
        if support.args {
            "documented in README"
        } else {
            "not documented in README: use registers (%di, %si, ...) instead"
        },
        "Linux 4.20+",
        false,
    );
    r.item(
        "ustring",
        if support.ustring {
            Status::Yes
        } else {
            Status::Degraded
        },
        if support.ustring {
            "documented in README"
        } else {
            "not documented in README: user strings need 'string'"
        },
        "Linux 5.5+",
        false,
    );
    r.uses = format!("kprobes through {}", support.kprobe_control());
    Ok(r)
}

/// Runs kprobe: checks, creates the probe, sets up a private instance, traces, and ends
/// with the loss, miss and end-of-run reports.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let Some(def_text) = args.definition.as_deref() else {
        return Err(cli::usage("no kprobe definition given"));
    };
    let def = parse_definition(def_text).map_err(cli::usage)?;
    // The suite's rule: a target that does not exist is an error before any state.
    if let Some(p) = args.pid {
        target::require_process(p)?;
    }
    if let Some(t) = args.tid {
        target::require_thread(t)?;
    }
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let support = probe::require_kprobes(&tracefs)?;
    if !args.force {
        require_traceable(&tracefs, &def)?;
    }
    // Declared before the instance: removed after it (the kernel refuses to remove a
    // probe still enabled in an instance).
    let (p, with_comm) = create_probe(&tracefs, &support, &def, args.view)?;
    if args.view {
        print!("{}", p.format(&tracefs)?);
        return p.remove();
    }
    // Reading /proc/kallsyms takes tens of ms of CPU: done meanwhile, while the
    // instance's settings wait on the kernel (RCU grace periods).
    let symbols = std::thread::spawn(render::Symbols::load);
    let inst = setup_instance(&tracefs, &args, &p)?;
    let decoders = decoders(&tracefs, &args, &p, &inst, with_comm);
    inst.enable_event(p.group(), p.event())?;
    inst.set_tracing_on(true)?;
    let mut out = Output::stdout();
    let traced = match decoders {
        Some(d) => {
            let syms = symbols.join().unwrap_or_default();
            trace_binary(&args, &def, &shutdown, inst, &mut out, p.event(), d, syms)?
        }
        None => trace_text(&args, &shutdown, inst, &mut out, p.event())?,
    };
    if traced.end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly (the instance is gone).
        return p.remove();
    }
    let profile = std::fs::read_to_string(tracefs.path("kprobe_profile")).unwrap_or_default();
    let counts = profile_counts(&profile, p.event());
    p.remove()?;
    let _ = writeln!(out.buf, "\nEnding tracing...");
    out.flush()?;
    if traced.lost > 0 {
        eprintln!(
            "WARNING: {} events lost in total: the kernel buffer overflowed; lines are missing",
            traced.lost
        );
    }
    if def.kind.starts_with('r') {
        if let Some(m) = counts.map(|c| c.1).filter(|&m| m > 0) {
            eprintln!("WARNING: {m} kretprobe hits were missed (maxactive too low: use r<N>: with a larger N, e.g. r64:)");
        }
    }
    if let Some(line) = account(&args, &traced, counts.map(|c| c.0)).line() {
        eprintln!("{line}");
    }
    Ok(())
}

/// Refuses a function the kernel does not list as traceable (the original's safety
/// check; `-F` skips it).
fn require_traceable(tracefs: &Tracefs, def: &Definition) -> Result<()> {
    let f = base_function(&def.func);
    let path = tracefs.path("available_filter_functions");
    let list = std::fs::read_to_string(&path).unwrap_or_default();
    if !function_available(&list, f) {
        bail!("func {f} not in {}: either it doesn't exist, or it might be unsafe to kprobe; use -F to override", path.display());
    }
    Ok(())
}

/// Creates the probe. Outside `-v` it also records the task's comm (`$comm`), so lines
/// name the task as it was when the event fired, from the binary record, escaped; a
/// kernel refusing that gets the user's definition alone (tasks are then named from
/// /proc). Returns the probe and whether it records the comm.
fn create_probe(
    tracefs: &Tracefs,
    support: &probe::Support,
    def: &Definition,
    view: bool,
) -> Result<(Probe, bool)> {
    let create = |extra: &str| {
        Probe::create(
            tracefs,
            support.kprobe_control(),
            &def.kind,
            &def.event,
            format!("{} {} {extra}", def.func, def.args).trim(),
        )
    };
    let attempt = if view {
        None
    } else {
        create(&format!("{COMM_ARG}=$comm")).ok()
    };
    let with_comm = attempt.is_some();
    match attempt.map_or_else(|| create(""), Ok) {
        Ok(p) => Ok((p, with_comm)),
        Err(e) => {
            let hint = e
                .downcast_ref::<ProbeError>()
                .and_then(|pe| probe::register_hint(&pe.definition))
                .map(|h| format!("\n{h}"))
                .unwrap_or_default();
            Err(e.context(format!("creating the probe{hint}")))
        }
    }
}

/// The private instance with the trace clock, the filters (the user's, `-L`, and
/// kprobe's own activity left out), `-p`'s PID list and `-s`'s stack traces.
fn setup_instance(tracefs: &Tracefs, args: &Args, p: &Probe) -> Result<Instance> {
    let inst = cleanup::start_instance(tracefs, "kprobe")?;
    inst.ensure("trace_clock", "mono")?;
    let (group, event) = (p.group(), p.event());
    let mut filter = args.filter.clone().unwrap_or_default();
    if let Some(t) = args.tid {
        filter = if filter.is_empty() {
            format!("common_pid == {t}")
        } else {
            format!("({filter}) && common_pid == {t}")
        };
    }
    if !filter.is_empty() {
        // Set the user's expression alone first, so a rejection points into their text.
        inst.set_filter(group, event, &filter)?;
    }
    if args.tid.is_none() && args.pid.is_none() {
        // Leave out kprobe's own activity (its tracefs reads and writes).
        let me = std::process::id();
        filter = if filter.is_empty() {
            format!("common_pid != {me}")
        } else {
            format!("({filter}) && common_pid != {me}")
        };
        inst.set_filter(group, event, &filter)?;
    }
    if let Some(pid) = args.pid {
        let tids: Vec<String> = target::Procfs::default()
            .threads_of(pid)
            .iter()
            .map(u32::to_string)
            .collect();
        if tids.is_empty() {
            bail!("no process with PID {pid} (it exited after kprobe started)");
        }
        inst.write("options/event-fork", "1")?;
        inst.write("set_event_pid", &tids.join(" "))?;
    }
    if args.stack {
        inst.write("options/stacktrace", "1")?;
    }
    Ok(inst)
}

/// What decodes the probe's binary records.
struct Decoders {
    layout: render::ProbeEvent,
    stack: Option<render::StackEvent>,
    style: render::Style,
}

/// The decoders of the probe's records (and of stack records with `-s`), or `None`
/// with a warning: kprobe then prints the kernel's text, unescaped.
fn decoders(
    tracefs: &Tracefs,
    args: &Args,
    p: &Probe,
    inst: &Instance,
    with_comm: bool,
) -> Option<Decoders> {
    // The column legend of the kernel's text output (read while the buffer is empty).
    let style = inst
        .read("trace")
        .ok()
        .and_then(|t| render::Style::from_header(&t))
        .unwrap_or_default();
    let layout = p
        .format(tracefs)
        .map_err(|e| e.to_string())
        .and_then(|text| render::ProbeEvent::new(&text, with_comm.then_some(COMM_ARG), true));
    let stack = if args.stack {
        perf_tools_ftrace::tracefs::read_file(&tracefs.path("events/ftrace/kernel_stack/format"))
            .map_err(|e| format!("reading events/ftrace/kernel_stack/format: {e}"))
            .and_then(|t| render::StackEvent::new(&t))
            .map(Some)
    } else {
        Ok(None)
    };
    match (layout, stack) {
        (Ok(layout), Ok(stack)) => Some(Decoders {
            layout,
            stack,
            style,
        }),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("WARNING: cannot decode this probe's records ({e}); printing the kernel's text output, in which names from user space are NOT escaped");
            None
        }
    }
}

/// How tracing went: how it ended, the event lines printed and the events lost. The
/// instance is removed by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Traced {
    end: StreamEnd,
    lines: u64,
    lost: u64,
}

/// The end-of-run account: why a run printed no line, from the probe's hit count
/// (`kprobe_profile`, before any filter) when there is one.
fn account(args: &Args, traced: &Traced, hits: Option<u64>) -> RunAccount {
    let mut a = RunAccount::new("kprobe", "lines");
    a.rows = traced.lines;
    a.lost = traced.lost;
    if let Some(f) = &args.filter {
        a.filter(format!("'{f}'"), true);
    }
    if let Some(p) = args.pid {
        a.filter(format!("-p {p}"), true);
    }
    if let Some(t) = args.tid {
        a.filter(format!("-L {t}"), true);
    }
    match hits {
        Some(h) => a.seen.push((
            h,
            "probe hits before any filter, kprobe's own included".to_string(),
        )),
        None => a
            .notes
            .push("the probe's hit count is unknown (no kprobe_profile entry)".to_string()),
    }
    a
}

/// The hidden argument that records the task's comm with each event.
const COMM_ARG: &str = "__ptrs_comm";

/// Counts the event lines of the kernel's text (not stack lines, not `#` headers).
fn event_lines(text: &[u8]) -> u64 {
    text.split(|&b| b == b'\n')
        .filter(|l| {
            let t = l.trim_ascii_start();
            !t.is_empty() && !t.starts_with(b"#") && !t.starts_with(b"=>") && !t.starts_with(b"<")
        })
        .count() as u64
}

/// Streams (or, with `-d`, collects) the kernel's text rendering of the instance's
/// events: used only when the probe's records cannot be decoded.
fn trace_text(
    args: &Args,
    shutdown: &Shutdown,
    inst: Instance,
    out: &mut Output,
    event: &str,
) -> Result<Traced> {
    let mut traced = Traced {
        end: StreamEnd::Finished,
        lines: 0,
        lost: 0,
    };
    match args.duration {
        Some(d) => {
            let _ = writeln!(
                out.buf,
                "Tracing kprobe {event} for {d} seconds (buffered)..."
            );
            out.flush()?;
            shutdown.sleep(Duration::from_secs_f64(d));
            inst.set_tracing_on(false)?;
            let text = inst.read("trace")?;
            for l in text.lines() {
                if l.starts_with('#') && !args.headers {
                    continue;
                }
                let _ = writeln!(out.buf, "{l}");
            }
            traced.lines = event_lines(text.as_bytes());
            traced.lost = text_pipe::lost_markers(text.as_bytes()).1;
            out.flush()?;
        }
        None => {
            let _ = writeln!(out.buf, "Tracing kprobe {event}. Ctrl-C to end.");
            if args.headers {
                for l in inst.read("trace")?.lines().filter(|l| l.starts_with('#')) {
                    let _ = writeln!(out.buf, "{l}");
                }
            }
            out.flush()?;
            let mut pipe = TextPipe::open(inst.dir())?;
            let mut partial: Vec<u8> = Vec::new();
            traced.end = pipe.stream(
                shutdown,
                Duration::from_millis(100),
                || inst.set_tracing_on(false),
                |text, last| {
                    partial.extend_from_slice(text);
                    let end = if last {
                        Some(partial.len())
                    } else {
                        partial.iter().rposition(|&b| b == b'\n').map(|e| e + 1)
                    };
                    if let Some(end) = end {
                        for l in partial[..end].split(|&b| b == b'\n') {
                            if l.windows(5).any(|w| w == b"LOST ") {
                                eprintln!("WARNING: {}", String::from_utf8_lossy(l));
                            }
                        }
                        traced.lines += event_lines(&partial[..end]);
                        traced.lost += text_pipe::lost_markers(&partial[..end]).1;
                        out.buf.extend_from_slice(&partial[..end]);
                        partial.drain(..end);
                    }
                    out.flush()?;
                    Ok(())
                },
            )?;
        }
    }
    inst.remove()?;
    Ok(traced)
}

/// Reads the `#` header lines at the top of the instance's `trace` file (the kernel's
/// column legend and entry counts), without rendering the rest of the buffer.
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

/// Renders the probe's records (and their stack records) as the kernel's text output
/// would, names escaped, in time order across CPUs; watches the string fetches.
struct Lines {
    dec: Decoders,
    ctx: render::Context,
    /// The comm of the last probe record per CPU, for the stack record that follows it.
    last_comm: Vec<(i32, Option<Vec<u8>>)>,
    merger: Merger<Vec<u8>>,
    watch: FaultWatch,
    /// Probe event lines rendered.
    events: u64,
}

impl Lines {
    fn new(dec: Decoders, def: &Definition, start: u64, syms: render::Symbols) -> Lines {
        let ctx = render::Context::new(dec.style, syms);
        if ctx.syms.is_empty() {
            eprintln!("WARNING: no kernel symbols in /proc/kallsyms (kernel.kptr_restrict?): code addresses are printed in hex");
        }
        let watch = FaultWatch::new(
            &dec.layout.string_args(),
            &faults::string_fetches(&def.args),
            start,
        );
        Lines {
            dec,
            ctx,
            last_comm: Vec::new(),
            merger: Merger::new(),
            watch,
            events: 0,
        }
    }

    fn event(&mut self, cpu: u32, ts: u64, payload: &[u8]) {
        let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            return;
        };
        let mut line = Vec::with_capacity(160);
        let pid = payload
            .get(4..8)
            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        let slot = cpu as usize;
        if slot >= self.last_comm.len() {
            self.last_comm.resize(slot + 1, (-1, None));
        }
        let layout = &self.dec.layout;
        if id == layout.id {
            layout.render(&mut line, &mut self.ctx, cpu, ts, payload);
            self.last_comm[slot] = (pid, layout.comm(payload).map(<[u8]>::to_vec));
            self.watch.record(ts, layout.string_faults(payload));
            self.events += 1;
        } else if let Some(st) = self.dec.stack.as_ref().filter(|s| s.id == id) {
            let comm = match &self.last_comm[slot] {
                (p, c) if *p == pid && layout.has_comm() => Some(c.as_deref()),
                _ => None,
            };
            st.render(&mut line, &mut self.ctx, comm, cpu, ts, payload);
        } else {
            return;
        }
        self.merger.push(slot, ts, line);
    }

    /// Moves the lines up to `upto` into `out`, and says once if every string fetch of
    /// the first second faulted (`end`: the run is over).
    fn release(&mut self, upto: u64, out: &mut Vec<u8>, end: bool) {
        self.merger.release(upto, |_, l| out.extend_from_slice(l));
        // Every event up to `upto` has been read: the window is judged once it has.
        if let Some(w) = self.watch.verdict(upto, end) {
            eprintln!("{w}");
        }
    }
}

/// Decodes the probe's records from the per-CPU binary buffers and prints them
/// ([`Lines`]), live or (with `-d`) after the duration.
#[allow(clippy::too_many_arguments)]
fn trace_binary(
    args: &Args,
    def: &Definition,
    shutdown: &Shutdown,
    inst: Instance,
    out: &mut Output,
    event: &str,
    dec: Decoders,
    syms: render::Symbols,
) -> Result<Traced> {
    let mut session = Session::start(inst)?;
    let mut lines = Lines::new(dec, def, perf_tools_core::clock::monotonic_ns(), syms);
    let mut lost_in_pages = 0;
    let mut warn_lost = |n: u64| {
        lost_in_pages += n;
        if n > 0 {
            eprintln!("WARNING: {n} events lost: the kernel buffer overflowed");
        }
    };
    let end = match args.duration {
        Some(d) => {
            let _ = writeln!(
                out.buf,
                "Tracing kprobe {event} for {d} seconds (buffered)..."
            );
            out.flush()?;
            shutdown.sleep(Duration::from_secs_f64(d));
            session.instance.set_tracing_on(false)?;
            if args.headers {
                for l in header_lines(&session.instance) {
                    let _ = writeln!(out.buf, "{l}");
                }
            }
            loop {
                let stats = session.reader.drain(|cpu, ts, p| lines.event(cpu, ts, p));
                warn_lost(stats.missed);
                if stats.pages == 0 {
                    break;
                }
            }
            lines.release(u64::MAX, &mut out.buf, true);
            out.flush()?;
            StreamEnd::Finished
        }
        None => {
            let _ = writeln!(out.buf, "Tracing kprobe {event}. Ctrl-C to end.");
            if args.headers {
                for l in header_lines(&session.instance) {
                    let _ = writeln!(out.buf, "{l}");
                }
            }
            out.flush()?;
            session.stream(
                shutdown,
                None,
                Duration::from_millis(100),
                |reader, _, turn| {
                    let stats = reader.drain(|cpu, ts, p| lines.event(cpu, ts, p));
                    warn_lost(stats.missed);
                    lines.release(turn.clock, &mut out.buf, turn.last);
                    out.flush()?;
                    Ok(())
                },
            )?
        }
    };
    let lost = session.lost_events().max(lost_in_pages);
    session.finish()?;
    Ok(Traced {
        end,
        lines: lines.events,
        lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_definitions_with_and_without_alias() {
        let d = parse_definition("p:myopen do_sys_openat2 fn=+0($arg2):ustring").unwrap();
        assert_eq!(
            (
                d.kind.as_str(),
                d.event.as_str(),
                d.func.as_str(),
                d.args.as_str()
            ),
            ("p", "myopen", "do_sys_openat2", "fn=+0($arg2):ustring")
        );
        let d = parse_definition("r:do_sys_openat2 $retval").unwrap();
        assert_eq!(
            (d.event.as_str(), d.func.as_str()),
            ("do_sys_openat2", "do_sys_openat2")
        );
        assert_eq!(d.args, "$retval");
        let d = parse_definition("p:foo.isra.0").unwrap();
        assert_eq!(
            (d.event.as_str(), d.func.as_str()),
            ("foo_isra_0", "foo.isra.0")
        );
        let d = parse_definition("r16:x vfs_read").unwrap();
        assert_eq!(d.kind, "r16");
        assert!(parse_definition("q:foo").is_err());
        assert!(parse_definition("do_sys_open").is_err());
        assert!(parse_definition("p:").is_err());
    }

    #[test]
    fn safety_check_helpers() {
        assert_eq!(base_function("vfs_read+0x10"), "vfs_read");
        assert_eq!(base_function("ext4:ext4_sync_file"), "ext4_sync_file");
        let list = "vfs_read\next4_sync_file [ext4]\n";
        assert!(function_available(list, "ext4_sync_file"));
        assert!(!function_available(list, "vfs_rea"));
    }

    #[test]
    fn reads_misses() {
        let p = "  myret                                                  10               3\n  other 1 0\n";
        assert_eq!(misses(p, "myret"), Some(3));
        assert_eq!(misses(p, "none"), None);
    }

    #[test]
    fn reads_hits_and_misses() {
        let p = "  ptrs_1/myret                                           10               3\n";
        assert_eq!(profile_counts(p, "myret"), Some((10, 3)));
        assert_eq!(profile_counts(p, "other"), None);
    }

    #[test]
    fn an_empty_run_explains_itself_with_the_probe_hits() {
        let a = Args::parse_from(["kprobe", "-p", "91", "p:vfs_read", "count > 4096"]);
        let t = Traced {
            end: StreamEnd::Finished,
            lines: 0,
            lost: 0,
        };
        assert_eq!(
            account(&a, &t, Some(1204)).line().unwrap(),
            "kprobe: 0 lines: 1,204 probe hits before any filter, kprobe's own included (filters 'count > 4096' -p 91); 0 lost"
        );
        let t = Traced { lines: 5, ..t };
        assert_eq!(account(&a, &t, Some(1204)).line(), None);
    }

    #[test]
    fn counts_event_lines_of_the_kernel_text() {
        let text = b"# tracer: nop\n            cat-1  [000] .....  1.0: p_vfs_read_0: (vfs_read+0x0/0x10)\n => vfs_read\n => ksys_read\n            cat-1  [000] .....  1.1: p_vfs_read_0: (vfs_read+0x0/0x10)\n";
        assert_eq!(event_lines(text), 2);
    }

    #[test]
    fn usage_errors() {
        for argv in [
            &["kprobe"][..],
            &["kprobe", "-p", "1", "-L", "1", "p:x"],
            &["kprobe", "-d", "1", "-v", "p:x"],
            &["kprobe", "-d", "0", "p:x"],
        ] {
            assert_eq!(
                Args::try_parse_from(argv).unwrap_err().exit_code(),
                2,
                "{argv:?}"
            );
        }
    }
}
