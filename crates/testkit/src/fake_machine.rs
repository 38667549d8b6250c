//! Fake machines (MSR, CPUID, hwmon trees under a temporary root) for the MSR tools' tests.
//!
//! A fake machine is a copy of a fixture directory of `tests/fixtures/msr` (hand-made
//! register values, see its README) in which
//! [`build_machine`](perf_tools_cpu::msr::fake::build_machine) has turned the
//! `dev-cpu.spec` into sparse `dev/cpu/N/msr` files and a CPUID table. The tools read it
//! through their hidden `--root DIR` option, which points the core's seams
//! ([`Machine::fake`](perf_tools_cpu::msr::Machine::fake)) at `DIR/dev/cpu`, `DIR/sys`
//! and `DIR/proc`. Tests may change the copy while a tool runs (advance APERF/MPERF,
//! take a CPU offline); it is removed on drop.

use crate::Running;
use perf_tools_cpu::msr::fake;
use std::io;
use std::path::{Path, PathBuf};

/// The directory holding the fixtures (`tests/fixtures/msr` of the workspace).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/msr")
}

/// A fake machine built from the fixture `name` (e.g. `intel-ivb-ep`) of
/// [`fixtures_dir`]. Panics if it cannot be built.
pub fn fixture(name: &str) -> FakeMachine {
    FakeMachine::from_fixture(&fixtures_dir().join(name))
        .unwrap_or_else(|e| panic!("building fake machine {name}: {e}"))
}

/// A fake machine in a temporary directory, removed on drop: what the tools'
/// integration tests run against (`--root`).
#[derive(Debug)]
pub struct FakeMachine {
    root: PathBuf,
}

impl FakeMachine {
    /// Builds a copy of the fixture directory `src` (see
    /// [`build_machine`](fake::build_machine)) under the system temporary directory.
    pub fn from_fixture(src: &Path) -> io::Result<FakeMachine> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let root = std::env::temp_dir().join(format!(
            "ptrs-machine-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        fake::build_machine(src, &root)?;
        Ok(FakeMachine { root })
    }

    /// The machine root (the value for `--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The machine root as a string, for command lines.
    pub fn root_str(&self) -> String {
        self.root
            .to_str()
            .expect("temporary path is UTF-8")
            .to_string()
    }

    /// Sets a register of one CPU (its `dev/cpu/N/msr` file must exist).
    pub fn set_msr(&self, cpu: u32, reg: u32, value: u64) -> io::Result<()> {
        fake::set_msr(&self.root.join("dev/cpu"), cpu, u64::from(reg), value)
    }

    /// Makes register `reg` and every higher one of one CPU fault ("does not
    /// implement"), by ending its `dev/cpu/N/msr` file there.
    pub fn limit_msr(&self, cpu: u32, reg: u32) -> io::Result<()> {
        fake::set_limit(&self.root.join("dev/cpu"), cpu, u64::from(reg))
    }

    /// Writes a file below the root (creating directories).
    pub fn write(&self, rel: &str, content: &str) -> io::Result<()> {
        let p = self.root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, content)
    }

    /// Removes a file or directory below the root.
    pub fn remove(&self, rel: &str) -> io::Result<()> {
        let p = self.root.join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        }
    }

    /// `bin --root ROOT args`: the tool's arguments with this machine's root first.
    fn args<'a>(root: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["--root", root];
        a.extend_from_slice(args);
        a
    }

    /// Runs `bin --root ROOT args` to completion (see [`crate::run`]): returns
    /// (exit code, stdout, stderr).
    pub fn run(&self, bin: &str, args: &[&str]) -> (i32, String, String) {
        let root = self.root_str();
        crate::run(bin, &Self::args(&root, args))
    }

    /// Starts `bin --root ROOT args` with its output collected (see [`crate::spawn`]).
    pub fn spawn(&self, bin: &str, args: &[&str]) -> Running {
        let root = self.root_str();
        crate::spawn(bin, &Self::args(&root, args))
    }
}

impl Drop for FakeMachine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
