//! What a tool is asked to trace: checks that a process or thread given on the command
//! line exists, and which process a thread belongs to.
//!
//! The suite's rule for targets: a PID or TID that does not exist when a tool starts is
//! an error (exit 1), reported before any kernel state is created. (A block device given
//! as `major,minor` that does not exist yet is only a warning, since it may appear: see
//! [`crate::block::DeviceSpec::resolve`].)

use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Reads `Tgid:` from a `/proc/<id>/status` file.
fn tgid_in(status: &Path) -> Option<u32> {
    let s = std::fs::read_to_string(status).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Where process information is read from: `/proc`, or a fake tree in tests.
#[derive(Debug, Clone)]
pub struct Procfs {
    root: PathBuf,
}

impl Default for Procfs {
    fn default() -> Self {
        Procfs::at("/proc")
    }
}

impl Procfs {
    /// Process information under `root` (normally `/proc`).
    pub fn at(root: impl Into<PathBuf>) -> Procfs {
        Procfs { root: root.into() }
    }

    /// The process (thread group id) thread `tid` belongs to; `None` if there is no such
    /// thread (any more).
    pub fn tgid_of(&self, tid: u32) -> Option<u32> {
        tgid_in(&self.root.join(tid.to_string()).join("status"))
    }

    /// Checks that `pid` is a running process (for `-p PID`). A thread ID that is not
    /// its process's main thread is refused with the process to use instead.
    pub fn require_process(&self, pid: u32) -> Result<()> {
        match self.tgid_of(pid) {
            Some(tgid) if tgid == pid => Ok(()),
            Some(tgid) => bail!(
                "PID {pid} is a thread of process {tgid}, not a process: use -p {tgid} for the process, or -L {pid} for that thread alone"
            ),
            None => bail!("no process with PID {pid} (not in {})", self.root.display()),
        }
    }

    /// Checks that `tid` is a running thread (for `-L TID`).
    pub fn require_thread(&self, tid: u32) -> Result<()> {
        match self.tgid_of(tid) {
            Some(_) => Ok(()),
            None => bail!("no thread with TID {tid} (not in {})", self.root.display()),
        }
    }

    /// The thread IDs of process `pid` right now (empty if it is gone).
    pub fn threads_of(&self, pid: u32) -> Vec<u32> {
        std::fs::read_dir(self.root.join(pid.to_string()).join("task"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Checks that `pid` is a running process, in `/proc` (see [`Procfs::require_process`]).
pub fn require_process(pid: u32) -> Result<()> {
    Procfs::default().require_process(pid)
}

/// Checks that `tid` is a running thread, in `/proc` (see [`Procfs::require_thread`]).
pub fn require_thread(tid: u32) -> Result<()> {
    Procfs::default().require_thread(tid)
}

/// Decides, thread by thread, whether events belong to one process (`-p PID` covering
/// every thread of the process, threads created while tracing included).
///
/// Each thread's process is read from `/proc` once and remembered; the process's threads
/// at start are known up front. A thread that has exited before it is first looked up
/// cannot be placed: such events are not kept, and are counted in [`Self::unknown`] so
/// the tool can say so.
#[derive(Debug)]
pub struct ProcessThreads {
    pid: u32,
    procfs: Procfs,
    tgid: HashMap<u32, Option<u32>>,
    /// Events of threads that had exited before they could be placed.
    pub unknown: u64,
}

impl ProcessThreads {
    /// Threads of process `pid`, as `procfs` reports them.
    pub fn new(procfs: Procfs, pid: u32) -> ProcessThreads {
        let mut tgid = HashMap::new();
        for t in procfs.threads_of(pid) {
            tgid.insert(t, Some(pid));
        }
        tgid.insert(pid, Some(pid));
        ProcessThreads {
            pid,
            procfs,
            tgid,
            unknown: 0,
        }
    }

    /// The process followed.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Records the process of thread `tid` as looked up by the caller (`/proc`, else the
    /// kernel's `saved_tgids`, for a thread that exited before `/proc` could be read;
    /// `None`: neither knew it), so that [`contains`](Self::contains) does not read
    /// `/proc` for it again. A thread already placed is left as it is.
    pub fn learn(&mut self, tid: u32, tgid: Option<u32>) {
        if let Some(t) = self.tgid.get_mut(&tid) {
            if t.is_none() {
                *t = tgid;
            }
        } else {
            self.insert(tid, tgid);
        }
    }

    /// Inserts a thread, forgetting every other process's threads first when the map
    /// is full (bounded memory under thread churn).
    fn insert(&mut self, tid: u32, tgid: Option<u32>) {
        if self.tgid.len() >= 100_000 {
            self.tgid.retain(|_, t| *t == Some(self.pid));
        }
        self.tgid.insert(tid, tgid);
    }

    /// True if thread `tid` was looked up and neither `/proc` nor [`learn`](Self::learn)
    /// placed it (it is then counted as not belonging).
    pub fn unplaced(&self, tid: u32) -> bool {
        matches!(self.tgid.get(&tid), Some(None))
    }

    /// True if thread `tid` belongs to the process.
    #[inline]
    pub fn contains(&mut self, tid: u32) -> bool {
        self.contains_or(tid, |_| None)
    }

    /// [`contains`](Self::contains), asking `gone(tid)` (e.g. the kernel's
    /// `saved_tgids`) for the process of a thread seen for the first time that `/proc`
    /// no longer has; asked once per thread.
    #[inline]
    pub fn contains_or(&mut self, tid: u32, gone: impl FnOnce(u32) -> Option<u32>) -> bool {
        if tid == 0 {
            // The idle task (events from interrupt context on an idle CPU): no process.
            return false;
        }
        let t = match self.tgid.get(&tid) {
            Some(t) => *t,
            None => {
                let t = self.procfs.tgid_of(tid).or_else(|| gone(tid));
                self.insert(tid, t);
                t
            }
        };
        if t.is_none() {
            self.unknown += 1;
        }
        t == Some(self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(name: &str, tasks: &[(u32, u32)]) -> (PathBuf, Procfs) {
        let root =
            std::env::temp_dir().join(format!("ptrs-fake-proc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for &(tid, tgid) in tasks {
            let d = root.join(tid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("status"),
                format!("Name:\tx\nTgid:\t{tgid}\nPid:\t{tid}\n"),
            )
            .unwrap();
            let t = root
                .join(tgid.to_string())
                .join("task")
                .join(tid.to_string());
            std::fs::create_dir_all(t).unwrap();
        }
        (root.clone(), Procfs::at(root))
    }

    #[test]
    fn missing_pids_and_threads_given_as_pids_are_errors() {
        let (root, p) = fake_proc("missing", &[(100, 100), (101, 100)]);
        assert!(p.require_process(100).is_ok());
        let e = p.require_process(101).unwrap_err().to_string();
        assert!(e.contains("-p 100") && e.contains("-L 101"), "{e}");
        let e = p.require_process(99999999).unwrap_err().to_string();
        assert!(e.starts_with("no process with PID 99999999"), "{e}");
        assert!(p.require_thread(101).is_ok());
        let e = p.require_thread(7).unwrap_err().to_string();
        assert!(e.starts_with("no thread with TID 7"), "{e}");
        let mut t = p.threads_of(100);
        t.sort();
        assert_eq!(t, vec![100, 101]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn process_threads_cover_every_thread_and_count_the_unplaceable() {
        let (root, p) = fake_proc(
            "threads",
            &[(200, 200), (201, 200), (202, 200), (300, 300), (301, 300)],
        );
        let mut pt = ProcessThreads::new(p, 200);
        assert!(pt.contains(200) && pt.contains(201) && pt.contains(202));
        assert!(!pt.contains(300) && !pt.contains(301));
        assert_eq!(pt.unknown, 0);
        // A thread created after start is looked up when first seen.
        std::fs::create_dir_all(root.join("203")).unwrap();
        std::fs::write(root.join("203/status"), "Tgid:\t200\n").unwrap();
        assert!(pt.contains(203));
        // Gone before it was seen: not kept, counted (each event), read from /proc once.
        assert!(!pt.contains(999));
        assert!(!pt.contains(999));
        assert_eq!(pt.unknown, 2);
        assert!(pt.unplaced(999) && !pt.unplaced(300) && !pt.unplaced(12345));
        assert!(!pt.contains(0));
        assert_eq!(pt.unknown, 2, "the idle task is no thread of anyone");
        // Known threads stay known after they exit.
        std::fs::remove_dir_all(root.join("201")).unwrap();
        assert!(pt.contains(201));
        // Learnt elsewhere (the kernel's saved_tgids): kept, before or after a failed
        // /proc lookup; what /proc said is not overridden.
        pt.learn(998, Some(200));
        assert!(pt.contains(998));
        pt.learn(999, Some(200));
        assert!(pt.contains(999) && !pt.unplaced(999));
        pt.learn(300, Some(200));
        assert!(!pt.contains(300));
        // Known to be unknown: /proc is not read for it (a thread made there later is
        // not picked up), and it counts as unknown when asked.
        pt.learn(997, None);
        std::fs::create_dir_all(root.join("997")).unwrap();
        std::fs::write(root.join("997/status"), "Tgid:\t200\n").unwrap();
        assert!(!pt.contains(997) && pt.unplaced(997));
        assert_eq!(pt.unknown, 3);
        // contains_or: asked only for a thread seen first and gone from /proc, once.
        let mut asked = Vec::new();
        assert!(pt.contains_or(996, |t| {
            asked.push(t);
            Some(200)
        }));
        assert!(pt.contains_or(996, |t| {
            asked.push(t);
            None
        }));
        assert!(pt.contains_or(203, |t| {
            asked.push(t);
            None
        }));
        assert!(!pt.contains_or(995, |t| {
            asked.push(t);
            None
        }));
        assert_eq!(asked, [996, 995]);
        assert!(pt.unplaced(995) && pt.unknown == 4);
        std::fs::remove_dir_all(root).unwrap();
    }
}
