//! The perf `msr` PMU (`arch/x86/events/msr.c`): free-running MSR counters such as
//! `aperf`, `mperf` and `tsc` read through `perf_event_open`, without the msr driver.
//!
//! Many VMs and locked-down kernels have no `/dev/cpu/N/msr` but do have this PMU; which
//! events it lists depends on what the CPU (or hypervisor) exposes. Deliberately small
//! and self-contained: one counting event per CPU, read with `read(2)`.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::counters::{open_raw, Target};
use std::path::{Path, PathBuf};

/// The PMU as sysfs describes it.
#[derive(Debug, Clone)]
pub struct MsrPmu {
    dir: PathBuf,
    pmu_type: u32,
    events: Vec<(String, u64)>,
}

/// Why the PMU or an event could not be used.
#[derive(Debug)]
pub enum PerfMsrError {
    /// No `bus/event_source/devices/msr` in sysfs.
    NoPmu(PathBuf),
    /// The PMU lacks an event (the CPU or hypervisor does not expose it).
    NoEvent {
        /// The event asked for.
        event: String,
        /// The events it does have.
        have: Vec<String>,
    },
    /// perf_event_open refused (EACCES/EPERM).
    Permission {
        /// The event.
        event: String,
        /// The errno text.
        source: io::Error,
    },
    /// Another error.
    Other(String),
}

impl fmt::Display for PerfMsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PerfMsrError::NoPmu(p) => write!(f, "no perf msr PMU ({} is missing)", p.display()),
            PerfMsrError::NoEvent { event, have } => write!(
                f,
                "the perf msr PMU has no {event} event (it has: {})",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
            PerfMsrError::Permission { event, source } => write!(
                f,
                "perf_event_open of msr/{event}/: {source} (CPU-wide events need root, CAP_PERFMON or kernel.perf_event_paranoid <= 0)"
            ),
            PerfMsrError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for PerfMsrError {}

impl MsrPmu {
    /// Reads `bus/event_source/devices/msr` under a sysfs root.
    pub fn open(sysfs_root: &Path) -> Result<MsrPmu, PerfMsrError> {
        let dir = sysfs_root.join("bus/event_source/devices/msr");
        let ty = std::fs::read_to_string(dir.join("type"))
            .map_err(|_| PerfMsrError::NoPmu(dir.clone()))?;
        let pmu_type: u32 = ty
            .trim()
            .parse()
            .map_err(|_| PerfMsrError::Other(format!("{}/type: {:?}", dir.display(), ty.trim())))?;
        let mut events = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("events")) {
            for e in rd.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                // Skip `.scale`/`.unit` companions.
                if name.contains('.') {
                    continue;
                }
                if let Some(cfg) = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|s| parse_event_config(&s))
                {
                    events.push((name, cfg));
                }
            }
        }
        events.sort();
        Ok(MsrPmu {
            dir,
            pmu_type,
            events,
        })
    }

    /// The PMU's sysfs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of the events it lists.
    pub fn event_names(&self) -> Vec<String> {
        self.events.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The config value of an event.
    pub fn config(&self, event: &str) -> Option<u64> {
        self.events
            .iter()
            .find(|(n, _)| n == event)
            .map(|(_, c)| *c)
    }

    /// Opens a counting event on one CPU (all tasks).
    pub fn counter(&self, event: &str, cpu: u32) -> Result<Counter, PerfMsrError> {
        let config = self.config(event).ok_or_else(|| PerfMsrError::NoEvent {
            event: event.to_string(),
            have: self.event_names(),
        })?;
        let mut attr = perf_event_open_sys::bindings::perf_event_attr {
            type_: self.pmu_type,
            size: std::mem::size_of::<perf_event_open_sys::bindings::perf_event_attr>() as u32,
            config,
            ..Default::default()
        };
        let fd = open_raw(&mut attr, Target::Cpu(cpu), -1).map_err(|errno| {
            let e = io::Error::from_raw_os_error(errno);
            match errno {
                libc::EACCES | libc::EPERM => PerfMsrError::Permission {
                    event: event.to_string(),
                    source: e,
                },
                _ => PerfMsrError::Other(format!(
                    "perf_event_open of msr/{event}/ on CPU {cpu}: {e}"
                )),
            }
        })?;
        Ok(Counter { fd, cpu })
    }
}

/// Parses `event=0x01` (the only term the msr PMU's events use).
pub fn parse_event_config(s: &str) -> Option<u64> {
    s.trim().split(',').find_map(|t| {
        let v = t.trim().strip_prefix("event=")?;
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

/// One open counting event.
#[derive(Debug)]
pub struct Counter {
    fd: OwnedFd,
    cpu: u32,
}

impl Counter {
    /// The CPU it counts on.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// The count since the event was opened.
    pub fn read(&self) -> io::Result<u64> {
        let mut v = 0u64;
        // SAFETY: reading 8 bytes into a u64 we own from a descriptor we own.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            )
        };
        match n {
            8 => Ok(v),
            n if n < 0 => Err(io::Error::last_os_error()),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short read from a perf event",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn event_configs() {
        assert_eq!(parse_event_config("event=0x01\n"), Some(1));
        assert_eq!(parse_event_config("event=0x00"), Some(0));
        assert_eq!(parse_event_config("event=7"), Some(7));
        assert_eq!(parse_event_config("umask=1"), None);
    }

    #[test]
    fn fake_pmu_lists_events() {
        let d = std::env::temp_dir().join(format!("ptrs-perfmsr-{}", std::process::id()));
        let p = d.join("bus/event_source/devices/msr/events");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(d.join("bus/event_source/devices/msr/type"), "9\n").unwrap();
        std::fs::write(p.join("tsc"), "event=0x00\n").unwrap();
        std::fs::write(p.join("aperf"), "event=0x01\n").unwrap();
        std::fs::write(p.join("aperf.unit"), "cycles\n").unwrap();
        let pmu = MsrPmu::open(&d).unwrap();
        assert_eq!(pmu.event_names(), vec!["aperf", "tsc"]);
        assert_eq!(pmu.config("aperf"), Some(1));
        let e = pmu.counter("mperf", 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the perf msr PMU has no mperf event (it has: aperf, tsc)"
        );
        assert!(matches!(
            MsrPmu::open(&d.join("nope")),
            Err(PerfMsrError::NoPmu(_))
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Live: where this kernel has the msr PMU with a `tsc` event and we may open CPU-wide
    /// events, the counter opens and advances. Skips (with a note) elsewhere.
    #[test]
    fn live_tsc_counter_advances() {
        let pmu = match MsrPmu::open(Path::new("/sys")) {
            Ok(p) if p.config("tsc").is_some() => p,
            _ => {
                eprintln!("SKIPPED live_tsc_counter_advances: no msr PMU tsc event here");
                return;
            }
        };
        let c = match pmu.counter("tsc", 0) {
            Ok(c) => c,
            Err(PerfMsrError::Permission { .. })
                if !perf_tools_core::privilege::has_capability(
                    perf_tools_core::privilege::Capability::Perfmon,
                ) =>
            {
                eprintln!("SKIPPED live_tsc_counter_advances: not privileged");
                return;
            }
            Err(e) => panic!("opening msr/tsc/ on CPU 0: {e}"),
        };
        let a = c.read().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = c.read().unwrap();
        assert!(b > a, "tsc did not advance: {a} -> {b}");
    }
}
