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
