//! Who owns a trace instance: the suite's naming `instances/<tool>-<pid>` and whether that
//! process still lives. A leaf module: instances, probes, top-level state and cleanup all
//! use it, it uses none of them.

use std::fs;
use std::path::Path;

use crate::tracefs::Tracefs;

/// The tools of this suite that create tracefs instances.
pub const TOOLS: &[&str] = &[
    "iosnoop",
    "iolatency",
    "opensnoop",
    "execsnoop",
    "funcgraph",
    "funcslower",
    "functrace",
    "funccount",
    "kprobe",
    "syscount",
    "killsnoop",
    "perf-stat-hist",
    "tcpretrans",
    "uprobe",
    "bitesize",
    "tpoint",
    "cachestat",
    "perf-tools-doctor",
];

/// If `name` is `<tool>-<pid>` for one of our tools, returns the pid.
pub fn owner_pid(name: &str) -> Option<u32> {
    let (tool, pid) = name.rsplit_once('-')?;
    if !TOOLS.contains(&tool) || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// True if a process with this pid exists (including zombies and other users' processes).
pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The pids of the live processes that own a trace instance of this suite
/// (`instances/<tool>-<pid>` for one of [`TOOLS`]), sorted and without duplicates: the
/// suite's running tools, which a tracing tool leaves out of what it shows by default
/// (their reading of tracefs and /proc is not the user's workload, and two tools
/// tracing each other's reactions could feed each other).
pub fn live_owner_pids(tracefs: &Tracefs) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(tracefs.path("instances")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| owner_pid(e.file_name().to_str()?))
        .filter(|&pid| pid_alive(pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recognises_only_our_naming() {
        assert_eq!(owner_pid("iosnoop-123"), Some(123));
        assert_eq!(owner_pid("kprobe-9"), Some(9));
        assert_eq!(owner_pid("iosnoop-"), None);
        assert_eq!(owner_pid("iosnoop-12a"), None);
        assert_eq!(owner_pid("mytool-123"), None);
        assert_eq!(owner_pid("iosnoop"), None);
    }

    #[test]
    fn lists_live_owners_of_suite_instances_only() {
        let root = std::env::temp_dir().join(format!("ptrs-stale-test-{}", std::process::id()));
        let me = std::process::id();
        // pid_max is at most 2^22: this pid cannot be alive.
        for name in [
            format!("opensnoop-{me}"),
            format!("iosnoop-{me}"),
            "kprobe-4999999".to_string(),
            "mytool-1".to_string(),
            "iosnoop-1x".to_string(),
        ] {
            fs::create_dir_all(root.join("instances").join(name)).unwrap();
        }
        let pids = live_owner_pids(&Tracefs::at(&root));
        let _ = fs::remove_dir_all(&root);
        assert_eq!(pids, vec![me]);
        assert!(live_owner_pids(&Tracefs::at("/nonexistent-ptrs")).is_empty());
    }
}
