//! pmcstat: CPU performance counters per interval, honest in VMs.
fn main() {
    perf_tools_core::cli::run_main("pmcstat", pmcstat::run)
}
