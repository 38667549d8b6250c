//! The CONTAINER section: whether this process itself runs in a container, whether
//! tracefs is reachable from here, and what a container lacks for tracing (capabilities,
//! seccomp, a read-only /sys), each with the `docker run` / Kubernetes fix.
//!
//! Only reliable signals decide "inside": a PID namespace other than the initial one,
//! `container=` in PID 1's environment, `/run/.containerenv` (on a tmpfs, so not left
//! over from an image), PID 1's cgroup named by a container runtime, or a mount
//! namespace other than PID 1's while sharing the host's PIDs. `/.dockerenv` alone is
//! not: it is a file in the root file system and survives into VM images built from
//! containers (as on the machine these tools are developed on).

use perf_tools_core::check::{Report, Status};
use perf_tools_ftrace::check::{Location, MOUNT_COMMAND};

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO`).
pub const PID_INIT_INO: u64 = 0xEFFF_FFFC;
/// The inode of the initial cgroup namespace (`PROC_CGROUP_INIT_INO`).
pub const CGROUP_INIT_INO: u64 = 0xEFFF_FFFB;

/// `CAP_SYS_ADMIN`'s bit in the capability sets.
pub const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_PERFMON`'s bit (Linux 5.8+).
pub const CAP_PERFMON: u32 = 38;

/// The fix for missing capabilities or seccomp, for Docker and Kubernetes.
pub const CAPS_FIX: &str =
    "docker run --cap-add SYS_ADMIN (plus --cap-add PERFMON for counters on \
    5.8+), or --privileged; Kubernetes: securityContext.capabilities.add: [\"SYS_ADMIN\"] \
    (or privileged: true)";
/// The fix for a seccomp filter.
pub const SECCOMP_FIX: &str = "docker run --security-opt seccomp=unconfined (or --privileged); \
    Kubernetes: securityContext.seccompProfile.type: Unconfined";
/// The fix for tracefs not reachable or read-only inside a container.
pub const TRACEFS_FIX: &str = "docker run -v /sys/kernel/tracing:/sys/kernel/tracing (or \
    --privileged); Kubernetes: a hostPath volume of /sys/kernel/tracing mounted there";

/// What was observed about PID 1, the namespaces and the marker files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// `/.dockerenv` exists (not decisive: see the module documentation).
    pub dockerenv: bool,
    /// `/run/.containerenv` exists (Podman, CRI-O).
    pub containerenv: bool,
    /// PID 1's environment: `None` when unreadable, `Some(None)` when it has no
    /// `container=`, `Some(Some(v))` with its value.
    pub pid1_container_env: Option<Option<String>>,
    /// PID 1's cgroup path (v2, else the first v1 line), when readable.
    pub pid1_cgroup: Option<String>,
    /// This process's PID namespace inode, when readable.
    pub pid_ns: Option<u64>,
    /// This process's cgroup namespace inode, when readable.
    pub cgroup_ns: Option<u64>,
    /// Whether this process's mount namespace is PID 1's (`None`: PID 1's unreadable).
    pub same_mnt_ns_as_pid1: Option<bool>,
}

/// The answer to "is this process in a container?" (the `runs_in` fact's detail starts
/// with `host:`, `container:` or `unknown:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inside {
    /// Yes, by a reliable signal.
    Yes,
    /// No: the initial namespaces and no runtime's mark.
    No,
    /// Cannot tell.
    Unknown,
}

/// The value of `container=` in an environment block (NUL-separated `KEY=value`).
pub fn container_env(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"container="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Decides from the signals, with the reasons.
pub fn inside(s: &Signals) -> (Inside, String) {
    let mut yes = Vec::new();
    if let Some(Some(v)) = &s.pid1_container_env {
        yes.push(format!("container={v} in PID 1's environment"));
    }
    if s.containerenv {
        yes.push("/run/.containerenv (Podman/CRI-O)".to_string());
    }
    if let Some(cg) = &s.pid1_cgroup {
        if let Some(c) = cg
            .split('/')
            .find_map(perf_tools_core::cgroup::container_of_name)
        {
            yes.push(format!("PID 1's cgroup {cg} is a {} cgroup", c.0));
        }
    }
    if let Some(ino) = s.pid_ns {
        if ino != PID_INIT_INO {
            yes.push("own PID namespace".to_string());
        }
    }
    if s.pid_ns == Some(PID_INIT_INO) && s.same_mnt_ns_as_pid1 == Some(false) {
        yes.push("the host's PIDs but another mount namespace than PID 1 (--pid=host)".into());
    }
    let docker_note = if s.dockerenv {
        "; /.dockerenv exists but is not evidence by itself (a file of the image)"
    } else {
        ""
    };
    if !yes.is_empty() {
        if s.dockerenv {
            yes.push("/.dockerenv".to_string());
        }
        return (Inside::Yes, format!("container: {}", yes.join(", ")));
    }
    match (s.pid_ns, s.cgroup_ns) {
        (Some(PID_INIT_INO), Some(CGROUP_INIT_INO)) => (
            Inside::No,
            format!("host: initial PID and cgroup namespaces{docker_note}"),
        ),
        (Some(PID_INIT_INO), Some(_)) => (
            Inside::Unknown,
            format!(
                "unknown: the host's PID namespace but an own cgroup namespace (a \
                 container run with --pid=host, or a service with a private cgroup \
                 namespace){docker_note}"
            ),
        ),
        _ => (
            Inside::Unknown,
            format!("unknown: the namespaces of this process are not readable{docker_note}"),
        ),
    }
}

/// A hexadecimal capability set of `/proc/PID/status` (`CapEff:` ...).
pub fn cap_set(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        u64::from_str_radix(v.trim(), 16).ok()
    })
}

/// The `Seccomp:` mode of `/proc/PID/status` (0 off, 1 strict, 2 filter) and the
/// number of filters (`Seccomp_filters:`, Linux 5.9+).
pub fn seccomp(status: &str) -> Option<(u32, Option<u32>)> {
    let get = |f: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(f)?
                .strip_prefix(':')?
                .trim()
                .parse::<u32>()
                .ok()
        })
    };
    Some((get("Seccomp")?, get("Seccomp_filters")))
}

/// The mount that holds `path` in mountinfo text (the longest mount point that is a
/// prefix of it, the last one mounted when stacked): (mount point, fs type, read-only).
pub fn mount_of(mountinfo: &str, path: &str) -> Option<(String, String, bool)> {
    let mut best: Option<(String, String, bool)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        if l.len() < 6 {
            continue;
        }
        let point = l[4];
        let under = path == point
            || point == "/"
            || path
                .strip_prefix(point)
                .is_some_and(|rest| rest.starts_with('/'));
        if !under {
            continue;
        }
        let ro = l[5].split(',').any(|o| o == "ro");
        let fstype = right.split(' ').next().unwrap_or("").to_string();
        if best.as_ref().is_none_or(|b| point.len() >= b.0.len()) {
            best = Some((point.to_string(), fstype, ro));
        }
    }
    best
}

/// The facts of the CONTAINER section, from the texts given (so fixtures can stand in
/// for `/proc/self/status` and `/proc/self/mountinfo`).
pub fn section(
    r: &mut Report,
    signals: &Signals,
    location: &Location,
    status: &str,
    mountinfo: &str,
) {
    // Informational: the detail says host, container or unknown, and why.
    let (_, detail) = inside(signals);
    r.item("runs_in", Status::Yes, detail, "", false);

    let tracefs_dir = match location {
        Location::Mounted(t) => Some(t.root().display().to_string()),
        _ => None,
    };
    match location {
        Location::Mounted(t) => r.item(
            "tracefs_reachable",
            Status::Yes,
            format!("tracefs at {}", t.root().display()),
            "",
            false,
        ),
        Location::Mountable(p) => r.item(
            "tracefs_reachable",
            Status::No,
            format!("not mounted ({} exists)", p.display()),
            format!("{MOUNT_COMMAND}; in a container: {TRACEFS_FIX}"),
            false,
        ),
        Location::Absent => r.item(
            "tracefs_reachable",
            Status::No,
            "no tracefs here (no /sys/kernel/tracing)",
            format!("in a container: {TRACEFS_FIX}; else a kernel with CONFIG_TRACING=y"),
            false,
        ),
    };

    match cap_set(status, "CapEff") {
        Some(eff) => {
            let has = |bit: u32| eff & (1u64 << bit) != 0;
            let (admin, perfmon) = (has(CAP_SYS_ADMIN), has(CAP_PERFMON));
            let word = |b: bool| if b { "held" } else { "missing" };
            r.item(
                "capabilities",
                if admin {
                    Status::Yes
                } else if perfmon {
                    Status::Degraded
                } else {
                    Status::No
                },
                format!(
                    "CapEff {eff:016x}: CAP_SYS_ADMIN {} (tracefs), CAP_PERFMON {} (counters){}",
                    word(admin),
                    word(perfmon),
                    if !admin && perfmon {
                        ": counters only, no tracing"
                    } else {
                        ""
                    }
                ),
                CAPS_FIX,
                false,
            )
        }
        None => r.item(
            "capabilities",
            Status::No,
            "no CapEff line in /proc/self/status",
            CAPS_FIX,
            false,
        ),
    };

    match seccomp(status) {
        Some((0, _)) => r.item("seccomp", Status::Yes, "off (Seccomp: 0)", "", false),
        Some((1, _)) => r.item(
            "seccomp",
            Status::No,
            "strict mode (Seccomp: 1): only read, write, exit and sigreturn are allowed",
            SECCOMP_FIX,
            false,
        ),
        Some((m, n)) => r.item(
            "seccomp",
            Status::Degraded,
            format!(
                "a filter is active (Seccomp: {m}{}): runtimes' default profiles refuse \
                 perf_event_open (see sw_counters) and may refuse other calls the tools make",
                n.map(|n| format!(", {n} filters")).unwrap_or_default()
            ),
            SECCOMP_FIX,
            false,
        ),
        None => r.item(
            "seccomp",
            Status::Yes,
            "not reported (kernel without CONFIG_SECCOMP)",
            "",
            false,
        ),
    };

    let sys = mount_of(mountinfo, "/sys");
    let tr = tracefs_dir.as_deref().and_then(|d| mount_of(mountinfo, d));
    let (st, detail) = match (&sys, &tr) {
        (_, Some((p, _, true))) => (Status::No, format!("tracefs ({p}) is mounted read-only")),
        (Some((_, _, true)), Some((p, fs, false))) if fs == "tracefs" => (
            Status::Yes,
            format!("/sys is read-only, but {p} is its own read-write tracefs mount"),
        ),
        (Some((_, _, true)), _) => (Status::No, "/sys is mounted read-only".to_string()),
        (Some((p, _, false)), _) => (Status::Yes, format!("{p} is mounted read-write")),
        (None, _) => (Status::No, "/sys is not mounted".to_string()),
    };
    r.item("sys_writable", st, detail, TRACEFS_FIX, false);
}

/// Reads this host's signals.
pub fn signals() -> Signals {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(p).map(|m| m.ino()).ok();
    let dev_ino = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let mnt_self = dev_ino("/proc/self/ns/mnt");
    let mnt_1 = dev_ino("/proc/1/ns/mnt");
    Signals {
        dockerenv: std::path::Path::new("/.dockerenv").exists(),
        containerenv: std::path::Path::new("/run/.containerenv").exists(),
        pid1_container_env: std::fs::read("/proc/1/environ")
            .ok()
            .map(|e| container_env(&e)),
        pid1_cgroup: perf_tools_core::cgroup::of_task(1),
        pid_ns: ino("/proc/self/ns/pid"),
        cgroup_ns: ino("/proc/self/ns/cgroup"),
        same_mnt_ns_as_pid1: match (mnt_self, mnt_1) {
            (Some(a), Some(b)) => Some(a == b),
            _ => None,
        },
    }
}

/// The CONTAINER section of this host.
pub fn gather(r: &mut Report, location: &Location) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    section(r, &signals(), location, &status, &mountinfo);
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_STATUS: &str = "Name:\tcat\nUmask:\t0022\nCapInh:\t0000000000000000\n\
        CapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n\
        CapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n";
    /// `docker run` defaults: no CAP_SYS_ADMIN/CAP_PERFMON, the default seccomp profile.
    const DOCKER_STATUS: &str = "CapEff:\t00000000a80425fb\nNoNewPrivs:\t0\n\
        Seccomp:\t2\nSeccomp_filters:\t1\n";
    const HOST_MOUNTS: &str = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
        27 1 8:1 / / rw,relatime - ext4 /dev/vda1 rw\n\
        23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n\
        45 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw\n";
    const DOCKER_MOUNTS: &str = "600 500 0:50 / / rw,relatime - overlay overlay rw\n\
        610 600 0:55 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro\n";
    const DOCKER_TRACING_MOUNTS: &str = "600 500 0:50 / / rw,relatime - overlay overlay rw\n\
        610 600 0:55 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro\n\
        620 610 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw\n";

    fn host_signals() -> Signals {
        Signals {
            dockerenv: true,
            pid1_container_env: None,
            pid1_cgroup: Some("/".into()),
            pid_ns: Some(PID_INIT_INO),
            cgroup_ns: Some(CGROUP_INIT_INO),
            ..Signals::default()
        }
    }

    #[test]
    fn parsers() {
        assert_eq!(cap_set(HOST_STATUS, "CapEff"), Some(0x1fffeffffff));
        assert_eq!(cap_set(DOCKER_STATUS, "CapEff"), Some(0xa80425fb));
        assert_eq!(cap_set("CapEff:\tzz\n", "CapEff"), None);
        assert_eq!(seccomp(HOST_STATUS), Some((0, Some(0))));
        assert_eq!(seccomp(DOCKER_STATUS), Some((2, Some(1))));
        assert_eq!(seccomp("Seccomp:\t2\n"), Some((2, None)));
        assert_eq!(seccomp("Name:\tx\n"), None);
        assert_eq!(
            container_env(b"PATH=/bin\0container=podman\0HOME=/\0"),
            Some("podman".into())
        );
        assert_eq!(container_env(b"PATH=/bin\0HOME=/\0"), None);
        assert_eq!(
            mount_of(HOST_MOUNTS, "/sys/kernel/tracing"),
            Some(("/sys/kernel/tracing".into(), "tracefs".into(), false))
        );
        assert_eq!(
            mount_of(HOST_MOUNTS, "/sys/kernel/debug"),
            Some(("/sys".into(), "sysfs".into(), false))
        );
        assert_eq!(
            mount_of(DOCKER_MOUNTS, "/sys/kernel/tracing"),
            Some(("/sys".into(), "sysfs".into(), true))
        );
        // /system is not under /sys.
        assert_eq!(
            mount_of(DOCKER_MOUNTS, "/system"),
            Some(("/".into(), "overlay".into(), false))
        );
    }

    #[test]
    fn inside_decisions() {
        // This host: /.dockerenv left in the image, initial namespaces: no.
        assert_eq!(
            inside(&host_signals()),
            (
                Inside::No,
                "host: initial PID and cgroup namespaces; /.dockerenv exists but is not \
                 evidence by itself (a file of the image)"
                    .to_string()
            )
        );
        let plain = Signals {
            dockerenv: false,
            ..host_signals()
        };
        assert_eq!(inside(&plain).1, "host: initial PID and cgroup namespaces");
        // docker run: own namespaces, PID 1 is the container's entry point.
        let docker = Signals {
            dockerenv: true,
            pid1_container_env: Some(None),
            pid1_cgroup: Some("/".into()),
            pid_ns: Some(4026532201),
            cgroup_ns: Some(4026532202),
            ..Signals::default()
        };
        assert_eq!(
            inside(&docker),
            (
                Inside::Yes,
                "container: own PID namespace, /.dockerenv".to_string()
            )
        );
        // Podman / systemd-nspawn: container= in PID 1's environment.
        let podman = Signals {
            containerenv: true,
            pid1_container_env: Some(Some("podman".into())),
            pid_ns: Some(4026532201),
            ..Signals::default()
        };
        assert_eq!(
            inside(&podman).1,
            "container: container=podman in PID 1's environment, /run/.containerenv (Podman/CRI-O), own PID namespace"
        );
        // --pid=host on a v1 host: PID 1 is the host's init, but the mounts differ.
        let pid_host = Signals {
            same_mnt_ns_as_pid1: Some(false),
            ..host_signals()
        };
        assert_eq!(inside(&pid_host).0, Inside::Yes);
        // No cgroup namespace (v1 runtimes): PID 1's cgroup names the container.
        let v1 = Signals {
            pid1_cgroup: Some(format!("/docker/{}", "ab".repeat(32))),
            pid_ns: Some(4026532201),
            cgroup_ns: Some(CGROUP_INIT_INO),
            ..Signals::default()
        };
        assert!(
            inside(&v1).1.contains("is a container cgroup"),
            "{:?}",
            inside(&v1)
        );
        // Host PIDs, own cgroup namespace: cannot tell.
        let unsure = Signals {
            cgroup_ns: Some(4026532202),
            ..host_signals()
        };
        assert_eq!(inside(&unsure).0, Inside::Unknown);
        assert_eq!(inside(&Signals::default()).0, Inside::Unknown);
    }

    fn rows(r: &Report) -> Vec<(String, Status, String, String)> {
        r.items
            .iter()
            .map(|i| (i.name.clone(), i.status, i.detail.clone(), i.fix.clone()))
            .collect()
    }

    #[test]
    fn default_docker_container_lacks_everything_with_fixes() {
        let mut r = Report::new("container");
        let docker = Signals {
            dockerenv: true,
            pid_ns: Some(4026532201),
            cgroup_ns: Some(4026532202),
            ..Signals::default()
        };
        section(
            &mut r,
            &docker,
            &Location::Absent,
            DOCKER_STATUS,
            DOCKER_MOUNTS,
        );
        let v = rows(&r);
        let keys: Vec<&str> = v.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            keys,
            [
                "runs_in",
                "tracefs_reachable",
                "capabilities",
                "seccomp",
                "sys_writable"
            ]
        );
        assert_eq!(v[0].2, "container: own PID namespace, /.dockerenv");
        assert_eq!(v[1].1, Status::No);
        assert!(v[1]
            .3
            .contains("-v /sys/kernel/tracing:/sys/kernel/tracing"));
        assert_eq!(
            (v[2].1, v[2].2.as_str()),
            (
                Status::No,
                "CapEff 00000000a80425fb: CAP_SYS_ADMIN missing (tracefs), CAP_PERFMON missing (counters)"
            )
        );
        assert!(v[2].3.contains("--cap-add SYS_ADMIN") && v[2].3.contains("securityContext"));
        assert_eq!(v[3].1, Status::Degraded);
        assert!(v[3]
            .2
            .starts_with("a filter is active (Seccomp: 2, 1 filters)"));
        assert!(v[3].3.contains("seccomp=unconfined"));
        assert_eq!(
            (v[4].1, v[4].2.as_str()),
            (Status::No, "/sys is mounted read-only")
        );
    }

    #[test]
    fn tracing_bind_mount_over_a_read_only_sys_is_fine() {
        let mut r = Report::new("container");
        let t = perf_tools_ftrace::tracefs::Tracefs::at("/sys/kernel/tracing");
        section(
            &mut r,
            &host_signals(),
            &Location::Mounted(t),
            HOST_STATUS,
            DOCKER_TRACING_MOUNTS,
        );
        let v = rows(&r);
        assert_eq!(
            (v[4].1, v[4].2.as_str()),
            (
                Status::Yes,
                "/sys is read-only, but /sys/kernel/tracing is its own read-write tracefs mount"
            )
        );
        assert_eq!(v[1].2, "tracefs at /sys/kernel/tracing");
        assert_eq!(v[2].1, Status::Yes);
        assert_eq!(v[3].2, "off (Seccomp: 0)");
        // CAP_PERFMON without CAP_SYS_ADMIN: counters, no tracing.
        let mut r = Report::new("container");
        let perfmon_only = format!("CapEff:\t{:016x}\nSeccomp:\t0\n", 1u64 << CAP_PERFMON);
        section(
            &mut r,
            &host_signals(),
            &Location::Absent,
            &perfmon_only,
            HOST_MOUNTS,
        );
        assert_eq!(r.items[2].status, Status::Degraded);
        assert!(r.items[2].detail.ends_with(": counters only, no tracing"));
    }
}
