//! cputemp on this machine. What it must do depends on what the machine exposes, which
//! the test finds out independently (CPUID, /sys/class/hwmon, /dev/cpu/0/msr) before
//! checking the tool: temperatures where a source exists, otherwise the clear
//! "no temperature source" error and exit status 1.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use perf_tools_cpu::cpuid::{Cpuid, Vendor};
use perf_tools_cpu::hwmon::{cpu_temperatures, Sysfs};
use std::path::Path;
use testkit::{libc, run};

const BIN: &str = env!("CARGO_BIN_EXE_cputemp");

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn this_machine_gives_temperatures_or_the_clear_error() {
    let info = Cpuid::Native.info().unwrap();
    let sys = Sysfs::system();
    let online = sys.online_cpus().unwrap_or_else(|| vec![0]);
    let hwmon = cpu_temperatures(&sys, &online).is_some();
    let intel_msr = info.vendor == Vendor::Intel
        && info.dts
        && (Path::new("/dev/cpu/0/msr").exists() || is_root());
    let (code, out, err) = run(BIN, &[]);
    eprintln!("cputemp on this machine: exit {code}\nstdout:\n{out}stderr:\n{err}");
    if hwmon {
        assert_eq!(code, 0, "a hwmon CPU sensor exists, yet: {err}");
    }
    if code == 0 {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let cols: Vec<&str> = lines[0].split(' ').collect();
        assert_eq!(cols[0], "CPU1");
        let vals: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(vals.len(), cols.len());
        for v in vals {
            assert!(
                v == "-" || v.parse::<i32>().is_ok_and(|t| (-40..=150).contains(&t)),
                "not a temperature: {v:?}"
            );
        }
        assert!(err.starts_with("cputemp: temperatures from "), "{err}");
    } else {
        assert!(!hwmon);
        assert_eq!(code, 1, "{err}");
        assert_eq!(out, "");
        if !intel_msr {
            let want = if info.hypervisor.is_some() {
                "cputemp: error: no temperature source: the hypervisor does not expose thermal MSRs or hwmon sensors ("
            } else {
                "cputemp: error: no temperature source ("
            };
            assert!(err.starts_with(want), "{err}");
            assert!(err.contains(&info.summary()), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}

#[test]
fn one_shot_and_interval_runs_end_with_the_same_status() {
    let (one, _, _) = run(BIN, &[]);
    let (two, out, err) = run(BIN, &["-u", "0.2", "2"]);
    assert_eq!(one, two, "{err}");
    if two == 0 {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("AvgUtil(%) CPU1"), "{out}");
        for l in &lines[1..] {
            let u: u64 = l.split(' ').next().unwrap().parse().unwrap();
            assert!(u <= 100, "{l}");
        }
    }
}
