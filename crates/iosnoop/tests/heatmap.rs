//! Live tests of `iosnoop --heatmap FILE`: every I/O shown is in the heat map, and the
//! file is complete on every way a run ends (Ctrl-C, SIGTERM, duration, closed pipe).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;
use testkit::{dd_direct, instance_of, libc, live_or_skip, run, spawn, LoopDev};

const BIN: &str = env!("CARGO_BIN_EXE_iosnoop");
const T: Duration = Duration::from_secs(20);

fn svg_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("iosnoop-heatmap-{}-{name}.svg", std::process::id()))
}

/// Leftover temporary files of the rename (there must be none).
fn temp_files(path: &std::path::Path) -> usize {
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_str().unwrap();
            n.starts_with(&format!(".{name}.")) && n.ends_with(".tmp")
        })
        .count()
}

fn on_signal(sig: i32, name: &str) {
    let _guard = testkit::serial();
    let lo = LoopDev::new(16);
    let path = svg_path(name);
    let _ = std::fs::remove_file(&path);
    let mut r = spawn(BIN, &["-d", &lo.dev, "--heatmap", path.to_str().unwrap()]);
    r.wait_for("LATms", T);
    // 3 x 12 reads and 5 writes of 4 KiB, O_DIRECT: 41 I/Os, one request each.
    for i in 0..3u64 {
        dd_direct(&lo.path, false, i * 12 * 4096, 4096, 12);
    }
    dd_direct(&lo.path, true, 1 << 20, 4096, 5);
    r.collect_until(T, |seen| {
        seen.iter().filter(|l| l.contains(&lo.dev)).count() >= 41
    });
    r.signal(sig);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let rows = r.seen.iter().filter(|l| l.contains(&lo.dev)).count();
    assert_eq!(rows, 41, "{:?}", r.seen);
    assert_eq!(testkit::heatmap::total(&path), 41);
    assert!(
        err.contains(&format!(
            "iosnoop: heat map of 41 I/O written to {}",
            path.display()
        )),
        "{err}"
    );
    assert_eq!(temp_files(&path), 0);
    assert!(!instance_of("iosnoop", r.child.id()));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn heatmap_counts_every_io_until_ctrl_c() {
    if live_or_skip("heatmap_counts_every_io_until_ctrl_c") {
        on_signal(libc::SIGINT, "int");
    }
}

#[test]
fn heatmap_counts_every_io_until_sigterm() {
    if live_or_skip("heatmap_counts_every_io_until_sigterm") {
        on_signal(libc::SIGTERM, "term");
    }
}

#[test]
fn heatmap_in_duration_mode() {
    if !live_or_skip("heatmap_in_duration_mode") {
        return;
    }
    let _guard = testkit::serial();
    let lo = LoopDev::new(16);
    let path = svg_path("duration");
    let mut r = spawn(
        BIN,
        &["-d", &lo.dev, "--heatmap", path.to_str().unwrap(), "2"],
    );
    r.wait_for("LATms", T);
    dd_direct(&lo.path, false, 0, 4096, 25);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.seen.iter().filter(|l| l.contains(&lo.dev)).count(), 25);
    assert_eq!(testkit::heatmap::total(&path), 25);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn heatmap_is_complete_when_the_reader_goes_away() {
    if !live_or_skip("heatmap_is_complete_when_the_reader_goes_away") {
        return;
    }
    let _guard = testkit::serial();
    let lo = LoopDev::new(16);
    let path = svg_path("pipe");
    // head takes the banner, the header and 3 rows, then exits: iosnoop's output closes.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(format!(
        "{BIN} -d {} --heatmap {} | head -n 5",
        lo.dev,
        path.display()
    ));
    let mut r = testkit::spawn_command(cmd);
    // head's output is a pipe (block-buffered): wait for iosnoop's instance instead.
    let deadline = std::time::Instant::now() + T;
    while !testkit::instances()
        .iter()
        .any(|i| i.starts_with("iosnoop-"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "iosnoop did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20u64 {
        dd_direct(&lo.path, false, i * 4096, 4096, 1);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.seen.len(), 5, "{:?}", r.seen);
    // The pipeline's end: iosnoop noticed the closed pipe and wrote the file.
    let deadline = std::time::Instant::now() + T;
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let total = testkit::heatmap::total(&path);
    assert!((3..=20).contains(&total), "{total}");
    assert_eq!(temp_files(&path), 0);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn heatmap_into_a_missing_directory_is_a_usage_error() {
    let (code, _, err) = run(BIN, &["--heatmap", "/nonexistent-dir/x.svg", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("directory /nonexistent-dir does not exist"),
        "{err}"
    );
}
