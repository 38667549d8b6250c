//! Private tracefs instances: one per tool run, removed whatever ends the run.
//!
//! Every tool does all of its event enabling, filtering, buffer sizing and reading in
//! `instances/<tool>-<pid>`, so several tools (even two copies of one tool) run at once
//! and the top-level instance, `current_tracer` and the user's own settings are never
//! touched. Removing the directory frees the buffers and every event setting in it.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::format::EventFormat;
use crate::ringbuf::PageLayout;
use crate::tracefs::Tracefs;

/// A tracefs instance owned by this process. Dropping it removes it.
#[derive(Debug)]
pub struct Instance {
    tracefs: Tracefs,
    name: String,
    dir: PathBuf,
    /// `tracing_on`, open from creation on: turning recording off and removing the
    /// instance need no new descriptor (see [`perf_tools_core::fdreserve`]).
    tracing_on: Option<File>,
    /// Settings this run made (file relative to the instance, what it read back), so
    /// [`Instance::state_changes`] can tell when another process changed them.
    expected: std::cell::RefCell<Vec<(String, String)>>,
    removed: bool,
    /// The cleanup of last resort, should the process abort.
    last_resort: crate::lastresort::Token,
}

/// Cumulative loss counters of an instance, summed over CPUs (from `per_cpu/cpuN/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossStats {
    /// Events overwritten before they were read (`overrun`).
    pub overrun: u64,
    /// Events lost while a commit was interrupted (`commit overrun`).
    pub commit_overrun: u64,
    /// Events refused because the buffer was full (`dropped events`).
    pub dropped: u64,
}

impl LossStats {
    /// Total events lost.
    pub fn total(&self) -> u64 {
        self.overrun + self.commit_overrun + self.dropped
    }
}

/// The instance name a tool run uses: `<tool>-<pid>`.
pub fn instance_name(tool: &str, pid: u32) -> String {
    format!("{tool}-{pid}")
}

impl Instance {
    /// Creates `instances/<tool>-<pid>`. Tools start with
    /// [`cleanup::start_instance`](crate::cleanup::start_instance), which first removes
    /// what killed runs left behind.
    pub fn create(tracefs: &Tracefs, tool: &str) -> Result<Instance> {
        perf_tools_core::fdreserve::reserve()?;
        let name = instance_name(tool, std::process::id());
        let dir = tracefs.path("instances").join(&name);
        if !tracefs.path("instances").is_dir() {
            bail!(
                "{} has no instances/ directory: this kernel is too old for private trace instances (needs Linux 3.16+)",
                tracefs.root().display()
            );
        }
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Only possible if a previous process with our pid left it: take it over.
                let _ = fs::remove_dir(&dir);
                fs::create_dir(&dir)
                    .with_context(|| format!("creating trace instance {}", dir.display()))?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("creating trace instance {}", dir.display()))
            }
        }
        let last_resort = crate::lastresort::arm(&dir);
        let mut inst = Instance {
            tracefs: tracefs.clone(),
            name,
            dir,
            tracing_on: None,
            expected: std::cell::RefCell::new(Vec::new()),
            removed: false,
            last_resort,
        };
        let path = inst.dir.join("tracing_on");
        inst.tracing_on = Some(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?,
        );
        Ok(inst)
    }

    /// The instance's name (`<tool>-<pid>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tracefs this instance lives in.
    pub fn tracefs(&self) -> &Tracefs {
        &self.tracefs
    }

    /// Writes `value` to a file of the instance.
    pub fn write(&self, rel: impl AsRef<Path>, value: &str) -> Result<()> {
        let path = self.dir.join(rel);
        fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }

    /// Limits the instance's events to every thread of process `pid` and the threads and
    /// children they create later (`options/event-fork`, then `set_event_pid`). A thread
    /// created while the list was being read and written is not followed by the kernel,
    /// so the list is read again after each write until it holds every thread. Returns
    /// the threads; none if the process is gone.
    pub fn follow_process(&self, pid: u32) -> Result<Vec<u32>> {
        let procfs = perf_tools_core::target::Procfs::default();
        self.write("options/event-fork", "1")?;
        let mut tids = procfs.threads_of(pid);
        for _ in 0..100 {
            if tids.is_empty() {
                break;
            }
            let list: Vec<String> = tids.iter().map(u32::to_string).collect();
            self.write("set_event_pid", &list.join(" "))?;
            let now = procfs.threads_of(pid);
            if now.iter().all(|t| tids.contains(t)) {
                break;
            }
            tids.extend(
                now.into_iter()
                    .filter(|t| !tids.contains(t))
                    .collect::<Vec<_>>(),
            );
        }
        Ok(tids)
    }

    /// Writes `value` to a setting of the instance unless it already reads so; returns
    /// true if it wrote. Some settings cost the kernel an RCU grace period or more per
    /// write (`trace_clock`, `buffer_subbuf_size_kb`, `buffer_size_kb`: milliseconds each),
    /// so a value already in place is not written again.
    pub fn ensure(&self, rel: impl AsRef<Path>, value: &str) -> Result<bool> {
        let rel = rel.as_ref();
        if self.read(rel).is_ok_and(|now| setting_reads(&now, value)) {
            return Ok(false);
        }
        self.write(rel, value)?;
        Ok(true)
    }

    /// Reads a file of the instance.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<String> {
        let path = self.dir.join(rel);
        crate::tracefs::read_file(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// Reads and parses `events/<system>/<event>/format`.
    pub fn event_format(&self, system: &str, event: &str) -> Result<EventFormat> {
        let rel = format!("events/{system}/{event}/format");
        let text = self
            .read(&rel)
            .map_err(|e| anyhow!("{e:#}: this kernel has no {system}:{event} tracepoint"))?;
        EventFormat::parse(&text).with_context(|| format!("parsing {rel}"))
    }

    /// Sets an event filter in the kernel. On rejection the error carries the kernel's
    /// explanation from the instance's `error_log` (or the filter file).
    pub fn set_filter(&self, system: &str, event: &str, filter: &str) -> Result<()> {
        let rel = format!("events/{system}/{event}/filter");
        if let Err(e) = fs::write(self.dir.join(&rel), filter) {
            let reason = self.filter_error(&rel);
            bail!("the kernel rejected the filter '{filter}' for {system}:{event} ({e}){reason}");
        }
        self.remember(&rel);
        Ok(())
    }

    /// Records what `rel` reads now as this run's setting of it, and returns it.
    fn remember(&self, rel: &str) -> String {
        let now = self.read(rel).unwrap_or_default();
        let mut expected = self.expected.borrow_mut();
        match expected.iter_mut().find(|(r, _)| r == rel) {
            Some(e) => e.1 = now.clone(),
            None => expected.push((rel.to_string(), now.clone())),
        }
        now
    }

    /// The settings of this run that another process changed since the run made them
    /// (`tracing_on` turned off while recording, an event disabled, a filter replaced),
    /// each as `file: "expected" -> "now"`. Empty when all is as the run left it.
    pub fn state_changes(&self, recording: bool) -> Vec<String> {
        let mut changes = Vec::new();
        if recording {
            match self.tracing_on_value() {
                Ok(v) if v == "1" => {}
                Ok(v) => changes.push(format!("tracing_on: \"1\" -> {v:?}")),
                Err(e) => changes.push(format!("tracing_on: {e}")),
            }
        }
        for (rel, want) in self.expected.borrow().iter() {
            match self.read(rel) {
                Ok(now) if now.trim() == want.trim() => {}
                Ok(now) => changes.push(format!("{rel}: {:?} -> {:?}", want.trim(), now.trim())),
                Err(_) => changes.push(format!("{rel}: gone")),
            }
        }
        changes
    }

    fn filter_error(&self, rel: &str) -> String {
        let from_log = fs::read_to_string(self.dir.join("error_log"))
            .ok()
            .and_then(|log| {
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.iter().rposition(|l| l.contains("error:"))?;
                Some(
                    lines[start..]
                        .iter()
                        .map(|l| l.trim_end())
                        .collect::<Vec<_>>()
                        .join("\n  "),
                )
            });
        let text = from_log.or_else(|| {
            let t = fs::read_to_string(self.dir.join(rel)).ok()?;
            let t = t.trim();
            (!t.is_empty() && t != "none").then(|| t.replace('\n', "\n  "))
        });
        match text {
            Some(t) => format!(":\n  {t}"),
            None => String::new(),
        }
    }

    /// Enables `system:event` in this instance.
    pub fn enable_event(&self, system: &str, event: &str) -> Result<()> {
        let rel = format!("events/{system}/{event}/enable");
        self.write(&rel, "1")
            .with_context(|| format!("enabling the {system}:{event} tracepoint"))?;
        let now = self.remember(&rel);
        // Verify: a write the kernel accepted without enabling the event (soft-disabled
        // by a trigger, or undone by another process at once) would trace nothing.
        if !enable_reads_on(&now) {
            bail!(
                "the kernel did not enable the {system}:{event} tracepoint in {}: its enable file reads {:?} after writing 1 (another tracing user may be changing this instance, or a trigger keeps the event soft-disabled)",
                self.dir.display(),
                now.trim()
            );
        }
        Ok(())
    }

    /// Turns recording on or off and verifies the kernel took it. Turning it on is the
    /// last step of a tool's setup, so it is also the fault-injection point of the
    /// cleanup tests ([`fault_point`](perf_tools_core::fault::fault_point), `PT_FAULT=panic`).
    pub fn set_tracing_on(&self, on: bool) -> Result<()> {
        let want = if on { "1" } else { "0" };
        let got = self.write_tracing_on(want)?;
        if got != want {
            bail!(
                "the kernel refused to set tracing_on to {want} in {} (it reads {got}); is tracing disabled on the kernel command line (traceoff_on_warning, ftrace_dump_on_oops) or by a kernel warning?",
                self.dir.display(),
            );
        }
        if on {
            perf_tools_core::fault::fault_point();
        }
        Ok(())
    }

    /// Writes `want` to `tracing_on` through the descriptor held since creation and
    /// returns what the file reads afterwards.
    fn write_tracing_on(&self, want: &str) -> Result<String> {
        let path = || self.dir.join("tracing_on");
        let Some(mut f) = self.tracing_on.as_ref() else {
            bail!("{} is not open", path().display());
        };
        f.write_all(want.as_bytes())
            .with_context(|| format!("writing {want:?} to {}", path().display()))?;
        self.tracing_on_value()
            .with_context(|| format!("reading {}", path().display()))
    }

    /// What the instance's `tracing_on` reads now ("1" or "0").
    pub fn tracing_on_value(&self) -> std::io::Result<String> {
        let mut buf = [0u8; 16];
        let n = match self.tracing_on.as_ref() {
            Some(f) => f.read_at(&mut buf, 0)?,
            None => return Err(ErrorKind::NotFound.into()),
        };
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    }

    /// Page geometry of the ring buffer, from `events/header_page`.
    pub fn page_layout(&self) -> Result<PageLayout> {
        // The instance's own header_page reflects its sub-buffer size (6.8+); kernels
        // without one in instances use the global geometry.
        let own = self.dir.join("events/header_page");
        let path = if own.exists() {
            own
        } else {
            self.tracefs.path("events/header_page")
        };
        let text = crate::tracefs::read_file(&path).context("reading events/header_page")?;
        PageLayout::parse(&text).map_err(|e| anyhow!("events/header_page: {e}"))
    }

    /// The CPUs that have a buffer in this instance, in numeric order.
    pub fn cpus(&self) -> Result<Vec<u32>> {
        let mut cpus: Vec<u32> = fs::read_dir(self.dir.join("per_cpu"))
            .with_context(|| format!("listing {}/per_cpu", self.dir.display()))?
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix("cpu")?
                    .parse()
                    .ok()
            })
            .collect();
        cpus.sort_unstable();
        Ok(cpus)
    }

    /// Sums the loss counters of every CPU buffer.
    pub fn loss_stats(&self) -> LossStats {
        let mut s = LossStats::default();
        for cpu in self.cpus().unwrap_or_default() {
            let Ok(text) = fs::read_to_string(self.dir.join(format!("per_cpu/cpu{cpu}/stats")))
            else {
                continue;
            };
            let p = parse_stats(&text);
            s.overrun += p.overrun;
            s.commit_overrun += p.commit_overrun;
            s.dropped += p.dropped;
        }
        s
    }

    /// Removes the instance now, reporting failure. Dropping does the same silently.
    pub fn remove(mut self) -> Result<()> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        perf_tools_core::fdreserve::release();
        crate::lastresort::disarm(&mut self.last_resort);
        let _ = self.write_tracing_on("0");
        let _ = fs::write(self.dir.join("events/enable"), "0");
        // The kernel refuses to remove an instance while one of its files is open.
        self.tracing_on = None;
        remove_instance_dir(&self.dir)
    }
}

/// True if `text`, read from a setting, says it is set to `value`: the selected word of
/// a list (`local [mono] uptime` for `trace_clock`), or the whole trimmed text.
fn setting_reads(text: &str, value: &str) -> bool {
    let text = text.trim();
    if text.contains('[') {
        return text
            .split_whitespace()
            .any(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')) == Some(value));
    }
    text == value.trim()
}

/// True if the text of an event's `enable` file says it records: `1`, or `1*` (enabled
/// with a trigger) — not `0`, `0*` (soft-disabled) or `X` (mixed).
fn enable_reads_on(text: &str) -> bool {
    matches!(text.trim(), "1" | "1*")
}

/// Removes an instance directory, retrying while the kernel reports it busy (a reader
/// that is just closing its files).
pub fn remove_instance_dir(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "removing trace instance {} (remove it with: rmdir {})",
                        dir.display(),
                        dir.display()
                    )
                })
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Err(e) = self.remove_inner() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// Parses a `per_cpu/cpuN/stats` file.
pub fn parse_stats(text: &str) -> LossStats {
    let mut s = LossStats::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v: u64 = v.trim().parse().unwrap_or(0);
        match k.trim() {
            "overrun" => s.overrun = v,
            "commit overrun" => s.commit_overrun = v,
            "dropped events" => s.dropped = v,
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_already_in_place_are_recognised() {
        use super::setting_reads;
        assert!(setting_reads(
            "local global counter uptime perf [mono] mono_raw boot\n",
            "mono"
        ));
        assert!(!setting_reads(
            "[local] global counter uptime perf mono mono_raw boot\n",
            "mono"
        ));
        assert!(setting_reads("4096\n", "4096"));
        assert!(!setting_reads("1408\n", "4096"));
        // The top level before its buffer is expanded: not the size asked for.
        assert!(!setting_reads("7 (expanded: 1408)\n", "1408"));
        assert!(!setting_reads("", "64"));
    }

    #[test]
    fn enable_file_values() {
        for on in ["1\n", "1*\n"] {
            assert!(super::enable_reads_on(on), "{on:?}");
        }
        for off in ["0\n", "0*\n", "X\n", ""] {
            assert!(!super::enable_reads_on(off), "{off:?}");
        }
    }

    use super::*;

    #[test]
    fn parses_real_stats_file() {
        let t = "entries: 0\noverrun: 12\ncommit overrun: 1\nbytes: 0\noldest event ts:     0.000000\nnow ts:   586.944452\ndropped events: 3\nread events: 0\n";
        let s = parse_stats(t);
        assert_eq!(
            s,
            LossStats {
                overrun: 12,
                commit_overrun: 1,
                dropped: 3
            }
        );
        assert_eq!(s.total(), 16);
    }
}
