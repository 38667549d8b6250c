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
}
