//! A tracing session: a private instance plus its raw readers, torn down in the right
//! order (readers closed before the instance directory is removed).

use anyhow::{bail, Result};
use std::time::{Duration, Instant};

use crate::instance::{Instance, LossStats};
use crate::reader::{RawReader, Wake};
use perf_tools_core::signals::Shutdown;

/// One turn of [`Session::stream`]: drain the buffers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Clock reading ([`perf_tools_core::clock::monotonic_ns`]) taken before this drain: every event
    /// up to it is in the buffers. `u64::MAX` on the last batch (tracing is off).
    pub clock: u64,
    /// The last batch: tracing has been turned off (duration over or a signal).
    pub last: bool,
    /// Another process changed this run's settings, or put them back, since the last
    /// batch ([`Session::check_state`]): events between these two clock readings may be
    /// missing, so a tool that pairs events must not pair across them.
    pub state_gap: Option<(u64, u64)>,
}

/// How [`Session::stream`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The duration passed or a shutdown signal came; the last batch was handled.
    Finished,
    /// Nobody reads standard output any more (`tool | head`): end quietly.
    OutputClosed,
}

/// Owns an instance and its readers. Fields drop in declaration order: readers first.
pub struct Session {
    /// Readers of the instance's per-CPU raw buffers.
    pub reader: RawReader,
    /// The instance (removed on drop).
    pub instance: Instance,
    start_losses: LossStats,
    watch: Watch,
}

/// How often [`Session::check_state`] looks at the instance's settings.
const STATE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The state of [`Session::check_state`].
#[derive(Debug)]
struct Watch {
    next: Instant,
    /// Since when another process has changed this run's settings, if it has.
    changed_since: Option<Instant>,
    /// Clock reading ([`perf_tools_core::clock::monotonic_ns`]) of the last check that found nothing
    /// changed.
    last_ok: u64,
    /// Events between these clock readings may be missing (see [`Batch::state_gap`]).
    gap: Option<(u64, u64)>,
}

impl Session {
    /// Opens readers on an instance that has been configured and turned on.
    pub fn start(instance: Instance) -> Result<Session> {
        let reader = RawReader::open(&instance)?;
        let start_losses = instance.loss_stats();
        Ok(Session {
            reader,
            instance,
            start_losses,
            watch: Watch {
                next: Instant::now() + STATE_CHECK_EVERY,
                changed_since: None,
                last_ok: perf_tools_core::clock::monotonic_ns(),
                gap: None,
            },
        })
    }

    /// Events the kernel lost in this instance since [`Session::start`], from the
    /// per-CPU `stats` counters (overrun, commit overrun, dropped).
    pub fn lost_events(&self) -> u64 {
        self.instance
            .loss_stats()
            .total()
            .saturating_sub(self.start_losses.total())
    }

    /// Checks, at most once per [`STATE_CHECK_EVERY`], that no other process changed this
    /// run's settings (another root process turning the instance's `tracing_on` off,
    /// disabling its events or replacing a filter would otherwise stop the rows silently).
    /// The first time it finds a change it warns on stderr; if the change is still there
    /// at the next check it fails (the run ends with exit 1). A change that was put back
    /// in time is reported. Both times, the next [`Batch::state_gap`] (or
    /// [`Session::take_state_gap`]) says since when events may be missing, so a tool
    /// that pairs events can forget what it started before.
    pub fn check_state(&mut self) -> Result<()> {
        let now = Instant::now();
        if now < self.watch.next {
            return Ok(());
        }
        self.watch.next = now + STATE_CHECK_EVERY;
        self.check_state_now(true)
    }

    fn check_state_now(&mut self, recording: bool) -> Result<()> {
        let changes = self.instance.state_changes(recording);
        let dir = self.instance.dir().display();
        let now = perf_tools_core::clock::monotonic_ns();
        match (changes.is_empty(), self.watch.changed_since) {
            (true, None) => self.watch.last_ok = now,
            (true, Some(_)) => {
                eprintln!(
                    "WARNING: this run's tracing settings in {dir} were put back; events while they were changed are missing"
                );
                self.watch.changed_since = None;
                self.mark_gap(now);
                self.watch.last_ok = now;
            }
            (false, None) => {
                eprintln!(
                    "WARNING: another process changed this run's tracing settings in {dir}: {}; until it is put back, rows may be missing or not filtered as asked",
                    changes.join(", ")
                );
                self.watch.changed_since = Some(Instant::now());
                self.mark_gap(now);
            }
            (false, Some(since)) => {
                bail!(
                    "another process changed this run's tracing settings in {dir} ({}) and did not put them back within {:.0?}: the output would be incomplete, so the run ends here; make sure no other program writes to this run's instance",
                    changes.join(", "),
                    since.elapsed()
                );
            }
        }
        Ok(())
    }

    /// Events since the last good check, up to `now`, may be missing.
    fn mark_gap(&mut self, now: u64) {
        let from = self.watch.gap.map_or(self.watch.last_ok, |(f, _)| f);
        self.watch.gap = Some((from, now));
    }

    /// The time range in which events may be missing because another process changed
    /// this run's settings (see [`Batch::state_gap`]), once: for tools with their own
    /// loop instead of [`Session::stream`].
    pub fn take_state_gap(&mut self) -> Option<(u64, u64)> {
        self.watch.gap.take()
    }

    /// The read loop of the tracing tools: wait for data (at most `poll`), then call
    /// `batch` to drain and print, until `duration` (seconds; `None`: until a signal)
    /// passes, a shutdown signal arrives or standard output's reader goes away. Before
    /// the last batch, tracing is turned off so it drains everything that is left.
    /// `batch` also gets the instance, to change a setting through it (e.g.
    /// [`Instance::set_filter`], which [`Session::check_state`] then expects).
    pub fn stream(
        &mut self,
        shutdown: &Shutdown,
        duration: Option<f64>,
        poll: Duration,
        mut batch: impl FnMut(&mut RawReader, &Instance, Batch) -> Result<()>,
    ) -> Result<StreamEnd> {
        let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
        loop {
            let timeout = deadline.map_or(poll, |dl| {
                poll.min(dl.saturating_duration_since(Instant::now()))
            });
            let wake = self.reader.wait(shutdown, timeout);
            if wake == Wake::OutputClosed {
                return Ok(StreamEnd::OutputClosed);
            }
            let last = wake == Wake::Shutdown || deadline.is_some_and(|dl| Instant::now() >= dl);
            self.check_state()?;
            if last {
                if self.watch.changed_since.is_some() {
                    // Changed at the last check and not put back since.
                    self.check_state_now(true)?;
                }
                self.instance.set_tracing_on(false)?;
            }
            let clock = if last {
                u64::MAX
            } else {
                perf_tools_core::clock::monotonic_ns()
            };
            let state_gap = self.watch.gap.take();
            batch(
                &mut self.reader,
                &self.instance,
                Batch {
                    clock,
                    last,
                    state_gap,
                },
            )?;
            if last {
                return Ok(StreamEnd::Finished);
            }
        }
    }

    /// Stops the session, closing the readers and removing the instance, and reports
    /// a failure to remove it.
    pub fn finish(self) -> Result<()> {
        let Session {
            reader, instance, ..
        } = self;
        drop(reader);
        instance.remove()
    }
}

/// How a run that read its events through a [`Session`] ends: see [`Session::end_run`].
#[derive(Debug, Clone, Default)]
pub struct EndOfRun {
    /// Events already reported lost during the run (from the pages' flags); the final
    /// count is the larger of this and the kernel's counters.
    pub lost_reported: u64,
    /// Print `Ending tracing...` on stderr rather than standard output (which then
    /// carries machine-readable output, e.g. JSON lines).
    pub note_on_stderr: bool,
    /// What lost events mean for this tool's output, completing "N events lost in
    /// total; ...", e.g. "rows may be missing".
    pub loss_effect: String,
    /// The end-of-run account, printed if it has something to explain; its `lost` is
    /// set to the final count first.
    pub account: Option<RunAccount>,
}

impl Session {
    /// The end of a run that was not cut short (the tools' one end-of-run sequence):
    /// takes the final loss count, closes the readers and removes the instance (a
    /// failure to remove it is the run's error), runs `teardown` (e.g. removing the
    /// probes the instance used), prints `Ending tracing...`, then on stderr the loss
    /// warning and the [`RunAccount`] if it has something to explain. Returns the
    /// number of events lost.
    pub fn end_run(
        self,
        out: &mut perf_tools_core::output::Output,
        end: EndOfRun,
        teardown: impl FnOnce() -> Result<()>,
    ) -> Result<u64> {
        let lost = self.lost_events().max(end.lost_reported);
        self.finish()?;
        teardown()?;
        if end.note_on_stderr {
            eprintln!("\nEnding tracing...");
        } else {
            use std::io::Write;
            let _ = writeln!(out.buf, "\nEnding tracing...");
            out.flush()?;
        }
        if lost > 0 {
            eprintln!("WARNING: {lost} events lost in total; {}", end.loss_effect);
        }
        if let Some(mut account) = end.account {
            account.lost = lost;
            if let Some(line) = account.line() {
                eprintln!("{line}");
            }
        }
        Ok(lost)
    }
}

/// A filter in force during a run, for the [`RunAccount`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterNote {
    /// How the user asked for it, e.g. `-d 7,0` or `-n dd`.
    pub option: String,
    /// Applied in the kernel: the events it left out were never counted.
    pub in_kernel: bool,
}

/// The end-of-run account (never an empty screen without a reason): when a run printed
/// nothing, or a filter left out some of what was traced, one stderr line says what the
/// kernel saw, what matched, what was printed, what was lost and which filters were in
/// force, e.g. `iosnoop: 0 rows: 1,204 block I/Os on other devices (filter -d 7,0); 0 lost`.
/// A run that printed rows and left nothing out prints no account.
#[derive(Debug, Clone, Default)]
pub struct RunAccount {
    /// The tool's name, starting the line.
    pub tool: String,
    /// What the tool prints, plural (`rows`, `lines`, `I/Os in the histograms`).
    pub unit: String,
    /// How many it printed.
    pub rows: u64,
    /// Events traced (read from the kernel's buffers, so past any filter in the kernel)
    /// and a filter in user space then left out.
    pub left_out: u64,
    /// What the kernel saw, each a count and what it counts, e.g. `(1204, "block I/Os on
    /// other devices")`, from a source that no filter touched (`/proc/diskstats`, a
    /// probe's hit counter). Empty when no such count exists.
    pub seen: Vec<(u64, String)>,
    /// What else explains the count, e.g. "no call of vfs_read was traced".
    pub notes: Vec<String>,
    /// The filters in force.
    pub filters: Vec<FilterNote>,
    /// Events lost (set by [`Session::end_run`]).
    pub lost: u64,
}

/// `n` with thousands separators (`1,204`).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            s.push(',');
        }
        s.push(c);
    }
    s
}

impl RunAccount {
    /// A new account for `tool`, which prints `unit`.
    pub fn new(tool: &str, unit: &str) -> RunAccount {
        RunAccount {
            tool: tool.to_string(),
            unit: unit.to_string(),
            ..Default::default()
        }
    }

    /// Adds a filter in force.
    pub fn filter(&mut self, option: impl Into<String>, in_kernel: bool) -> &mut Self {
        self.filters.push(FilterNote {
            option: option.into(),
            in_kernel,
        });
        self
    }

    /// True if the account has something to explain: nothing was printed, or a filter
    /// left out events that were traced.
    pub fn needed(&self) -> bool {
        self.rows == 0 || self.left_out > 0
    }

    /// The account's line, if [`RunAccount::needed`].
    pub fn line(&self) -> Option<String> {
        if !self.needed() {
            return None;
        }
        let mut facts: Vec<String> = Vec::new();
        if self.left_out > 0 {
            let by: Vec<&str> = self
                .filters
                .iter()
                .filter(|f| !f.in_kernel)
                .map(|f| f.option.as_str())
                .collect();
            facts.push(format!(
                "{} traced, {} left out by {}",
                thousands(self.rows + self.left_out),
                thousands(self.left_out),
                if by.is_empty() {
                    "a filter".to_string()
                } else {
                    by.join(" ")
                }
            ));
        }
        facts.extend(
            self.seen
                .iter()
                .map(|(n, what)| format!("{} {what}", thousands(*n))),
        );
        facts.extend(self.notes.iter().cloned());
        let mut line = format!("{}: {} {}", self.tool, thousands(self.rows), self.unit);
        if !facts.is_empty() {
            line.push_str(": ");
            line.push_str(&facts.join(", "));
        }
        let opts: Vec<&str> = self.filters.iter().map(|f| f.option.as_str()).collect();
        if !opts.is_empty() {
            line.push_str(&format!(
                " ({} {})",
                if opts.len() == 1 { "filter" } else { "filters" },
                opts.join(" ")
            ));
        }
        line.push_str(&format!("; {} lost", thousands(self.lost)));
        let in_kernel: Vec<&str> = self
            .filters
            .iter()
            .filter(|f| f.in_kernel)
            .map(|f| f.option.as_str())
            .collect();
        if !in_kernel.is_empty() && self.seen.is_empty() {
            // Nothing counts what a filter in the kernel left out: say how to see it.
            line.push_str(&format!(
                "; {} filtered in the kernel, which does not count what it leaves out: run without {} (or with --check) to see what it excludes",
                in_kernel.join(" "),
                if in_kernel.len() == 1 { "it" } else { "them" }
            ));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn an_empty_run_with_a_device_filter_explains_itself() {
        let mut a = RunAccount::new("iosnoop", "rows");
        a.filter("-d 7,0", true);
        a.seen.push((1204, "block I/Os on other devices".into()));
        assert_eq!(
            a.line().unwrap(),
            "iosnoop: 0 rows: 1,204 block I/Os on other devices (filter -d 7,0); 0 lost"
        );
    }

    #[test]
    fn a_run_with_rows_and_nothing_left_out_prints_no_account() {
        let mut a = RunAccount::new("iosnoop", "rows");
        a.rows = 3;
        a.lost = 2;
        a.filter("-d 7,0", true);
        assert_eq!(a.line(), None);
    }

    #[test]
    fn rows_left_out_in_user_space_are_counted() {
        let mut a = RunAccount::new("iosnoop", "rows");
        a.rows = 2;
        a.left_out = 1201;
        a.filter("-n dd", false);
        assert_eq!(
            a.line().unwrap(),
            "iosnoop: 2 rows: 1,203 traced, 1,201 left out by -n dd (filter -n dd); 0 lost"
        );
    }

    #[test]
    fn a_kernel_filter_without_a_count_says_how_to_check() {
        let mut a = RunAccount::new("funcgraph", "lines");
        a.notes.push("no call of vfs_read was traced".into());
        a.filter("-p 42", true);
        a.lost = 1;
        assert_eq!(
            a.line().unwrap(),
            "funcgraph: 0 lines: no call of vfs_read was traced (filter -p 42); 1 lost; -p 42 filtered in the kernel, which does not count what it leaves out: run without it (or with --check) to see what it excludes"
        );
        // No filter at all: just the facts.
        let mut a = RunAccount::new("kprobe", "lines");
        a.seen.push((0, "hits of the probe".into()));
        assert_eq!(
            a.line().unwrap(),
            "kprobe: 0 lines: 0 hits of the probe; 0 lost"
        );
    }
}
