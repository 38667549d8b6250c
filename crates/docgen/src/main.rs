//! `cargo run -p docgen` regenerates man/man8/*.8;
//! `cargo run -p docgen -- completions DIR` writes shell completions into DIR.
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
        Some(other) => anyhow::bail!("unknown command {other:?}: use 'man' or 'completions DIR'"),
    }
}
