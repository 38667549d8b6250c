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
use regex::bytes::Regex;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use perf_tools_core::format::{EventFormat, Field};
use perf_tools_core::instance::Instance;
use perf_tools_core::merge::Merger;
use perf_tools_core::output::Output;
use perf_tools_core::probe::{Probe, Support};
use perf_tools_core::session::Session;
use perf_tools_core::session::StreamEnd;
use perf_tools_core::signals::Shutdown;
use perf_tools_core::tracefs::Tracefs;
use perf_tools_core::{cli, stale};

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
    /// Say on stderr where file names come from (which probe or fallback)
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Only show files whose name matches this regex (partial strings are fine)
    #[arg(value_name = "filename")]
    pub filename: Option<String>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 2048, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Remove trace instances and probes left behind by killed runs, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// Where file names come from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Event probes (`e:`) on `syscalls/sys_enter_*` fetching the user string (5.15+).
    Eprobe,
    /// A kprobe on `do_sys_openat2` (5.6+) or `do_sys_open` with a `$arg2` string fetch.
    Kprobe,
    /// The original's kretprobe on `getname()`.
    Getname,
    /// No dynamic probes: successful opens resolved from `/proc/PID/fd/FD` afterwards.
    ProcFd,
}

impl Source {
    /// A description for `-v`.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Eprobe => "event probes on the syscalls' enter tracepoints fetching the user string",
            Source::Kprobe => "a kprobe on the kernel's open function fetching $arg2 as a string",
            Source::Getname => "a kretprobe on getname() (the original's method)",
            Source::ProcFd => "syscall tracepoints only; paths of successful opens read from /proc/PID/fd/FD afterwards",
        }
    }
}

/// Marker appended to names resolved from `/proc/PID/fd` after the open.
pub const RESOLVED_MARK: &str = " [via /proc]";
/// Shown when a name could not be known.
pub const UNKNOWN: &str = "[unknown]";
/// FILE of a successful open whose fd was closed and reused before its path could be
/// read from /proc (tracepoint-only fallback).
pub const FD_REUSED: &str = "[unknown: fd reused]";

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let mut ftext = if let Some(p) = args.pid {
        format!(" issued by PID {p}")
    } else if let Some(t) = args.tid {
        format!(" issued by TID {t}")
    } else if let Some(n) = &args.name {
        format!(" issued by process name \"{n}\"")
    } else {
        String::new()
    };
    if let Some(f) = &args.filename {
        ftext.push_str(&format!(" for filenames containing \"{f}\""));
    }
    match args.duration {
        Some(d) => format!(
            "Tracing open()s{ftext} for {} seconds (buffered)...",
            fmt_secs(d)
        ),
        None => format!("Tracing open()s{ftext}. Ctrl-C to end."),
    }
}

fn fmt_secs(d: f64) -> String {
    if d.fract() == 0.0 {
        format!("{}", d as u64)
    } else {
        format!("{d}")
    }
}

/// The column header line.
pub fn header(time: bool) -> String {
    let mut s = String::new();
    if time {
        s.push_str(&format!("{:<16} ", "TIMEs"));
    }
    s.push_str(&format!(
        "{:<16} {:<6} {:>4} {}",
        "COMM", "PID", "FD", "FILE"
    ));
    s
}

/// The FD column: the original's hex (`0x3`) or `-1`, or with `--errno` decimal and
/// the error name of a failure.
pub fn fd_text(ret: i64, errno: bool) -> String {
    match (ret < 0, errno) {
        (false, false) => format!("0x{ret:x}"),
        (true, false) => "-1".to_string(),
        (false, true) => ret.to_string(),
        (true, true) => errno_name(-ret)
            .map(str::to_string)
            .unwrap_or_else(|| ret.to_string()),
    }
}

/// One output row.
pub fn row(out: &mut Vec<u8>, time: Option<u64>, comm: &[u8], pid: u32, fd: &str, file: &[u8]) {
    if let Some(ns) = time {
        let us = (ns + 500) / 1000;
        let t = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        let _ = write!(out, "{t:<16} ");
    }
    let comm = &comm[..comm.len().min(16)];
    out.extend_from_slice(comm);
    for _ in comm.len()..16 {
        out.push(b' ');
    }
    let _ = write!(out, " {pid:<6} {fd:>4} ");
    out.extend_from_slice(file);
    out.push(b'\n');
}

/// Linux errno names (asm-generic numbering: x86, arm64, riscv, ...).
pub fn errno_name(e: i64) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
        "",
        "ENOMSG",
        "EIDRM",
        "ECHRNG",
        "EL2NSYNC",
        "EL3HLT",
        "EL3RST",
        "ELNRNG",
        "EUNATCH",
        "ENOCSI",
        "EL2HLT",
        "EBADE",
        "EBADR",
        "EXFULL",
        "ENOANO",
        "EBADRQC",
        "EBADSLT",
        "",
        "EBFONT",
        "ENOSTR",
        "ENODATA",
        "ETIME",
        "ENOSR",
        "ENONET",
        "ENOPKG",
        "EREMOTE",
        "ENOLINK",
        "EADV",
        "ESRMNT",
        "ECOMM",
        "EPROTO",
        "EMULTIHOP",
        "EDOTDOT",
        "EBADMSG",
        "EOVERFLOW",
        "ENOTUNIQ",
        "EBADFD",
        "EREMCHG",
        "ELIBACC",
        "ELIBBAD",
        "ELIBSCN",
        "ELIBMAX",
        "ELIBEXEC",
        "EILSEQ",
        "ERESTART",
        "ESTRPIPE",
        "EUSERS",
        "ENOTSOCK",
        "EDESTADDRREQ",
        "EMSGSIZE",
        "EPROTOTYPE",
        "ENOPROTOOPT",
        "EPROTONOSUPPORT",
        "ESOCKTNOSUPPORT",
        "EOPNOTSUPP",
        "EPFNOSUPPORT",
        "EAFNOSUPPORT",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ESHUTDOWN",
        "ETOOMANYREFS",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "EALREADY",
        "EINPROGRESS",
        "ESTALE",
        "EUCLEAN",
        "ENOTNAM",
        "ENAVAIL",
        "EISNAM",
        "EREMOTEIO",
        "EDQUOT",
        "ENOMEDIUM",
        "EMEDIUMTYPE",
        "ECANCELED",
        "ENOKEY",
        "EKEYEXPIRED",
        "EKEYREVOKED",
        "EKEYREJECTED",
        "EOWNERDEAD",
        "ENOTRECOVERABLE",
        "ERFKILL",
        "EHWPOISON",
    ];
    let n = NAMES.get(usize::try_from(e).ok()?)?;
    (!n.is_empty()).then_some(*n)
}

/// The open syscalls, traced when the kernel has their tracepoints.
pub const SYSCALLS: &[&str] = &["open", "openat", "openat2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Syscall entry: forget any name remembered for the thread.
    Enter,
    /// A probe hit carrying the name (and perhaps comm).
    Name,
    /// Syscall exit with the return value.
    Exit,
}

struct EventDecoder {
    id: u16,
    kind: Kind,
    pid: Field,
    name: Option<Field>,
    comm: Option<Field>,
    ret: Option<Field>,
}

#[derive(Debug, Clone)]
/// A row waiting for its FILE to be resolved at the end of the batch.
struct Draft {
    ts: u64,
    comm: Vec<u8>,
    tid: u32,
    ret: i64,
    name: Option<Vec<u8>>,
}

struct Ev {
    kind: Kind,
    tid: u32,
    ret: i64,
    name: Option<Vec<u8>>,
    comm: Option<Vec<u8>>,
}

impl EventDecoder {
    fn new(fmt: &EventFormat, kind: Kind) -> Result<EventDecoder> {
        Ok(EventDecoder {
            id: fmt.id,
            kind,
            pid: fmt.require("common_pid")?,
            name: if kind == Kind::Name {
                Some(fmt.require("fn")?)
            } else {
                None
            },
            comm: fmt.field("comm").cloned(),
            ret: if kind == Kind::Exit {
                Some(fmt.require("ret")?)
            } else {
                None
            },
        })
    }

    fn decode(&self, payload: &[u8]) -> Option<Ev> {
        Some(Ev {
            kind: self.kind,
            tid: self.pid.read_i64(payload)? as u32,
            ret: self
                .ret
                .as_ref()
                .and_then(|f| f.read_i64(payload))
                .unwrap_or(0),
            name: self.name.as_ref().map(|f| f.read_bytes(payload).to_vec()),
            comm: self.comm.as_ref().map(|f| f.read_bytes(payload).to_vec()),
        })
    }
}

#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    comm: Option<Vec<u8>>,
}

/// Tries to create the probes of one source. Returns the probes and the (system, event,
/// kind) list to enable, or an error explaining why this source is unavailable.
fn create_source(
    tracefs: &Tracefs,
    support: &Support,
    source: Source,
    syscalls: &[&str],
    probes: &mut Vec<Probe>,
) -> Result<Vec<(String, String, Kind)>> {
    let string = if support.ustring { "ustring" } else { "string" };
    let mut events = Vec::new();
    let enters = |events: &mut Vec<(String, String, Kind)>| {
        for s in syscalls {
            events.push((
                "syscalls".to_string(),
                format!("sys_enter_{s}"),
                Kind::Enter,
            ));
        }
    };
    match source {
        Source::Eprobe => {
            if !support.dynamic_events {
                bail!("no dynamic_events file");
            }
            for s in syscalls {
                let name = format!("opensnoop_{s}");
                let target = format!("syscalls.sys_enter_{s}");
                let p = Probe::create(
                    tracefs,
                    "dynamic_events",
                    "e",
                    &name,
                    &format!("{target} fn=+0($filename):{string} comm=$comm:string"),
                )
                .or_else(|_| {
                    Probe::create(
                        tracefs,
                        "dynamic_events",
                        "e",
                        &name,
                        &format!("{target} fn=+0($filename):{string}"),
                    )
                })?;
                events.push((p.group().to_string(), name, Kind::Name));
                probes.push(p);
            }
        }
        Source::Kprobe => {
            if !support.kprobes {
                bail!("no kprobe_events (CONFIG_KPROBE_EVENTS)");
            }
            if !support.args {
                bail!("no $argN fetch arguments (Linux 4.20+)");
            }
            let control = support.kprobe_control();
            let mut last = None;
            for func in ["do_sys_openat2", "do_sys_open"] {
                match Probe::create(
                    tracefs,
                    control,
                    "p",
                    "opensnoop_name",
                    &format!("{func} fn=+0($arg2):{string} comm=$comm"),
                ) {
                    Ok(p) => {
                        enters(&mut events);
                        events.push((p.group().to_string(), p.event().to_string(), Kind::Name));
                        probes.push(p);
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        Source::Getname => {
            if !support.kprobes {
                bail!("no kprobe_events (CONFIG_KPROBE_EVENTS)");
            }
            let p = Probe::create(
                tracefs,
                support.kprobe_control(),
                "r",
                "opensnoop_getname",
                "getname fn=+0(+0($retval)):string comm=$comm",
            )?;
            enters(&mut events);
            events.push((p.group().to_string(), p.event().to_string(), Kind::Name));
            probes.push(p);
        }
        Source::ProcFd => {}
    }
    for s in syscalls {
        events.push(("syscalls".to_string(), format!("sys_exit_{s}"), Kind::Exit));
    }
    Ok(events)
}

fn read_comm(tid: u32) -> Vec<u8> {
    match std::fs::read(format!("/proc/{tid}/comm")) {
        Ok(mut v) => {
            while v.last() == Some(&b'\n') {
                v.pop();
            }
            v
        }
        Err(_) => b"<...>".to_vec(),
    }
}

fn tgid_of(tid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The process of thread `tid` (`None`: /proc no longer knows the thread), read once
/// per thread and kept in `cache`.
fn tgid_cached(cache: &mut HashMap<u32, Option<u32>>, tid: u32) -> Option<u32> {
    *cache.entry(tid).or_insert_with(|| tgid_of(tid))
}

/// The fd table a thread uses, named by its process id (the thread's own id when /proc
/// no longer knows it).
fn fd_table_of(cache: &mut HashMap<u32, Option<u32>>, tid: u32) -> u32 {
    tgid_cached(cache, tid).unwrap_or(tid)
}

/// Runs opensnoop.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return stale::cleanup_command();
    }
    let name_re = match &args.name {
        Some(n) => Some(Regex::new(n).map_err(|e| cli::usage(format!("invalid -n regex: {e}")))?),
        None => None,
    };
    let file_re = match &args.filename {
        Some(f) => {
            Some(Regex::new(f).map_err(|e| cli::usage(format!("invalid filename regex: {e}")))?)
        }
        None => None,
    };

    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    // Declared before the instance so that they are removed after it (the kernel
    // refuses to remove a probe still enabled in an instance).
    let mut probes: Vec<Probe> = Vec::new();
    let inst = Instance::create(&tracefs, "opensnoop")?;
    let syscalls: Vec<&str> = SYSCALLS
        .iter()
        .copied()
        .filter(|s| {
            inst.dir()
                .join(format!("events/syscalls/sys_exit_{s}"))
                .is_dir()
                && inst
                    .dir()
                    .join(format!("events/syscalls/sys_enter_{s}"))
                    .is_dir()
        })
        .collect();
    if syscalls.is_empty() {
        bail!("this kernel has no open/openat/openat2 syscall tracepoints (events/syscalls/sys_exit_openat): it needs CONFIG_FTRACE_SYSCALLS=y");
    }
    let support = Support::detect(&tracefs);
    let mut source = Source::ProcFd;
    let mut events = Vec::new();
    let mut reasons = Vec::new();
    for s in [
        Source::Eprobe,
        Source::Kprobe,
        Source::Getname,
        Source::ProcFd,
    ] {
        match create_source(&tracefs, &support, s, &syscalls, &mut probes) {
            Ok(ev) => {
                source = s;
                events = ev;
                break;
            }
            Err(e) => {
                // Drop what this source created (nothing is enabled yet).
                probes.clear();
                reasons.push(format!("{s:?}: {}", format!("{e:#}").replace('\n', " ")));
            }
        }
    }
    if args.verbose {
        eprintln!(
            "opensnoop: tracing {} with file names from {}",
            syscalls.join(", "),
            source.describe()
        );
        for r in &reasons {
            eprintln!("opensnoop: not used: {r}");
        }
    }
    if source == Source::ProcFd {
        eprintln!("opensnoop: this kernel has no kprobe or event-probe support (CONFIG_KPROBE_EVENTS, CONFIG_EPROBE_EVENTS), and syscall tracepoints record only the address of the file name: paths of successful opens are read from /proc/PID/fd/FD afterwards (marked \"{}\"), names of failed opens are {UNKNOWN}", RESOLVED_MARK.trim());
    }

    inst.write("trace_clock", "mono")?;
    inst.write("buffer_size_kb", &args.buffer_kb.to_string())?;
    let _ = inst.write("buffer_percent", "0");
    let mut decoders: Vec<EventDecoder> = Vec::new();
    for (sys, ev, kind) in &events {
        decoders.push(EventDecoder::new(&inst.event_format(sys, ev)?, *kind)?);
    }
    let me = std::process::id();
    if let Some(p) = args.pid.or(args.tid) {
        let mut tids = vec![p];
        if args.pid.is_some() {
            if let Ok(d) = std::fs::read_dir(format!("/proc/{p}/task")) {
                tids = d
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect();
            } else {
                bail!("no process with PID {p}");
            }
            inst.write("options/event-fork", "1")?;
        }
        let list: Vec<String> = tids.iter().map(u32::to_string).collect();
        inst.write("set_event_pid", &list.join(" "))?;
    } else {
        for (sys, ev, _) in &events {
            inst.set_filter(sys, ev, &format!("common_pid != {me}"))?;
        }
    }
    for (sys, ev, _) in &events {
        inst.enable_event(sys, ev)?;
    }
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;

    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    let _ = writeln!(out.buf, "{}", header(args.time));
    out.flush()?;

    let mut pending: HashMap<u32, Pending> = HashMap::new();
    // The process of each thread seen: for -p and to name fd tables.
    let mut tgids: HashMap<u32, Option<u32>> = HashMap::new();
    let mut merger: Merger<Ev> = Merger::new();
    let mut batch: Vec<Draft> = Vec::new();
    // Latest exit timestamp per (fd table, fd) among all events drained so far. Threads
    // share their process's fd table, so the table is named by the thread's process id
    // (threads of one process reuse each other's closed fds).
    let mut last_exit: HashMap<(u32, i64), u64> = HashMap::new();
    let streaming = args.duration.is_none();
    let mut lost = 0u64;
    let poll = Duration::from_millis(100);
    let end = session.stream(&shutdown, args.duration, poll, |reader, turn| {
        let watermark = turn.clock;
        let stats = reader.drain(|cpu, ts, payload| {
            let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
                return;
            };
            if let Some(d) = decoders.iter().find(|d| d.id == id) {
                if let Some(ev) = d.decode(payload) {
                    if source == Source::ProcFd && ev.kind == Kind::Exit && ev.ret >= 0 {
                        let table = fd_table_of(&mut tgids, ev.tid);
                        let t = last_exit.entry((table, ev.ret)).or_insert(ts);
                        *t = (*t).max(ts);
                    }
                    merger.push(cpu as usize, ts, ev);
                }
            }
        });
        if stats.missed > 0 {
            lost += stats.missed;
            // Names remembered before the gap may belong to lost exits.
            pending.clear();
            eprintln!(
                "WARNING: {} events lost: the kernel buffer overflowed (try --buffer-kb larger than {})",
                stats.missed, args.buffer_kb
            );
        }
        merger.release(watermark, |ts, ev| match ev.kind {
            Kind::Enter => {
                pending.remove(&ev.tid);
            }
            Kind::Name => {
                pending.insert(
                    ev.tid,
                    Pending {
                        name: ev.name.take(),
                        comm: ev.comm.take(),
                    },
                );
            }
            Kind::Exit => {
                let p = pending.remove(&ev.tid).unwrap_or_default();
                if source != Source::ProcFd && p.name.is_none() {
                    // The probe did not see this open (it began before tracing did).
                    return;
                }
                if args.failed && ev.ret >= 0 {
                    return;
                }
                if let Some(want) = args.pid {
                    if tgid_cached(&mut tgids, ev.tid).is_some_and(|t| t != want) {
                        return;
                    }
                }
                let comm = match p.comm {
                    // Only a plausible comm (decoding of $comm differs across kernels).
                    Some(c)
                        if !c.is_empty()
                            && c.len() <= 16
                            && c.iter().all(|b| b.is_ascii_graphic() || *b == b' ') =>
                    {
                        c
                    }
                    _ => read_comm(ev.tid),
                };
                if name_re.as_ref().is_some_and(|re| !re.is_match(&comm)) {
                    return;
                }
                batch.push(Draft {
                    ts,
                    comm,
                    tid: ev.tid,
                    ret: ev.ret,
                    name: p.name,
                });
            }
        });
        // Resolve and print the batch. With the /proc fallback a path is read from
        // /proc/TID/fd/FD now, after the fact: if the same thread got the same fd again
        // later (in any event drained so far, including ones held for the next batch),
        // the first file was closed and the fd reused, and its path can't be known.
        let reused: Vec<bool> = batch
            .iter()
            .map(|d| {
                source == Source::ProcFd
                    && d.ret >= 0
                    && last_exit
                        .get(&(fd_table_of(&mut tgids, d.tid), d.ret))
                        .is_some_and(|&t| t > d.ts)
            })
            .collect();
        if last_exit.len() > 100_000 {
            let keep_from = watermark.saturating_sub(10_000_000_000);
            last_exit.retain(|_, t| *t >= keep_from);
        }
        if tgids.len() > 100_000 {
            // Thread ids get reused: forget them now and then.
            tgids.clear();
        }
        for (d, reused) in batch.drain(..).zip(reused) {
            let (file, known): (Vec<u8>, bool) = match (source, d.name) {
                (Source::ProcFd, _) if d.ret >= 0 && reused => {
                    (FD_REUSED.as_bytes().to_vec(), false)
                }
                (Source::ProcFd, _) if d.ret >= 0 => {
                    match std::fs::read_link(format!("/proc/{}/fd/{}", d.tid, d.ret)) {
                        Ok(path) => {
                            let mut v = path.into_os_string().into_encoded_bytes();
                            v.extend_from_slice(RESOLVED_MARK.as_bytes());
                            (v, true)
                        }
                        Err(_) => (UNKNOWN.as_bytes().to_vec(), false),
                    }
                }
                (_, Some(n)) if !n.is_empty() => (n, true),
                (Source::ProcFd, _) => (UNKNOWN.as_bytes().to_vec(), false),
                (_, _) => (b"(fault)".to_vec(), true),
            };
            if let Some(re) = &file_re {
                let subject = if source == Source::ProcFd && known {
                    &file[..file.len() - RESOLVED_MARK.len()]
                } else {
                    &file[..]
                };
                if !known || !re.is_match(subject) {
                    continue;
                }
            }
            row(
                &mut out.buf,
                args.time.then_some(d.ts),
                &d.comm,
                d.tid,
                &fd_text(d.ret, args.errno),
                &file,
            );
        }
        if streaming || turn.last {
            out.flush()?;
        }
        Ok(())
    })?;
    if end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly, cleaning up.
        return session.finish();
    }
    let lost = session.lost_events().max(lost);
    session.finish()?;
    for p in probes.drain(..) {
        p.remove()?;
    }
    let _ = writeln!(out.buf, "\nEnding tracing...");
    out.flush()?;
    if lost > 0 {
        eprintln!("WARNING: {lost} events lost in total; rows may be missing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_match_the_original() {
        let a = Args::parse_from(["opensnoop"]);
        assert_eq!(banner(&a), "Tracing open()s. Ctrl-C to end.");
        let a = Args::parse_from(["opensnoop", "-p", "181", "-d", "5"]);
        assert_eq!(
            banner(&a),
            "Tracing open()s issued by PID 181 for 5 seconds (buffered)..."
        );
        let a = Args::parse_from(["opensnoop", "-n", "bash", "conf"]);
        assert_eq!(
            banner(&a),
            "Tracing open()s issued by process name \"bash\" for filenames containing \"conf\". Ctrl-C to end."
        );
        let a = Args::parse_from(["opensnoop", "-L", "7"]);
        assert_eq!(
            banner(&a),
            "Tracing open()s issued by TID 7. Ctrl-C to end."
        );
    }

    #[test]
    fn header_and_rows_match_the_original() {
        assert_eq!(header(false), "COMM             PID      FD FILE");
        assert_eq!(
            header(true),
            "TIMEs            COMM             PID      FD FILE"
        );
        let mut v = Vec::new();
        row(
            &mut v,
            None,
            b"opensnoop",
            5342,
            &fd_text(3, false),
            b"/etc/ld.so.cache",
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "opensnoop        5342    0x3 /etc/ld.so.cache\n"
        );
        let mut v = Vec::new();
        row(
            &mut v,
            Some(1_234_567_890_600),
            b"a-very-long-command-name",
            1,
            "-1",
            b"/x y",
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "1234.567891      a-very-long-comm 1        -1 /x y\n"
        );
    }

    #[test]
    fn fd_column() {
        assert_eq!(fd_text(3, false), "0x3");
        assert_eq!(fd_text(26, false), "0x1a");
        assert_eq!(fd_text(-2, false), "-1");
        assert_eq!(fd_text(26, true), "26");
        assert_eq!(fd_text(-2, true), "ENOENT");
        assert_eq!(fd_text(-13, true), "EACCES");
        assert_eq!(fd_text(-9999, true), "-9999");
        assert_eq!(errno_name(36), Some("ENAMETOOLONG"));
        assert_eq!(errno_name(133), Some("EHWPOISON"));
    }

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
    fn decodes_exit_and_enter_fixtures() {
        for k in ["5.10", "6.1", "6.12"] {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/formats/");
            let text = std::fs::read_to_string(format!("{dir}{k}/sys_exit_openat")).unwrap();
            let f = EventFormat::parse(&text).unwrap();
            let d = EventDecoder::new(&f, Kind::Exit).unwrap();
            let mut payload = vec![0u8; 24];
            payload[..2].copy_from_slice(&f.id.to_ne_bytes());
            payload[4..8].copy_from_slice(&1234i32.to_ne_bytes());
            payload[16..24].copy_from_slice(&(-2i64).to_ne_bytes());
            let ev = d.decode(&payload).unwrap();
            assert_eq!((ev.tid, ev.ret), (1234, -2), "{k}");
            let text = std::fs::read_to_string(format!("{dir}{k}/sys_enter_openat")).unwrap();
            let f = EventFormat::parse(&text).unwrap();
            // The enter tracepoint's filename is a user pointer, not a string.
            assert!(!f.require("filename").unwrap().is_string(), "{k}");
        }
    }
}
