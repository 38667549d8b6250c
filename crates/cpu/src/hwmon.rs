//! CPU temperatures from hwmon (`coretemp`, `k10temp`, `zenpower`) and the sysfs CPU
//! facts needed to map sensors to CPUs (present/online lists, package and core ids,
//! nominal frequencies).
//!
//! Everything is read below a sysfs root (default `/sys`), so tests can build a fake
//! `class/hwmon` tree.

use anyhow::{Context, Result};
use perf_tools_core::cpulist;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The real sysfs.
pub const DEFAULT_SYSFS: &str = "/sys";

/// A sysfs tree (the real `/sys` or a fake one).
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// `/sys`.
    pub fn system() -> Sysfs {
        Sysfs::at(DEFAULT_SYSFS)
    }

    /// Another root.
    pub fn at(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn cpu_file(&self, cpu: u32, rel: &str) -> Option<String> {
        self.read(&format!("devices/system/cpu/cpu{cpu}/{rel}"))
    }

    /// CPUs present (`devices/system/cpu/present`), in numeric order; `None` if the
    /// file is missing.
    pub fn present_cpus(&self) -> Option<Vec<u32>> {
        cpulist::parse(&self.read("devices/system/cpu/present")?).ok()
    }

    /// CPUs online (`devices/system/cpu/online`), in numeric order.
    pub fn online_cpus(&self) -> Option<Vec<u32>> {
        cpulist::parse(&self.read("devices/system/cpu/online")?).ok()
    }

    /// A CPU's physical package (socket) id.
    pub fn package_id(&self, cpu: u32) -> Option<u32> {
        self.cpu_file(cpu, "topology/physical_package_id")?
            .parse()
            .ok()
    }

    /// A CPU's core id within its package.
    pub fn core_id(&self, cpu: u32) -> Option<u32> {
        self.cpu_file(cpu, "topology/core_id")?.parse().ok()
    }

    /// Base (nominal) frequency in MHz from cpufreq `base_frequency` (kHz;
    /// intel_pstate) or ACPI CPPC `nominal_freq` (MHz; amd-pstate, CPPC).
    pub fn nominal_mhz(&self, cpu: u32) -> Option<(u32, &'static str)> {
        if let Some(khz) = self
            .cpu_file(cpu, "cpufreq/base_frequency")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&k| k > 0)
        {
            return Some(((khz / 1000) as u32, "cpufreq base_frequency"));
        }
        self.cpu_file(cpu, "acpi_cppc/nominal_freq")
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|&m| m > 0)
            .map(|m| (m, "ACPI CPPC nominal_freq"))
    }

    /// Every hwmon chip, in hwmon index order.
    pub fn hwmon_chips(&self) -> Vec<Chip> {
        let dir = self.root.join("class/hwmon");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut chips: Vec<(u32, Chip)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let idx: u32 = name.strip_prefix("hwmon")?.parse().ok()?;
                Chip::load(&e.path()).map(|c| (idx, c))
            })
            .collect();
        chips.sort_by_key(|(i, _)| *i);
        chips.into_iter().map(|(_, c)| c).collect()
    }
}

/// One hwmon chip (`hwmonN`).
#[derive(Debug, Clone)]
pub struct Chip {
    /// Driver name (`name` file), e.g. `k10temp`.
    pub name: String,
    /// The `hwmonN` directory.
    pub dir: PathBuf,
    /// The device it belongs to (target of the `device` link), for stable ordering.
    pub device: Option<String>,
    /// Temperature sensors, by index.
    pub temps: Vec<Sensor>,
}

/// One temperature sensor (`tempN_input`, `tempN_label`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// N in `tempN_input`.
    pub index: u32,
    /// `tempN_label`, if any.
    pub label: Option<String>,
    /// The `tempN_input` file.
    pub input: PathBuf,
}

impl Sensor {
    /// Reads the temperature in °C (the file holds millidegrees).
    pub fn read_celsius(&self) -> Result<f64> {
        let s = std::fs::read_to_string(&self.input)
            .with_context(|| format!("reading {}", self.input.display()))?;
        let m: i64 = s
            .trim()
            .parse()
            .with_context(|| format!("{}: not a number: {:?}", self.input.display(), s.trim()))?;
        Ok(m as f64 / 1000.0)
    }
}

impl Chip {
    /// Loads a chip directory; attributes may sit in `hwmonN/` or (old kernels)
    /// `hwmonN/device/`.
    pub fn load(dir: &Path) -> Option<Chip> {
        let attr_dir = if dir.join("name").exists() {
            dir.to_path_buf()
        } else if dir.join("device/name").exists() {
            dir.join("device")
        } else {
            return None;
        };
        let name = std::fs::read_to_string(attr_dir.join("name"))
            .ok()?
            .trim()
            .to_string();
        let device = std::fs::read_link(dir.join("device"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        let mut temps: Vec<Sensor> = std::fs::read_dir(&attr_dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let f = e.file_name().into_string().ok()?;
                let index: u32 = f
                    .strip_prefix("temp")?
                    .strip_suffix("_input")?
                    .parse()
                    .ok()?;
                let label = std::fs::read_to_string(attr_dir.join(format!("temp{index}_label")))
                    .ok()
                    .map(|s| s.trim().to_string());
                Some(Sensor {
                    index,
                    label,
                    input: e.path(),
                })
            })
            .collect();
        temps.sort_by_key(|s| s.index);
        Some(Chip {
            name,
            dir: dir.to_path_buf(),
            device,
            temps,
        })
    }

    /// The sensor with this label.
    pub fn by_label(&self, label: &str) -> Option<&Sensor> {
        self.temps
            .iter()
            .find(|s| s.label.as_deref() == Some(label))
    }
}

/// Which driver provides CPU temperatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuTempDriver {
    /// Intel `coretemp`: one chip per package, "Core N" and "Package id N" sensors.
    Coretemp,
    /// AMD `k10temp`: one chip per socket, Tctl (and Tdie on some), Tccd1..N.
    K10temp,
    /// Out-of-tree `zenpower`: like k10temp.
    Zenpower,
}

impl fmt::Display for CpuTempDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuTempDriver::Coretemp => "coretemp",
            CpuTempDriver::K10temp => "k10temp",
            CpuTempDriver::Zenpower => "zenpower",
        })
    }
}

/// A named package-level sensor (for extra columns).
#[derive(Debug, Clone, PartialEq)]
pub struct PackageSensor {
    /// Column name, e.g. `Pkg0` or `Pkg0.Tccd1`.
    pub column: String,
    /// The sensor.
    pub sensor: Sensor,
}

/// CPU temperatures from hwmon, mapped to CPUs.
#[derive(Debug, Clone)]
pub struct CpuTemps {
    /// The driver.
    pub driver: CpuTempDriver,
    /// The sensor of each CPU that has one.
    pub per_cpu: BTreeMap<u32, Sensor>,
    /// Package sensors, by package then name.
    pub packages: Vec<PackageSensor>,
    /// A phrase for the source line on stderr, e.g.
    /// `hwmon k10temp Tctl (one sensor per socket: every CPU of a socket shows it)`.
    pub description: String,
}

/// Finds CPU temperature sensors for `cpus` under `sys`. `None` when no known CPU
/// temperature driver has a chip there.
pub fn cpu_temperatures(sys: &Sysfs, cpus: &[u32]) -> Option<CpuTemps> {
    let chips = sys.hwmon_chips();
    let coretemp: Vec<&Chip> = chips.iter().filter(|c| c.name == "coretemp").collect();
    if !coretemp.is_empty() {
        return Some(map_coretemp(sys, cpus, &coretemp));
    }
    for (name, driver) in [
        ("k10temp", CpuTempDriver::K10temp),
        ("zenpower", CpuTempDriver::Zenpower),
    ] {
        let mut amd: Vec<&Chip> = chips.iter().filter(|c| c.name == name).collect();
        if !amd.is_empty() {
            // One chip per socket; order them by their PCI device (the hwmon index
            // order is a fallback when there is no device link).
            amd.sort_by(|a, b| a.device.cmp(&b.device));
            return Some(map_k10temp(sys, cpus, &amd, driver));
        }
    }
    None
}

/// Package id of a coretemp chip, from its "Package id N" (or old "Physical id N") label.
fn coretemp_package(chip: &Chip) -> Option<u32> {
    chip.temps.iter().find_map(|s| {
        let l = s.label.as_deref()?;
        l.strip_prefix("Package id ")
            .or_else(|| l.strip_prefix("Physical id "))?
            .trim()
            .parse()
            .ok()
    })
}

fn map_coretemp(sys: &Sysfs, cpus: &[u32], chips: &[&Chip]) -> CpuTemps {
    let mut by_pkg: BTreeMap<u32, &Chip> = BTreeMap::new();
    for (i, c) in chips.iter().enumerate() {
        by_pkg.insert(coretemp_package(c).unwrap_or(i as u32), c);
    }
    let mut per_cpu = BTreeMap::new();
    for &cpu in cpus {
        let pkg = sys.package_id(cpu).unwrap_or(0);
        let Some(core) = sys.core_id(cpu) else {
            continue;
        };
        if let Some(s) = by_pkg
            .get(&pkg)
            .and_then(|c| c.by_label(&format!("Core {core}")))
        {
            per_cpu.insert(cpu, s.clone());
        }
    }
    let mut packages = Vec::new();
    for (pkg, chip) in &by_pkg {
        let s = chip
            .by_label(&format!("Package id {pkg}"))
            .or_else(|| chip.by_label(&format!("Physical id {pkg}")));
        if let Some(s) = s {
            packages.push(PackageSensor {
                column: format!("Pkg{pkg}"),
                sensor: s.clone(),
            });
        }
    }
    CpuTemps {
        driver: CpuTempDriver::Coretemp,
        per_cpu,
        packages,
        description:
            "hwmon coretemp (\"Core N\" sensors: one per core, shared by its hyperthreads)".into(),
    }
}

fn map_k10temp(sys: &Sysfs, cpus: &[u32], chips: &[&Chip], driver: CpuTempDriver) -> CpuTemps {
    // Tdie is the real die temperature where the driver reports both; Tctl may carry a
    // fan-control offset on some parts.
    let main_sensor = |c: &Chip| -> Option<(Sensor, &'static str)> {
        if let Some(s) = c.by_label("Tdie") {
            return Some((s.clone(), "Tdie"));
        }
        if let Some(s) = c.by_label("Tctl") {
            return Some((s.clone(), "Tctl"));
        }
        c.temps.first().map(|s| (s.clone(), "temp1"))
    };
    let mut pkg_ids: Vec<u32> = cpus.iter().filter_map(|&c| sys.package_id(c)).collect();
    pkg_ids.sort_unstable();
    pkg_ids.dedup();
    let mut per_cpu = BTreeMap::new();
    let mut packages = Vec::new();
    let mut which = "Tctl";
    for (i, chip) in chips.iter().enumerate() {
        let pkg = pkg_ids.get(i).copied().unwrap_or(i as u32);
        let Some((main, name)) = main_sensor(chip) else {
            continue;
        };
        which = name;
        for &cpu in cpus {
            let cpu_pkg = sys.package_id(cpu).unwrap_or(0);
            if cpu_pkg == pkg || (chips.len() == 1 && sys.package_id(cpu).is_none()) {
                per_cpu.insert(cpu, main.clone());
            }
        }
        packages.push(PackageSensor {
            column: format!("Pkg{pkg}"),
            sensor: main.clone(),
        });
        for s in &chip.temps {
            if let Some(l) = s.label.as_deref().filter(|l| l.starts_with("Tccd")) {
                packages.push(PackageSensor {
                    column: format!("Pkg{pkg}.{l}"),
                    sensor: s.clone(),
                });
            }
        }
    }
    CpuTemps {
        driver,
        per_cpu,
        packages,
        description: format!(
            "hwmon {driver} {which} (one sensor per socket: every CPU of a socket shows it; -p adds the Tccd sensors)"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Tree(PathBuf);
    impl Tree {
        fn new(tag: &str) -> Tree {
            let d = std::env::temp_dir().join(format!("ptrs-hwmon-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Tree(d)
        }
        fn file(&self, rel: &str, content: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        fn cpu(&self, cpu: u32, pkg: u32, core: u32) {
            self.file(
                &format!("devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                &format!("{pkg}\n"),
            );
            self.file(
                &format!("devices/system/cpu/cpu{cpu}/topology/core_id"),
                &format!("{core}\n"),
            );
        }
    }
    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn coretemp_maps_cores_of_each_package() {
        let t = Tree::new("coretemp");
        // Two packages, two cores each, two threads per core; core ids 0 and 4.
        for (cpu, pkg, core) in [
            (0, 0, 0),
            (1, 0, 4),
            (2, 1, 0),
            (3, 1, 4),
            (4, 0, 0),
            (5, 0, 4),
            (6, 1, 0),
            (7, 1, 4),
        ] {
            t.cpu(cpu, pkg, core);
        }
        // hwmon1 is package 1, hwmon3 package 0 (indexes need not follow packages).
        for (h, pkg, base) in [(1, 1, 60_000), (3, 0, 40_000)] {
            let d = format!("class/hwmon/hwmon{h}");
            t.file(&format!("{d}/name"), "coretemp\n");
            t.file(&format!("{d}/temp1_label"), &format!("Package id {pkg}\n"));
            t.file(&format!("{d}/temp1_input"), &format!("{}\n", base + 5000));
            t.file(&format!("{d}/temp2_label"), "Core 0\n");
            t.file(&format!("{d}/temp2_input"), &format!("{}\n", base));
            t.file(&format!("{d}/temp6_label"), "Core 4\n");
            t.file(&format!("{d}/temp6_input"), &format!("{}\n", base + 2000));
        }
        // An unrelated chip.
        t.file("class/hwmon/hwmon0/name", "acpitz\n");
        t.file("class/hwmon/hwmon0/temp1_input", "27800\n");
        let sys = Sysfs::at(&t.0);
        let temps = cpu_temperatures(&sys, &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(temps.driver, CpuTempDriver::Coretemp);
        let c: Vec<f64> = (0..8)
            .map(|cpu| temps.per_cpu[&cpu].read_celsius().unwrap())
            .collect();
        assert_eq!(c, vec![40.0, 42.0, 60.0, 62.0, 40.0, 42.0, 60.0, 62.0]);
        let p: Vec<(String, f64)> = temps
            .packages
            .iter()
            .map(|p| (p.column.clone(), p.sensor.read_celsius().unwrap()))
            .collect();
        assert_eq!(p, vec![("Pkg0".into(), 45.0), ("Pkg1".into(), 65.0)]);
    }

    #[test]
    fn k10temp_gives_every_cpu_its_socket_tctl() {
        let t = Tree::new("k10temp");
        for cpu in 0..4 {
            t.cpu(cpu, 0, cpu);
        }
        let d = "class/hwmon/hwmon2";
        t.file(&format!("{d}/name"), "k10temp\n");
        t.file(&format!("{d}/temp1_label"), "Tctl\n");
        t.file(&format!("{d}/temp1_input"), "45250\n");
        t.file(&format!("{d}/temp3_label"), "Tccd1\n");
        t.file(&format!("{d}/temp3_input"), "41000\n");
        t.file(&format!("{d}/temp4_label"), "Tccd2\n");
        t.file(&format!("{d}/temp4_input"), "43500\n");
        let sys = Sysfs::at(&t.0);
        let temps = cpu_temperatures(&sys, &[0, 1, 2, 3]).unwrap();
        assert_eq!(temps.driver, CpuTempDriver::K10temp);
        assert_eq!(temps.per_cpu.len(), 4);
        assert_eq!(temps.per_cpu[&3].read_celsius().unwrap(), 45.25);
        let cols: Vec<&str> = temps.packages.iter().map(|p| p.column.as_str()).collect();
        assert_eq!(cols, vec!["Pkg0", "Pkg0.Tccd1", "Pkg0.Tccd2"]);
        assert!(
            temps.description.contains("k10temp Tctl"),
            "{}",
            temps.description
        );
    }

    #[test]
    fn k10temp_prefers_tdie_and_old_device_layout_is_found() {
        let t = Tree::new("tdie");
        t.cpu(0, 0, 0);
        // Attributes under hwmon0/device/ (pre-4.x layout).
        let d = "class/hwmon/hwmon0/device";
        t.file(&format!("{d}/name"), "k10temp\n");
        t.file(&format!("{d}/temp1_label"), "Tctl\n");
        t.file(&format!("{d}/temp1_input"), "72000\n");
        t.file(&format!("{d}/temp2_label"), "Tdie\n");
        t.file(&format!("{d}/temp2_input"), "45000\n");
        let temps = cpu_temperatures(&Sysfs::at(&t.0), &[0]).unwrap();
        assert_eq!(temps.per_cpu[&0].read_celsius().unwrap(), 45.0);
    }

    #[test]
    fn nothing_there() {
        let t = Tree::new("empty");
        assert!(cpu_temperatures(&Sysfs::at(&t.0), &[0]).is_none());
        t.file("class/hwmon/hwmon0/name", "nvme\n");
        t.file("class/hwmon/hwmon0/temp1_input", "30000\n");
        assert!(cpu_temperatures(&Sysfs::at(&t.0), &[0]).is_none());
    }

    #[test]
    fn nominal_frequency_sources() {
        let t = Tree::new("freq");
        let sys = Sysfs::at(&t.0);
        assert_eq!(sys.nominal_mhz(0), None);
        t.file("devices/system/cpu/cpu0/acpi_cppc/nominal_freq", "2450\n");
        assert_eq!(sys.nominal_mhz(0), Some((2450, "ACPI CPPC nominal_freq")));
        t.file(
            "devices/system/cpu/cpu0/cpufreq/base_frequency",
            "2100000\n",
        );
        assert_eq!(sys.nominal_mhz(0), Some((2100, "cpufreq base_frequency")));
    }
}
