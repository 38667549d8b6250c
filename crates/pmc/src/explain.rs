//! Why the kernel refused a counter, in words an operator can act on: the errno, what
//! `kernel.perf_event_paranoid` and CAP_PERFMON allow, and what to do about it.

use crate::counters::Target;
use crate::cpu::Pmus;
use perf_tools_core::privilege::{has_capability, Capability};
use std::fmt;

/// Where the kernel's perf_event restriction level is.
pub const PARANOID_PATH: &str = "/proc/sys/kernel/perf_event_paranoid";

/// The current `kernel.perf_event_paranoid` value, if readable.
pub fn paranoid() -> Option<i32> {
    std::fs::read_to_string(PARANOID_PATH)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The privilege facts an explanation depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    /// `kernel.perf_event_paranoid`, if readable.
    pub paranoid: Option<i32>,
    /// Effective UID 0.
    pub root: bool,
    /// CAP_PERFMON (or CAP_SYS_ADMIN, which implies it) in the effective set.
    pub perfmon: bool,
}

impl Privileges {
    /// This process's privileges.
    pub fn current() -> Privileges {
        Privileges {
            paranoid: paranoid(),
            root: nix::unistd::geteuid().is_root(),
            perfmon: has_capability(Capability::Perfmon) || has_capability(Capability::SysAdmin),
        }
    }
}

/// `perf_event_open` failed for one event on one target.
#[derive(Debug, Clone)]
pub struct OpenFailure {
    /// The errno.
    pub errno: i32,
    /// The event's name.
    pub event: String,
    /// What it was opened on.
    pub target: Target,
    /// The PMU (`cpu`, `cpu_core`, `software`).
    pub pmu: String,
    /// Whether kernel-mode counting was excluded (user-mode only).
    pub exclude_kernel: bool,
    /// A tool-specific suggestion appended to the explanation (e.g. an option to try).
    pub hint: Option<String>,
}

/// True for errnos meaning "this kernel/PMU has no such event" rather than a refusal.
pub fn is_unsupported_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOENT | libc::EOPNOTSUPP | libc::EINVAL | libc::ENXIO | libc::ENODEV
    )
}

/// The errno's symbolic name, for messages people search for.
/// Empty for a number that is no errno.
pub fn errno_name(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => String::new(),
        e => format!("{e:?}"),
    }
}

fn strerror(errno: i32) -> String {
    let msg = std::io::Error::from_raw_os_error(errno).to_string();
    // "Permission denied (os error 13)" -> "Permission denied (EACCES)"
    let base = msg.split(" (os error").next().unwrap_or(&msg).to_string();
    match errno_name(errno).as_str() {
        "" => base,
        n => format!("{base} ({n})"),
    }
}

/// `ENOENT (No such file or directory)`.
fn errno_text(errno: i32) -> String {
    let msg = std::io::Error::from_raw_os_error(errno).to_string();
    let base = msg.split(" (os error").next().unwrap_or(&msg).to_string();
    match errno_name(errno).as_str() {
        "" => base,
        n => format!("{n} ({base})"),
    }
}

/// The meaning of each perf_event_paranoid level, one line.
pub const PARANOID_LEVELS: &str = "perf_event_paranoid levels: -1 no restrictions; 0 also \
system-wide and per-CPU counting; 1 also kernel-mode counting of your own processes; 2 only \
user-mode counting of your own processes (the upstream default); 3 or more (a Debian, Ubuntu \
and Android patch) nothing without CAP_PERFMON";

/// The explanation of a failure, given the privilege facts.
pub fn explain(f: &OpenFailure, p: &Privileges) -> String {
    let mut s = format!(
        "cannot open {} on {} ({} PMU): {}",
        f.event,
        f.target,
        f.pmu,
        strerror(f.errno)
    );
    let level = p
        .paranoid
        .map_or_else(|| "unreadable".to_string(), |v| v.to_string());
    let mut line = |t: String| {
        s.push_str("\n  ");
        s.push_str(&t);
    };
    match f.errno {
        libc::EACCES | libc::EPERM => {
            if p.root && p.perfmon {
                line(format!(
                    "refused although running as root with CAP_PERFMON: a seccomp filter \
                     (container runtimes' default profiles block perf_event_open), kernel \
                     lockdown or a security module denies it; perf_event_paranoid is {level}"
                ));
            } else {
                let need = match f.target {
                    Target::Cpu(_) | Target::Cgroup { .. } => "counting system-wide, per CPU \
                                       or per cgroup needs CAP_PERFMON \
                                       (CAP_SYS_ADMIN before Linux 5.8) or \
                                       kernel.perf_event_paranoid <= 0"
                        .to_string(),
                    Target::Task(_) if p.paranoid.is_some_and(|v| v >= 3) => {
                        "this kernel refuses every perf event without CAP_PERFMON at \
                         perf_event_paranoid >= 3"
                            .to_string()
                    }
                    Target::Task(_) if !f.exclude_kernel => "counting a process including its \
                         kernel-mode time needs CAP_PERFMON or kernel.perf_event_paranoid <= 1 \
                         (user-mode-only counting is allowed up to 2), and permission to trace \
                         the process (same user, or CAP_SYS_PTRACE)"
                        .to_string(),
                    Target::Task(_) => "counting a process needs kernel.perf_event_paranoid \
                         <= 2 or CAP_PERFMON, and permission to trace the process (same \
                         user, or CAP_SYS_PTRACE; see also kernel.yama.ptrace_scope)"
                        .to_string(),
                };
                line(format!("{need}; perf_event_paranoid is {level} here"));
                line(PARANOID_LEVELS.to_string());
                line(
                    "to fix: run as root (sudo), give the binary CAP_PERFMON (sudo setcap \
                     cap_perfmon+ep BINARY; Linux 5.8+), or lower the level (sudo sysctl \
                     kernel.perf_event_paranoid=0 for system-wide, 1 for kernel-mode counting)"
                        .to_string(),
                );
            }
        }
        libc::ESRCH => line(format!("{}: no such process (it exited?)", f.target)),
        libc::ENOENT | libc::EBADF if matches!(f.target, Target::Cgroup { .. }) => {
            line(
                "the kernel has no perf_event state for this cgroup: it is not in the \
                 hierarchy the perf_event controller is attached to (cgroup v2, unless a v1 \
                 hierarchy was mounted with perf_event: see /proc/cgroups), or it is on a \
                 cgroup v2 hierarchy where no controller was ever enabled (nothing written \
                 to cgroup.subtree_control, as on a system without systemd), where the \
                 kernel creates that state only once one is"
                    .to_string(),
            );
            line(
                "to fix: enable any controller at the v2 root (echo +pids > \
                 /sys/fs/cgroup/cgroup.subtree_control, with the v2 mount point), or for v1 \
                 mount the perf_event hierarchy (mkdir /sys/fs/cgroup/perf_event && mount \
                 -t cgroup -o perf_event none /sys/fs/cgroup/perf_event) and give a cgroup \
                 there"
                    .to_string(),
            );
        }
        libc::EMFILE => line(
            "too many open files: each counter needs a file descriptor per CPU or thread; \
             raise the limit (ulimit -n) or measure fewer CPUs (-C) or events"
                .to_string(),
        ),
        libc::ENFILE => line("the system-wide file table is full".to_string()),
        libc::EBUSY => line(
            "the PMU is in exclusive use by another tool (a pinned or exclusive event)".to_string(),
        ),
        libc::ENOSYS => line(
            "this kernel has no perf events (built without CONFIG_PERF_EVENTS), or a seccomp \
             filter hides the system call"
                .to_string(),
        ),
        libc::E2BIG => line(
            "the kernel is too old for this request (it does not know a perf_event_attr \
             field that is set)"
                .to_string(),
        ),
        e if is_unsupported_errno(e) => line(format!(
            "the kernel has no {} event for this CPU or PMU",
            f.event
        )),
        _ => {}
    }
    if let Some(h) = &f.hint {
        line(h.clone());
    }
    s
}

impl fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&explain(self, &Privileges::current()))
    }
}

impl std::error::Error for OpenFailure {}

/// The message for a machine whose kernel accepts no hardware event (a VM without a
/// virtual PMU, typically), naming what sysfs does list. A CPU PMU that sysfs lists but
/// whose counters cannot be opened is called present but not usable.
pub fn no_pmu_message(pmus: &Pmus, errno: i32) -> String {
    let listed = if pmus.devices.is_empty() {
        "nothing".to_string()
    } else {
        pmus.devices.join(", ")
    };
    let hv = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| {
            c.lines()
                .find(|l| l.starts_with("flags"))
                .is_some_and(|l| l.split_whitespace().any(|w| w == "hypervisor"))
        })
        .unwrap_or(false);
    let hv = if hv {
        "; this CPU reports the hypervisor flag, so this is a virtual machine"
    } else {
        ""
    };
    let dir = crate::cpu::EVENT_SOURCE_DEVICES;
    if pmus.has_cpu_pmu_in_sysfs() {
        let cpu_pmus: Vec<&str> = pmus
            .devices
            .iter()
            .map(String::as_str)
            .filter(|d| *d == "cpu" || d.starts_with("cpu_"))
            .collect();
        return format!(
            "hardware PMU present but not usable: only software events are available\n  \
             {dir} lists {} but the kernel rejects hardware events with {}{hv}\n  \
             the PMU driver may have failed to initialise (see dmesg), or the hypervisor \
             exposes the PMU without counters",
            if cpu_pmus.is_empty() {
                "a CPU PMU".to_string()
            } else {
                cpu_pmus.join(", ")
            },
            errno_text(errno),
        );
    }
    format!(
        "no hardware PMU exposed (hypervisor?): only software events are available\n  \
         the kernel rejects hardware events with {} and {dir} lists no CPU PMU (only \
         {listed}){hv}\n  \
         hardware counters need a host, or a VM whose hypervisor exposes a virtual PMU \
         (KVM: enable_pmu, cloud: instance types with PMU access)",
        errno_text(errno),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(errno: i32, target: Target, exclude_kernel: bool) -> OpenFailure {
        OpenFailure {
            errno,
            event: "task-clock".into(),
            target,
            pmu: "software".into(),
            exclude_kernel,
            hint: None,
        }
    }

    const USER: Privileges = Privileges {
        paranoid: Some(2),
        root: false,
        perfmon: false,
    };

    #[test]
    fn system_wide_refusal_names_paranoid_and_cap_perfmon() {
        let m = explain(&failure(libc::EACCES, Target::Cpu(0), false), &USER);
        assert!(
            m.starts_with(
                "cannot open task-clock on CPU 0 (software PMU): Permission denied (EACCES)"
            ),
            "{m}"
        );
        assert!(m.contains("CAP_PERFMON"), "{m}");
        assert!(m.contains("kernel.perf_event_paranoid <= 0"), "{m}");
        assert!(m.contains("perf_event_paranoid is 2 here"), "{m}");
        assert!(m.contains("sysctl"), "{m}");
    }

    #[test]
    fn process_refusals_depend_on_kernel_mode_and_level() {
        let m = explain(&failure(libc::EACCES, Target::Task(42), false), &USER);
        assert!(m.contains("kernel.perf_event_paranoid <= 1"), "{m}");
        let m = explain(&failure(libc::EACCES, Target::Task(42), true), &USER);
        assert!(m.contains("<= 2"), "{m}");
        assert!(m.contains("CAP_SYS_PTRACE"), "{m}");
        let debian = Privileges {
            paranoid: Some(3),
            ..USER
        };
        let m = explain(&failure(libc::EACCES, Target::Task(42), true), &debian);
        assert!(m.contains(">= 3"), "{m}");
    }

    #[test]
    fn root_refusals_point_at_seccomp_and_lockdown() {
        let root = Privileges {
            paranoid: Some(2),
            root: true,
            perfmon: true,
        };
        let m = explain(&failure(libc::EPERM, Target::Cpu(0), false), &root);
        assert!(m.contains("seccomp"), "{m}");
        assert!(m.contains("(EPERM)"), "{m}");
    }

    #[test]
    fn cgroup_failures() {
        let t = Target::Cgroup { fd: 3, cpu: 1 };
        let m = explain(&failure(libc::EACCES, t, false), &USER);
        assert!(
            m.starts_with("cannot open task-clock on the cgroup on CPU 1 (software PMU)"),
            "{m}"
        );
        assert!(m.contains("per cgroup needs CAP_PERFMON"), "{m}");
        let m = explain(&failure(libc::ENOENT, t, false), &USER);
        assert!(
            m.contains("the kernel has no perf_event state for this cgroup"),
            "{m}"
        );
        assert!(
            m.contains("echo +pids > /sys/fs/cgroup/cgroup.subtree_control"),
            "{m}"
        );
        assert!(m.contains("mount -t cgroup -o perf_event"), "{m}");
    }

    #[test]
    fn other_errnos_and_hints() {
        let mut f = failure(libc::EMFILE, Target::Cpu(3), false);
        f.hint = Some("try -C 0".into());
        let m = explain(&f, &USER);
        assert!(m.contains("ulimit -n") && m.ends_with("try -C 0"), "{m}");
        let m = explain(&failure(libc::ESRCH, Target::Task(7), false), &USER);
        assert!(m.contains("no such process"), "{m}");
        assert!(is_unsupported_errno(libc::ENOENT));
        assert!(!is_unsupported_errno(libc::EACCES));
    }

    #[test]
    fn no_pmu_message_lists_what_sysfs_has() {
        let pmus = Pmus {
            core: vec![crate::cpu::CorePmu::legacy()],
            devices: vec!["software".into(), "tracepoint".into()],
        };
        let m = no_pmu_message(&pmus, libc::ENOENT);
        assert!(m.starts_with(
            "no hardware PMU exposed (hypervisor?): only software events are available"
        ));
        assert!(m.contains("only software, tracepoint"), "{m}");
        assert!(m.contains("with ENOENT (No such file or directory)"), "{m}");
        // A CPU PMU in sysfs whose counters cannot be opened: present but not usable.
        let pmus = Pmus {
            core: vec![crate::cpu::CorePmu::legacy()],
            devices: vec!["cpu".into(), "software".into()],
        };
        let m = no_pmu_message(&pmus, libc::ENOENT);
        assert!(m.starts_with("hardware PMU present but not usable"), "{m}");
        assert!(
            m.contains("lists cpu but the kernel rejects hardware events with ENOENT"),
            "{m}"
        );
    }
}
