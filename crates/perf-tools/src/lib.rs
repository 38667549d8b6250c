//! `perf-tools`: the multi-call binary that carries every tool of the suite in one file.
//!
//! Invoked through a link named after a tool (`iosnoop -d 202,1 5`), it is that tool;
//! invoked as itself, its first argument names the tool (`perf-tools iosnoop -d 202,1 5`).
//! Either way the tool runs through the same [`perf_tools_core::cli::run_main_from`] its
//! own binary uses, with the tool's name as `argv[0]`: the help, usage errors, exit codes,
//! signal handling and cleanup are the same code, not a copy. The dispatch is by name, as
//! busybox and the uutils multi-call binary do it.
//!
//! `perf-tools --list` prints the tools, one per line; `perf-tools --install-links DIR`
//! makes the links (`DIR/iosnoop -> /path/to/perf-tools`, ...).

use anyhow::{bail, Context, Result};
use clap::Parser;
use perf_tools_core::cli::run_main_from;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// One tool the binary can be.
pub struct Tool {
    /// The tool's name: its own binary's name and the link name.
    pub name: &'static str,
    /// Runs the tool with these arguments (`args[0]` is the name its help shows) and
    /// exits with its status.
    pub main: fn(Vec<OsString>) -> !,
}

/// Every tool of the suite, in the order of `perf-tools --list`.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "iosnoop",
        main: |a| run_main_from("iosnoop", iosnoop::run, a),
    },
    Tool {
        name: "iolatency",
        main: |a| run_main_from("iolatency", iolatency::run, a),
    },
    Tool {
        name: "opensnoop",
        main: |a| run_main_from("opensnoop", opensnoop::run, a),
    },
    Tool {
        name: "execsnoop",
        main: |a| run_main_from("execsnoop", execsnoop::run, a),
    },
    Tool {
        name: "killsnoop",
        main: |a| run_main_from("killsnoop", killsnoop::run, a),
    },
    Tool {
        name: "syscount",
        main: |a| run_main_from("syscount", syscount::run, a),
    },
    Tool {
        name: "tcpretrans",
        main: |a| run_main_from("tcpretrans", tcpretrans::run, a),
    },
    Tool {
        name: "cachestat",
        main: |a| run_main_from("cachestat", cachestat::run, a),
    },
    Tool {
        name: "bitesize",
        main: |a| run_main_from("bitesize", bitesize::run, a),
    },
    Tool {
        name: "tpoint",
        main: |a| run_main_from("tpoint", tpoint::run, a),
    },
    Tool {
        name: "perf-stat-hist",
        main: |a| run_main_from("perf-stat-hist", perf_stat_hist::run, a),
    },
    Tool {
        name: "funcgraph",
        main: |a| run_main_from("funcgraph", funcgraph::run, a),
    },
    Tool {
        name: "functrace",
        main: |a| run_main_from("functrace", functrace::run, a),
    },
    Tool {
        name: "funccount",
        main: |a| run_main_from("funccount", funccount::run, a),
    },
    Tool {
        name: "funcslower",
        main: |a| run_main_from("funcslower", funcslower::run, a),
    },
    Tool {
        name: "kprobe",
        main: |a| run_main_from("kprobe", kprobe::run, a),
    },
    Tool {
        name: "uprobe",
        main: |a| run_main_from("uprobe", uprobe::run, a),
    },
    Tool {
        name: "reset-ftrace",
        main: |a| run_main_from("reset-ftrace", reset_ftrace::run, a),
    },
    Tool {
        name: "heatmap",
        main: |a| run_main_from("heatmap", heatmap::run, a),
    },
    Tool {
        name: "cputemp",
        main: |a| run_main_from("cputemp", cputemp::run, a),
    },
    Tool {
        name: "showboost",
        main: |a| run_main_from("showboost", showboost::run, a),
    },
    Tool {
        name: "pmcstat",
        main: |a| run_main_from("pmcstat", pmcstat::run, a),
    },
    Tool {
        name: "perf-tools-doctor",
        main: |a| run_main_from("perf-tools-doctor", perf_tools_doctor::run, a),
    },
];

/// The tool called `name`, if there is one.
pub fn tool(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The multi-call binary's own options (when it is not invoked as a tool).
#[derive(Parser, Debug)]
#[command(
    name = "perf-tools",
    version,
    about = "Every perf-tools-rs tool in one file: perf-tools TOOL [ARGS...], or a link named after the tool",
    after_help = "Run `perf-tools --list` for the tools; `perf-tools TOOL --help` for one tool's options."
)]
pub struct Args {
    /// List the tools this binary carries, one per line
    #[arg(short = 'l', long, conflicts_with_all = ["install_links", "tool"])]
    pub list: bool,

    /// Make a link named after each tool in DIR pointing at this binary (an existing
    /// DIR), so that `iosnoop ...` runs the tool
    #[arg(long, value_name = "DIR", conflicts_with = "tool")]
    pub install_links: Option<PathBuf>,

    /// With --install-links: replace files in DIR that have a tool's name but are not
    /// links to this binary (an older per-tool install)
    #[arg(short = 'f', long, requires = "install_links")]
    pub force: bool,

    /// The tool to run, then its arguments
    #[arg(
        value_name = "TOOL",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub tool: Vec<OsString>,
}

/// The multi-call binary's clap definition, with the suite's generated usage.
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The whole `main`: dispatches on the name it was invoked by, else on its first
/// argument, else handles its own options.
pub fn main() -> ! {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invoked = args
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("perf-tools");
    if let Some(t) = tool(invoked) {
        (t.main)(args)
    }
    if let Some(t) = args.get(1).and_then(|a| a.to_str()).and_then(tool) {
        // The process name (comm) the kernel shows in every event, ps and top is the
        // tool's, as when its own binary or a link runs: the suite's tools recognise
        // each other by it (opensnoop and execsnoop hide their peers' own activity).
        if let Ok(name) = std::ffi::CString::new(t.name) {
            // Best effort: a failed rename changes only what ps shows.
            let _ = nix::sys::prctl::set_name(&name);
        }
        (t.main)(args[1..].to_vec())
    }
    run_main_from("perf-tools", run, args)
}

/// Runs the binary's own options: `--list`, `--install-links`, or an unknown tool name.
pub fn run(args: Args) -> Result<()> {
    if args.list {
        use std::io::Write;
        let text: String = TOOLS.iter().map(|t| format!("{}\n", t.name)).collect();
        // `perf-tools --list | head -1` closes the pipe early: that is not an error.
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(e).context("writing the list to stdout failed")
            }
            _ => Ok(()),
        };
    }
    if let Some(dir) = &args.install_links {
        return install_links(dir, args.force);
    }
    match args.tool.first() {
        // main() dispatched every known name before clap ran, so this one is unknown.
        Some(name) => {
            let mut cmd = command();
            let msg = format!(
                "no tool named '{}' in this binary (perf-tools --list shows the {} it carries)",
                name.to_string_lossy(),
                TOOLS.len()
            );
            cmd.error(clap::error::ErrorKind::InvalidValue, msg).exit()
        }
        None => command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "name a tool to run (perf-tools TOOL [ARGS...]), or use --list or --install-links DIR",
            )
            .exit(),
    }
}

/// Makes `dir/<tool>` a link to this binary for every tool. Nothing is changed when a
/// name is taken by something else and `force` is not given.
pub fn install_links(dir: &Path, force: bool) -> Result<()> {
    let exe = std::fs::read_link("/proc/self/exe")
        .context("reading /proc/self/exe (the path of this binary) failed; is /proc mounted?")?;
    if !dir.is_dir() {
        bail!(
            "{} is not a directory; create it first (mkdir -p {})",
            dir.display(),
            dir.display()
        );
    }
    let mut todo = Vec::new();
    let mut taken = Vec::new();
    // What was done, printed at the end: a closed pipe (`| head`) must not stop the work.
    let mut said = Vec::new();
    for t in TOOLS {
        let link = dir.join(t.name);
        match std::fs::symlink_metadata(&link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => todo.push((t.name, link, false)),
            Err(e) => bail!("checking {} failed: {e}", link.display()),
            Ok(_) if same_file(&link, &exe) => {
                println!("{} already links to {}", link.display(), exe.display())
            }
            Ok(_) => {
                taken.push(link.display().to_string());
                todo.push((t.name, link, true));
            }
        }
    }
    if !taken.is_empty() && !force {
        bail!(
            "{} exist and are not links to {}: nothing was changed; add -f to replace them",
            taken.join(", "),
            exe.display()
        );
    }
    for (_, link, replace) in todo {
        if replace {
            std::fs::remove_file(&link)
                .with_context(|| format!("removing {} (to replace it) failed", link.display()))?;
        }
        std::os::unix::fs::symlink(&exe, &link).with_context(|| {
            format!(
                "making the link {} -> {} failed (is {} writable by you?)",
                link.display(),
                exe.display(),
                dir.display()
            )
        })?;
        said.push(format!("{} -> {}", link.display(), exe.display()));
    }
    say(&said);
    Ok(())
}

/// Prints lines on stdout; a reader that went away is not an error.
fn say(lines: &[String]) {
    use std::io::Write;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Whether `a` resolves to the same file as `b`.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
