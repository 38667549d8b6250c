//! syscount: count system calls by process or by syscall name.
fn main() {
    perf_tools_core::cli::run_main("syscount", syscount::run)
}
