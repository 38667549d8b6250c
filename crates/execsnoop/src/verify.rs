//! Verified sources: a source of arguments is used only after execsnoop has seen its own
//! canary exec come through it with the exact arguments and parent.
//!
//! For each source, best first ([`ORDER`]), the probes and tracepoints are set up and
//! tracing turned on; then execsnoop starts its [`Canary`] (`/bin/sh -c 'read x' ...`
//! with arguments unique to the run, waiting on a pipe) and drains the ring buffers
//! every millisecond until the canary's exec (and, with a probe source, its arguments)
//! has arrived, for at most [`WAIT`]. The events go through the run's own pairing and
//! resolution ([`crate::execs`]); [`judge`] accepts the source only if the canary's row
//! has its exact arguments, from that source, and execsnoop's pid as PPID. A string
//! fetch read back as `(fault)`, wrong or missing arguments, events that never came:
//! the source is torn down and the next one tried (the shared mechanics:
//! [`perf_tools_ftrace::canary`]). The canary's events are drained here, never printed.

use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perf_tools_core::check::{Report, Status};
use perf_tools_core::output::escape;
use perf_tools_core::signals::{Shutdown, Wake};
use perf_tools_ftrace::canary::{self, Choice, Rejected, Trial};
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::probe::{Probe, Support};
use perf_tools_ftrace::reader::RawReader;
use perf_tools_ftrace::tracefs::Tracefs;

use crate::execs::{self, ArgsText, Changes, Execs, Procfs, RealProc};
use crate::source::{create_source, Ev, EventDecoder, Fetched, Kind, Source};

/// The sources, best first.
pub const ORDER: [Source; 3] = [Source::Eprobe, Source::Kprobe, Source::Proc];

/// How long to wait for the canary's events (they are written while its exec runs, a
/// few milliseconds after it is started).
pub const WAIT: Duration = Duration::from_millis(500);

/// The shell the canary runs.
pub const SHELL: &str = "/bin/sh";

/// The canary: an exec of [`SHELL`] with arguments unique to the run, that waits for
/// its standard input to close (so that /proc/PID/cmdline can be read). It is exec'd
/// through a symbolic link `TMPDIR/execsnoop-PID-RANDOM/canary` (in a directory only
/// root can enter, removed with [`CanaryDir`]), so that other execsnoops recognise it
/// by its file name ([`canary_owner`]) even when they cannot know its parent; with no
/// writable temporary directory, [`SHELL`] itself.
#[derive(Debug, Clone)]
pub struct Canary {
    /// The file exec'd.
    pub path: String,
    /// Its argv (argv[0] is `sh`: a multi-call shell such as busybox picks its applet
    /// by it).
    pub argv: Vec<String>,
}

/// The private directory of a [`Canary`]'s link, removed when dropped.
#[derive(Debug, Default)]
pub struct CanaryDir(Option<std::path::PathBuf>);

impl Drop for CanaryDir {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Canary {
    /// The canary of this run, and the directory of its link.
    pub fn new() -> (Canary, CanaryDir) {
        use std::hash::{BuildHasher, Hasher};
        use std::os::unix::fs::DirBuilderExt;
        let pid = std::process::id();
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let random = format!("{:016x}", h.finish());
        let dir = std::env::temp_dir().join(format!("execsnoop-{pid}-{random}"));
        let link = dir.join("canary");
        let made = std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .and_then(|()| std::os::unix::fs::symlink(SHELL, &link));
        let (path, guard) = match (made, link.to_str()) {
            (Ok(()), Some(l)) if !l.contains(char::is_whitespace) => {
                (l.to_string(), CanaryDir(Some(dir)))
            }
            _ => {
                let _ = std::fs::remove_dir_all(&dir);
                (SHELL.to_string(), CanaryDir(None))
            }
        };
        let canary = Canary {
            path,
            argv: vec![
                "sh".into(),
                "-c".into(),
                "read x".into(),
                format!("execsnoop-canary-{pid}-{random}"),
                "two words".into(),
            ],
        };
        (canary, guard)
    }

    /// Starts it.
    pub fn start(&self) -> Result<Child> {
        use std::os::unix::process::CommandExt;
        Command::new(&self.path)
            .arg0(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the canary exec of {}", self.path))
    }
}

/// If `filename` is the link of an execsnoop's canary (`.../execsnoop-PID-RANDOM/canary`),
/// the PID of that execsnoop.
pub fn canary_owner(filename: &[u8]) -> Option<u32> {
    let rest = filename.strip_suffix(b"/canary")?;
    let dir = rest.rsplit(|&b| b == b'/').next()?;
    let dir = std::str::from_utf8(dir).ok()?.strip_prefix("execsnoop-")?;
    let (pid, random) = dir.split_once('-')?;
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// What a source showed of the canary.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The canary's pid.
    pub pid: u32,
    /// The events of the canary and of execsnoop, with time stamps, in time order.
    pub events: Vec<(u64, Ev)>,
}

/// Whether `source` showed the canary right (`argc`: `-a`): `Err` says what was wrong.
/// The events are paired and resolved as in a run (/proc read through `proc`).
pub fn judge(
    source: Source,
    canary: &Canary,
    argc: usize,
    o: &Observed,
    proc: &impl Procfs,
) -> Result<(), String> {
    let me = std::process::id();
    let mut pairs = Execs::default();
    let mut changes = Changes::default();
    let mut drafts = Vec::new();
    let mut fetched = None;
    for (ts, ev) in &o.events {
        changes.note(*ts, ev);
        if let Ev::Args { tid, args } = ev {
            if *tid == o.pid {
                fetched = Some(args.clone());
            }
        }
        if let Some(d) = pairs.event(*ts, ev.clone()) {
            if d.pid == o.pid {
                drafts.push(d);
            }
        }
    }
    let Some(d) = drafts.pop() else {
        return Err(format!(
            "its own canary exec (pid {}) did not arrive within {} ms",
            o.pid,
            WAIT.as_millis()
        ));
    };
    if d.filename != canary.path.as_bytes() {
        return Err(format!(
            "its own canary exec's file name read back as {}",
            escape(&d.filename)
        ));
    }
    if source != Source::Proc {
        match &fetched {
            None => return Err("the probe did not fire for its own canary exec".into()),
            Some(Fetched::Fault) => {
                return Err(
                    "the arguments of its own canary exec read back as (fault): the kernel could not fetch the strings"
                        .into(),
                )
            }
            Some(Fetched::Args(..)) => {}
        }
    }
    let mut tgids = execs::Tgids::default();
    let row = execs::resolve(
        execs::read_proc(d, proc, &mut tgids, &changes),
        &changes,
        argc,
        source,
    );
    let want: Vec<Vec<u8>> = canary
        .argv
        .iter()
        .take(argc + 1)
        .map(|a| a.as_bytes().to_vec())
        .collect();
    let more = canary.argv.len() > argc + 1;
    match &row.args {
        ArgsText::Known(a, m) if *a == want && *m == more => {}
        ArgsText::Known(a, _) => {
            let shown: Vec<String> = a.iter().map(|a| escape(a)).collect();
            return Err(format!(
                "the arguments of its own canary exec read back as {:?}",
                shown.join(" ")
            ));
        }
        other => {
            return Err(format!(
                "the arguments of its own canary exec were {other:?}"
            ))
        }
    }
    if row.src != source.tag() {
        return Err(format!(
            "the arguments of its own canary exec came from {}",
            row.src
        ));
    }
    if row.ppid != Some(me) {
        return Err(format!(
            "the parent of its own canary exec read back as {:?}, not {me}",
            row.ppid
        ));
    }
    Ok(())
}

/// The kernel's side: a private instance and the probes of one source at a time.
/// Fields drop in declaration order: canary, reader, instance, then probes (the kernel
/// refuses to remove a probe still enabled in an instance).
pub struct Live<'a> {
    shutdown: Option<&'a Shutdown>,
    interrupted: bool,
    canary_child: Option<Child>,
    reader: Option<RawReader>,
    /// The instance (made anew after a tear-down).
    pub inst: Option<Instance>,
    /// The probes of the source set up.
    pub probes: Vec<Probe>,
    /// The events of the source set up: (system, event, kind).
    pub events: Vec<(String, String, Kind)>,
    /// Their decoders.
    pub decoders: Vec<EventDecoder>,
    tracefs: Tracefs,
    support: Support,
    buffer_kb: Option<u32>,
    argc: usize,
    canary: Canary,
    enabled: bool,
    /// Dropped last: the canary's link, after the canary ended.
    _canary_dir: CanaryDir,
}

impl<'a> Live<'a> {
    /// Creates the instance (removing stale state of killed runs first). `buffer_kb`:
    /// the per-CPU buffer size (`None`: the kernel's default); `argc`: `-a`.
    pub fn new(
        tracefs: &Tracefs,
        buffer_kb: Option<u32>,
        argc: usize,
        shutdown: Option<&'a Shutdown>,
    ) -> Result<Live<'a>> {
        let (canary, canary_dir) = Canary::new();
        let mut live = Live {
            shutdown,
            interrupted: false,
            canary_child: None,
            reader: None,
            inst: None,
            probes: Vec::new(),
            events: Vec::new(),
            decoders: Vec::new(),
            tracefs: tracefs.clone(),
            support: Support::detect(tracefs),
            buffer_kb,
            argc,
            canary,
            enabled: false,
            _canary_dir: canary_dir,
        };
        let inst = live.instance()?;
        if !inst.dir().join("events/sched/sched_process_exec").is_dir() {
            bail!("this kernel has no sched:sched_process_exec tracepoint (events/sched/sched_process_exec): it needs CONFIG_FTRACE=y and CONFIG_EVENT_TRACING=y");
        }
        Ok(live)
    }

    /// The canary this run checks sources with.
    pub fn canary(&self) -> &Canary {
        &self.canary
    }

    fn instance(&mut self) -> Result<&Instance> {
        if self.inst.is_none() {
            let inst = cleanup::start_instance(&self.tracefs, "execsnoop")?;
            inst.set_tracing_on(false)?;
            inst.write("trace_clock", "mono")?;
            if let Some(kb) = self.buffer_kb {
                inst.write("buffer_size_kb", &kb.to_string())?;
            }
            let _ = inst.write("buffer_percent", "0");
            self.inst = Some(inst);
        }
        match self.inst.as_ref() {
            Some(i) => Ok(i),
            None => bail!("no trace instance"),
        }
    }

    /// Ends the canary (closes its input and reaps it).
    pub fn end_canary(&mut self) {
        if let Some(mut c) = self.canary_child.take() {
            drop(c.stdin.take());
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    /// Ends the check of the chosen source: turns tracing off and discards every event
    /// recorded so far (the canary's, and those of other processes). The caller turns
    /// tracing on again.
    pub fn settle(&mut self) -> Result<()> {
        self.end_canary();
        if let Some(inst) = &self.inst {
            inst.set_tracing_on(false)?;
        }
        if let Some(mut r) = self.reader.take() {
            r.drain(|_, _, _| {});
        }
        Ok(())
    }
}

impl Trial<Source> for Live<'_> {
    type Observed = Observed;

    fn set_up(&mut self, source: Source) -> Result<()> {
        self.instance()?;
        let inst_dir = self.inst.as_ref().map(|i| i.dir().to_path_buf());
        let has = |sys: &str, ev: &str| {
            inst_dir
                .as_ref()
                .is_some_and(|d| d.join("events").join(sys).join(ev).is_dir())
        };
        let events = create_source(
            &self.tracefs,
            &self.support,
            source,
            self.argc,
            has,
            &mut self.probes,
        )?;
        self.enabled = true;
        let inst = self.instance()?;
        let mut decoders = Vec::new();
        for (sys, ev, kind) in &events {
            decoders.push(EventDecoder::new(&inst.event_format(sys, ev)?, *kind)?);
        }
        for (sys, ev, _) in &events {
            inst.enable_event(sys, ev)?;
        }
        let reader = RawReader::open(inst)?;
        inst.set_tracing_on(true)?;
        self.reader = Some(reader);
        self.events = events;
        self.decoders = decoders;
        Ok(())
    }

    fn observe(&mut self) -> Result<Observed> {
        self.end_canary();
        let child = self.canary.start()?;
        let pid = child.id();
        self.canary_child = Some(child);
        let me = std::process::id();
        let Some(reader) = self.reader.as_mut() else {
            bail!("not set up");
        };
        let mut events: Vec<(u64, Ev)> = Vec::new();
        let deadline = Instant::now() + WAIT;
        let decoders = &self.decoders;
        let mut interrupted = false;
        let mut arrived = false;
        loop {
            reader.drain(|_, ts, payload| {
                let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
                    return;
                };
                let Some(ev) = decoders
                    .iter()
                    .find(|d| d.id == id)
                    .and_then(|d| d.decode(payload))
                else {
                    return;
                };
                let ours = match &ev {
                    Ev::Exec {
                        pid: p, old_pid, ..
                    } => *p == pid || *old_pid == pid,
                    Ev::Fork { parent, child } => *child == pid || *parent == me,
                    Ev::Exit { pid: p } => *p == pid,
                    Ev::NewTask { parent, child, .. } => *child == pid || *parent == me,
                    Ev::Args { tid, .. } => *tid == pid,
                    Ev::Gap { .. } => true,
                };
                if ours {
                    events.push((ts, ev));
                }
            });
            if arrived {
                // One more drain after the exec was seen: the probe's event, written
                // before it on another CPU, may have been read just before it was
                // written.
                break;
            }
            arrived = events
                .iter()
                .any(|(_, e)| matches!(e, Ev::Exec { pid: p, .. } if *p == pid));
            let left = deadline.saturating_duration_since(Instant::now());
            if arrived {
                continue;
            }
            if left.is_zero() {
                break;
            }
            match self.shutdown {
                Some(s) => match reader.wait(s, left.min(Duration::from_millis(1))) {
                    Wake::Shutdown | Wake::OutputClosed => {
                        interrupted = true;
                        break;
                    }
                    _ => {}
                },
                None => std::thread::sleep(left.min(Duration::from_millis(1))),
            }
        }
        if interrupted {
            self.interrupted = true;
            self.end_canary();
            bail!("interrupted");
        }
        events.sort_by_key(|(ts, _)| *ts);
        Ok(Observed { pid, events })
    }

    fn interrupted(&self) -> bool {
        self.interrupted
    }

    fn tear_down(&mut self) {
        self.end_canary();
        self.reader = None;
        canary::tear_down_setup(&mut self.inst, &mut self.enabled, &mut self.probes);
        self.events.clear();
        self.decoders.clear();
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.end_canary();
    }
}

/// Chooses the source: tries [`ORDER`] with the canary, leaves the first that passes set up.
pub fn choose(live: &mut Live<'_>, argc: usize) -> Choice<Source> {
    let canary = live.canary().clone();
    let c = perf_tools_ftrace::canary::choose(live, &ORDER, |s, o| {
        judge(s, &canary, argc, o, &RealProc)
    });
    live.end_canary();
    c
}

/// The fix to offer when `source` is unavailable.
fn fix_for(r: &Rejected<Source>) -> &'static str {
    if r.verified {
        return "";
    }
    match r.source {
        Source::Eprobe => "a kernel with CONFIG_EPROBE_EVENTS=y (Linux 5.15+)",
        Source::Kprobe => "a kernel with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y",
        Source::Proc => "a kernel with CONFIG_FTRACE=y and the sched tracepoints",
    }
}

/// The `--check` report of a [`choose`] outcome.
pub fn report(choice: &Choice<Source>) -> Report {
    let mut r = Report::new("execsnoop");
    r.item(
        "sched tracepoints",
        Status::Yes,
        "sched_process_exec, sched_process_fork, sched_process_exit (and task_newtask where present)",
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
            let (status, detail) = match s {
                Source::Proc => (Status::Degraded, "verified with its own exec; ARGS read from /proc/PID/cmdline after each exec: a process gone by then shows [exited]"),
                _ => (Status::Yes, "verified with its own exec"),
            };
            r.item(format!("source {}", s.tag()), status, detail, "", true);
            r.uses = format!("arguments from {}", s.describe());
        }
        None => {
            r.item(
                "arguments",
                Status::No,
                "no source of exec events works on this kernel",
                "a kernel with CONFIG_FTRACE=y and the sched tracepoints",
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
    use crate::source::tests::{args_payload, ARGS_FORMAT};
    use perf_tools_ftrace::format::EventFormat;

    /// /proc as the canary's parent thread (tid 77, of this process) and the canary
    /// (pid 500) would show it.
    struct FakeProc(Canary);
    impl Procfs for FakeProc {
        fn cmdline(&self, pid: u32) -> Option<Vec<u8>> {
            (pid == 500).then(|| {
                let mut v = Vec::new();
                for a in &self.0.argv {
                    v.extend_from_slice(a.as_bytes());
                    v.push(0);
                }
                v
            })
        }
        fn status(&self, pid: u32, field: &str) -> Option<u32> {
            (pid == 77 && field == "Tgid").then(std::process::id)
        }
    }

    /// A kernel whose entry probe fetches what `fetch(source)` says, as the kernel
    /// would write it (decoded by the run's decoder from the probe's format text).
    /// What an entry probe fetched: argv's pointers and strings (`None`: a fault).
    type Fetch = ([u64; 3], [Option<&'static [u8]>; 3]);

    struct Fake {
        path: String,
        fetch: fn(Source) -> Fetch,
        unavailable: Vec<Source>,
        up: Option<Source>,
        torn_down: Vec<Source>,
    }

    impl Trial<Source> for Fake {
        type Observed = Observed;
        fn set_up(&mut self, s: Source) -> Result<()> {
            self.up = Some(s);
            if self.unavailable.contains(&s) {
                bail!("no such probe type");
            }
            Ok(())
        }
        fn observe(&mut self) -> Result<Observed> {
            let s = self.up.unwrap();
            let mut events = vec![(
                1,
                Ev::Fork {
                    parent: 77,
                    child: 500,
                },
            )];
            if s != Source::Proc {
                let d = EventDecoder::new(&EventFormat::parse(ARGS_FORMAT).unwrap(), Kind::Args)
                    .unwrap();
                let (ptrs, args) = (self.fetch)(s);
                events.push((2, d.decode(&args_payload(500, ptrs, args)).unwrap()));
            }
            events.push((
                3,
                Ev::Exec {
                    pid: 500,
                    old_pid: 500,
                    filename: self.path.as_bytes().to_vec(),
                },
            ));
            Ok(Observed { pid: 500, events })
        }
        fn tear_down(&mut self) {
            self.torn_down.extend(self.up.take());
        }
    }

    fn choose_with(k: &mut Fake) -> Choice<Source> {
        let (canary, _dir) = Canary::new();
        k.path = canary.path.clone();
        perf_tools_ftrace::canary::choose(k, &ORDER, |s, o| {
            judge(s, &canary, 1, o, &FakeProc(canary.clone()))
        })
    }

    #[test]
    fn a_source_whose_fetch_returns_fault_is_torn_down_and_the_next_one_used() {
        let mut k = Fake {
            path: String::new(),
            fetch: |s| {
                if s == Source::Eprobe {
                    ([1, 2, 3], [Some(b"sh"), None, None])
                } else {
                    ([1, 2, 3], [Some(b"sh"), Some(b"-c"), Some(b"read x")])
                }
            },
            unavailable: Vec::new(),
            up: None,
            torn_down: Vec::new(),
        };
        let c = choose_with(&mut k);
        assert_eq!(c.source, Some(Source::Kprobe));
        assert_eq!(k.torn_down, [Source::Eprobe]);
        assert_eq!(c.rejected.len(), 1);
        assert!(c.rejected[0].verified);
        assert!(c.rejected[0].why.contains("(fault)"), "{:?}", c.rejected);
        let r = report(&c);
        assert_eq!(r.verdict(), Status::Degraded);
        assert!(r.render().contains("source eprobe"), "{}", r.render());
    }

    #[test]
    fn wrong_arguments_fall_back_to_proc_and_no_source_cannot_run() {
        let mut k = Fake {
            path: String::new(),
            fetch: |s| match s {
                Source::Eprobe => ([1, 2, 0], [Some(b"sh"), Some(b"-x"), None]),
                _ => ([0, 0, 0], [None, None, None]),
            },
            unavailable: Vec::new(),
            up: None,
            torn_down: Vec::new(),
        };
        let c = choose_with(&mut k);
        assert_eq!(c.source, Some(Source::Proc));
        let why: Vec<&str> = c.rejected.iter().map(|r| r.why.as_str()).collect();
        assert!(why[0].contains("read back as \"sh -x\""), "{why:?}");
        assert!(why[1].contains("(fault)"), "{why:?}");
        let r = report(&c);
        assert_eq!((r.verdict(), r.exit_code()), (Status::Degraded, 0));
        let mut k = Fake {
            path: String::new(),
            fetch: |_| ([0, 0, 0], [None, None, None]),
            unavailable: ORDER.to_vec(),
            up: None,
            torn_down: Vec::new(),
        };
        let c = choose_with(&mut k);
        assert_eq!(c.source, None);
        let text = report(&c).render();
        assert!(
            text.contains("fix: a kernel with CONFIG_EPROBE_EVENTS=y"),
            "{text}"
        );
        assert_eq!(report(&c).exit_code(), 1);
    }

    #[test]
    fn an_exec_that_never_comes_or_a_wrong_parent_is_a_rejection() {
        let (canary, _dir) = Canary::new();
        let o = Observed {
            pid: 500,
            events: Vec::new(),
        };
        let e = judge(Source::Proc, &canary, 8, &o, &FakeProc(canary.clone())).unwrap_err();
        assert!(e.contains("did not arrive within 500 ms"), "{e}");
        let o = Observed {
            pid: 500,
            events: vec![
                (
                    1,
                    Ev::Fork {
                        parent: 78,
                        child: 500,
                    },
                ),
                (
                    3,
                    Ev::Exec {
                        pid: 500,
                        old_pid: 500,
                        filename: canary.path.as_bytes().to_vec(),
                    },
                ),
            ],
        };
        let e = judge(Source::Proc, &canary, 8, &o, &FakeProc(canary.clone())).unwrap_err();
        assert!(e.contains("parent"), "{e}");
    }
}

#[cfg(test)]
mod canary_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_canary_is_a_private_link_its_owner_is_read_from_and_removed_after() {
        let (c, dir) = Canary::new();
        let me = std::process::id();
        assert_eq!(canary_owner(c.path.as_bytes()), Some(me), "{c:?}");
        assert_eq!(std::fs::read_link(&c.path).unwrap().to_str(), Some(SHELL));
        let d = dir.0.clone().unwrap();
        drop(dir);
        assert!(!d.exists());
        assert_eq!(
            canary_owner(b"/tmp/execsnoop-12-0123456789abcdef/canary"),
            Some(12)
        );
        assert_eq!(canary_owner(b"/tmp/execsnoop-12-0123/canary"), None);
        assert_eq!(canary_owner(b"/bin/sh"), None);
    }
}
