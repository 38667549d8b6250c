//! cputemp: show CPU temperatures in degrees Celsius, one line per interval.
//!
//! A port of msr-cloud-tools' `cputemp` with the same options and output (`CPU1 CPU2 …`
//! header, integer °C per CPU; `-a` average; `-u` utilization prefix), that also works
//! where the original cannot:
//!
//! * Intel with a digital thermal sensor: TjMax (MSR_TEMPERATURE_TARGET 0x1A2) minus the
//!   readout of IA32_THERM_STATUS (0x19C) through `/dev/cpu/N/msr`, honouring the
//!   reading-valid bit; `-p` adds the package sensor (IA32_PACKAGE_THERM_STATUS 0x1B1).
//! * AMD, and any CPU whose MSRs are not there or not readable: hwmon sensors
//!   (`k10temp`/`zenpower` Tctl/Tdie and Tccd, `coretemp` "Core N"/"Package id N").
//! * A VM that exposes neither: a clear error and exit status 1.
//!
//! The hidden option `--root DIR` reads a fake machine tree (`DIR/dev/cpu/N/msr` sparse
//! files, `DIR/dev/cpu/cpuid.table`, `DIR/sys`, `DIR/proc`) instead of this machine: the
//! seam the integration tests use (see `perf_tools_cpu::msr::fake`).

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_cpu::cpuid::{CpuInfo, Vendor};
use perf_tools_cpu::hwmon::{self, CpuTemps};
use perf_tools_cpu::msr::{decode, reg, Machine, MsrError, MsrFile};

/// Where temperatures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// MSRs on Intel CPUs with a digital thermal sensor, hwmon otherwise
    Auto,
    /// Only the Intel thermal MSRs
    Msr,
    /// Only hwmon sensors (coretemp, k10temp, zenpower)
    Hwmon,
}

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "cputemp",
    version,
    about = "Show CPU temperatures in degrees Celsius, per CPU, from MSRs (Intel) or hwmon (AMD, others)",
    long_about = None,
    after_help = "Temperatures are shown in degrees Celsius.\n\nExamples:\n  cputemp              # one line of per-CPU temperatures, now\n  cputemp 1            # a line every second, until Ctrl-C\n  cputemp -a 5 12      # average temperature every 5 s, 12 times\n  cputemp -u 1         # with average CPU utilization first\n  cputemp -p           # add package sensors\n\nSee the cputemp(8) man page for more."
)]
pub struct Args {
    /// Show the average temperature only (AvgTemp(C), one decimal)
    #[arg(short = 'a')]
    pub avg: bool,
    /// Prefix each line with the average CPU utilization over the interval (AvgUtil(%))
    #[arg(short = 'u')]
    pub util: bool,
    /// Add package sensor columns (Intel package sensor; k10temp Tctl and Tccd per socket)
    #[arg(short = 'p', long = "package")]
    pub package: bool,
    /// Where temperatures come from
    #[arg(long, value_enum, default_value_t = Source::Auto, value_name = "SOURCE")]
    pub source: Source,
    /// TjMax in °C to use instead of MSR_TEMPERATURE_TARGET (Intel; for CPUs or VMs that
    /// report 0 there)
    #[arg(long, value_name = "C", value_parser = perf_tools_core::cli::between::<u32>("--tjmax", 1, 150))]
    pub tjmax: Option<u32>,
    /// Seconds between lines (default: print one line now and exit)
    #[arg(value_name = "interval", value_parser = perf_tools_core::cli::seconds("interval", 0.0, perf_tools_core::cli::ONE_YEAR))]
    pub interval: Option<f64>,
    /// Number of lines (default: until Ctrl-C when an interval is given)
    #[arg(value_name = "count", value_parser = perf_tools_core::cli::at_least::<u64>("count", 1))]
    pub count: Option<u64>,
    /// Read a fake machine tree (DIR/dev/cpu, DIR/sys, DIR/proc) instead of this machine
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// CPU time counters from the first line of /proc/stat (USER_HZ ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStat {
    /// user + nice + system + irq + softirq (the original's "used" time).
    pub busy: u64,
    /// All of user, nice, system, idle, iowait, irq, softirq, steal.
    pub total: u64,
}

/// Parses the aggregate `cpu` line of /proc/stat.
pub fn parse_stat(text: &str) -> Option<CpuStat> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 7 {
        return None;
    }
    let f = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(CpuStat {
        busy: f(0) + f(1) + f(2) + f(5) + f(6),
        total: (0..8).map(f).sum(),
    })
}

/// Average utilization in percent between two samples: Δbusy / Δtotal, which (unlike
/// the original's Δbusy / ncpus) does not depend on the interval or on USER_HZ.
pub fn utilization(a: CpuStat, b: CpuStat) -> Option<u64> {
    let busy = b.busy.checked_sub(a.busy)?;
    let total = b.total.checked_sub(a.total)?;
    if total == 0 {
        return None;
    }
    Some((busy * 100 + total / 2) / total)
}

fn read_stat(proc_root: &Path) -> Result<CpuStat> {
    let p = proc_root.join("stat");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    parse_stat(&text).with_context(|| format!("{}: no aggregate cpu line", p.display()))
}

/// Per-CPU Intel MSR temperature reader.
struct MsrTemps {
    files: BTreeMap<u32, MsrFile>,
    tjmax: BTreeMap<u32, u32>,
    /// (column, CPU to read 0x1B1 on).
    packages: Vec<(String, u32)>,
}

impl MsrTemps {
    fn core(&self, cpu: u32) -> Option<f64> {
        let f = self.files.get(&cpu)?;
        let v = f.read(reg::IA32_THERM_STATUS).ok()?;
        decode::core_temperature(*self.tjmax.get(&cpu)?, v).map(f64::from)
    }

    fn package(&self, cpu: u32) -> Option<f64> {
        let f = self.files.get(&cpu)?;
        let v = f.read(reg::IA32_PACKAGE_THERM_STATUS).ok()?;
        decode::package_temperature(*self.tjmax.get(&cpu)?, v).map(f64::from)
    }
}

enum Temps {
    Msr(MsrTemps),
    Hwmon(CpuTemps),
}

impl Temps {
    fn package_columns(&self) -> Vec<String> {
        match self {
            Temps::Msr(m) => m.packages.iter().map(|(c, _)| c.clone()).collect(),
            Temps::Hwmon(h) => h.packages.iter().map(|p| p.column.clone()).collect(),
        }
    }

    fn cpu(&self, cpu: u32) -> Option<f64> {
        match self {
            Temps::Msr(m) => m.core(cpu),
            Temps::Hwmon(h) => h.per_cpu.get(&cpu)?.read_celsius().ok(),
        }
    }

    fn packages(&self) -> Vec<Option<f64>> {
        match self {
            Temps::Msr(m) => m.packages.iter().map(|(_, c)| m.package(*c)).collect(),
            Temps::Hwmon(h) => h
                .packages
                .iter()
                .map(|p| p.sensor.read_celsius().ok())
                .collect(),
        }
    }
}

/// Opens the Intel thermal MSRs of every online CPU, or says why they cannot be used.
fn open_msr(
    machine: &Machine,
    info: &CpuInfo,
    online: &[u32],
    tjmax_override: Option<u32>,
    want_package: bool,
) -> Result<(MsrTemps, Vec<String>), String> {
    match &info.vendor {
        Vendor::Intel => {}
        v if v.is_amd_like() => {
            return Err(format!(
                "{v} CPUs have no temperature MSRs (the k10temp driver reads their sensors)"
            ))
        }
        v => return Err(format!("thermal MSRs are Intel-only (CPU vendor {v})")),
    }
    if !info.dts {
        return Err(
            "CPUID.06H:EAX[0] is 0: no digital thermal sensor is exposed (typical of VMs)".into(),
        );
    }
    let mut notes = Vec::new();
    let mut files = BTreeMap::new();
    let mut tjmax = BTreeMap::new();
    for &cpu in online {
        let f = match machine.msr.open(cpu) {
            Ok(f) => f,
            Err(MsrError::Offline { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let t = match tjmax_override {
            Some(t) => t,
            None => {
                let v = f
                    .read(reg::MSR_TEMPERATURE_TARGET)
                    .map_err(|e| e.to_string())?;
                let t = decode::tjmax(v);
                if t == 0 {
                    return Err(format!(
                        "{} reads 0 on CPU {cpu}, so TjMax is unknown (a hypervisor that answers 0 for every MSR?); give --tjmax if you know it",
                        reg::describe(reg::MSR_TEMPERATURE_TARGET)
                    ));
                }
                t
            }
        };
        if files.is_empty() {
            let v = f.read(reg::IA32_THERM_STATUS).map_err(|e| e.to_string())?;
            if !decode::therm_status(v).valid {
                return Err(format!(
                    "{} on CPU {cpu} has its reading-valid bit (31) clear: no valid temperature (value {v:#x})",
                    reg::describe(reg::IA32_THERM_STATUS)
                ));
            }
        }
        tjmax.insert(cpu, t);
        files.insert(cpu, f);
    }
    if files.is_empty() {
        return Err("no online CPU to read".into());
    }
    let mut packages = Vec::new();
    if want_package {
        if info.ptm {
            let mut seen = BTreeMap::new();
            for &cpu in files.keys() {
                let pkg = machine.sys.package_id(cpu).unwrap_or(0);
                seen.entry(pkg).or_insert(cpu);
            }
            packages = seen
                .into_iter()
                .map(|(pkg, cpu)| (format!("Pkg{pkg}"), cpu))
                .collect();
        } else {
            notes.push(
                "no package sensor: CPUID.06H:EAX[6] (package thermal management) is 0".into(),
            );
        }
    }
    Ok((
        MsrTemps {
            files,
            tjmax,
            packages,
        },
        notes,
    ))
}

/// Picks the temperature source and describes it for stderr.
fn choose_source(
    args: &Args,
    machine: &Machine,
    info: &CpuInfo,
    online: &[u32],
) -> Result<(Temps, String, Vec<String>)> {
    let hwmon_dir = machine.sys.root().join("class/hwmon");
    let msr_desc = || {
        let tj = match args.tjmax {
            Some(t) => format!("TjMax {t} (--tjmax)"),
            None => format!("TjMax from {}", reg::describe(reg::MSR_TEMPERATURE_TARGET)),
        };
        format!(
            "{} via {}/N/msr ({tj})",
            reg::describe(reg::IA32_THERM_STATUS),
            machine.msr.root().display()
        )
    };
    let msr_result = if args.source == Source::Hwmon {
        Err("not tried (--source hwmon)".to_string())
    } else {
        open_msr(machine, info, online, args.tjmax, args.package)
    };
    let msr_reason = match msr_result {
        Ok((m, notes)) => {
            let d = msr_desc();
            return Ok((Temps::Msr(m), d, notes));
        }
        Err(reason) => reason,
    };
    if args.source == Source::Msr {
        bail!("cannot read temperature MSRs: {msr_reason}");
    }
    if let Some(h) = hwmon::cpu_temperatures(&machine.sys, online) {
        let mut d = h.description.clone();
        if args.source == Source::Auto && info.vendor == Vendor::Intel {
            d.push_str(&format!("; MSRs not used: {msr_reason}"));
        }
        if h.per_cpu.is_empty() {
            bail!(
                "hwmon {} has no sensor that maps to a CPU (no topology in {})",
                h.driver,
                machine.sys.root().join("devices/system/cpu").display()
            );
        }
        return Ok((Temps::Hwmon(h), d, Vec::new()));
    }
    let hw = format!(
        "no coretemp, k10temp or zenpower sensor in {}",
        hwmon_dir.display()
    );
    let details = format!("CPU: {}; MSRs: {msr_reason}; hwmon: {hw}", info.summary());
    if info.hypervisor.is_some() {
        bail!(
            "no temperature source: the hypervisor does not expose thermal MSRs or hwmon sensors ({details})"
        );
    }
    bail!(
        "no temperature source ({details}); load the sensor driver (modprobe coretemp or modprobe k10temp)"
    );
}

/// The header line.
pub fn header(util: bool, avg: bool, cpus: &[u32], packages: &[String]) -> String {
    let mut cols: Vec<String> = Vec::new();
    if util {
        cols.push("AvgUtil(%)".into());
    }
    if avg {
        cols.push("AvgTemp(C)".into());
    } else {
        cols.extend(cpus.iter().map(|c| format!("CPU{}", c + 1)));
    }
    cols.extend(packages.iter().cloned());
    cols.join(" ")
}

/// One output line: optional utilization, per-CPU integers (or the one-decimal average)
/// and package columns; `-` for a value that could not be read.
pub fn line(
    util: Option<Option<u64>>,
    avg: bool,
    temps: &[Option<f64>],
    packages: &[Option<f64>],
) -> String {
    let int = |v: &Option<f64>| match v {
        Some(t) => format!("{}", t.round() as i64),
        None => "-".into(),
    };
    let mut cols: Vec<String> = Vec::new();
    if let Some(u) = util {
        cols.push(u.map_or("-".into(), |u| u.to_string()));
    }
    if avg {
        let vals: Vec<f64> = temps.iter().flatten().copied().collect();
        cols.push(if vals.is_empty() {
            "-".into()
        } else {
            format!("{:.1}", vals.iter().sum::<f64>() / vals.len() as f64)
        });
    } else {
        cols.extend(temps.iter().map(int));
    }
    cols.extend(packages.iter().map(int));
    cols.join(" ")
}

/// Runs cputemp.
pub fn run(args: Args) -> Result<()> {
    let machine = Machine::open(args.root.as_deref());
    let info = machine.cpuid.info().context("reading CPUID")?;
    let present = machine.present_cpus();
    let online = machine.online_cpus();
    if present.is_empty() {
        bail!("no CPUs found (no devices/system/cpu/present in sysfs)");
    }
    let (temps, source, notes) = choose_source(&args, &machine, &info, &online)?;
    eprintln!("cputemp: temperatures from {source}");
    for n in notes {
        eprintln!("cputemp: {n}");
    }
    let offline: Vec<u32> = present
        .iter()
        .copied()
        .filter(|c| !online.contains(c))
        .collect();
    if !offline.is_empty() && !args.avg {
        eprintln!(
            "cputemp: CPUs {} are offline and show -",
            perf_tools_core::cpulist::format(&offline)
        );
    }

    let shutdown = Shutdown::install()?;
    let one_shot = args.interval.is_none();
    let interval = Duration::from_secs_f64(args.interval.unwrap_or(1.0));
    let count = args.count.unwrap_or(if one_shot { 1 } else { u64::MAX });
    let pkg_cols = if args.package {
        temps.package_columns()
    } else {
        Vec::new()
    };

    // The first /proc/stat sample is taken before the header goes out, so whoever reads
    // the header knows the first interval has begun.
    let mut prev = if args.util {
        Some(read_stat(&machine.proc_root)?)
    } else {
        None
    };
    let mut out = Output::stdout();
    let _ = writeln!(
        out.buf,
        "{}",
        header(args.util, args.avg, &present, &pkg_cols)
    );
    out.flush()?;

    for i in 0..count {
        // With -u each line covers the interval before it; without, the first line is
        // immediate and the others follow at the interval.
        if (args.util || i > 0) && shutdown.sleep(interval) {
            break;
        }
        let util = match prev {
            Some(p) => {
                let now = read_stat(&machine.proc_root)?;
                prev = Some(now);
                Some(utilization(p, now))
            }
            None => None,
        };
        let values: Vec<Option<f64>> = present
            .iter()
            .map(|&c| {
                if online.contains(&c) {
                    temps.cpu(c)
                } else {
                    None
                }
            })
            .collect();
        let pkgs = if args.package {
            temps.packages()
        } else {
            Vec::new()
        };
        let _ = writeln!(out.buf, "{}", line(util, args.avg, &values, &pkgs));
        out.flush()?;
        if shutdown.requested() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stat_parsing_and_utilization() {
        let a = parse_stat("cpu  100 10 50 800 20 5 5 10 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n").unwrap();
        assert_eq!(a.busy, 170);
        assert_eq!(a.total, 1000);
        // 2 CPUs over 5 s at USER_HZ 100 = 1000 ticks; 250 busy → 25% whatever the
        // interval (the original would print 250 / 2 = 125).
        let b = CpuStat {
            busy: a.busy + 250,
            total: a.total + 1000,
        };
        assert_eq!(utilization(a, b), Some(25));
        assert_eq!(utilization(a, a), None);
        // Rounded to nearest.
        let c = CpuStat {
            busy: a.busy + 2,
            total: a.total + 3,
        };
        assert_eq!(utilization(a, c), Some(67));
        assert!(parse_stat("intr 1 2 3\n").is_none());
    }

    #[test]
    fn header_and_lines() {
        assert_eq!(header(false, false, &[0, 1, 2], &[]), "CPU1 CPU2 CPU3");
        assert_eq!(header(true, true, &[0, 1], &[]), "AvgUtil(%) AvgTemp(C)");
        assert_eq!(
            header(true, false, &[0, 1], &["Pkg0".into()]),
            "AvgUtil(%) CPU1 CPU2 Pkg0"
        );
        let t = [Some(77.0), Some(75.0), None, Some(73.4)];
        assert_eq!(line(None, false, &t, &[]), "77 75 - 73");
        assert_eq!(line(Some(Some(56)), true, &t, &[]), "56 75.1");
        assert_eq!(line(Some(None), true, &[None], &[Some(80.0)]), "- - 80");
    }
}
