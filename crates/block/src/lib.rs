//! Block-layer request events (`block:block_rq_insert`, `block_rq_issue`,
//! `block_rq_complete`): decoding by format, in-kernel filters, and pairing of a
//! request's start with its completion. Shared by iosnoop and iolatency.
//!
//! * [`device`]: `-d` devices (numbers, names, paths, partitions) and the filter strings.
//! * [`decode`]: block events decoded by the running kernel's format files.
//! * [`inflight`]: starts waiting for their completion, paired by (device, sector).
//! * [`check`]: the `--check` of iosnoop and iolatency; [`diskstats`]: per-disk I/O
//!   counts from `/proc/diskstats` for the end-of-run account.
//! * [`pipeline`]: a block trace end to end (set-up, decode, merge across CPUs, pair).
//! * `synthetic` (feature `testing`): synthetic block traces for benchmarks and tests.
//!
//! Their items are re-exported here (`perf_tools_block::Device`, ...).

pub mod check;
pub mod decode;
pub mod device;
pub mod diskstats;
pub mod inflight;
mod inflight_table;
pub mod pipeline;
#[cfg(any(test, feature = "testing"))]
pub mod synthetic;

pub use check::check;
pub use decode::{
    layout_name, BlockDecoder, BlockEvent, Detail, Full, Lean, StartSize, Tasked, What, Who,
};
pub use device::{
    device_filter, filters, Device, DeviceFilter, DeviceSpec, ResolvedDevice, StartPoint,
};
pub use inflight::{Completed, Inflight, Start};
pub use pipeline::{start_trace, BlockPipeline, Placement};
