//! cputemp against fake machine trees (hand-made register values and hwmon files, see
//! tests/fixtures/msr/README.md): the real binary, the real MSR reader (pread of sparse
//! files), exact output lines computed by hand from the register layouts.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use perf_tools_cpu::msr::fake::materialize;
use std::path::PathBuf;
use std::time::Duration;
use testkit::fake_machine::{fixture, FakeMachine};
use testkit::{libc, run};

const BIN: &str = env!("CARGO_BIN_EXE_cputemp");
const T: Duration = Duration::from_secs(10);

fn cputemp(m: &FakeMachine, args: &[&str]) -> (i32, String, String) {
    m.run(BIN, args)
}

#[test]
fn intel_tjmax_minus_readout_per_cpu() {
    let m = fixture("intel-ivb-ep");
    let (code, out, err) = cputemp(&m, &[]);
    assert_eq!(code, 0, "stderr: {err}");
    // TjMax 100 − readout 23 = 77 (cores 0: CPUs 0, 2); 100 − 25 = 75 (core 1).
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4\n77 75 77 75\n");
    assert_eq!(
        err,
        format!(
            "cputemp: temperatures from IA32_THERM_STATUS (0x19c) via {}/dev/cpu/N/msr (TjMax from MSR_TEMPERATURE_TARGET (0x1a2))\n",
            m.root().display()
        )
    );
}

#[test]
fn intel_average_and_package() {
    let m = fixture("intel-ivb-ep");
    let (code, out, err) = cputemp(&m, &["-a"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "AvgTemp(C)\n76.0\n");
    // Package sensor 0x1B1: readout 22 → 78.
    let (code, out, err) = cputemp(&m, &["-p"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4 Pkg0\n77 75 77 75 78\n");
    let (code, out, _) = cputemp(&m, &["-a", "-p"]);
    assert_eq!(code, 0);
    assert_eq!(out, "AvgTemp(C) Pkg0\n76.0 78\n");
}

#[test]
fn intel_reading_valid_bit_is_honoured() {
    let m = fixture("intel-ivb-ep");
    // CPU 1: readout 10 but bit 31 clear → not a valid reading.
    m.set_msr(1, 0x19c, 0x080a_0000).unwrap();
    let (code, out, err) = cputemp(&m, &[]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4\n77 - 77 75\n");
    // The average only counts valid readings: (77 + 77 + 75) / 3.
    let (_, out, _) = cputemp(&m, &["-a"]);
    assert_eq!(out, "AvgTemp(C)\n76.3\n");
}

#[test]
fn intel_tjmax_override() {
    let m = fixture("intel-ivb-ep");
    let (code, out, err) = cputemp(&m, &["--tjmax", "90"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4\n67 65 67 65\n");
    assert!(err.contains("TjMax 90 (--tjmax)"), "{err}");
}

#[test]
fn offline_cpu_shows_dash_and_keeps_its_column() {
    let m = fixture("intel-ivb-ep");
    m.write("sys/devices/system/cpu/online", "0,2-3\n").unwrap();
    // The kernel removes an offline CPU's msr device.
    m.remove("dev/cpu/1").unwrap();
    let (code, out, err) = cputemp(&m, &[]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4\n77 - 77 75\n");
    assert!(
        err.contains("cputemp: CPUs 1 are offline and show -"),
        "{err}"
    );
}

#[test]
fn twelve_cpus_in_numeric_order() {
    // The original's cpuhot sibling iterated /dev/cpu/* in glob order (0,1,10,11,2..):
    // here CPU N has readout N, so the line must count down 100, 99, ... 89.
    let m = fixture("intel-ivb-ep");
    let dev = m.root().join("dev/cpu");
    let mut spec = String::from("cpus 0-11\n");
    for cpu in 0..12u32 {
        spec.push_str(&format!(
            "msr {cpu} 0x1a2 0x640000\nmsr {cpu} 0x19c {:#x}\n",
            0x8800_0000u64 | (u64::from(cpu) << 16)
        ));
    }
    materialize(&spec, &dev).unwrap();
    m.write("sys/devices/system/cpu/present", "0-11\n").unwrap();
    m.write("sys/devices/system/cpu/online", "0-11\n").unwrap();
    let (code, out, err) = cputemp(&m, &[]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "CPU1 CPU2 CPU3 CPU4 CPU5 CPU6 CPU7 CPU8 CPU9 CPU10 CPU11 CPU12"
    );
    assert_eq!(lines[1], "100 99 98 97 96 95 94 93 92 91 90 89");
}

#[test]
fn amd_uses_k10temp_and_names_the_source() {
    let m = fixture("amd-zen3");
    let (code, out, err) = cputemp(&m, &[]);
    assert_eq!(code, 0, "stderr: {err}");
    // Tctl 45.250 °C on every CPU of the socket.
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4\n45 45 45 45\n");
    assert_eq!(
        err,
        "cputemp: temperatures from hwmon k10temp Tctl (one sensor per socket: every CPU of a socket shows it; -p adds the Tccd sensors)\n"
    );
    let (code, out, _) = cputemp(&m, &["-p"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "CPU1 CPU2 CPU3 CPU4 Pkg0 Pkg0.Tccd1 Pkg0.Tccd2\n45 45 45 45 45 41 44\n"
    );
    let (_, out, _) = cputemp(&m, &["-a"]);
    assert_eq!(out, "AvgTemp(C)\n45.2\n");
    // AMD has no thermal MSRs: --source msr says so.
    let (code, out, err) = cputemp(&m, &["--source", "msr"]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "cputemp: error: cannot read temperature MSRs: AMD CPUs have no temperature MSRs (the k10temp driver reads their sensors)\n"
    );
}

#[test]
fn intel_without_msr_driver_falls_back_to_coretemp() {
    let m = fixture("intel-coretemp-no-msr");
    let (code, out, err) = cputemp(&m, &["-p"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4 Pkg0\n52 55 52 55 56\n");
    assert_eq!(
        err,
        format!(
            "cputemp: temperatures from hwmon coretemp (\"Core N\" sensors: one per core, shared by its hyperthreads); MSRs not used: no {}/dev/cpu/0/msr: kernel lacks CONFIG_X86_MSR or the msr module\n",
            m.root().display()
        )
    );
}

#[test]
fn all_zero_msrs_give_a_clear_error() {
    // What QEMU TCG does: the driver works but every MSR reads 0.
    let m = fixture("tcg-zero");
    let (code, out, err) = cputemp(&m, &[]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "cputemp: error: no temperature source: the hypervisor does not expose thermal MSRs or hwmon sensors (CPU: Intel family 0x6 model 0x8f under QEMU TCG; MSRs: MSR_TEMPERATURE_TARGET (0x1a2) reads 0 on CPU 0, so TjMax is unknown (a hypervisor that answers 0 for every MSR?); give --tjmax if you know it; hwmon: no coretemp, k10temp or zenpower sensor in {}/sys/class/hwmon)\n",
            m.root().display()
        )
    );
    let (code, _, err) = cputemp(&m, &["--source", "msr", "--tjmax", "100"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "cputemp: error: cannot read temperature MSRs: IA32_THERM_STATUS (0x19c) on CPU 0 has its reading-valid bit (31) clear: no valid temperature (value 0x0)\n"
    );
}

#[test]
fn vm_exposing_nothing_fails_clearly() {
    let m = fixture("kvm-amd-nothing");
    let (code, out, err) = cputemp(&m, &["-a", "1", "3"]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "cputemp: error: no temperature source: the hypervisor does not expose thermal MSRs or hwmon sensors (CPU: AMD family 0x19 model 0x1 under KVM; MSRs: AMD CPUs have no temperature MSRs (the k10temp driver reads their sensors); hwmon: no coretemp, k10temp or zenpower sensor in {}/sys/class/hwmon)\n",
            m.root().display()
        )
    );
}

#[test]
fn msr_not_implemented_is_reported() {
    let m = fixture("intel-ivb-ep");
    // Make 0x1A2 and everything above it fault (the file ends at 0x1a0).
    for cpu in 0..4 {
        m.limit_msr(cpu, 0x1a0).unwrap();
    }
    let (code, _, err) = cputemp(&m, &["--source", "msr"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "cputemp: error: cannot read temperature MSRs: CPU 0 does not implement MSR 0x1a2 (MSR_TEMPERATURE_TARGET (0x1a2); the read faulted)\n"
    );
}

fn stat_line(busy: u64, idle: u64) -> String {
    // user nice system idle iowait irq softirq steal guest guest_nice
    format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\n")
}

#[test]
fn utilization_is_a_percentage_at_any_interval() {
    let m = fixture("intel-ivb-ep");
    m.write("proc/stat", &stat_line(1000, 9000)).unwrap();
    // A 2-second interval: the original would print Δbusy / ncpus (scaling with the
    // interval); the port prints Δbusy / Δtotal.
    let mut r = m.spawn(BIN, &["-u", "2", "2"]);
    r.wait_for("AvgUtil(%)", T);
    // 4 CPUs × 2 s × 100 Hz = 800 ticks, 200 of them busy → 25%.
    m.write("proc/stat", &stat_line(1200, 9600)).unwrap();
    r.wait_for(" 77 75 77 75", T);
    // Next interval: 600 busy of 800 → 75%.
    m.write("proc/stat", &stat_line(1800, 9800)).unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        r.seen,
        vec![
            "AvgUtil(%) CPU1 CPU2 CPU3 CPU4",
            "25 77 75 77 75",
            "75 77 75 77 75"
        ]
    );
}

#[test]
fn interval_and_count_then_exit() {
    let m = fixture("amd-zen3");
    let mut r = m.spawn(BIN, &["-a", "0.2", "3"]);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(r.seen, vec!["AvgTemp(C)", "45.2", "45.2", "45.2"]);
}

#[test]
fn ctrl_c_and_sigterm_end_cleanly() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let m = fixture("intel-ivb-ep");
        let mut r = m.spawn(BIN, &["1"]);
        r.wait_for("77 75 77 75", T);
        r.signal(sig);
        let (code, err) = r.finish(Duration::from_secs(3));
        assert_eq!(code, 0, "signal {sig}: stderr: {err}");
    }
}

#[test]
fn closed_pipe_ends_quietly() {
    let m = fixture("intel-ivb-ep");
    let root = m.root_str();
    let script = format!("set -o pipefail; {BIN} --root {root} 0.05 | head -n 3");
    let (code, out, err) = run("bash", &["-c", &script]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "CPU1 CPU2 CPU3 CPU4\n77 75 77 75\n77 75 77 75\n");
    assert!(!err.contains("Broken pipe"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let m = fixture("intel-ivb-ep");
    for args in [
        vec!["0"],
        vec!["-1"],
        vec!["x"],
        vec!["1", "0"],
        vec!["1", "-3"],
        vec!["1", "y"],
        vec!["--tjmax", "0"],
        vec!["--source", "bogus"],
        vec!["-z"],
    ] {
        let (code, out, err) = cputemp(&m, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert!(!err.is_empty(), "{args:?}");
    }
}

#[test]
fn help_documents_the_original_options() {
    let (code, out, _) = run(BIN, &["-h"]);
    assert_eq!(code, 0);
    for s in ["-a", "-u", "[interval]", "[count]", "degrees Celsius"] {
        assert!(out.contains(s), "{s} missing from:\n{out}");
    }
    assert!(!out.contains("--root"), "the test seam is hidden");
}

#[test]
fn unreadable_msr_device_names_the_capability() {
    // As `nobody`: the fake device files are root-only (0600), as /dev/cpu/N/msr is.
    let m = fixture("intel-ivb-ep");
    for cpu in 0..4 {
        let p: PathBuf = m.root().join(format!("dev/cpu/{cpu}/msr"));
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED unreadable_msr_device_names_the_capability: not root");
        return;
    }
    // Make the tree reachable by nobody.
    std::fs::set_permissions(
        m.root(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let root = m.root_str();
    let (code, _, err) = testkit::run_as_nobody(BIN, &["--root", &root, "--source", "msr"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!(
            "cputemp: error: cannot read temperature MSRs: reading {root}/dev/cpu/0/msr needs CAP_SYS_RAWIO: not root — run with sudo\n"
        )
    );
}
