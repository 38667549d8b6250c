//! killsnoop: trace signals sent by kill(), tkill() and tgkill().
fn main() {
    perf_tools_core::cli::run_main("killsnoop", killsnoop::run)
}
