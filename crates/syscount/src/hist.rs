//! Counting in the kernel: a hist trigger on `raw_syscalls:sys_enter` keyed by the
//! syscall number (`id.syscall`, which the kernel prints with its own name for the
//! number), in the run's private instance, where the kernel has hist triggers
//! (CONFIG_HIST_TRIGGERS). No event goes through the ring buffer: the kernel counts,
//! syscount reads the table once at the end. Used for `-c` (syscall names only) of the
//! whole system or of a command; other layouts and `-p` count in user space.

use anyhow::{bail, Result};
use std::collections::HashMap;

use perf_tools_ftrace::instance::Instance;

/// Syscall number -> (the kernel's name for it, count).
pub type Counts = HashMap<i64, (Option<String>, u64)>;

/// The trigger file of the counted event, relative to the instance.
pub const TRIGGER: &str = "events/raw_syscalls/sys_enter/trigger";
/// Its histogram, relative to the instance.
pub const HIST: &str = "events/raw_syscalls/sys_enter/hist";

/// True if the kernel offers hist triggers on the event in this instance.
pub fn available(inst: &Instance) -> bool {
    inst.dir().join(HIST).exists()
}

/// The trigger's definition; `filter` (e.g. `common_pid != 42`) is applied in the kernel.
/// The table has room for 2048 syscall numbers (the kernel rounds it to a power of two).
pub fn definition(filter: Option<&str>) -> String {
    let mut d = String::from("hist:keys=id.syscall:vals=hitcount:size=2048");
    if let Some(f) = filter {
        d.push_str(" if ");
        d.push_str(f);
    }
    d
}

/// A hist trigger set in an instance; removed by [`Trigger::remove`] (and with the
/// instance on every other path: removing an instance removes its triggers).
#[derive(Debug)]
pub struct Trigger {
    def: String,
}

impl Trigger {
    /// Sets the trigger; the kernel's reason (from its `error_log`) if it refuses.
    pub fn set(inst: &Instance, filter: Option<&str>) -> Result<Trigger> {
        let def = definition(filter);
        if let Err(e) = inst.write(TRIGGER, &def) {
            let log = inst.read("error_log").unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            bail!("{e:#} {last}");
        }
        let t = Trigger { def };
        if !t.present(inst) {
            bail!("the kernel took the hist trigger but does not list it in {TRIGGER}");
        }
        Ok(t)
    }

    /// True if the instance still has this trigger (another process may remove it).
    pub fn present(&self, inst: &Instance) -> bool {
        inst.read(TRIGGER)
            .map(|t| {
                t.lines()
                    .any(|l| l.starts_with("hist:keys=id.syscall:vals=hitcount"))
            })
            .unwrap_or(false)
    }

    /// Reads the counts: syscall number -> (kernel's name, count), and the number of
    /// events the table dropped (no room).
    pub fn read(&self, inst: &Instance) -> Result<(Counts, u64)> {
        Ok(parse(&inst.read(HIST)?))
    }

    /// Removes the trigger.
    pub fn remove(self, inst: &Instance) -> Result<()> {
        inst.write(TRIGGER, &format!("!{}", self.def))
    }
}

/// Parses a hist file keyed by `id.syscall`: lines such as
/// `{ id: sys_getppid                    [110] } hitcount:       4321` and the totals'
/// `Dropped: N`.
pub fn parse(text: &str) -> (Counts, u64) {
    let mut counts = HashMap::new();
    let mut dropped = 0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(d) = line.strip_prefix("Dropped:") {
            dropped = d.trim().parse().unwrap_or(0);
            continue;
        }
        let Some(rest) = line.strip_prefix("{ id:") else {
            continue;
        };
        let Some((key, vals)) = rest.split_once('}') else {
            continue;
        };
        let (Some(open), Some(close)) = (key.rfind('['), key.rfind(']')) else {
            continue;
        };
        // The number is printed unsigned: -1 (no syscall) is 2^64-1.
        let Ok(nr) = key[open + 1..close].trim().parse::<u64>() else {
            continue;
        };
        let name = key[..open].trim();
        let name = match name.strip_prefix("sys_") {
            Some(n) if !n.is_empty() => Some(n.to_string()),
            _ => None,
        };
        let Some(n) = vals
            .split_whitespace()
            .skip_while(|w| *w != "hitcount:")
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let e = counts.entry(nr as i64).or_insert((name, 0));
        e.1 += n;
    }
    (counts, dropped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_kernels_table() {
        let text = "# event histogram\n#\n# trigger info: hist:keys=id.syscall:vals=hitcount:sort=hitcount:size=2048 if common_pid != 42 [active]\n#\n\n{ id: sys_getppid                    [110] } hitcount:       4321\n{ id: unknown_syscall               [335] } hitcount:          2\n{ id: sys_read                      [  0] } hitcount:         17\n\nTotals:\n    Hits: 4340\n    Entries: 3\n    Dropped: 5\n";
        let (c, dropped) = parse(text);
        assert_eq!(c[&110], (Some("getppid".to_string()), 4321));
        assert_eq!(c[&335], (None, 2));
        assert_eq!(c[&0], (Some("read".to_string()), 17));
        assert_eq!(c.len(), 3);
        assert_eq!(dropped, 5);
    }

    #[test]
    fn definitions() {
        assert_eq!(
            definition(Some("common_pid != 7")),
            "hist:keys=id.syscall:vals=hitcount:size=2048 if common_pid != 7"
        );
        assert_eq!(
            definition(None),
            "hist:keys=id.syscall:vals=hitcount:size=2048"
        );
    }
}
