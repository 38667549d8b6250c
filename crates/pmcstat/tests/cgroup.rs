//! Host tests of `pmcstat --cgroup` / `--container`: cgroups made here under the v2
//! hierarchy, a workload with a known number of page faults, sleeps and CPU time run
//! inside and an identical one outside, and the counts must be the inside one's only.
//! Each workload measures its own task-clock with a counter on itself: task-clock counts
//! time on a CPU by the clock, so on a VM whose vCPU the hypervisor takes away (steal) it
//! exceeds the scheduler's CPU time; the cgroup's TASK_MS is compared with the same clock.
//! Needs root (cgroup events are CPU-wide counting); without it they say why they skip,
//! except under CI.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use perf_tools_pmc::counters::{Counters, Options, Request, Target};
use perf_tools_pmc::cpu::{CpuInfo, Pmus};
use perf_tools_pmc::event::{Event, Sw};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{libc, run, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_pmcstat");
const T: Duration = Duration::from_secs(30);

/// Pages the workload touches: exactly one page fault each (anonymous, no huge pages).
const PAGES: usize = 6000;
/// 1 ms sleeps the workload takes: one voluntary context switch each at least.
const SLEEPS: usize = 40;
/// CPU time the workload spends, ms.
const BUSY_MS: u64 = 300;

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root, and CI runs as root");
    }
    eprintln!("SKIPPED {test}: not root");
    false
}

/// The v2 mount (`/sys/fs/cgroup/unified` on this hybrid host, `/sys/fs/cgroup` on a
/// unified one).
fn v2_root() -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| PathBuf::from(left.split(' ').nth(4).unwrap()))
        })
        .expect("a cgroup v2 hierarchy is mounted")
}

/// A cgroup made for a test, emptied (its tasks killed) and removed on drop, whatever
/// the test's outcome.
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        let dir = v2_root().join(name);
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap();
        TestCgroup { dir }
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let pids = std::fs::read_to_string(self.procs()).unwrap_or_default();
            if pids.trim().is_empty() {
                break;
            }
            for p in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill with a PID read from our own test cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Not a test: the workload, run as a child of this test binary (`--ignored --exact
/// workload`) with its parameters in the environment. It joins the cgroup whose
/// cgroup.procs is in PT_CGROUP_PROCS (if set), then touches PAGES fresh pages, sleeps
/// SLEEPS times 1 ms and spins until it has used BUSY_MS of CPU, and prints the CPU time
/// it used since joining (scheduler's account) and the task-clock of its thread.
#[test]
#[ignore = "the workload of the cgroup tests, run by them as a child process"]
fn workload() {
    let Ok(pages) = std::env::var("PT_PAGES") else {
        return;
    };
    let pages: usize = pages.parse().unwrap();
    if let Ok(procs) = std::env::var("PT_CGROUP_PROCS") {
        std::fs::write(procs, std::process::id().to_string()).unwrap();
    }
    let cpu_ns = || perf_tools_core::clock::clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    let tid = testkit::gettid() as i32;
    let mut clock = Counters::open(
        &[Request {
            event: Event::Software(Sw::TaskClock),
            group: 0,
        }],
        &[Target::Task(tid)],
        &Pmus::system(),
        &CpuInfo::detect(),
        &Options::default(),
    )
    .unwrap();
    clock.enable().unwrap();
    let t0 = cpu_ns();
    let len = pages * 4096;
    // SAFETY: a fresh private anonymous mapping, touched within its length only.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        libc::madvise(p, len, libc::MADV_NOHUGEPAGE);
        let b = p as *mut u8;
        for i in 0..pages {
            std::ptr::write_volatile(b.add(i * 4096), 1);
        }
    }
    for _ in 0..SLEEPS {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut x = 0u64;
    while cpu_ns() - t0 < BUSY_MS * 1_000_000 {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
    let task_clock = clock.read().unwrap()[0].get().unwrap();
    println!("CPU_NS={}", cpu_ns() - t0);
    println!("TASK_CLOCK_NS={task_clock}");
}

/// Starts the workload (inside `cgroup` when given).
fn start_workload(cgroup: Option<&Path>) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--ignored", "--exact", "workload", "--nocapture"])
        .env("PT_PAGES", PAGES.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(p) = cgroup {
        c.env("PT_CGROUP_PROCS", p);
    }
    c.spawn().unwrap()
}

/// What a workload used: (CPU time, task-clock), ms.
fn used_ms_of(child: std::process::Child) -> (f64, f64) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ms = |key: &str| -> f64 {
        let ns: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("the workload printed no {key}: {text}"))
            .parse()
            .unwrap();
        ns / 1e6
    };
    (ms("CPU_NS="), ms("TASK_CLOCK_NS="))
}

/// Data rows summed per column (TASK_MS CPUS CSW MIGR PGFAULT).
fn sums(lines: &[String]) -> Vec<f64> {
    let mut s = vec![0.0; 5];
    let mut n = 0;
    for l in lines {
        let f: Vec<f64> = l.split_whitespace().map_while(|x| x.parse().ok()).collect();
        if f.len() == 5 {
            n += 1;
            for (a, v) in s.iter_mut().zip(f) {
                *a += v;
            }
        }
    }
    assert!(n > 0, "no rows: {lines:?}");
    s
}

#[test]
fn cgroup_counts_only_its_own_tasks() {
    if !root_or_skip("cgroup_counts_only_its_own_tasks") {
        return;
    }
    let cg = TestCgroup::new(&format!("pmcstat-test-{}", std::process::id()));
    let dir = cg.dir.to_string_lossy().into_owned();
    let mut r = spawn(BIN, &["-m", "sw", "--cgroup", &dir, "0.5"]);
    r.wait_for("TASK_MS", T);
    // The counters are enabled right after the header is written.
    std::thread::sleep(Duration::from_millis(300));
    let inside = start_workload(Some(&cg.procs()));
    let outside = start_workload(None);
    let (inside_cpu, inside_ms) = used_ms_of(inside);
    let (outside_cpu, outside_ms) = used_ms_of(outside);
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "counting cgroup /pmcstat-test-{}",
            std::process::id()
        )),
        "{err}"
    );
    let s = sums(&r.seen);
    let (task_ms, csw, pgfault) = (s[0], s[2], s[4]);
    eprintln!(
        "cgroup: {s:?}; task-clock inside {inside_ms:.1} ms, outside {outside_ms:.1} ms; \
         CPU time inside {inside_cpu:.1} ms, outside {outside_cpu:.1} ms"
    );
    let pages = PAGES as f64;
    // Every page the inside workload touched, plus the few of its own stack and output
    // after it joined; the outside one's as many again would double it.
    assert!(
        pgfault >= pages && pgfault < pages + 200.0,
        "PGFAULT {pgfault} (inside touched {PAGES} pages, outside as many): {:?}",
        r.seen
    );
    assert!(csw >= SLEEPS as f64, "CSW {csw}: {:?}", r.seen);
    // The inside workload's task-clock, not both workloads' (each >= 300 ms); the margin
    // is its start (joining to opening its counter) and its exit.
    assert!(
        (task_ms - inside_ms).abs() < 0.1 * inside_ms + 20.0,
        "TASK_MS {task_ms}, inside's task-clock {inside_ms:.1} ms, outside's \
         {outside_ms:.1} ms: {:?}",
        r.seen
    );
    assert!(task_ms < inside_ms + 0.5 * outside_ms, "{task_ms}");
}

#[test]
fn removed_cgroup_ends_the_run() {
    if !root_or_skip("removed_cgroup_ends_the_run") {
        return;
    }
    let cg = TestCgroup::new(&format!("pmcstat-gone-{}", std::process::id()));
    let dir = cg.dir.to_string_lossy().into_owned();
    let mut r = spawn(BIN, &["-m", "sw", "--cgroup", &dir, "0.2"]);
    r.wait_for("TASK_MS", T);
    std::fs::remove_dir(&cg.dir).unwrap();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "pmcstat: cgroup /pmcstat-gone-{} was removed",
            std::process::id()
        )),
        "{err}"
    );
    // An empty cgroup ran nothing: the last row is all zero, not missing.
    let last = r.seen.last().unwrap();
    assert_eq!(
        last.split_whitespace().collect::<Vec<_>>(),
        ["0.0", "0.00", "0", "0", "0"],
        "{:?}",
        r.seen
    );
}

#[test]
fn container_is_found_by_a_short_id() {
    if !root_or_skip("container_is_found_by_a_short_id") {
        return;
    }
    let id = format!("fe{:08x}{}", std::process::id(), "ab".repeat(27));
    assert_eq!(id.len(), 64);
    let cg = TestCgroup::new(&format!("docker-{id}.scope"));
    let (code, out, err) = run(BIN, &["-m", "sw", "--container", &id[..12], "0.2", "0.2"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "counting cgroup /docker-{id}.scope ({})",
            cg.dir.display()
        )),
        "{err}"
    );
    assert!(out.starts_with("TASK_MS"), "{out}");

    let (code, _, err) = run(BIN, &["-m", "sw", "--container", "0123cafe0123cafe"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("0123cafe0123cafe"), "{err}");
}

/// On this host perf_event is not mounted as a v1 hierarchy (it is attached to v2):
/// a v1 cgroup is refused with the fix; where it is mounted, its cgroups work.
#[test]
fn v1_cgroup_needs_the_perf_event_hierarchy() {
    if !root_or_skip("v1_cgroup_needs_the_perf_event_hierarchy") {
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let perf_v1 = mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.starts_with("cgroup ") && right.split(',').any(|o| o == "perf_event"))
            .then(|| left.split(' ').nth(4).unwrap().to_string())
    });
    let pids = mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.starts_with("cgroup ") && right.ends_with(",pids"))
            .then(|| left.split(' ').nth(4).unwrap().to_string())
    });
    if let Some(pids) = pids {
        let (code, _, err) = run(BIN, &["-m", "sw", "--cgroup", &pids, "0.2", "0.2"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("is in a v1 hierarchy without the perf_event controller"),
            "{err}"
        );
        if perf_v1.is_none() {
            assert!(
                err.contains("mount -t cgroup -o perf_event none /sys/fs/cgroup/perf_event"),
                "{err}"
            );
        }
    }
    if let Some(dir) = perf_v1 {
        let (code, _, err) = run(BIN, &["-m", "sw", "--cgroup", &dir, "0.2", "0.2"]);
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn cgroup_usage_and_bad_paths() {
    let (code, _, err) = run(BIN, &["--cgroup", "/x", "-p", "1"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(BIN, &["--cgroup", "/x", "--container", "abcd"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(BIN, &["--container", "abcd", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(BIN, &["-m", "sw", "--cgroup", "/no/such/cgroup-pmcstat"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/no/such/cgroup-pmcstat is not a cgroup"),
        "{err}"
    );
}
