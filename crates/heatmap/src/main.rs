//! heatmap: latency heat map SVG from (time, latency) pairs.
fn main() {
    perf_tools_core::cli::run_main("heatmap", heatmap::run)
}
