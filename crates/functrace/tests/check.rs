//! `--check` and refusals on this host, as root: the verdict follows what the kernel
//! offers (the function tracer, a readable available_filter_functions), and nothing is
//! left in tracefs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_functrace"))
        .args(args)
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), s)
}

fn usable() -> Option<bool> {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let t = std::path::Path::new("/sys/kernel/tracing");
    let tracers = std::fs::read_to_string(t.join("available_tracers")).ok()?;
    let has = tracers.split_whitespace().any(|w| w == "function");
    Some(has && std::fs::read(t.join("available_filter_functions")).is_ok())
}

#[test]
fn check_verdict_follows_the_kernel_and_leaves_no_instance() {
    let Some(usable) = usable() else {
        eprintln!("skipped: needs root and tracefs");
        return;
    };
    let (rc, out) = run(&["--check"]);
    if usable {
        assert_eq!(rc, 0, "{out}");
        assert!(
            out.contains("the function tracer in a private instance"),
            "{out}"
        );
    } else {
        assert_eq!(rc, 1, "{out}");
        assert!(out.contains("function tracer  no"), "{out}");
        // A run refuses with the same reason, before changing anything.
        let (rc, err) = run(&["-d", "1", "vfs_read"]);
        assert_eq!(rc, 1, "{err}");
        assert!(err.starts_with("functrace: error: "), "{err}");
    }
    let left = std::fs::read_dir("/sys/kernel/tracing/instances")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("functrace-"))
        .count();
    assert_eq!(left, 0);
}

#[test]
fn usage_errors_exit_2() {
    let (rc, out) = run(&["-p", "1", "-L", "2", "f"]);
    assert_eq!(rc, 2, "{out}");
    let (rc, out) = run(&[]);
    assert_eq!(rc, 2, "{out}");
}
