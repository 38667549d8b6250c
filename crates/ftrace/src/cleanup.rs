//! Removal of tracing state left behind by runs that were killed (`kill -9`), on top of
//! the modules that create that state.
//!
//! Only state that follows this project's naming and belongs to a process that no longer
//! exists is touched: instance directories named `<tool>-<pid>` for one of
//! [`TOOLS`](crate::owner::TOOLS), this suite's probes (see [`crate::probe`]) and top-level
//! settings recorded by [`crate::toplevel`]. Tools call [`start_instance`] (or
//! [`remove_stale`] first when they do not create an instance) so a run always starts from
//! a clean slate.

use std::fs;

use anyhow::Result;

use crate::instance::{remove_instance_dir, Instance};
use crate::owner::{owner_pid, pid_alive};
use crate::tracefs::Tracefs;

/// Removes what killed runs left behind (saying so on stderr), then creates this run's
/// private instance `instances/<tool>-<pid>`: how every tracing tool starts.
pub fn start_instance(tracefs: &Tracefs, tool: &str) -> Result<Instance> {
    perf_tools_core::fdreserve::reserve()?;
    for removed in remove_stale(tracefs) {
        eprintln!("{tool}: removed {removed} left behind by a killed run");
    }
    Instance::create(tracefs, tool)
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
    removed.extend(crate::toplevel::restore_stale(tracefs));
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
