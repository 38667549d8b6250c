//! Container scope of a run: `--cgroup PATH` / `--container ID|NAME` limit a tool to the
//! tasks of one cgroup (and its descendants), filtered in the kernel by the private
//! instance's `set_event_pid` with `options/event-fork`; `--show-cgroup` and
//! `--show-nspid` add columns that a container's owner can relate to.
//!
//! How the set is kept current while the run lasts:
//! - at the start, `set_event_pid` is seeded with every thread of the cgroup subtree and
//!   `event-fork` is turned on, so the kernel itself follows children forked by those
//!   tasks from the first instant (no user-space race);
//! - tasks moved into the cgroup later (`echo PID > cgroup.procs`) are found by polling
//!   the subtree's `cgroup.threads` (v2) or `tasks` (v1) every [`POLL`] and appended to
//!   `set_event_pid` (a write without `O_TRUNC` adds to the list). Polling, not inotify
//!   (checked on Linux 6.18): `cgroup.procs` reports IN_MODIFY only because someone
//!   wrote to that very file (a move by `echo PID > cgroup.procs`), so it needs a watch
//!   on every descendant cgroup (made and removed while the run lasts) and misses tasks
//!   started straight into the cgroup with `clone3(CLONE_INTO_CGROUP)` (systemd and
//!   container runtimes do this); `cgroup.events` (v2 only) changes only when the
//!   cgroup goes from empty to populated or back. A poll every 100 ms sees all of them;
//!   its cost is measured by `scripts/bench-scope.sh`;
//! - tasks that left the cgroup stay in the kernel's list (the kernel drops them when
//!   they exit) and are dropped here, by membership: a thread in the last read list is a
//!   member; any other (a child the kernel followed and this run has not listed yet, or
//!   a task that moved out) is looked up in `/proc/TID/cgroup` (cached until the next
//!   poll); a thread that already exited counts as a member, since only a traced task or
//!   its child can have made the event;
//! - an empty cgroup at the start does NOT disable the filter (an empty `set_event_pid`
//!   would mean "every task"): the list is seeded with a PID that no task can have
//!   (`PID_MAX_LIMIT`, or `pid_max - 1` on kernels whose list is a bitmap of `pid_max`
//!   bits), so nothing is traced until a task joins;
//! - tools that cannot filter in the kernel (iosnoop, iolatency: a PID filter would drop
//!   the completions, which run in whatever task is on the CPU) decide in user space
//!   ([`Scope::poll`], [`Scope::holds`]) and follow forks from the kernel's own
//!   `sched_process_fork` events in their instance ([`Scope::follow_forks`]), so that a
//!   task forked by a member and gone before a poll lists it is still placed;
//! - a cgroup removed mid-run ends the run: the tool says so on stderr, prints what it
//!   traced up to then, cleans up and exits 0 (the target ended, like `-p PID` whose
//!   process exited; it is not a failure of the tool).

use anyhow::{bail, Context, Result};
use perf_tools_core::cgroup::{self, Cgroup, Version};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::format::{EventFormat, Field};
use crate::instance::Instance;
use perf_tools_core::signals::Shutdown;

/// How often the cgroup's thread lists are read again.
pub const POLL: Duration = Duration::from_millis(100);

/// `PID_MAX_LIMIT` on 64-bit kernels: no task can have this PID.
const NO_TASK: u32 = 4_194_304;

/// The container-scope options with the extra columns, flattened into the `Args` of a
/// tool whose rows name tasks: [`CgroupArgs`] plus `--show-cgroup` and `--show-nspid`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeArgs {
    /// `--cgroup` / `--container`.
    #[command(flatten)]
    pub target: CgroupArgs,
    /// Add a CGROUP column (the container short ID or pod UID when the task's cgroup names
    /// one, else the last component of its cgroup path), just before the last column
    #[arg(long = "show-cgroup")]
    pub show_cgroup: bool,
    /// Add an NSPID column (the PID as the task's own PID namespace sees it, from
    /// /proc/PID/status NSpid), just before the last column (after CGROUP)
    #[arg(long = "show-nspid")]
    pub show_nspid: bool,
}

impl ScopeArgs {
    /// Whether a scope was asked for.
    pub fn scoped(&self) -> bool {
        self.target.scoped()
    }

    /// The scope asked for, resolved (before any kernel state is made), or `None`.
    pub fn resolve(&self) -> Result<Option<Scope>> {
        self.target.resolve()
    }

    /// The scope options given, for the end-of-run account's filter list
    /// ([`crate::session::RunAccount::filter`]); `in_kernel` says whether the tool
    /// filters them in the kernel (`set_event_pid`) or in user space.
    pub fn filter_notes(&self, in_kernel: bool) -> Vec<(String, bool)> {
        self.target.filter_notes(in_kernel)
    }

    /// The extra columns asked for.
    pub fn columns(&self) -> Columns {
        Columns {
            cgroup: self.show_cgroup,
            nspid: self.show_nspid,
            hierarchy: None,
            cache: HashMap::new(),
            cleared: Instant::now(),
        }
    }
}

/// The container-scope options without the extra columns, for tools whose output has
/// no per-task rows (histograms, counts): `--cgroup PATH` / `--container ID|NAME`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupArgs {
    /// Only trace tasks in this cgroup and its descendants, including tasks moved into it
    /// later and children they fork: a directory under a cgroup mount, or a path as
    /// /proc/PID/cgroup shows it (looked up in the v2 hierarchy, then each v1 one)
    #[arg(long, value_name = "PATH", conflicts_with = "container")]
    pub cgroup: Option<String>,
    /// Only trace the tasks of this container: its ID or a prefix of at least 4
    /// characters (as `docker ps` shows it), or a pod UID, found by the names runtimes give
    /// cgroups (docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
    /// libpod-<id>.scope, kubepods/.../pod<uid>/<id>)
    #[arg(long, value_name = "ID|NAME")]
    pub container: Option<String>,
}

impl CgroupArgs {
    /// Whether a scope was asked for.
    pub fn scoped(&self) -> bool {
        self.cgroup.is_some() || self.container.is_some()
    }

    /// The scope asked for, resolved (before any kernel state is made), or `None`.
    pub fn resolve(&self) -> Result<Option<Scope>> {
        let (cg, label) = if let Some(p) = &self.cgroup {
            (cgroup::resolve(p)?, format!("cgroup {p}"))
        } else if let Some(id) = &self.container {
            let f = cgroup::find_container(id)?;
            let label = format!(
                "container {} ({}, cgroup {})",
                f.id.chars().take(12).collect::<String>(),
                f.runtime,
                f.cgroup.path
            );
            (f.cgroup, label)
        } else {
            return Ok(None);
        };
        Ok(Some(Scope::new(cg, label)))
    }

    /// The scope options given, for the end-of-run account's filter list
    /// ([`crate::session::RunAccount::filter`]); `in_kernel` says whether the tool
    /// filters them in the kernel (`set_event_pid`) or in user space.
    pub fn filter_notes(&self, in_kernel: bool) -> Vec<(String, bool)> {
        let mut v = Vec::new();
        if let Some(c) = &self.cgroup {
            v.push((format!("--cgroup {c}"), in_kernel));
        }
        if let Some(c) = &self.container {
            v.push((format!("--container {c}"), in_kernel));
        }
        v
    }

    /// The words a banner adds for the scope: ` for cgroup PATH`, ` for container ID`,
    /// or nothing.
    pub fn banner_text(&self) -> String {
        match (&self.cgroup, &self.container) {
            (Some(c), _) => format!(" for cgroup {c}"),
            (None, Some(c)) => format!(" for container {c}"),
            _ => String::new(),
        }
    }

    /// Rejects the scope combined with `-p`/`-L` (a usage error, checked after parsing
    /// so that the synopsis keeps `-n | -p | -L` and `--cgroup | --container` as groups).
    pub fn reject_with_target(&self, pid: Option<u32>, tid: Option<u32>) -> Result<()> {
        if self.scoped() && (pid.is_some() || tid.is_some()) {
            return Err(perf_tools_core::cli::usage(
                "--cgroup/--container cannot be combined with -p or -L (the scope is the cgroup's tasks)",
            ));
        }
        Ok(())
    }
}

/// What [`Scope::refresh`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing to do, or new tasks were added to the kernel's list.
    Current,
    /// The cgroup was removed.
    Gone,
}

/// A run's cgroup scope.
#[derive(Debug)]
pub struct Scope {
    cgroup: Cgroup,
    label: String,
    /// The v1 hierarchy's controllers as /proc/PID/cgroup names them (sorted).
    controllers: Vec<String>,
    /// Threads written to `set_event_pid`.
    known: BTreeSet<u32>,
    /// Threads in the cgroup at the last poll.
    members: BTreeSet<u32>,
    /// Threads in the cgroup at the poll before ([`Scope::holds`]: a thread that has
    /// exited since was a member when it made its last events).
    previous: BTreeSet<u32>,
    /// Membership of threads not in `members`, from /proc (until the next poll).
    looked_up: HashMap<u32, bool>,
    last: Instant,
    /// Polls made.
    pub polls: u64,
    /// Threads added to the kernel's list after the start.
    pub added: u64,
    /// Threads [`Scope::holds`] could not place: exited before they were looked up.
    pub unknown: u64,
    /// With [`Scope::follow_forks`]: where `sched_process_fork` keeps its two PIDs.
    forks: Option<ForkFields>,
    /// With [`Scope::follow_forks`]: what is known of threads that may have exited by
    /// the time their events are read: listed by a poll or found in /proc (a member or
    /// not), or forked (`sched_process_fork`) by a thread known to be one (then so are
    /// they, from their first instant) or not to be one. A fork of a thread ID (reused)
    /// replaces what was known. At most [`FOLLOW_MAX`]: emptied when full (events are
    /// read within a second; only threads gone in between are left unplaced).
    placed: HashMap<u32, bool>,
}

/// At most this many forks are remembered ([`Scope::follow_forks`]); then they are
/// forgotten at once, and a thread forked before that which exits before a poll lists
/// it is counted in [`Scope::unknown`] again.
pub const FOLLOW_MAX: usize = 100_000;

/// Where `sched:sched_process_fork` keeps the forking thread and the new one, from the
/// running kernel's format file (the comms before them changed from `char[16]` to
/// `__data_loc` strings in Linux 6.x, moving the PIDs).
#[derive(Debug, Clone)]
struct ForkFields {
    id: u16,
    parent: Field,
    child: Field,
}

impl ForkFields {
    fn from_format(f: &EventFormat) -> Result<ForkFields> {
        Ok(ForkFields {
            id: f.id,
            parent: f.require("parent_pid")?,
            child: f.require("child_pid")?,
        })
    }

    /// `(parent, child)` of a `sched_process_fork` payload; `None` for other events or a
    /// truncated one.
    #[inline]
    fn decode(&self, payload: &[u8]) -> Option<(u32, u32)> {
        let id = u16::from_ne_bytes([*payload.first()?, *payload.get(1)?]);
        if id != self.id {
            return None;
        }
        let parent = self.parent.read_i64(payload)?;
        let child = self.child.read_i64(payload)?;
        Some((u32::try_from(parent).ok()?, u32::try_from(child).ok()?))
    }
}

impl Scope {
    fn new(cgroup: Cgroup, label: String) -> Scope {
        let controllers = controllers_of(&cgroup);
        Scope {
            cgroup,
            label,
            controllers,
            known: BTreeSet::new(),
            members: BTreeSet::new(),
            previous: BTreeSet::new(),
            looked_up: HashMap::new(),
            last: Instant::now(),
            polls: 0,
            added: 0,
            unknown: 0,
            forks: None,
            placed: HashMap::new(),
        }
    }

    /// The cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// What the user named (for messages and the end-of-run account).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Seeds the instance's `set_event_pid` with the cgroup's threads and turns on
    /// `options/event-fork`. An empty cgroup is seeded with a PID no task has (see the
    /// module documentation), never left empty.
    pub fn apply(&mut self, inst: &Instance) -> Result<()> {
        let tids = self.read_members()?;
        inst.write("options/event-fork", "1")
            .context("this kernel's trace instances have no event-fork option (Linux 4.7+), which --cgroup needs to follow forked children")?;
        write_list(&tids, |list| inst.write("set_event_pid", list))?;
        self.known = tids.clone();
        self.members = tids;
        self.last = Instant::now();
        Ok(())
    }

    /// Turns on `set_ftrace_pid` and `options/function-fork` too, for the function
    /// tracers (call after [`Scope::apply`]).
    pub fn apply_function(&self, inst: &Instance) -> Result<()> {
        inst.write("options/function-fork", "1")
            .context("this kernel has no function-fork option (Linux 4.20+), which --cgroup needs for function tracers")?;
        write_list(&self.known, |list| inst.write("set_ftrace_pid", list))
    }

    /// For a function tracer whose PID list is not a private instance's (function_graph
    /// at the top level): reads the cgroup's threads and writes, through `set` (which
    /// saves each file's original value first, so that it is restored on every exit
    /// path), `options/function-fork` = 1 and `set_ftrace_pid` = the threads. No
    /// `set_event_pid` is touched. Keep the list current with [`Scope::turn_in`] on the
    /// same directory and `&["set_ftrace_pid"]`: appended PIDs go when the original
    /// value is written back.
    pub fn seed_function(&mut self, mut set: impl FnMut(&str, &str) -> Result<()>) -> Result<()> {
        let tids = self.read_members()?;
        set("options/function-fork", "1")
            .context("this kernel has no function-fork option (Linux 4.20+), which --cgroup needs for function tracers")?;
        write_list(&tids, |list| set("set_ftrace_pid", list))?;
        self.known = tids.clone();
        self.members = tids;
        self.last = Instant::now();
        Ok(())
    }

    fn read_members(&self) -> Result<BTreeSet<u32>> {
        self.cgroup.threads()
    }

    /// Reads the cgroup's threads again if [`POLL`] has passed, and appends new ones to
    /// the instance's `set_event_pid` (and `set_ftrace_pid` when `function` is set).
    pub fn refresh(&mut self, inst: &Instance, function: bool) -> Result<Refresh> {
        if self.last.elapsed() < POLL {
            return Ok(Refresh::Current);
        }
        self.refresh_in(inst.dir(), lists(function))
    }

    /// Reads the cgroup's threads now and appends new ones to the PID list `files` of
    /// the tracing directory `dir`.
    fn refresh_in(&mut self, dir: &Path, files: &[&str]) -> Result<Refresh> {
        self.last = Instant::now();
        self.polls += 1;
        if !self.cgroup.exists() {
            return Ok(Refresh::Gone);
        }
        let Ok(tids) = self.read_members() else {
            return Ok(Refresh::Gone);
        };
        let new: Vec<String> = tids.difference(&self.known).map(u32::to_string).collect();
        if !new.is_empty() {
            for f in files {
                append(dir, f, &new.join(" "))?;
            }
            self.added += new.len() as u64;
            self.known.extend(tids.iter().copied());
        }
        self.members = tids;
        self.looked_up.clear();
        Ok(Refresh::Current)
    }

    /// Whether an event of thread `tid` belongs to the scope: it is in the cgroup as last
    /// read, or /proc says it is now, or it has exited (the kernel traced it, so it was
    /// a member or a member's child).
    pub fn contains(&mut self, tid: u32) -> bool {
        self.member(tid, |_, _| true)
    }

    /// Whether `tid` is in the cgroup: in the last list read, else by its
    /// `/proc/TID/cgroup` (cached until the next poll), else (it has exited) what
    /// `exited` says.
    fn member(&mut self, tid: u32, exited: impl FnOnce(&mut Scope, u32) -> bool) -> bool {
        if let Some(m) = self.live_member(tid) {
            return m;
        }
        let m = exited(self, tid);
        self.looked_up.insert(tid, m);
        m
    }

    /// Whether `tid` is in the cgroup: in the last list read, else by its
    /// `/proc/TID/cgroup` (cached until the next poll, with what [`Scope::member`]
    /// decided for exited threads); `None` when it has exited and nothing was decided.
    fn live_member(&mut self, tid: u32) -> Option<bool> {
        if self.members.contains(&tid) {
            return Some(true);
        }
        if let Some(&m) = self.looked_up.get(&tid) {
            return Some(m);
        }
        let text = std::fs::read_to_string(format!("/proc/{tid}/cgroup")).ok()?;
        let m = path_in(&text, self.cgroup.version, &self.controllers)
            .is_some_and(|p| under(&p, &self.cgroup.path));
        self.looked_up.insert(tid, m);
        self.place(tid, m);
        Some(m)
    }

    /// For tools that attribute in user space without `set_event_pid` (iosnoop: a PID
    /// filter would drop the completions, which run in whatever task is on the CPU):
    /// reads the cgroup's threads again if [`POLL`] has passed.
    pub fn poll(&mut self) -> Refresh {
        if self.last.elapsed() < POLL {
            return Refresh::Current;
        }
        self.last = Instant::now();
        self.polls += 1;
        match self.cgroup.threads() {
            Ok(t) if self.cgroup.exists() => {
                if self.forks.is_some() {
                    let new: Vec<u32> = t.difference(&self.members).copied().collect();
                    for tid in new {
                        self.place(tid, true);
                    }
                }
                self.previous = std::mem::replace(&mut self.members, t);
                self.looked_up.clear();
                Refresh::Current
            }
            _ => Refresh::Gone,
        }
    }

    /// Whether thread `tid` is in the cgroup (as last read, else by /proc); a thread
    /// that already exited is if the poll before the last listed it (it left the list
    /// by exiting), or, with [`Scope::follow_forks`], if its parent was when it forked;
    /// otherwise it cannot be placed: [`Scope::unknown`] counts those.
    pub fn holds(&mut self, tid: u32) -> bool {
        self.member(tid, |s, tid| match s.was_member(tid) {
            Some(m) => m,
            None => {
                s.unknown += 1;
                false
            }
        })
    }

    /// Whether an exited thread was a member: listed by the poll before the last, or
    /// placed while [`Scope::follow_forks`] remembers; `None` when nothing placed it.
    fn was_member(&self, tid: u32) -> Option<bool> {
        if self.previous.contains(&tid) {
            return Some(true);
        }
        self.placed.get(&tid).copied()
    }

    /// Remembers what is known of `tid` ([`Scope::follow_forks`] only).
    fn place(&mut self, tid: u32, member: bool) {
        if self.forks.is_none() {
            return;
        }
        if self.placed.len() >= FOLLOW_MAX {
            self.placed.clear();
        }
        self.placed.insert(tid, member);
    }

    /// For tools that decide membership in user space ([`Scope::holds`]): follows forks
    /// in the kernel's own event stream, so that a task forked by a member and gone
    /// before any poll lists it (a `dd` that reads and exits within 100 ms) still counts.
    /// Enables `sched:sched_process_fork` in `inst` (call before tracing is on, and
    /// hand every raw event to [`Scope::observe`] before decoding it) and reads the
    /// cgroup's threads now, so that forks from this instant on are placed by their
    /// parent. A child made straight into another cgroup (`clone3(CLONE_INTO_CGROUP)`)
    /// from a member is wrongly followed only if it exits before /proc is read.
    pub fn follow_forks(&mut self, inst: &Instance) -> Result<()> {
        let format = inst
            .event_format("sched", "sched_process_fork")
            .context("--cgroup follows forks with it")?;
        let fields = ForkFields::from_format(&format)?;
        inst.enable_event("sched", "sched_process_fork")?;
        self.forks = Some(fields);
        self.members = self.read_members()?;
        for tid in self.members.clone() {
            self.place(tid, true);
        }
        self.previous = self.members.clone();
        self.looked_up.clear();
        self.last = Instant::now();
        Ok(())
    }

    /// Takes a raw event (payload from `common_type` on): `true` when it was a
    /// `sched_process_fork` of [`Scope::follow_forks`], learned here (the caller does
    /// not decode it further). A child of a member (in the cgroup as last read, by /proc,
    /// or itself placed by its fork) is a member; a child of anyone else is not; a child
    /// of a parent that cannot be placed is left to [`Scope::holds`]'s other means.
    #[inline]
    pub fn observe(&mut self, payload: &[u8]) -> bool {
        let Some((parent, child)) = self.forks.as_ref().and_then(|f| f.decode(payload)) else {
            return false;
        };
        match self.live_member(parent).or_else(|| self.was_member(parent)) {
            // A reused thread ID: the newest fork is the one that counts.
            Some(m) => self.place(child, m),
            // A parent gone and never placed: its child is not placed by its fork.
            None => {
                self.placed.remove(&child);
            }
        }
        // A cached answer for the new thread's ID is about an earlier task.
        self.looked_up.remove(&child);
        true
    }

    /// One turn of a tool's read loop that filters in the kernel ([`Scope::apply`]):
    /// keeps the kernel's list current ([`Scope::refresh`]; `function` for the function
    /// tracers) and, when the cgroup is gone, says so and requests the end of the run so
    /// that the next turn, the last, drains what is left. Nothing is done on the last turn.
    pub fn turn(
        &mut self,
        inst: &Instance,
        last: bool,
        shutdown: &Shutdown,
        tool: &str,
        function: bool,
    ) -> Result<()> {
        self.turn_in(inst.dir(), lists(function), last, shutdown, tool)
    }

    /// [`Scope::turn`] for the PID list `files` of the tracing directory `dir` (the
    /// top level, after [`Scope::seed_function`]).
    pub fn turn_in(
        &mut self,
        dir: &Path,
        files: &[&str],
        last: bool,
        shutdown: &Shutdown,
        tool: &str,
    ) -> Result<()> {
        if last || self.last.elapsed() < POLL {
            return Ok(());
        }
        if self.refresh_in(dir, files)? == Refresh::Gone && !shutdown.requested() {
            self.say_gone(tool);
            shutdown.request();
        }
        Ok(())
    }

    /// Sleeps `secs` (a buffered `-d` run) while keeping the kernel's lists current, a
    /// [`Scope::turn`] every [`POLL`]; returns early when a shutdown is requested (a
    /// signal, or the cgroup removed: then it was said on stderr).
    pub fn sleep(
        &mut self,
        inst: &Instance,
        shutdown: &Shutdown,
        secs: f64,
        tool: &str,
        function: bool,
    ) -> Result<()> {
        self.sleep_in(inst.dir(), lists(function), shutdown, secs, tool)
    }

    /// [`Scope::sleep`] for the PID list `files` of the tracing directory `dir` (the
    /// top level, after [`Scope::seed_function`]).
    pub fn sleep_in(
        &mut self,
        dir: &Path,
        files: &[&str],
        shutdown: &Shutdown,
        secs: f64,
        tool: &str,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let now = Instant::now();
            if shutdown.requested() || now >= deadline {
                return Ok(());
            }
            if shutdown.sleep(POLL.min(deadline - now)) {
                return Ok(());
            }
            self.turn_in(dir, files, false, shutdown, tool)?;
        }
    }

    /// [`Scope::turn`] for tools that decide membership in user space ([`Scope::poll`]
    /// and [`Scope::holds`], no kernel list).
    pub fn poll_turn(&mut self, last: bool, shutdown: &Shutdown, tool: &str) {
        if !last && self.poll() == Refresh::Gone && !shutdown.requested() {
            self.say_gone(tool);
            shutdown.request();
        }
    }

    /// Says on stderr how many events were left out because their task exited before
    /// its cgroup could be read (user-space scope only; nothing when none were).
    pub fn say_unknown(&self, tool: &str, what: &str) {
        if self.unknown > 0 {
            eprintln!(
                "note: {} {what} were left out: their tasks exited before {tool} could read their cgroup ({tool} decides --cgroup in user space; short-lived tasks may be missed)",
                self.unknown
            );
        }
    }

    /// Says on stderr that the cgroup is gone, for `tool`.
    pub fn say_gone(&self, tool: &str) {
        eprintln!(
            "{tool}: the {} was removed ({} is gone): ending the run",
            self.label,
            self.cgroup.dir.display()
        );
    }
}

/// The PID lists of an instance that a scope keeps current: `set_event_pid`, and
/// `set_ftrace_pid` too for the function tracers.
fn lists(function: bool) -> &'static [&'static str] {
    if function {
        &["set_event_pid", "set_ftrace_pid"]
    } else {
        &["set_event_pid"]
    }
}

/// Writes `tids` (truncating) through `write`; an empty set as a PID no task has
/// ([`NO_TASK`], or `pid_max - 1` where the kernel's list is a bitmap of `pid_max` bits
/// and refuses larger PIDs), never as an empty list, which would mean every task.
fn write_list(tids: &BTreeSet<u32>, mut write: impl FnMut(&str) -> Result<()>) -> Result<()> {
    if tids.is_empty() {
        if write(&NO_TASK.to_string()).is_ok() {
            return Ok(());
        }
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(32768);
        write(&pid_max.saturating_sub(1).to_string())
    } else {
        let list: Vec<String> = tids.iter().map(u32::to_string).collect();
        write(&list.join(" "))
    }
}

/// Appends `list` to the PID list file `file` of the tracing directory `dir` (no
/// `O_TRUNC`: the kernel adds).
fn append(dir: &Path, file: &str, list: &str) -> Result<()> {
    let path = dir.join(file);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(list.as_bytes())
        .with_context(|| format!("adding {list} to {}", path.display()))
}

/// The v1 controllers (and `name=`) of the hierarchy holding `cg`, sorted; empty for v2.
fn controllers_of(cg: &Cgroup) -> Vec<String> {
    if cg.version == Version::V2 {
        return Vec::new();
    }
    let mounts = cgroup::mounts().unwrap_or_default();
    let mut best: Option<&cgroup::Mount> = None;
    for m in &mounts {
        if m.version == Version::V1
            && cg.dir.starts_with(&m.dir)
            && best.is_none_or(|b| m.dir.as_os_str().len() > b.dir.as_os_str().len())
        {
            best = Some(m);
        }
    }
    let mut c = best.map(|m| m.options.clone()).unwrap_or_default();
    c.sort();
    c
}

/// The task's path in the hierarchy of `version`/`controllers`, from /proc/PID/cgroup
/// text.
pub fn path_in(text: &str, version: Version, controllers: &[String]) -> Option<String> {
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let hit = match version {
            Version::V2 => id == "0" && ctrl.is_empty(),
            Version::V1 => {
                let mut c: Vec<&str> = ctrl.split(',').filter(|s| !s.is_empty()).collect();
                c.sort_unstable();
                !c.is_empty() && c == controllers.iter().map(String::as_str).collect::<Vec<_>>()
            }
        };
        if hit {
            return Some(path.to_string());
        }
    }
    None
}

/// Whether cgroup path `p` is `root` or below it.
fn under(p: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty() || p == root || p.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

/// The extra columns (`--show-cgroup`, `--show-nspid`), looked up per thread in /proc
/// when a row is printed (cached for at most a second; a thread gone by then shows `-`).
#[derive(Debug, Clone)]
pub struct Columns {
    cgroup: bool,
    nspid: bool,
    /// With a scope: the hierarchy to name cgroups from.
    hierarchy: Option<(Version, Vec<String>)>,
    cache: HashMap<u32, (String, String)>,
    /// When the cache was last emptied: entries live at most a second (a task moved to
    /// another cgroup, a reused PID).
    cleared: Instant,
}

impl Columns {
    /// Names cgroups from the scope's hierarchy (a v1 scope shows v1 paths).
    pub fn in_scope_of(&mut self, scope: &Scope) {
        self.hierarchy = Some((scope.cgroup.version, scope.controllers.clone()));
    }

    /// Whether any extra column is on.
    pub fn any(&self) -> bool {
        self.cgroup || self.nspid
    }

    /// The header text of the extra columns, each followed by a space (empty if none).
    pub fn header(&self) -> String {
        let mut s = String::new();
        if self.cgroup {
            s.push_str(&format!("{:<12} ", "CGROUP"));
        }
        if self.nspid {
            s.push_str(&format!("{:<6} ", "NSPID"));
        }
        s
    }

    /// Appends thread `tid`'s extra columns, each followed by a space.
    pub fn write(&mut self, out: &mut Vec<u8>, tid: u32) {
        if !self.any() {
            return;
        }
        if self.cache.len() > 50_000 || self.cleared.elapsed() >= Duration::from_secs(1) {
            self.cache.clear();
            self.cleared = Instant::now();
        }
        let (cgroup, nspid) = (self.cgroup, self.nspid);
        let hierarchy = self.hierarchy.clone();
        let (name, ns) = self.cache.entry(tid).or_insert_with(|| {
            let name = if cgroup {
                let path = match &hierarchy {
                    Some((v, c)) => std::fs::read_to_string(format!("/proc/{tid}/cgroup"))
                        .ok()
                        .and_then(|t| path_in(&t, *v, c)),
                    None => cgroup::of_task(tid),
                };
                path.map_or("-".to_string(), |p| cgroup::display_name(&p))
            } else {
                String::new()
            };
            let ns = if nspid {
                cgroup::ns_pid(tid).map_or("-".to_string(), |n| n.to_string())
            } else {
                String::new()
            };
            (name, ns)
        });
        if cgroup {
            let start = out.len();
            perf_tools_core::output::escape_into(out, name.as_bytes());
            for _ in (out.len() - start)..12 {
                out.push(b' ');
            }
            out.push(b' ');
        }
        if nspid {
            let _ = write!(out, "{ns:<6} ");
        }
    }

    /// Forgets cached names (call when thread IDs may have been reused).
    pub fn forget(&mut self) {
        self.cache.clear();
    }
}

/// [`CgroupArgs::reject_with_target`] of a tool with the column flags.
pub fn reject_with_target(args: &ScopeArgs, pid: Option<u32>, tid: Option<u32>) -> Result<()> {
    args.target.reject_with_target(pid, tid)
}

/// Rejects scope options a tool does not support yet (a usage error).
pub fn reject_columns(args: &ScopeArgs, tool: &str) -> Result<()> {
    if args.show_cgroup || args.show_nspid {
        bail!("{tool} does not support --show-cgroup/--show-nspid yet: its rows are the kernel's text");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `sched_process_fork` payload of `format` with the two PIDs in place.
    fn fork_payload(format: &EventFormat, parent: i32, child: i32) -> Vec<u8> {
        let mut p = vec![0u8; 64];
        p[..2].copy_from_slice(&format.id.to_ne_bytes());
        let at = |name: &str| format.field(name).unwrap().offset;
        p[at("parent_pid")..][..4].copy_from_slice(&parent.to_ne_bytes());
        p[at("child_pid")..][..4].copy_from_slice(&child.to_ne_bytes());
        p
    }

    #[test]
    fn forks_are_decoded_by_the_running_kernels_layout() {
        // 5.10: char[16] comms, PIDs at 24 and 44; 6.18: __data_loc comms, at 12 and 20.
        for (kernel, parent_at) in [("5.10", 24), ("6.18", 12)] {
            let text = std::fs::read_to_string(format!(
                "{}/../../tests/fixtures/formats/{kernel}/sched_process_fork",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let format = EventFormat::parse(&text).unwrap();
            assert_eq!(format.field("parent_pid").unwrap().offset, parent_at);
            let f = ForkFields::from_format(&format).unwrap();
            let p = fork_payload(&format, 4321, 4400);
            assert_eq!(f.decode(&p), Some((4321, 4400)), "{kernel}");
            // Another event, a truncated one, a negative PID: not a fork to learn.
            let mut other = p.clone();
            other[..2].copy_from_slice(&format.id.wrapping_add(1).to_ne_bytes());
            assert_eq!(f.decode(&other), None);
            assert_eq!(f.decode(&p[..parent_at]), None);
            assert_eq!(f.decode(&fork_payload(&format, -1, 5)), None);
        }
    }

    #[test]
    fn exited_threads_are_placed_by_what_was_known_of_them() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/formats/6.18/sched_process_fork"
        ))
        .unwrap();
        let format = EventFormat::parse(&text).unwrap();
        let cg = Cgroup {
            dir: "/sys/fs/cgroup/ptrs-none".into(),
            version: Version::V2,
            path: "/ptrs-none".into(),
        };
        let mut s = Scope::new(cg, "cgroup /ptrs-none".into());
        s.forks = Some(ForkFields::from_format(&format).unwrap());
        // Thread IDs no task has (above PID_MAX_LIMIT): /proc knows none of them.
        let (member, child, grandchild, stranger, its_child) =
            (4_200_001, 4_200_002, 4_200_003, 4_200_004, 4_200_005);
        s.members.insert(member);
        s.place(member, true);
        s.place(stranger, false);
        for (parent, c) in [(member, child), (child, grandchild), (stranger, its_child)] {
            assert!(s.observe(&fork_payload(&format, parent as i32, c as i32)));
        }
        // Two polls since, neither listing the member (it exited).
        s.members.clear();
        s.previous.clear();
        s.looked_up.clear();
        assert!(s.holds(member) && s.holds(child) && s.holds(grandchild));
        assert!(!s.holds(stranger) && !s.holds(its_child));
        assert_eq!(s.unknown, 0);
        // The child's ID reused by a fork of the stranger: the newest fork counts.
        assert!(s.observe(&fork_payload(&format, stranger as i32, child as i32)));
        assert!(!s.holds(child));
        // A fork by a parent nothing placed leaves its child unplaced: counted.
        assert!(s.observe(&fork_payload(&format, 4_200_100, 4_200_101)));
        assert!(!s.holds(4_200_101));
        assert_eq!(s.unknown, 1);
        // Not a fork: left to the caller.
        assert!(!s.observe(&[0xff, 0xff, 0, 0]));
    }

    const PROC: &str =
        "12:pids:/t1\n4:cpu,cpuacct:/\n1:name=systemd:/user.slice\n0::/scope-a/sub\n";

    #[test]
    fn the_path_comes_from_the_right_hierarchy() {
        assert_eq!(
            path_in(PROC, Version::V2, &[]).as_deref(),
            Some("/scope-a/sub")
        );
        assert_eq!(
            path_in(PROC, Version::V1, &["pids".into()]).as_deref(),
            Some("/t1")
        );
        assert_eq!(
            path_in(PROC, Version::V1, &["cpu".into(), "cpuacct".into()]).as_deref(),
            Some("/")
        );
        assert_eq!(
            path_in(PROC, Version::V1, &["name=systemd".into()]).as_deref(),
            Some("/user.slice")
        );
        assert_eq!(path_in(PROC, Version::V1, &["memory".into()]), None);
    }

    #[test]
    fn under_is_by_component() {
        assert!(under("/scope-a/sub", "/scope-a"));
        assert!(under("/scope-a", "/scope-a"));
        assert!(!under("/scope-ab", "/scope-a"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn the_flags_parse_and_conflict() {
        use clap::Parser;
        #[derive(Parser, Debug)]
        struct T {
            #[command(flatten)]
            scope: ScopeArgs,
        }
        let t = T::try_parse_from(["t", "--cgroup", "/x", "--show-cgroup"]).unwrap();
        assert_eq!(t.scope.target.cgroup.as_deref(), Some("/x"));
        assert!(t.scope.show_cgroup && !t.scope.show_nspid && t.scope.scoped());
        let e = T::try_parse_from(["t", "--cgroup", "/x", "--container", "abcd"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let c = ScopeArgs {
            show_cgroup: true,
            show_nspid: true,
            ..Default::default()
        }
        .columns();
        assert_eq!(c.header(), "CGROUP       NSPID  ");
        let a = CgroupArgs {
            cgroup: Some("/web".into()),
            container: None,
        };
        assert_eq!(a.banner_text(), " for cgroup /web");
        let a = CgroupArgs {
            cgroup: None,
            container: Some("3f2a".into()),
        };
        assert_eq!(a.banner_text(), " for container 3f2a");
        assert_eq!(CgroupArgs::default().banner_text(), "");
        let e = CgroupArgs {
            cgroup: Some("/web".into()),
            container: None,
        }
        .reject_with_target(Some(1), None)
        .unwrap_err();
        assert!(e.to_string().contains("cannot be combined with -p"), "{e}");

        assert_eq!(ScopeArgs::default().columns().header(), "");
    }
}
