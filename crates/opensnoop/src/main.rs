//! opensnoop: trace open() syscalls with file names and results.
fn main() {
    perf_tools_core::cli::run_main("opensnoop", opensnoop::run)
}
