//! Process names for events that carry none (syscall tracepoints, `raw_syscalls`): the
//! kernel's own pid -> comm cache (`saved_cmdlines`, filled while an instance with the
//! `record-cmd` option records events, as the kernel's text output uses it), then
//! `/proc/TID/comm`. Each thread is looked up once, when first seen.

use std::collections::HashMap;

use crate::tracefs::Tracefs;

/// The name shown for a thread whose name could not be found (as the kernel's text
/// output shows it).
pub const UNKNOWN_COMM: &[u8] = b"<...>";

/// Parses `saved_cmdlines` (`PID COMM` per line; the name may contain spaces).
pub fn parse_saved_cmdlines(text: &str) -> HashMap<u32, Vec<u8>> {
    text.lines()
        .filter_map(|l| {
            let (pid, comm) = l.split_once(' ')?;
            Some((pid.parse().ok()?, comm.as_bytes().to_vec()))
        })
        .collect()
}

/// Parses `saved_tgids` (`TID TGID` per line).
pub fn parse_saved_tgids(text: &str) -> HashMap<u32, u32> {
    text.lines().filter_map(saved_tgid_line).collect()
}

/// One `saved_tgids` line as `(TID, TGID)`; `None` for a malformed line or TGID 0 (no
/// process recorded).
fn saved_tgid_line(l: &str) -> Option<(u32, u32)> {
    let (tid, tgid) = l.split_once(' ')?;
    let tgid = tgid.trim().parse().ok().filter(|&g| g != 0)?;
    Some((tid.parse().ok()?, tgid))
}

/// The process of thread `tid` as the kernel's `saved_tgids` has it (recorded while an
/// instance with the `record-tgid` option traces), for a thread gone from `/proc`.
pub fn saved_tgid(tracefs: &Tracefs, tid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(tracefs.path("saved_tgids")).ok()?;
    text.lines()
        .filter_map(saved_tgid_line)
        .find_map(|(t, g)| (t == tid).then_some(g))
}

/// Names (and processes) of threads, looked up once each.
#[derive(Debug)]
pub struct Comms {
    tracefs: Tracefs,
    names: HashMap<u32, Vec<u8>>,
    tgids: HashMap<u32, u32>,
    /// Threads whose name came from neither source.
    pub unknown: u64,
}

impl Comms {
    /// An empty cache reading `saved_cmdlines` of `tracefs`.
    pub fn new(tracefs: &Tracefs) -> Comms {
        Comms {
            tracefs: tracefs.clone(),
            names: HashMap::new(),
            tgids: HashMap::new(),
            unknown: 0,
        }
    }

    /// The name of thread `tid`, if already known.
    pub fn get(&self, tid: u32) -> Option<&[u8]> {
        self.names.get(&tid).map(Vec::as_slice)
    }

    /// The process (thread group) of thread `tid`, if known.
    pub fn tgid(&self, tid: u32) -> Option<u32> {
        self.tgids.get(&tid).copied()
    }

    /// Looks up the process of each thread of `tids` not yet known: `/proc/TID/status`,
    /// then the kernel's `saved_tgids` (filled while an instance with the `record-tgid`
    /// option records events).
    pub fn resolve_tgids(&mut self, tids: impl IntoIterator<Item = u32>) {
        let mut saved: Option<HashMap<u32, u32>> = None;
        for tid in tids {
            if self.tgids.contains_key(&tid) {
                continue;
            }
            let from_proc = std::fs::read_to_string(format!("/proc/{tid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Tgid:"))
                        .and_then(|v| v.trim().parse().ok())
                });
            let tgid = from_proc.or_else(|| {
                saved
                    .get_or_insert_with(|| {
                        std::fs::read_to_string(self.tracefs.path("saved_tgids"))
                            .map(|t| parse_saved_tgids(&t))
                            .unwrap_or_default()
                    })
                    .get(&tid)
                    .copied()
            });
            if let Some(t) = tgid {
                self.tgids.insert(tid, t);
            }
        }
    }

    /// Looks up the threads of `tids` not yet known: the kernel's cache first (the name
    /// the thread had when its events were recorded), then `/proc/TID/comm`, else
    /// [`UNKNOWN_COMM`]. Reads `saved_cmdlines` at most once per call.
    pub fn resolve(&mut self, tids: impl IntoIterator<Item = u32>) {
        let mut saved: Option<HashMap<u32, Vec<u8>>> = None;
        for tid in tids {
            if self.names.contains_key(&tid) {
                continue;
            }
            let cache = saved.get_or_insert_with(|| {
                std::fs::read_to_string(self.tracefs.path("saved_cmdlines"))
                    .map(|t| parse_saved_cmdlines(&t))
                    .unwrap_or_default()
            });
            let name = cache
                .get(&tid)
                .filter(|n| n.as_slice() != UNKNOWN_COMM)
                .cloned()
                .or_else(|| {
                    let mut n = std::fs::read(format!("/proc/{tid}/comm")).ok()?;
                    while n.last() == Some(&b'\n') {
                        n.pop();
                    }
                    Some(n)
                });
            let name = name.unwrap_or_else(|| {
                self.unknown += 1;
                UNKNOWN_COMM.to_vec()
            });
            self.names.insert(tid, name);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_names_with_spaces() {
        let m = parse_saved_cmdlines("7053 zzkilltest\n12 kworker/0:1 x\nbad\n");
        assert_eq!(m[&7053], b"zzkilltest");
        assert_eq!(m[&12], b"kworker/0:1 x");
        assert_eq!(m.len(), 2);
        let t = parse_saved_tgids("19911 19909\n5 0\nx y\n");
        assert_eq!(t[&19911], 19909);
        assert_eq!(t.len(), 1);
    }
}
