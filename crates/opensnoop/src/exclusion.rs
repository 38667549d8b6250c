//! Which threads' opens are hidden: opensnoop's own and the suite's other tools'.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use perf_tools_ftrace::instance::instance_name;
use perf_tools_ftrace::tracefs::Tracefs;

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
pub(crate) struct Exclusion {
    tracefs: Tracefs,
    me: u32,
    others: bool,
    exe: Option<(u64, u64)>,
    /// Other copies of this executable found before they had an instance.
    copies: BTreeSet<u32>,
    tids: BTreeSet<u32>,
    checked: Instant,
    /// The kernel filter no longer matches `tids`.
    pub dirty: bool,
}

impl Exclusion {
    pub fn new(tracefs: &Tracefs, others: bool) -> Exclusion {
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

    pub fn refresh_if_due(&mut self) {
        if self.checked.elapsed() >= Duration::from_secs(1) {
            self.refresh();
        }
    }

    /// Whether the row of thread `tid`, whose process is named `comm`, is to be hidden.
    pub fn hides(&mut self, tid: u32, comm: &[u8]) -> bool {
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
    pub fn filter(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
