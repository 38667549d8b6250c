//! Which execs are hidden: those of the suite's running tools (processes that own a
//! perf-tools-rs trace instance) and of the processes they start, such as another
//! execsnoop's canary, unless `--include-suite`; execsnoop's own always.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use perf_tools_ftrace::instance::instance_name;
use perf_tools_ftrace::owner::{live_owner_pids, TOOLS};
use perf_tools_ftrace::tracefs::Tracefs;

/// The suite's running tools, listed again at most once a second, and at once when a
/// row's process or parent owns an instance not yet listed.
pub(crate) struct Suite {
    tracefs: Tracefs,
    me: u32,
    others: bool,
    pids: BTreeSet<u32>,
    checked: Instant,
}

impl Suite {
    pub fn new(tracefs: &Tracefs, others: bool) -> Suite {
        let mut s = Suite {
            tracefs: tracefs.clone(),
            me: std::process::id(),
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

    /// Whether the exec of `pid`, child of `ppid`, is hidden.
    pub fn hides(&mut self, pid: u32, ppid: Option<u32>) -> bool {
        let mut ids = vec![pid];
        ids.extend(ppid);
        if ids.iter().any(|p| self.pids.contains(p)) {
            return true;
        }
        if self.others && ids.iter().any(|&p| self.owns_instance(p)) {
            self.refresh();
            return true;
        }
        false
    }
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
        assert!(s.hides(other, Some(1)));
        assert!(s.hides(4_999_998, Some(other)));
        assert!(s.hides(4_999_998, Some(me)));
        assert!(!s.hides(4_999_998, Some(1)));
        assert!(!s.hides(4_999_998, None));
        assert!(own.hides(4_999_998, Some(me)));
        assert!(!own.hides(4_999_998, Some(other)));
        let _ = std::fs::remove_dir_all(&root);
    }
}
