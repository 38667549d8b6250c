//! Counting in the kernel: one probe per function with a hist trigger
//! ([`perf_tools_ftrace::hist`]), read at each summary.

use anyhow::{bail, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use perf_tools_core::output::Output;
use perf_tools_core::signals::{Shutdown, Wake};
use perf_tools_ftrace::hist::{self, Counter as HistCounter, ProbeKind, Spec};
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::probe::{sanitize_event_name, Support};
use perf_tools_ftrace::scope::Scope;
use perf_tools_ftrace::session::thousands;
use perf_tools_ftrace::tracefs::Tracefs;

use crate::{summary, Args};

/// The most functions counted with one probe each: the kernel creates and removes probes
/// one at a time (tens of milliseconds each on some kernels), so a broader glob is
/// counted from the function tracer's records instead.
pub const MAX_PROBES: usize = 100;

/// The counters of a run, set up and verified.
#[derive(Debug)]
pub struct Counters {
    /// The probe kind.
    pub kind: ProbeKind,
    /// One per function, in the order of `available_filter_functions`.
    pub counters: Vec<HistCounter>,
    /// The function the canary probed.
    pub canary: &'static str,
}

impl Counters {
    /// What the stderr line and `--check` call this counter.
    pub fn describe(kind: ProbeKind) -> String {
        format!(
            "hist triggers on {} events, counted in the kernel (nothing through the ring buffer)",
            kind.name()
        )
    }
}

/// Sets up `kind` counters for `functions` in `inst` (which has nothing else set yet):
/// the canary first ([`hist::canary`]), then the cgroup scope if any (the instance's
/// `set_event_pid`), then one probe and trigger per function, keyed by PID when scoped
/// (tasks that left the cgroup are dropped in user space) and by address otherwise.
/// funccount's own calls are filtered out in the kernel. On error everything made here
/// is removed, the scope's PID list excepted (the next counter sets its own).
pub fn set_up(
    tracefs: &Tracefs,
    inst: &Instance,
    kind: ProbeKind,
    functions: &[&str],
    names: &[&str],
    scope: Option<&mut Scope>,
) -> Result<Counters> {
    if functions.len() > MAX_PROBES {
        bail!(
            "the functions number {} (more than {MAX_PROBES}, the most counted with a probe each)",
            functions.len()
        );
    }
    let support = Support::detect(tracefs);
    kind.control(&support)?;
    let canary = hist::canary(tracefs, inst, &support, kind, names)?;
    let keys = if let Some(sc) = scope {
        sc.apply(inst)?;
        "common_pid"
    } else {
        "__probe_ip"
    };
    let filter = format!("common_pid != {}", std::process::id());
    let mut counters = Vec::with_capacity(functions.len());
    for (i, f) in functions.iter().enumerate() {
        // Unique per run and function (two functions can sanitize alike).
        let event = sanitize_event_name(&format!("fc{i}_{f}"));
        let made = HistCounter::create(
            tracefs,
            inst,
            &support,
            &Spec {
                kind,
                event: &event,
                function: f,
                keys,
                size: if keys == "common_pid" { 2048 } else { 128 },
                filter: Some(&filter),
            },
        );
        match made {
            Ok(c) => counters.push(c),
            Err(e) => {
                for c in counters {
                    let _ = c.remove();
                }
                return Err(e);
            }
        }
    }
    Ok(Counters {
        kind,
        counters,
        canary,
    })
}

/// What the histograms held when the trace began: each counter is live from its creation
/// on, so the calls made while the others were still being set up are subtracted from the
/// first summary.
#[derive(Debug, Default)]
pub struct Baseline {
    /// Hit counts per (counter index, key).
    prev: HashMap<(usize, u64), u64>,
    /// `Dropped` per counter.
    dropped: Vec<u64>,
}

impl Counters {
    /// Reads every histogram now (call just after the banner).
    pub fn baseline(&self) -> Result<Baseline> {
        let mut b = Baseline {
            prev: HashMap::new(),
            dropped: Vec::with_capacity(self.counters.len()),
        };
        for (i, c) in self.counters.iter().enumerate() {
            let h = c.read()?;
            b.dropped.push(h.dropped);
            for e in h.entries {
                b.prev.insert((i, e.key), e.hitcount);
            }
        }
        Ok(b)
    }
}

/// Runs the summaries of an in-kernel count: sleeps until each interval (`-i`), the end
/// of the duration (`-d`) or a shutdown, then reads every histogram and prints what was
/// counted since the last summary. Returns the number of calls counted and of
/// summaries, and whether standard output was closed. `baseline` is what the histograms
/// held when the banner had been printed.
pub fn run(
    args: &Args,
    inst: &Instance,
    set: &Counters,
    baseline: Baseline,
    mut scope: Option<&mut Scope>,
    shutdown: &Shutdown,
    out: &mut Output,
) -> Result<(u64, u64, bool)> {
    let interval = args.interval.map(Duration::from_secs_f64);
    let start = Instant::now();
    let end_at = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut next = interval.map(|i| start + i);
    // Hit counts are cumulative: each summary prints the difference, per key.
    let Baseline {
        mut prev,
        dropped: mut prev_dropped,
    } = baseline;
    let (mut total, mut summaries) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        let wake_at = [next, end_at].into_iter().flatten().min();
        let step = wake_at.map_or(Duration::from_millis(100), |w| {
            w.saturating_duration_since(now)
                .min(Duration::from_millis(100))
        });
        let wake = shutdown.wait(&[], step);
        if wake == Wake::OutputClosed {
            return Ok((total, summaries, true));
        }
        let now = Instant::now();
        let last =
            wake == Wake::Shutdown || shutdown.requested() || end_at.is_some_and(|e| now >= e);
        if let Some(sc) = scope.as_deref_mut() {
            sc.turn(inst, last, shutdown, "funccount", false)?;
        }
        let due = next.is_some_and(|n| now >= n && end_at.is_none_or(|e| n < e));
        if !(last || due) {
            continue;
        }
        if let (Some(n), Some(i)) = (next.as_mut(), interval) {
            while *n <= now {
                *n += i;
            }
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut dropped = 0u64;
        for (i, c) in set.counters.iter().enumerate() {
            let h = c.read()?;
            dropped += h.dropped.saturating_sub(prev_dropped[i]);
            prev_dropped[i] = h.dropped;
            for e in &h.entries {
                let before = prev.insert((i, e.key), e.hitcount).unwrap_or(0);
                let delta = e.hitcount.saturating_sub(before);
                // A PID key (scoped): tasks that moved out stay in the kernel's list.
                let counted = match scope.as_deref_mut() {
                    Some(sc) => sc.contains(e.key as u32),
                    None => true,
                };
                if counted && delta > 0 {
                    *counts.entry(c.function.clone()).or_default() += delta;
                }
            }
        }
        total += counts.values().sum::<u64>();
        let date = args.timestamps.then(|| {
            chrono::Local::now()
                .format("%a %b %e %H:%M:%S %Y")
                .to_string()
        });
        summary(&mut out.buf, &counts, args.top, date.as_deref());
        out.flush()?;
        summaries += 1;
        if dropped > 0 {
            eprintln!("funccount: WARNING: {} calls were not counted in this summary's interval: a histogram was full (more than 2048 tasks called one function): its counts are too low", thousands(dropped));
        }
        if last {
            return Ok((total, summaries, false));
        }
    }
}
