//! tcpretrans: trace TCP retransmits.
fn main() {
    perf_tools_core::cli::run_main("tcpretrans", tcpretrans::run)
}
