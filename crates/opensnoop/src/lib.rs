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
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use perf_tools_core::cli;
use perf_tools_core::output::{escape_into, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_core::target;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::format::{EventFormat, Field};
use perf_tools_ftrace::instance::instance_name;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::probe::{Probe, Support};
use perf_tools_ftrace::reader::RawReader;
use perf_tools_ftrace::session::Session;
use perf_tools_ftrace::session::StreamEnd;
use perf_tools_ftrace::tracefs::Tracefs;

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

/// SRC (with `-v`) of a path read from `/proc/TID/fd/FD` after the open (tracepoint-only fallback).
pub const SRC_PROC: &str = "proc";
/// SRC of a successful open whose fd was closed and reused before its path could be read
/// (fallback; FILE is [`UNKNOWN`]).
pub const SRC_REUSED: &str = "reused";
/// SRC of a successful open whose fd was already closed (or its process gone) when its
/// path was to be read (fallback; FILE is [`UNKNOWN`]).
pub const SRC_CLOSED: &str = "closed";
/// SRC of a failed open in the fallback: the kernel recorded only the name's address
/// (FILE is [`UNKNOWN`]).
pub const SRC_FAILED: &str = "failed";

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

    /// The SRC column (`-v`) of rows whose name this source read.
    pub fn tag(self) -> &'static str {
        match self {
            Source::Eprobe => "eprobe",
            Source::Kprobe => "kprobe",
            Source::Getname => "getname",
            Source::ProcFd => SRC_PROC,
        }
    }
}

/// FILE when a name could not be known (one token; `-v` shows why in SRC).
pub const UNKNOWN: &str = "[unknown]";

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

/// The column header line (`src`: the SRC column of `-v`).
pub fn header(time: bool, src: bool) -> String {
    let mut s = String::new();
    if time {
        s.push_str(&format!("{:<16} ", "TIMEs"));
    }
    s.push_str(&format!("{:<16} {:<6} {:>4} ", "COMM", "PID", "FD"));
    if src {
        s.push_str(&format!("{:<7} ", "SRC"));
    }
    s.push_str("FILE");
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

/// One output row. The process and file names come from user space and are escaped
/// ([`escape_into`]) so that they cannot break the row or reach the terminal raw.
pub fn row(
    out: &mut Vec<u8>,
    time: Option<u64>,
    comm: &[u8],
    pid: u32,
    fd: &str,
    src: Option<&str>,
    file: &[u8],
) {
    if let Some(ns) = time {
        let us = (ns + 500) / 1000;
        let t = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        let _ = write!(out, "{t:<16} ");
    }
    let start = out.len();
    escape_into(out, &comm[..comm.len().min(16)]);
    for _ in (out.len() - start)..16 {
        out.push(b' ');
    }
    let _ = write!(out, " {pid:<6} {fd:>4} ");
    if let Some(src) = src {
        let _ = write!(out, "{src:<7} ");
    }
    escape_into(out, file);
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
    /// `task:task_rename` (exec, prctl PR_SET_NAME, a write to /proc/TID/comm): `tid` is
    /// the renamed thread, `name` its new comm and `comm` its old one.
    Rename,
    /// Events were lost on some CPU, none newer than `ret` (a time stamp): names
    /// remembered before it may belong to lost exits.
    Gap,
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
/// A row waiting for its FILE (and perhaps its COMM) to be resolved at the end of the batch.
struct Draft {
    ts: u64,
    comm: Option<Vec<u8>>,
    /// A name from the probe that did not look like one (some kernels decode `$comm`
    /// differently): used only if /proc no longer knows the thread.
    probe_comm: Option<Vec<u8>>,
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
        if kind == Kind::Rename {
            return Ok(EventDecoder {
                id: fmt.id,
                kind,
                pid: fmt.require("pid")?,
                name: Some(fmt.require("newcomm")?),
                comm: Some(fmt.require("oldcomm")?),
                ret: None,
            });
        }
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

fn read_comm(tid: u32) -> Option<Vec<u8>> {
    let mut v = std::fs::read(format!("/proc/{tid}/comm")).ok()?;
    // The kernel ends the name with one newline.
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    Some(v)
}

/// The process of thread `tid` (`None`: /proc no longer knows the thread), read once
/// per thread and kept in `cache`.
fn tgid_cached(cache: &mut HashMap<u32, Option<u32>>, tid: u32) -> Option<u32> {
    *cache
        .entry(tid)
        .or_insert_with(|| target::Procfs::default().tgid_of(tid))
}

/// The fd table a thread uses, named by its process id (the thread's own id when /proc
/// no longer knows it).
fn fd_table_of(cache: &mut HashMap<u32, Option<u32>>, tid: u32) -> u32 {
    tgid_cached(cache, tid).unwrap_or(tid)
}

/// Process names of threads, for sources whose events carry none: read once per thread
/// from `/proc/TID/comm`, then followed through `task:task_rename` events (exec,
/// PR_SET_NAME). Without that tracepoint a name is kept for one batch only.
struct Comms {
    names: HashMap<u32, Vec<u8>>,
    follows_renames: bool,
}

impl Comms {
    /// The name of `tid`, read from /proc only the first time (`None`: the thread is gone).
    fn get(&mut self, tid: u32) -> Option<Vec<u8>> {
        if let Some(n) = self.names.get(&tid) {
            return Some(n.clone());
        }
        let n = read_comm(tid)?;
        self.names.insert(tid, n.clone());
        Some(n)
    }

    fn end_batch(&mut self) {
        // Thread ids get reused (and exit): forget them now and then.
        if !self.follows_renames || self.names.len() > 100_000 {
            self.names.clear();
        }
    }
}

/// The threads of process `pid` (just `pid` if /proc cannot list them).
fn threads_of(pid: u32) -> Vec<u32> {
    match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => vec![pid],
    }
}

/// The device and inode of a file (following symlinks such as `/proc/TID/exe`).
fn file_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The kernel filter's clauses are limited to about a page; threads beyond that are
/// left out of the kernel filter and dropped in user space only.
const MAX_FILTER_LEN: usize = 3500;

/// The threads whose opens are not shown: opensnoop's own and, unless `--include-suite`,
/// those of the suite's other running tools, which read tracefs and /proc while they
/// work (two opensnoops of the /proc fallback would otherwise trace each other's reads of
/// /proc, each print feeding the other). A tool is recognised by its live trace instance
/// (`instances/<tool>-<pid>`, listed again at most once a second, and at once when a row
/// names one of the suite's tools as its process), or, before it has made one, as
/// another copy of this very executable. The list goes into the kernel's event filter
/// (`common_pid != ...`) and is checked again for each row, for the events recorded
/// before the filter changed.
struct Exclusion {
    tracefs: Tracefs,
    me: u32,
    others: bool,
    exe: Option<(u64, u64)>,
    /// Other copies of this executable found before they had an instance.
    copies: BTreeSet<u32>,
    tids: BTreeSet<u32>,
    checked: Instant,
    /// The kernel filter no longer matches `tids`.
    dirty: bool,
}

impl Exclusion {
    fn new(tracefs: &Tracefs, others: bool) -> Exclusion {
        let mut e = Exclusion {
            tracefs: tracefs.clone(),
            me: std::process::id(),
            others,
            exe: file_id("/proc/self/exe"),
            copies: BTreeSet::new(),
            tids: BTreeSet::new(),
            checked: Instant::now(),
            dirty: false,
        };
        e.refresh();
        e
    }

    /// Lists the suite's running tools again.
    fn refresh(&mut self) {
        self.checked = Instant::now();
        let mut pids = BTreeSet::from([self.me]);
        if self.others {
            self.copies
                .retain(|&p| perf_tools_ftrace::owner::pid_alive(p));
            pids.extend(perf_tools_ftrace::owner::live_owner_pids(&self.tracefs));
            pids.extend(self.copies.iter().copied());
        }
        let tids: BTreeSet<u32> = pids.into_iter().flat_map(threads_of).collect();
        if tids != self.tids {
            self.tids = tids;
            self.dirty = true;
        }
    }

    fn refresh_if_due(&mut self) {
        if self.checked.elapsed() >= Duration::from_secs(1) {
            self.refresh();
        }
    }

    /// Whether the row of thread `tid`, whose process is named `comm`, is to be hidden.
    fn hides(&mut self, tid: u32, comm: &[u8]) -> bool {
        if self.tids.contains(&tid) {
            return true;
        }
        if !self.others
            || !perf_tools_ftrace::owner::TOOLS
                .iter()
                .any(|t| t.as_bytes() == comm)
        {
            return false;
        }
        // A process named like one of the suite's tools: is it one (its instance may be
        // newer than our last look), or another copy of opensnoop starting up?
        let owner = perf_tools_ftrace::owner::TOOLS.iter().any(|t| {
            self.tracefs
                .path("instances")
                .join(instance_name(t, tid))
                .is_dir()
        });
        let copy = !owner && self.exe.is_some() && file_id(&format!("/proc/{tid}/exe")) == self.exe;
        if copy {
            self.copies.insert(tid);
        }
        if owner || copy {
            self.refresh();
            // Even if it exited meanwhile.
            return true;
        }
        false
    }

    /// The kernel filter: `common_pid != A && common_pid != B ...`.
    fn filter(&self) -> String {
        let mut f = String::new();
        for t in &self.tids {
            let clause = format!("common_pid != {t}");
            if !f.is_empty() && f.len() + clause.len() + 4 > MAX_FILTER_LEN {
                break;
            }
            if !f.is_empty() {
                f.push_str(" && ");
            }
            f.push_str(&clause);
        }
        f
    }
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

/// Runs opensnoop.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
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
    check_target(&args)?;

    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    // Declared before the instance so that they are removed after it (the kernel
    // refuses to remove a probe still enabled in an instance).
    let mut probes: Vec<Probe> = Vec::new();
    let inst = cleanup::start_instance(&tracefs, "opensnoop")?;
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
        eprintln!("opensnoop: this kernel has no kprobe or event-probe support (CONFIG_KPROBE_EVENTS, CONFIG_EPROBE_EVENTS), and syscall tracepoints record only the address of the file name: paths of successful opens are read from /proc/PID/fd/FD afterwards; FILE is {UNKNOWN} for failed opens and for fds closed before their path was read (-v shows each row's source in a SRC column)");
    }

    inst.write("trace_clock", "mono")?;
    inst.write("buffer_size_kb", &args.buffer_kb.to_string())?;
    let _ = inst.write("buffer_percent", "0");
    let mut decoders: Vec<EventDecoder> = Vec::new();
    for (sys, ev, kind) in &events {
        decoders.push(EventDecoder::new(&inst.event_format(sys, ev)?, *kind)?);
    }
    // Where the events carry no process name, follow renames (exec, PR_SET_NAME) so that
    // each thread's name is read from /proc only once.
    let comm_in_events = decoders
        .iter()
        .any(|d| d.kind == Kind::Name && d.comm.is_some());
    let follows_renames = !comm_in_events && inst.dir().join("events/task/task_rename").is_dir();
    if follows_renames {
        let ev = ("task".to_string(), "task_rename".to_string(), Kind::Rename);
        decoders.push(EventDecoder::new(&inst.event_format(&ev.0, &ev.1)?, ev.2)?);
        events.push(ev);
    }
    let mut exclusion = None;
    if let Some(p) = args.pid.or(args.tid) {
        let mut tids = vec![p];
        if args.pid.is_some() {
            tids = target::Procfs::default().threads_of(p);
            if tids.is_empty() {
                bail!("no process with PID {p} (it exited after opensnoop started)");
            }
            inst.write("options/event-fork", "1")?;
        }
        let list: Vec<String> = tids.iter().map(u32::to_string).collect();
        inst.write("set_event_pid", &list.join(" "))?;
    } else {
        let ex = Exclusion::new(&tracefs, !args.include_suite);
        for (sys, ev, _) in &events {
            inst.set_filter(sys, ev, &ex.filter())?;
        }
        exclusion = Some(ex);
    }
    for (sys, ev, _) in &events {
        inst.enable_event(sys, ev)?;
    }
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;

    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    let _ = writeln!(out.buf, "{}", header(args.time, args.verbose));
    out.flush()?;

    let mut pending: HashMap<u32, Pending> = HashMap::new();
    // The process of each thread seen: for -p and to name fd tables.
    let mut tgids: HashMap<u32, Option<u32>> = HashMap::new();
    let mut comms = Comms {
        names: HashMap::new(),
        follows_renames,
    };
    let mut merger: Merger<Ev> = Merger::new();
    let mut batch: Vec<Draft> = Vec::new();
    // Latest exit timestamp per (fd table, fd) among all events drained so far. Threads
    // share their process's fd table, so the table is named by the thread's process id
    // (threads of one process reuse each other's closed fds).
    let mut last_exit: HashMap<(u32, i64), u64> = HashMap::new();
    let streaming = args.duration.is_none();
    let mut lost = 0u64;
    // Names recorded up to this time are not trusted: events were lost up to it.
    let mut gap_until = 0u64;
    let poll = Duration::from_millis(100);
    let end = session.stream(&shutdown, args.duration, poll, |reader, inst, turn| {
        let watermark = turn.clock;
        if let Some(ex) = exclusion.as_mut() {
            ex.refresh_if_due();
        }
        let drain = |reader: &mut RawReader,
                     merger: &mut Merger<Ev>,
                     tgids: &mut HashMap<u32, Option<u32>>,
                     last_exit: &mut HashMap<(u32, i64), u64>,
                     lost_counted: u64| {
            let mut state = (merger, tgids, last_exit);
            let stats = reader.drain_rounds(
                u64::MAX,
                &mut state,
                |(merger, tgids, last_exit), cpu, ts, payload| {
                    let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
                    else {
                        return;
                    };
                    if let Some(d) = decoders.iter().find(|d| d.id == id) {
                        if let Some(ev) = d.decode(payload) {
                            if source == Source::ProcFd && ev.kind == Kind::Exit && ev.ret >= 0 {
                                let table = fd_table_of(tgids, ev.tid);
                                let t = last_exit.entry((table, ev.ret)).or_insert(ts);
                                *t = (*t).max(ts);
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
        let missed = drain(reader, &mut merger, &mut tgids, &mut last_exit, lost);
        note_lost(missed, &mut lost);
        if let Some((_, to)) = turn.state_gap {
            // Another process changed (or put back) our settings: events up to `to` may
            // be missing. As at a loss, forget what was remembered and every name seen
            // up to then (including those the merge still holds).
            pending.clear();
            comms.names.clear();
            gap_until = gap_until.max(to);
        }
        merger.release(watermark, |ts, ev| match ev.kind {
            Kind::Gap => {
                // Names remembered before the gap may belong to lost exits; so may
                // renames. Names seen up to its end may be followed by a lost exit.
                pending.clear();
                comms.names.clear();
                gap_until = gap_until.max(ev.ret as u64);
            }
            Kind::Name if ts <= gap_until => {}
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
                         last_exit: &HashMap<(u32, i64), u64>,
                         d: &Draft| {
            last_exit
                .get(&(fd_table_of(tgids, d.tid), d.ret))
                .is_some_and(|&t| t > d.ts)
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
                    continue;
                }
            }
            if name_re.as_ref().is_some_and(|re| !re.is_match(&comm)) {
                continue;
            }
            let (file, src): (Vec<u8>, &str) = match (source, &d.name) {
                (Source::ProcFd, _) if d.ret >= 0 => {
                    if is_reused(&mut tgids, &last_exit, &d) {
                        (UNKNOWN.as_bytes().to_vec(), SRC_REUSED)
                    } else {
                        read_links = true;
                        match std::fs::read_link(format!("/proc/{}/fd/{}", d.tid, d.ret)) {
                            Ok(path) => (path.into_os_string().into_encoded_bytes(), SRC_PROC),
                            Err(_) => (UNKNOWN.as_bytes().to_vec(), SRC_CLOSED),
                        }
                    }
                }
                (Source::ProcFd, _) => (UNKNOWN.as_bytes().to_vec(), SRC_FAILED),
                (s, Some(n)) if !n.is_empty() => (n.clone(), s.tag()),
                (s, _) => (b"(fault)".to_vec(), s.tag()),
            };
            resolved.push((d, comm, file, src));
        }
        if read_links && !turn.last {
            let missed = drain(reader, &mut merger, &mut tgids, &mut last_exit, lost);
            note_lost(missed, &mut lost);
        }
        for (d, comm, mut file, mut src) in resolved {
            if src == SRC_PROC && is_reused(&mut tgids, &last_exit, &d) {
                (file, src) = (UNKNOWN.as_bytes().to_vec(), SRC_REUSED);
            }
            if let Some(re) = &file_re {
                let known = src != SRC_REUSED && src != SRC_CLOSED && src != SRC_FAILED;
                if !known || !re.is_match(&file) {
                    continue;
                }
            }
            row(
                &mut out.buf,
                args.time.then_some(d.ts),
                &comm,
                d.tid,
                &fd_text(d.ret, args.errno),
                args.verbose.then_some(src),
                &file,
            );
        }
        if last_exit.len() > 100_000 {
            let keep_from = watermark.saturating_sub(10_000_000_000);
            last_exit.retain(|_, t| *t >= keep_from);
        }
        if tgids.len() > 100_000 {
            // Thread ids get reused: forget them now and then.
            tgids.clear();
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
        assert_eq!(header(false, false), "COMM             PID      FD FILE");
        assert_eq!(
            header(true, false),
            "TIMEs            COMM             PID      FD FILE"
        );
        let mut v = Vec::new();
        row(
            &mut v,
            None,
            b"opensnoop",
            5342,
            &fd_text(3, false),
            None,
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
            None,
            b"/x y",
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "1234.567891      a-very-long-comm 1        -1 /x y\n"
        );
    }

    #[test]
    fn with_v_file_stays_the_last_column_and_src_comes_before_it() {
        assert_eq!(
            header(false, true),
            "COMM             PID      FD SRC     FILE"
        );
        let mut v = Vec::new();
        row(
            &mut v,
            None,
            b"cat",
            42,
            "0x3",
            Some(SRC_PROC),
            b"/etc/hostname",
        );
        row(
            &mut v,
            None,
            b"cat",
            42,
            "0x4",
            Some(SRC_REUSED),
            UNKNOWN.as_bytes(),
        );
        row(
            &mut v,
            None,
            b"cat",
            42,
            "-1",
            Some(SRC_FAILED),
            UNKNOWN.as_bytes(),
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "cat              42      0x3 proc    /etc/hostname\n\
             cat              42      0x4 reused  [unknown]\n\
             cat              42       -1 failed  [unknown]\n"
        );
        // Without -v every FILE of the fallback is the path or one token.
        let mut v = Vec::new();
        row(&mut v, None, b"cat", 42, "0x4", None, UNKNOWN.as_bytes());
        let line = String::from_utf8(v).unwrap();
        assert_eq!(line.split_whitespace().last(), Some(UNKNOWN));
        assert_eq!(line.split_whitespace().count(), 4);
    }

    #[test]
    fn hostile_names_cannot_forge_rows_or_reach_the_terminal() {
        let mut v = Vec::new();
        row(
            &mut v,
            None,
            b"ev\nfake\x1b[2J",
            7,
            "0x3",
            None,
            b"/tmp/x\nfake 1 3 etc-shadow\x1b]0;t\x07\xff",
        );
        let text = String::from_utf8(v).unwrap();
        assert_eq!(
            text,
            "ev\\nfake\\e[2J    7       0x3 /tmp/x\\nfake 1 3 etc-shadow\\e]0;t\\x07\\xff\n"
        );
        assert_eq!(text.lines().count(), 1);
        // An escaped name longer than the column pushes it instead of being cut.
        let mut v = Vec::new();
        row(&mut v, None, b"\x01\x02\x03\x04\x05", 7, "-1", None, b"f");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "\\x01\\x02\\x03\\x04\\x05 7        -1 f\n"
        );
    }

    fn exclusion_of(tids: impl IntoIterator<Item = u32>) -> Exclusion {
        Exclusion {
            tracefs: Tracefs::at("/nonexistent-ptrs"),
            me: 1,
            others: true,
            exe: None,
            copies: BTreeSet::new(),
            tids: tids.into_iter().collect(),
            checked: Instant::now(),
            dirty: false,
        }
    }

    #[test]
    fn exclusion_filter_names_every_thread_and_fits_the_kernel_limit() {
        assert_eq!(
            exclusion_of([7, 12]).filter(),
            "common_pid != 7 && common_pid != 12"
        );
        let big = exclusion_of(1_000_000..1_001_000);
        let f = big.filter();
        assert!(f.len() <= MAX_FILTER_LEN, "{}", f.len());
        assert!(f.starts_with("common_pid != 1000000 && "));
        // Threads left out of the kernel filter are still hidden in user space.
        let mut big = big;
        assert!(big.hides(1_000_999, b"x"));
        assert!(!big.hides(5, b"x"));
    }

    #[test]
    fn exclusion_finds_own_threads_and_live_suite_instances() {
        let me = std::process::id();
        let root = std::env::temp_dir().join(format!("ptrs-opensnoop-excl-{me}"));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let other = child.id();
        for name in [format!("iosnoop-{other}"), "kprobe-4999999".to_string()] {
            std::fs::create_dir_all(root.join("instances").join(name)).unwrap();
        }
        let tf = Tracefs::at(&root);
        let mut ex = Exclusion::new(&tf, true);
        let mut own = Exclusion::new(&tf, false);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&root);
        assert!(
            ex.tids.contains(&me) && ex.tids.contains(&other),
            "{:?}",
            ex.tids
        );
        assert!(!ex.tids.contains(&4_999_999));
        assert!(ex.filter().contains(&format!("common_pid != {me}")));
        assert!(ex.hides(other, b"sleep"));
        assert!(!ex.hides(4_999_999, b"iosnoop"));
        // --include-suite: only opensnoop's own threads.
        assert!(own.tids.contains(&me) && !own.tids.contains(&other));
        assert!(!own.hides(other, b"sleep"));
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
