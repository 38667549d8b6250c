//! killsnoop: trace signals sent by `kill()`, `tkill()` and `tgkill()`, with the
//! sender, the target, the signal and the syscall's result.
//!
//! A port of perf-tools' `killsnoop` with the same options, banner, header and columns.
//! The source is the syscalls' enter and exit tracepoints (`syscalls:sys_enter_kill`
//! ... `sys_exit_tgkill`), read from the raw per-CPU buffers of a private instance and
//! decoded by the kernel's format files; each enter is paired with the next exit of the
//! same thread, in time order across CPUs, and never across a loss of events.
//! `signal:signal_generate` is not used: it also fires for signals the kernel raises
//! itself (SIGCHLD, SIGSEGV, timers), once per target of a process-group kill, and not
//! at all for a kill that fails its permission check or for signal 0, and its result is
//! not the syscall's return value.

use anyhow::{bail, Result};
use clap::Parser;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use perf_tools_core::check::{Report, Status};
use perf_tools_core::cli;
use perf_tools_core::output::{escape_into, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::comm::{Comms, UNKNOWN_COMM};
use perf_tools_ftrace::format::{EventFormat, Field};
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, Session, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "killsnoop",
    version,
    about = "Trace signals sent by kill(), tkill() and tgkill(), with sender, target and result",
    long_about = None,
    after_help = "Examples:\n  killsnoop                 # watch kill()s live (unbuffered)\n  killsnoop -d 1            # trace 1 sec (buffered)\n  killsnoop -p 181          # trace kill()s issued to PID 181 only\n  killsnoop -s              # signal names (SIGTERM) instead of numbers\n\nSee the killsnoop(8) man page for more."
)]
pub struct Args {
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Only show signals sent by processes whose name matches this regex
    #[arg(short = 'n', value_name = "name", conflicts_with = "pid")]
    pub name: Option<String>,
    /// Only show signals sent to this PID (a process, a thread, or for tgkill() either)
    #[arg(short = 'p', value_name = "PID")]
    pub pid: Option<u32>,
    /// Show signal names (SIGTERM) instead of numbers
    #[arg(short = 's')]
    pub names: bool,
    /// Include a timestamp column (TIMEs, seconds)
    #[arg(short = 't')]
    pub time: bool,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Container scope (of the senders) and its columns
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::ScopeArgs,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Say which tracepoints killsnoop would use on this host, verified with a signal 0
    /// of its own, then exit: 0 if it can run, 1 if not. Nothing is left in tracefs
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The signal-sending syscalls traced, where the kernel has their tracepoints.
pub const SYSCALLS: &[&str] = &["kill", "tkill", "tgkill"];

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let ftext = if let Some(p) = args.pid {
        format!(" issued to PID {p}")
    } else if let Some(n) = &args.name {
        format!(" issued by process name \"{n}\"")
    } else {
        String::new()
    };
    match args.duration {
        Some(d) => format!("Tracing kill()s{ftext} for {d} seconds (buffered)..."),
        None => format!("Tracing kill()s{ftext}. Ctrl-C to end."),
    }
}

/// The header line, as the original prints it; `extra` (the `--show-cgroup` and
/// `--show-nspid` headers, each followed by a space) goes just before RETURN.
pub fn header(time: bool, extra: &str) -> String {
    let mut s = String::new();
    if time {
        s.push_str(&format!("{:<16} ", "TIMEs"));
    }
    s.push_str(&format!(
        "{:<16} {:<6} {:<8} {:<10} {extra}{:>4}",
        "COMM", "PID", "TPID", "SIGNAL", "RETURN"
    ));
    s
}

/// The name of signal `sig` (`SIGTERM`, `SIGRTMIN+3`), or its number when it has none
/// (signal 0, which only checks that the target exists).
pub fn signal_name(sig: i32) -> String {
    let named = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    if let Some((_, n)) = named.iter().find(|(s, _)| *s == sig) {
        return n.to_string();
    }
    // The kernel's real-time range (the C library reserves the first few for itself,
    // so they are named from the kernel's SIGRTMIN, 32).
    const RTMIN: i32 = 32;
    const RTMAX: i32 = 64;
    match sig {
        RTMIN => "SIGRTMIN".into(),
        RTMAX => "SIGRTMAX".into(),
        s if s > RTMIN && s < RTMAX => format!("SIGRTMIN+{}", s - RTMIN),
        s => s.to_string(),
    }
}

/// One signal sent: a syscall's enter paired with its exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    /// Exit time stamp (ns).
    pub ts: u64,
    /// The sending thread.
    pub tid: u32,
    /// The target (the syscall's pid argument: a process, a thread, or a negative
    /// process group / -1 for kill()).
    pub target: i32,
    /// The target's process for tgkill().
    pub tgid: Option<i32>,
    /// The signal number.
    pub sig: i32,
    /// The syscall's return value (0, or -errno).
    pub ret: i64,
}

/// Formats one row as the original: optional `%-16s` TIMEs, then
/// `%-16.16s %-6s %-8s %-10s %-4s`; COMM (at most 16 bytes) escaped.
/// `extra`: the `--show-cgroup`/`--show-nspid` columns, each followed by a space, put
/// just before RETURN.
pub fn row(out: &mut Vec<u8>, k: &Kill, comm: &[u8], extra: &[u8], time: bool, names: bool) {
    if time {
        let us = (k.ts + 500) / 1000;
        let t = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        let _ = write!(out, "{t:<16} ");
    }
    let mut c = Vec::with_capacity(20);
    escape_into(&mut c, &comm[..comm.len().min(16)]);
    out.extend_from_slice(&c);
    for _ in c.len()..16 {
        out.push(b' ');
    }
    let sig = if names {
        signal_name(k.sig)
    } else {
        k.sig.to_string()
    };
    let _ = write!(out, " {:<6} {:<8} {:<10} ", k.tid, k.target, sig);
    out.extend_from_slice(extra);
    let _ = writeln!(out, "{:<4}", k.ret);
}

/// What one traced event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Enter,
    Exit,
}

/// Decodes one of the traced events by its format file.
#[derive(Debug, Clone)]
struct Decoder {
    id: u16,
    kind: Kind,
    /// Index into [`SYSCALLS`].
    call: usize,
    pid: Field,
    target: Option<Field>,
    tgid: Option<Field>,
    sig: Option<Field>,
    ret: Option<Field>,
}

/// A decoded event, or a loss of events in a CPU's stream.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Enter {
        tid: u32,
        call: usize,
        target: i32,
        tgid: Option<i32>,
        sig: i32,
    },
    Exit {
        tid: u32,
        call: usize,
        ret: i64,
    },
    Gap,
}

impl Decoder {
    fn new(f: &EventFormat, kind: Kind, call: usize) -> Result<Decoder> {
        let enter = kind == Kind::Enter;
        Ok(Decoder {
            id: f.id,
            kind,
            call,
            pid: f.require("common_pid")?,
            target: if enter { Some(f.require("pid")?) } else { None },
            tgid: if enter {
                f.field("tgid").cloned()
            } else {
                None
            },
            sig: if enter { Some(f.require("sig")?) } else { None },
            ret: if enter { None } else { Some(f.require("ret")?) },
        })
    }

    fn decode(&self, p: &[u8]) -> Option<Ev> {
        let tid = self.pid.read_i64(p)? as u32;
        // Syscall arguments are stored as unsigned longs: the C types are int.
        let int = |f: &Option<Field>| {
            f.as_ref()
                .and_then(|f| f.read_u64(p))
                .map(|v| v as u32 as i32)
        };
        Some(match self.kind {
            Kind::Enter => Ev::Enter {
                tid,
                call: self.call,
                target: int(&self.target)?,
                tgid: int(&self.tgid),
                sig: int(&self.sig)?,
            },
            Kind::Exit => Ev::Exit {
                tid,
                call: self.call,
                ret: self.ret.as_ref()?.read_i64(p)?,
            },
        })
    }
}

/// Pairs enters with exits by thread, in time order.
#[derive(Debug, Default)]
struct Pairing {
    pending: HashMap<u32, Ev>,
    /// Enters forgotten at a loss of events (their exit may be lost).
    dropped_at_gap: u64,
}

impl Pairing {
    fn push(&mut self, ts: u64, ev: Ev) -> Option<Kill> {
        match ev {
            Ev::Enter { tid, .. } => {
                self.pending.insert(tid, ev);
                None
            }
            Ev::Exit { tid, call, ret } => match self.pending.remove(&tid) {
                Some(Ev::Enter {
                    call: c,
                    target,
                    tgid,
                    sig,
                    ..
                }) if c == call => Some(Kill {
                    ts,
                    tid,
                    target,
                    tgid,
                    sig,
                    ret,
                }),
                _ => None,
            },
            Ev::Gap => {
                self.dropped_at_gap += self.pending.len() as u64;
                self.pending.clear();
                None
            }
        }
    }
}

/// The kernel filter of `-p PID` for an enter event.
fn pid_filter(call: &str, pid: u32) -> String {
    if call == "tgkill" {
        format!("tgid == {pid} || pid == {pid}")
    } else {
        format!("pid == {pid}")
    }
}

/// The traced events of this kernel: creates the instance and its decoders (tracing is
/// not on yet). Returns the syscalls traced.
fn setup(
    tracefs: &Tracefs,
    buffer_kb: u32,
    pid: Option<u32>,
    only_tid: Option<u32>,
) -> Result<(Instance, Vec<Decoder>, Vec<&'static str>)> {
    let inst = cleanup::start_instance(tracefs, "killsnoop")?;
    // A new instance records from the start: nothing until the caller turns it on.
    inst.set_tracing_on(false)?;
    inst.ensure("trace_clock", "mono")?;
    // 64 KiB sub-buffers (6.8+) cut the reads per event; the reader is woken when a
    // quarter of a buffer is full, not only every poll interval.
    let _ = inst.ensure("buffer_subbuf_size_kb", "64");
    inst.ensure("buffer_size_kb", &buffer_kb.to_string())?;
    let _ = inst.ensure("buffer_percent", "25");
    let _ = inst.write("options/record-cmd", "1");
    let mut decoders = Vec::new();
    let mut traced = Vec::new();
    for (i, call) in SYSCALLS.iter().enumerate() {
        let (enter, exit) = (format!("sys_enter_{call}"), format!("sys_exit_{call}"));
        if !inst.dir().join("events/syscalls").join(&enter).is_dir() {
            continue;
        }
        decoders.push(Decoder::new(
            &inst.event_format("syscalls", &enter)?,
            Kind::Enter,
            i,
        )?);
        decoders.push(Decoder::new(
            &inst.event_format("syscalls", &exit)?,
            Kind::Exit,
            i,
        )?);
        let mut filter = pid.map(|p| pid_filter(call, p));
        if let Some(t) = only_tid {
            filter = Some(format!("common_pid == {t}"));
            inst.set_filter("syscalls", &exit, &format!("common_pid == {t}"))?;
        }
        if let Some(f) = filter {
            inst.set_filter("syscalls", &enter, &f)?;
        }
        inst.enable_event("syscalls", &enter)?;
        inst.enable_event("syscalls", &exit)?;
        traced.push(*call);
    }
    if traced.is_empty() {
        bail!(
            "this kernel has no syscalls:sys_enter_kill tracepoint (nor tkill, tgkill): it needs CONFIG_FTRACE_SYSCALLS=y"
        );
    }
    Ok((inst, decoders, traced))
}

/// Drains the buffers into the merger; returns the events lost (by the pages' flags and
/// the kernel's counters) since `lost_counted`.
fn drain(
    reader: &mut perf_tools_ftrace::reader::RawReader,
    decoders: &[Decoder],
    merger: &mut Merger<Ev>,
    lost_counted: u64,
) -> u64 {
    let stats = reader.drain_rounds(
        u64::MAX,
        merger,
        |m, cpu, ts, p| {
            let Some(id) = p.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
                return;
            };
            if let Some(ev) = decoders
                .iter()
                .find(|d| d.id == id)
                .and_then(|d| d.decode(p))
            {
                m.push(cpu as usize, ts, ev);
            }
        },
        // In its place in the CPU's stream: pairing stops there.
        |m, gap| m.push(gap.cpu as usize, gap.after, Ev::Gap),
        |_, _| {},
    );
    if stats.gaps == 0 {
        return 0;
    }
    stats
        .missed
        .max(reader.lost_events().saturating_sub(lost_counted))
}

/// Runs killsnoop.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let name_re = match &args.name {
        Some(n) => Some(cli::name_regex(n, "-n regex")?),
        None => None,
    };
    if let Some(p) = args.pid {
        // The target of the signals: a process, or a thread (tkill, tgkill).
        if perf_tools_core::target::Procfs::default()
            .tgid_of(p)
            .is_none()
        {
            bail!("no process or thread with PID {p} (not in /proc): -p takes the PID the signals are sent to, which must exist when killsnoop starts");
        }
    }
    // The senders' cgroup, in the kernel (set_event_pid with event-fork); -p (the
    // target of the signals) is a filter on another field, so both can be given.
    let mut scope = args.scope.resolve()?;
    let mut columns = args.scope.columns();
    if let Some(sc) = &scope {
        columns.in_scope_of(sc);
    }
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let (inst, decoders, _) = setup(&tracefs, args.buffer_kb, args.pid, None)?;
    if let Some(sc) = scope.as_mut() {
        sc.apply(&inst)?;
    }
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    let _ = writeln!(out.buf, "{}", header(args.time, &columns.header()));
    out.flush()?;

    let streaming = args.duration.is_none();
    let mut merger: Merger<Ev> = Merger::new();
    let mut pairing = Pairing::default();
    let mut comms = Comms::new(&tracefs);
    let mut lost = 0u64;
    let mut rows = 0u64;
    let mut left_out = 0u64;
    let end = session.stream(
        &shutdown,
        args.duration,
        Duration::from_millis(100),
        |reader, inst, batch| {
            if let Some(sc) = scope.as_mut() {
                sc.turn(inst, batch.last, &shutdown, "killsnoop", false)?;
            }
            let missed = drain(reader, &decoders, &mut merger, lost);
            if missed > 0 {
                lost += missed;
                eprintln!(
                    "WARNING: {missed} events lost: the kernel buffer overflowed (try --buffer-kb larger than {}); signals sent across the loss are not shown",
                    args.buffer_kb
                );
            }
            if batch.state_gap.is_some() {
                pairing.push(0, Ev::Gap);
            }
            let mut kills = Vec::new();
            merger.release(batch.clock, |ts, ev| {
                if let Some(k) = pairing.push(ts, *ev) {
                    kills.push(k);
                }
            });
            comms.resolve(kills.iter().map(|k| k.tid));
            let mut extra = Vec::new();
            for k in &kills {
                let comm = comms.get(k.tid).unwrap_or(UNKNOWN_COMM);
                // A sender that moved out of the cgroup (the kernel's list keeps it).
                if name_re.as_ref().is_some_and(|re| !re.is_match(comm))
                    || scope.as_mut().is_some_and(|sc| !sc.contains(k.tid))
                {
                    left_out += 1;
                    continue;
                }
                extra.clear();
                columns.write(&mut extra, k.tid);
                row(&mut out.buf, k, comm, &extra, args.time, args.names);
                rows += 1;
            }
            if streaming || batch.last {
                out.flush()?;
            }
            Ok(())
        },
    )?;
    if end == StreamEnd::OutputClosed {
        return session.finish();
    }
    let mut account = RunAccount::new("killsnoop", "rows");
    account.rows = rows;
    account.left_out = left_out;
    if let Some(p) = args.pid {
        account.filter(format!("-p {p}"), true);
    }
    if let Some(n) = &args.name {
        account.filter(format!("-n {n}"), false);
    }
    for (option, in_kernel) in args.scope.filter_notes(true) {
        account.filter(option, in_kernel);
    }
    if rows == 0 && left_out == 0 {
        account
            .notes
            .push("no kill(), tkill() or tgkill() was traced".into());
    }
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported: lost,
            note_on_stderr: false,
            loss_effect: format!(
                "rows may be missing ({} signals in flight across the losses were not shown)",
                pairing.dropped_at_gap
            ),
            account: Some(account),
        },
        || Ok(()),
    )?;
    Ok(())
}

/// What killsnoop would use on this host and whether it can run (`--check`, and its row
/// in perf-tools-doctor): the syscalls' enter/exit tracepoints in a private instance,
/// verified with a `kill(self, 0)` and a `tgkill(self, self, 0)` of killsnoop's own,
/// which must come back paired with their results.
pub fn check() -> Result<Report> {
    let mut r = Report::new("killsnoop");
    r.uses = "syscalls:sys_enter/sys_exit of kill, tkill, tgkill (not signal:signal_generate, which misses failed kills and signal 0 and adds kernel-raised signals)".into();
    let Some(tracefs) = perf_tools_ftrace::check::tracefs(&mut r) else {
        return Ok(r);
    };
    let has_generate = tracefs.has_event("signal", "signal_generate");
    r.item(
        "signal:signal_generate",
        Status::Yes,
        if has_generate {
            "present, not used: it has no syscall result, fires for signals the kernel raises, not for failed kills or signal 0"
        } else {
            "absent (not used anyway)"
        },
        "",
        false,
    );
    // SAFETY: getpid/gettid have no arguments and cannot fail.
    let (pid, tid) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid) as i32) };
    let result = (|| -> Result<(Vec<&'static str>, Vec<Kill>)> {
        let (inst, decoders, traced) = setup(&tracefs, 64, None, Some(tid as u32))?;
        inst.set_tracing_on(true)?;
        let mut session = Session::start(inst)?;
        // SAFETY: signal 0 to ourselves only checks that we exist.
        unsafe {
            libc::kill(pid, 0);
            libc::syscall(libc::SYS_tgkill, pid, tid, 0);
        }
        session.instance.set_tracing_on(false)?;
        let mut merger = Merger::new();
        let lost = drain(&mut session.reader, &decoders, &mut merger, 0);
        if lost > 0 {
            bail!("{lost} events lost");
        }
        let mut pairing = Pairing::default();
        let mut kills = Vec::new();
        merger.release(u64::MAX, |ts, ev| kills.extend(pairing.push(ts, *ev)));
        session.finish()?;
        Ok((traced, kills))
    })();
    match result {
        Ok((traced, kills)) => {
            r.item(
                "tracepoints",
                Status::Yes,
                format!(
                    "syscalls:sys_enter/sys_exit of {} decoded by their format files",
                    traced.join(", ")
                ),
                "",
                true,
            );
            let want = |target: i32| {
                kills
                    .iter()
                    .any(|k| k.tid == tid as u32 && k.target == target && k.sig == 0 && k.ret == 0)
            };
            let ok = want(pid) && (!traced.contains(&"tgkill") || want(tid));
            r.item(
                "canary",
                if ok { Status::Yes } else { Status::No },
                format!(
                    "{} of killsnoop's own signal-0 calls seen with sender, target and result ({} expected)",
                    kills.len(),
                    if traced.contains(&"tgkill") { 2 } else { 1 }
                ),
                "make sure no other program changes this run's instance; report this as a bug of perf-tools-rs",
                true,
            );
        }
        Err(e) => {
            r.item(
                "tracepoints",
                Status::No,
                format!("{e:#}"),
                "run as root on a kernel with CONFIG_FTRACE_SYSCALLS=y",
                true,
            );
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn kill(ret: i64) -> Kill {
        Kill {
            ts: 25_901_896_778_400,
            tid: 2209,
            target: 2148,
            tgid: None,
            sig: 10,
            ret,
        }
    }

    #[test]
    fn header_and_rows_match_the_original() {
        assert_eq!(
            header(false, ""),
            "COMM             PID    TPID     SIGNAL     RETURN"
        );
        assert_eq!(
            header(true, ""),
            "TIMEs            COMM             PID    TPID     SIGNAL     RETURN"
        );
        let mut v = Vec::new();
        row(&mut v, &kill(0), b"postgres", b"", false, false);
        row(&mut v, &kill(0), b"postgres", b"", true, true);
        row(
            &mut v,
            &kill(-3),
            b"a-very-long-process-name",
            b"",
            false,
            true,
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "postgres         2209   2148     10         0   \n\
             25901.896778     postgres         2209   2148     SIGUSR1    0   \n\
             a-very-long-proc 2209   2148     SIGUSR1    -3  \n"
        );
    }

    #[test]
    fn hostile_names_cannot_forge_rows() {
        let mut v = Vec::new();
        row(&mut v, &kill(0), b"x\n1 2 3\x1b[2J", b"", false, false);
        let s = String::from_utf8(v).unwrap();
        assert_eq!(s.lines().count(), 1);
        assert!(s.starts_with("x\\n1 2 3\\e[2J "), "{s}");
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(10), "SIGUSR1");
        assert_eq!(signal_name(0), "0");
        assert_eq!(signal_name(34), "SIGRTMIN+2");
        assert_eq!(signal_name(64), "SIGRTMAX");
        assert_eq!(signal_name(99), "99");
    }

    #[test]
    fn banners_match_the_original() {
        let b = |v: &[&str]| banner(&Args::try_parse_from(v).unwrap());
        assert_eq!(b(&["killsnoop"]), "Tracing kill()s. Ctrl-C to end.");
        assert_eq!(
            b(&["killsnoop", "-d", "1", "-p", "181"]),
            "Tracing kill()s issued to PID 181 for 1 seconds (buffered)..."
        );
        assert_eq!(
            b(&["killsnoop", "-n", "bash"]),
            "Tracing kill()s issued by process name \"bash\". Ctrl-C to end."
        );
    }

    #[test]
    fn pairing_is_by_thread_and_never_across_a_loss() {
        let enter = |tid, target| Ev::Enter {
            tid,
            call: 0,
            target,
            tgid: None,
            sig: 15,
        };
        let exit = |tid, ret| Ev::Exit { tid, call: 0, ret };
        let mut p = Pairing::default();
        assert_eq!(p.push(1, enter(7, 100)), None);
        assert_eq!(p.push(2, enter(8, 200)), None);
        assert_eq!(
            p.push(3, exit(8, -3)).map(|k| (k.target, k.ret)),
            Some((200, -3))
        );
        // An exit of another syscall of the thread does not pair.
        assert_eq!(
            p.push(
                4,
                Ev::Exit {
                    tid: 7,
                    call: 2,
                    ret: 0
                }
            ),
            None
        );
        assert_eq!(p.push(5, enter(7, 100)), None);
        assert_eq!(p.push(6, Ev::Gap), None);
        assert_eq!(p.dropped_at_gap, 1);
        // Its enter was before the loss: not shown.
        assert_eq!(p.push(7, exit(7, 0)), None);
        // An exit without an enter (it began before tracing) is not shown.
        assert_eq!(p.push(8, exit(9, 0)), None);
    }

    #[test]
    fn decodes_the_kernels_layouts() {
        for k in ["5.10", "6.1", "6.12"] {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/formats/");
            let Ok(text) = std::fs::read_to_string(format!("{dir}{k}/sys_exit_openat")) else {
                continue;
            };
            // The exit layout is shared by every syscall.
            let f = EventFormat::parse(&text).unwrap();
            let d = Decoder::new(&f, Kind::Exit, 0).unwrap();
            let mut p = vec![0u8; 24];
            p[4..8].copy_from_slice(&77i32.to_ne_bytes());
            p[16..24].copy_from_slice(&(-1i64).to_ne_bytes());
            assert!(
                matches!(
                    d.decode(&p),
                    Some(Ev::Exit {
                        tid: 77,
                        ret: -1,
                        ..
                    })
                ),
                "{k}"
            );
        }
        let text = "name: sys_enter_tgkill\nID: 181\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:pid_t tgid;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:pid_t pid;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int sig;\toffset:32;\tsize:8;\tsigned:0;\n\nprint fmt: \"\"\n";
        let f = EventFormat::parse(text).unwrap();
        let d = Decoder::new(&f, Kind::Enter, 2).unwrap();
        let mut p = vec![0u8; 40];
        p[4..8].copy_from_slice(&5i32.to_ne_bytes());
        p[16..24].copy_from_slice(&300u64.to_ne_bytes());
        p[24..32].copy_from_slice(&301u64.to_ne_bytes());
        p[32..40].copy_from_slice(&34u64.to_ne_bytes());
        assert!(matches!(
            d.decode(&p),
            Some(Ev::Enter {
                tid: 5,
                target: 301,
                tgid: Some(300),
                sig: 34,
                ..
            })
        ));
        // kill(-1, sig): the unsigned long argument is an int.
        p[24..32].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert!(matches!(d.decode(&p), Some(Ev::Enter { target: -1, .. })));
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["killsnoop", "-p", "1", "-n", "x"][..],
            &["killsnoop", "-d", "0"],
            &["killsnoop", "-p", "x"],
            &["killsnoop", "extra"],
        ] {
            assert_eq!(
                Args::try_parse_from(argv).unwrap_err().exit_code(),
                2,
                "{argv:?}"
            );
        }
    }
}
