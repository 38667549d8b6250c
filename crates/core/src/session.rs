//! A tracing session: a private instance plus its raw readers, torn down in the right
//! order (readers closed before the instance directory is removed).

use anyhow::Result;

use crate::instance::{Instance, LossStats};
use crate::reader::RawReader;

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
