//! CPUID: the one [`CpuInfo`] and [`Vendor`] of the suite (the MSR tools and
//! `perf-tools-pmc` both use them), read by [`Cpuid`] from the `cpuid` instruction or,
//! in fake trees for tests, from a text table.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where the kernel's msr and cpuid drivers put their device files (`/dev/cpu/N/msr`).
pub const DEFAULT_ROOT: &str = "/dev/cpu";

/// CPU vendor, from the CPUID vendor string: the one type the MSR tools and
/// `perf-tools-pmc` share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vendor {
    /// "GenuineIntel".
    Intel,
    /// "AuthenticAMD".
    Amd,
    /// "HygonGenuine" (AMD Zen derivative: same MSRs, k10temp and event encodings).
    Hygon,
    /// Anything else (another x86 vendor, or a non-x86 CPU), with its vendor string.
    Other(String),
}

impl Vendor {
    /// The vendor named by a CPUID vendor string (`GenuineIntel`, `AuthenticAMD`,
    /// `HygonGenuine`; anything else is [`Vendor::Other`]).
    pub fn from_signature(s: &str) -> Vendor {
        match s {
            "GenuineIntel" => Vendor::Intel,
            "AuthenticAMD" => Vendor::Amd,
            "HygonGenuine" => Vendor::Hygon,
            s => Vendor::Other(s.to_string()),
        }
    }

    /// True for AMD and Hygon.
    pub fn is_amd_like(&self) -> bool {
        matches!(self, Vendor::Amd | Vendor::Hygon)
    }
}

/// `Intel`, `AMD`, `Hygon`; other vendors as their quoted vendor string
/// (`"CentaurHauls"`, `"  Shanghai  "`), so spaces and odd bytes stay visible.
impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Vendor::Intel => f.write_str("Intel"),
            Vendor::Amd => f.write_str("AMD"),
            Vendor::Hygon => f.write_str("Hygon"),
            Vendor::Other(s) => write!(f, "{s:?}"),
        }
    }
}

/// What CPUID says about the processor (the facts the MSR tools need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// Vendor.
    pub vendor: Vendor,
    /// Display family (base + extended family when the base is 0xF).
    pub family: u32,
    /// Display model.
    pub model: u32,
    /// Highest standard leaf.
    pub max_leaf: u32,
    /// CPUID.06H:EAX[0]: digital thermal sensor (IA32_THERM_STATUS readout).
    pub dts: bool,
    /// CPUID.06H:EAX[6]: package thermal management (IA32_PACKAGE_THERM_STATUS).
    pub ptm: bool,
    /// CPUID.06H:ECX[0]: APERF/MPERF.
    pub aperfmperf: bool,
    /// CPUID.07H:EDX[15]: hybrid part (P- and E-cores).
    pub hybrid: bool,
    /// CPUID.16H:EAX: base frequency in MHz, when the leaf exists and is non-zero.
    pub base_mhz: Option<u32>,
    /// The hypervisor's signature (CPUID.01H:ECX[31] and leaf 0x40000000), if any.
    pub hypervisor: Option<String>,
}

/// `Intel family 0x6 model 0x5e` (vendor, display family and model).
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
    /// A CPU known by vendor, family and model only (no feature bits, no hypervisor):
    /// for tables of events by model and their tests.
    pub fn new(vendor: Vendor, family: u32, model: u32) -> CpuInfo {
        CpuInfo {
            vendor,
            family,
            model,
            max_leaf: 0,
            dts: false,
            ptm: false,
            aperfmperf: false,
            hybrid: false,
            base_mhz: None,
            hypervisor: None,
        }
    }

    /// The CPU this process runs on: [`Cpuid::Native`]'s answer, or (off x86) a
    /// [`Vendor::Other`] named after the architecture, family and model 0.
    pub fn detect() -> CpuInfo {
        Cpuid::Native
            .info()
            .unwrap_or_else(|_| CpuInfo::new(Vendor::Other(std::env::consts::ARCH.into()), 0, 0))
    }

    /// `AMD family 0x19 model 0x1`, plus ` under KVM` in a VM.
    pub fn summary(&self) -> String {
        let mut s = self.to_string();
        if let Some(h) = &self.hypervisor {
            s.push_str(&format!(" under {h}"));
        }
        s
    }
}

/// Name of the CPUID table of a fake tree, in its root (see [`Cpuid::Table`]).
pub const CPUID_TABLE: &str = "cpuid.table";

/// Where CPUID results come from.
#[derive(Debug, Clone)]
pub enum Cpuid {
    /// The `cpuid` instruction on the current CPU.
    Native,
    /// A text table standing in for the instruction in fake trees: one line per leaf,
    /// `LEAF SUBLEAF EAX EBX ECX EDX` (numbers decimal or `0x` hex). Leaves not listed
    /// read as zeros.
    Table(PathBuf),
}

impl Cpuid {
    /// The instruction for the system root, `<root>/cpuid.table` for a fake tree.
    pub fn for_root(root: &Path) -> Cpuid {
        if root == Path::new(DEFAULT_ROOT) {
            Cpuid::Native
        } else {
            Cpuid::Table(root.join(CPUID_TABLE))
        }
    }

    /// Runs one leaf: `[eax, ebx, ecx, edx]`.
    pub fn query(&self, leaf: u32, subleaf: u32) -> io::Result<[u32; 4]> {
        match self {
            Cpuid::Native => native_cpuid(leaf, subleaf),
            Cpuid::Table(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                for line in text.lines() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    let v: Vec<u64> = line
                        .split_whitespace()
                        .map(parse_num)
                        .collect::<io::Result<_>>()?;
                    if v.len() != 6 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: bad line {line:?}", path.display()),
                        ));
                    }
                    if v[0] == u64::from(leaf) && v[1] == u64::from(subleaf) {
                        return Ok([v[2] as u32, v[3] as u32, v[4] as u32, v[5] as u32]);
                    }
                }
                Ok([0; 4])
            }
        }
    }

    /// Decodes vendor, family, model and the feature bits the MSR tools need.
    pub fn info(&self) -> io::Result<CpuInfo> {
        let l0 = self.query(0, 0)?;
        let max_leaf = l0[0];
        let vendor = vendor(l0[1], l0[3], l0[2]);
        let l1 = if max_leaf >= 1 {
            self.query(1, 0)?
        } else {
            [0; 4]
        };
        let (family, model) = family_model(l1[0]);
        let l6 = if max_leaf >= 6 {
            self.query(6, 0)?
        } else {
            [0; 4]
        };
        let l7 = if max_leaf >= 7 {
            self.query(7, 0)?
        } else {
            [0; 4]
        };
        let base_mhz = if max_leaf >= 0x16 {
            Some(self.query(0x16, 0)?[0] & 0xffff).filter(|&m| m != 0)
        } else {
            None
        };
        let hypervisor = if l1[2] & (1 << 31) != 0 {
            let h = self.query(0x4000_0000, 0)?;
            let sig = signature(&[h[1], h[2], h[3]]);
            Some(match sig.as_str() {
                "KVMKVMKVM" => "KVM".to_string(),
                "Microsoft Hv" => "Hyper-V".to_string(),
                "XenVMMXenVMM" => "Xen".to_string(),
                "VMwareVMware" => "VMware".to_string(),
                "TCGTCGTCGTCG" => "QEMU TCG".to_string(),
                "" => "a hypervisor".to_string(),
                s => format!("hypervisor {s:?}"),
            })
        } else {
            None
        };
        Ok(CpuInfo {
            vendor,
            family,
            model,
            max_leaf,
            dts: l6[0] & 1 != 0,
            ptm: l6[0] & (1 << 6) != 0,
            aperfmperf: l6[2] & 1 != 0,
            hybrid: l7[3] & (1 << 15) != 0,
            base_mhz,
            hypervisor,
        })
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)] // __cpuid_count is unsafe before Rust 1.87, safe after
fn native_cpuid(leaf: u32, subleaf: u32) -> io::Result<[u32; 4]> {
    // SAFETY: the cpuid instruction exists on every x86_64 CPU and has no side effects.
    let r = unsafe { std::arch::x86_64::__cpuid_count(leaf, subleaf) };
    Ok([r.eax, r.ebx, r.ecx, r.edx])
}

#[cfg(not(target_arch = "x86_64"))]
fn native_cpuid(_leaf: u32, _subleaf: u32) -> io::Result<[u32; 4]> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "CPUID and MSRs exist only on x86",
    ))
}

/// A 12-byte CPUID signature from three registers (NULs trimmed).
pub fn signature(regs: &[u32]) -> String {
    let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_le_bytes()).collect();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\0')
        .to_string()
}

/// The vendor from CPUID leaf 0 (EBX, EDX, ECX, in that order).
pub fn vendor(ebx: u32, edx: u32, ecx: u32) -> Vendor {
    Vendor::from_signature(&signature(&[ebx, edx, ecx]))
}

/// Display family and model from CPUID.01H:EAX.
pub fn family_model(eax: u32) -> (u32, u32) {
    let base_family = (eax >> 8) & 0xf;
    let ext_family = (eax >> 20) & 0xff;
    let base_model = (eax >> 4) & 0xf;
    let ext_model = (eax >> 16) & 0xf;
    let family = if base_family == 0xf {
        base_family + ext_family
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        (ext_model << 4) | base_model
    } else {
        base_model
    };
    (family, model)
}

/// A number of the fake-machine and CPUID-table formats: decimal, or hex with `0x`;
/// `_` separators allowed.
pub fn parse_num(s: &str) -> io::Result<u64> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(&h.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    r.map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("not a number: {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_family_model() {
        // "GenuineIntel" as EBX, EDX, ECX.
        assert_eq!(vendor(0x756e_6547, 0x4965_6e69, 0x6c65_746e), Vendor::Intel);
        assert_eq!(vendor(0x6874_7541, 0x6974_6e65, 0x444d_4163), Vendor::Amd);
        assert_eq!(Vendor::from_signature("HygonGenuine"), Vendor::Hygon);
        assert!(Vendor::Hygon.is_amd_like() && !Vendor::Intel.is_amd_like());
        // Other vendors keep their string, shown quoted.
        let zhaoxin = Vendor::from_signature("  Shanghai  ");
        assert_eq!(zhaoxin, Vendor::Other("  Shanghai  ".into()));
        assert_eq!(zhaoxin.to_string(), "\"  Shanghai  \"");
        assert_eq!(Vendor::Amd.to_string(), "AMD");
        // Ivy Bridge-EP: 06_3E (eax 0x306e4).
        assert_eq!(family_model(0x0003_06e4), (6, 0x3e));
        // Zen 3 EPYC Milan: family 0xF + 0xA = 0x19, model 0x01 (eax 0x00a00f11).
        assert_eq!(family_model(0x00a0_0f11), (0x19, 0x01));
    }

    /// EBX, EDX, ECX of leaf 0 for a vendor string.
    fn regs(vendor: &str) -> (u32, u32, u32) {
        let b = vendor.as_bytes();
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        (w(0), w(4), w(8))
    }

    #[test]
    fn real_signatures_decode_to_vendor_family_model() {
        let decode = |v: &str, eax: u32| {
            let (b, d, c) = regs(v);
            let (family, model) = family_model(eax);
            CpuInfo::new(vendor(b, d, c), family, model)
        };
        // Skylake client (i7-6700: signature 0x506e3).
        assert_eq!(
            decode("GenuineIntel", 0x0005_06e3),
            CpuInfo::new(Vendor::Intel, 6, 0x5e)
        );
        // Alder Lake (0x90672): family 6 model 0x97.
        assert_eq!(
            decode("GenuineIntel", 0x0009_0672),
            CpuInfo::new(Vendor::Intel, 6, 0x97)
        );
        // Zen 3 EPYC Milan (0xa00f11), Zen 2 Rome (0x830f10).
        assert_eq!(
            decode("AuthenticAMD", 0x00a0_0f11),
            CpuInfo::new(Vendor::Amd, 0x19, 0x01)
        );
        assert_eq!(
            decode("AuthenticAMD", 0x0083_0f10),
            CpuInfo::new(Vendor::Amd, 0x17, 0x31)
        );
        assert_eq!(decode("HygonGenuine", 0x0090_0f01).vendor, Vendor::Hygon);
        // Unknown vendors are shown quoted, as in the MSR tools' messages.
        assert_eq!(
            decode("CentaurHauls", 0x6f1).to_string(),
            "\"CentaurHauls\" family 0x6 model 0xf"
        );
    }

    #[test]
    fn native_cpuid_reports_a_vendor() {
        let info = Cpuid::Native.info().unwrap();
        // Whatever the machine, leaf 0 names a vendor and leaf 1 a family.
        assert!(info.family > 0, "{info:?}");
        assert!(info.max_leaf >= 1, "{info:?}");
    }

    #[test]
    fn detect_names_a_vendor_here() {
        // Whatever the machine, the vendor string decodes to something printable.
        assert!(!CpuInfo::detect().to_string().is_empty());
    }
}
