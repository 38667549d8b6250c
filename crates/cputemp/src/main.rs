//! cputemp: show CPU temperatures.
fn main() {
    perf_tools_core::cli::run_main("cputemp", cputemp::run)
}
