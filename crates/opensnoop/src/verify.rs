//! Verified sources: a source of file names is used only after opensnoop has seen its
//! own sentinel opens through it, with the right names and results.
//!
//! For each source, best first ([`ORDER`]), the probes are created, the events enabled
//! and tracing turned on; then this thread opens the [`Sentinel`]'s two paths (one that
//! exists, one that does not) and drains the ring buffers every millisecond, for at most
//! [`WAIT`], until both opens have returned in the events. The events are paired by the
//! same code as the run's ([`Opens`]); [`judge`] accepts the source only if the
//! successful open carries its FD and exact name and the failed one ENOENT and its name
//! (the fallback, which reads no names, only needs both results). Otherwise (a name
//! read back as `(fault)`, empty or different, a probe that never fired, events that
//! never came) the source is torn down and the next one tried. The sentinel's events
//! are drained here, never printed.

use anyhow::{bail, Context, Result};
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::DirBuilderExt;
use std::time::{Duration, Instant};

use perf_tools_core::check::{Report, Status};
use perf_tools_core::output::escape;
use perf_tools_core::signals::{Shutdown, Wake};
use perf_tools_ftrace::canary;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::probe::{Probe, Support};
use perf_tools_ftrace::reader::RawReader;
use perf_tools_ftrace::tracefs::Tracefs;

use crate::opens::Opens;
use crate::source::{create_source, Ev, EventDecoder, Kind, Libc, Source, SYSCALLS};

/// The sources, best first.
pub const ORDER: [Source; 5] = [
    Source::Eprobe,
    Source::Kprobe,
    Source::Getname,
    Source::Uprobe,
    Source::ProcFd,
];

/// How long to wait for the sentinel's events (they are written while the open runs, so
/// they are normally there at the first look).
pub const WAIT: Duration = Duration::from_millis(250);

/// The paths opensnoop opens to check a source, unique to the run:
/// `TMPDIR/opensnoop-PID-RANDOM/sentinel` (created beforehand, in a directory only root
/// can enter) and `.../missing` (fails with ENOENT); both are removed when dropped. If no
/// temporary directory is writable, `/proc/PID/opensnoop-sentinel-RANDOM/..` paths are
/// used instead: `/proc/PID/stat` and `/proc/PID/opensnoop-sentinel-RANDOM`.
#[derive(Debug)]
pub struct Sentinel {
    /// Opened successfully.
    pub ok: String,
    /// Fails with ENOENT.
    pub missing: String,
    dir: Option<std::path::PathBuf>,
}

impl Sentinel {
    /// The sentinel paths of this run.
    pub fn new() -> Sentinel {
        let pid = std::process::id();
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let random = format!("{:016x}", h.finish());
        let dir = std::env::temp_dir().join(format!("opensnoop-{pid}-{random}"));
        let made = std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .and_then(|()| std::fs::write(dir.join("sentinel"), b""));
        match (made, dir.to_str()) {
            (Ok(()), Some(d)) => Sentinel {
                ok: format!("{d}/sentinel"),
                missing: format!("{d}/missing"),
                dir: Some(dir.clone()),
            },
            _ => {
                let _ = std::fs::remove_dir_all(&dir);
                Sentinel {
                    ok: format!("/proc/{pid}/stat"),
                    missing: format!("/proc/{pid}/opensnoop-sentinel-{random}"),
                    dir: None,
                }
            }
        }
    }
}

impl Default for Sentinel {
    fn default() -> Self {
        Sentinel::new()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// What a source showed of the sentinel's opens.
pub struct Observed {
    /// The fd the successful open returned.
    pub ok_fd: i64,
    /// This thread's decoded events, with time stamps, in time order.
    pub events: Vec<(u64, Ev)>,
}

/// One way of setting up sources and watching the sentinel through them (the kernel's,
/// [`Live`]; fakes in tests).
pub trait Trial {
    /// Sets up `source` with tracing on. An error says why it is unavailable.
    fn set_up(&mut self, source: Source) -> Result<()>;
    /// Opens the sentinel's paths from this thread and returns what the source showed.
    fn observe(&mut self, sentinel: &Sentinel) -> Result<Observed>;
    /// Removes what [`Trial::set_up`] created.
    fn tear_down(&mut self);
    /// True if a wait was cut short by a shutdown signal (or the reader of standard
    /// output going away): no further source is tried.
    fn interrupted(&self) -> bool {
        false
    }
}

/// Why a source was not used.
pub type Rejected = canary::Rejected<Source>;

/// The outcome of [`choose`].
pub type Choice = canary::Choice<Source>;

/// A [`Trial`] with the sentinel it opens: the shape [`canary::choose`] drives.
struct WithSentinel<'a, T: Trial> {
    trial: &'a mut T,
    sentinel: &'a Sentinel,
}

impl<T: Trial> canary::Trial<Source> for WithSentinel<'_, T> {
    type Observed = Observed;
    fn set_up(&mut self, source: Source) -> Result<()> {
        self.trial.set_up(source)
    }
    fn observe(&mut self) -> Result<Observed> {
        self.trial.observe(self.sentinel)
    }
    fn tear_down(&mut self) {
        self.trial.tear_down()
    }
    fn interrupted(&self) -> bool {
        self.trial.interrupted()
    }
}

/// Tries `order` until a source passes the sentinel check ([`judge`]); leaves that one
/// set up (the suite's one source-choice loop, [`canary::choose`]).
pub fn choose(trial: &mut impl Trial, sentinel: &Sentinel, order: &[Source]) -> Choice {
    canary::choose(&mut WithSentinel { trial, sentinel }, order, |s, o| {
        judge(s, sentinel, o)
    })
}

/// Whether `source` showed the sentinel's opens right: `Err` says what was wrong.
pub fn judge(source: Source, sentinel: &Sentinel, o: &Observed) -> Result<(), String> {
    let mut opens = Opens::default();
    let mut results: Vec<(i64, Option<Vec<u8>>)> = Vec::new();
    for (ts, ev) in &o.events {
        match ev.kind {
            Kind::Enter => opens.enter(ev.tid, ev.ptr),
            Kind::Name => opens.name(*ts, ev.tid, ev.name.clone(), None),
            Kind::UName => opens.uname(*ts, ev.tid, ev.ptr, ev.name.clone(), None),
            Kind::Exit => results.push((ev.ret, opens.exit(ev.tid, false).and_then(|p| p.name))),
            Kind::Rename | Kind::Gap => {}
        }
    }
    for (ret, path, what) in [
        (o.ok_fd, &sentinel.ok, "successful open"),
        (-i64::from(libc::ENOENT), &sentinel.missing, "failed open"),
    ] {
        // The sentinel's opens are this thread's last ones.
        let Some((_, name)) = results.iter().rev().find(|(r, _)| *r == ret) else {
            return Err(format!(
                "the result of its own {what} of {path} did not arrive within {} ms",
                WAIT.as_millis()
            ));
        };
        if source == Source::ProcFd {
            continue;
        }
        match name.as_deref() {
            Some(n) if n == path.as_bytes() => {}
            None => return Err(format!("the probe did not fire for its own {what} of {path}")),
            Some(b"") => return Err(format!("the file name of its own {what} read back empty")),
            Some(b"(fault)") => {
                return Err(format!(
                    "the file name of its own {what} read back as (fault): the kernel could not fetch the string"
                ))
            }
            Some(n) => {
                return Err(format!(
                    "the file name of its own {what} of {path} read back as {}",
                    escape(n)
                ))
            }
        }
    }
    Ok(())
}

/// The kernel's side: a private instance and the probes of one source at a time.
/// Fields drop in declaration order: reader, instance, then probes (the kernel refuses
/// to remove a probe still enabled in an instance).
pub struct Live<'a> {
    /// Ends the wait for the sentinel's events early (`None`: the caller handles its
    /// signals itself, e.g. the doctor calling [`crate::check`]; the wait then polls).
    shutdown: Option<&'a Shutdown>,
    interrupted: bool,
    /// The instance's settings being written by another thread (see
    /// [`Live::instance`]): joined before the instance records or is removed.
    settings: Option<std::thread::JoinHandle<Result<()>>>,
    reader: Option<RawReader>,
    /// The instance (created by [`Live::new`]; made anew after a tear-down).
    pub inst: Option<Instance>,
    /// The probes of the source set up.
    pub probes: Vec<Probe>,
    /// The events of the source set up: (system, event, kind).
    pub events: Vec<(String, String, Kind)>,
    /// Their decoders.
    pub decoders: Vec<EventDecoder>,
    tracefs: Tracefs,
    support: Support,
    /// The open syscalls this kernel has tracepoints for.
    pub syscalls: Vec<&'static str>,
    buffer_kb: Option<u32>,
    /// The C library's open functions (for the uprobe source).
    libc: Option<Libc>,
    /// Events were enabled in the instance: a tear-down removes it (the next source
    /// gets a clean one).
    enabled: bool,
}

impl<'a> Live<'a> {
    /// Creates the instance (removing stale state of killed runs first) and finds the
    /// open syscalls' tracepoints. `buffer_kb`: the per-CPU buffer size (`None`: the
    /// kernel's default).
    pub fn new(
        tracefs: &Tracefs,
        buffer_kb: Option<u32>,
        shutdown: Option<&'a Shutdown>,
    ) -> Result<Live<'a>> {
        let mut live = Live {
            shutdown,
            interrupted: false,
            settings: None,
            reader: None,
            inst: None,
            probes: Vec::new(),
            events: Vec::new(),
            decoders: Vec::new(),
            tracefs: tracefs.clone(),
            support: Support::detect(tracefs),
            syscalls: Vec::new(),
            buffer_kb,
            libc: None,
            enabled: false,
        };
        let inst = live.instance()?;
        let has = |s: &str, dir: &str| {
            inst.dir()
                .join(format!("events/syscalls/sys_{dir}_{s}"))
                .is_dir()
        };
        let syscalls: Vec<&'static str> = SYSCALLS
            .iter()
            .copied()
            .filter(|s| has(s, "enter") && has(s, "exit"))
            .collect();
        if syscalls.is_empty() {
            bail!("this kernel has no open/openat/openat2 syscall tracepoints (events/syscalls/sys_exit_openat): it needs CONFIG_FTRACE_SYSCALLS=y");
        }
        live.syscalls = syscalls;
        Ok(live)
    }

    fn instance(&mut self) -> Result<&Instance> {
        if self.inst.is_none() {
            let inst = cleanup::start_instance(&self.tracefs, "opensnoop")?;
            // A new instance records at once: not before the sentinel's opens.
            inst.set_tracing_on(false)?;
            // The clock and the buffer size each cost the kernel a grace period or
            // more (tens of ms): written by another thread while this one sets up the
            // source's probes and events (which record nothing with tracing off), and
            // joined before tracing is turned on.
            let dir = inst.dir().to_path_buf();
            let kb = self.buffer_kb;
            self.settings = Some(std::thread::spawn(move || {
                let write = |rel: &str, value: &str| {
                    let path = dir.join(rel);
                    std::fs::write(&path, value)
                        .with_context(|| format!("writing {value:?} to {}", path.display()))
                };
                write("trace_clock", "mono")?;
                if let Some(kb) = kb {
                    write("buffer_size_kb", &kb.to_string())?;
                }
                let _ = write("buffer_percent", "0");
                Ok(())
            }));
            if self.libc.is_none() {
                self.libc = Some(Libc::find());
            }
            self.inst = Some(inst);
        }
        match self.inst.as_ref() {
            Some(i) => Ok(i),
            None => bail!("no trace instance"),
        }
    }

    /// Waits for the instance's settings to be written (see [`Live::instance`]).
    fn settings_written(&mut self) -> Result<()> {
        match self.settings.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => bail!("the thread writing the trace instance's settings panicked"),
        }
    }

    /// Ends the check of the chosen source: turns tracing off and discards every event
    /// recorded so far (the sentinel's, and those of other processes before the run's
    /// filters are set). The caller sets its filters and turns tracing on again.
    pub fn settle(&mut self) -> Result<()> {
        if let Some(inst) = &self.inst {
            inst.set_tracing_on(false)?;
        }
        if let Some(mut r) = self.reader.take() {
            r.drain(|_, _, _| {});
        }
        Ok(())
    }
}

impl Trial for Live<'_> {
    fn set_up(&mut self, source: Source) -> Result<()> {
        self.instance()?;
        let events = create_source(
            &self.tracefs,
            &self.support,
            source,
            &self.syscalls,
            self.libc.get_or_insert_with(Libc::find),
            &mut self.probes,
        )?;
        // From here on the instance is the source's (a tear-down removes it).
        self.enabled = true;
        let inst = self.instance()?;
        let mut decoders = Vec::new();
        for (sys, ev, kind) in &events {
            decoders.push(EventDecoder::new(&inst.event_format(sys, ev)?, *kind)?);
        }
        for (sys, ev, _) in &events {
            inst.enable_event(sys, ev)?;
        }
        self.settings_written()?;
        let Some(inst) = self.inst.as_ref() else {
            bail!("no trace instance");
        };
        let reader = RawReader::open(inst)?;
        inst.set_tracing_on(true)?;
        self.reader = Some(reader);
        self.events = events;
        self.decoders = decoders;
        Ok(())
    }

    fn observe(&mut self, sentinel: &Sentinel) -> Result<Observed> {
        let Some(reader) = self.reader.as_mut() else {
            bail!("not set up");
        };
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        let f = std::fs::File::open(&sentinel.ok);
        let missing = std::fs::File::open(&sentinel.missing);
        let ok_fd = match &f {
            Ok(f) => i64::from(std::os::fd::AsRawFd::as_raw_fd(f)),
            Err(e) => bail!("cannot open {}: {e}", sentinel.ok),
        };
        if !matches!(&missing, Err(e) if e.raw_os_error() == Some(libc::ENOENT)) {
            bail!("{} did not fail with ENOENT", sentinel.missing);
        }
        let mut events: Vec<(u64, Ev)> = Vec::new();
        let deadline = Instant::now() + WAIT;
        let decoders = &self.decoders;
        let shutdown = self.shutdown;
        let mut interrupted = false;
        loop {
            reader.drain(|_, ts, payload| {
                let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
                    return;
                };
                if let Some(ev) = decoders
                    .iter()
                    .find(|d| d.id == id)
                    .and_then(|d| d.decode(payload))
                {
                    if ev.tid == me {
                        events.push((ts, ev));
                    }
                }
            });
            let exits = |ret: i64| {
                events
                    .iter()
                    .any(|(_, e)| e.kind == Kind::Exit && e.ret == ret)
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if (exits(ok_fd) && exits(-i64::from(libc::ENOENT))) || left.is_zero() {
                break;
            }
            match shutdown {
                // Until a buffer has data (buffer_percent is 0), or the deadline.
                Some(s) => {
                    if reader.wait(s, left) != Wake::Ready {
                        interrupted = true;
                        break;
                    }
                }
                None => std::thread::sleep(left.min(Duration::from_millis(1))),
            }
        }
        drop(f);
        if interrupted {
            self.interrupted = true;
            bail!("interrupted");
        }
        // This thread's events may come from several CPUs.
        events.sort_by_key(|(ts, _)| *ts);
        Ok(Observed { ok_fd, events })
    }

    fn interrupted(&self) -> bool {
        self.interrupted
    }

    fn tear_down(&mut self) {
        if self.enabled {
            // The instance is removed: not while the settings are being written.
            if let Err(e) = self.settings_written() {
                eprintln!("warning: {e:#}");
            }
        }
        self.reader = None;
        canary::tear_down_setup(&mut self.inst, &mut self.enabled, &mut self.probes);
        self.events.clear();
        self.decoders.clear();
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        // The instance cannot be removed while the other thread has a file of it open.
        let _ = self.settings_written();
    }
}

/// The fix to offer when `source` is unavailable.
fn fix_for(r: &Rejected) -> &'static str {
    if r.verified {
        // The kernel has it but it does not work: nothing to switch on.
        return "";
    }
    match r.source {
        Source::Eprobe => "a kernel with CONFIG_EPROBE_EVENTS=y (Linux 5.15+)",
        Source::Kprobe | Source::Getname => {
            "a kernel with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y"
        }
        Source::Uprobe => "a kernel with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y",
        Source::ProcFd => "a kernel with CONFIG_FTRACE_SYSCALLS=y",
    }
}

/// The `--check` report of a [`choose`] outcome.
pub fn report(syscalls: &[&str], choice: &Choice) -> Report {
    let mut r = Report::new("opensnoop");
    r.item(
        "syscall tracepoints",
        Status::Yes,
        format!("sys_enter/sys_exit of {}", syscalls.join(", ")),
        "",
        true,
    );
    for rej in &choice.rejected {
        r.item(
            format!("source {}", rej.source.tag()),
            Status::No,
            format!("not used: {}", rej.why),
            fix_for(rej),
            false,
        );
    }
    match choice.source {
        Some(s) => {
            let status = match s {
                Source::Uprobe | Source::ProcFd => Status::Degraded,
                _ => Status::Yes,
            };
            let detail = match s {
                Source::Uprobe => "verified with its own opens; FILE is [unknown] for failed opens that bypass the C library (static binaries, direct syscalls)",
                Source::ProcFd => "verified with its own opens; FILE is [unknown] for failed opens and for fds closed before their path was read",
                _ => "verified with its own opens",
            };
            r.item(format!("source {}", s.tag()), status, detail, "", true);
            r.uses = format!("file names from {}", s.describe());
        }
        None => {
            r.item(
                "file names",
                Status::No,
                "no source of open events works on this kernel",
                "a kernel with CONFIG_FTRACE_SYSCALLS=y",
                true,
            );
        }
    }
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use perf_tools_ftrace::format::EventFormat;

    /// The format of an event probe or kprobe with a string fetch (`fn`), as the kernel
    /// writes it.
    const NAME_FORMAT: &str = "name: opensnoop_openat\nID: 2001\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:__data_loc char[] fn;\toffset:8;\tsize:4;\tsigned:1;\n\n\
print fmt: \"fn=\\\"%s\\\"\", __get_str(fn)\n";

    const EXIT_FORMAT: &str = "name: sys_exit_openat\nID: 2002\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n\n\
print fmt: \"0x%lx\", REC->ret\n";

    fn name_payload(tid: u32, name: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        p[..2].copy_from_slice(&2001u16.to_ne_bytes());
        p[4..8].copy_from_slice(&(tid as i32).to_ne_bytes());
        let loc = ((name.len() as u32 + 1) << 16) | 12;
        p[8..12].copy_from_slice(&loc.to_ne_bytes());
        p.extend_from_slice(name);
        p.push(0);
        p
    }

    fn exit_payload(tid: u32, ret: i64) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[..2].copy_from_slice(&2002u16.to_ne_bytes());
        p[4..8].copy_from_slice(&(tid as i32).to_ne_bytes());
        p[16..24].copy_from_slice(&ret.to_ne_bytes());
        p
    }

    /// A kernel whose probes fetch `fetched(source, path)` instead of the path: the
    /// payloads are decoded by the run's decoders from the kernel's format text.
    struct Fake {
        fetched: fn(Source, &str) -> Option<Vec<u8>>,
        unavailable: Vec<Source>,
        set_up: Option<Source>,
        torn_down: Vec<Source>,
    }

    impl Trial for Fake {
        fn set_up(&mut self, source: Source) -> Result<()> {
            self.set_up = Some(source);
            if self.unavailable.contains(&source) {
                bail!("no such probe type");
            }
            Ok(())
        }
        fn observe(&mut self, s: &Sentinel) -> Result<Observed> {
            let source = self.set_up.unwrap();
            let names =
                EventDecoder::new(&EventFormat::parse(NAME_FORMAT).unwrap(), Kind::Name).unwrap();
            let exits =
                EventDecoder::new(&EventFormat::parse(EXIT_FORMAT).unwrap(), Kind::Exit).unwrap();
            let mut events = Vec::new();
            let mut ts = 100;
            for (path, ret) in [(&s.ok, 5), (&s.missing, -2)] {
                if source != Source::ProcFd {
                    if let Some(n) = (self.fetched)(source, path) {
                        events.push((ts, names.decode(&name_payload(77, &n)).unwrap()));
                    }
                }
                events.push((ts + 1, exits.decode(&exit_payload(77, ret)).unwrap()));
                ts += 10;
            }
            Ok(Observed { ok_fd: 5, events })
        }
        fn tear_down(&mut self) {
            self.torn_down.extend(self.set_up.take());
        }
    }

    fn fake(fetched: fn(Source, &str) -> Option<Vec<u8>>, unavailable: &[Source]) -> Fake {
        Fake {
            fetched,
            unavailable: unavailable.to_vec(),
            set_up: None,
            torn_down: Vec::new(),
        }
    }

    #[test]
    fn a_source_whose_fetch_returns_fault_is_torn_down_and_the_next_one_used() {
        // The event probe's string fetch faults (as on Debian's 6.18.15 cloud kernel);
        // the kprobe's works.
        let mut k = fake(
            |s, p| {
                Some(if s == Source::Eprobe {
                    b"(fault)".to_vec()
                } else {
                    p.as_bytes().to_vec()
                })
            },
            &[],
        );
        let sentinel = Sentinel::new();
        let c = choose(&mut k, &sentinel, &ORDER);
        assert_eq!(c.source, Some(Source::Kprobe));
        assert_eq!(k.torn_down, [Source::Eprobe]);
        assert_eq!(c.rejected.len(), 1);
        assert!(c.rejected[0].verified);
        assert!(c.rejected[0].why.contains("(fault)"), "{:?}", c.rejected);
        let r = report(&["openat"], &c);
        assert_eq!(r.verdict(), Status::Degraded);
        assert!(r.render().contains("source eprobe"), "{}", r.render());
    }

    #[test]
    fn empty_wrong_and_missing_names_are_rejected_down_to_the_proc_fallback() {
        let mut k = fake(
            |s, p| match s {
                Source::Eprobe => Some(Vec::new()),
                Source::Kprobe => Some(b"/etc/passwd".to_vec()),
                Source::Getname => None,
                // Right for the successful open only.
                _ => (!p.ends_with("missing")).then(|| p.as_bytes().to_vec()),
            },
            &[],
        );
        let c = choose(&mut k, &Sentinel::new(), &ORDER);
        assert_eq!(c.source, Some(Source::ProcFd));
        let why: Vec<&str> = c.rejected.iter().map(|r| r.why.as_str()).collect();
        assert!(why[0].contains("read back empty"), "{why:?}");
        assert!(why[1].contains("read back as /etc/passwd"), "{why:?}");
        assert!(why[2].contains("did not fire"), "{why:?}");
        assert!(
            why[3].contains("did not fire for its own failed open"),
            "{why:?}"
        );
        assert_eq!(k.torn_down.len(), 4);
        let r = report(&["openat"], &c);
        assert_eq!((r.verdict(), r.exit_code()), (Status::Degraded, 0));
    }

    #[test]
    fn unavailable_sources_are_skipped_with_the_fix_and_none_working_cannot_run() {
        let mut k = fake(|_, p| Some(p.as_bytes().to_vec()), &ORDER[..4]);
        let c = choose(&mut k, &Sentinel::new(), &ORDER);
        assert_eq!(c.source, Some(Source::ProcFd));
        assert!(c.rejected.iter().all(|r| !r.verified));
        let text = report(&["openat"], &c).render();
        assert!(
            text.contains("fix: a kernel with CONFIG_UPROBES=y"),
            "{text}"
        );
        let mut k = fake(|_, p| Some(p.as_bytes().to_vec()), &ORDER);
        let c = choose(&mut k, &Sentinel::new(), &ORDER);
        assert_eq!(c.source, None);
        assert_eq!(report(&["openat"], &c).exit_code(), 1);
    }

    #[test]
    fn events_that_never_come_are_a_rejection() {
        struct Silent;
        impl Trial for Silent {
            fn set_up(&mut self, _: Source) -> Result<()> {
                Ok(())
            }
            fn observe(&mut self, _: &Sentinel) -> Result<Observed> {
                Ok(Observed {
                    ok_fd: 3,
                    events: Vec::new(),
                })
            }
            fn tear_down(&mut self) {}
        }
        let c = choose(&mut Silent, &Sentinel::new(), &ORDER);
        assert_eq!(c.source, None);
        assert!(c.rejected[4].why.contains("did not arrive within 250 ms"));
    }

    #[test]
    fn sentinel_paths_are_unique_to_the_run_and_removed_afterwards() {
        let (a, b) = (Sentinel::new(), Sentinel::new());
        let pid = std::process::id();
        assert!(a.ok.contains(&format!("opensnoop-{pid}-")), "{a:?}");
        assert_ne!(a.ok, b.ok);
        assert!(std::fs::metadata(&a.ok).is_ok());
        assert!(std::fs::metadata(&a.missing).is_err());
        let dir = a.dir.clone().unwrap();
        drop(a);
        assert!(!dir.exists());
    }

    #[test]
    fn a_shutdown_during_the_wait_ends_the_choice_without_trying_further_sources() {
        #[derive(Default)]
        struct Interrupted {
            set_up: Vec<Source>,
            torn_down: usize,
        }
        impl Trial for Interrupted {
            fn set_up(&mut self, s: Source) -> Result<()> {
                self.set_up.push(s);
                Ok(())
            }
            fn observe(&mut self, _: &Sentinel) -> Result<Observed> {
                bail!("interrupted")
            }
            fn tear_down(&mut self) {
                self.torn_down += 1;
            }
            fn interrupted(&self) -> bool {
                true
            }
        }
        let mut t = Interrupted::default();
        let c = choose(&mut t, &Sentinel::new(), &ORDER);
        assert_eq!(c.source, None);
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        assert_eq!(t.set_up, vec![Source::Eprobe]);
        assert_eq!(t.torn_down, 1);
    }
}
