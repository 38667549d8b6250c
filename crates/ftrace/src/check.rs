//! The tracefs part of every tracing tool's `--check` and of `perf-tools-doctor`: the
//! privilege, where tracefs is mounted (without mounting it), a private instance created
//! and removed as a run would, and the events a tool needs, read from their format files
//! and enabled once to see that the kernel takes them. Nothing is left behind: the
//! instance is removed when the caller drops it.

use std::path::{Path, PathBuf};

use perf_tools_core::check::{Report, Status};
use perf_tools_core::privilege::{self, Capability};

use crate::format::EventFormat;
use crate::instance::Instance;
use crate::tracefs::{self, Tracefs, TRACEFS_PATH};

/// The command that mounts tracefs where the tools look first.
pub const MOUNT_COMMAND: &str = "mount -t tracefs nodev /sys/kernel/tracing";

/// Where tracefs is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Mounted here (with an `events/` directory).
    Mounted(Tracefs),
    /// Not mounted, but `/sys/kernel/tracing` exists: [`MOUNT_COMMAND`] mounts it (the
    /// tools do so themselves when they start).
    Mountable(PathBuf),
    /// Not mounted and no mount point: the kernel lacks CONFIG_TRACING.
    Absent,
}

/// Finds tracefs from `/proc/mounts`, never mounting it.
pub fn locate() -> Location {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if let Some(root) = tracefs::pick_mount(&mounts) {
        // Without privilege the mount point may not be readable: it is mounted all the same.
        let denied = matches!(std::fs::read_dir(&root), Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied);
        if denied || root.join("events").is_dir() {
            return Location::Mounted(Tracefs::at(root));
        }
    }
    if Path::new(TRACEFS_PATH).is_dir() {
        Location::Mountable(PathBuf::from(TRACEFS_PATH))
    } else {
        Location::Absent
    }
}

/// Adds the `privilege` (CAP_SYS_ADMIN) and `tracefs` items; returns tracefs when it is
/// mounted and may be used.
pub fn tracefs(report: &mut Report) -> Option<Tracefs> {
    let admin = privilege::has_capability(Capability::SysAdmin);
    report.item(
        "privilege",
        if admin { Status::Yes } else { Status::No },
        if admin {
            "CAP_SYS_ADMIN"
        } else {
            "CAP_SYS_ADMIN missing: tracefs instances and events need it"
        },
        "run as root (sudo), or grant CAP_SYS_ADMIN",
        true,
    );
    match locate() {
        Location::Mounted(t) => {
            report.item(
                "tracefs",
                Status::Yes,
                format!("mounted at {}", t.root().display()),
                "",
                true,
            );
            admin.then_some(t)
        }
        Location::Mountable(p) => {
            report.item(
                "tracefs",
                Status::Degraded,
                format!(
                    "not mounted (the tool mounts it at {} when it starts; nothing else could be checked)",
                    p.display()
                ),
                MOUNT_COMMAND,
                false,
            );
            None
        }
        Location::Absent => {
            report.item(
                "tracefs",
                Status::No,
                format!("not mounted and {TRACEFS_PATH} does not exist"),
                "use a kernel built with CONFIG_TRACING=y (CONFIG_FTRACE=y)",
                true,
            );
            None
        }
    }
}

/// Creates this run's private instance `instances/<tool>-<pid>` (removing what killed
/// runs left, as a run does) and adds the `instance` item. The caller removes it (or
/// drops it) before returning.
pub fn instance(tracefs: &Tracefs, tool: &str, report: &mut Report) -> Option<Instance> {
    match crate::cleanup::start_instance(tracefs, tool) {
        Ok(inst) => {
            report.item(
                "instance",
                Status::Yes,
                format!("private instance instances/{} created", inst.name()),
                "",
                true,
            );
            Some(inst)
        }
        Err(e) => {
            report.item(
                "instance",
                Status::No,
                format!("{e:#}"),
                "use Linux 3.16+ with tracefs mounted read-write, as root",
                true,
            );
            None
        }
    }
}

/// Reads and parses `events/<system>/<event>/format` below `dir` (an instance or the
/// tracefs root) and adds an item `<system>:<event>`; `fix` is given when it is missing.
pub fn event(
    report: &mut Report,
    dir: &Path,
    system: &str,
    event: &str,
    required: bool,
    fix: &str,
) -> Option<EventFormat> {
    let name = format!("{system}:{event}");
    let path = dir.join(format!("events/{system}/{event}/format"));
    let text = match tracefs::read_file(&path) {
        Ok(t) => t,
        Err(e) => {
            report.item(
                name,
                if required {
                    Status::No
                } else {
                    Status::Degraded
                },
                format!("no such tracepoint ({}: {e})", path.display()),
                fix,
                required,
            );
            return None;
        }
    };
    match EventFormat::parse(&text) {
        Ok(f) => {
            report.item(
                name,
                Status::Yes,
                format!("id {}, {} fields", f.id, f.fields.len()),
                "",
                required,
            );
            Some(f)
        }
        Err(e) => {
            report.item(
                name,
                Status::No,
                format!("its format cannot be parsed: {e}"),
                "report this kernel's format file as a bug of perf-tools-rs",
                required,
            );
            None
        }
    }
}

/// Enables `events` (`(system, event)`) in the instance and turns tracing on, then reads
/// each `enable` and `tracing_on` back: the kernel took them, as a run needs. Adds one
/// `recording` item. The caller removes the instance afterwards.
pub fn verify_recording(inst: &Instance, events: &[(&str, &str)], report: &mut Report) {
    let mut problems = Vec::new();
    for (sys, ev) in events {
        if let Err(e) = inst.enable_event(sys, ev) {
            problems.push(format!("{e:#}"));
            continue;
        }
        match inst.read(format!("events/{sys}/{ev}/enable")) {
            Ok(v) if v.trim() == "1" => {}
            Ok(v) => problems.push(format!("{sys}:{ev} enable reads {:?}", v.trim())),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if problems.is_empty() {
        if let Err(e) = inst.set_tracing_on(true) {
            problems.push(format!("{e:#}"));
        }
        let _ = inst.set_tracing_on(false);
    }
    if problems.is_empty() {
        report.item(
            "recording",
            Status::Yes,
            "events enabled and tracing_on set in the instance, read back as 1",
            "",
            true,
        );
    } else {
        report.item(
            "recording",
            Status::No,
            problems.join("; "),
            "check that tracing is not disabled on the kernel command line (traceoff_on_warning) and that the host is not in lockdown mode",
            true,
        );
    }
}
