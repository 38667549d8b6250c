//! functrace: see the library crate.
fn main() {
    perf_tools_core::cli::run_main("functrace", functrace::run)
}
