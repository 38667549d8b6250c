//! funcslower: trace kernel function calls slower than a threshold.
fn main() {
    perf_tools_core::cli::run_main("funcslower", funcslower::run)
}
