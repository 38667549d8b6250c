//! iolatency: summarize block I/O latency as a histogram.
fn main() {
    perf_tools_core::cli::run_main("iolatency", iolatency::run)
}
