//! Man pages and shell completions for every tool, generated from the tools' clap
//! definitions plus hand-written sections in `man/src/<tool>.roff`.
//!
//! A hand-written file holds the sections after SYNOPSIS (DESCRIPTION, REQUIREMENTS,
//! EXAMPLES, FIELDS, OVERHEAD, SEE ALSO, …) and one line `.\" @OPTIONS@` where the
//! OPTIONS section generated from the clap definition goes. The title, NAME and
//! SYNOPSIS are generated too. `cargo run -p docgen` rewrites `man/man8/*.8`; the test
//! `man_pages_are_current` fails when a checked-in page differs from the generated one.
//!
//! [`leak`] renders the state-leak matrix of `tests/README.md` from the leak tests' results.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub mod leak;

/// One tool of the suite, as documentation sees it.
pub struct Tool {
    /// Binary name.
    pub name: &'static str,
    /// Its clap definition.
    pub command: fn() -> clap::Command,
    /// Hand-written man sections (roff) with the `@OPTIONS@` marker.
    pub sections: &'static str,
}

/// Every tool with a man page.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "iosnoop",
            command: iosnoop::command,
            sections: include_str!("../../../man/src/iosnoop.roff"),
        },
        Tool {
            name: "iolatency",
            command: iolatency::command,
            sections: include_str!("../../../man/src/iolatency.roff"),
        },
        Tool {
            name: "cputemp",
            command: cputemp::command,
            sections: include_str!("../../../man/src/cputemp.roff"),
        },
        Tool {
            name: "showboost",
            command: showboost::command,
            sections: include_str!("../../../man/src/showboost.roff"),
        },
        Tool {
            name: "pmcstat",
            command: pmcstat::command,
            sections: include_str!("../../../man/src/pmcstat.roff"),
        },
        Tool {
            name: "funcgraph",
            command: funcgraph::command,
            sections: include_str!("../../../man/src/funcgraph.roff"),
        },
        Tool {
            name: "opensnoop",
            command: opensnoop::command,
            sections: include_str!("../../../man/src/opensnoop.roff"),
        },
        Tool {
            name: "kprobe",
            command: kprobe::command,
            sections: include_str!("../../../man/src/kprobe.roff"),
        },
    ]
}

/// The marker line replaced by the generated OPTIONS section.
pub const OPTIONS_MARKER: &str = ".\\\" @OPTIONS@";

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Renders a tool's complete man page.
pub fn render_man(tool: &Tool) -> Result<String> {
    let cmd = (tool.command)();
    let man = clap_mangen::Man::new(cmd)
        .title(tool.name.to_uppercase())
        .section("8")
        .source(format!("perf-tools-rs {}", env!("CARGO_PKG_VERSION")))
        .manual("System Manager's Manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    let mut options = Vec::new();
    man.render_options_section(&mut options)?;
    let options = String::from_utf8(options)?;
    let mut text = String::from_utf8(out)?;
    if !tool.sections.contains(OPTIONS_MARKER) {
        bail!("man/src/{}.roff has no {OPTIONS_MARKER} line", tool.name);
    }
    text.push_str(
        &tool
            .sections
            .replace(&format!("{OPTIONS_MARKER}\n"), &options),
    );
    Ok(text)
}

/// Path of a tool's checked-in man page.
pub fn man_path(root: &Path, tool: &str) -> PathBuf {
    root.join("man/man8").join(format!("{tool}.8"))
}

/// Writes every man page under `root/man/man8`.
pub fn write_all(root: &Path) -> Result<()> {
    for t in tools() {
        let p = man_path(root, t.name);
        std::fs::write(&p, render_man(&t)?).with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// Regenerates the leak-matrix table of `root/tests/README.md` from the results in
/// `dir` (`*.tsv`, see [`leak`]). Fails, after writing the table, when a cell failed or
/// was not run.
pub fn write_leak_table(root: &Path, dir: &Path) -> Result<()> {
    let records = leak::read_dir(dir)?;
    let names: Vec<&str> = tools().iter().map(|t| t.name).collect();
    let rendered = leak::render(&records, &names)?;
    let path = root.join("tests/README.md");
    let old =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let new = leak::update_readme(&old, &rendered.text)
        .with_context(|| format!("updating {}", path.display()))?;
    if new == old {
        println!("{} is current", path.display());
    } else {
        std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !rendered.failures.is_empty() {
        let cells: Vec<String> = rendered
            .failures
            .iter()
            .map(|(row, col)| format!("{row} / {col}"))
            .collect();
        bail!(
            "{} leak-matrix cells failed or were not run: {}",
            cells.len(),
            cells.join(", ")
        );
    }
    Ok(())
}

/// Writes bash, zsh and fish completions for every tool into `dir`.
pub fn write_completions(dir: &Path) -> Result<()> {
    use clap_complete::Shell;
    for t in tools() {
        for (shell, sub) in [
            (Shell::Bash, "bash"),
            (Shell::Zsh, "zsh"),
            (Shell::Fish, "fish"),
        ] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d)?;
            let mut cmd = (t.command)();
            clap_complete::generate_to(shell, &mut cmd, t.name, &d)?;
        }
    }
    Ok(())
}
