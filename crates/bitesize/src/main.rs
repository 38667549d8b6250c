//! bitesize: block I/O size histogram.
fn main() {
    perf_tools_core::cli::run_main("bitesize", bitesize::run)
}
