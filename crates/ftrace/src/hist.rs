//! Counting in the kernel with hist triggers (CONFIG_HIST_TRIGGERS) on dynamic events of
//! one run.
//!
//! A [`Counter`] is a probe of this run (`f:` fprobe or `p:` kprobe on a kernel
//! function, group `ptrs_<pid>`, see [`crate::probe`]) with a hist trigger in a private
//! instance. The trigger alone turns the event on in the kernel's "soft" mode: each call
//! updates the histogram and the record is discarded, so nothing goes through the ring
//! buffer and nothing can be lost to an overflow; only a full histogram drops (its
//! `Dropped` total, reported). The instance's `set_event_pid` applies before the trigger
//! runs, so `--cgroup` limits the counts in the kernel.
//!
//! Removal: the instance clears its triggers when it is removed, and the probes can go
//! after it (a probe with a trigger is busy): declare the counters before the instance.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::PathBuf;

use crate::instance::Instance;
use crate::probe::{Probe, Support};
use crate::tracefs::Tracefs;

/// The kind of dynamic event a [`Counter`] counts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// `f:` function-entry probe through the function tracer's fprobe (Linux 6.7+,
    /// CONFIG_FPROBE_EVENTS).
    Fprobe,
    /// `p:` kprobe on the function's entry (CONFIG_KPROBE_EVENTS).
    Kprobe,
}

impl ProbeKind {
    /// The probe type letter of a definition.
    pub fn letter(self) -> &'static str {
        match self {
            ProbeKind::Fprobe => "f",
            ProbeKind::Kprobe => "p",
        }
    }

    /// The name used in messages, `--check` and `--counter`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Fprobe => "fprobe",
            ProbeKind::Kprobe => "kprobe",
        }
    }

    /// The control file that creates this kind of probe on this kernel, or why there is
    /// none (with the kernel option that provides it).
    pub fn control(self, support: &Support) -> Result<&'static str> {
        match self {
            ProbeKind::Fprobe if !support.dynamic_events => {
                bail!("no fprobe events: this kernel has no dynamic_events (Linux 4.17+; fprobe events need Linux 6.7+ with CONFIG_FPROBE_EVENTS)")
            }
            ProbeKind::Fprobe if !support.fprobes => {
                bail!("no fprobe events: tracefs README does not list f[:[<group>/][<event>]] (Linux 6.7+ built with CONFIG_FPROBE_EVENTS=y)")
            }
            ProbeKind::Fprobe => Ok("dynamic_events"),
            ProbeKind::Kprobe if !support.kprobes => {
                bail!("no kprobe events: this kernel was built without CONFIG_KPROBE_EVENTS")
            }
            ProbeKind::Kprobe => Ok(support.kprobe_control()),
        }
    }
}

/// One entry of a histogram: the key's value and its hit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The key (a number: a PID, an address).
    pub key: u64,
    /// How many times the trigger ran with that key.
    pub hitcount: u64,
}

/// What a `hist` file says: its entries (of the one trigger set on the event) and the
/// number of hits the full table dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hist {
    /// The entries.
    pub entries: Vec<Entry>,
    /// `Dropped:` of the totals: hits that found the table full and were not counted.
    pub dropped: u64,
}

impl Hist {
    /// The sum of every entry's hit count.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.hitcount).sum()
    }
}

/// Parses the text of an event's `hist` file for a trigger with one numeric key and the
/// default value (`hitcount`): lines `{ key:  N } hitcount:  M` and the totals. `None` if
/// the text is not a histogram (no `Totals:` section).
pub fn parse_hist(text: &str) -> Option<Hist> {
    let mut h = Hist::default();
    let mut totals = false;
    for line in text.lines() {
        let l = line.trim();
        if l == "Totals:" {
            totals = true;
        } else if totals {
            if let Some(v) = l.strip_prefix("Dropped:") {
                h.dropped = v.trim().parse().ok()?;
            }
        } else if let Some(rest) = l.strip_prefix('{') {
            let (key, after) = rest.split_once('}')?;
            let (_, kval) = key.split_once(':')?;
            let kval = kval.trim();
            let key = kval.parse().ok()?;
            let count = after.trim().strip_prefix("hitcount:")?;
            let hitcount = count.split_whitespace().next()?.parse().ok()?;
            h.entries.push(Entry { key, hitcount });
        }
    }
    totals.then_some(h)
}

/// What a [`Counter`] counts: `kind` probes on `function` as event `event` of this run's
/// group, with the trigger `hist:keys=<keys>:size=<size>` and `filter` (an event filter
/// expression such as `common_pid != 42`) if given.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The probe kind.
    pub kind: ProbeKind,
    /// The event name ([`crate::probe::sanitize_event_name`]).
    pub event: &'a str,
    /// The kernel function.
    pub function: &'a str,
    /// The hist keys (fields of the event).
    pub keys: &'a str,
    /// The table size (the kernel rounds it up to a power of two, at least 128).
    pub size: u32,
    /// The trigger's filter.
    pub filter: Option<&'a str>,
}

/// A probe of this run with a hist trigger in an instance: the calls of one kernel
/// function, counted in the kernel.
#[derive(Debug)]
pub struct Counter {
    probe: Probe,
    trigger: PathBuf,
    hist: PathBuf,
    /// The kernel function.
    pub function: String,
}

impl Counter {
    /// Creates the probe of `spec` and sets its trigger in `inst`. The event is not
    /// enabled: the trigger counts without recording.
    pub fn create(
        tracefs: &Tracefs,
        inst: &Instance,
        support: &Support,
        spec: &Spec,
    ) -> Result<Counter> {
        let Spec {
            kind,
            event,
            function,
            keys,
            size,
            filter,
        } = *spec;
        let control = kind.control(support)?;
        let probe = Probe::create(tracefs, control, kind.letter(), event, function)?;
        let rel = format!("events/{}/{}", probe.group(), probe.event());
        let trigger = inst.dir().join(&rel).join("trigger");
        let hist = inst.dir().join(&rel).join("hist");
        let mut text = format!("hist:keys={keys}:size={size}");
        if let Some(f) = filter {
            text.push_str(" if ");
            text.push_str(f);
        }
        if !trigger.exists() {
            bail!(
                "{} has no trigger file: this kernel has no event triggers (Linux 3.14+)",
                inst.dir().join(&rel).display()
            );
        }
        if let Err(e) = fs::write(&trigger, &text) {
            let why = last_error(inst);
            bail!(
                "the kernel refused the hist trigger '{text}' on {}/{} ({e}){why}; hist triggers need a kernel built with CONFIG_HIST_TRIGGERS=y",
                probe.group(),
                probe.event()
            );
        }
        if !hist.exists() {
            bail!(
                "{} has no hist file after the trigger was set: this kernel has no hist triggers (CONFIG_HIST_TRIGGERS)",
                inst.dir().join(&rel).display()
            );
        }
        Ok(Counter {
            probe,
            trigger,
            hist,
            function: function.to_string(),
        })
    }

    /// The probe's event name.
    pub fn event(&self) -> &str {
        self.probe.event()
    }

    /// Reads the histogram.
    pub fn read(&self) -> Result<Hist> {
        let text = crate::tracefs::read_file(&self.hist)
            .with_context(|| format!("reading {}", self.hist.display()))?;
        parse_hist(&text).with_context(|| {
            format!(
                "{} is not a histogram: {:?}",
                self.hist.display(),
                text.lines().take(3).collect::<Vec<_>>()
            )
        })
    }

    /// Clears the trigger (an `O_TRUNC` open of the trigger file removes every trigger of
    /// the event in this instance) and removes the probe.
    pub fn remove(self) -> Result<()> {
        let cleared = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.trigger)
            .with_context(|| format!("clearing {}", self.trigger.display()));
        let removed = self.probe.remove();
        cleared?;
        removed
    }
}

/// A system call the canary makes, and the kernel functions that run once per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CanaryCall {
    /// access(2) of `/`: `do_faccessat` (Linux 4.17+; the syscall wrappers of x86 are
    /// inlined into the dispatcher since Linux 6.9, so a wrapper is no use there).
    Access,
    /// getppid(2): its wrapper, on kernels whose wrappers are functions.
    Getppid,
}

/// The canary's functions, first the one `available_filter_functions` lists.
pub const CANARY_FUNCTIONS: [&str; 5] = [
    "do_faccessat",
    "__x64_sys_getppid",
    "__do_sys_getppid",
    "__arm64_sys_getppid",
    "sys_getppid",
];

/// How many calls the canary makes.
pub const CANARY_CALLS: u64 = 7;

impl CanaryCall {
    fn of(function: &str) -> CanaryCall {
        if function == "do_faccessat" {
            CanaryCall::Access
        } else {
            CanaryCall::Getppid
        }
    }

    fn call(self) {
        match self {
            // SAFETY: a NUL-terminated path; access(2) only reads it.
            CanaryCall::Access => unsafe {
                libc::access(c"/".as_ptr(), libc::F_OK);
            },
            // SAFETY: getppid takes no arguments and cannot fail; called through
            // syscall(2) because a C library may cache it.
            CanaryCall::Getppid => unsafe {
                libc::syscall(libc::SYS_getppid);
            },
        }
    }
}

/// Verifies that `kind` probes with hist triggers count calls exactly on this kernel, in
/// `inst` before anything else is set in it: a probe on a system call's function
/// ([`CANARY_FUNCTIONS`], the first of `names`, the traceable functions) keyed by
/// PID, [`CANARY_CALLS`] calls of that system call by this thread, and the histogram must
/// show exactly that many for it. The probe and trigger are removed before this returns.
/// Returns the function used.
pub fn canary(
    tracefs: &Tracefs,
    inst: &Instance,
    support: &Support,
    kind: ProbeKind,
    names: &[&str],
) -> Result<&'static str> {
    let Some(function) = CANARY_FUNCTIONS.into_iter().find(|f| names.contains(f)) else {
        bail!(
            "no system call function to check the counter with (none of {} is traceable)",
            CANARY_FUNCTIONS.join(" ")
        );
    };
    let counter = Counter::create(
        tracefs,
        inst,
        support,
        &Spec {
            kind,
            event: "canary",
            function,
            keys: "common_pid",
            size: 128,
            filter: None,
        },
    )?;
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
    let call = CanaryCall::of(function);
    for _ in 0..CANARY_CALLS {
        call.call();
    }
    let seen = counter.read();
    counter.remove()?;
    let h = seen?;
    let ours = h
        .entries
        .iter()
        .find(|e| e.key == tid)
        .map_or(0, |e| e.hitcount);
    if ours != CANARY_CALLS {
        bail!(
            "the canary failed: {CANARY_CALLS} calls of {function} by this thread were counted {ours} times by a hist trigger on a {} probe ({} dropped)",
            kind.name(),
            h.dropped
        );
    }
    Ok(function)
}

/// The last entry of the instance's (or the top level's) `error_log`, as `: <text>`, or
/// empty.
fn last_error(inst: &Instance) -> String {
    for dir in [
        inst.dir().to_path_buf(),
        inst.tracefs().root().to_path_buf(),
    ] {
        if let Some(e) = crate::probe::parse_error_log(
            &fs::read_to_string(dir.join("error_log")).unwrap_or_default(),
        )
        .pop()
        {
            return format!(":\n  {}", e.render());
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn histograms_of_a_pid_key_parse_with_their_totals() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/hist/pid-key.hist"
        ))
        .unwrap();
        let h = parse_hist(&text).unwrap();
        // Six sync(2) calls, each by its own process (tests/fixtures/README.md).
        assert_eq!(h.entries.len(), 6, "{h:?}");
        assert!(h.entries.iter().all(|e| e.hitcount == 1), "{h:?}");
        let mut pids: Vec<u64> = h.entries.iter().map(|e| e.key).collect();
        pids.sort_unstable();
        assert_eq!(pids, [158, 159, 160, 161, 162, 163]);
        assert_eq!(h.dropped, 0);
        let hits: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Hits:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(h.total(), hits);
    }

    #[test]
    fn fprobe_events_carry_the_probed_address_funccount_keys_by() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/hist/fprobe.format"
        ))
        .unwrap();
        let f = crate::format::EventFormat::parse(&text).unwrap();
        let ip = f.field("__probe_ip").unwrap();
        assert_eq!((ip.offset, ip.size), (8, 8));
    }

    #[test]
    fn address_keys_drops_and_non_histograms() {
        let text = "# event histogram\n#\n# trigger info: hist:keys=__probe_ip:vals=hitcount:sort=hitcount:size=128 [active]\n#\n\n{ __probe_ip: 18446744071581156704 } hitcount:         20\n\nTotals:\n    Hits: 25\n    Entries: 1\n    Dropped: 5\n";
        let h = parse_hist(text).unwrap();
        assert_eq!(
            h.entries,
            [Entry {
                key: 0xffffffff81234560,
                hitcount: 20
            }]
        );
        assert_eq!(h.dropped, 5);
        assert_eq!(h.total(), 20);
        assert_eq!(parse_hist("# event histogram\n"), None);
        assert_eq!(parse_hist("{ x: y } hitcount: 1\nTotals:\n"), None);
    }
}
