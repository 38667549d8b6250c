//! The multi-call binary behaves as each tool's own binary: the same help, version,
//! usage errors and exit codes, through a link named after the tool and as
//! `perf-tools TOOL ...`; and its own options (`--list`, `--install-links`).
//!
//! The tools' own binaries are the ones `cargo test --workspace` builds beside this one
//! (`target/debug/<tool>`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_perf-tools");

fn own_binary(tool: &str) -> PathBuf {
    let p = Path::new(BIN).with_file_name(tool);
    assert!(
        p.exists(),
        "{} is missing: run this test with cargo test --workspace (it compares every tool's own binary), and give every tool crate an integration test under tests/ (cargo builds a binary for a test run only when its crate has one)",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) -> Output {
    cmd.env("NO_COLOR", "1")
        .output()
        .expect("spawning a binary failed")
}

/// Compares status, stdout and stderr of two runs.
fn same(what: &str, a: &Output, b: &Output) {
    assert_eq!(
        a.status.code(),
        b.status.code(),
        "{what}: exit status differs"
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
        "{what}: stdout differs"
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
        "{what}: stderr differs"
    );
}

#[test]
fn every_tool_answers_the_same_three_ways() {
    let dir = tempdir("links");
    let out = run(Command::new(BIN).arg("--install-links").arg(&dir));
    assert!(out.status.success(), "{out:?}");
    for t in perf_tools::TOOLS {
        let own = own_binary(t.name);
        let link = dir.join(t.name);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::fs::canonicalize(BIN).unwrap()
        );
        for args in [
            &["--help"][..],
            &["-h"],
            &["--version"],
            &["--no-such-option"],
        ] {
            let a = run(Command::new(&own).args(args));
            let b = run(Command::new(&link).args(args));
            let c = run(Command::new(BIN).arg(t.name).args(args));
            let what = format!("{} {}", t.name, args.join(" "));
            same(&format!("{what} (link)"), &a, &b);
            same(&format!("{what} (perf-tools {})", t.name), &a, &c);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_names_every_tool_once() {
    let out = run(Command::new(BIN).arg("--list"));
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = perf_tools::TOOLS
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, want);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a tool is listed twice");
}

#[test]
fn unknown_tool_and_no_tool_are_usage_errors() {
    let out = run(Command::new(BIN).arg("iosnoopx"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no tool named 'iosnoopx'"), "{err}");
    let out = run(&mut Command::new(BIN));
    assert_eq!(out.status.code(), Some(2));
    // A link with a name that is no tool is the multi-call binary itself.
    let dir = tempdir("other");
    std::os::unix::fs::symlink(BIN, dir.join("pt")).unwrap();
    let out = run(Command::new(dir.join("pt")).arg("--list"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "iosnoop"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn install_links_leaves_foreign_files_alone_without_force() {
    let dir = tempdir("foreign");
    std::fs::write(dir.join("opensnoop"), "#!/bin/sh\necho old\n").unwrap();
    let out = run(Command::new(BIN).arg("--install-links").arg(&dir));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("opensnoop") && err.contains("-f"), "{err}");
    // Nothing was changed: no link was made, the old file is intact.
    assert!(!dir.join("iosnoop").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("opensnoop")).unwrap(),
        "#!/bin/sh\necho old\n"
    );
    let out = run(Command::new(BIN).args(["-f", "--install-links"]).arg(&dir));
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::symlink_metadata(dir.join("opensnoop"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A second run finds every link in place.
    let out = run(Command::new(BIN).arg("--install-links").arg(&dir));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("already links to"))
            .count(),
        perf_tools::TOOLS.len()
    );
    let out = run(Command::new(BIN)
        .arg("--install-links")
        .arg(dir.join("absent")));
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("perf-tools-mc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_tool_run_by_name_has_the_tools_process_name() {
    let mut child = Command::new(BIN)
        .args(["tpoint", "--check"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // --check is quick; the name is set before the tool starts, so poll while it runs.
    let pid = child.id();
    let mut seen = None;
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            // Before exec: the test thread's name; after it: perf-tools; then the tool's.
            Ok(c) => {
                seen = Some(c.trim().to_string());
                if c.trim() == "tpoint" {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(_) => break,
        }
    }
    child.wait().unwrap();
    assert_eq!(seen.as_deref(), Some("tpoint"));
}

/// Runs `args` with stdout a pipe whose reading end is already closed: every write
/// fails with EPIPE (the reader, e.g. `head -1`, went away).
fn run_into_closed_pipe(args: &[&std::ffi::OsStr]) -> Output {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::from(w))
        .output()
        .unwrap()
}

#[test]
fn install_links_into_a_closed_pipe_makes_every_link() {
    let dir = tempdir("pipe");
    let out = run_into_closed_pipe(&["--install-links".as_ref(), dir.as_os_str()]);
    assert!(out.status.success(), "{out:?}");
    for t in perf_tools::TOOLS {
        assert!(dir.join(t.name).exists(), "{} missing", t.name);
    }
    let out = run_into_closed_pipe(&["--list".as_ref()]);
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
