//! From events to rows: an exec is paired with the arguments its thread's entry probe
//! fetched just before, and with the fork that created it (the parent); what the events
//! do not carry is read from /proc right after, and such a read is used only if nothing
//! that could make it wrong (an exit or another exec of that pid, lost events) happened
//! between the event and the read.

use std::collections::{HashMap, HashSet};

use crate::source::{Ev, Fetched, Source, SRC_PROC};

/// The times of the events that can make a later read of /proc wrong: each pid's execs
/// and exits, every exit, and the gaps where events were lost. Recorded as the events
/// are read from the buffers (before the merge), so that a read can be checked against
/// everything that happened up to it.
#[derive(Debug)]
pub struct Changes {
    by_pid: HashMap<u32, Vec<u64>>,
    exits: Vec<u64>,
    gaps: Vec<(u64, u64)>,
    /// Every event up to this time has been noted: a read of /proc after it cannot be
    /// confirmed (e.g. a read after tracing was turned off). Default: no limit.
    pub known_until: u64,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            by_pid: HashMap::new(),
            exits: Vec::new(),
            gaps: Vec::new(),
            known_until: u64::MAX,
        }
    }
}

impl Changes {
    /// Notes an event (read from the buffers at `ts`).
    pub fn note(&mut self, ts: u64, ev: &Ev) {
        match ev {
            Ev::Exec { pid, old_pid, .. } => {
                self.by_pid.entry(*pid).or_default().push(ts);
                if old_pid != pid {
                    self.by_pid.entry(*old_pid).or_default().push(ts);
                }
            }
            Ev::Exit { pid } => {
                self.by_pid.entry(*pid).or_default().push(ts);
                self.exits.push(ts);
            }
            _ => {}
        }
    }

    /// Notes events lost between `after` and `before`.
    pub fn gap(&mut self, after: u64, before: u64) {
        self.gaps.push((after, before));
    }

    fn gap_in(&self, from: u64, to: u64) -> bool {
        to > self.known_until || self.gaps.iter().any(|&(a, b)| a <= to && b >= from)
    }

    /// True if pid `pid` exec'd or exited after `from` and up to `to`, or events were
    /// lost meanwhile.
    pub fn changed(&self, pid: u32, from: u64, to: u64) -> bool {
        self.gap_in(from, to)
            || self
                .by_pid
                .get(&pid)
                .is_some_and(|v| v.iter().any(|&t| t > from && t <= to))
    }

    /// True if `pid` exited after `from` and up to `to`.
    pub fn exited(&self, pid: u32, from: u64, to: u64) -> bool {
        self.by_pid
            .get(&pid)
            .is_some_and(|v| v.iter().any(|&t| t > from && t <= to))
    }

    /// True if any thread exited after `from` and up to `to`, or events were lost.
    pub fn any_exit(&self, from: u64, to: u64) -> bool {
        self.gap_in(from, to) || self.exits.iter().any(|&t| t > from && t <= to)
    }

    /// Forgets what happened before `ts`.
    pub fn trim(&mut self, ts: u64) {
        self.by_pid.retain(|_, v| {
            v.retain(|&t| t >= ts);
            !v.is_empty()
        });
        self.exits.retain(|&t| t >= ts);
        self.gaps.retain(|&(_, b)| b >= ts);
    }
}

/// An exec to be shown, before what the events lack is read from /proc.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Time of the exec.
    pub ts: u64,
    /// Its pid.
    pub pid: u32,
    /// The file name given to exec.
    pub filename: Vec<u8>,
    /// What the entry probe fetched (`None`: no probe event for it).
    pub fetched: Option<Fetched>,
    /// The thread that forked it and when, if that fork was traced.
    pub parent: Option<(u32, u64)>,
    /// That thread's process, if the events tell (its creation or exec was traced).
    pub parent_tgid: Option<u32>,
}

/// `CLONE_THREAD`: the new task is a thread of its creator's process.
const CLONE_THREAD: u64 = 0x0001_0000;
/// `CLONE_PARENT`: the new task's parent is its creator's parent.
const CLONE_PARENT: u64 = 0x0000_8000;

/// The events' pairing state.
#[derive(Debug, Default)]
pub struct Execs {
    /// Child -> (the thread that forked it, when, that thread's process if known then).
    forks: HashMap<u32, (u32, u64, Option<u32>)>,
    /// The process of threads whose creation (or exec) was traced.
    tgid_of: HashMap<u32, u32>,
    /// Tasks created with CLONE_PARENT: their parent is not the thread that forked.
    clone_parent: HashSet<u32>,
    pending: HashMap<u32, (u64, Fetched)>,
    seen: HashSet<u32>,
    /// Show re-execs (`-r`).
    pub reexec: bool,
    /// Execs not shown because they were re-execs.
    pub reexecs: u64,
}

impl Execs {
    /// Handles one event, in time order; returns the exec to show, if it is one.
    pub fn event(&mut self, ts: u64, ev: Ev) -> Option<Draft> {
        match ev {
            Ev::Fork { parent, child } => {
                // The forking thread's process as the events know it now: it may exit
                // before its child execs.
                let tgid = self.tgid_of.get(&parent).copied();
                self.forks.insert(child, (parent, ts, tgid));
                self.seen.remove(&child);
                self.pending.remove(&child);
            }
            Ev::NewTask {
                parent,
                child,
                flags,
            } => {
                let tgid = if flags & CLONE_THREAD != 0 {
                    self.tgid_of.get(&parent).copied()
                } else {
                    Some(child)
                };
                match tgid {
                    Some(t) => self.tgid_of.insert(child, t),
                    None => self.tgid_of.remove(&child),
                };
                if flags & CLONE_PARENT != 0 {
                    self.clone_parent.insert(child);
                } else {
                    self.clone_parent.remove(&child);
                }
            }
            Ev::Exit { pid } => {
                self.forks.remove(&pid);
                self.pending.remove(&pid);
                self.tgid_of.remove(&pid);
                self.clone_parent.remove(&pid);
            }
            Ev::Args { tid, args } => {
                self.pending.insert(tid, (ts, args));
            }
            Ev::Gap { until } => {
                // Lost events may hold exits (the pid reused since), forks and entry
                // probes: nothing remembered from before the gap is used after it.
                self.forks.retain(|_, (_, t, _)| *t > until);
                self.pending.retain(|_, (t, _)| *t > until);
                self.seen.clear();
                self.tgid_of.clear();
                self.clone_parent.clear();
            }
            Ev::Exec {
                pid,
                old_pid,
                filename,
            } => {
                let fetched = self.pending.remove(&old_pid).map(|(_, f)| f);
                let fork = self
                    .forks
                    .get(&old_pid)
                    .or_else(|| self.forks.get(&pid))
                    .copied()
                    .filter(|_| {
                        !self.clone_parent.contains(&old_pid) && !self.clone_parent.contains(&pid)
                    });
                let parent = fork.map(|(t, ts, _)| (t, ts));
                let parent_tgid = fork.and_then(|(_, _, g)| g);
                // After an exec the process is `pid`, its only thread.
                self.tgid_of.remove(&old_pid);
                self.tgid_of.insert(pid, pid);
                if old_pid != pid {
                    if let Some(f) = fork {
                        self.forks.insert(pid, f);
                    }
                }
                if !self.seen.insert(pid) && !self.reexec {
                    self.reexecs += 1;
                    return None;
                }
                return Some(Draft {
                    ts,
                    pid,
                    filename,
                    fetched,
                    parent,
                    parent_tgid,
                });
            }
        }
        None
    }

    /// Forgets forks and probe events older than `ts` whose exec never came (thread
    /// creations, failed execs), keeping the tables small.
    pub fn trim(&mut self, ts: u64) {
        self.forks.retain(|_, (_, t, _)| *t >= ts);
        self.pending.retain(|_, (t, _)| *t >= ts);
        if self.seen.len() > 1_000_000 {
            self.seen.clear();
        }
        if self.tgid_of.len() > 1_000_000 {
            self.tgid_of.clear();
            self.clone_parent.clear();
        }
    }
}

/// ARGS of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsText {
    /// The arguments, and whether there were more than shown.
    Known(Vec<Vec<u8>>, bool),
    /// The process was gone before its arguments could be read: the file name, then
    /// `[exited]`.
    Exited,
    /// The arguments cannot be known (lost events, a re-exec before the read): the file
    /// name, then `[?]`.
    Unknown,
}

/// One row, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Time of the exec.
    pub ts: u64,
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid (`None`: not known, printed as 0 as the original does).
    pub ppid: Option<u32>,
    /// The file name given to exec.
    pub filename: Vec<u8>,
    /// ARGS.
    pub args: ArgsText,
    /// Where ARGS came from (SRC with `-v`).
    pub src: &'static str,
}

/// A value read from /proc, to be checked once the events up to the read are in.
#[derive(Debug, Clone)]
pub struct Read<T> {
    value: Option<T>,
    read_at: u64,
}

/// Reads that a draft needs.
#[derive(Debug, Clone)]
pub struct Pending {
    draft: Draft,
    cmdline: Option<Read<Vec<u8>>>,
    ppid: Read<u32>,
    /// The ppid came from the fork's parent thread's Tgid.
    from_fork: bool,
}

/// Where /proc is (a test may point elsewhere).
pub trait Procfs {
    /// `/proc/PID/cmdline`.
    fn cmdline(&self, pid: u32) -> Option<Vec<u8>>;
    /// A field of `/proc/PID/status` (`Tgid`, `PPid`).
    fn status(&self, pid: u32, field: &str) -> Option<u32>;
}

/// The real /proc.
pub struct RealProc;

impl Procfs for RealProc {
    fn cmdline(&self, pid: u32) -> Option<Vec<u8>> {
        std::fs::read(format!("/proc/{pid}/cmdline")).ok()
    }
    fn status(&self, pid: u32, field: &str) -> Option<u32> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let head = format!("{field}:");
        text.lines()
            .find_map(|l| l.strip_prefix(&head))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// The process (Tgid) of threads that forked, as read from /proc, and when: a thread's
/// process does not change while it lives, so a read is reused for its later forks as
/// long as [`Changes`] shows no exit or exec of that thread between the read and the
/// fork ([`resolve`] checks the whole window again). Entries live [`TGID_TTL`].
#[derive(Debug, Default)]
pub struct Tgids(HashMap<u32, (u32, u64)>);

/// How long a read of a thread's Tgid is reused (well within what [`Changes`] keeps).
pub const TGID_TTL: u64 = 5_000_000_000;

impl Tgids {
    /// Forgets reads made before `ts`.
    pub fn trim(&mut self, ts: u64) {
        self.0.retain(|_, (_, at)| *at >= ts);
    }
}

/// Does the /proc reads `draft` needs, now (as soon as its event was read).
pub fn read_proc(
    draft: Draft,
    proc: &impl Procfs,
    tgids: &mut Tgids,
    changes: &Changes,
) -> Pending {
    let cmdline = match &draft.fetched {
        Some(Fetched::Args(..)) => None,
        _ => {
            let value = proc.cmdline(draft.pid);
            Some(Read {
                value,
                read_at: perf_tools_core::clock::monotonic_ns(),
            })
        }
    };
    let ppid = match draft.parent {
        Some((tid, fork_ts)) => match tgids.0.get(&tid) {
            Some(&(tgid, at))
                if fork_ts.saturating_sub(at) < TGID_TTL
                    && !changes.changed(tid, at.min(fork_ts), at.max(fork_ts)) =>
            {
                Read {
                    value: Some(tgid),
                    read_at: at,
                }
            }
            _ => {
                let value = proc.status(tid, "Tgid");
                let read_at = perf_tools_core::clock::monotonic_ns();
                if let Some(v) = value {
                    tgids.0.insert(tid, (v, read_at));
                }
                Read { value, read_at }
            }
        },
        None => {
            let value = proc.status(draft.pid, "PPid");
            Read {
                value,
                read_at: perf_tools_core::clock::monotonic_ns(),
            }
        }
    };
    let from_fork = draft.parent.is_some();
    Pending {
        draft,
        cmdline,
        ppid,
        from_fork,
    }
}

/// Splits a cmdline (NUL-terminated strings) into arguments.
pub fn split_cmdline(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// Resolves a draft once the events up to its reads have been read: a value read from
/// /proc is used only if nothing in `changes` could have made it wrong. `argc`: the
/// arguments shown after argv[0] (`-a`); `source`: the run's.
pub fn resolve(p: Pending, changes: &Changes, argc: usize, source: Source) -> Row {
    let d = p.draft;
    let (args, src) = match (&d.fetched, &p.cmdline) {
        (Some(Fetched::Args(a, more)), _) => (ArgsText::Known(a.clone(), *more), source.tag()),
        (_, Some(r)) => {
            let args = match &r.value {
                // A vanished process's cmdline cannot be read, a zombie's is empty:
                // either way the process of the exec is gone (even if its pid was
                // reused meanwhile, by one that is gone too).
                None => ArgsText::Exited,
                Some(raw) if raw.is_empty() => ArgsText::Exited,
                _ if changes.exited(d.pid, d.ts, r.read_at.min(changes.known_until)) => {
                    ArgsText::Exited
                }
                _ if changes.changed(d.pid, d.ts, r.read_at) => ArgsText::Unknown,
                Some(raw) => {
                    let mut a = split_cmdline(raw);
                    let more = a.len() > argc + 1;
                    a.truncate(argc + 1);
                    ArgsText::Known(a, more)
                }
            };
            (args, SRC_PROC)
        }
        (_, None) => (ArgsText::Unknown, SRC_PROC),
    };
    let ppid = match (p.ppid.value, p.from_fork, d.parent) {
        _ if d.parent_tgid.is_some() => d.parent_tgid,
        // The forking thread's process: unless that thread exited or exec'd (its id
        // could have been reused) between the fork and the read.
        (Some(v), true, Some((tid, fork_ts)))
            if !changes.changed(
                tid,
                fork_ts.min(p.ppid.read_at),
                fork_ts.max(p.ppid.read_at),
            ) =>
        {
            Some(v)
        }
        // The parent now: unless the process changed, or any process exited (its
        // children are given to another) before the read.
        (Some(v), false, _)
            if !changes.changed(d.pid, d.ts, p.ppid.read_at)
                && !changes.any_exit(d.ts, p.ppid.read_at) =>
        {
            Some(v)
        }
        _ => None,
    };
    Row {
        ts: d.ts,
        pid: d.pid,
        ppid,
        filename: d.filename,
        args,
        src,
    }
}

/// The process name an exec gives (the file name's last part, at most 15 bytes), which
/// the name filter matches.
pub fn comm_of(filename: &[u8]) -> &[u8] {
    let base = filename.rsplit(|&b| b == b'/').next().unwrap_or(filename);
    &base[..base.len().min(15)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct FakeProc(HashMap<u32, Vec<u8>>, HashMap<(u32, String), u32>);
    impl Procfs for FakeProc {
        fn cmdline(&self, pid: u32) -> Option<Vec<u8>> {
            self.0.get(&pid).cloned()
        }
        fn status(&self, pid: u32, field: &str) -> Option<u32> {
            self.1.get(&(pid, field.to_string())).copied()
        }
    }

    fn exec(pid: u32) -> Ev {
        Ev::Exec {
            pid,
            old_pid: pid,
            filename: b"/bin/ls".to_vec(),
        }
    }

    #[test]
    fn an_exec_is_paired_with_its_args_and_its_forks_parent_process() {
        let mut e = Execs::default();
        let mut ch = Changes::default();
        assert!(e
            .event(
                1,
                Ev::Fork {
                    parent: 11,
                    child: 20
                }
            )
            .is_none());
        let args = Fetched::Args(vec![b"ls".to_vec(), b"-l".to_vec()], false);
        e.event(2, Ev::Args { tid: 20, args });
        let ev = exec(20);
        ch.note(3, &ev);
        let d = e.event(3, ev).unwrap();
        let proc = FakeProc(HashMap::new(), HashMap::from([((11, "Tgid".into()), 10)]));
        let r = resolve(
            read_proc(d, &proc, &mut Tgids::default(), &ch),
            &ch,
            8,
            Source::Eprobe,
        );
        assert_eq!(r.ppid, Some(10));
        assert_eq!(
            r.args,
            ArgsText::Known(vec![b"ls".to_vec(), b"-l".to_vec()], false)
        );
        assert_eq!(r.src, "eprobe");
        // A re-exec is shown only with -r.
        assert!(e.event(4, exec(20)).is_none());
        assert_eq!(e.reexecs, 1);
        e.reexec = true;
        assert!(e.event(5, exec(20)).is_some());
    }

    #[test]
    fn proc_reads_are_used_only_if_nothing_changed_before_them() {
        let mut e = Execs::default();
        let mut ch = Changes::default();
        let ev = exec(30);
        ch.note(10, &ev);
        let d = e.event(10, ev).unwrap();
        let proc = FakeProc(
            HashMap::from([(30, b"ls\0-l\0a\0".to_vec())]),
            HashMap::from([((30, "PPid".into()), 7)]),
        );
        let p = read_proc(d, &proc, &mut Tgids::default(), &ch);
        let r = resolve(p.clone(), &ch, 1, Source::Proc);
        assert_eq!(
            r.args,
            ArgsText::Known(vec![b"ls".to_vec(), b"-l".to_vec()], true)
        );
        assert_eq!((r.ppid, r.src), (Some(7), "proc"));
        // The process exited (its pid may be another's now) before the read.
        let mut gone = Changes::default();
        gone.note(10, &exec(30));
        gone.note(11, &Ev::Exit { pid: 30 });
        let r = resolve(p.clone(), &gone, 8, Source::Proc);
        assert_eq!((r.args, r.ppid), (ArgsText::Exited, None));
        // Events were lost meanwhile.
        let mut lost = Changes::default();
        lost.gap(9, 12);
        let r = resolve(p.clone(), &lost, 8, Source::Proc);
        assert_eq!((r.args, r.ppid), (ArgsText::Unknown, None));
        // Read after the last events were noted (tracing was off): not confirmed.
        let late = Changes {
            known_until: 10,
            ..Changes::default()
        };
        let r = resolve(p, &late, 8, Source::Proc);
        assert_eq!((r.args, r.ppid), (ArgsText::Unknown, None));
        // Nothing to read: the process is gone.
        let d = Execs::default().event(10, exec(31)).unwrap();
        let r = resolve(
            read_proc(d, &proc, &mut Tgids::default(), &ch),
            &ch,
            8,
            Source::Proc,
        );
        assert_eq!((r.args, r.ppid), (ArgsText::Exited, None));
    }

    #[test]
    fn a_parent_threads_process_is_read_once_and_reused_while_the_thread_lives() {
        let proc = FakeProc(HashMap::new(), HashMap::from([((11, "Tgid".into()), 10)]));
        let none = FakeProc(HashMap::new(), HashMap::new());
        let mut tgids = Tgids::default();
        let mut ch = Changes::default();
        let now = perf_tools_core::clock::monotonic_ns();
        let draft = |fork_ts: u64, pid: u32| Draft {
            ts: fork_ts + 1,
            pid,
            filename: b"/bin/ls".to_vec(),
            fetched: Some(Fetched::Args(vec![b"ls".to_vec()], false)),
            parent: Some((11, fork_ts)),
            parent_tgid: None,
        };
        let r = resolve(
            read_proc(draft(now, 20), &proc, &mut tgids, &ch),
            &ch,
            8,
            Source::Eprobe,
        );
        assert_eq!(r.ppid, Some(10));
        // Reused: /proc is not read again.
        let later = perf_tools_core::clock::monotonic_ns();
        let r = resolve(
            read_proc(draft(later, 21), &none, &mut tgids, &ch),
            &ch,
            8,
            Source::Eprobe,
        );
        assert_eq!(r.ppid, Some(10));
        // The thread exited after the read: its id may be another thread's now.
        ch.note(later + 2, &Ev::Exit { pid: 11 });
        let r = resolve(
            read_proc(draft(later + 3, 22), &none, &mut tgids, &ch),
            &ch,
            8,
            Source::Eprobe,
        );
        assert_eq!(r.ppid, None);
    }

    #[test]
    fn the_parents_process_comes_from_the_events_when_they_tell() {
        let none = FakeProc(HashMap::new(), HashMap::new());
        let ch = Changes::default();
        let mut e = Execs::default();
        // Process 10 (created during tracing) starts thread 11; 11 forks 20; 20 execs.
        e.event(
            1,
            Ev::NewTask {
                parent: 9,
                child: 10,
                flags: 0x11,
            },
        );
        e.event(
            2,
            Ev::NewTask {
                parent: 10,
                child: 11,
                flags: CLONE_THREAD | 0x100,
            },
        );
        e.event(
            3,
            Ev::NewTask {
                parent: 11,
                child: 20,
                flags: 0x11,
            },
        );
        e.event(
            3,
            Ev::Fork {
                parent: 11,
                child: 20,
            },
        );
        let d = e.event(4, exec(20)).unwrap();
        assert_eq!(d.parent_tgid, Some(10));
        let r = resolve(
            read_proc(d, &none, &mut Tgids::default(), &ch),
            &ch,
            8,
            Source::Proc,
        );
        assert_eq!(r.ppid, Some(10));
        // CLONE_PARENT: the forking thread is not the parent.
        e.event(
            5,
            Ev::NewTask {
                parent: 11,
                child: 21,
                flags: CLONE_PARENT,
            },
        );
        e.event(
            5,
            Ev::Fork {
                parent: 11,
                child: 21,
            },
        );
        let d = e.event(6, exec(21)).unwrap();
        assert_eq!((d.parent, d.parent_tgid), (None, None));
        // A lost stretch of events forgets what the events told.
        e.event(
            7,
            Ev::NewTask {
                parent: 11,
                child: 22,
                flags: 0x11,
            },
        );
        e.event(
            7,
            Ev::Fork {
                parent: 11,
                child: 22,
            },
        );
        e.event(8, Ev::Gap { until: 8 });
        let d = e.event(9, exec(22)).unwrap();
        assert_eq!((d.parent, d.parent_tgid), (None, None));
    }

    #[test]
    fn nothing_is_paired_across_a_gap() {
        let mut e = Execs::default();
        e.event(
            1,
            Ev::Fork {
                parent: 11,
                child: 20,
            },
        );
        e.event(
            2,
            Ev::Args {
                tid: 20,
                args: Fetched::Args(vec![b"x".to_vec()], false),
            },
        );
        e.event(3, Ev::Gap { until: 4 });
        let d = e.event(5, exec(20)).unwrap();
        assert_eq!((d.fetched, d.parent), (None, None));
    }

    #[test]
    fn comm_is_the_base_name_cut_at_15_bytes() {
        assert_eq!(comm_of(b"/usr/bin/true"), b"true");
        assert_eq!(comm_of(b"./a-very-long-program-name"), b"a-very-long-pro");
        assert_eq!(comm_of(b"sh"), b"sh");
    }
}
