//! Pairing of each request's start with its completion by (device, sector), bounded,
//! and never across a loss of events.

use crate::decode::{BlockEvent, Detail, Full, Who};
use crate::device::{Device, StartPoint};
use crate::inflight_table::{Key, Table};

/// The start of an I/O still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start<W = Who> {
    /// Start timestamp (ns, trace clock).
    pub ts: u64,
    /// Who started it ([`Who`] with [`Full`] detail).
    pub who: W,
}

/// A completed I/O: its start and completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed<D: Detail = Full> {
    /// The matching start.
    pub start: Start<D::Who>,
    /// Completion timestamp (ns).
    pub end_ts: u64,
    /// Device.
    pub dev: Device,
    /// First sector.
    pub sector: u64,
    /// What it was ([`What`](crate::What) with [`Full`] detail).
    pub what: D::What,
}

impl<D: Detail> Completed<D> {
    /// Latency in nanoseconds.
    pub fn latency_ns(&self) -> u64 {
        self.end_ts.saturating_sub(self.start.ts)
    }
}

impl Key {
    #[inline(always)]
    fn new(dev: Device, sector: u64) -> Key {
        Key {
            dev: dev.to_kernel(),
            sector,
        }
    }
}

/// Marks a start in the table as invalidated by a gap (the top bit of its time stamp:
/// trace clocks in nanoseconds stay below 2^63 for 292 years).
const DEAD: u64 = 1 << 63;

/// Pairs starts with completions by (device, sector).
///
/// Starts wait in a bounded table; starts older than `max_age_ns` are dropped, and a
/// completion without a start is dropped. When events were lost ([`Inflight::gap`]),
/// no start from before the loss pairs with a completion after it: the start's own
/// completion, or a later start of the same sector, may be among the lost events, and
/// pairing across the loss would print the time between two different I/Os. Such
/// starts are kept as invalidated entries until the next loss (so their completion, or
/// in `-Q` mode their issue, is absorbed rather than timed) and counted in
/// `dropped_at_gap`. In-flight starts survive across output intervals.
#[derive(Debug)]
pub struct Inflight<D: Detail = Full> {
    table: Table<Start<D::Who>>,
    prefer_insert: bool,
    max_age_ns: u64,
    capacity: usize,
    last_sweep: u64,
    /// Starts dropped because they aged out or the table was full.
    pub aged_out: u64,
    /// Completions that had no start (filtered out, started before tracing, or lost).
    pub unmatched: u64,
    /// I/Os not timed because their start came before a loss of events and their
    /// completion (if any arrived) after it.
    pub dropped_at_gap: u64,
    /// Starts no newer than this are invalidated on arrival (the end of the latest loss).
    gap_until: Option<u64>,
}

impl<D: Detail> Inflight<D> {
    /// Creates a table; `start` decides which start wins when both insert and issue fire.
    pub fn new(start: StartPoint) -> Inflight<D> {
        Inflight {
            table: Table::with_capacity(1024),
            prefer_insert: start == StartPoint::Insert,
            max_age_ns: 120_000_000_000,
            capacity: 1 << 20,
            last_sweep: 0,
            aged_out: 0,
            unmatched: 0,
            dropped_at_gap: 0,
            gap_until: None,
        }
    }

    /// Overrides the age limit and the table size (for tests).
    pub fn with_limits(mut self, max_age_ns: u64, capacity: usize) -> Inflight<D> {
        self.max_age_ns = max_age_ns;
        self.capacity = capacity.max(1);
        self
    }

    /// Number of starts waiting for completion.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if no start is waiting.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Events were lost, none of them newer than `until`; call it in time order with
    /// the events, at (or before) the time of the oldest lost event. Every start in
    /// flight is invalidated, and so is every later start no newer than `until`: none
    /// of them pairs with a completion.
    pub fn gap(&mut self, until: u64) {
        // Starts invalidated by an earlier loss have had until this one for their
        // completion to arrive: most were themselves lost. They go now (a completion
        // that still comes finds no start and is not timed either), so that under
        // sustained overload the table holds what is in flight, not every start whose
        // completion was lost (tens of thousands, for up to max_age_ns).
        self.table.retain(|s| s.ts & DEAD == 0);
        let mut dropped = 0;
        self.table.for_each_mut(|s| {
            if s.ts & DEAD == 0 {
                s.ts |= DEAD;
                dropped += 1;
            }
        });
        self.dropped_at_gap += dropped;
        self.gap_until = self.gap_until.max(Some(until));
    }

    /// Feeds one event in time order; returns a completed I/O when it closes one.
    /// `keep_start` decides whether a start is tracked (e.g. a process-name filter).
    #[inline]
    pub fn feed(
        &mut self,
        ts: u64,
        ev: &BlockEvent<D>,
        keep_start: impl FnOnce(&D::Who) -> bool,
    ) -> Option<Completed<D>> {
        match *ev {
            BlockEvent::Start {
                issue,
                dev,
                sector,
                who,
            } => {
                if ts.saturating_sub(self.last_sweep) > 1_000_000_000
                    || self.table.len() >= self.capacity
                {
                    self.sweep(ts);
                }
                let key = Key::new(dev, sector);
                if issue && self.prefer_insert {
                    // -Q: keep the queue-insert time when insert fired; else time from
                    // issue. An insert invalidated by a gap stays invalid: its issue
                    // must not time the I/O from the issue instead.
                    if let Some(s) = self.table.get(&key) {
                        if ts.saturating_sub(s.ts & !DEAD) <= self.max_age_ns {
                            return None;
                        }
                    }
                }
                if keep_start(&who) {
                    let ts = if self.gap_until.is_some_and(|until| ts <= until) {
                        self.dropped_at_gap += 1;
                        ts | DEAD
                    } else {
                        ts
                    };
                    self.table.insert(key, Start { ts, who });
                } else {
                    self.table.remove(&key);
                }
                None
            }
            BlockEvent::Complete { dev, sector, what } => {
                match self.table.remove(&Key::new(dev, sector)) {
                    // Started before a loss: not timed (counted when invalidated).
                    Some(start) if start.ts & DEAD != 0 => None,
                    Some(start) if ts >= start.ts && ts - start.ts <= self.max_age_ns => {
                        Some(Completed {
                            start,
                            end_ts: ts,
                            dev,
                            sector,
                            what,
                        })
                    }
                    Some(_) => {
                        self.aged_out += 1;
                        None
                    }
                    None => {
                        self.unmatched += 1;
                        None
                    }
                }
            }
        }
    }

    fn sweep(&mut self, now: u64) {
        self.last_sweep = now;
        let before = self.table.len();
        let mut limit = now.saturating_sub(self.max_age_ns);
        self.table.retain(|s| s.ts & !DEAD >= limit);
        // Still full: drop the oldest half by age.
        if self.table.len() >= self.capacity {
            let mut ts: Vec<u64> = self.table.values().map(|s| s.ts & !DEAD).collect();
            ts.sort_unstable();
            limit = ts[ts.len() / 2];
            self.table.retain(|s| s.ts & !DEAD >= limit);
        }
        self.aged_out += (before - self.table.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::What;
    fn start(ts_dev_sector: (u64, u32, u64), issue: bool) -> (u64, BlockEvent) {
        let (ts, minor, sector) = ts_dev_sector;
        (
            ts,
            BlockEvent::Start {
                issue,
                dev: Device { major: 7, minor },
                sector,
                who: Who {
                    queued: !issue,
                    ..Who::default()
                },
            },
        )
    }

    fn done(ts: u64, minor: u32, sector: u64) -> (u64, BlockEvent) {
        (
            ts,
            BlockEvent::Complete {
                dev: Device { major: 7, minor },
                sector,
                what: What::default(),
            },
        )
    }

    #[test]
    fn pairs_by_device_and_sector() {
        let mut t = Inflight::new(StartPoint::Issue);
        let evs = [
            start((100, 0, 8), true),
            start((110, 1, 8), true),
            done(150, 1, 8),
            done(400, 0, 8),
            done(500, 0, 8),
        ];
        let lat: Vec<u64> = evs
            .iter()
            .filter_map(|(ts, e)| t.feed(*ts, e, |_| true))
            .map(|c| c.latency_ns())
            .collect();
        assert_eq!(lat, vec![40, 300]);
        assert_eq!(t.unmatched, 1, "a completion without a start is dropped");
        assert!(t.is_empty());
    }

    #[test]
    fn queue_mode_keeps_insert_time_and_falls_back_to_issue() {
        let mut t = Inflight::new(StartPoint::Insert);
        let evs = [
            start((100, 0, 8), false),
            start((130, 0, 8), true),
            done(200, 0, 8),
            start((300, 0, 16), true),
            done(350, 0, 16),
        ];
        let lat: Vec<(u64, bool)> = evs
            .iter()
            .filter_map(|(ts, e)| t.feed(*ts, e, |_| true))
            .map(|c| (c.latency_ns(), c.start.who.queued))
            .collect();
        // The second I/O never passed the queue: timed from issue, and marked so.
        assert_eq!(lat, vec![(100, true), (50, false)]);
    }

    #[test]
    fn old_starts_age_out_instead_of_pairing() {
        let mut t = Inflight::new(StartPoint::Issue).with_limits(1_000, 4);
        assert!(t.feed(0, &start((0, 0, 8), true).1, |_| true).is_none());
        assert!(t.feed(5_000, &done(5_000, 0, 8).1, |_| true).is_none());
        assert_eq!(t.aged_out, 1);
        // Capacity bound: the table never grows past its capacity.
        for i in 0..100u64 {
            t.feed(10_000 + i, &start((0, 0, 100 + i), true).1, |_| true);
            assert!(t.len() <= 4);
        }
    }

    #[test]
    fn no_start_before_a_gap_pairs_with_a_completion_after_it() {
        // Sector 8's completion at 150 and the next start of sector 8 at 160 were lost
        // (on another CPU); without the gap, 100 would pair with 420.
        let mut t = Inflight::new(StartPoint::Issue);
        assert!(t.feed(100, &start((100, 0, 8), true).1, |_| true).is_none());
        assert!(t
            .feed(110, &start((110, 0, 16), true).1, |_| true)
            .is_none());
        t.gap(200);
        assert_eq!(t.dropped_at_gap, 2, "every start in flight is invalidated");
        // A start inside the loss may have lost its completion too.
        assert!(t
            .feed(190, &start((190, 0, 24), true).1, |_| true)
            .is_none());
        assert_eq!(t.dropped_at_gap, 3);
        assert!(t.feed(420, &done(420, 0, 8).1, |_| true).is_none());
        assert!(t.feed(430, &done(430, 0, 24).1, |_| true).is_none());
        assert_eq!(
            t.unmatched, 0,
            "completions of invalidated starts are absorbed"
        );
        // After the loss, pairing resumes.
        assert!(t
            .feed(500, &start((500, 0, 16), true).1, |_| true)
            .is_none());
        let c = t.feed(530, &done(530, 0, 16).1, |_| true).unwrap();
        assert_eq!(c.latency_ns(), 30);
        assert_eq!(t.dropped_at_gap, 3);
        // Invalidated starts still age out.
        let mut t = Inflight::<Full>::new(StartPoint::Issue).with_limits(1_000, 4);
        t.feed(0, &start((0, 0, 8), true).1, |_| true);
        t.gap(10);
        for i in 0..8u64 {
            t.feed(5_000 + i, &start((0, 0, 100 + i), true).1, |_| true);
        }
        assert!(t.len() <= 4);
    }

    #[test]
    fn queue_mode_does_not_time_from_issue_when_the_insert_preceded_a_gap() {
        let mut t = Inflight::new(StartPoint::Insert);
        t.feed(100, &start((100, 0, 8), false).1, |_| true);
        t.gap(200);
        // The issue after the loss: timing it from the issue would hide the queue time.
        assert!(t.feed(300, &start((300, 0, 8), true).1, |_| true).is_none());
        assert!(t.feed(350, &done(350, 0, 8).1, |_| true).is_none());
        assert_eq!(t.dropped_at_gap, 1);
        // A later request bypassing the scheduler is timed from its issue again.
        t.feed(400, &start((400, 0, 8), true).1, |_| true);
        assert_eq!(
            t.feed(460, &done(460, 0, 8).1, |_| true)
                .unwrap()
                .latency_ns(),
            60
        );
    }

    #[test]
    fn starts_invalidated_by_a_loss_go_at_the_next_one() {
        // Sustained overload: each loss leaves starts whose completions were lost; the
        // table must not keep them all for max_age_ns.
        let mut t = Inflight::new(StartPoint::Issue);
        for round in 0..10u64 {
            for i in 0..1000u64 {
                let ts = round * 10_000 + i;
                t.feed(ts, &start((ts, 0, round * 1000 + i), true).1, |_| true);
            }
            t.gap(round * 10_000 + 5_000);
            assert!(t.len() <= 1000, "round {round}: {}", t.len());
        }
        assert_eq!(t.dropped_at_gap, 10_000);
        // What went is not timed either: a late completion finds no start.
        assert!(t.feed(200_000, &done(200_000, 0, 0).1, |_| true).is_none());
        assert_eq!(t.unmatched, 1);
    }

    #[test]
    fn name_filter_drops_starts() {
        let mut t = Inflight::new(StartPoint::Issue);
        t.feed(1, &start((1, 0, 8), true).1, |_| false);
        assert!(t.feed(2, &done(2, 0, 8).1, |_| true).is_none());
    }
}
