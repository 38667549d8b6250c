//! tpoint: trace a tracepoint.
fn main() {
    perf_tools_core::cli::run_main("tpoint", tpoint::run)
}
