//! reset-ftrace: put the top-level ftrace state back to its defaults.
fn main() {
    perf_tools_core::cli::run_main("reset-ftrace", reset_ftrace::run)
}
