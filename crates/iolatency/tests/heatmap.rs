//! Live tests of `iolatency --heatmap FILE`: every I/O counted is in the heat map, and
//! the file is complete when the run ends by its count or by a signal.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;
use testkit::{dd_direct, instance_of, libc, live_or_skip, spawn, LoopDev};

const BIN: &str = env!("CARGO_BIN_EXE_iolatency");
const T: Duration = Duration::from_secs(20);

fn svg_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "iolatency-heatmap-{}-{name}.svg",
        std::process::id()
    ))
}

#[test]
fn heatmap_counts_every_io_over_counted_intervals() {
    if !live_or_skip("heatmap_counts_every_io_over_counted_intervals") {
        return;
    }
    let _guard = testkit::serial();
    let lo = LoopDev::new(16);
    let path = svg_path("count");
    // 0.3 s intervals, 6 of them; 60 reads and 7 writes in three bursts.
    let mut r = spawn(
        BIN,
        &[
            "-d",
            &lo.dev,
            "--heatmap",
            path.to_str().unwrap(),
            "0.3",
            "6",
        ],
    );
    r.wait_for("Output every 0.3 seconds.", T);
    std::thread::sleep(Duration::from_millis(100));
    dd_direct(&lo.path, false, 0, 4096, 30);
    std::thread::sleep(Duration::from_millis(250));
    dd_direct(&lo.path, true, 1 << 20, 4096, 7);
    dd_direct(&lo.path, false, 30 * 4096, 4096, 30);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(testkit::heatmap::total(&path), 67);
    assert!(
        err.contains("iolatency: heat map of 67 I/O written to"),
        "{err}"
    );
    assert!(!instance_of("iolatency", r.child.id()));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn heatmap_counts_every_io_until_ctrl_c() {
    if !live_or_skip("heatmap_counts_every_io_until_ctrl_c") {
        return;
    }
    let _guard = testkit::serial();
    let lo = LoopDev::new(16);
    let path = svg_path("int");
    // Long intervals: the I/O is in no printed histogram, but in the heat map.
    let mut r = spawn(
        BIN,
        &["-d", &lo.dev, "--heatmap", path.to_str().unwrap(), "60"],
    );
    r.wait_for("Output every 60 seconds.", T);
    std::thread::sleep(Duration::from_millis(100));
    dd_direct(&lo.path, false, 0, 4096, 33);
    std::thread::sleep(Duration::from_millis(200));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert_eq!(testkit::heatmap::total(&path), 33);
    std::fs::remove_file(&path).unwrap();
}
