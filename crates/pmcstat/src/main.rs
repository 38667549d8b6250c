//! pmcstat: CPU performance counters per interval, honest in VMs.
fn main() {
    // Not cli::run_main: a measured command's exit status becomes pmcstat's own.
    pmcstat::main()
}
