//! Which execs are hidden: those of the suite's running tools (processes that own a
//! perf-tools-rs trace instance) and of the processes they start, such as another
//! execsnoop's canary, unless `--include-suite`; execsnoop's own always.
//! A canary is recognised by its file name, whose directory names its execsnoop.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use perf_tools_ftrace::instance::instance_name;
use perf_tools_ftrace::owner::{live_owner_pids, TOOLS};
use perf_tools_ftrace::tracefs::Tracefs;

/// The suite's running tools, listed again once a second, and another execsnoop's
/// canary by its link.
pub(crate) struct Suite {
    tracefs: Tracefs,
    me: u32,
    /// This executable (device, inode): a process it runs is another execsnoop, whose
    /// children (canaries) are hidden even between its instances.
    exe: Option<(u64, u64)>,
    others: bool,
    pids: BTreeSet<u32>,
    checked: Instant,
}

impl Suite {
    pub fn new(tracefs: &Tracefs, others: bool) -> Suite {
        let mut s = Suite {
            tracefs: tracefs.clone(),
            me: std::process::id(),
            exe: file_id("/proc/self/exe"),
            others,
            pids: BTreeSet::new(),
            checked: Instant::now(),
        };
        s.refresh();
        s
    }

    fn refresh(&mut self) {
        self.checked = Instant::now();
        self.pids = BTreeSet::from([self.me]);
        if self.others {
            self.pids.extend(live_owner_pids(&self.tracefs));
        }
    }

    pub fn refresh_if_due(&mut self) {
        if self.checked.elapsed() >= Duration::from_secs(1) {
            self.refresh();
        }
    }

    fn owns_instance(&self, pid: u32) -> bool {
        TOOLS.iter().any(|t| {
            self.tracefs
                .path("instances")
                .join(instance_name(t, pid))
                .is_dir()
        })
    }

    /// Whether the exec of `pid`, child of `ppid`, of file `filename`, is hidden.
    pub fn hides(&mut self, pid: u32, ppid: Option<u32>, filename: &[u8]) -> bool {
        // An execsnoop's canary, known by its link even when its parent is not known.
        if let Some(owner) = crate::verify::canary_owner(filename) {
            if owner == self.me
                || (self.others
                    && (self.pids.contains(&owner)
                        || self.owns_instance(owner)
                        || file_id(&format!("/proc/{owner}/exe")) == self.exe))
            {
                return true;
            }
        }
        // The suite's tools, listed at most a second ago (a check per row would cost
        // a dozen stats per exec; the suite's tools start no processes but the
        // canaries, which are recognised above).
        self.pids.contains(&pid) || ppid.is_some_and(|p| self.pids.contains(&p))
    }
}

/// The device and inode of a file (following symlinks such as `/proc/PID/exe`).
fn file_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn own_and_live_suite_tools_and_their_children_are_hidden() {
        let me = std::process::id();
        let root = std::env::temp_dir().join(format!("ptrs-execsnoop-suite-{me}"));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let other = child.id();
        std::fs::create_dir_all(root.join("instances").join(format!("iosnoop-{other}"))).unwrap();
        let tf = Tracefs::at(&root);
        let mut s = Suite::new(&tf, true);
        let mut own = Suite::new(&tf, false);
        let _ = child.kill();
        let _ = child.wait();
        let sh = b"/bin/sh";
        assert!(s.hides(other, Some(1), sh));
        assert!(s.hides(4_999_998, Some(other), sh));
        assert!(s.hides(4_999_998, Some(me), sh));
        assert!(!s.hides(4_999_997, Some(4_999_998), sh));
        assert!(!s.hides(4_999_998, Some(1), sh));
        assert!(!s.hides(4_999_998, None, sh));
        assert!(own.hides(4_999_998, Some(me), sh));
        assert!(!own.hides(4_999_998, Some(other), sh));
        // Canaries of a live suite tool (or of this run) by their link, parent unknown;
        // not those of a process that is no tool.
        let canary = |p: u32| format!("/tmp/execsnoop-{p}-0123456789abcdef/canary");
        assert!(s.hides(4_999_998, None, canary(other).as_bytes()));
        assert!(own.hides(4_999_998, None, canary(me).as_bytes()));
        assert!(!own.hides(4_999_998, None, canary(other).as_bytes()));
        assert!(!s.hides(4_999_998, None, canary(1).as_bytes()));
        let _ = std::fs::remove_dir_all(&root);
    }
}
