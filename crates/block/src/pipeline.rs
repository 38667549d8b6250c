//! A block trace end to end: [`start_trace`] sets it up in the tool's instance, and
//! [`BlockPipeline`] takes each raw event through decoding, merging across CPUs and
//! pairing.

use anyhow::Result;

use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::reader::Gap;
use perf_tools_ftrace::scope::Scope;

use crate::decode::{BlockDecoder, BlockEvent, Detail, Full};
use crate::device::StartPoint;
use crate::inflight::{Completed, Inflight};

/// What a block trace needs for the tool to place the task that issued each I/O in user
/// space (a PID filter in the kernel would drop the completions, which run in whatever
/// task is on the CPU).
#[derive(Debug, Default)]
pub struct Placement<'a> {
    /// A cgroup scope: the forks it follows ([`Scope::follow_forks`]; hand every raw
    /// event to [`Scope::observe`] first).
    pub scope: Option<&'a mut Scope>,
    /// `-p`: the `record-tgid` option, so that the kernel's `saved_tgids` keeps each
    /// traced thread's process for threads gone from /proc before they are placed.
    pub record_tgid: bool,
}

/// Sets up a block-I/O trace for `tool` in its own instance and starts reading it: mono
/// trace clock, `buffer_kb` KiB per CPU, the reader's wake-up watermark `buffer_percent`,
/// the start/completion filters (from [`filters`](crate::filters)) and the events for `start`
/// (and `block_rq_requeue`, when its format decodes),
/// what `placement` needs to place the issuing tasks in user space, then tracing on.
/// Returns the running session and the decoder for its events.
pub fn start_trace(
    tracefs: &perf_tools_ftrace::tracefs::Tracefs,
    tool: &str,
    start: StartPoint,
    (start_filter, complete_filter): &(Option<String>, Option<String>),
    buffer_kb: u32,
    buffer_percent: u32,
    placement: Placement<'_>,
) -> Result<(perf_tools_ftrace::session::Session, BlockDecoder)> {
    let inst = perf_tools_ftrace::cleanup::start_instance(tracefs, tool)?;
    // Each of the next three writes costs the kernel at least one RCU grace period (the
    // clock: two; the buffers: reallocation), so none is made when the value is already
    // in place. Sub-buffers first: resizing then allocates 64 KiB ones directly.
    // All three come before tracing is on: the clock and the sub-buffer size discard
    // what is recorded, and the kernel stops recording while it resizes, dropping events
    // without counting them (measured on 6.18: 23,076 of 300,000 getppid events missing
    // across a 33 ms resize, overrun 0). A resize after the header (tried: 15-20 ms less
    // to the header) lost the first I/Os of the live tests.
    inst.ensure("trace_clock", "mono")?;
    // Larger sub-buffers (Linux 6.8+) cut the read() calls and page swaps per event by
    // 16x, most of the kernel-side cost of reading a busy trace; older kernels keep
    // their page-sized ones.
    let _ = inst.ensure("buffer_subbuf_size_kb", "64");
    inst.ensure("buffer_size_kb", &buffer_kb.to_string())?;
    // Older kernels have no buffer_percent: reading then simply wakes on any data.
    let _ = inst.ensure("buffer_percent", &buffer_percent.to_string());
    let decoder = BlockDecoder::load(&inst, start)?;
    for &ev in BlockDecoder::events(start) {
        let filter = if ev == "block_rq_complete" {
            complete_filter
        } else {
            start_filter
        };
        if let Some(f) = filter {
            inst.set_filter("block", ev, f)?;
        }
    }
    // Requeues: filtered as completions (device, sector range, type), to tell a
    // requeued request's next start from another I/O of its sector.
    if decoder.decodes_requeues() {
        if let Some(f) = complete_filter {
            inst.set_filter("block", "block_rq_requeue", f)?;
        }
        inst.enable_event("block", "block_rq_requeue")?;
    }
    for &ev in BlockDecoder::events(start) {
        inst.enable_event("block", ev)?;
    }
    if let Some(sc) = placement.scope {
        sc.follow_forks(&inst)?;
    }
    if placement.record_tgid {
        // Absent on kernels before 4.14: /proc only then.
        let _ = inst.write("options/record-tgid", "1");
    }
    inst.set_tracing_on(true)?;
    Ok((perf_tools_ftrace::session::Session::start(inst)?, decoder))
}

/// What the merge holds: an event, or the place of a loss of events in a CPU's stream
/// (with the time stamp no lost event is newer than).
#[derive(Debug, Clone, Copy)]
enum Held<D: Detail> {
    Event(BlockEvent<D>),
    Gap { until: u64 },
}

/// The per-event path of a block trace as one unit, shared by iosnoop and iolatency:
/// decode each raw event by format, order events across CPUs ([`Merger`]), and pair
/// starts with completions ([`Inflight`]), keeping the detail `D` of each event.
#[derive(Debug)]
pub struct BlockPipeline<D: Detail = Full> {
    decoder: BlockDecoder,
    merger: Merger<Held<D>>,
    /// Starts waiting for their completion, and pairing statistics.
    pub inflight: Inflight<D>,
    /// Events that were not block events of this trace, or were truncated.
    pub undecoded: u64,
    /// Losses of events reached in time order and not yet taken by
    /// [`BlockPipeline::take_gaps`]: `(after, before)`, every lost event in between.
    gaps: Vec<(u64, u64)>,
}

impl<D: Detail> BlockPipeline<D> {
    /// A pipeline for events decoded by `decoder`, timed from `start`.
    pub fn new(decoder: BlockDecoder, start: StartPoint) -> BlockPipeline<D> {
        BlockPipeline {
            decoder,
            merger: Merger::new(),
            inflight: Inflight::new(start),
            undecoded: 0,
            gaps: Vec::new(),
        }
    }

    /// Takes one raw event read from CPU `cpu`'s buffer (events of one CPU in the order
    /// the kernel recorded them).
    #[inline]
    pub fn push(&mut self, cpu: u32, ts: u64, payload: &[u8]) {
        match self.decoder.decode_as::<D>(payload) {
            Some(ev) => self.merger.push(cpu as usize, ts, Held::Event(ev)),
            None => self.undecoded += 1,
        }
    }

    /// Takes a loss of events from a CPU's buffer, in its place in that CPU's stream
    /// (after the events read before it, before those read after it): when the merge
    /// reaches it, every start in flight is invalidated, and so is every start up to
    /// the end of the loss (see [`Inflight::gap`]).
    pub fn gap(&mut self, gap: Gap) {
        self.merger
            .push(gap.cpu as usize, gap.after, Held::Gap { until: gap.before });
    }

    /// The losses the merge has reached since the last call, as `(after, before)`
    /// time-stamp ranges holding every lost event (to mark output intervals as
    /// incomplete).
    pub fn take_gaps(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.gaps)
    }

    /// Pairs every held event up to `watermark` (a clock reading taken before the
    /// buffers were drained; `u64::MAX` at the end) in time order and calls `done` for
    /// each completed I/O. `keep_start(who)` decides whether a start is tracked.
    pub fn release(
        &mut self,
        watermark: u64,
        mut keep_start: impl FnMut(&D::Who) -> bool,
        mut done: impl FnMut(&Completed<D>),
    ) {
        let inflight = &mut self.inflight;
        let gaps = &mut self.gaps;
        self.merger.release(watermark, |ts, held| match held {
            Held::Event(ev) => {
                if let Some(c) = inflight.feed(ts, ev, &mut keep_start) {
                    done(&c);
                }
            }
            Held::Gap { until } => {
                inflight.gap(*until);
                // Bounded for tools that never take them: past 1024, one range
                // covering them all (still holding every lost event).
                if gaps.len() >= 1024 {
                    let all = gaps
                        .iter()
                        .fold((ts, *until), |a, g| (a.0.min(g.0), a.1.max(g.1)));
                    gaps.clear();
                    gaps.push(all);
                } else {
                    gaps.push((ts, *until));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Lean;
    use crate::inflight::Start;
    #[test]
    fn lean_events_stay_small() {
        // What iolatency holds per event in the merge and per I/O in flight.
        use std::mem::size_of;
        assert!(size_of::<(u64, BlockEvent<Lean>)>() <= 32);
        assert!(
            size_of::<(u64, Held<Lean>)>() <= 32,
            "a gap marker costs no space"
        );
        assert_eq!(size_of::<Start<()>>(), 8);
        assert!(size_of::<(u64, BlockEvent<Lean>)>() < size_of::<(u64, BlockEvent<Full>)>());
    }
}
