//! pmcstat: CPU performance counters per interval, read with `perf_event_open` directly.
//!
//! One tool for pmc-cloud-tools' pmcarch, pmcipc, cpucache, tlbstat, icache and resstalls
//! (modes `arch`, `ipc`, `cache`, `tlb`, `icache`, `resstalls`), plus `-e` for any generic
//! or raw events and `-m sw` for the kernel's software events, which work where no
//! hardware PMU is exposed (most VMs). Counters are read as groups with
//! time_enabled/time_running: multiplexed values are scaled and said so once on stderr
//! (per row in the RUN% column with `--run-pct`), and events that are not supported or
//! never counted are shown as such, never as 0.

pub mod layout;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use perf_tools_core::cgroup::{self, Cgroup, Mount, Version};
use perf_tools_core::output::Output;
use perf_tools_core::signals::{self, Shutdown};
use perf_tools_core::workload::{process_alive, Exit, Workload};
use perf_tools_core::{cli, cpulist};
use perf_tools_pmc::counters::{
    probe_hardware, threads_of, Counters, HardwareProbe, Options, Target, Value,
};
use perf_tools_pmc::cpu::{online_cpus, CpuInfo, Pmus};
use perf_tools_pmc::event::{Event, VendorEvent};
use perf_tools_pmc::explain::{no_pmu_message, OpenFailure};

pub use layout::{Layout, Mode};

/// The header is repeated after this many rows, as the originals do.
pub const HEADER_EVERY: usize = 25;

/// The shell `-c CMD` runs the command with.
pub const SHELL: &str = "/bin/sh";

/// Command-line options.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "pmcstat",
    version,
    about = "Measure CPU performance counters (cycles, IPC, branches, caches, TLB, stalls) per interval",
    long_about = None,
    after_help = "Examples:\n  pmcstat                      # arch summary, system-wide, every second\n  pmcstat 1 10                 # the same for 10 seconds\n  pmcstat -m ipc -C 0          # cycles and IPC on CPU 0\n  pmcstat -m cache -p 181      # cache hit ratios of PID 181 (all threads)\n  pmcstat -m tlb -c './bench'  # TLB walks of a command (run by sh -c)\n  pmcstat -- ./bench -x        # a command as exact arguments (no shell)\n  pmcstat -e cycles,r412e      # your own event list (raw rUUEE codes allowed)\n  pmcstat -m sw                # software events: works in VMs without a PMU\n  pmcstat -m sw --cgroup /system.slice/nginx.service  # one cgroup only\n\nSee the pmcstat(8) man page for more."
)]
pub struct Args {
    /// What to measure
    #[arg(short = 'm', long = "mode", value_enum, default_value_t = Mode::Arch, value_name = "mode")]
    pub mode: Mode,
    /// Count these events instead: comma-separated generic names (cycles, instructions,
    /// cache-misses, branch-misses, task-clock, L1-dcache-load-misses, dTLB-load-misses, ...)
    /// or raw codes rUUEE (hex, umask UU, event EE)
    #[arg(short = 'e', value_name = "events", conflicts_with = "mode")]
    pub events: Option<String>,
    /// Measure this CPU only (or a list such as 0,2-3)
    #[arg(short = 'C', value_name = "CPU")]
    pub cpu: Option<String>,
    /// Measure this process: all its threads, and children it starts later
    #[arg(short = 'p', value_name = "PID", value_parser = perf_tools_core::cli::at_least::<i32>("PID", 1))]
    pub pid: Option<i32>,
    /// Run this command with sh -c and measure it (globs, quotes and pipes work as in a
    /// shell); pmcstat exits with its exit status
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Measure the tasks of this cgroup (and its descendants) while they run, on every
    /// online CPU or on -C's: a cgroup v2 directory (/sys/fs/cgroup/unified/x) or path
    /// inside the hierarchy (/system.slice/x.service), or a cgroup of a v1 hierarchy
    /// mounted with the perf_event controller
    #[arg(long = "cgroup", value_name = "PATH", conflicts_with_all = ["pid", "command", "argv", "container"])]
    pub cgroup: Option<String>,
    /// Measure this container: its ID or a prefix of at least 4 characters (as docker ps
    /// shows), or a Kubernetes pod UID, found by the cgroup its runtime made
    #[arg(long = "container", value_name = "ID", conflicts_with_all = ["pid", "command", "argv"])]
    pub container: Option<String>,
    /// Add a RUN% column: the smallest percentage of the interval the row's counters were
    /// on the PMU (below 100 when the kernel multiplexed them)
    #[arg(long = "run-pct")]
    pub run_pct: bool,
    /// Count user mode only (allowed for your own processes at perf_event_paranoid 2)
    #[arg(long = "user")]
    pub user: bool,
    /// Print what each event is opened as (PMU, attr type and config) and exit
    #[arg(long = "show-events")]
    pub show_events: bool,
    /// Output interval in seconds
    #[arg(value_name = "interval", default_value = "1", value_parser = cli::seconds("interval", 0.01, cli::ONE_YEAR))]
    pub interval: f64,
    /// Total seconds to measure (default: until Ctrl-C, or until the process or command ends)
    #[arg(value_name = "duration", value_parser = cli::parse_duration)]
    pub duration: Option<f64>,
    /// Run and measure this command, given as exact arguments after `--` (no shell);
    /// pmcstat exits with its exit status
    #[arg(last = true, value_name = "command")]
    pub argv: Vec<String>,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// What is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every online CPU, summed.
    System(Vec<u32>),
    /// Some CPUs, summed.
    Cpus(Vec<u32>),
    /// A process and its threads.
    Pid(i32),
    /// A command run by pmcstat, as its argument vector (`sh -c CMD` for `-c`).
    Command(Vec<String>),
    /// The tasks of a cgroup, on these CPUs, summed.
    Cgroup(Cgroup, Vec<u32>),
}

/// Checks the scope options (usage errors exit 2).
pub fn scope(args: &Args) -> Result<Scope> {
    let n = [
        args.cpu.is_some(),
        args.pid.is_some(),
        args.command.is_some() || !args.argv.is_empty(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if args.command.is_some() && !args.argv.is_empty() {
        return Err(cli::usage(
            "give the command either with -c or after --, not both",
        ));
    }
    if n > 1 {
        return Err(cli::usage("pick one of -C, -p, -c"));
    }
    let cgroup = match (&args.cgroup, &args.container) {
        (Some(p), _) => Some(cgroup::resolve(p)?),
        (None, Some(id)) => Some(cgroup::find_container(id)?.cgroup),
        (None, None) => None,
    };
    if let Some(cg) = cgroup {
        check_perf_event_cgroup(&cg, &cgroup::mounts()?, &read_proc_cgroups())?;
        let cpus = match &args.cpu {
            Some(c) => cpu_list(c)?,
            None => online_cpus(),
        };
        return Ok(Scope::Cgroup(cg, cpus));
    }
    if let Some(c) = &args.cpu {
        return Ok(Scope::Cpus(cpu_list(c)?));
    }
    if let Some(p) = args.pid {
        return Ok(Scope::Pid(p));
    }
    if let Some(c) = &args.command {
        if c.trim().is_empty() {
            return Err(cli::usage("-c: empty command"));
        }
        // Like the original (perf stat running the command line), but through a real
        // shell, so globs such as 'cksum /boot/*' expand.
        return Ok(Scope::Command(vec![
            SHELL.to_string(),
            "-c".to_string(),
            c.clone(),
        ]));
    }
    if !args.argv.is_empty() {
        return Ok(Scope::Command(args.argv.clone()));
    }
    Ok(Scope::System(online_cpus()))
}

/// `-C`'s CPU list, checked against the online CPUs.
fn cpu_list(c: &str) -> Result<Vec<u32>> {
    let list = cpulist::parse(c).map_err(|e| cli::usage(format!("-C: {e}")))?;
    if list.is_empty() {
        return Err(cli::usage("-C: empty CPU list"));
    }
    let online = online_cpus();
    if let Some(bad) = list.iter().find(|c| !online.contains(c)) {
        return Err(cli::usage(format!(
            "-C: CPU {bad} is not online (online CPUs: {})",
            cpulist::format(&online)
        )));
    }
    Ok(list)
}

/// `/proc/cgroups`, or nothing when it cannot be read.
fn read_proc_cgroups() -> String {
    std::fs::read_to_string("/proc/cgroups").unwrap_or_default()
}

/// The `perf_event` line of `/proc/cgroups`: (hierarchy ID, enabled); hierarchy 0 means
/// the controller is on the v2 hierarchy (or on none).
pub fn perf_event_controller(proc_cgroups: &str) -> Option<(u32, bool)> {
    proc_cgroups.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["perf_event", hier, _, enabled, ..] => Some((hier.parse().ok()?, *enabled == "1")),
            _ => None,
        }
    })
}

/// Whether perf events can be attached to `cg`: the kernel must have the perf_event
/// controller, and `cg` must be in the hierarchy it is attached to (v2 unless a v1
/// hierarchy was mounted with it). The error says which fix applies.
pub fn check_perf_event_cgroup(cg: &Cgroup, mounts: &[Mount], proc_cgroups: &str) -> Result<()> {
    let v1_fix = "mkdir -p /sys/fs/cgroup/perf_event && mount -t cgroup -o perf_event none \
                  /sys/fs/cgroup/perf_event, then put the tasks in a cgroup there";
    let Some((hier, enabled)) = perf_event_controller(proc_cgroups) else {
        bail!(
            "this kernel has no perf_event cgroup controller (built without \
             CONFIG_CGROUP_PERF; /proc/cgroups lists no perf_event), so counters cannot be \
             restricted to a cgroup; count the cgroup's processes with -p PID instead"
        );
    };
    if !enabled {
        bail!(
            "the perf_event cgroup controller is disabled (cgroup_disable=perf_event on the \
             kernel command line?): remove that boot option to count per cgroup"
        );
    }
    let own = mounts
        .iter()
        .filter(|m| m.version == Version::V1 && m.options.iter().any(|o| o == "perf_event"))
        .map(|m| m.dir.display().to_string())
        .collect::<Vec<_>>();
    match cg.version {
        Version::V2 if hier != 0 => bail!(
            "cgroup {} is in the v2 hierarchy, but the perf_event controller is attached to \
             the v1 hierarchy {hier} here ({}), so perf events can only follow cgroups of \
             that hierarchy: give the cgroup's path there (see /proc/PID/cgroup of one of \
             its tasks)",
            cg.path,
            if own.is_empty() {
                "not mounted in this namespace".to_string()
            } else {
                format!("mounted at {}", own.join(", "))
            }
        ),
        Version::V2 => Ok(()),
        Version::V1 => {
            let in_perf = mounts.iter().any(|m| {
                m.version == Version::V1
                    && m.options.iter().any(|o| o == "perf_event")
                    && cg.dir.starts_with(&m.dir)
            });
            if in_perf {
                return Ok(());
            }
            let v2 = mounts
                .iter()
                .find(|m| m.version == Version::V2)
                .map(|m| format!("; or use cgroup v2 ({}/...)", m.dir.display()))
                .filter(|_| hier == 0)
                .unwrap_or_default();
            bail!(
                "cgroup {} ({}) is in a v1 hierarchy without the perf_event controller, \
                 and perf events only follow cgroups of the hierarchy that has it{}: {}{v2}",
                cg.path,
                cg.dir.display(),
                if own.is_empty() {
                    " (it is not mounted here)".to_string()
                } else {
                    format!(" (mounted at {})", own.join(", "))
                },
                if own.is_empty() {
                    format!("mount it: {v1_fix}")
                } else {
                    "give the cgroup's path in that hierarchy".to_string()
                }
            )
        }
    }
}

/// The core-PMU line of `--show-events`: what sysfs lists, checked the same way the
/// counting modes check it (a test `cycles` counter, [`probe_hardware`]).
pub fn pmu_summary(pmus: &Pmus, probe: HardwareProbe) -> Vec<String> {
    let listed = pmus
        .core
        .iter()
        .map(|p| format!("{} (type {})", p.name, p.type_))
        .collect::<Vec<_>>()
        .join(", ");
    let hybrid = if pmus.is_hybrid() { " [hybrid]" } else { "" };
    match probe {
        HardwareProbe::Available => vec![format!("core PMUs: {listed}{hybrid}")],
        HardwareProbe::Absent(errno) => {
            let mut v = vec![if pmus.has_cpu_pmu_in_sysfs() {
                format!("core PMUs: {listed}{hybrid}: present but not usable")
            } else {
                "core PMUs: none".to_string()
            }];
            v.extend(
                no_pmu_message(pmus, errno)
                    .lines()
                    .map(|l| l.trim().to_string()),
            );
            v
        }
        HardwareProbe::Unknown(errno) => vec![format!(
            "core PMUs: {listed}{hybrid} (not verified: a test counter was refused with {})",
            perf_tools_pmc::explain::errno_name(errno)
        )],
    }
}

/// Prints, for each event, what it is opened as on each PMU (`--show-events`).
pub fn show_events(
    out: &mut Vec<u8>,
    layout: &Layout,
    pmus: &Pmus,
    cpu: &CpuInfo,
    probe: HardwareProbe,
) {
    let summary = pmu_summary(pmus, probe);
    for (i, line) in summary.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(out, "# {cpu}; {line}");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    let no_pmu = matches!(probe, HardwareProbe::Absent(_));
    let _ = writeln!(
        out,
        "# from pmcstat's tables; whether this kernel accepts each event shows when counting"
    );
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:<5} {:<5} {:<18} NOTE",
        "EVENT", "PMU", "GROUP", "TYPE", "CONFIG"
    );
    for r in &layout.requests {
        let pmu_list: Vec<_> = if r.event.is_software() {
            vec![None]
        } else {
            pmus.core.iter().map(Some).collect()
        };
        for p in pmu_list {
            let legacy = perf_tools_pmc::cpu::CorePmu::legacy();
            let pmu = p.unwrap_or(&legacy);
            let pmu_name = match p {
                None => "software",
                // sysfs lists no CPU PMU: nothing to name.
                Some(_) if no_pmu && !pmus.has_cpu_pmu_in_sysfs() => "-",
                Some(p) => p.name.as_str(),
            };
            let mut note = match r.event {
                Event::Vendor(v) => match perf_tools_pmc::event::vendor_event(v, cpu, pmu) {
                    Ok(e) => format!("= {e}"),
                    Err(_) => String::new(),
                },
                _ => String::new(),
            };
            if p.is_some() && no_pmu {
                note = format!(
                    "{} (no usable hardware PMU here) {note}",
                    layout::NOT_SUPPORTED
                );
            }
            let line = match r.event.resolve(pmu, cpu) {
                Ok(res) => format!(
                    "{:<24} {:<8} {:<5} {:<5} {:<18} {}",
                    r.event.name(),
                    pmu_name,
                    r.group,
                    res.type_,
                    format!("{:#x}", res.config),
                    note
                ),
                Err(why) => format!(
                    "{:<24} {:<8} {:<5} {:<5} {:<18} {}: {why}",
                    r.event.name(),
                    pmu_name,
                    r.group,
                    "-",
                    "-",
                    layout::NOT_SUPPORTED
                ),
            };
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

/// Why the loop woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Timer,
    Signal,
    TargetExited,
    /// The reader of our output pipe went away (`pmcstat 5 | head -1`).
    OutputClosed,
}

/// Waits until `deadline`, a shutdown signal, the end of the watched process, or the
/// closing of our output pipe (noticed at once, not at the next row).
fn wait_until(
    shutdown: &Shutdown,
    exit_fd: Option<RawFd>,
    watch: Option<i32>,
    deadline: Instant,
) -> Wake {
    loop {
        if shutdown.requested() {
            return Wake::Signal;
        }
        if exit_fd.is_none() && watch.is_some_and(|p| !process_alive(p)) {
            return Wake::TargetExited;
        }
        let now = Instant::now();
        if now >= deadline {
            return Wake::Timer;
        }
        let mut left = deadline - now;
        if exit_fd.is_none() && watch.is_some() {
            // No pidfd (Linux < 5.3): check the process every 100 ms.
            left = left.min(Duration::from_millis(100));
        }
        let fds: Vec<RawFd> = exit_fd.into_iter().collect();
        let mut exited = [false];
        match shutdown.wait_ready(&fds, left, &mut exited) {
            signals::Wake::Shutdown => return Wake::Signal,
            signals::Wake::OutputClosed => return Wake::OutputClosed,
            signals::Wake::Ready => {}
        }
        if exited[0] {
            return Wake::TargetExited;
        }
    }
}

/// One-time diagnostics on stderr.
#[derive(Default)]
struct Notes {
    multiplexed: bool,
    not_counted: bool,
}

/// The one-time note when counters were multiplexed, naming `--run-pct` when the RUN%
/// column is not shown.
pub fn multiplexed_note(run_column: bool) -> String {
    let mut s = String::from(
        "pmcstat: counters were multiplexed (on the PMU for only part of an interval): \
         their values are scaled estimates (count × enabled / running time)",
    );
    if run_column {
        s.push_str("; RUN% shows how much of each interval they ran");
    } else {
        s.push_str("; --run-pct adds a RUN% column showing how much of each interval they ran");
    }
    s
}

impl Notes {
    fn check(&mut self, vals: &[Value], hardware: bool, run_column: bool) {
        let run = layout::run_fraction(vals);
        if !self.multiplexed && run.is_some_and(|r| r > 0.0 && r < 0.9995) {
            self.multiplexed = true;
            eprintln!("{}", multiplexed_note(run_column));
        }
        if !self.not_counted && vals.contains(&Value::NotCounted) {
            self.not_counted = true;
            eprintln!(
                "pmcstat: some counters were never scheduled onto the PMU ({}){}",
                layout::NOT_COUNTED,
                if hardware {
                    ": it has too few free counters (another perf user, or the NMI \
                     watchdog: echo 0 > /proc/sys/kernel/nmi_watchdog)"
                } else {
                    ""
                }
            );
        }
    }
}

fn report_unsupported(counters: &Counters, cpu: &CpuInfo, pmus: &Pmus, software_only: bool) {
    let reqs = counters.requests();
    for u in counters.unsupported() {
        let ev = reqs[u.index].event;
        if software_only && !ev.is_software() {
            continue;
        }
        let everywhere = counters.opened()[u.index] == 0;
        eprintln!(
            "pmcstat: {}: {} on {}{}: {}",
            ev.name(),
            layout::NOT_SUPPORTED,
            u.pmu,
            if everywhere || !pmus.is_hybrid() {
                ""
            } else {
                " (counted on the other PMUs only)"
            },
            u.reason
        );
    }
    let llc_missing = counters.unsupported().iter().any(|u| {
        matches!(
            reqs[u.index].event,
            Event::Vendor(VendorEvent::LlcReferences | VendorEvent::LlcMisses)
        )
    });
    if llc_missing && cpu.vendor.is_amd_like() {
        eprintln!(
            "pmcstat: on AMD the L3 (last-level) cache is counted by the amd_l3 PMU, not by \
             the core PMU, so the LLC columns are not available here; -m cache shows L2"
        );
    }
}

/// pmcstat's exit status for a measured command: its own status, 128 + the signal that
/// killed it (as shells, `time` and `perf stat` report it).
pub fn command_status(e: Exit) -> i32 {
    match e {
        Exit::Code(c) if (0..=255).contains(&c) => c,
        // Reaped by someone else: the status is unknown.
        Exit::Code(_) => 1,
        Exit::Signal(s) => 128 + s,
    }
}

/// Runs pmcstat. Returns the exit status: the measured command's (see [`command_status`])
/// when it ended on its own or was stopped by a signal, 0 otherwise.
pub fn run(args: Args) -> Result<i32> {
    let layout = layout_of(&args)?;
    let scope = scope(&args)?;
    let cpu = CpuInfo::detect();
    let pmus = Pmus::system();
    if args.show_events {
        let mut out = Output::stdout();
        show_events(&mut out.buf, &layout, &pmus, &cpu, probe_hardware());
        out.flush()?;
        return Ok(0);
    }
    if let Scope::Pid(p) = scope {
        if !std::path::Path::new(&format!("/proc/{p}")).exists() {
            bail!("no such process: PID {p} (not in /proc)");
        }
    }
    let no_pmu_note = no_pmu_note(&args, &layout, &pmus)?;

    let shutdown = Shutdown::install()?;
    // One descriptor per event, CPU and PMU: more than 1024 on large machines (as perf
    // does, the soft limit on open files is raised to the hard one).
    let _ = perf_tools_core::fdreserve::raise_nofile_limit();
    let mut what = Measured::of(&scope, &args)?;
    let mut counters = open_counters(&layout, &what, &scope, &pmus, &cpu, &no_pmu_note)?;
    if let Scope::Cgroup(cg, cpus) = &scope {
        eprintln!(
            "pmcstat: counting cgroup {} ({}) on CPUs {}",
            cg.path,
            cg.dir.display(),
            cpulist::format(cpus)
        );
    }

    let mut out = Output::stdout();
    if let Some(p) = layout.preamble {
        let _ = writeln!(out.buf, "{p}");
    }
    layout.header(&mut out.buf);
    out.flush()?;

    let wake = measure(
        &args,
        &layout,
        &mut counters,
        &mut what,
        &shutdown,
        &mut out,
    )?;
    counters.disable();
    drop(counters);
    Ok(end_of_run(what.workload.as_mut(), wake, &scope))
}

/// The columns: `-e` events or a `-m` mode, with `--run-pct`'s column.
fn layout_of(args: &Args) -> Result<Layout> {
    let layout = match &args.events {
        Some(list) => Layout::custom(list).map_err(|e| cli::usage(format!("-e: {e}")))?,
        None => Layout::mode(args.mode),
    };
    Ok(if args.run_pct {
        layout.with_run_column()
    } else {
        layout
    })
}

/// Hardware events need a hardware PMU: an error when only they were asked for and
/// there is none, else the first line of the reason to note (`None`: a PMU exists, or
/// no hardware event is asked for).
fn no_pmu_note(args: &Args, layout: &Layout, pmus: &Pmus) -> Result<Option<String>> {
    if !layout.needs_hardware() {
        return Ok(None);
    }
    let HardwareProbe::Absent(errno) = probe_hardware() else {
        return Ok(None);
    };
    let msg = no_pmu_message(pmus, errno);
    if layout.only_hardware() {
        let hint = if args.events.is_none() {
            "\n  the software-event view works here: pmcstat -m sw (task-clock, \
             context-switches, cpu-migrations, page-faults)"
        } else {
            "\n  software events work here: task-clock, cpu-clock, context-switches, \
             cpu-migrations, page-faults (or pmcstat -m sw)"
        };
        bail!("{msg}{hint}");
    }
    Ok(msg.lines().next().map(str::to_string))
}

/// What the counters are opened on: CPUs, the threads of a PID, or a command started
/// (stopped before exec) for the purpose.
struct Measured {
    targets: Vec<Target>,
    /// The cgroup measured, and its directory's descriptor (the counters' `pid`).
    cgroup: Option<(Cgroup, OwnedFd)>,
    opts: Options,
    /// The process whose end ends the run.
    watch: Option<i32>,
    /// The command pmcstat runs, if any.
    workload: Option<Workload>,
}

impl Measured {
    fn of(scope: &Scope, args: &Args) -> Result<Measured> {
        Ok(match scope {
            Scope::System(cpus) | Scope::Cpus(cpus) => Measured {
                targets: cpus.iter().map(|&c| Target::Cpu(c)).collect(),
                opts: Options {
                    exclude_kernel: args.user,
                    ..Options::default()
                },
                watch: None,
                workload: None,
                cgroup: None,
            },
            Scope::Cgroup(cg, cpus) => {
                let dir = std::fs::File::open(&cg.dir).with_context(|| {
                    format!("opening the cgroup directory {}", cg.dir.display())
                })?;
                let fd = OwnedFd::from(dir);
                Measured {
                    targets: cpus
                        .iter()
                        .map(|&cpu| Target::Cgroup {
                            fd: fd.as_raw_fd(),
                            cpu,
                        })
                        .collect(),
                    opts: Options {
                        exclude_kernel: args.user,
                        ..Options::default()
                    },
                    watch: None,
                    workload: None,
                    cgroup: Some((cg.clone(), fd)),
                }
            }
            Scope::Pid(p) => {
                let tids =
                    threads_of(*p).with_context(|| format!("listing the threads of PID {p}"))?;
                Measured {
                    targets: tids.into_iter().map(Target::Task).collect(),
                    opts: Options {
                        inherit: true,
                        exclude_kernel: args.user,
                        ..Options::default()
                    },
                    watch: Some(*p),
                    workload: None,
                    cgroup: None,
                }
            }
            Scope::Command(words) => {
                let mut w = Workload::prepare(words).map_err(|e| anyhow!(e))?;
                if let Some(c) = &args.command {
                    w.display = c.trim().to_string();
                }
                let pid = w.pid();
                Measured {
                    targets: vec![Target::Task(pid)],
                    opts: Options {
                        inherit: true,
                        enable_on_exec: true,
                        exclude_kernel: args.user,
                    },
                    watch: Some(pid),
                    workload: Some(w),
                    cgroup: None,
                }
            }
        })
    }
}

/// Opens every counter; an error when none can count (saying why), else the notes on
/// the events that cannot.
fn open_counters(
    layout: &Layout,
    what: &Measured,
    scope: &Scope,
    pmus: &Pmus,
    cpu: &CpuInfo,
    no_pmu_note: &Option<String>,
) -> Result<Counters> {
    let counters = Counters::open(&layout.requests, &what.targets, pmus, cpu, &what.opts).map_err(
        |mut f: OpenFailure| {
            if matches!(f.errno, libc::EACCES | libc::EPERM)
                && matches!(f.target, Target::Task(_))
                && !f.exclude_kernel
            {
                f.hint = Some(
                    "or count user mode only with --user (allowed up to perf_event_paranoid 2)"
                        .into(),
                );
            }
            anyhow!(f)
        },
    )?;
    if counters.group_count() == 0 {
        if let Scope::Pid(p) = scope {
            if !counters.vanished().is_empty() {
                bail!("no such process: PID {p} exited before its counters could be opened");
            }
        }
        report_unsupported(&counters, cpu, pmus, no_pmu_note.is_some());
        bail!(
            "none of the requested events can be counted here{}",
            no_pmu_note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
    }
    if let Some(n) = no_pmu_note {
        eprintln!(
            "pmcstat: {n}; hardware events show {}",
            layout::NOT_SUPPORTED
        );
    }
    report_unsupported(&counters, cpu, pmus, no_pmu_note.is_some());
    Ok(counters)
}

/// Starts counting (or the command), then prints a row per interval until the
/// duration ends, the measured process exits, a signal comes or the output is closed:
/// what ended it.
fn measure(
    args: &Args,
    layout: &Layout,
    counters: &mut Counters,
    what: &mut Measured,
    shutdown: &Shutdown,
    out: &mut Output,
) -> Result<Wake> {
    let start = Instant::now();
    match what.workload.as_mut() {
        Some(w) => w.start().map_err(|e| anyhow!(e))?,
        None => counters.enable().context("enabling the counters")?,
    }
    // Wakes the loop when the measured process ends (Linux 5.3+; polled otherwise).
    let pid_fd = match (&what.workload, what.watch) {
        (None, Some(p)) => perf_tools_core::workload::pidfd_open(p),
        _ => None,
    };
    let exit_fd = match &what.workload {
        Some(w) => w.exit_fd(),
        None => pid_fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
    };

    let interval = Duration::from_secs_f64(args.interval);
    let end = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut next = start + interval;
    let mut last = start;
    let mut rows = 0usize;
    let mut notes = Notes::default();
    loop {
        let deadline = end.map_or(next, |e| e.min(next));
        let wake = wait_until(shutdown, exit_fd, what.watch, deadline);
        let now = Instant::now();
        let vals = counters.read().context("reading the counters")?;
        let elapsed = now.duration_since(last);
        last = now;
        // A cgroup removed meanwhile counts nothing more: say so and end.
        let gone = what.cgroup.as_ref().filter(|(cg, _)| !cg.exists());
        let wake = if gone.is_some() {
            Wake::TargetExited
        } else {
            wake
        };
        let finished = wake != Wake::Timer || end.is_some_and(|e| now >= e);
        // A row for the partial interval at the end, unless Ctrl-C came right after a row.
        if wake != Wake::Signal || elapsed >= Duration::from_millis(10) {
            if rows > 0 && rows % HEADER_EVERY == 0 {
                layout.header(&mut out.buf);
            }
            layout.row(&mut out.buf, &vals, elapsed.as_secs_f64());
            rows += 1;
            notes.check(&vals, layout.needs_hardware(), layout.has_run_column());
        }
        if wake == Wake::OutputClosed {
            // Nobody reads the rows any more: end now, quietly (exit 0, as every tool).
            out.buf.clear();
            return Ok(wake);
        }
        out.flush()?;
        if finished {
            return Ok(wake);
        }
        next += interval;
        while next <= now {
            next += interval;
        }
    }
}

/// Waits for (or ends) the command pmcstat ran and reports how it ended; pmcstat's
/// exit status: the command's own, 0 without a command.
fn end_of_run(workload: Option<&mut Workload>, wake: Wake, scope: &Scope) -> i32 {
    let Some(w) = workload else {
        match (wake, scope) {
            (Wake::TargetExited, Scope::Pid(p)) => eprintln!("pmcstat: PID {p} exited"),
            (Wake::TargetExited, Scope::Cgroup(cg, _)) => eprintln!(
                "pmcstat: cgroup {} was removed ({} is gone)",
                cg.path,
                cg.dir.display()
            ),
            _ => {}
        }
        return 0;
    };
    let how = match wake {
        Wake::TargetExited => w.wait_timeout(Duration::from_secs(5)),
        // Ctrl-C reaches the command too: give it a moment to exit on its own.
        Wake::Signal => w.wait_timeout(Duration::from_secs(1)),
        Wake::Timer | Wake::OutputClosed => w.try_wait(),
    };
    let (exit, ended_by_us) = match how {
        Some(e) => (e, false),
        None => (w.terminate(Duration::from_secs(2)), true),
    };
    if wake != Wake::OutputClosed {
        eprintln!(
            "pmcstat: command {:?} (PID {}) {}{}",
            w.display,
            w.pid(),
            exit,
            if ended_by_us {
                match wake {
                    Wake::Timer => " at the end of the duration",
                    _ => " when pmcstat was stopped",
                }
            } else {
                ""
            }
        );
    }
    // The command's own status, or how a signal ended it; 0 when pmcstat ended it as
    // asked (end of the duration) or because its output was closed.
    match wake {
        Wake::Timer | Wake::OutputClosed if ended_by_us => 0,
        _ => command_status(exit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_tools_pmc::cpu::Vendor;

    fn args(v: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("pmcstat").chain(v.iter().copied()))
    }

    #[test]
    fn defaults_match_the_original() {
        let a = args(&[]).unwrap();
        assert_eq!(a.mode, Mode::Arch);
        assert_eq!(a.interval, 1.0);
        assert_eq!(a.duration, None);
        let a = args(&["-m", "tlb", "2", "10"]).unwrap();
        assert_eq!(
            (a.mode, a.interval, a.duration),
            (Mode::Tlb, 2.0, Some(10.0))
        );
    }

    #[test]
    fn bad_numbers_are_usage_errors() {
        for bad in [
            &["0"][..],
            &["-1"],
            &["x"],
            &["1", "0"],
            &["1", "abc"],
            &["0.001"],
            &["inf"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} accepted");
        }
        assert!(args(&["-p", "0"]).is_err());
        assert!(args(&["-m", "bogus"]).is_err());
        assert!(args(&["-m", "ipc", "-e", "cycles"]).is_err());
    }

    #[test]
    fn one_scope_only() {
        let a = args(&["-C", "0", "-p", "1"]).unwrap();
        let e = scope(&a).unwrap_err();
        assert!(e.downcast_ref::<cli::UsageError>().is_some());
        assert_eq!(e.to_string(), "pick one of -C, -p, -c");
        let a = args(&["-c", "sleep 1", "-p", "1"]).unwrap();
        assert!(scope(&a).is_err());
        // -c runs its text with sh -c, as the original's perf stat ran the command line.
        let a = args(&["-c", "cksum /boot/* | wc -l"]).unwrap();
        assert_eq!(
            scope(&a).unwrap(),
            Scope::Command(vec![
                "/bin/sh".into(),
                "-c".into(),
                "cksum /boot/* | wc -l".into()
            ])
        );
        // After --: the argument vector exactly, no shell.
        let a = args(&["-m", "sw", "1", "5", "--", "printf", "%s\\n", "a b", "*"]).unwrap();
        assert_eq!((a.interval, a.duration), (1.0, Some(5.0)));
        assert_eq!(
            scope(&a).unwrap(),
            Scope::Command(vec![
                "printf".into(),
                "%s\\n".into(),
                "a b".into(),
                "*".into()
            ])
        );
        for bad in [
            &["-c", "  "][..],
            &["-c", "true", "--", "true"],
            &["-p", "1", "--", "true"],
            &["-C", "0", "--", "true"],
        ] {
            let a = args(bad).unwrap();
            assert!(
                scope(&a)
                    .unwrap_err()
                    .downcast_ref::<cli::UsageError>()
                    .is_some(),
                "{bad:?}"
            );
        }
        let a = args(&["-C", "0"]).unwrap();
        assert_eq!(scope(&a).unwrap(), Scope::Cpus(vec![0]));
        let a = args(&["-C", "100000"]).unwrap();
        assert!(scope(&a).unwrap_err().to_string().contains("not online"));
        let a = args(&["-C", "a"]).unwrap();
        assert!(scope(&a).is_err());
        assert!(matches!(scope(&args(&[]).unwrap()).unwrap(), Scope::System(v) if !v.is_empty()));
    }

    /// The event construction of every mode, per vendor, against the kernel ABI values:
    /// (name, attr type, attr config) or None where the CPU defines no such event.
    fn resolved(
        mode: Mode,
        cpu: &CpuInfo,
        pmu: &perf_tools_pmc::cpu::CorePmu,
    ) -> Vec<Option<(u32, u64)>> {
        Layout::mode(mode)
            .requests
            .iter()
            .map(|r| r.event.resolve(pmu, cpu).ok().map(|x| (x.type_, x.config)))
            .collect()
    }

    fn intel(model: u32) -> CpuInfo {
        CpuInfo::new(Vendor::Intel, 6, model)
    }

    fn zen() -> CpuInfo {
        CpuInfo::new(Vendor::Amd, 0x19, 0x01)
    }

    #[test]
    fn arch_and_ipc_events_per_vendor() {
        use perf_tools_pmc::cpu::CorePmu;
        let legacy = CorePmu::legacy();
        // Intel: cycles, instructions, branches, branch-misses, and cache-references/misses,
        // which the kernel maps to LONGEST_LAT_CACHE.REFERENCE/MISS (r4f2e/r412e).
        assert_eq!(
            resolved(Mode::Arch, &intel(0x55), &legacy),
            [
                Some((0, 0)),
                Some((0, 1)),
                Some((0, 4)),
                Some((0, 5)),
                Some((0, 2)),
                Some((0, 3))
            ]
        );
        // AMD: the same generic events, but the LLC as the generic LL cache event
        // (PERF_TYPE_HW_CACHE LL|READ|ACCESS / MISS).
        assert_eq!(
            resolved(Mode::Arch, &zen(), &legacy),
            [
                Some((0, 0)),
                Some((0, 1)),
                Some((0, 4)),
                Some((0, 5)),
                Some((3, 0x2)),
                Some((3, 0x10002))
            ]
        );
        assert_eq!(
            resolved(Mode::Ipc, &zen(), &legacy),
            [Some((0, 0)), Some((0, 1))]
        );
        // Hybrid: the PMU type in config bits 32-63.
        let atom = CorePmu::hybrid("cpu_atom", 10, None);
        assert_eq!(
            resolved(Mode::Ipc, &intel(0x97), &atom),
            [Some((0, 10 << 32)), Some((0, (10 << 32) | 1))]
        );
    }

    #[test]
    fn cache_events_per_vendor() {
        use perf_tools_pmc::cpu::CorePmu;
        let legacy = CorePmu::legacy();
        assert_eq!(
            resolved(Mode::Cache, &intel(0x5e), &legacy),
            [
                Some((0, 0)),
                Some((0, 1)),
                Some((3, 0x0)),     // L1-dcache-loads
                Some((3, 0x10000)), // L1-dcache-load-misses
                Some((4, 0xff24)),  // L2_RQSTS.REFERENCES
                Some((4, 0x3f24)),  // L2_RQSTS.MISS
                Some((0, 2)),       // cache-references = LONGEST_LAT_CACHE.REFERENCE
                Some((0, 3)),       // cache-misses = LONGEST_LAT_CACHE.MISS
            ]
        );
        assert_eq!(
            resolved(Mode::Cache, &zen(), &legacy),
            [
                Some((0, 0)),
                Some((0, 1)),
                Some((3, 0x0)),
                Some((3, 0x10000)),
                Some((0, 2)),   // AMD's cache-references: L2 requests
                Some((0, 3)),   // AMD's cache-misses: L2 misses
                Some((3, 0x2)), // LLC-loads (the kernel has none on Zen: not supported)
                Some((3, 0x10002)),
            ]
        );
        let core = CorePmu::hybrid("cpu_core", 4, None);
        let atom = CorePmu::hybrid("cpu_atom", 10, None);
        let adl = intel(0x97);
        assert_eq!(resolved(Mode::Cache, &adl, &core)[4], Some((4, 0xff24)));
        assert_eq!(resolved(Mode::Cache, &adl, &atom)[4], None);
        assert_eq!(resolved(Mode::Cache, &adl, &atom)[2], Some((3, 10 << 32)));
    }

    #[test]
    fn tlb_events_per_vendor() {
        use perf_tools_pmc::cpu::CorePmu;
        let legacy = CorePmu::legacy();
        assert_eq!(
            resolved(Mode::Tlb, &intel(0x55), &legacy),
            [
                Some((0, 0)),
                Some((0, 1)),
                Some((4, 0x0100_1008)), // DTLB_LOAD_MISSES.WALK_ACTIVE
                Some((4, 0x0100_1049)), // DTLB_STORE_MISSES.WALK_ACTIVE
                Some((4, 0x0100_1085)), // ITLB_MISSES.WALK_ACTIVE
                Some((3, 0x10003)),     // dTLB-load-misses
                Some((3, 0x10103)),     // dTLB-store-misses
                Some((3, 0x10004)),     // iTLB-load-misses
            ]
        );
        assert_eq!(
            resolved(Mode::Tlb, &intel(0x8f), &legacy)[2..5],
            [
                Some((4, 0x0100_1012)),
                Some((4, 0x0100_1013)),
                Some((4, 0x0100_1011))
            ]
        );
        assert_eq!(
            resolved(Mode::Tlb, &zen(), &legacy),
            [
                Some((0, 0)),
                Some((0, 1)),
                None,
                None,
                None,
                Some((3, 0x10003)),
                Some((3, 0x10103)),
                Some((3, 0x10004)),
            ]
        );
    }

    #[test]
    fn sw_events() {
        use perf_tools_pmc::cpu::CorePmu;
        assert_eq!(
            resolved(Mode::Sw, &zen(), &CorePmu::legacy()),
            [Some((1, 1)), Some((1, 3)), Some((1, 4)), Some((1, 2))]
        );
    }

    #[test]
    fn show_events_lists_each_pmu() {
        use perf_tools_pmc::cpu::CorePmu;
        let pmus = Pmus {
            core: vec![
                CorePmu::hybrid("cpu_core", 4, Some(vec![0, 1])),
                CorePmu::hybrid("cpu_atom", 10, Some(vec![2, 3])),
            ],
            devices: vec!["cpu_atom".into(), "cpu_core".into()],
        };
        let mut out = Vec::new();
        show_events(
            &mut out,
            &Layout::mode(Mode::Cache),
            &pmus,
            &intel(0x97),
            HardwareProbe::Available,
        );
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("[hybrid]"), "{s}");
        assert!(
            s.lines().any(|l| l.starts_with("l2-references")
                && l.contains("cpu_core")
                && l.contains("0xff24")),
            "{s}"
        );
        assert!(
            s.lines().any(|l| l.starts_with("l2-references")
                && l.contains("cpu_atom")
                && l.contains(layout::NOT_SUPPORTED)),
            "{s}"
        );
        assert!(
            s.lines()
                .any(|l| l.starts_with("cycles") && l.contains("0xa00000000")),
            "{s}"
        );
    }

    #[test]
    fn icache_and_resstalls_events_per_vendor() {
        use perf_tools_pmc::cpu::CorePmu;
        let legacy = CorePmu::legacy();
        // Skylake: instructions, L1-icache-load-misses, L2_RQSTS.CODE_RD_HIT/MISS, and
        // the LLC as cache-references/misses (the original's list).
        assert_eq!(
            resolved(Mode::Icache, &intel(0x5e), &legacy),
            [
                Some((0, 1)),
                Some((3, 0x10001)),
                Some((4, 0xc424)),
                Some((4, 0x2424)),
                Some((0, 2)),
                Some((0, 3)),
            ]
        );
        // Zen: l2_cache_req_stat.ic_hit_in_l2 / ic_fill_miss.
        assert_eq!(
            resolved(Mode::Icache, &zen(), &legacy)[2..4],
            [Some((4, 0x664)), Some((4, 0x164))]
        );
        // Westmere: all eight RESOURCE_STALLS, r01a2 .. r80a2, as the original counts.
        assert_eq!(
            resolved(Mode::Resstalls, &intel(0x2c), &legacy),
            [0x1a2, 0x2a2, 0x4a2, 0x8a2, 0x10a2, 0x20a2, 0x40a2, 0x80a2].map(|c| Some((4, c)))
        );
        // Skylake: ANY and STORE; AMD: none.
        assert_eq!(
            resolved(Mode::Resstalls, &intel(0x55), &legacy),
            [
                Some((4, 0x1a2)),
                None,
                None,
                Some((4, 0x8a2)),
                None,
                None,
                None,
                None
            ]
        );
        assert!(resolved(Mode::Resstalls, &zen(), &legacy)
            .iter()
            .all(Option::is_none));
    }

    const PROC_CGROUPS_V2: &str = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
        cpu\t1\t1\t1\nmemory\t4\t28\t1\nperf_event\t0\t1\t1\npids\t8\t1\t1\n";

    fn mount(dir: &str, version: Version, options: &[&str]) -> Mount {
        Mount {
            dir: dir.into(),
            version,
            options: options.iter().map(|o| o.to_string()).collect(),
            root: "/".into(),
        }
    }

    fn cg(dir: &str, version: Version, path: &str) -> Cgroup {
        Cgroup {
            dir: dir.into(),
            version,
            path: path.into(),
        }
    }

    #[test]
    fn perf_event_controller_line() {
        assert_eq!(perf_event_controller(PROC_CGROUPS_V2), Some((0, true)));
        assert_eq!(
            perf_event_controller("perf_event\t9\t3\t0\n"),
            Some((9, false))
        );
        assert_eq!(perf_event_controller("cpu\t1\t1\t1\n"), None);
    }

    /// This host's layout: v1 controllers without perf_event, v2 at unified.
    #[test]
    fn perf_event_cgroup_checks() {
        let hybrid = [
            mount("/sys/fs/cgroup/unified", Version::V2, &[]),
            mount("/sys/fs/cgroup/pids", Version::V1, &["pids"]),
        ];
        let v2 = cg("/sys/fs/cgroup/unified/a", Version::V2, "/a");
        let v1 = cg("/sys/fs/cgroup/pids/a", Version::V1, "/a");
        assert!(check_perf_event_cgroup(&v2, &hybrid, PROC_CGROUPS_V2).is_ok());
        let e = check_perf_event_cgroup(&v1, &hybrid, PROC_CGROUPS_V2)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cgroup /a (/sys/fs/cgroup/pids/a) is in a v1 hierarchy without the perf_event \
             controller, and perf events only follow cgroups of the hierarchy that has it \
             (it is not mounted here): mount it: mkdir -p /sys/fs/cgroup/perf_event && \
             mount -t cgroup -o perf_event none /sys/fs/cgroup/perf_event, then put the \
             tasks in a cgroup there; or use cgroup v2 (/sys/fs/cgroup/unified/...)"
        );
        // perf_event mounted as a v1 hierarchy: its cgroups work, v2 ones cannot.
        let with_perf = [
            mount("/sys/fs/cgroup/unified", Version::V2, &[]),
            mount("/sys/fs/cgroup/pids", Version::V1, &["pids"]),
            mount("/sys/fs/cgroup/perf_event", Version::V1, &["perf_event"]),
        ];
        let on_v1 = PROC_CGROUPS_V2.replace("perf_event\t0", "perf_event\t10");
        let p = cg("/sys/fs/cgroup/perf_event/a", Version::V1, "/a");
        assert!(check_perf_event_cgroup(&p, &with_perf, &on_v1).is_ok());
        let e = check_perf_event_cgroup(&v2, &with_perf, &on_v1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "attached to the v1 hierarchy 10 here (mounted at /sys/fs/cgroup/perf_event)"
            ),
            "{e}"
        );
        let e = check_perf_event_cgroup(&v1, &with_perf, &on_v1)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                "(mounted at /sys/fs/cgroup/perf_event): give the cgroup's path in that hierarchy"
            ),
            "{e}"
        );
        // No controller, or disabled at boot.
        let e = check_perf_event_cgroup(&v2, &hybrid, "cpu\t1\t1\t1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("CONFIG_CGROUP_PERF"), "{e}");
        let off = PROC_CGROUPS_V2.replace("perf_event\t0\t1\t1", "perf_event\t0\t1\t0");
        let e = check_perf_event_cgroup(&v2, &hybrid, &off)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cgroup_disable=perf_event"), "{e}");
    }

    #[test]
    fn cgroup_option_conflicts() {
        assert!(args(&["--cgroup", "/a", "-p", "1"]).is_err());
        assert!(args(&["--cgroup", "/a", "-c", "true"]).is_err());
        assert!(args(&["--container", "abcd", "--", "true"]).is_err());
        assert!(args(&["--cgroup", "/a", "--container", "abcd"]).is_err());
        let a = args(&["--cgroup", "/a", "-C", "0", "-m", "sw"]).unwrap();
        assert_eq!(a.cgroup.as_deref(), Some("/a"));
    }

    #[test]
    fn exit_status_of_the_command() {
        assert_eq!(command_status(Exit::Code(0)), 0);
        assert_eq!(command_status(Exit::Code(3)), 3);
        assert_eq!(command_status(Exit::Signal(libc::SIGINT)), 130);
        assert_eq!(command_status(Exit::Signal(libc::SIGKILL)), 137);
        assert_eq!(command_status(Exit::Code(-1)), 1);
    }

    #[test]
    fn multiplexing_note_names_the_option_when_run_is_hidden() {
        assert!(multiplexed_note(false).contains("--run-pct"));
        assert!(!multiplexed_note(true).contains("--run-pct"));
        assert!(multiplexed_note(true).contains("scaled estimates"));
    }

    #[test]
    fn show_events_and_counting_agree_on_a_missing_pmu() {
        // This machine's sysfs: no CPU PMU; the kernel rejects cycles with ENOENT.
        let vm = Pmus {
            core: vec![perf_tools_pmc::cpu::CorePmu::legacy()],
            devices: vec!["software".into(), "tracepoint".into()],
        };
        let mut out = Vec::new();
        show_events(
            &mut out,
            &Layout::mode(Mode::Ipc),
            &vm,
            &zen(),
            HardwareProbe::Absent(libc::ENOENT),
        );
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("# AMD family 0x19 model 0x1; core PMUs: none\n"),
            "{s}"
        );
        assert!(!s.contains("type 4"), "{s}");
        assert!(
            s.contains(
                perf_tools_pmc::explain::no_pmu_message(&vm, libc::ENOENT)
                    .lines()
                    .next()
                    .unwrap()
            ),
            "{s}"
        );
        let cycles = s.lines().find(|l| l.starts_with("cycles ")).unwrap();
        assert!(cycles.contains(layout::NOT_SUPPORTED), "{cycles}");
        // Listed in sysfs but refused: present, not usable, with the reason.
        let broken = Pmus {
            core: vec![perf_tools_pmc::cpu::CorePmu::legacy()],
            devices: vec!["cpu".into(), "software".into()],
        };
        let v = pmu_summary(&broken, HardwareProbe::Absent(libc::ENOENT));
        assert_eq!(v[0], "core PMUs: cpu (type 4): present but not usable");
        assert!(
            v[2].contains("rejects hardware events with ENOENT"),
            "{v:?}"
        );
        // Usable: the PMU as before.
        assert_eq!(
            pmu_summary(&broken, HardwareProbe::Available),
            ["core PMUs: cpu (type 4)"]
        );
    }
}
