//! kprobe: create, trace and remove one dynamic kernel probe.
fn main() {
    perf_tools_core::cli::run_main("kprobe", kprobe::run)
}
