//! showboost on this machine. The test finds out independently what the machine exposes
//! (/dev/cpu/0/msr, the perf msr PMU's events, CPUID) and checks that the tool measures
//! where a source exists and fails with the clear error (exit 1) where none does.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use perf_tools_core::msr::Cpuid;
use perf_tools_core::perf_msr::MsrPmu;
use std::path::Path;
use testkit::run;

const BIN: &str = env!("CARGO_BIN_EXE_showboost");

#[test]
fn this_machine_measures_or_gives_the_clear_error() {
    let info = Cpuid::Native.info().unwrap();
    let pmu = MsrPmu::open(Path::new("/sys")).ok();
    let perf = pmu
        .as_ref()
        .is_some_and(|p| p.config("aperf").is_some() && p.config("mperf").is_some());
    let (code, out, err) = run(BIN, &["0.2", "1"]);
    eprintln!("showboost on this machine: exit {code}\nstdout:\n{out}stderr:\n{err}");
    // Checked after the run: the tool may have loaded the msr module.
    let msr = Path::new("/dev/cpu/0/msr").exists();
    if !msr && !perf {
        assert_eq!(code, 1, "{err}");
        assert_eq!(out, "");
        let want = if info.hypervisor.is_some() {
            "showboost: no APERF/MPERF source: the hypervisor does not expose APERF/MPERF through MSRs or the perf msr PMU ("
        } else {
            "showboost: no APERF/MPERF source ("
        };
        assert!(err.starts_with(want), "{err}");
        assert!(
            err.contains("MSRs: no /dev/cpu/0/msr: kernel lacks CONFIG_X86_MSR or the msr module"),
            "{err}"
        );
        match &pmu {
            Some(p) => assert!(
                err.contains(&format!(
                    "perf: the perf msr PMU has no aperf/mperf events (it has: {})",
                    p.event_names().join(", ")
                )),
                "{err}"
            ),
            None => assert!(err.contains("perf: no perf msr PMU"), "{err}"),
        }
        assert_eq!(err.lines().count(), 1, "{err}");
        return;
    }
    if code == 0 {
        let lines: Vec<&str> = out.lines().collect();
        let h = lines
            .iter()
            .position(|l| l.starts_with("TIME"))
            .unwrap_or_else(|| panic!("no table header in {out}"));
        assert_eq!(
            lines[h],
            "TIME       C0_MCYC      C0_ACYC        UTIL  RATIO    MHz"
        );
        assert_eq!(lines.len(), h + 2, "{out}");
        assert!(lines[h - 2].starts_with("CPU 0 summary every 0.2 seconds..."));
    } else {
        // A source exists but answers nothing useful (e.g. a hypervisor returning 0).
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("did not advance") || err.contains("does not implement"),
            "{err}"
        );
    }
}
