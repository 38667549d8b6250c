//! pmcstat: CPU performance counters per interval, honest in VMs.
fn main() {
    // run returns the measured command's exit status (see pmcstat(8), EXIT STATUS).
    perf_tools_core::cli::run_main("pmcstat", pmcstat::run)
}
