//! Helpers for live tests that run the tools against the real kernel of this machine.
//!
//! Live tests need root and tracefs. Where those are missing, [`live_or_skip`] prints why
//! and the test returns early — except under CI (`CI` set), where a missing prerequisite
//! is a failure, because CI runs as root on a kernel that has them.
//!
//! The crate also holds the cross-tool state-leak matrix test (`tests/leak_matrix.rs`),
//! whose results `cargo run -p docgen -- leak-table` renders into `tests/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cgroup;
pub mod fake_machine;
pub mod fio;
pub mod heatmap;
pub mod snapshot;

pub use libc;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The tracefs root used by tests.
pub const TRACEFS: &str = "/sys/kernel/tracing";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Mounts tracefs if needed. Returns `true` if live tests can run; otherwise prints the
/// reason and returns `false` (panics under CI instead).
pub fn live_or_skip(test: &str) -> bool {
    let reason = if !is_root() {
        Some("not root".to_string())
    } else {
        if !Path::new(TRACEFS).join("events").is_dir() {
            let _ = Command::new("mount")
                .args(["-t", "tracefs", "nodev", TRACEFS])
                .status();
        }
        if !Path::new(TRACEFS)
            .join("events/block/block_rq_issue")
            .is_dir()
        {
            Some(format!("no block tracepoints under {TRACEFS}"))
        } else {
            None
        }
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("{test}: live test cannot run under CI: {r}")
        }
        Some(r) => {
            eprintln!("SKIPPED {test}: {r}");
            false
        }
    }
}

/// Names of the entries of `instances/` in tracefs.
pub fn instances() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(Path::new(TRACEFS).join("instances"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Instances that belong to a given tool process.
pub fn instance_of(tool: &str, pid: u32) -> bool {
    Path::new(TRACEFS)
        .join("instances")
        .join(format!("{tool}-{pid}"))
        .exists()
}

/// The probe definitions of this suite's process `pid` (group `ptrs_<pid>`) still listed
/// in `dynamic_events`, `kprobe_events` or `uprobe_events`, each as `file: line`: empty
/// when the process left no probe behind.
pub fn probes_of(pid: u32) -> Vec<String> {
    let group = format!("ptrs_{pid}/");
    let mut v = Vec::new();
    for f in ["dynamic_events", "kprobe_events", "uprobe_events"] {
        let text = std::fs::read_to_string(Path::new(TRACEFS).join(f)).unwrap_or_default();
        v.extend(
            text.lines()
                .filter(|l| l.contains(&group))
                .map(|l| format!("{f}: {l}")),
        );
    }
    v
}

/// Whether this kernel lets a tool trace functions: `function` among the available
/// tracers and a readable `available_filter_functions` (lockdown or a kernel without
/// CONFIG_DYNAMIC_FTRACE refuses it). Call after [`live_or_skip`], which mounts tracefs.
pub fn function_tracer_usable() -> bool {
    let t = Path::new(TRACEFS);
    let tracers = std::fs::read_to_string(t.join("available_tracers")).unwrap_or_default();
    tracers.split_whitespace().any(|w| w == "function")
        && std::fs::read(t.join("available_filter_functions")).is_ok()
}

/// Events enabled in the top-level instance (`set_event`).
pub fn top_level_enabled_events() -> String {
    std::fs::read_to_string(Path::new(TRACEFS).join("set_event")).unwrap_or_default()
}

/// A loop device over a file in /dev/shm, detached and deleted on drop.
pub struct LoopDev {
    /// `/dev/loopN`.
    pub path: PathBuf,
    backing: PathBuf,
    /// `"major,minor"`.
    pub dev: String,
}

impl LoopDev {
    /// Creates a loop device of `mib` MiB.
    pub fn new(mib: u64) -> LoopDev {
        let backing = PathBuf::from(format!(
            "/dev/shm/ptrs-test-{}-{}",
            std::process::id(),
            unique()
        ));
        let f = std::fs::File::create(&backing).expect("create backing file in /dev/shm");
        f.set_len(mib << 20).unwrap();
        drop(f);
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&backing)
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let dev = std::fs::read_to_string(format!("/sys/block/{name}/dev"))
            .unwrap()
            .trim()
            .replace(':', ",");
        // Make the device's queue trace every request individually and predictably.
        let _ = std::fs::write(format!("/sys/block/{name}/queue/scheduler"), "none");
        LoopDev { path, backing, dev }
    }

    /// The device's kernel name (`loop3`).
    pub fn name(&self) -> String {
        self.path.file_name().unwrap().to_str().unwrap().to_string()
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
        let _ = std::fs::remove_file(&self.backing);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// The count in iosnoop's or iolatency's end-of-run note on I/Os not timed because
/// another I/O of their sector was in flight with them (0 without the note).
pub fn overlapped_ios(stderr: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.contains("were not timed: each was in flight together"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Runs `dd` with O_DIRECT on `dev`: `count` blocks of `bs` bytes starting at byte
/// `offset`. Returns dd's PID. Panics if dd fails.
pub fn dd_direct(dev: &Path, write: bool, offset: u64, bs: u64, count: u64) -> u32 {
    let devs = dev.display().to_string();
    let mut cmd = Command::new("dd");
    if write {
        cmd.args([
            "if=/dev/zero",
            &format!("of={devs}"),
            "oflag=direct,seek_bytes",
            "conv=notrunc",
            &format!("seek={offset}"),
        ]);
    } else {
        cmd.args([
            &format!("if={devs}"),
            "of=/dev/null",
            "iflag=direct,skip_bytes",
            &format!("skip={offset}"),
        ]);
    }
    cmd.args([format!("bs={bs}"), format!("count={count}")])
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("spawn dd");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dd failed");
    pid
}

/// A running tool whose stdout is collected line by line in the background.
pub struct Running {
    /// The child process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines received so far.
    pub seen: Vec<String>,
    stderr: Option<std::process::ChildStderr>,
}

/// Starts `bin` with `args`, stdout and stderr piped.
pub fn spawn(bin: &str, args: &[&str]) -> Running {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    spawn_command(cmd)
}

/// Starts a prepared command (extra environment, `pre_exec` limits or signal
/// dispositions) with stdin null and stdout and stderr piped, as [`spawn`] does.
pub fn spawn_command(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let stderr = child.stderr.take();
    Running {
        child,
        lines: rx,
        seen: Vec::new(),
        stderr,
    }
}

impl Running {
    /// Waits until a line containing `needle` appears; panics after `timeout`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "timed out waiting for {needle:?}; got so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Collects lines for up to `d` (returns early once `until` matches a line).
    pub fn collect_until(&mut self, d: Duration, until: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + d;
        while !until(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Ok(l) = self.lines.recv_timeout(left) {
                self.seen.push(l);
            }
        }
    }

    /// Sends a signal to the tool.
    pub fn signal(&self, sig: i32) {
        // Raw kill(2): nix's Signal has no real-time signals, which the exit-path tests
        // send too.
        // SAFETY: kill with our child's pid and a signal number.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit (panics after `timeout`), gathers the remaining stdout lines (up to
    /// its end, or 5 s more while a descendant holds it), and returns (exit code or
    /// -signal, stderr text).
    pub fn finish(&mut self, timeout: Duration) -> (i32, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "tool did not exit within {timeout:?}; stdout:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Every line up to the end of stdout (the reader thread ends there), however
        // late a loaded machine schedules the reader; a descendant that still holds
        // stdout gets a few seconds.
        let tail = Instant::now() + Duration::from_secs(5);
        while let Ok(l) = self
            .lines
            .recv_timeout(tail.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0));
        (code, err)
    }
}

/// Runs a command to completion, returning (exit code, stdout, stderr).
pub fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let (code, out, err, _) = run_pid(bin, args);
    (code, out, err)
}

/// Like [`run`], also returning the child's PID (to check what it left behind).
pub fn run_pid(bin: &str, args: &[&str]) -> (i32, String, String, u32) {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        pid,
    )
}

/// Runs `bin args` as the unprivileged user `nobody` (via setpriv), returning
/// (exit code, stdout, stderr). The binary must be readable and executable by nobody.
pub fn run_as_nobody(bin: &str, args: &[&str]) -> (i32, String, String) {
    let mut a = vec![
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--",
        bin,
    ];
    a.extend_from_slice(args);
    run("setpriv", &a)
}

/// Runs `bin args` under `strace -f`, returning (exit code, stdout, stderr, the traced
/// calls that named a tracefs or debugfs path). An empty list proves the run created no
/// kernel tracing state (no instance, no file written). `None` (after printing why, or a
/// panic under CI) when strace cannot run here.
pub fn run_watching_tracefs(
    bin: &str,
    args: &[&str],
) -> Option<(i32, String, String, Vec<String>)> {
    let log = std::env::temp_dir().join(format!("ptrs-strace-{}-{}", std::process::id(), unique()));
    let ok = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("strace is needed to prove a run touched no tracing state");
        }
        eprintln!("SKIPPED: strace is not installed");
        return None;
    }
    let mut a: Vec<&str> = vec![
        "-f",
        "-qq",
        "-e",
        "trace=%file,%desc",
        "-o",
        log.to_str().unwrap(),
        "--",
        bin,
    ];
    a.extend_from_slice(args);
    let (code, out, err) = run("strace", &a);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let touched = calls
        .lines()
        .filter(|l| l.contains("/sys/kernel/tracing") || l.contains("/sys/kernel/debug"))
        .map(String::from)
        .collect();
    Some((code, out, err, touched))
}

/// A buffer aligned for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in direct_read.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Reads `len` bytes at byte `offset` of `dev` with O_DIRECT from the calling thread (so
/// the I/O is issued by this thread: tests of per-thread attribution). Panics on error.
pub fn direct_read(dev: &Path, offset: u64, len: usize) {
    use std::os::unix::ffi::OsStrExt;
    let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
    let buf = Aligned {
        // SAFETY: layout has a non-zero size (tests read at least one sector); a null
        // result is checked below.
        ptr: unsafe { std::alloc::alloc_zeroed(layout) },
        layout,
    };
    assert!(!buf.ptr.is_null());
    let path = std::ffi::CString::new(dev.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string; flags are plain open flags.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECT) };
    assert!(
        fd >= 0,
        "open {}: {}",
        dev.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: buf holds len bytes; fd is open.
    let n = unsafe { libc::pread(fd, buf.ptr.cast(), len, offset as libc::off_t) };
    let e = std::io::Error::last_os_error();
    // SAFETY: fd is open and ours.
    unsafe { libc::close(fd) };
    assert_eq!(n, len as isize, "O_DIRECT read of {}: {e}", dev.display());
}

/// Polls `ready` every 20 ms until it gives a value; panics after `timeout`, naming
/// `what` (a state the test waits for, where a fixed sleep would race a loaded machine).
pub fn wait_until<T>(what: &str, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first line of `path`, trimmed, once it is whole (a worker's `echo $! > path`);
/// waits up to `timeout`.
pub fn line_written(path: &Path, timeout: Duration) -> String {
    wait_until(&format!("a line in {}", path.display()), timeout, || {
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.split_once('\n')?.0.trim().to_string())
    })
}

/// The calling thread's id.
pub fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

/// Names the calling thread (`prctl(PR_SET_NAME)`: at most 15 bytes are kept).
pub fn set_thread_name(name: &[u8]) {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes.
    let r = unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
    assert_eq!(r, 0, "prctl(PR_SET_NAME)");
}

/// The lock of the tests that change or snapshot the global tracefs state (the top
/// level, `instances/`, the probe lists): held across processes (an exclusive `flock`
/// on a file in the temporary directory, released when the returned file is dropped or
/// the process dies), so a test that stages a dirty top level (reset-ftrace's) and a
/// test that compares snapshots (the leak matrix) never overlap, whichever crates they
/// are in.
pub fn tracefs_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("perf-tools-rs-tracefs-tests.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    // SAFETY: flock on a valid open file descriptor; it blocks until the lock is free.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    f
}

/// The lock of tests that must not overlap another test of the same test binary: every
/// run of a tool removes what a killed run left behind when it starts, so a test that
/// kills a run and then checks that `--cleanup` (or the next run) removes the leftover
/// takes it, as do the other tests of its file. Each test binary links its own copy of
/// this crate, so the lock is per test file (the files run one after another anyway).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
