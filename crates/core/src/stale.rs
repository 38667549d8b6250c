//! Removal of tracing state left behind by runs that were killed (`kill -9`).
//!
//! Only state that follows this project's naming and belongs to a process that no longer
//! exists is touched: instance directories named `<tool>-<pid>` for one of [`TOOLS`].

use std::fs;
use std::path::Path;

use crate::instance::remove_instance_dir;
use crate::tracefs::Tracefs;

/// The tools of this suite that create tracefs instances.
pub const TOOLS: &[&str] = &["iosnoop", "iolatency", "opensnoop", "funcgraph", "kprobe"];

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

/// Removes our instances whose owning process is gone. Returns a description of each
/// thing removed, for the caller to report.
pub fn remove_stale(tracefs: &Tracefs) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(tracefs.path("instances")) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = owner_pid(name) else { continue };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let dir = e.path();
        let _ = fs::write(dir.join("tracing_on"), "0");
        let _ = fs::write(dir.join("events/enable"), "0");
        match remove_instance_dir(&dir) {
            Ok(()) => removed.push(format!("stale trace instance {name}")),
            Err(err) => eprintln!("warning: {err:#}"),
        }
    }
    removed.extend(crate::probe::remove_stale(tracefs));
    removed.extend(crate::ftrace::restore_stale(tracefs));
    removed
}

/// The `--cleanup` option of every tracing tool: removes stale state and says what it did.
pub fn cleanup_command() -> anyhow::Result<()> {
    let tracefs = Tracefs::open()?;
    let removed = remove_stale(&tracefs);
    if removed.is_empty() {
        println!(
            "nothing to clean up: no state of killed perf-tools-rs runs in {}",
            tracefs.root().display()
        );
    }
    for r in removed {
        println!("removed {r}");
    }
    Ok(())
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
