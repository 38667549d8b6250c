//! iosnoop: trace block device I/O with per-I/O latency.
fn main() {
    perf_tools_core::cli::run_main("iosnoop", iosnoop::run)
}
