//! The pairing of each open's name with its result, and what is known about threads:
//! their process (fd table) and name.

use std::collections::HashMap;

use perf_tools_core::target;

/// A row waiting for its FILE (and perhaps its COMM) to be resolved at the end of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draft {
    /// Time of the open's return.
    pub ts: u64,
    /// The process name, if known yet.
    pub comm: Option<Vec<u8>>,
    /// A name from the probe that did not look like one (some kernels decode `$comm`
    /// differently): used only if /proc no longer knows the thread.
    pub probe_comm: Option<Vec<u8>>,
    /// The thread that opened.
    pub tid: u32,
    /// The syscall's return value: an fd or `-errno`.
    pub ret: i64,
    /// The file name the source read, if it read one.
    pub name: Option<Vec<u8>>,
}

/// What a thread's open has shown so far: the name (and perhaps comm) from the probe.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The name the probe read.
    pub name: Option<Vec<u8>>,
    /// The process name the probe read.
    pub comm: Option<Vec<u8>>,
}

/// The pairing state: per thread, the name of the open in flight; the end of the last
/// loss of events (names recorded before it are not trusted, as their exits may have been
/// lost); and, for sources that resolve paths from /proc afterwards, the latest exit
/// per (fd table, fd), to tell when an fd was closed and reused before its path was read.
#[derive(Debug, Default)]
pub(crate) struct Opens {
    pending: HashMap<u32, Pending>,
    /// Uprobe hits not yet matched with a syscall entry: the name's address and the name.
    early: HashMap<u32, (u64, Pending)>,
    gap_until: u64,
    last_exit: HashMap<(u32, i64), u64>,
}

impl Opens {
    /// Events were lost up to `until`: forget every name remembered, and ignore names
    /// recorded up to then.
    pub fn gap(&mut self, until: u64) {
        self.pending.clear();
        self.early.clear();
        self.gap_until = self.gap_until.max(until);
    }

    /// The thread entered an open syscall with the file name at address `ptr`: forget
    /// any name remembered for it, but take the name a uprobe read just before in the C
    /// library if it was read at this very address ([`Opens::uname`]).
    pub fn enter(&mut self, tid: u32, ptr: Option<u64>) {
        self.pending.remove(&tid);
        if let Some((at, p)) = self.early.remove(&tid) {
            if ptr == Some(at) {
                self.pending.insert(tid, p);
            }
        }
    }

    /// A uprobe in the C library read the name at address `ptr` for the thread's next
    /// open syscall, at `ts`.
    pub fn uname(
        &mut self,
        ts: u64,
        tid: u32,
        ptr: Option<u64>,
        name: Option<Vec<u8>>,
        comm: Option<Vec<u8>>,
    ) {
        match ptr {
            Some(at) if ts > self.gap_until => {
                self.early.insert(tid, (at, Pending { name, comm }));
            }
            _ => {
                self.early.remove(&tid);
            }
        }
    }

    /// The probe read the name (and perhaps comm) of the thread's open at `ts`.
    pub fn name(&mut self, ts: u64, tid: u32, name: Option<Vec<u8>>, comm: Option<Vec<u8>>) {
        if ts <= self.gap_until {
            return;
        }
        self.pending.insert(tid, Pending { name, comm });
    }

    /// The thread's open returned: what its probe read (`None` when `needs_name` and the
    /// probe did not see this open, e.g. it began before tracing did).
    pub fn exit(&mut self, tid: u32, needs_name: bool) -> Option<Pending> {
        let p = self.pending.remove(&tid).unwrap_or_default();
        if needs_name && p.name.is_none() {
            return None;
        }
        Some(p)
    }

    /// Records a successful open's return of `fd` in fd table `table` at `ts` (as soon
    /// as the event is read, before any merge).
    pub fn record_fd(&mut self, table: u32, fd: i64, ts: u64) {
        let t = self.last_exit.entry((table, fd)).or_insert(ts);
        *t = (*t).max(ts);
    }

    /// True if fd `fd` of table `table`, returned at `ts`, was returned again later: the
    /// first file was closed and the fd reused.
    pub fn reused(&self, table: u32, fd: i64, ts: u64) -> bool {
        self.last_exit.get(&(table, fd)).is_some_and(|&t| t > ts)
    }

    /// Bounds the memory of fd returns: beyond 100,000 entries, forgets those older than
    /// 10 s before `watermark`.
    pub fn trim(&mut self, watermark: u64) {
        if self.last_exit.len() > 100_000 {
            let keep_from = watermark.saturating_sub(10_000_000_000);
            self.last_exit.retain(|_, t| *t >= keep_from);
        }
    }
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
pub(crate) fn tgid_cached(cache: &mut HashMap<u32, Option<u32>>, tid: u32) -> Option<u32> {
    *cache
        .entry(tid)
        .or_insert_with(|| target::Procfs::default().tgid_of(tid))
}

/// The fd table a thread uses, named by its process id (the thread's own id when /proc
/// no longer knows it).
pub(crate) fn fd_table_of(cache: &mut HashMap<u32, Option<u32>>, tid: u32) -> u32 {
    tgid_cached(cache, tid).unwrap_or(tid)
}

/// Process names of threads, for sources whose events carry none: read once per thread
/// from `/proc/TID/comm`, then followed through `task:task_rename` events (exec,
/// PR_SET_NAME). Without that tracepoint a name is kept for one batch only.
pub(crate) struct Comms {
    /// Known names by thread.
    pub names: HashMap<u32, Vec<u8>>,
    /// Names are followed through `task:task_rename`.
    pub follows_renames: bool,
}

impl Comms {
    /// The name of `tid`, read from /proc only the first time (`None`: the thread is gone).
    pub fn get(&mut self, tid: u32) -> Option<Vec<u8>> {
        if let Some(n) = self.names.get(&tid) {
            return Some(n.clone());
        }
        let n = read_comm(tid)?;
        self.names.insert(tid, n.clone());
        Some(n)
    }

    /// Ends a batch: without rename events, names are forgotten.
    pub fn end_batch(&mut self) {
        // Thread ids get reused (and exit): forget them now and then.
        if !self.follows_renames || self.names.len() > 100_000 {
            self.names.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> Option<Vec<u8>> {
        Some(n.as_bytes().to_vec())
    }

    #[test]
    fn a_name_pairs_with_the_next_exit_of_its_thread_only() {
        let mut o = Opens::default();
        o.enter(10, None);
        o.name(5, 10, named("/etc/a"), None);
        o.enter(11, None);
        o.name(6, 11, named("/etc/b"), named("cat"));
        assert_eq!(o.exit(11, true).unwrap().name, named("/etc/b"));
        assert_eq!(o.exit(10, true).unwrap().name, named("/etc/a"));
        // Each name is used once: a second exit has none.
        assert_eq!(o.exit(10, true), None);
        assert_eq!(o.exit(10, false), Some(Pending::default()));
    }

    #[test]
    fn an_enter_forgets_a_name_left_by_an_open_whose_exit_was_not_seen() {
        let mut o = Opens::default();
        o.name(5, 10, named("/stale"), None);
        o.enter(10, None);
        assert_eq!(o.exit(10, true), None);
    }

    #[test]
    fn a_uprobe_name_is_taken_only_by_the_next_entry_with_its_address() {
        let mut o = Opens::default();
        o.uname(5, 10, Some(0x1000), named("/etc/a"), named("cat"));
        o.enter(10, Some(0x1000));
        let p = o.exit(10, false).unwrap();
        assert_eq!((p.name, p.comm), (named("/etc/a"), named("cat")));
        // A direct syscall (no uprobe hit) after a C library call whose syscall was not
        // seen: another address, so no name (the /proc fallback resolves it).
        o.uname(6, 10, Some(0x1000), named("/etc/b"), None);
        o.enter(10, Some(0x2000));
        assert_eq!(o.exit(10, false), Some(Pending::default()));
        // The name is used once, even for an entry at the same address.
        o.uname(7, 10, Some(0x3000), named("/etc/c"), None);
        o.enter(10, Some(0x3000));
        o.exit(10, false);
        o.enter(10, Some(0x3000));
        assert_eq!(o.exit(10, false), Some(Pending::default()));
        // Another thread's entry does not take it; a gap forgets it.
        o.uname(8, 10, Some(0x4000), named("/etc/d"), None);
        o.enter(11, Some(0x4000));
        assert_eq!(o.exit(11, false), Some(Pending::default()));
        o.gap(9);
        o.enter(10, Some(0x4000));
        assert_eq!(o.exit(10, false), Some(Pending::default()));
        // Nor is a hit recorded up to the gap's end trusted.
        o.uname(9, 10, Some(0x5000), named("/etc/e"), None);
        o.enter(10, Some(0x5000));
        assert_eq!(o.exit(10, false), Some(Pending::default()));
    }

    #[test]
    fn no_pairing_spans_a_loss_of_events() {
        let mut o = Opens::default();
        o.name(5, 10, named("/before"), None);
        o.gap(8);
        assert_eq!(o.exit(10, true), None);
        // A name recorded up to the gap's end may be followed by a lost exit.
        o.name(8, 10, named("/at-gap"), None);
        assert_eq!(o.exit(10, true), None);
        o.name(9, 10, named("/after"), None);
        assert_eq!(o.exit(10, true).unwrap().name, named("/after"));
    }

    #[test]
    fn an_fd_returned_again_later_in_the_same_table_was_reused() {
        let mut o = Opens::default();
        o.record_fd(100, 3, 50);
        o.record_fd(100, 3, 40);
        o.record_fd(200, 3, 90);
        assert!(o.reused(100, 3, 40));
        assert!(!o.reused(100, 3, 50));
        // Another process's fd 3, and another fd of the same process, are not.
        assert!(!o.reused(100, 4, 40));
        assert!(!o.reused(300, 3, 40));
        o.trim(1_000_000_000_000);
        assert!(o.reused(100, 3, 40), "kept: few entries");
    }
}
