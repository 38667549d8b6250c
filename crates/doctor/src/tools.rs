//! One verdict per tool: runs, runs degraded (which mode), or cannot run, with the fix.
//!
//! The tracing tools answer for themselves through their libraries' `check()` (the same
//! function as their `--check`). For opensnoop, cputemp, showboost and pmcstat the
//! verdict is derived here from the host's [`Facts`].

use perf_tools_core::check::{Report, Status};

use crate::facts::Facts;

/// The tools, in table order.
pub const TOOLS: &[&str] = &[
    "iosnoop",
    "iolatency",
    "opensnoop",
    "funcgraph",
    "kprobe",
    "cputemp",
    "showboost",
    "pmcstat",
];

/// Every tool's report.
pub fn reports(facts: &Facts) -> Vec<Report> {
    TOOLS.iter().map(|t| report(t, facts)).collect()
}

fn from_check(tool: &str, r: anyhow::Result<Report>) -> Report {
    r.unwrap_or_else(|e| {
        let mut rep = Report::new(tool);
        rep.item("check", Status::No, format!("{e:#}"), "", true);
        rep
    })
}

/// The report of one tool.
pub fn report(tool: &str, facts: &Facts) -> Report {
    match tool {
        "iosnoop" => from_check(tool, iosnoop::check()),
        "iolatency" => from_check(tool, iolatency::check()),
        "funcgraph" => from_check(tool, funcgraph::check()),
        "kprobe" => from_check(tool, kprobe::check()),
        // When opensnoop's library has `check()` (its --check), this line becomes:
        //     "opensnoop" => from_check(tool, opensnoop::check()),
        // (and the opensnoop crate a dependency of this one); opensnoop_from_facts then goes.
        "opensnoop" => opensnoop_from_facts(facts),
        "cputemp" => cputemp(facts),
        "showboost" => showboost(facts),
        "pmcstat" => pmcstat(facts),
        _ => Report::new(tool),
    }
}

/// Copies the fact `section.key` into `r` as an item named `name`.
fn fact(r: &mut Report, facts: &Facts, section: &str, key: &str, name: &str, required: bool) {
    if let Some(i) = facts.item(section, key) {
        r.item(name, i.status, i.detail.clone(), i.fix.clone(), required);
    } else {
        r.item(
            name,
            Status::No,
            format!("not checked ({section}.{key})"),
            "",
            required,
        );
    }
}

/// opensnoop's verdict from the facts: the open/openat(2) syscall tracepoints are
/// required; file names come from event probes or a kprobe when either works, else
/// from `/proc/PID/fd` after the open (degraded: failed opens and short-lived fds have
/// no name).
pub fn opensnoop_from_facts(facts: &Facts) -> Report {
    let mut r = Report::new("opensnoop");
    fact(&mut r, facts, "tracefs", "access", "privilege", true);
    fact(&mut r, facts, "tracefs", "mount", "tracefs", true);
    fact(&mut r, facts, "tracefs", "instances", "instance", true);
    fact(
        &mut r,
        facts,
        "events",
        "sys_enter_openat",
        "syscalls:sys_enter_openat",
        true,
    );
    fact(
        &mut r,
        facts,
        "events",
        "sys_exit_openat",
        "syscalls:sys_exit_openat",
        true,
    );
    let source = if facts.yes("probes", "eprobes") {
        Some("event probes on the syscalls' enter tracepoints")
    } else if facts.yes("probes", "kprobe_events") {
        Some("a kprobe on the kernel's open function")
    } else {
        None
    };
    if let Some(u) = facts.item("probes", "unchecked") {
        r.item(
            "file names",
            Status::No,
            u.detail.clone(),
            u.fix.clone(),
            false,
        );
        r.uses = "nothing: required tracing is missing".into();
        return r;
    }
    match source {
        Some(s) => {
            r.item("file names", Status::Yes, s, "", false);
            r.uses = format!("syscall tracepoints, file names from {s}");
        }
        None => {
            r.item(
                "file names",
                Status::Degraded,
                "no kprobes or event probes: paths of successful opens are read from /proc/PID/fd afterwards; failed opens and fds closed first show [unknown]",
                "use a kernel built with CONFIG_KPROBE_EVENTS=y (or CONFIG_EPROBE_EVENTS=y)",
                false,
            );
            r.uses = "syscall tracepoints, file names from /proc/PID/fd".into();
        }
    }
    if r.verdict() == Status::No {
        r.uses = "nothing: required tracing is missing".into();
    }
    r
}

/// cputemp reads the digital thermal sensor through `/dev/cpu/N/msr` (Intel), else
/// hwmon sensors.
fn cputemp(facts: &Facts) -> Report {
    let mut r = Report::new("cputemp");
    let msr = facts.yes("cpu", "msr_device");
    let hwmon = facts.item("cpu", "hwmon");
    if msr {
        r.item(
            "temperature source",
            Status::Yes,
            "/dev/cpu/N/msr (Intel digital thermal sensor; hwmon on other CPUs)",
            "",
            true,
        );
        r.uses = "MSRs (or hwmon)".into();
    } else if let Some(h) = hwmon.filter(|h| h.status == Status::Yes) {
        r.item(
            "temperature source",
            Status::Yes,
            format!("hwmon: {}", h.detail),
            "",
            true,
        );
        r.uses = format!("hwmon {}", h.detail);
    } else {
        let msr_fix = facts
            .item("cpu", "msr_device")
            .map(|i| i.fix.clone())
            .unwrap_or_default();
        r.item(
            "temperature source",
            Status::No,
            "no readable /dev/cpu/0/msr and no coretemp/k10temp/zenpower hwmon sensor",
            format!("{msr_fix}; or modprobe coretemp / k10temp; a VM usually exposes neither"),
            true,
        );
        r.uses = "nothing: no temperature source".into();
    }
    r
}

/// showboost counts APERF/MPERF through `/dev/cpu/N/msr`, else the perf msr PMU.
fn showboost(facts: &Facts) -> Report {
    let mut r = Report::new("showboost");
    if facts.yes("cpu", "msr_device") {
        r.item("APERF/MPERF", Status::Yes, "/dev/cpu/N/msr", "", true);
        r.uses = "MSRs through /dev/cpu/N/msr".into();
    } else if facts.yes("cpu", "msr_pmu") {
        r.item(
            "APERF/MPERF",
            Status::Yes,
            "the perf msr PMU (aperf, mperf)",
            "",
            true,
        );
        r.uses = "the perf msr PMU".into();
    } else {
        let msr_fix = facts
            .item("cpu", "msr_device")
            .map(|i| i.fix.clone())
            .unwrap_or_default();
        let pmu = facts
            .item("cpu", "msr_pmu")
            .map(|i| i.detail.clone())
            .unwrap_or_default();
        r.item(
            "APERF/MPERF",
            Status::No,
            format!("no /dev/cpu/0/msr, and the perf msr PMU has no aperf/mperf ({pmu})"),
            format!("{msr_fix}; on a VM the hypervisor must expose APERF/MPERF"),
            true,
        );
        r.uses = "nothing: no APERF/MPERF source".into();
    }
    r
}

/// pmcstat needs perf_event_open; hardware counters for its default modes, software
/// events (`-m sw`) otherwise.
fn pmcstat(facts: &Facts) -> Report {
    let mut r = Report::new("pmcstat");
    fact(&mut r, facts, "cpu", "sw_counters", "perf_event_open", true);
    if facts.yes("cpu", "hw_counters") {
        fact(
            &mut r,
            facts,
            "cpu",
            "hw_counters",
            "hardware counters",
            false,
        );
        r.uses = "hardware counters".into();
    } else {
        let detail = facts
            .item("cpu", "hw_counters")
            .map(|i| i.detail.clone())
            .unwrap_or_default();
        let fix = facts
            .item("cpu", "hw_pmu")
            .map(|i| i.fix.clone())
            .unwrap_or_default();
        r.item(
            "hardware counters",
            Status::Degraded,
            format!("{detail}: only software events (-m sw)"),
            fix,
            false,
        );
        r.uses = "software events only (-m sw)".into();
    }
    if r.verdict() == Status::No {
        r.uses = "nothing: perf_event_open is unavailable".into();
    }
    r
}
