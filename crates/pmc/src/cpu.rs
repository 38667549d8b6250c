//! The CPU (vendor, family and model from CPUID) and its core PMUs as sysfs lists them.
//!
//! A CPU without a hybrid design has one core PMU (`cpu` on x86), reached through the
//! generic `PERF_TYPE_HARDWARE`/`PERF_TYPE_HW_CACHE`/`PERF_TYPE_RAW` types. Hybrid Intel
//! CPUs register one PMU per core type (`cpu_core`, `cpu_atom`, `cpu_lowpower`), each with
//! its own type number and CPU list; events must be opened on each of them.

use std::fmt;
use std::path::Path;

/// Where the kernel lists PMUs.
pub const EVENT_SOURCE_DEVICES: &str = "/sys/bus/event_source/devices";

/// CPU vendor: the MSR tools' type, shared.
pub use perf_tools_cpu::msr::Vendor;

/// Vendor, display family and display model of the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// Vendor.
    pub vendor: Vendor,
    /// Display family (base family plus extended family when the base is 0xf).
    pub family: u32,
    /// Display model (extended model folded in for families 6 and 0xf and above).
    pub model: u32,
}

impl fmt::Display for CpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} family {:#x} model {:#x}",
            self.vendor, self.family, self.model
        )
    }
}

impl CpuInfo {
    /// Decodes CPUID leaf 0 (vendor string registers EBX, EDX, ECX) and leaf 1 EAX.
    pub fn from_cpuid(ebx: u32, edx: u32, ecx: u32, leaf1_eax: u32) -> CpuInfo {
        let (family, model) = perf_tools_cpu::msr::decode::family_model(leaf1_eax);
        CpuInfo {
            vendor: perf_tools_cpu::msr::decode::vendor(ebx, edx, ecx),
            family,
            model,
        }
    }

    /// The CPU this process runs on (CPUID on x86; `Other` elsewhere).
    pub fn detect() -> CpuInfo {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::__cpuid;
            // SAFETY: CPUID is available on every x86_64 CPU; leaves 0 and 1 always exist.
            #[allow(unused_unsafe)]
            let (l0, l1) = unsafe { (__cpuid(0), __cpuid(1)) };
            CpuInfo::from_cpuid(l0.ebx, l0.edx, l0.ecx, l1.eax)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            CpuInfo {
                vendor: Vendor::Other(std::env::consts::ARCH.to_string()),
                family: 0,
                model: 0,
            }
        }
    }
}

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
                .and_then(|s| parse_cpu_list(s.trim()).ok());
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

/// Parses a kernel CPU list such as `0-3,8,10-11` into sorted, deduplicated CPU numbers.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, String> {
    let mut v = Vec::new();
    if s.trim().is_empty() {
        return Ok(v);
    }
    for part in s.trim().split(',') {
        let part = part.trim();
        let bad = || format!("invalid CPU list {s:?}: expected e.g. 0 or 0-3,8");
        if let Some((a, b)) = part.split_once('-') {
            let a: u32 = a.trim().parse().map_err(|_| bad())?;
            let b: u32 = b.trim().parse().map_err(|_| bad())?;
            if a > b || b - a > 65535 {
                return Err(bad());
            }
            v.extend(a..=b);
        } else {
            v.push(part.parse().map_err(|_| bad())?);
        }
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// The online CPUs (`/sys/devices/system/cpu/online`), or 0..n from the scheduler if
/// that file is unreadable.
pub fn online_cpus() -> Vec<u32> {
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/online") {
        if let Ok(v) = parse_cpu_list(s.trim()) {
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

    fn regs(vendor: &str) -> (u32, u32, u32) {
        let b = vendor.as_bytes();
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        (w(0), w(4), w(8))
    }

    #[test]
    fn cpuid_decoding_of_real_signatures() {
        // Skylake client (i7-6700: signature 0x506e3).
        let (b, d, c) = regs("GenuineIntel");
        let cpu = CpuInfo::from_cpuid(b, d, c, 0x0005_06e3);
        assert_eq!(
            (cpu.vendor.clone(), cpu.family, cpu.model),
            (Vendor::Intel, 6, 0x5e)
        );
        // Alder Lake (0x90672): family 6 model 0x97.
        let cpu = CpuInfo::from_cpuid(b, d, c, 0x0009_0672);
        assert_eq!((cpu.family, cpu.model), (6, 0x97));
        // Zen 3 EPYC Milan (0xa00f11): family 0x19 model 0x01.
        let (b, d, c) = regs("AuthenticAMD");
        let cpu = CpuInfo::from_cpuid(b, d, c, 0x00a0_0f11);
        assert_eq!(
            (cpu.vendor.clone(), cpu.family, cpu.model),
            (Vendor::Amd, 0x19, 0x01)
        );
        // Zen 2 Rome (0x830f10): family 0x17 model 0x31.
        let cpu = CpuInfo::from_cpuid(b, d, c, 0x0083_0f10);
        assert_eq!((cpu.family, cpu.model), (0x17, 0x31));
        let (b, d, c) = regs("HygonGenuine");
        assert_eq!(
            CpuInfo::from_cpuid(b, d, c, 0x0090_0f01).vendor,
            Vendor::Hygon
        );
        let (b, d, c) = regs("CentaurHauls");
        assert_eq!(
            CpuInfo::from_cpuid(b, d, c, 0x6f1).vendor,
            Vendor::Other("CentaurHauls".into())
        );
        // Unknown vendors are shown quoted, as in the MSR tools' messages.
        assert_eq!(
            CpuInfo::from_cpuid(b, d, c, 0x6f1).to_string(),
            "\"CentaurHauls\" family 0x6 model 0xf"
        );
    }

    #[test]
    fn detect_runs_here() {
        let cpu = CpuInfo::detect();
        // Whatever the machine, the vendor string decodes to something printable.
        assert!(!cpu.to_string().is_empty());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("1,1,0").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("-1").is_err());
        assert!(!online_cpus().is_empty());
    }

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
