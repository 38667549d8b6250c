//! Builds a fake machine tree from a fixture directory, for trying cputemp and
//! showboost with their hidden `--root` option:
//!
//! ```sh
//! cargo run -p cputemp --example fake_machine -- tests/fixtures/msr/intel-ivb-ep /tmp/ivb
//! target/debug/cputemp --root /tmp/ivb
//! ```
//!
//! The fixtures are hand-made register values (see tests/fixtures/msr/README.md).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: fake_machine FIXTURE_DIR DEST_DIR");
        std::process::exit(2);
    }
    let dest = std::path::Path::new(&args[1]);
    if dest.exists() {
        eprintln!("fake_machine: {} exists; remove it first", dest.display());
        std::process::exit(1);
    }
    if let Err(e) = perf_tools_cpu::msr::fake::build_machine(std::path::Path::new(&args[0]), dest) {
        eprintln!("fake_machine: {e}");
        std::process::exit(1);
    }
}
