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
            name: "functrace",
            command: functrace::command,
            sections: include_str!("../../../man/src/functrace.roff"),
        },
        Tool {
            name: "funccount",
            command: funccount::command,
            sections: include_str!("../../../man/src/funccount.roff"),
        },
        Tool {
            name: "opensnoop",
            command: opensnoop::command,
            sections: include_str!("../../../man/src/opensnoop.roff"),
        },
        Tool {
            name: "syscount",
            command: syscount::command,
            sections: include_str!("../../../man/src/syscount.roff"),
        },
        Tool {
            name: "killsnoop",
            command: killsnoop::command,
            sections: include_str!("../../../man/src/killsnoop.roff"),
        },
        Tool {
            name: "perf-stat-hist",
            command: perf_stat_hist::command,
            sections: include_str!("../../../man/src/perf-stat-hist.roff"),
        },
        Tool {
            name: "reset-ftrace",
            command: reset_ftrace::command,
            sections: include_str!("../../../man/src/reset-ftrace.roff"),
        },
        Tool {
            name: "execsnoop",
            command: execsnoop::command,
            sections: include_str!("../../../man/src/execsnoop.roff"),
        },
        Tool {
            name: "kprobe",
            command: kprobe::command,
            sections: include_str!("../../../man/src/kprobe.roff"),
        },
        Tool {
            name: "tcpretrans",
            command: tcpretrans::command,
            sections: include_str!("../../../man/src/tcpretrans.roff"),
        },
        Tool {
            name: "uprobe",
            command: uprobe::command,
            sections: include_str!("../../../man/src/uprobe.roff"),
        },
        Tool {
            name: "bitesize",
            command: bitesize::command,
            sections: include_str!("../../../man/src/bitesize.roff"),
        },
        Tool {
            name: "tpoint",
            command: tpoint::command,
            sections: include_str!("../../../man/src/tpoint.roff"),
        },
        Tool {
            name: "funcslower",
            command: funcslower::command,
            sections: include_str!("../../../man/src/funcslower.roff"),
        },
        Tool {
            name: "heatmap",
            command: heatmap::command,
            sections: include_str!("../../../man/src/heatmap.roff"),
        },
        Tool {
            name: "cachestat",
            command: cachestat::command,
            sections: include_str!("../../../man/src/cachestat.roff"),
        },
        Tool {
            name: "perf-tools-doctor",
            command: perf_tools_doctor::command,
            sections: include_str!("../../../man/src/perf-tools-doctor.roff"),
        },
        Tool {
            name: "perf-tools",
            command: perf_tools::command,
            sections: include_str!("../../../man/src/perf-tools.roff"),
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

/// The workspace manifest, which holds the release date.
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// The release date (`YYYY-MM-DD`) of `[workspace.metadata.release]` in the workspace
/// Cargo.toml: the date of every man page, fixed so generated pages are reproducible.
pub fn release_date() -> Result<String> {
    release_date_in(WORKSPACE_MANIFEST)
}

fn release_date_in(manifest: &str) -> Result<String> {
    let mut in_section = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[workspace.metadata.release]";
        } else if let (true, Some(v)) = (in_section, line.strip_prefix("date")) {
            let v = v.trim_start().strip_prefix('=').unwrap_or("").trim();
            let d = v.trim_matches('"');
            let b = d.as_bytes();
            let ok = b.len() == 10
                && b.iter().enumerate().all(|(i, c)| match i {
                    4 | 7 => *c == b'-',
                    _ => c.is_ascii_digit(),
                });
            if !ok || v.len() != d.len() + 2 {
                bail!(
                    "Cargo.toml: [workspace.metadata.release] date must be \"YYYY-MM-DD\", not {v}"
                );
            }
            return Ok(d.to_string());
        }
    }
    bail!("Cargo.toml has no date in [workspace.metadata.release] (the man pages' date)")
}

/// Escapes text for a roff line: backslashes and hyphens (`\-`, so they stay minus
/// signs that can be searched and copied).
fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// The SYNOPSIS section: the lines of [`perf_tools_core::cli::synopsis`], the tool's
/// name and option letters bold, values and operands italic, each bracketed word kept
/// on one output line (unbreakable spaces inside it).
pub fn render_synopsis(cmd: &clap::Command) -> String {
    use perf_tools_core::cli::{synopsis, Span};
    // Left-adjusted; each line hangs under its first option; no word hyphenated (\%).
    let mut out = String::from(".SH SYNOPSIS\n.ad l\n");
    for line in synopsis(cmd) {
        let hang = line
            .first()
            .map(|w| perf_tools_core::cli::word_text(w).chars().count() + 1)
            .unwrap_or(0);
        out.push_str(&format!(".in +{hang}n\n.ti -{hang}n\n"));
        let words: Vec<String> = line
            .iter()
            .map(|w| {
                std::iter::once("\\%".to_string())
                    .chain(w.iter().map(|s| match s {
                        Span::Literal(t) => format!("\\fB{}\\fR", roff_escape(t)),
                        Span::Placeholder(t) => format!("\\fI{}\\fR", roff_escape(t)),
                        Span::Punct(t) => roff_escape(t).replace(' ', "\\ "),
                    }))
                    .collect()
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push_str(&format!("\n.in -{hang}n\n"));
    }
    out.push_str(".ad\n");
    out
}

/// Renders a tool's complete man page.
pub fn render_man(tool: &Tool) -> Result<String> {
    let cmd = (tool.command)();
    let man = clap_mangen::Man::new(cmd.clone())
        .title(tool.name.to_uppercase())
        .section("8")
        .date(release_date()?)
        .source(format!("perf-tools-rs {}", env!("CARGO_PKG_VERSION")))
        .manual("System Manager's Manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    out.extend_from_slice(render_synopsis(&cmd).as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_date_comes_from_the_workspace_manifest() {
        let d = release_date().unwrap();
        assert_eq!(d.len(), 10, "{d}");
        let m = "[workspace.package]\nversion = \"1\"\n\n[workspace.metadata.release]\ndate = \"2027-01-31\"\n[x]\ndate = \"1999-01-01\"\n";
        assert_eq!(release_date_in(m).unwrap(), "2027-01-31");
        assert!(release_date_in("[workspace.metadata.release]\ndate = \"31.1.2027\"\n").is_err());
        assert!(release_date_in("[x]\ndate = \"2027-01-31\"\n").is_err());
    }

    #[test]
    fn synopsis_roff_escapes_and_keeps_words_together() {
        let page = render_synopsis(&iosnoop::command());
        assert!(
            page.starts_with(
                ".SH SYNOPSIS\n.ad l\n.in +8n\n.ti -8n\n\\%\\fBiosnoop\\fR \\%[\\fB\\-Qst\\fR] \\%[\\fB\\-d\\fR\\ \\fIdevice\\fR] "
            ),
            "{page}"
        );
        assert!(
            page.ends_with(
                "\n.in -8n\n.in +8n\n.ti -8n\n\\%\\fBiosnoop\\fR \\%\\fB\\-\\-cleanup\\fR\n.in -8n\n.in +8n\n.ti -8n\n\\%\\fBiosnoop\\fR \\%\\fB\\-\\-check\\fR\n.in -8n\n.ad\n"
            ),
            "{page}"
        );
    }
}
