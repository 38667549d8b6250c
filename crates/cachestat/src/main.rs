//! cachestat: page cache hits, misses and dirties per interval.
fn main() {
    perf_tools_core::cli::run_main("cachestat", cachestat::run)
}
