//! perf-tools-doctor: what this host can trace, and how to fix what it cannot.
fn main() {
    perf_tools_core::cli::run_main("perf-tools-doctor", perf_tools_doctor::run)
}
