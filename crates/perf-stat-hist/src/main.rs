//! perf-stat-hist: histogram of a numeric tracepoint field.
fn main() {
    perf_tools_core::cli::run_main("perf-stat-hist", perf_stat_hist::run)
}
