//! syscount: count system calls by process name, by PID or by syscall name.
//!
//! A port of perf-tools' `syscount` with the same options, banner, header lines and
//! columns (sorted by count, ascending, as the original's `sort -n`). Every syscall is
//! counted from `raw_syscalls:sys_enter` in a private trace instance: for `-c` of the
//! whole system or a command by a hist trigger in the kernel where it has them
//! ([`hist`]), else read from the raw per-CPU buffers and decoded by the kernel's format
//! file, with syscall names from the running kernel's `syscalls:sys_enter_*` events
//! ([`names`]). Nothing is left in tracefs on any exit path.

use anyhow::{bail, Result};
use clap::Parser;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use perf_tools_core::check::{Report, Status};
use perf_tools_core::output::{escape, Output};
use perf_tools_core::signals::{Shutdown, Wake};
use perf_tools_core::target::{self, ProcessThreads, Procfs};
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::comm::Comms;
use perf_tools_ftrace::format::Field;
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, Session};
use perf_tools_ftrace::tracefs::Tracefs;

pub mod hist;
pub mod names;

use names::SyscallNames;
use perf_tools_core::workload::{Exit, Workload};

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "syscount",
    version,
    about = "Count system calls by process name, PID or syscall name",
    long_about = None,
    after_help = "Examples:\n  syscount                  # syscalls by process name\n  syscount -c               # syscalls by syscall name\n  syscount -d 5             # trace for 5 seconds\n  syscount -cp 923          # syscall names for PID 923\n  syscount -c ls            # syscall names for \"ls\"\n  syscount -cv -t 10        # top 10 by PID, name and syscall\n\nSee the syscount(8) man page for more."
)]
pub struct Args {
    /// Show counts by syscall name
    #[arg(short = 'c')]
    pub by_syscall: bool,
    /// Verbose: include the PID (and the process name with -c)
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Trace this process only (all its threads), until it exits or Ctrl-C
    #[arg(short = 'p', value_name = "PID", conflicts_with_all = ["duration", "command"])]
    pub pid: Option<u32>,
    /// Duration of the trace, in seconds
    #[arg(short = 'd', value_name = "seconds", value_parser = perf_tools_core::cli::parse_duration, conflicts_with = "command")]
    pub duration: Option<f64>,
    /// Show only the top number of rows (the largest counts)
    #[arg(short = 't', value_name = "top", value_parser = perf_tools_core::cli::at_least::<usize>("top", 1))]
    pub top: Option<usize>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 8192, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Say how syscount would count on this host (verified with its own syscalls), then
    /// exit: 0 if it can run, 1 if not. Nothing is left in tracefs
    #[arg(long, exclusive = true)]
    pub check: bool,
    /// Container scope: only the syscalls of a cgroup's tasks (filtered in the kernel)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Run and trace this command (and its children), until it exits
    #[arg(
        value_name = "command",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The output layout: the original's four modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `COMM COUNT` (default).
    Comm,
    /// `PID COMM COUNT` (`-v`).
    PidComm,
    /// `SYSCALL COUNT` (`-c`).
    Syscall,
    /// `PID COMM SYSCALL COUNT` (`-cv`).
    PidCommSyscall,
}

impl Mode {
    /// The mode of these options.
    pub fn of(args: &Args) -> Mode {
        match (args.by_syscall, args.verbose) {
            (false, false) => Mode::Comm,
            (false, true) => Mode::PidComm,
            (true, false) => Mode::Syscall,
            (true, true) => Mode::PidCommSyscall,
        }
    }

    /// The header line (with its newline), as the original prints it.
    pub fn header(self) -> String {
        match self {
            Mode::Comm => format!("{:<16} {:>8}\n", "COMM", "COUNT"),
            Mode::PidComm => format!("{:<6} {:<16} {:>8}\n", "PID", "COMM", "COUNT"),
            Mode::Syscall => format!("{:<17} {:>8}\n", "SYSCALL", "COUNT"),
            Mode::PidCommSyscall => format!(
                "{:<6} {:<16} {:<17} {:>8}\n",
                "PID", "COMM", "SYSCALL", "COUNT"
            ),
        }
    }

    fn by_thread(self) -> bool {
        self != Mode::Syscall
    }

    fn by_id(self) -> bool {
        matches!(self, Mode::Syscall | Mode::PidCommSyscall)
    }
}

/// One counted key: process, name and syscall as shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The process (thread group) id.
    pub pid: u32,
    /// The thread's name (raw bytes; escaped when printed).
    pub comm: Vec<u8>,
    /// The syscall's name.
    pub syscall: String,
}

/// The rows of the table, formatted, sorted as `sort -n -k<count>` sorts them (by count,
/// then by the whole line), the last `top` of them if asked.
pub fn render(mode: Mode, counts: &HashMap<Key, u64>, top: Option<usize>) -> Vec<String> {
    let mut rows: Vec<(u64, String)> = counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, &n)| {
            let comm = escape(&k.comm);
            let line = match mode {
                Mode::Comm => format!("{comm:<16} {n:>8}"),
                Mode::PidComm => format!("{:<6} {comm:<16} {n:>8}", k.pid),
                Mode::Syscall => format!("{:<17} {n:>8}", k.syscall),
                Mode::PidCommSyscall => {
                    format!("{:<6} {comm:<16} {:<17} {n:>8}", k.pid, k.syscall)
                }
            };
            (n, line)
        })
        .collect();
    rows.sort();
    let skip = top.map_or(0, |t| rows.len().saturating_sub(t));
    rows.into_iter().skip(skip).map(|(_, l)| l).collect()
}

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let ttext = args
        .top
        .map_or(String::new(), |t| format!(" Top {t} only."));
    if let Some(d) = args.duration {
        format!("Tracing for {d} seconds.{ttext}..")
    } else if let Some(p) = args.pid {
        format!("Tracing PID {p}.{ttext}.. Ctrl-C to end.")
    } else if !args.command.is_empty() {
        format!(
            "Tracing while running: \"{}\".{ttext}..",
            args.command.join(" ")
        )
    } else {
        format!("Tracing.{ttext}.. Ctrl-C to end.")
    }
}

/// A tiny multiplicative hash for the (thread, syscall) counters: this runs once per
/// syscall of the whole system.
#[derive(Default, Clone, Copy)]
struct FastHash(u64);

impl std::hash::Hasher for FastHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHash>>;

/// Decodes `raw_syscalls:sys_enter` by its format file.
#[derive(Debug, Clone)]
pub struct RawDecoder {
    /// Its event type id.
    pub id: u16,
    pid: Field,
    nr: Field,
}

impl RawDecoder {
    /// From the instance's format file.
    pub fn load(inst: &Instance) -> Result<RawDecoder> {
        let f = inst.event_format("raw_syscalls", "sys_enter")?;
        Ok(RawDecoder {
            id: f.id,
            pid: f.require("common_pid")?,
            nr: f.require("id")?,
        })
    }

    /// (thread id, syscall number) of one event.
    #[inline]
    pub fn decode(&self, payload: &[u8]) -> Option<(u32, i64)> {
        Some((
            self.pid.read_i64(payload)? as u32,
            self.nr.read_i64(payload)?,
        ))
    }
}

/// The counters of a run.
#[derive(Default)]
struct Counter {
    /// (thread or 0, syscall number or 0) -> count.
    counts: FastMap<(u32, i64), u64>,
    last: Option<((u32, i64), u64)>,
    events: u64,
    undecoded: u64,
    /// Threads seen for the first time since the last [`Counter::take_new`].
    new_tids: Vec<u32>,
    known: HashSet<u32>,
}

impl Counter {
    #[inline]
    fn add(&mut self, key: (u32, i64)) {
        self.events += 1;
        match &mut self.last {
            Some((k, n)) if *k == key => *n += 1,
            last => {
                if let Some((k, n)) = last.take() {
                    *self.counts.entry(k).or_insert(0) += n;
                }
                *last = Some((key, 1));
                if key.0 != 0 && self.known.insert(key.0) {
                    self.new_tids.push(key.0);
                }
            }
        }
    }

    fn settle(&mut self) {
        if let Some((k, n)) = self.last.take() {
            *self.counts.entry(k).or_insert(0) += n;
        }
    }
}

/// What a run traces.
enum Target {
    All,
    Pid(u32),
    Command(Workload),
}

/// Sets up the instance: buffers, the raw enter event (with a filter), the syscall name
/// events; tracing is not yet on.
fn setup(
    tracefs: &Tracefs,
    buffer_kb: u32,
    filter: Option<&str>,
    pids: Option<&[u32]>,
) -> Result<(Instance, RawDecoder, SyscallNames)> {
    let inst = cleanup::start_instance(tracefs, "syscount")?;
    let (dec, names) = configure(&inst, buffer_kb, filter, pids)?;
    Ok((inst, dec, names))
}

/// [`setup`] of an instance already created.
fn configure(
    inst: &Instance,
    buffer_kb: u32,
    filter: Option<&str>,
    pids: Option<&[u32]>,
) -> Result<(RawDecoder, SyscallNames)> {
    // A new instance records from the start: nothing until the caller turns it on (the
    // writes below are syscalls too).
    inst.set_tracing_on(false)?;
    inst.ensure("trace_clock", "mono")?;
    let _ = inst.ensure("buffer_subbuf_size_kb", "64");
    inst.ensure("buffer_size_kb", &buffer_kb.to_string())?;
    let _ = inst.ensure("buffer_percent", "25");
    let dec = RawDecoder::load(inst)
        .map_err(|e| anyhow::anyhow!("{e:#} (a kernel with CONFIG_FTRACE_SYSCALLS=y has it)"))?;
    if let Some(pids) = pids {
        // Forks followed from the moment the list is in place.
        inst.write("options/event-fork", "1")?;
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        inst.write("set_event_pid", &list.join(" "))?;
    }
    if let Some(f) = filter {
        inst.set_filter("raw_syscalls", "sys_enter", f)?;
    }
    // Threads' names and processes as the kernel saw them, for threads gone before
    // they are looked up (absent on old kernels: /proc only then).
    let _ = inst.write("options/record-cmd", "1");
    let _ = inst.write("options/record-tgid", "1");
    let mut names = SyscallNames::load(inst)?;
    inst.enable_event("raw_syscalls", "sys_enter")?;
    names.enable_all(inst)?;
    Ok((dec, names))
}

/// Reads every event buffered now: counts raw enters, learns names from the others.
#[allow(clippy::too_many_arguments)]
fn drain(
    session: &mut Session,
    dec: &RawDecoder,
    names: &mut SyscallNames,
    counter: &mut Counter,
    mode: Mode,
    need_tid: bool,
    lost: &mut u64,
    buffer_kb: u32,
) -> Result<()> {
    let by_id = mode.by_id();
    let Session {
        reader, instance, ..
    } = session;
    // The first event of each enter event not yet learned, this drain.
    let mut learn: HashMap<u16, Vec<u8>> = HashMap::new();
    let stats = reader.drain(|_, _, payload| {
        let Some(ty) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            counter.undecoded += 1;
            return;
        };
        if ty == dec.id {
            match dec.decode(payload) {
                Some((tid, nr)) => {
                    counter.add((if need_tid { tid } else { 0 }, if by_id { nr } else { 0 }))
                }
                None => counter.undecoded += 1,
            }
        } else if names.wants(ty) {
            learn.entry(ty).or_insert_with(|| payload.to_vec());
        }
    });
    for (ty, p) in learn {
        names.learn(instance, ty, &p);
    }
    names.disable_learned(instance)?;
    if stats.gaps > 0 || stats.missed > 0 {
        let now = reader.lost_events().max(*lost + stats.missed);
        if now > *lost {
            eprintln!(
                "WARNING: {} syscall events lost: the kernel buffer overflowed (try --buffer-kb larger than {buffer_kb}); the counts are too low",
                now - *lost
            );
            *lost = now;
        }
    }
    Ok(())
}

/// Runs syscount.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let mode = Mode::of(&args);
    args.scope.reject_with_target(args.pid, None)?;
    if args.scope.scoped() && !args.command.is_empty() {
        return Err(perf_tools_core::cli::usage(
            "--cgroup/--container cannot be combined with a command (the scope is the cgroup's tasks)",
        ));
    }
    if let Some(p) = args.pid {
        target::require_process(p)?;
    }
    // In the kernel (set_event_pid, followed forks); tasks that moved out are left out
    // here, decided when a thread is first seen.
    let mut scope = args.scope.resolve()?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let me = std::process::id();
    let mut target = if let Some(p) = args.pid {
        Target::Pid(p)
    } else if !args.command.is_empty() {
        Target::Command(Workload::prepare(&args.command).map_err(anyhow::Error::msg)?)
    } else {
        Target::All
    };
    let (pids, filter) = match &target {
        Target::All => (None, Some(format!("common_pid != {me}"))),
        // Its threads are listed once the instance exists (follow_process below).
        Target::Pid(_) => (None, None),
        Target::Command(w) => (Some(vec![w.pid() as u32]), None),
    };
    // -c of the whole system or of a command: counted in the kernel where it can.
    if mode == Mode::Syscall
        && args.pid.is_none()
        && scope.is_none()
        && tracefs.path(hist::HIST).exists()
        && run_hist(
            &args,
            &mut target,
            &tracefs,
            &shutdown,
            filter.as_deref(),
            pids.as_deref(),
        )?
    {
        return Ok(());
    }
    let (inst, dec, mut names) =
        setup(&tracefs, args.buffer_kb, filter.as_deref(), pids.as_deref())?;
    if let Target::Pid(p) = &target {
        if inst.follow_process(*p)?.is_empty() {
            bail!("no process with PID {p} (it exited before tracing began)");
        }
    }
    if let Some(sc) = scope.as_mut() {
        sc.apply(&inst)?;
    }
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(&args));
    out.flush()?;
    if let Target::Command(w) = &mut target {
        w.start().map_err(anyhow::Error::msg)?;
    }

    let need_tid = mode.by_thread() || args.pid.is_some() || scope.is_some();
    // Whether each thread seen belongs to the scope, decided when it is first seen.
    let mut in_scope: HashMap<u32, bool> = HashMap::new();
    let mut counter = Counter::default();
    let mut comms = Comms::new(&tracefs);
    let mut threads = args.pid.map(|p| ProcessThreads::new(Procfs::default(), p));
    let mut lost = 0u64;
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let poll = Duration::from_millis(100);
    let mut output_closed = false;
    loop {
        let timeout = deadline.map_or(poll, |dl| {
            poll.min(dl.saturating_duration_since(Instant::now()))
        });
        let wake = session.reader.wait(&shutdown, timeout);
        if wake == Wake::OutputClosed {
            output_closed = true;
        }
        let target_done = target_done(&mut target);
        let last = output_closed
            || wake == Wake::Shutdown
            || target_done
            || deadline.is_some_and(|dl| Instant::now() >= dl);
        session.check_state()?;
        if session.take_state_gap().is_some() {
            eprintln!("WARNING: syscalls while this run's settings were changed are not counted");
        }
        if let Some(sc) = scope.as_mut() {
            sc.turn(&session.instance, last, &shutdown, "syscount", false)?;
        }
        if last {
            session.instance.set_tracing_on(false)?;
        }
        drain(
            &mut session,
            &dec,
            &mut names,
            &mut counter,
            mode,
            need_tid,
            &mut lost,
            args.buffer_kb,
        )?;
        // Names (and processes) of new threads, while they probably still run.
        let new: Vec<u32> = std::mem::take(&mut counter.new_tids);
        if need_tid {
            comms.resolve(new.iter().copied());
            comms.resolve_tgids(new.iter().copied());
            for &t in &new {
                if let Some(th) = threads.as_mut() {
                    // /proc, else the kernel's saved_tgids (as looked up just above): a
                    // thread created after -p's thread list was read can be gone before
                    // its events are read (its events are the process's: set_event_pid
                    // followed its clone).
                    th.learn(t, comms.tgid(t));
                }
                if let Some(sc) = scope.as_mut() {
                    in_scope.entry(t).or_insert_with(|| sc.contains(t));
                }
            }
        }
        if last {
            break;
        }
    }
    counter.settle();
    if output_closed {
        return session.finish();
    }
    // Aggregate by what is shown.
    let mut shown: HashMap<Key, u64> = HashMap::new();
    let mut left_out = 0u64;
    // Threads of unknown process (gone from /proc and from saved_tgids), and their calls.
    let mut unplaced: (HashSet<u32>, u64) = (HashSet::new(), 0);
    let mut unnamed = HashSet::new();
    for (&(tid, nr), &n) in &counter.counts {
        if let Some(th) = threads.as_mut() {
            if !th.contains(tid) {
                left_out += n;
                if th.unplaced(tid) {
                    unplaced.0.insert(tid);
                    unplaced.1 += n;
                }
                continue;
            }
        }
        if let Some(sc) = scope.as_mut() {
            if !*in_scope.entry(tid).or_insert_with(|| sc.contains(tid)) {
                left_out += n;
                continue;
            }
        }
        let syscall = if mode.by_id() {
            match names.name(nr) {
                Some(s) => s.to_string(),
                None => {
                    unnamed.insert(nr);
                    names::unnamed(nr)
                }
            }
        } else {
            String::new()
        };
        let key = match mode {
            Mode::Syscall => Key {
                pid: 0,
                comm: Vec::new(),
                syscall,
            },
            _ => Key {
                pid: match (mode, args.pid) {
                    (Mode::Comm, _) => 0,
                    // Counted: a thread of the process.
                    (_, Some(p)) => p,
                    _ => comms.tgid(tid).unwrap_or(tid),
                },
                comm: comms
                    .get(tid)
                    .unwrap_or(perf_tools_ftrace::comm::UNKNOWN_COMM)
                    .to_vec(),
                syscall,
            },
        };
        *shown.entry(key).or_insert(0) += n;
    }
    let rows = render(mode, &shown, args.top);
    let mut account = RunAccount::new("syscount", "rows");
    account.rows = rows.len() as u64;
    account.left_out = left_out;
    if let Some(p) = args.pid {
        account.filter(format!("-p {p}"), false);
    }
    for (option, in_kernel) in args.scope.filter_notes(true) {
        account.filter(option, in_kernel);
    }
    if counter.events == 0 {
        account.notes.push(match &target {
            Target::All if scope.is_some() => {
                "no task of the cgroup made a syscall while traced".to_string()
            }
            Target::All => "no syscall was traced".to_string(),
            Target::Pid(p) => format!("PID {p} made no syscall while traced"),
            Target::Command(_) => "the command made no syscall".to_string(),
        });
    }
    let exit_note = match &mut target {
        Target::Command(w) => describe_exit(w),
        _ => None,
    };
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported: lost,
            note_on_stderr: true,
            loss_effect: "the counts are too low".into(),
            account: Some(account),
        },
        || Ok(()),
    )?;
    let _ = write!(out.buf, "{}", mode.header());
    for r in &rows {
        let _ = writeln!(out.buf, "{r}");
    }
    if let Err(e) = out.flush() {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(e.into());
    }
    if !unnamed.is_empty() {
        let mut v: Vec<i64> = unnamed.into_iter().collect();
        v.sort_unstable();
        eprintln!(
            "note: syscall numbers {} have no syscalls:sys_enter_* tracepoint that fired on this kernel (syscalls without one): shown as nr_N",
            v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    if let (Some(th), false) = (&threads, unplaced.0.is_empty()) {
        eprintln!(
            "note: {} calls of {} threads were left out: the threads exited before syscount could tell whether they belonged to PID {} (neither /proc nor the kernel's saved_tgids knew them)",
            unplaced.1,
            unplaced.0.len(),
            th.pid()
        );
    }
    if comms.unknown > 0 && mode != Mode::Syscall {
        eprintln!(
            "note: the names of {} threads that exited before they could be looked up are shown as <...>",
            comms.unknown
        );
    }
    if let Some(n) = exit_note {
        eprintln!("note: {n}");
    }
    Ok(())
}

/// How the command ended, for a note on stderr: nothing if it exited with status 0 (or
/// has not been reaped).
fn describe_exit(w: &mut Workload) -> Option<String> {
    match w.try_wait()? {
        Exit::Code(0) => None,
        e => Some(format!("the command {e}")),
    }
}

/// Whether the target is done (the process or command exited).
fn target_done(target: &mut Target) -> bool {
    match target {
        Target::All => false,
        Target::Pid(p) => !perf_tools_ftrace::owner::pid_alive(*p),
        Target::Command(w) => w.try_wait().is_some(),
    }
}

/// `-c` counted in the kernel by a hist trigger ([`hist`]). Returns false, having
/// removed what it created and said why on stderr, if the kernel refuses the trigger
/// (the caller then counts in user space).
fn run_hist(
    args: &Args,
    target: &mut Target,
    tracefs: &Tracefs,
    shutdown: &Shutdown,
    filter: Option<&str>,
    pids: Option<&[u32]>,
) -> Result<bool> {
    let inst = cleanup::start_instance(tracefs, "syscount")?;
    if let Some(pids) = pids {
        inst.write("options/event-fork", "1")?;
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        inst.write("set_event_pid", &list.join(" "))?;
    }
    let trigger = match hist::Trigger::set(&inst, filter) {
        Ok(t) => t,
        Err(e) => {
            inst.remove()?;
            eprintln!("syscount: note: the kernel refused the hist trigger ({e:#}): counting in user space");
            return Ok(false);
        }
    };
    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(args));
    out.flush()?;
    if let Target::Command(w) = target {
        w.start().map_err(anyhow::Error::msg)?;
    }
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let poll = Duration::from_millis(100);
    let mut checked = Instant::now();
    loop {
        let timeout = deadline.map_or(poll, |dl| {
            poll.min(dl.saturating_duration_since(Instant::now()))
        });
        match shutdown.wait(&[], timeout) {
            Wake::OutputClosed => {
                trigger.remove(&inst)?;
                inst.remove()?;
                return Ok(true);
            }
            Wake::Shutdown => break,
            Wake::Ready => {}
        }
        if target_done(target) || deadline.is_some_and(|dl| Instant::now() >= dl) {
            break;
        }
        if checked.elapsed() >= Duration::from_secs(1) {
            checked = Instant::now();
            if !trigger.present(&inst) {
                bail!(
                    "another process removed this run's hist trigger in {}: the counts would be incomplete, so the run ends here",
                    inst.dir().display()
                );
            }
        }
    }
    if !trigger.present(&inst) {
        bail!(
            "another process removed this run's hist trigger in {}: the counts would be incomplete",
            inst.dir().display()
        );
    }
    let (counts, dropped) = trigger.read(&inst)?;
    trigger.remove(&inst)?;
    inst.remove()?;
    eprintln!("\nEnding tracing...");
    let mut shown: HashMap<Key, u64> = HashMap::new();
    let mut unnamed = Vec::new();
    let mut total = 0;
    for (nr, (name, n)) in counts {
        total += n;
        let syscall = name.unwrap_or_else(|| {
            unnamed.push(nr);
            names::unnamed(nr)
        });
        *shown
            .entry(Key {
                pid: 0,
                comm: Vec::new(),
                syscall,
            })
            .or_insert(0) += n;
    }
    let rows = render(Mode::Syscall, &shown, args.top);
    if dropped > 0 {
        eprintln!("WARNING: {dropped} syscalls not counted: the kernel's table was full; the counts are too low");
    }
    if total == 0 {
        let mut account = RunAccount::new("syscount", "rows");
        account.notes.push(match target {
            Target::Command(_) => "the command made no syscall".to_string(),
            _ => "no syscall was counted".to_string(),
        });
        account.lost = dropped;
        if let Some(line) = account.line() {
            eprintln!("{line}");
        }
    }
    let _ = write!(out.buf, "{}", Mode::Syscall.header());
    for r in &rows {
        let _ = writeln!(out.buf, "{r}");
    }
    if let Err(e) = out.flush() {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(true);
        }
        return Err(e.into());
    }
    if !unnamed.is_empty() {
        unnamed.sort_unstable();
        eprintln!(
            "note: the kernel has no name for syscall numbers {} (shown as nr_N)",
            unnamed
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Target::Command(w) = target {
        if let Some(n) = describe_exit(w) {
            eprintln!("note: {n}");
        }
    }
    Ok(true)
}

/// How many canary syscalls `--check` makes.
const CANARIES: usize = 3;

/// What syscount would use on this host and whether it can run (`--check`, and its row in
/// perf-tools-doctor): a private instance counting only this process's own syscalls, a
/// known number of `getppid` calls that must be counted exactly and named by the kernel.
pub fn check() -> Result<Report> {
    let mut r = Report::new("syscount");
    r.uses = "raw_syscalls:sys_enter counted in user space from the raw buffers".into();
    let Some(tracefs) = perf_tools_ftrace::check::tracefs(&mut r) else {
        return Ok(r);
    };
    let hist = tracefs.path(hist::HIST).exists();
    if hist {
        r.uses = "raw_syscalls:sys_enter: -c of all or of a command counted in the kernel by a hist trigger, the rest in user space from the raw buffers".into();
    }
    if !hist {
        r.item(
            "hist triggers",
            Status::Yes,
            "absent (no events/raw_syscalls/sys_enter/hist): every syscall is read from the raw buffers and counted in user space",
            "",
            false,
        );
    }
    let Some(inst) = perf_tools_ftrace::check::instance(&tracefs, "syscount", &mut r) else {
        return Ok(r);
    };
    let dir = inst.dir().to_path_buf();
    if perf_tools_ftrace::check::event(
        &mut r,
        &dir,
        "raw_syscalls",
        "sys_enter",
        true,
        "a kernel with CONFIG_FTRACE_SYSCALLS=y",
    )
    .is_none()
    {
        return Ok(r);
    }
    match canary(inst) {
        Ok((counted, named, events)) => {
            let nr = libc::SYS_getppid;
            let ok = counted == CANARIES as u64;
            r.item(
                "canary",
                if ok { Status::Yes } else { Status::No },
                format!("{counted} of {CANARIES} getppid calls of syscount's own counted (syscall {nr})"),
                "make sure no other program changes this run's instance; report this as a bug of perf-tools-rs",
                true,
            );
            r.item(
                "syscall names",
                if named.is_some() { Status::Yes } else { Status::Degraded },
                match &named {
                    Some(n) => format!("from the kernel's {events} syscalls:sys_enter_* events: syscall {nr} is {n}"),
                    None => format!("{events} syscalls:sys_enter_* events, none named syscall {nr}: numbers are shown as nr_N"),
                },
                if named.is_some() { "" } else { "a kernel with CONFIG_FTRACE_SYSCALLS=y" },
                false,
            );
        }
        Err(e) => {
            r.item(
                "canary",
                Status::No,
                format!("{e:#}"),
                "run as root on a kernel with CONFIG_FTRACE_SYSCALLS=y",
                true,
            );
            return Ok(r);
        }
    }
    if hist {
        let nr = libc::SYS_getppid;
        match hist_canary(&tracefs) {
            Ok((n, name)) if n == CANARIES as u64 && name.as_deref() == Some("getppid") => {
                r.item(
                    "hist triggers",
                    Status::Yes,
                    format!("-c counts in the kernel: a hist trigger counted {n} of {CANARIES} getppid calls of syscount's own, named by the kernel"),
                    "",
                    false,
                );
            }
            Ok((n, name)) => {
                r.item(
                    "hist triggers",
                    Status::Degraded,
                    format!("a hist trigger counted {n} of {CANARIES} getppid calls (syscall {nr} named {name:?}): -c counts in user space instead"),
                    "report this kernel as a bug of perf-tools-rs",
                    false,
                );
            }
            Err(e) => {
                r.item(
                    "hist triggers",
                    Status::Degraded,
                    format!("present, but {e:#}: -c counts in user space instead"),
                    "",
                    false,
                );
            }
        }
    }
    Ok(r)
}

/// Counts this thread's own `getppid` calls with a hist trigger in a private instance:
/// (count, the kernel's name for the number).
fn hist_canary(tracefs: &Tracefs) -> Result<(u64, Option<String>)> {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    let inst = cleanup::start_instance(tracefs, "syscount")?;
    let trigger = hist::Trigger::set(&inst, Some(&format!("common_pid == {tid}")))?;
    for _ in 0..CANARIES {
        // SAFETY: getppid has no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    let (counts, _) = trigger.read(&inst)?;
    trigger.remove(&inst)?;
    inst.remove()?;
    Ok(counts
        .get(&libc::SYS_getppid)
        .map_or((0, None), |(name, n)| (*n, name.clone())))
}

/// Counts this thread's own `getppid` calls in a private instance: (counted, the name the
/// kernel gave the number, how many enter events it has).
fn canary(inst: Instance) -> Result<(u64, Option<String>, usize)> {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    // set_event_pid (not a filter) so that the name events are this thread's too.
    let (dec, mut names) = configure(&inst, 64, None, Some(&[tid]))?;
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;
    for _ in 0..CANARIES {
        // SAFETY: getppid has no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    session.instance.set_tracing_on(false)?;
    let mut counter = Counter::default();
    let mut lost = 0;
    drain(
        &mut session,
        &dec,
        &mut names,
        &mut counter,
        Mode::PidCommSyscall,
        true,
        &mut lost,
        64,
    )?;
    counter.settle();
    let counted = counter
        .counts
        .iter()
        .filter(|((t, nr), _)| *t == tid && *nr == libc::SYS_getppid)
        .map(|(_, n)| *n)
        .sum();
    let events = names.events();
    let named = names.name(libc::SYS_getppid).map(str::to_string);
    session.finish()?;
    Ok((counted, named, events))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn headers_match_the_original() {
        assert_eq!(Mode::Comm.header(), "COMM                COUNT\n");
        assert_eq!(Mode::PidComm.header(), "PID    COMM                COUNT\n");
        assert_eq!(Mode::Syscall.header(), "SYSCALL              COUNT\n");
        assert_eq!(
            Mode::PidCommSyscall.header(),
            "PID    COMM             SYSCALL              COUNT\n"
        );
    }

    #[test]
    fn banners_match_the_original() {
        let b = |v: &[&str]| banner(&Args::try_parse_from(v).unwrap());
        assert_eq!(b(&["syscount"]), "Tracing... Ctrl-C to end.");
        assert_eq!(
            b(&["syscount", "-c", "-d", "5", "-t", "10"]),
            "Tracing for 5 seconds. Top 10 only..."
        );
        assert_eq!(
            b(&["syscount", "-cp", "923"]),
            "Tracing PID 923... Ctrl-C to end."
        );
        assert_eq!(
            b(&["syscount", "-c", "ls", "-l"]),
            "Tracing while running: \"ls -l\"..."
        );
    }

    #[test]
    fn rows_sort_ascending_and_top_keeps_the_largest() {
        let mut m = HashMap::new();
        for (s, n) in [
            ("write", 34581u64),
            ("read", 7673),
            ("accept", 1),
            ("getsockopt", 1),
        ] {
            m.insert(
                Key {
                    pid: 0,
                    comm: Vec::new(),
                    syscall: s.into(),
                },
                n,
            );
        }
        assert_eq!(
            render(Mode::Syscall, &m, None),
            [
                "accept                   1",
                "getsockopt               1",
                "read                  7673",
                "write                34581"
            ]
        );
        assert_eq!(render(Mode::Syscall, &m, Some(2)).len(), 2);
        assert!(render(Mode::Syscall, &m, Some(2))[1].starts_with("write"));
    }

    #[test]
    fn hostile_names_cannot_forge_rows() {
        let mut m = HashMap::new();
        m.insert(
            Key {
                pid: 42,
                comm: b"x\n99 fake".to_vec(),
                syscall: String::new(),
            },
            3,
        );
        let rows = render(Mode::PidComm, &m, None);
        assert_eq!(rows, ["42     x\\n99 fake              3"]);
    }

    #[test]
    fn decodes_raw_enter_by_format() {
        let text = "name: sys_enter\nID: 443\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n\nprint fmt: \"NR %ld\"\n";
        let f = perf_tools_ftrace::format::EventFormat::parse(text).unwrap();
        let d = RawDecoder {
            id: f.id,
            pid: f.require("common_pid").unwrap(),
            nr: f.require("id").unwrap(),
        };
        let mut p = vec![0u8; 64];
        p[..2].copy_from_slice(&443u16.to_ne_bytes());
        p[4..8].copy_from_slice(&1234i32.to_ne_bytes());
        p[8..16].copy_from_slice(&110i64.to_ne_bytes());
        assert_eq!(d.decode(&p), Some((1234, 110)));
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["syscount", "-p", "1", "-d", "2"][..],
            &["syscount", "-p", "1", "ls"],
            &["syscount", "-d", "1", "ls"],
            &["syscount", "-t", "0"],
            &["syscount", "-d", "x"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }
}
