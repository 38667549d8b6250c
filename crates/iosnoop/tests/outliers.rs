//! Live tests of the outlier recorder (`--min-ms`, `--context`, `--count`) on a device
//! with a synthetic slow I/O: a loop device over a file in an ext4 file system (itself on
//! a loop device over /dev/shm). While that file system is frozen (`fsfreeze`), a write
//! to the upper loop device waits in its backing file's write path until the thaw, so
//! its latency is the time the file system stayed frozen; reads are not held.
//! Thresholds (250 ms) are far above what a fast I/O takes even on a busy shared host.
//! They need root, tracefs, ext4 and fsfreeze (CI has them); elsewhere they skip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::{
    dd_direct, direct_read, instance_of, libc, live_or_skip, serial, spawn, LoopDev, Running,
};

const BIN: &str = env!("CARGO_BIN_EXE_iosnoop");
const T: Duration = Duration::from_secs(10);

fn sh(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// A loop device whose writes can be held: see the file's doc.
struct SlowLoop {
    upper: PathBuf,
    mnt: PathBuf,
    _lower: LoopDev,
}

impl SlowLoop {
    fn new() -> Option<SlowLoop> {
        let lower = LoopDev::new(48);
        if !sh("mkfs.ext4", &["-q", "-F", lower.path.to_str().unwrap()]) {
            eprintln!("skipping: mkfs.ext4 failed or is missing");
            return None;
        }
        let mnt = std::env::temp_dir().join(format!("ptrs-slowloop-{}", std::process::id()));
        std::fs::create_dir_all(&mnt).unwrap();
        assert!(sh(
            "mount",
            &[
                "-t",
                "ext4",
                "-o",
                "noatime",
                lower.path.to_str().unwrap(),
                mnt.to_str().unwrap()
            ]
        ));
        // A fully written backing file: no block allocation under the upper device.
        let file = mnt.join("upper.img");
        std::fs::write(&file, vec![0u8; 16 << 20]).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup over {}", file.display());
        let upper = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let s = SlowLoop {
            upper,
            mnt,
            _lower: lower,
        };
        let _ = std::fs::write(format!("/sys/block/{}/queue/scheduler", s.name()), "none");
        Some(s)
    }

    fn name(&self) -> String {
        self.upper
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }

    /// A write of 4 KiB at `sector` that takes at least `hold` (the file system is
    /// frozen from before the write is issued until `hold` after).
    fn slow_write(&self, sector: u64, hold: Duration) {
        assert!(sh("fsfreeze", &["-f", self.mnt.to_str().unwrap()]));
        let dev = self.upper.clone();
        let w = std::thread::spawn(move || dd_direct(&dev, true, sector * 512, 4096, 1));
        // Timed from when the device has the write in flight (dd may take a while to
        // start on a busy host).
        let inflight = format!("/sys/block/{}/inflight", self.name());
        let deadline = std::time::Instant::now() + T;
        while std::fs::read_to_string(&inflight)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .is_none_or(|w| w == "0")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the write never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(hold);
        assert!(sh("fsfreeze", &["-u", self.mnt.to_str().unwrap()]));
        w.join().unwrap();
    }

    fn read(&self, sector: u64) {
        dd_direct(&self.upper, false, sector * 512, 4096, 1);
    }
}

impl Drop for SlowLoop {
    fn drop(&mut self) {
        let m = self.mnt.to_str().unwrap().to_string();
        // Thawed already unless a test failed while the file system was frozen.
        let _ = Command::new("fsfreeze")
            .args(["-u", &m])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = sh("losetup", &["-d", self.upper.to_str().unwrap()]);
        let _ = sh("umount", &[&m]);
        let _ = std::fs::remove_dir(&self.mnt);
    }
}

fn setup(test: &str) -> Option<SlowLoop> {
    if !live_or_skip(test) {
        return None;
    }
    if !Path::new("/usr/sbin/fsfreeze").exists() && !sh("sh", &["-c", "command -v fsfreeze"]) {
        eprintln!("skipping {test}: fsfreeze (util-linux) is missing");
        return None;
    }
    SlowLoop::new()
}

fn start(args: &[&str]) -> Running {
    let mut r = spawn(BIN, args);
    r.wait_for("LATms", T);
    r
}

/// The rows printed (after the header, before `Ending tracing...`), split in columns.
fn rows(r: &Running) -> Vec<Vec<String>> {
    let header = r.seen.iter().position(|l| l.contains("LATms")).unwrap();
    r.seen[header + 1..]
        .iter()
        .take_while(|l| !l.is_empty() && !l.starts_with("Ending"))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn an_outlier_is_printed_with_exactly_its_context() {
    let _serial = serial();
    let Some(slow) = setup("an_outlier_is_printed_with_exactly_its_context") else {
        return;
    };
    let dev = slow.name();
    let mut r = start(&["-s", "-t", "-d", &dev, "--min-ms", "250", "--context", "2"]);
    assert!(
        r.seen.iter().any(|l| l
            == "M STARTs          ENDs            COMM         PID    TYPE DEV      BLOCK        BYTES     LATms"),
        "{:?}",
        r.seen
    );
    // Context 2 s; the margins leave room for a busy host (fsfreeze and dd starts).
    slow.read(8); // more than 4.6 s before the outlier ends: out of its context
    std::thread::sleep(Duration::from_millis(4000));
    slow.read(16); // 0.6 s before plus the freeze's start: context
    std::thread::sleep(Duration::from_millis(100));
    slow.slow_write(24, Duration::from_millis(500)); // the outlier (~500 ms)
    std::thread::sleep(Duration::from_millis(100));
    slow.read(32); // 0.1 s after plus a dd start: context
    std::thread::sleep(Duration::from_millis(3500));
    slow.read(40); // more than 3.5 s after: out of its context
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(
        !instance_of("iosnoop", r.child.id()),
        "instance left behind"
    );
    let rows = rows(&r);
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|c| (c[0].clone(), c[5][..1].to_string(), c[7].clone()))
        .collect();
    let want = [("-", "R", "16"), ("*", "W", "24"), ("-", "R", "32")];
    assert_eq!(
        got,
        want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())),
        "{:#?}\n{err}",
        r.seen
    );
    for c in &rows {
        assert_eq!(c.len(), 10, "{c:?}");
        assert_eq!(c[3], "dd");
        assert_eq!(c[8], "4096");
    }
    // Ordered by completion (ENDs); the outlier is slow, its context fast.
    let ends: Vec<f64> = rows.iter().map(|c| c[2].parse().unwrap()).collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");
    let lat: Vec<f64> = rows.iter().map(|c| c[9].parse().unwrap()).collect();
    assert!(
        lat[1] >= 350.0 && lat[0] < 100.0 && lat[2] < 100.0,
        "{lat:?}"
    );
    assert!(
        err.contains("iosnoop: 5 I/O seen, 1 outliers (LATms >= 250), 2 context rows\n"),
        "{err}"
    );
    assert!(!err.contains("truncated"), "{err}");
}

#[test]
fn count_ends_the_run_after_the_first_outlier() {
    let _serial = serial();
    let Some(slow) = setup("count_ends_the_run_after_the_first_outlier") else {
        return;
    };
    let dev = slow.name();
    let mut r = start(&["-d", &dev, "--min-ms", "250", "--count", "1"]);
    // Without --context the layout is the default one.
    assert!(r
        .seen
        .iter()
        .any(|l| l == "COMM         PID    TYPE DEV      BLOCK        BYTES     LATms"));
    slow.read(8);
    dd_direct(&slow.upper, true, 48 * 512, 4096, 1); // a fast write: not an outlier
    slow.slow_write(56, Duration::from_millis(500));
    // The run ends by itself, no signal, and removes its instance as on any exit.
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(
        !instance_of("iosnoop", r.child.id()),
        "instance left behind"
    );
    let rows = rows(&r);
    assert_eq!(rows.len(), 1, "{:#?}", r.seen);
    assert_eq!(rows[0].len(), 7);
    assert_eq!((&rows[0][0][..], &rows[0][2][..1]), ("dd", "W"));
    assert_eq!(rows[0][4], "56");
    assert!(
        err.contains("iosnoop: 3 I/O seen, 1 outliers (LATms >= 250); stopped after 1 (--count)\n"),
        "{err}"
    );
    assert!(r.seen.iter().any(|l| l == "Ending tracing..."));
}

#[test]
fn a_full_window_says_the_context_was_truncated() {
    let _serial = serial();
    let Some(slow) = setup("a_full_window_says_the_context_was_truncated") else {
        return;
    };
    let dev = slow.name();
    let mut r = start(&[
        "-d",
        &dev,
        "--min-ms",
        "250",
        "--context",
        "60",
        "--context-rows",
        "1000",
    ]);
    // 1500 reads at sectors 0, 8, ... 11992 (from this process), then the outlier.
    for i in 0..1500u64 {
        direct_read(&slow.upper, i * 4096, 4096);
    }
    slow.slow_write(16000, Duration::from_millis(500));
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    let header = r.seen.iter().position(|l| l.contains("LATms")).unwrap();
    let lines: Vec<&String> = r.seen[header + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1002,
        "{:#?}\n{:#?}\n{err}",
        &lines[..5.min(lines.len())],
        &lines[lines.len().saturating_sub(5)..]
    );
    assert!(
        lines[0].starts_with("# context truncated: I/O that completed from ")
            && lines[0].ends_with(
                " s are not shown (500 I/O dropped: the window holds at most 1000, --context-rows)"
            ),
        "{}",
        lines[0]
    );
    // The newest 1000 reads, in order, then the outlier.
    for (k, l) in lines[1..1001].iter().enumerate() {
        let c: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(
            (c[0], c[5]),
            ("-", &*((500 + k as u64) * 8).to_string()),
            "{l}"
        );
    }
    let c: Vec<&str> = lines[1001].split_whitespace().collect();
    assert_eq!((c[0], c[1], c[5]), ("*", "dd", "16000"));
    assert!(
        err.contains("iosnoop: 1501 I/O seen, 1 outliers (LATms >= 250), 1000 context rows; context truncated 1 times (500 I/O dropped from the full window, --context-rows 1000)\n"),
        "{err}"
    );
}

#[test]
fn outlier_options_need_min_ms() {
    for argv in [
        &["--context", "1"][..],
        &["--count", "2"],
        &["--min-ms", "10", "--context-rows", "5000"],
        &["--min-ms", "-1"],
        &["--min-ms", "x"],
        &["--min-ms", "1", "--context", "0"],
        &["--min-ms", "1", "--count", "0"],
        &["--min-ms", "1", "--context", "1", "--context-rows", "10"],
    ] {
        let out = Command::new(BIN).args(argv).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
    }
}
