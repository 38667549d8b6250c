//! `cargo run -p docgen` regenerates man/man8/*.8;
//! `cargo run -p docgen -- completions DIR` writes shell completions into DIR;
//! `cargo run -p docgen -- list` prints the tools' names;
//! `cargo run -p docgen -- leak-table [DIR]` regenerates the leak matrix of tests/README.md
//! from the leak tests' results in DIR (default target/leak-matrix).
fn main() -> anyhow::Result<()> {
    let root = docgen::workspace_root();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("man") => docgen::write_all(&root),
        Some("completions") => {
            let dir = args
                .get(1)
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| root.join("target/completions"));
            docgen::write_completions(&dir)
        }
        Some("list") => {
            for t in docgen::tools() {
                println!("{}", t.name);
            }
            Ok(())
        }
        Some("leak-table") => {
            let dir = args
                .get(1)
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| root.join("target/leak-matrix"));
            docgen::write_leak_table(&root, &dir)
        }
        Some(other) => {
            anyhow::bail!(
                "unknown command {other:?}: use 'man', 'completions DIR', 'list' or 'leak-table [DIR]'"
            )
        }
    }
}
