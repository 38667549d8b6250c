//! fio as a load generator for the overload tests: 4 KiB random O_DIRECT reads with
//! io_uring, and fio's own count and latency maximum to check tools against.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running fio job.
pub struct Fio {
    child: Child,
    json: PathBuf,
}

/// What fio measured.
#[derive(Debug, Clone, Copy)]
pub struct FioResult {
    /// Reads completed (`jobs[0].read.total_ios`).
    pub total_ios: u64,
    /// The largest total latency fio saw, in ns (`jobs[0].read.lat_ns.max`): from the
    /// read's preparation, before it was submitted, to its reaping. It bounds the
    /// block layer's issue-to-completion time of every read. fio's completion latency
    /// (`clat_ns`) does not: with io_uring its clock starts when `io_uring_enter`
    /// returns, and the block layer issues the read inside that call.
    pub lat_max_ns: u64,
}

/// Starts `fio` reading `dev` at random, 4 KiB O_DIRECT through io_uring with `depth`
/// reads in flight, for `secs` seconds. Panics if fio is not installed: the suite's
/// requirements step (scripts/test.sh) installs it.
pub fn randread(dev: &Path, secs: u32, depth: u32) -> Fio {
    randread_within(dev, secs, depth, None)
}

/// Like [`randread`], but only within the first `bytes` of `dev` (`--size`): with
/// fewer 4 KiB blocks than reads in flight, reads of one block overlap.
pub fn randread_within(dev: &Path, secs: u32, depth: u32, bytes: Option<u64>) -> Fio {
    let json = PathBuf::from(format!(
        "/dev/shm/ptrs-fio-{}-{}.json",
        std::process::id(),
        crate::unique()
    ));
    let out = std::fs::File::create(&json).expect("create fio output file in /dev/shm");
    let child = Command::new("fio")
        .args([
            "--name=load",
            &format!("--filename={}", dev.display()),
            "--rw=randread",
            "--bs=4k",
            "--direct=1",
            "--ioengine=io_uring",
            &format!("--iodepth={depth}"),
            &format!("--runtime={secs}"),
            "--time_based",
            "--output-format=json",
        ])
        .args(bytes.map(|b| format!("--size={b}")))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running fio: {e} (install it: apt-get install fio, as scripts/test.sh does)")
        });
    Fio { child, json }
}

impl Fio {
    /// Waits for fio to end and reads its results.
    pub fn wait(mut self) -> FioResult {
        let status = self.child.wait().expect("wait for fio");
        let text = std::fs::read_to_string(&self.json).unwrap_or_default();
        let _ = std::fs::remove_file(&self.json);
        assert!(status.success(), "fio failed: {status}\n{text}");
        // fio may print notes before the JSON document.
        let doc = &text[text.find('{').unwrap_or(0)..];
        let v: serde_json::Value =
            serde_json::from_str(doc).unwrap_or_else(|e| panic!("fio JSON: {e}\n{text}"));
        let read = &v["jobs"][0]["read"];
        FioResult {
            total_ios: read["total_ios"].as_u64().expect("fio total_ios"),
            lat_max_ns: read["lat_ns"]["max"].as_u64().expect("fio lat_ns.max"),
        }
    }
}
