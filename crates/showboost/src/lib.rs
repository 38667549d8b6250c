//! showboost: show the real CPU clock rate (turbo boost) from APERF/MPERF.
//!
//! A port of msr-cloud-tools' `showboost` with the same options, preamble and table
//! (`TIME C0_MCYC C0_ACYC UTIL RATIO MHz`), that also works where the original cannot:
//!
//! * Base MHz from MSR_PLATFORM_INFO (0xCE, Intel), the P0 P-state definition
//!   (0xC0010064, AMD family 17h+), CPUID leaf 0x16, or sysfs — never parsed from the
//!   model name (which made the original fail on every AMD CPU).
//! * Turbo limits from MSR_TURBO_RATIO_LIMIT(1) (0x1AD/0x1AE) on Intel only; the lines
//!   are omitted where unknown instead of printed wrong.
//! * APERF/MPERF from `/dev/cpu/N/msr`, or from the perf `msr` PMU's `aperf`/`mperf`
//!   events where the msr driver is missing; a clear error (exit 1) when neither exists.
//! * `-C all` / `-A`: every online CPU, one row per CPU per interval.
//!
//! The hidden option `--root DIR` reads a fake machine tree instead of this machine (the
//! seam the integration tests use; see `perf_tools_cpu::msr::fake`).

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_core::{cli, clock::monotonic_ns, cpulist};
use perf_tools_cpu::cpuid::{CpuInfo, Vendor};
use perf_tools_cpu::msr::{decode, reg, Machine, MsrError, MsrFile};
use perf_tools_pmc::msr_pmu::{Counter, MsrPmu};

/// Which CPUs to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuSel {
    /// One CPU.
    One(u32),
    /// Every online CPU.
    All,
}

/// Parses `-C`: a CPU number or `all`.
pub fn parse_cpu_sel(s: &str) -> Result<CpuSel, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(CpuSel::All);
    }
    s.parse::<u32>()
        .map(CpuSel::One)
        .map_err(|_| format!("CPU must be a CPU number or \"all\": {s:?}"))
}

/// Where APERF/MPERF come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// /dev/cpu/N/msr, else the perf msr PMU
    Auto,
    /// Only /dev/cpu/N/msr
    Msr,
    /// Only the perf msr PMU's aperf/mperf events
    Perf,
}

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "showboost",
    version,
    about = "Show the real CPU clock rate (turbo boost) from the APERF/MPERF registers",
    long_about = None,
    after_help = "Examples:\n  showboost            # CPU 0, every second, until Ctrl-C\n  showboost 5 12       # every 5 seconds, 12 times\n  showboost -C 3       # CPU 3\n  showboost -A 1 10    # every online CPU, 10 intervals\n\nSee the showboost(8) man page for more."
)]
pub struct Args {
    /// CPU to measure, or "all" for every online CPU
    #[arg(short = 'C', value_name = "CPU", default_value = "0", value_parser = parse_cpu_sel)]
    pub cpu: CpuSel,
    /// Measure every online CPU (same as -C all)
    #[arg(short = 'A')]
    pub all: bool,
    /// Base frequency in MHz to use instead of the detected one
    #[arg(long = "base-mhz", value_name = "MHz", value_parser = perf_tools_core::cli::between::<u32>("--base-mhz", 1, 100_000))]
    pub base_mhz: Option<u32>,
    /// Where APERF/MPERF come from
    #[arg(long, value_enum, default_value_t = Source::Auto, value_name = "SOURCE")]
    pub source: Source,
    /// Seconds between rows
    #[arg(value_name = "interval", default_value = "1", value_parser = cli::seconds("interval", 0.0, cli::ONE_YEAR))]
    pub interval: f64,
    /// Number of intervals to print (default: until Ctrl-C)
    #[arg(value_name = "count", value_parser = perf_tools_core::cli::at_least::<u64>("count", 1))]
    pub count: Option<u64>,
    /// Read a fake machine tree (DIR/dev/cpu, DIR/sys, DIR/proc) instead of this machine
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
    /// The perf msr PMU events standing for MPERF and APERF (a test seam: `tsc,tsc`
    /// exercises the perf path on kernels whose PMU lists only tsc)
    #[arg(long = "perf-events", value_name = "MPERF,APERF", hide = true, default_value = "mperf,aperf", value_parser = parse_event_pair)]
    pub perf_events: (String, String),
}

/// Parses `MPERF,APERF` event names.
pub fn parse_event_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once(',') {
        Some((m, a)) if !m.is_empty() && !a.is_empty() => Ok((m.to_string(), a.to_string())),
        _ => Err(format!("expected two event names, MPERF,APERF: {s:?}")),
    }
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// One interval's counter deltas for one CPU, and the numbers derived from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// ΔMPERF: C0 cycles at the base (TSC) rate.
    pub dm: u64,
    /// ΔAPERF: C0 cycles at the actual rate.
    pub da: u64,
    /// UTIL %: ΔMPERF / (base MHz × 10⁶ × elapsed s), rounded (MPERF counts only in C0).
    pub util: Option<u64>,
    /// RATIO %: 100 × ΔAPERF / ΔMPERF.
    pub ratio: Option<u64>,
    /// MHz: base × ΔAPERF / ΔMPERF.
    pub mhz: Option<u64>,
}

/// Computes a row as the original does (integer maths for RATIO and MHz), with UTIL
/// over the measured elapsed time (which is a little longer than the interval) and
/// rounded rather than truncated, so a busy CPU shows 100%, not 99%.
pub fn compute(dm: u64, da: u64, base_mhz: Option<u32>, elapsed_s: f64) -> Row {
    let ratio = (dm > 0).then(|| (100u128 * da as u128 / dm as u128) as u64);
    let mhz = base_mhz
        .filter(|_| dm > 0)
        .map(|b| (b as u128 * da as u128 / dm as u128) as u64);
    let util = base_mhz
        .filter(|_| elapsed_s > 0.0)
        .map(|b| (dm as f64 * 100.0 / (b as f64 * 1e6 * elapsed_s)).round() as u64);
    Row {
        dm,
        da,
        util,
        ratio,
        mhz,
    }
}

/// The table header (`%-10s %-12s %-12s %6s %6s %6s`, plus a CPU column with -A).
pub fn table_header(per_cpu: bool) -> String {
    if per_cpu {
        format!(
            "{:<10} {:<4} {:<12} {:<12} {:>6} {:>6} {:>6}",
            "TIME", "CPU", "C0_MCYC", "C0_ACYC", "UTIL", "RATIO", "MHz"
        )
    } else {
        format!(
            "{:<10} {:<12} {:<12} {:>6} {:>6} {:>6}",
            "TIME", "C0_MCYC", "C0_ACYC", "UTIL", "RATIO", "MHz"
        )
    }
}

/// A table row (`%-10s %-12d %-12d %5d%% %5d%% %6d`; `-` for what is unknown).
pub fn table_row(time: &str, cpu: Option<u32>, r: &Row) -> String {
    let pct = |v: Option<u64>| match v {
        Some(v) => format!("{v:5}%"),
        None => format!("{:>6}", "-"),
    };
    let mhz = match r.mhz {
        Some(m) => format!("{m:6}"),
        None => format!("{:>6}", "-"),
    };
    let cpu = match cpu {
        Some(c) => format!("{c:<4} "),
        None => String::new(),
    };
    format!(
        "{time:<10} {cpu}{:<12} {:<12} {} {} {mhz}",
        r.dm,
        r.da,
        pct(r.util),
        pct(r.ratio)
    )
}

/// The preamble lines before the table.
pub fn preamble(
    base_mhz: Option<u32>,
    set_mhz: Option<u64>,
    turbos: &[u32],
    what: &str,
    interval: f64,
) -> String {
    let mut s = String::new();
    if let Some(b) = base_mhz {
        s.push_str(&format!("Base CPU MHz : {b}\n"));
    }
    if let Some(m) = set_mhz {
        s.push_str(&format!("Set CPU MHz  : {m}\n"));
    }
    if let (Some(b), false) = (base_mhz, turbos.is_empty()) {
        let t: Vec<String> = turbos.iter().map(|t| t.to_string()).collect();
        let r: Vec<String> = turbos.iter().map(|t| format!("{}%", t * 100 / b)).collect();
        s.push_str(&format!("Turbo MHz(s) : {}\n", t.join(" ")));
        s.push_str(&format!("Turbo Ratios : {}\n", r.join(" ")));
    }
    s.push_str(&format!("{what} summary every {interval} seconds...\n"));
    s
}

/// `cpu MHz` of a CPU from /proc/cpuinfo text, truncated to an integer.
pub fn cpuinfo_mhz(text: &str, cpu: u32) -> Option<u64> {
    let mut current = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => current = v.trim().parse::<u32>().ok(),
            "cpu MHz" if current == Some(cpu) => {
                return v.trim().parse::<f64>().ok().map(|m| m as u64);
            }
            _ => {}
        }
    }
    None
}

/// Local time as HH:MM:SS.
fn hhmmss() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// Base MHz and where it came from.
fn base_frequency(
    args: &Args,
    machine: &Machine,
    info: &CpuInfo,
    msr: Option<&MsrFile>,
    cpu: u32,
) -> Option<(u32, String)> {
    if let Some(b) = args.base_mhz {
        return Some((b, "--base-mhz".into()));
    }
    if let Some(f) = msr {
        match info.vendor {
            Vendor::Intel => {
                if let Ok(v) = f.read(reg::MSR_PLATFORM_INFO) {
                    let r = decode::platform_base_ratio(v);
                    if r > 0 {
                        return Some((r * 100, reg::describe(reg::MSR_PLATFORM_INFO)));
                    }
                }
            }
            ref v if v.is_amd_like() && info.family >= 0x17 => {
                if let Some(m) = f
                    .read(reg::AMD_PSTATE_DEF0)
                    .ok()
                    .and_then(|v| decode::amd_pstate_mhz(info.family, v))
                {
                    return Some((m, format!("P0 {}", reg::describe(reg::AMD_PSTATE_DEF0))));
                }
            }
            _ => {}
        }
    }
    if let Some(b) = info.base_mhz {
        return Some((b, "CPUID leaf 0x16".into()));
    }
    machine
        .sys
        .nominal_mhz(cpu)
        .map(|(m, src)| (m, format!("sysfs {src}")))
}

/// Turbo frequencies from the Intel turbo ratio MSRs, where their layout is the one the
/// original decodes.
fn turbo_frequencies(info: &CpuInfo, msr: Option<&MsrFile>, base: Option<u32>) -> Vec<u32> {
    let (Some(f), Some(base)) = (msr, base) else {
        return Vec::new();
    };
    // Intel only; hybrid parts have per-core-type layouts; Xeon Phi (06_57, 06_85) uses
    // a different scheme.
    if info.vendor != Vendor::Intel
        || info.hybrid
        || (info.family == 6 && matches!(info.model, 0x57 | 0x85))
    {
        return Vec::new();
    }
    let limit1 = f.read(reg::MSR_TURBO_RATIO_LIMIT1).ok();
    let limit = f.read(reg::MSR_TURBO_RATIO_LIMIT).ok();
    decode::turbo_mhz(limit1, limit, base)
}

/// (cpu, (mperf, aperf)) per CPU; `None` for a CPU whose read failed.
type Sample = Vec<(u32, Option<(u64, u64)>)>;

/// APERF/MPERF readers for the selected CPUs.
enum Counters {
    Msr(Vec<MsrFile>),
    Perf(Vec<(u32, Counter, Counter)>),
}

impl Counters {
    /// (cpu, mperf, aperf) per CPU; `None` for a CPU whose read failed.
    fn sample(&self) -> Sample {
        match self {
            Counters::Msr(files) => files
                .iter()
                .map(|f| {
                    let m = f.read(reg::IA32_MPERF);
                    let a = f.read(reg::IA32_APERF);
                    (f.cpu(), m.ok().zip(a.ok()))
                })
                .collect(),
            Counters::Perf(c) => c
                .iter()
                .map(|(cpu, m, a)| (*cpu, m.read().ok().zip(a.read().ok())))
                .collect(),
        }
    }
}

fn open_msr(machine: &Machine, cpus: &[u32]) -> Result<Vec<MsrFile>, String> {
    let mut files = Vec::new();
    for &cpu in cpus {
        let f = machine.msr.open(cpu).map_err(|e| e.to_string())?;
        for r in [reg::IA32_MPERF, reg::IA32_APERF] {
            f.read(r).map_err(|e: MsrError| e.to_string())?;
        }
        files.push(f);
    }
    Ok(files)
}

fn open_perf(
    machine: &Machine,
    cpus: &[u32],
    (mperf, aperf): &(String, String),
) -> Result<Vec<(u32, Counter, Counter)>, String> {
    if machine.fake {
        return Err("not used with a fake machine tree".into());
    }
    let pmu = MsrPmu::open(machine.sys.root()).map_err(|e| e.to_string())?;
    if pmu.config(aperf).is_none() || pmu.config(mperf).is_none() {
        let have = pmu.event_names();
        return Err(format!(
            "the perf msr PMU has no {aperf}/{mperf} events (it has: {})",
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        ));
    }
    let mut v = Vec::new();
    for &cpu in cpus {
        let m = pmu.counter(mperf, cpu).map_err(|e| e.to_string())?;
        let a = pmu.counter(aperf, cpu).map_err(|e| e.to_string())?;
        v.push((cpu, m, a));
    }
    Ok(v)
}

/// Runs showboost.
pub fn run(args: Args) -> Result<()> {
    let machine = Machine::open(args.root.as_deref());
    let info = machine.cpuid.info().context("reading CPUID")?;
    let all = args.all || args.cpu == CpuSel::All;
    let cpus = selected_cpus(&args, all, machine.online_cpus())?;
    let first = cpus[0];

    let (counters, counter_desc, msr_reason) = open_counters(&args, &machine, &info, &cpus)?;
    let msr0 = match &counters {
        Counters::Msr(files) => files.first(),
        Counters::Perf(_) => None,
    };
    let base = base_frequency(&args, &machine, &info, msr0, first);
    let turbos = turbo_frequencies(&info, msr0, base.as_ref().map(|b| b.0));
    let set_mhz = std::fs::read_to_string(machine.proc_root.join("cpuinfo"))
        .ok()
        .and_then(|t| cpuinfo_mhz(&t, first));
    eprintln!(
        "{}",
        sources_note(&counter_desc, msr_reason.as_deref(), &base)
    );

    let shutdown = Shutdown::install()?;
    let what = if all {
        format!("CPUs {}", cpulist::format(&cpus))
    } else {
        format!("CPU {first}")
    };
    let base_mhz = base.as_ref().map(|b| b.0);
    // The baseline sample (the original's first, unprinted one) is taken before the
    // header goes out, so whoever reads the header knows the interval has begun.
    let baseline = (counters.sample(), monotonic_ns());
    let mut out = Output::stdout();
    out.buf
        .extend_from_slice(preamble(base_mhz, set_mhz, &turbos, &what, args.interval).as_bytes());
    let _ = writeln!(out.buf);
    let _ = writeln!(out.buf, "{}", table_header(all));
    out.flush()?;
    let sampling = Sampling {
        counters: &counters,
        info: &info,
        cpus: &cpus,
        per_cpu: all,
        base_mhz,
    };
    sampling.print_rows(&args, baseline, &shutdown, &mut out)
}

/// The CPUs to measure: `-C N` (which must be online), or every online CPU for `-A` /
/// `-C all`.
fn selected_cpus(args: &Args, all: bool, online: Vec<u32>) -> Result<Vec<u32>> {
    let cpus = match (all, args.cpu) {
        (false, CpuSel::One(c)) => {
            if !online.contains(&c) {
                return Err(cli::usage(format!(
                    "CPU {c} is not online (online CPUs: {})",
                    cpulist::format(&online)
                )));
            }
            vec![c]
        }
        _ => online,
    };
    if cpus.is_empty() {
        bail!("no online CPUs found");
    }
    Ok(cpus)
}

/// Opens APERF/MPERF on `cpus`: MSRs first, else the perf msr PMU (as `--source`
/// allows). Returns the counters, where they come from, and why MSRs were not used; an
/// error naming both reasons when neither works.
fn open_counters(
    args: &Args,
    machine: &Machine,
    info: &CpuInfo,
    cpus: &[u32],
) -> Result<(Counters, String, Option<String>)> {
    let msr_result = if args.source == Source::Perf {
        Err("not tried (--source perf)".to_string())
    } else {
        open_msr(machine, cpus)
    };
    let msr_reason = match msr_result {
        Ok(files) => {
            let desc = format!("{}/N/msr", machine.msr.root().display());
            return Ok((Counters::Msr(files), desc, None));
        }
        Err(r) => r,
    };
    let perf_result = if args.source == Source::Msr {
        Err("not tried (--source msr)".to_string())
    } else {
        open_perf(machine, cpus, &args.perf_events)
    };
    match perf_result {
        Ok(c) => Ok((
            Counters::Perf(c),
            format!(
                "the perf msr PMU ({}/{} events)",
                args.perf_events.1, args.perf_events.0
            ),
            Some(msr_reason),
        )),
        Err(perf_reason) => {
            let cpu = format!(
                "CPU: {}, CPUID.06H:ECX[0] (APERF/MPERF) = {}",
                info.summary(),
                u8::from(info.aperfmperf)
            );
            let details = format!("{cpu}; MSRs: {msr_reason}; perf: {perf_reason}");
            if info.hypervisor.is_some() {
                bail!(
                    "no APERF/MPERF source: the hypervisor does not expose APERF/MPERF through MSRs or the perf msr PMU ({details})"
                );
            }
            bail!("no APERF/MPERF source ({details})");
        }
    }
}

/// The stderr line that says where the counters and the base frequency come from.
fn sources_note(
    counter_desc: &str,
    msr_reason: Option<&str>,
    base: &Option<(u32, String)>,
) -> String {
    let mut src = format!("showboost: APERF/MPERF from {counter_desc}");
    if let Some(r) = msr_reason {
        src.push_str(&format!(" (MSRs: {r})"));
    }
    match base {
        Some((_, from)) => src.push_str(&format!("; base MHz from {from}")),
        None => src.push_str(
            "; base MHz unknown (no MSR, CPUID leaf 0x16 or sysfs source): UTIL and MHz show -, give --base-mhz",
        ),
    }
    src
}

/// What the row loop reads and how it prints.
struct Sampling<'a> {
    counters: &'a Counters,
    info: &'a CpuInfo,
    cpus: &'a [u32],
    /// One row per CPU with a CPU column (`-A`, `-C all`).
    per_cpu: bool,
    base_mhz: Option<u32>,
}

impl Sampling<'_> {
    /// Prints a row (per CPU) every interval from the `baseline` sample (and its
    /// monotonic time) on, `count`
    /// times or until a signal; an error when the first interval shows MSRs that read 0
    /// and do not advance.
    fn print_rows(
        &self,
        args: &Args,
        baseline: (Sample, u64),
        shutdown: &Shutdown,
        out: &mut Output,
    ) -> Result<()> {
        let (mut last, mut last_ns) = baseline;
        let interval = Duration::from_secs_f64(args.interval);
        let count = args.count.unwrap_or(u64::MAX);
        let is_msr = matches!(self.counters, Counters::Msr(_));
        for n in 0..count {
            if shutdown.sleep(interval) {
                break;
            }
            let now = self.counters.sample();
            let now_ns = monotonic_ns();
            let elapsed = (now_ns - last_ns) as f64 / 1e9;
            if n == 0 && is_msr && all_zero(&last) && all_zero(&now) {
                bail!(
                    "IA32_APERF/IA32_MPERF (0xe8/0xe7) read 0 and did not advance on CPU {}: the {} returns 0 for these MSRs (CPUID.06H:ECX[0] = {}), so showboost cannot measure the clock rate here",
                    cpulist::format(self.cpus),
                    if self.info.hypervisor.is_some() {
                        "hypervisor"
                    } else {
                        "CPU"
                    },
                    u8::from(self.info.aperfmperf)
                );
            }
            let time = hhmmss();
            for ((cpu, before), (_, after)) in last.iter().zip(now.iter()) {
                let row = match (before, after) {
                    (Some((m0, a0)), Some((m1, a1))) => compute(
                        m1.wrapping_sub(*m0),
                        a1.wrapping_sub(*a0),
                        self.base_mhz,
                        elapsed,
                    ),
                    _ => continue,
                };
                let _ = writeln!(
                    out.buf,
                    "{}",
                    table_row(&time, self.per_cpu.then_some(*cpu), &row)
                );
            }
            out.flush()?;
            last = now;
            last_ns = now_ns;
        }
        Ok(())
    }
}

fn all_zero(s: &[(u32, Option<(u64, u64)>)]) -> bool {
    s.iter().all(|(_, v)| matches!(v, Some((0, 0))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn row_maths_as_the_original() {
        // The original's example: base 3000, ΔM 3021819807, ΔA 3521745975 over its
        // "1 s" interval, which really lasted about 1.007 s (sleep 1 plus two rdmsr).
        let r = compute(3_021_819_807, 3_521_745_975, Some(3000), 1.007);
        assert_eq!(r.ratio, Some(116));
        assert_eq!(r.mhz, Some(3496));
        assert_eq!(r.util, Some(100));
        assert_eq!(
            table_row("21:41:43", None, &r),
            "21:41:43   3021819807   3521745975     100%   116%   3496"
        );
        // Half busy at base 2500 over 2 s (plus 2 ms of sleep overshoot).
        let r = compute(2_500_000_000, 2_750_000_000, Some(2500), 2.002);
        assert_eq!((r.util, r.ratio, r.mhz), (Some(50), Some(110), Some(2750)));
        // Rounded, not truncated: 49.6% is 50%.
        assert_eq!(compute(1_240_000_000, 0, Some(2500), 1.0).util, Some(50));
        // No C0 time: ratio and MHz undefined, not a division by zero.
        let r = compute(0, 0, Some(2500), 1.0);
        assert_eq!((r.util, r.ratio, r.mhz), (Some(0), None, None));
        assert_eq!(
            table_row("00:00:01", Some(3), &r),
            "00:00:01   3    0            0                0%      -      -"
        );
        // Base unknown: RATIO only.
        let r = compute(1000, 1500, None, 1.0);
        assert_eq!((r.util, r.ratio, r.mhz), (None, Some(150), None));
    }

    #[test]
    fn headers() {
        assert_eq!(
            table_header(false),
            "TIME       C0_MCYC      C0_ACYC        UTIL  RATIO    MHz"
        );
        assert_eq!(
            table_header(true),
            "TIME       CPU  C0_MCYC      C0_ACYC        UTIL  RATIO    MHz"
        );
        assert_eq!(
            preamble(Some(3000), Some(3000), &[3400, 3500], "CPU 0", 1.0),
            "Base CPU MHz : 3000\nSet CPU MHz  : 3000\nTurbo MHz(s) : 3400 3500\nTurbo Ratios : 113% 116%\nCPU 0 summary every 1 seconds...\n"
        );
        assert_eq!(
            preamble(Some(2650), None, &[], "CPUs 0-3", 0.5),
            "Base CPU MHz : 2650\nCPUs 0-3 summary every 0.5 seconds...\n"
        );
    }

    #[test]
    fn cpuinfo_parsing() {
        let t = "processor\t: 0\ncpu MHz\t\t: 2500.042\n\nprocessor\t: 1\ncpu MHz\t\t: 3100.999\n";
        assert_eq!(cpuinfo_mhz(t, 0), Some(2500));
        assert_eq!(cpuinfo_mhz(t, 1), Some(3100));
        assert_eq!(cpuinfo_mhz(t, 2), None);
    }

    #[test]
    fn cpu_selection() {
        assert_eq!(parse_cpu_sel("3"), Ok(CpuSel::One(3)));
        assert_eq!(parse_cpu_sel("all"), Ok(CpuSel::All));
        assert!(parse_cpu_sel("-1").is_err());
        assert!(parse_cpu_sel("x").is_err());
    }
}
