//! uprobe: create, trace and remove one user-level dynamic probe.
fn main() {
    perf_tools_core::cli::run_main("uprobe", uprobe::run)
}
