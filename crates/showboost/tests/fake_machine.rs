//! showboost against fake machine trees (hand-made register values, see
//! tests/fixtures/msr/README.md): the real binary and MSR reader; the test advances
//! APERF/MPERF in the sparse files while the tool sleeps, and checks the rows computed
//! by hand from the deltas.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;
use testkit::fake_machine::{fixture, FakeMachine};
use testkit::{libc, run, Running};

const BIN: &str = env!("CARGO_BIN_EXE_showboost");
const T: Duration = Duration::from_secs(10);
const MPERF: u32 = 0xe7;
const APERF: u32 = 0xe8;

fn showboost(m: &FakeMachine, args: &[&str]) -> (i32, String, String) {
    m.run(BIN, args)
}

fn start(m: &FakeMachine, args: &[&str]) -> Running {
    let mut r = m.spawn(BIN, args);
    // The baseline sample is taken before the table header is printed.
    r.wait_for("C0_MCYC", T);
    r
}

/// Columns of a row, with TIME checked as HH:MM:SS and dropped.
fn cols(line: &str) -> Vec<String> {
    let c: Vec<String> = line.split_whitespace().map(String::from).collect();
    let t: Vec<&str> = c[0].split(':').collect();
    assert!(
        t.len() == 3 && t.iter().all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
        "TIME {:?}",
        c[0]
    );
    c[1..].to_vec()
}

/// UTIL is ΔMPERF over base × the measured elapsed time (a little over the interval,
/// more on a loaded test machine), rounded.
fn util_near(cell: &str, want: u64) {
    let v: u64 = cell.trim_end_matches('%').parse().unwrap();
    assert!(
        v <= want && v + 3 >= want,
        "UTIL {cell} not {want}% or just under"
    );
}

#[test]
fn intel_preamble_and_rows() {
    let m = fixture("intel-ivb-ep");
    let (m0, a0) = (0x10_0000_0000u64, 0x11_0000_0000u64);
    let mut r = start(&m, &["1", "2"]);
    // Interval 1: half of 2500 MHz × 1 s in C0, at 1.32 × base.
    m.set_msr(0, MPERF, m0 + 1_250_000_000).unwrap();
    m.set_msr(0, APERF, a0 + 1_650_000_000).unwrap();
    r.wait_for("1250000000", T);
    // Interval 2: all of it, at base.
    m.set_msr(0, MPERF, m0 + 3_750_000_000).unwrap();
    m.set_msr(0, APERF, a0 + 4_150_000_000).unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        r.seen[..7],
        [
            "Base CPU MHz : 2500",
            "Set CPU MHz  : 2500",
            "Turbo MHz(s) : 2900 3000 3100 3300",
            "Turbo Ratios : 116% 120% 124% 132%",
            "CPU 0 summary every 1 seconds...",
            "",
            "TIME       C0_MCYC      C0_ACYC        UTIL  RATIO    MHz",
        ]
    );
    assert_eq!(r.seen.len(), 9, "{:?}", r.seen);
    let row1 = cols(&r.seen[7]);
    assert_eq!(row1[..2], ["1250000000", "1650000000"]);
    util_near(&row1[2], 50);
    assert_eq!(row1[3..], ["132%", "3300"]);
    let row2 = cols(&r.seen[8]);
    assert_eq!(row2[..2], ["2500000000", "2500000000"]);
    util_near(&row2[2], 100);
    assert_eq!(row2[3..], ["100%", "2500"]);
    // Fixed-width columns as the original's printf.
    assert_eq!(&r.seen[7][8..38], "   1250000000   1650000000    ");
    assert_eq!(
        err,
        format!(
            "showboost: APERF/MPERF from {}/dev/cpu/N/msr; base MHz from MSR_PLATFORM_INFO (0xce)\n",
            m.root().display()
        )
    );
}

#[test]
fn amd_base_from_p0_and_no_turbo_lines() {
    let m = fixture("amd-zen3");
    let (m0, a0) = (0x20_0000_0000u64, 0x21_0000_0000u64);
    let mut r = start(&m, &["-C", "2", "1", "1"]);
    m.set_msr(2, MPERF, m0 + 2_650_000_000).unwrap();
    m.set_msr(2, APERF, a0 + 3_180_000_000).unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        r.seen[..5],
        [
            "Base CPU MHz : 2650",
            "Set CPU MHz  : 2650",
            "CPU 2 summary every 1 seconds...",
            "",
            "TIME       C0_MCYC      C0_ACYC        UTIL  RATIO    MHz",
        ]
    );
    let row = cols(&r.seen[5]);
    assert_eq!(row[..2], ["2650000000", "3180000000"]);
    util_near(&row[2], 100);
    assert_eq!(row[3..], ["120%", "3180"]);
    assert_eq!(r.seen.len(), 6);
    assert!(
        err.ends_with("base MHz from P0 PStateDef0 (0xc0010064)\n"),
        "{err}"
    );
}

#[test]
fn all_cpus_one_row_each() {
    let m = fixture("amd-zen3");
    let (m0, a0) = (0x20_0000_0000u64, 0x21_0000_0000u64);
    let mut r = start(&m, &["-A", "1", "1"]);
    for cpu in 0..4u32 {
        let busy = 265_000_000 * u64::from(cpu + 1);
        m.set_msr(cpu, MPERF, m0 + busy).unwrap();
        m.set_msr(cpu, APERF, a0 + busy / 10 * 11).unwrap();
    }
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(r.seen[2], "CPUs 0-3 summary every 1 seconds...");
    assert_eq!(
        r.seen[4],
        "TIME       CPU  C0_MCYC      C0_ACYC        UTIL  RATIO    MHz"
    );
    assert_eq!(r.seen.len(), 9, "{:?}", r.seen);
    for cpu in 0..4u32 {
        let row = cols(&r.seen[5 + cpu as usize]);
        let busy = 265_000_000 * u64::from(cpu + 1);
        assert_eq!(row[0], cpu.to_string());
        assert_eq!(row[1], busy.to_string());
        assert_eq!(row[2], (busy / 10 * 11).to_string());
        util_near(&row[3], 10 * u64::from(cpu + 1));
        assert_eq!(row[4..], ["110%", "2915"]);
    }
    // -C all is the same selection.
    let mut r = start(&m, &["-C", "all", "0.1", "1"]);
    let (code, _) = r.finish(T);
    assert_eq!(code, 0);
    assert_eq!(r.seen[2], "CPUs 0-3 summary every 0.1 seconds...");
}

#[test]
fn base_override_and_sysfs_fallback() {
    let m = fixture("amd-zen3");
    // P0 disabled (bit 63 clear): base comes from sysfs ACPI CPPC nominal_freq.
    for cpu in 0..4 {
        m.set_msr(cpu, 0xc001_0064, 0x4a0c_086a).unwrap();
    }
    m.write(
        "sys/devices/system/cpu/cpu0/acpi_cppc/nominal_freq",
        "2600\n",
    )
    .unwrap();
    let mut r = start(&m, &["0.1", "1"]);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.seen[0], "Base CPU MHz : 2600");
    assert!(
        err.ends_with("base MHz from sysfs ACPI CPPC nominal_freq\n"),
        "{err}"
    );
    let mut r = start(&m, &["--base-mhz", "3000", "0.1", "1"]);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.seen[0], "Base CPU MHz : 3000");
    assert!(err.ends_with("base MHz from --base-mhz\n"), "{err}");
    // No source at all: no Base line, UTIL and MHz are "-", RATIO still computed.
    m.remove("sys/devices/system/cpu/cpu0/acpi_cppc").unwrap();
    let mut r = start(&m, &["1", "1"]);
    m.set_msr(0, MPERF, 0x20_0000_0000 + 1000).unwrap();
    m.set_msr(0, APERF, 0x21_0000_0000 + 1500).unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.seen[0], "Set CPU MHz  : 2650");
    assert_eq!(cols(&r.seen[4]), ["1000", "1500", "-", "150%", "-"]);
    assert!(err.contains("base MHz unknown"), "{err}");
}

#[test]
fn all_zero_aperf_mperf_is_a_clear_error() {
    // QEMU TCG: the msr driver works, every MSR reads 0.
    let m = fixture("tcg-zero");
    let (code, out, err) = showboost(&m, &["0.2", "3"]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("%"), "no rows: {out}");
    assert!(err.ends_with(
        "showboost: error: IA32_APERF/IA32_MPERF (0xe8/0xe7) read 0 and did not advance on CPU 0: the hypervisor returns 0 for these MSRs (CPUID.06H:ECX[0] = 1), so showboost cannot measure the clock rate here\n"
    ), "{err}");
}

#[test]
fn vm_exposing_nothing_fails_clearly() {
    let m = fixture("kvm-amd-nothing");
    let (code, out, err) = showboost(&m, &[]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "showboost: error: no APERF/MPERF source: the hypervisor does not expose APERF/MPERF through MSRs or the perf msr PMU (CPU: AMD family 0x19 model 0x1 under KVM, CPUID.06H:ECX[0] (APERF/MPERF) = 0; MSRs: no {}/dev/cpu/0/msr: kernel lacks CONFIG_X86_MSR or the msr module; perf: not used with a fake machine tree)\n",
            m.root().display()
        )
    );
}

#[test]
fn unimplemented_mperf_is_reported() {
    let m = fixture("intel-ivb-ep");
    for cpu in 0..4 {
        m.limit_msr(cpu, 0xe0).unwrap();
    }
    let (code, _, err) = showboost(&m, &["--source", "msr"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("MSRs: CPU 0 does not implement MSR 0xe7 (IA32_MPERF (0xe7); the read faulted); perf: not tried (--source msr)"),
        "{err}"
    );
}

#[test]
fn ctrl_c_ends_cleanly() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let m = fixture("intel-ivb-ep");
        let mut r = start(&m, &["1"]);
        std::thread::sleep(Duration::from_millis(200));
        r.signal(sig);
        let (code, err) = r.finish(Duration::from_secs(3));
        assert_eq!(code, 0, "signal {sig}: {err}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let m = fixture("intel-ivb-ep");
    for (args, msg) in [
        (vec!["-C", "9"], "CPU 9 is not online (online CPUs: 0-3)"),
        (vec!["-C", "x"], "CPU must be a CPU number"),
        (vec!["0"], "interval must be a positive number"),
        (vec!["-2"], ""),
        (vec!["abc"], "interval is not a number"),
        (vec!["1", "0"], ""),
        (vec!["1", "x"], ""),
        (vec!["--base-mhz", "0"], ""),
        (vec!["--source", "nope"], ""),
    ] {
        let (code, out, err) = showboost(&m, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn help_shows_the_original_usage() {
    let (code, out, _) = run(BIN, &["-h"]);
    assert_eq!(code, 0);
    for s in ["-C <CPU>", "[interval]", "[count]", "-A"] {
        assert!(out.contains(s), "{s} missing from:\n{out}");
    }
    assert!(!out.contains("--root"), "the test seam is hidden");
}
