//! perf-tools: every tool of the suite in one file (argv[0] or the first argument names it).
fn main() {
    perf_tools::main()
}
