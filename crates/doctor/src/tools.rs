//! One verdict per tool: runs, runs degraded (which mode), or cannot run, with the fix.
//!
//! The tracing tools answer for themselves through their libraries' `check()` (the same
//! function as their `--check`: opensnoop verifies its file-name source with sentinel
//! opens, execsnoop its argument source with a canary exec). For cputemp, showboost and pmcstat the verdict is derived here from the
//! host's [`Facts`].

use perf_tools_core::check::{Report, Status};

use crate::facts::Facts;

/// The tools, in table order.
pub const TOOLS: &[&str] = &[
    "iosnoop",
    "iolatency",
    "opensnoop",
    "syscount",
    "killsnoop",
    "perf-stat-hist",
    "reset-ftrace",
    "execsnoop",
    "funcgraph",
    "funcslower",
    "functrace",
    "funccount",
    "kprobe",
    "tcpretrans",
    "uprobe",
    "bitesize",
    "tpoint",
    "cachestat",
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
        "funcslower" => from_check(tool, funcslower::check()),
        "functrace" => from_check(tool, functrace::check()),
        "funccount" => from_check(tool, funccount::check()),
        "kprobe" => from_check(tool, kprobe::check()),
        "uprobe" => from_check(tool, uprobe::check()),
        "opensnoop" => from_check(tool, opensnoop::check()),
        "syscount" => from_check(tool, syscount::check()),
        "killsnoop" => from_check(tool, killsnoop::check()),
        "perf-stat-hist" => from_check(tool, perf_stat_hist::check()),
        "reset-ftrace" => from_check(tool, reset_ftrace::check()),
        "execsnoop" => from_check(tool, execsnoop::check()),
        "tcpretrans" => from_check(tool, tcpretrans::check()),
        "bitesize" => from_check(tool, bitesize::check()),
        "tpoint" => from_check(tool, tpoint::check()),
        "cachestat" => from_check(tool, cachestat::check()),
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
