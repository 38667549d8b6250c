//! execsnoop: trace new processes (exec) with PID, PPID and arguments.
fn main() {
    perf_tools_core::cli::run_main("execsnoop", execsnoop::run)
}
