//! funccount: see the library crate.
fn main() {
    perf_tools_core::cli::run_main("funccount", funccount::run)
}
