//! The CPU (vendor, family and model from CPUID) and its core PMUs as sysfs lists them.
//!
//! A CPU without a hybrid design has one core PMU (`cpu` on x86), reached through the
//! generic `PERF_TYPE_HARDWARE`/`PERF_TYPE_HW_CACHE`/`PERF_TYPE_RAW` types. Hybrid Intel
//! CPUs register one PMU per core type (`cpu_core`, `cpu_atom`, `cpu_lowpower`), each with
//! its own type number and CPU list; events must be opened on each of them.

use perf_tools_core::cpulist;
use std::path::Path;

/// Where the kernel lists PMUs.
pub const EVENT_SOURCE_DEVICES: &str = "/sys/bus/event_source/devices";

/// The CPU (vendor, family, model) and its vendor: `perf-tools-cpu`'s one type, used
/// here for the event tables by model.
pub use perf_tools_cpu::cpuid::{CpuInfo, Vendor};

/// The kind of cores a PMU covers, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreKind {
    /// Performance cores (`cpu_core`), or the only PMU of a non-hybrid CPU.
    Core,
    /// Efficiency cores (`cpu_atom`).
    Atom,
    /// Low-power efficiency cores (`cpu_lowpower`).
    LowPower,
    /// Another `cpu_*` PMU this code does not know.
    Unknown,
}

/// One core PMU events are opened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePmu {
    /// Name in sysfs (`cpu`, `cpu_core`, `cpu_atom`); `cpu` for the generic types.
    pub name: String,
    /// PMU type number (`type` in sysfs): `PERF_TYPE_RAW` (4) for a non-hybrid CPU.
    pub type_: u32,
    /// True for one PMU of several on a hybrid CPU: generic events then carry the PMU
    /// type in config bits 32-63 and raw events use `type_` as the attr type.
    pub hybrid: bool,
    /// CPUs this PMU counts on (`cpus` in sysfs); `None` means all.
    pub cpus: Option<Vec<u32>>,
    /// Core kind.
    pub kind: CoreKind,
}

impl CorePmu {
    /// The single PMU of a non-hybrid CPU, addressed through the generic types.
    pub fn legacy() -> CorePmu {
        CorePmu {
            name: "cpu".into(),
            type_: crate::event::PERF_TYPE_RAW,
            hybrid: false,
            cpus: None,
            kind: CoreKind::Core,
        }
    }

    /// A hybrid PMU (for tests and discovery).
    pub fn hybrid(name: &str, type_: u32, cpus: Option<Vec<u32>>) -> CorePmu {
        let kind = match name {
            "cpu_core" => CoreKind::Core,
            "cpu_atom" => CoreKind::Atom,
            "cpu_lowpower" => CoreKind::LowPower,
            _ => CoreKind::Unknown,
        };
        CorePmu {
            name: name.into(),
            type_,
            hybrid: true,
            cpus,
            kind,
        }
    }

    /// True if this PMU counts on `cpu`.
    pub fn covers(&self, cpu: u32) -> bool {
        match &self.cpus {
            None => true,
            Some(c) => c.contains(&cpu),
        }
    }
}

/// The core PMUs found in sysfs, and every PMU name listed there (for messages).
#[derive(Debug, Clone)]
pub struct Pmus {
    /// PMUs to open hardware events on: one (legacy) or one per core type (hybrid).
    pub core: Vec<CorePmu>,
    /// All entries of `/sys/bus/event_source/devices`, sorted.
    pub devices: Vec<String>,
}

impl Pmus {
    /// Reads `root` (normally [`EVENT_SOURCE_DEVICES`]). Hybrid when at least one `cpu_*`
    /// PMU with a readable `type` exists; otherwise the legacy single PMU.
    pub fn discover(root: &Path) -> Pmus {
        let mut devices: Vec<String> = std::fs::read_dir(root)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        devices.sort();
        let mut core = Vec::new();
        for name in devices.iter().filter(|n| n.starts_with("cpu_")) {
            let dir = root.join(name);
            let Some(type_) = std::fs::read_to_string(dir.join("type"))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let cpus = std::fs::read_to_string(dir.join("cpus"))
                .ok()
                .and_then(|s| cpulist::parse(&s).ok());
            core.push(CorePmu::hybrid(name, type_, cpus));
        }
        if core.is_empty() {
            core.push(CorePmu::legacy());
        }
        Pmus { core, devices }
    }

    /// The system's PMUs.
    pub fn system() -> Pmus {
        Pmus::discover(Path::new(EVENT_SOURCE_DEVICES))
    }

    /// True if sysfs lists a CPU PMU: `cpu`, `cpu_*`, or an Arm/RISC-V/POWER core PMU.
    pub fn has_cpu_pmu_in_sysfs(&self) -> bool {
        self.devices.iter().any(|d| {
            d == "cpu"
                || d.starts_with("cpu_")
                || d.starts_with("armv")
                || d.contains("pmuv3")
                || d == "cpum_cf"
                || d == "riscv_pmu"
                || d == "power_pmu"
        })
    }

    /// True on a hybrid CPU.
    pub fn is_hybrid(&self) -> bool {
        self.core.iter().any(|p| p.hybrid)
    }
}

/// The online CPUs (`/sys/devices/system/cpu/online`), or 0..n from the scheduler if
/// that file is unreadable.
pub fn online_cpus() -> Vec<u32> {
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/online") {
        if let Ok(v) = cpulist::parse(&s) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(entries: &[(&str, Option<&str>, Option<&str>)]) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pmc-sysfs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, ty, cpus) in entries {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            if let Some(t) = ty {
                std::fs::write(d.join("type"), format!("{t}\n")).unwrap();
            }
            if let Some(c) = cpus {
                std::fs::write(d.join("cpus"), format!("{c}\n")).unwrap();
            }
        }
        dir
    }

    #[test]
    fn discovers_hybrid_pmus() {
        let dir = fake_sysfs(&[
            ("cpu_core", Some("4"), Some("0-7")),
            ("cpu_atom", Some("10"), Some("8-15")),
            ("software", Some("1"), None),
            ("msr", Some("9"), None),
        ]);
        let p = Pmus::discover(&dir);
        assert!(p.is_hybrid());
        assert!(p.has_cpu_pmu_in_sysfs());
        assert_eq!(p.core.len(), 2);
        let atom = p.core.iter().find(|c| c.name == "cpu_atom").unwrap();
        assert_eq!((atom.type_, atom.kind), (10, CoreKind::Atom));
        assert!(atom.covers(8) && !atom.covers(0));
        let core = p.core.iter().find(|c| c.name == "cpu_core").unwrap();
        assert_eq!((core.type_, core.kind), (4, CoreKind::Core));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_cpu_pmu_in_a_vm_falls_back_to_the_legacy_pmu() {
        // This machine's list: a KVM guest without a virtual PMU.
        let dir = fake_sysfs(&[
            ("breakpoint", Some("5"), None),
            ("msr", Some("9"), None),
            ("software", Some("1"), None),
            ("tracepoint", Some("2"), None),
            ("uprobe", Some("8"), None),
        ]);
        let p = Pmus::discover(&dir);
        assert!(!p.is_hybrid());
        assert!(!p.has_cpu_pmu_in_sysfs());
        assert_eq!(p.core, vec![CorePmu::legacy()]);
        assert_eq!(p.devices.len(), 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_cpu_pmu_is_legacy() {
        let dir = fake_sysfs(&[("cpu", Some("4"), None), ("software", Some("1"), None)]);
        let p = Pmus::discover(&dir);
        assert!(!p.is_hybrid());
        assert!(p.has_cpu_pmu_in_sysfs());
        assert_eq!(p.core[0].type_, 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
