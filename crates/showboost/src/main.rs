//! showboost: show the real CPU clock rate (turbo boost) from APERF/MPERF.
fn main() {
    perf_tools_core::cli::run_main("showboost", showboost::run)
}
