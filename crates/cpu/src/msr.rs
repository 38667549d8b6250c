//! Model-specific registers through `/dev/cpu/N/msr`, and register decoding.
//!
//! * [`Msr`]: the reader. It takes a root directory (default `/dev/cpu`) holding
//!   `N/msr` files and reads a register with an 8-byte `pread` at offset = register
//!   number, as the kernel's msr driver defines. When `/dev/cpu/0/msr` is missing and we
//!   are root it runs `modprobe msr` once. Errors say what is missing and what to do
//!   ([`MsrError`]).
//! * [`Machine`]: where a tool finds the machine (MSRs, [`Cpuid`], sysfs, procfs): this
//!   one or a fake tree.
//! * [`reg`]: register numbers (Intel SDM and AMD APM names). [`decode`]: field extraction and the maths
//!   on them (temperature, turbo ratios, AMD P-state frequency).
//! * [`fake`]: builds fake machine trees (sparse `msr` files, a CPUID table) for tests.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cpuid::Cpuid;
pub use crate::cpuid::DEFAULT_ROOT;

/// Register numbers, with their names in the Intel SDM (volume 4) and the AMD APM /
/// PPRs.
pub mod reg {
    /// Time-stamp counter (0x10).
    pub const IA32_TIME_STAMP_COUNTER: u32 = 0x10;
    /// Intel: base (non-turbo) ratio in bits 15:8 (0xCE).
    pub const MSR_PLATFORM_INFO: u32 = 0xce;
    /// Maximum-performance cycles, counted in C0 only (0xE7; Intel and AMD).
    pub const IA32_MPERF: u32 = 0xe7;
    /// Actual-performance cycles, counted in C0 only (0xE8; Intel and AMD).
    pub const IA32_APERF: u32 = 0xe8;
    /// Intel: per-core thermal status; digital readout in bits 22:16 (0x19C).
    pub const IA32_THERM_STATUS: u32 = 0x19c;
    /// Intel: TCC activation temperature (TjMax) in bits 23:16 (0x1A2).
    pub const MSR_TEMPERATURE_TARGET: u32 = 0x1a2;
    /// Intel: maximum turbo ratio by number of active cores, one byte each (0x1AD).
    pub const MSR_TURBO_RATIO_LIMIT: u32 = 0x1ad;
    /// Intel: package thermal status, same layout as IA32_THERM_STATUS (0x1B1).
    pub const IA32_PACKAGE_THERM_STATUS: u32 = 0x1b1;
    /// Intel: turbo ratios for 9..16 active cores, or core counts on some models
    /// (0x1AE).
    pub const MSR_TURBO_RATIO_LIMIT1: u32 = 0x1ae;
    /// AMD: hardware configuration; bit 25 disables core performance boost.
    pub const AMD_HWCR: u32 = 0xc001_0015;
    /// AMD: P-state 0 definition (P0 is the base frequency; P1..P7 follow it).
    pub const AMD_PSTATE_DEF0: u32 = 0xc001_0064;

    /// A register's name for messages, e.g. `IA32_THERM_STATUS (0x19c)`.
    pub fn describe(reg: u32) -> String {
        let name = match reg {
            IA32_TIME_STAMP_COUNTER => "IA32_TIME_STAMP_COUNTER",
            MSR_PLATFORM_INFO => "MSR_PLATFORM_INFO",
            IA32_MPERF => "IA32_MPERF",
            IA32_APERF => "IA32_APERF",
            IA32_THERM_STATUS => "IA32_THERM_STATUS",
            MSR_TEMPERATURE_TARGET => "MSR_TEMPERATURE_TARGET",
            MSR_TURBO_RATIO_LIMIT => "MSR_TURBO_RATIO_LIMIT",
            MSR_TURBO_RATIO_LIMIT1 => "MSR_TURBO_RATIO_LIMIT1",
            IA32_PACKAGE_THERM_STATUS => "IA32_PACKAGE_THERM_STATUS",
            AMD_HWCR => "HWCR",
            AMD_PSTATE_DEF0 => "PStateDef0",
            _ => return format!("MSR {reg:#x}"),
        };
        format!("{name} ({reg:#x})")
    }
}

/// Why a register could not be read.
#[derive(Debug)]
pub enum MsrError {
    /// No `N/msr` device file: the msr driver is not there (or the CPU does not exist).
    NoDevice {
        /// The missing path.
        path: PathBuf,
        /// What happened when we tried to load the driver, if we tried.
        note: Option<String>,
    },
    /// Open or read refused: reading MSRs needs CAP_SYS_RAWIO.
    Permission {
        /// The device file.
        path: PathBuf,
    },
    /// The CPU is offline (ENXIO from the driver).
    Offline {
        /// The CPU.
        cpu: u32,
    },
    /// The CPU (or hypervisor) does not implement the register: the read faulted (EIO),
    /// or a fake file ends before it.
    NotImplemented {
        /// The CPU.
        cpu: u32,
        /// The register.
        reg: u32,
    },
    /// Any other I/O error.
    Io {
        /// The device file.
        path: PathBuf,
        /// The register, if the error came from a read.
        reg: Option<u32>,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for MsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsrError::NoDevice { path, note } => {
                write!(
                    f,
                    "no {}: kernel lacks CONFIG_X86_MSR or the msr module",
                    path.display()
                )?;
                if let Some(n) = note {
                    write!(f, " ({n})")?;
                }
                Ok(())
            }
            MsrError::Permission { path } => {
                if nix::unistd::geteuid().is_root() {
                    write!(
                        f,
                        "reading {} needs CAP_SYS_RAWIO, which this root process lacks (a container or a capability bounding set dropped it)",
                        path.display()
                    )
                } else {
                    write!(
                        f,
                        "reading {} needs CAP_SYS_RAWIO: not root — run with sudo",
                        path.display()
                    )
                }
            }
            MsrError::Offline { cpu } => write!(f, "CPU {cpu} is offline"),
            MsrError::NotImplemented { cpu, reg } => write!(
                f,
                "CPU {cpu} does not implement MSR {reg:#x} ({}; the read faulted)",
                reg::describe(*reg)
            ),
            MsrError::Io { path, reg, source } => match reg {
                Some(r) => write!(
                    f,
                    "reading {} from {}: {source}",
                    reg::describe(*r),
                    path.display()
                ),
                None => write!(f, "opening {}: {source}", path.display()),
            },
        }
    }
}

impl std::error::Error for MsrError {}

/// Access to the MSRs of every CPU under one root directory.
#[derive(Debug)]
pub struct Msr {
    root: PathBuf,
    system: bool,
    stride: u64,
    driver: OnceLock<Option<String>>,
}

/// Offset multiplier of fake MSR files: a register's 8 bytes live at `8 × register`,
/// because at offset = register (the driver's convention) adjacent registers such as
/// MPERF 0xE7 and APERF 0xE8 would overlap in a plain file.
pub const FAKE_STRIDE: u64 = 8;

impl Msr {
    /// The real devices under `/dev/cpu`; loads the msr module when needed.
    pub fn system() -> Msr {
        Msr {
            root: PathBuf::from(DEFAULT_ROOT),
            system: true,
            stride: 1,
            driver: OnceLock::new(),
        }
    }

    /// Real msr devices under another root (a chroot's `/dev/cpu`, say). Loads the
    /// module only if the root is `/dev/cpu`.
    pub fn at(root: impl Into<PathBuf>) -> Msr {
        let root = root.into();
        let system = root == Path::new(DEFAULT_ROOT);
        Msr {
            root,
            system,
            stride: 1,
            driver: OnceLock::new(),
        }
    }

    /// Fake MSR files under `root` (tests): `N/msr` with each register's 8 bytes at
    /// [`FAKE_STRIDE`] × register (see [`fake`]). Never loads modules.
    pub fn fake(root: impl Into<PathBuf>) -> Msr {
        Msr {
            root: root.into(),
            system: false,
            stride: FAKE_STRIDE,
            driver: OnceLock::new(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The device file of a CPU.
    pub fn path(&self, cpu: u32) -> PathBuf {
        self.root.join(cpu.to_string()).join("msr")
    }

    /// Tries `modprobe msr` once per process if this is the system root, CPU 0's device
    /// is missing, and we are root. Returns a note on what happened (for messages), or
    /// `None` when nothing was tried.
    pub fn load_driver(&self) -> Option<String> {
        self.driver
            .get_or_init(|| {
                if !self.system || self.path(0).exists() {
                    return None;
                }
                if !nix::unistd::geteuid().is_root() {
                    return Some("not root, so the msr module was not loaded".into());
                }
                Some(modprobe_msr())
            })
            .clone()
    }

    /// Opens a CPU's device (loading the driver first if needed).
    pub fn open(&self, cpu: u32) -> Result<MsrFile, MsrError> {
        let path = self.path(cpu);
        let mut note = None;
        if self.system && !path.exists() {
            note = self.load_driver();
        }
        match File::open(&path) {
            Ok(file) => Ok(MsrFile {
                file,
                cpu,
                path,
                stride: self.stride,
            }),
            Err(e) => Err(match e.raw_os_error() {
                Some(libc::ENOENT) => MsrError::NoDevice { path, note },
                Some(libc::EPERM) | Some(libc::EACCES) => MsrError::Permission { path },
                Some(libc::ENXIO) => MsrError::Offline { cpu },
                Some(libc::EIO) => MsrError::NotImplemented { cpu, reg: 0 },
                _ => MsrError::Io {
                    path,
                    reg: None,
                    source: e,
                },
            }),
        }
    }

    /// Reads one register of one CPU (opening the device each time: for one-off reads).
    pub fn read(&self, cpu: u32, reg: u32) -> Result<u64, MsrError> {
        self.open(cpu)?.read(reg)
    }
}

/// Runs `modprobe msr` and describes the outcome.
fn modprobe_msr() -> String {
    let mut last_err = String::from("modprobe not found");
    for prog in ["modprobe", "/sbin/modprobe", "/usr/sbin/modprobe"] {
        match std::process::Command::new(prog)
            .arg("msr")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                return "loaded the msr module with modprobe".into();
            }
            Ok(out) => {
                let err = String::from_utf8_lossy(&out.stderr);
                let err = err.trim();
                return if err.is_empty() {
                    format!("modprobe msr failed with {}", out.status)
                } else {
                    format!("modprobe msr failed: {err}")
                };
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => last_err = format!("running modprobe: {e}"),
        }
    }
    format!("could not load the msr module: {last_err}")
}

/// One CPU's open MSR device.
#[derive(Debug)]
pub struct MsrFile {
    file: File,
    cpu: u32,
    path: PathBuf,
    stride: u64,
}

impl MsrFile {
    /// The CPU.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// The device file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a register: 8 bytes at offset `reg` (× [`FAKE_STRIDE`] for fake files).
    pub fn read(&self, reg: u32) -> Result<u64, MsrError> {
        let mut b = [0u8; 8];
        match self.file.read_at(&mut b, u64::from(reg) * self.stride) {
            Ok(8) => Ok(u64::from_le_bytes(b)),
            // The driver never returns short reads; a fake file that ends before the
            // register stands for a register the CPU does not implement.
            Ok(_) => Err(MsrError::NotImplemented { cpu: self.cpu, reg }),
            Err(e) => Err(match e.raw_os_error() {
                Some(libc::EIO) => MsrError::NotImplemented { cpu: self.cpu, reg },
                Some(libc::ENXIO) => MsrError::Offline { cpu: self.cpu },
                Some(libc::EPERM) | Some(libc::EACCES) => MsrError::Permission {
                    path: self.path.clone(),
                },
                _ => MsrError::Io {
                    path: self.path.clone(),
                    reg: Some(reg),
                    source: e,
                },
            }),
        }
    }
}

/// Where a tool finds the machine it reports on: this one, or a fake tree for tests
/// (`ROOT/dev/cpu`, `ROOT/sys`, `ROOT/proc`).
#[derive(Debug)]
pub struct Machine {
    /// MSR devices.
    pub msr: Msr,
    /// CPUID.
    pub cpuid: Cpuid,
    /// sysfs.
    pub sys: crate::hwmon::Sysfs,
    /// procfs root.
    pub proc_root: PathBuf,
    /// True for a fake tree (no module loading, no perf events).
    pub fake: bool,
}

impl Machine {
    /// This machine.
    pub fn system() -> Machine {
        Machine {
            msr: Msr::system(),
            cpuid: Cpuid::Native,
            sys: crate::hwmon::Sysfs::system(),
            proc_root: PathBuf::from("/proc"),
            fake: false,
        }
    }

    /// A fake machine tree.
    pub fn fake(root: &Path) -> Machine {
        let dev = root.join("dev/cpu");
        Machine {
            cpuid: Cpuid::for_root(&dev),
            msr: Msr::fake(dev),
            sys: crate::hwmon::Sysfs::at(root.join("sys")),
            proc_root: root.join("proc"),
            fake: true,
        }
    }

    /// [`Machine::fake`] for `Some(root)`, else [`Machine::system`].
    pub fn open(root: Option<&Path>) -> Machine {
        match root {
            Some(r) => Machine::fake(r),
            None => Machine::system(),
        }
    }

    /// Present CPUs in numeric order: sysfs `present`, else the numeric directories of
    /// the MSR root, else 0..the configured CPU count.
    pub fn present_cpus(&self) -> Vec<u32> {
        if let Some(v) = self.sys.present_cpus().filter(|v| !v.is_empty()) {
            return v;
        }
        let mut v: Vec<u32> = std::fs::read_dir(self.msr.root())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        if v.is_empty() && !self.fake {
            // SAFETY: sysconf has no preconditions.
            let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
            v = (0..n.max(1) as u32).collect();
        }
        v
    }

    /// Online CPUs in numeric order (sysfs `online`, else all present CPUs).
    pub fn online_cpus(&self) -> Vec<u32> {
        self.sys
            .online_cpus()
            .unwrap_or_else(|| self.present_cpus())
    }
}

/// Field extraction and the maths on register values. Pure functions, unit-tested
/// against hand-computed values.
pub mod decode {
    /// Bits `hi:lo` of `v`.
    pub fn bits(v: u64, hi: u32, lo: u32) -> u64 {
        let width = hi - lo + 1;
        let mask = if width >= 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        (v >> lo) & mask
    }

    /// TjMax (TCC activation temperature, °C): MSR_TEMPERATURE_TARGET bits 23:16.
    /// The TCC offset (bits 29:24) is not applied, as in turbostat.
    pub fn tjmax(temperature_target: u64) -> u32 {
        bits(temperature_target, 23, 16) as u32
    }

    /// IA32_THERM_STATUS / IA32_PACKAGE_THERM_STATUS fields.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ThermStatus {
        /// Degrees below TjMax (bits 22:16).
        pub readout: u32,
        /// Reading valid (bit 31; reserved, and always 0, in the package register).
        pub valid: bool,
        /// Sensor resolution in °C (bits 30:27).
        pub resolution: u32,
        /// Status and log flags (bits 15:0): non-zero means a thermal limit was hit or
        /// logged.
        pub flags: u32,
    }

    /// Decodes a thermal status register.
    pub fn therm_status(v: u64) -> ThermStatus {
        ThermStatus {
            readout: bits(v, 22, 16) as u32,
            valid: bits(v, 31, 31) == 1,
            resolution: bits(v, 30, 27) as u32,
            flags: bits(v, 15, 0) as u32,
        }
    }

    /// Core temperature in °C from TjMax and IA32_THERM_STATUS, or `None` when TjMax
    /// is unknown (0) or the reading-valid bit is clear.
    pub fn core_temperature(tjmax: u32, therm_status: u64) -> Option<i32> {
        let s = self::therm_status(therm_status);
        if tjmax == 0 || !s.valid {
            return None;
        }
        Some(tjmax as i32 - s.readout as i32)
    }

    /// Package temperature in °C from TjMax and IA32_PACKAGE_THERM_STATUS (which has no
    /// valid bit). `None` when TjMax is unknown.
    pub fn package_temperature(tjmax: u32, pkg_therm_status: u64) -> Option<i32> {
        if tjmax == 0 {
            return None;
        }
        Some(tjmax as i32 - therm_status(pkg_therm_status).readout as i32)
    }

    /// Intel base ratio (MSR_PLATFORM_INFO bits 15:8); × 100 MHz bus clock = base MHz.
    pub fn platform_base_ratio(platform_info: u64) -> u32 {
        bits(platform_info, 15, 8) as u32
    }

    /// Turbo frequencies (MHz, ascending, consecutive duplicates dropped) from
    /// MSR_TURBO_RATIO_LIMIT1 (0x1AE) and MSR_TURBO_RATIO_LIMIT (0x1AD), the way the
    /// original showboost reads them: each register byte by byte from bits 63:56 down
    /// to 7:0, ratio × 100 MHz; zero bytes skipped; a register with any ratio below the
    /// base frequency is discarded whole (it holds core counts, as on Skylake-SP).
    pub fn turbo_mhz(limit1: Option<u64>, limit: Option<u64>, base_mhz: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut last = 0;
        for v in [limit1, limit].into_iter().flatten() {
            let mut these = Vec::new();
            let mut discard = false;
            for i in (0..8).rev() {
                let mhz = bits(v, i * 8 + 7, i * 8) as u32 * 100;
                if mhz == 0 {
                    continue;
                }
                if mhz < base_mhz {
                    discard = true;
                    break;
                }
                if mhz != last {
                    these.push(mhz);
                }
                last = mhz;
            }
            if !discard {
                out.extend(these);
            }
        }
        out
    }

    /// AMD core frequency (MHz) of a P-state definition register (PStateDef0..7), or
    /// `None` when the P-state is disabled (bit 63 clear), the family's layout is not
    /// known, or the fields are zero.
    ///
    /// * Family 17h–19h (Zen 1–4, Hygon 18h): CpuFid bits 7:0, CpuDfsId bits 13:8,
    ///   frequency = 200 × CpuFid / CpuDfsId.
    /// * Family 1Ah (Zen 5): CpuFid bits 11:0, frequency = 5 × CpuFid.
    pub fn amd_pstate_mhz(family: u32, v: u64) -> Option<u32> {
        if bits(v, 63, 63) == 0 {
            return None;
        }
        let mhz = match family {
            0x17..=0x19 => {
                let fid = bits(v, 7, 0) as u32;
                let did = bits(v, 13, 8) as u32;
                if did == 0 {
                    return None;
                }
                200 * fid / did
            }
            f if f >= 0x1a => {
                let fid = bits(v, 11, 0) as u32;
                if fid <= 0x0f {
                    return None;
                }
                fid * 5
            }
            _ => return None,
        };
        Some(mhz).filter(|&m| m > 0)
    }
}

/// Fake machine trees for tests: a copied fixture directory plus sparse `msr` files and
/// a CPUID table built from a small text spec. Each register's 8 bytes are written at
/// [`FAKE_STRIDE`](super::FAKE_STRIDE) × register, where [`Msr::fake`](super::Msr::fake)
/// reads them.
///
/// Spec lines (`#` starts a comment; numbers are decimal or `0x` hex; CPU sets are
/// `*`, `N`, `N-M` or comma lists of those):
///
/// ```text
/// cpus 0-3                          # create N/msr (empty, sparse)
/// vendor GenuineIntel 0x16          # CPUID leaf 0: vendor string and max leaf
/// cpuid 0x6 0 0x77 0 0x9 0          # leaf subleaf eax ebx ecx edx
/// msr * 0x1a2 0x00640000            # 8 bytes at offset 8 × 0x1a2
/// limit * 0x1000                    # file ends here: higher registers "fault"
/// ```
///
/// Holes read as zero, like unimplemented MSRs under QEMU TCG; registers at or beyond
/// `limit` read short, which [`MsrFile::read`] reports as not implemented (EIO).
/// `vendor` and `cpuid` lines go to the root's [`CPUID_TABLE`](crate::cpuid::CPUID_TABLE).
#[cfg(any(test, feature = "testing"))]
pub mod fake {
    use std::fs::OpenOptions;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// Parses a decimal or `0x` hex number (`_` separators allowed).
    pub use crate::cpuid::parse_num as num;

    fn bad(msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    /// Parses `*`, `3`, `0-3`, `0,2-3` against the CPUs declared so far.
    fn cpu_set(s: &str, all: &[u32]) -> io::Result<Vec<u32>> {
        if s == "*" {
            return Ok(all.to_vec());
        }
        perf_tools_core::cpulist::parse(s).map_err(bad)
    }

    /// Sets one register of one CPU in a fake tree `root` (a stand-in for `/dev/cpu`):
    /// its 8 bytes at [`FAKE_STRIDE`](super::FAKE_STRIDE) × `reg` in `root/N/msr`, which
    /// must exist.
    pub fn set_msr(root: &Path, cpu: u32, reg: u64, value: u64) -> io::Result<()> {
        let path = root.join(cpu.to_string()).join("msr");
        let f = OpenOptions::new().write(true).open(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{}: {e} (declare the CPU with `cpus`)", path.display()),
            )
        })?;
        f.write_all_at(&value.to_le_bytes(), reg * super::FAKE_STRIDE)
    }

    /// Ends one CPU's fake `root/N/msr` file before register `reg`: that register and
    /// every higher one read short, as not implemented (the driver's EIO).
    pub fn set_limit(root: &Path, cpu: u32, reg: u64) -> io::Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(root.join(cpu.to_string()).join("msr"))?;
        f.set_len(reg * super::FAKE_STRIDE)
    }

    /// Builds `N/msr` and `N/cpuid` files under `root` (a stand-in for `/dev/cpu`).
    pub fn materialize(spec: &str, root: &Path) -> io::Result<()> {
        let mut cpus: Vec<u32> = Vec::new();
        let mut table: Vec<String> = Vec::new();
        for (lineno, raw) in spec.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            let ctx = |e: io::Error| bad(format!("spec line {}: {raw:?}: {e}", lineno + 1));
            match (w[0], w.len()) {
                ("cpus", 2) => {
                    cpus = cpu_set(w[1], &[]).map_err(ctx)?;
                    for &c in &cpus {
                        let d = root.join(c.to_string());
                        std::fs::create_dir_all(&d).map_err(ctx)?;
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(d.join("msr"))
                            .map_err(ctx)?;
                    }
                }
                ("vendor", 3) => {
                    let v = w[1].as_bytes();
                    if v.len() != 12 {
                        return Err(ctx(bad("vendor must be 12 characters".into())));
                    }
                    let max = num(w[2]).map_err(ctx)? as u32;
                    let r = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
                    // EBX, EDX, ECX hold the string in that order.
                    table.push(format!(
                        "0x0 0 {max:#x} {:#x} {:#x} {:#x}",
                        r(0),
                        r(8),
                        r(4)
                    ));
                }
                ("cpuid", 7) => {
                    for x in &w[1..7] {
                        num(x).map_err(ctx)?;
                    }
                    table.push(w[1..7].join(" "));
                }
                ("msr", 4) => {
                    let set = cpu_set(w[1], &cpus).map_err(ctx)?;
                    let reg = num(w[2]).map_err(ctx)?;
                    let val = num(w[3]).map_err(ctx)?;
                    for c in set {
                        set_msr(root, c, reg, val).map_err(ctx)?;
                    }
                }
                ("limit", 3) => {
                    let set = cpu_set(w[1], &cpus).map_err(ctx)?;
                    let len = num(w[2]).map_err(ctx)?;
                    for c in set {
                        set_limit(root, c, len).map_err(ctx)?;
                    }
                }
                _ => {
                    return Err(ctx(bad(
                        "unknown directive or wrong number of fields".into()
                    )))
                }
            }
        }
        if !table.is_empty() {
            std::fs::create_dir_all(root)?;
            let mut text = table.join("\n");
            text.push('\n');
            std::fs::write(root.join(crate::cpuid::CPUID_TABLE), text)?;
        }
        Ok(())
    }

    /// Name of the spec file inside a fixture directory.
    pub const SPEC: &str = "dev-cpu.spec";

    /// Copies the fixture directory `src` to `dest` and, if it holds a [`SPEC`] file,
    /// materializes it into `dest/dev/cpu`. The result is a fake machine root with
    /// `dev/cpu`, `sys` and `proc` below it.
    pub fn build_machine(src: &Path, dest: &Path) -> io::Result<()> {
        copy_tree(src, dest)?;
        let spec_path = src.join(SPEC);
        if spec_path.exists() {
            let spec = std::fs::read_to_string(&spec_path)?;
            let root = dest.join("dev/cpu");
            std::fs::create_dir_all(&root)?;
            materialize(&spec, &root)?;
            let _ = std::fs::remove_file(dest.join(SPEC));
        }
        Ok(())
    }

    fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dest)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            let to = dest.join(e.file_name());
            let ft = e.file_type()?;
            if ft.is_dir() {
                copy_tree(&e.path(), &to)?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(e.path())?;
                std::os::unix::fs::symlink(target, &to)?;
            } else {
                std::fs::copy(e.path(), &to)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::decode::*;
    use super::*;
    use crate::cpuid::Vendor;

    #[test]
    fn registers_are_described_by_name_and_number() {
        assert_eq!(
            reg::describe(0x19c),
            "IA32_THERM_STATUS (0x19c)".to_string()
        );
        assert_eq!(reg::describe(0x123), "MSR 0x123");
    }

    #[test]
    fn tjmax_is_bits_23_to_16() {
        // TjMax 100 (0x64), TCC offset 5 in bits 29:24 (ignored), junk in low bits.
        assert_eq!(tjmax(0x0564_0a0f), 100);
        assert_eq!(tjmax(0x0069_0000), 105);
        assert_eq!(tjmax(0), 0);
    }

    #[test]
    fn therm_status_fields() {
        // valid, resolution 1, readout 23 (0x17), flags 0x0a (PROCHOT log + thermal log)
        let v = (1u64 << 31) | (1 << 27) | (0x17 << 16) | 0x0a;
        let s = therm_status(v);
        assert_eq!(s.readout, 23);
        assert!(s.valid);
        assert_eq!(s.resolution, 1);
        assert_eq!(s.flags, 0x0a);
        // The readout field is 7 bits: bit 23 belongs to a reserved field.
        assert_eq!(therm_status(0x00ff_0000).readout, 0x7f);
    }

    #[test]
    fn core_temperature_needs_valid_bit_and_tjmax() {
        assert_eq!(core_temperature(100, 0x8817_0000), Some(77));
        assert_eq!(core_temperature(100, 0x8800_0000), Some(100));
        // Reading-valid bit clear.
        assert_eq!(core_temperature(100, 0x0817_0000), None);
        // TjMax unknown (what a hypervisor returning 0 for every MSR gives).
        assert_eq!(core_temperature(0, 0x8817_0000), None);
        assert_eq!(core_temperature(0, 0), None);
        // Package register has no valid bit.
        assert_eq!(package_temperature(95, 0x0014_0000), Some(75));
        assert_eq!(package_temperature(0, 0x0014_0000), None);
    }

    #[test]
    fn platform_info_base_ratio() {
        // Xeon E5-2670 v2: base ratio 25 → 2500 MHz (0x1900 in bits 15:8).
        assert_eq!(platform_base_ratio(0x0000_0c00_7001_1900), 25);
        assert_eq!(platform_base_ratio(0), 0);
    }

    #[test]
    fn turbo_ratios_by_byte() {
        // 0x1AD bytes from 63:56 to 7:0: 29 29 29 29 30 31 33 33 (×100 MHz).
        let limit = 0x1d1d_1d1d_1e1f_2121;
        assert_eq!(
            turbo_mhz(None, Some(limit), 2500),
            vec![2900, 3000, 3100, 3300]
        );
        // 0x1AE all zero adds nothing; its bytes come first.
        assert_eq!(
            turbo_mhz(Some(0x0000_0000_1a1b_1c1c), Some(limit), 2500),
            vec![2600, 2700, 2800, 2900, 3000, 3100, 3300]
        );
        // A register holding core counts (bytes below base) is discarded whole.
        let core_counts = 0x1c18_1410_0c08_0402;
        assert_eq!(
            turbo_mhz(Some(core_counts), Some(limit), 2500),
            vec![2900, 3000, 3100, 3300]
        );
        // Duplicates are only dropped when consecutive (also across registers).
        assert_eq!(
            turbo_mhz(Some(0x1e00), Some(0x1e1f_1e00), 2500),
            vec![3000, 3100, 3000]
        );
        assert!(turbo_mhz(Some(0), Some(0), 2500).is_empty());
        assert!(turbo_mhz(None, None, 2500).is_empty());
    }

    #[test]
    fn amd_pstate_frequency() {
        // Zen 3 (family 19h): FID 0x62 = 98, DID 8 → 200 × 98 / 8 = 2450 MHz.
        let p0 = (1u64 << 63) | (8 << 8) | 0x62;
        assert_eq!(amd_pstate_mhz(0x19, p0), Some(2450));
        // Zen 2 (17h): FID 0x8c = 140, DID 0xa = 10 → 2800 MHz; VID and IDD bits set.
        let p0 = (1u64 << 63) | (0x3e << 22) | (0x4a << 14) | (0x0a << 8) | 0x8c;
        assert_eq!(amd_pstate_mhz(0x17, p0), Some(2800));
        // Zen 5 (1Ah): 12-bit FID 0x258 = 600 → 5 × 600 = 3000 MHz.
        let p0 = (1u64 << 63) | (0x50 << 14) | 0x258;
        assert_eq!(amd_pstate_mhz(0x1a, p0), Some(3000));
        // Disabled P-state, DID 0, unknown family, all-zero register.
        assert_eq!(amd_pstate_mhz(0x19, (8 << 8) | 0x62), None);
        assert_eq!(amd_pstate_mhz(0x19, (1u64 << 63) | 0x62), None);
        assert_eq!(amd_pstate_mhz(0x15, p0), None);
        assert_eq!(amd_pstate_mhz(0x19, 0), None);
    }

    #[test]
    fn fake_tree_reads_back_and_faults_past_limit() {
        let dir = std::env::temp_dir().join(format!("ptrs-msr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = "cpus 0-1\nvendor GenuineIntel 0x16\ncpuid 6 0 0x77 0 1 0\n\
                    msr * 0x1a2 0x640000\nmsr 1 0x19c 0x88170000\n\
                    msr 0 0xc0010064 0x8000000000000862\nlimit 1 0x1000\n";
        fake::materialize(spec, &dir).unwrap();
        let m = Msr::fake(&dir);
        assert_eq!(m.read(0, 0x1a2).unwrap(), 0x640000);
        assert_eq!(m.read(1, 0x19c).unwrap(), 0x8817_0000);
        // A hole reads as zero.
        assert_eq!(m.read(0, 0x19c).unwrap(), 0);
        assert_eq!(m.read(0, 0xc001_0064).unwrap(), 0x8000_0000_0000_0862);
        // Past the limit: not implemented, with a message naming CPU and register.
        let e = m.read(1, 0xc001_0064).unwrap_err();
        assert!(
            matches!(e, MsrError::NotImplemented { cpu: 1, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "CPU 1 does not implement MSR 0xc0010064 (PStateDef0 (0xc0010064); the read faulted)"
        );
        let e = m.read(7, 0x10).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "no {}/7/msr: kernel lacks CONFIG_X86_MSR or the msr module",
                dir.display()
            )),
            "{e}"
        );
        let info = Cpuid::for_root(&dir).info().unwrap();
        assert_eq!(info.vendor, Vendor::Intel);
        assert!(info.dts && info.ptm && info.aperfmperf);
        assert_eq!(info.base_mhz, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn permission_message_names_the_capability() {
        let e = MsrError::Permission {
            path: PathBuf::from("/dev/cpu/0/msr"),
        };
        assert!(e.to_string().contains("needs CAP_SYS_RAWIO"), "{e}");
    }
}
