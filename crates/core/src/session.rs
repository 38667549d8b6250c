//! A tracing session: a private instance plus its raw readers, torn down in the right
//! order (readers closed before the instance directory is removed).

use anyhow::Result;
use std::time::{Duration, Instant};

use crate::instance::{Instance, LossStats};
use crate::reader::{RawReader, Wake};
use crate::signals::Shutdown;

/// One turn of [`Session::stream`]: drain the buffers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Clock reading ([`crate::monotonic_ns`]) taken before this drain: every event
    /// up to it is in the buffers. `u64::MAX` on the last batch (tracing is off).
    pub clock: u64,
    /// The last batch: tracing has been turned off (duration over or a signal).
    pub last: bool,
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

    /// The read loop of the tracing tools: wait for data (at most `poll`), then call
    /// `batch` to drain and print, until `duration` (seconds; `None`: until a signal)
    /// passes, a shutdown signal arrives or standard output's reader goes away. Before
    /// the last batch, tracing is turned off so it drains everything that is left.
    pub fn stream(
        &mut self,
        shutdown: &Shutdown,
        duration: Option<f64>,
        poll: Duration,
        mut batch: impl FnMut(&mut RawReader, Batch) -> Result<()>,
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
            if last {
                self.instance.set_tracing_on(false)?;
            }
            let clock = if last {
                u64::MAX
            } else {
                crate::monotonic_ns()
            };
            batch(&mut self.reader, Batch { clock, last })?;
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
