//! funcgraph: trace a kernel function's call graph with durations.
fn main() {
    perf_tools_core::cli::run_main("funcgraph", funcgraph::run)
}
