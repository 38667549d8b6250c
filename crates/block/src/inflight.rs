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
/// trace clocks in nanoseconds stay below 2^62 for 146 years).
const DEAD: u64 = 1 << 63;
/// Marks a start in the table that is not timed (left out by `keep_start`): it still
/// holds its sector, so that its completion is not taken for another I/O's.
const SKIP: u64 = 1 << 62;
/// The flag bits of a start's time stamp.
const FLAGS: u64 = DEAD | SKIP;

/// A device and sector with more than one I/O in flight: their completions cannot be
/// told apart, so none of them is timed until all have completed.
#[derive(Debug, Clone, Copy)]
struct Shared<W> {
    /// I/Os of the sector in flight.
    in_flight: u32,
    /// Of those, requeued ones, whose next start is the same I/O started again.
    requeued: u32,
    /// The newest start (for the age limit; at a gap it stays as an invalidated start).
    newest: Start<W>,
}

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
///
/// Two I/Os of one device and sector in flight together (reads of one hot block, a
/// flush) cannot be paired: the first completion could be either one's. Pairing the
/// newest start with it, as the original does, times the older I/O from the newer one's
/// start (too short). Such I/Os are counted in `overlapped` and not timed; the sector
/// is paired again once all of them have completed. A requeued request
/// (`block_rq_requeue`) is the same I/O when it starts again, not another one.
#[derive(Debug)]
pub struct Inflight<D: Detail = Full> {
    table: Table<Start<D::Who>>,
    shared: std::collections::HashMap<Key, Shared<D::Who>>,
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
    /// I/Os not timed because another I/O of the same device and sector was in flight
    /// with them.
    pub overlapped: u64,
    /// Starts no newer than this are invalidated on arrival (the end of the latest loss).
    gap_until: Option<u64>,
}

impl<D: Detail> Inflight<D> {
    /// Creates a table; `start` decides which start wins when both insert and issue fire.
    pub fn new(start: StartPoint) -> Inflight<D> {
        Inflight {
            table: Table::with_capacity(1024),
            shared: std::collections::HashMap::new(),
            prefer_insert: start == StartPoint::Insert,
            max_age_ns: 120_000_000_000,
            capacity: 1 << 20,
            last_sweep: 0,
            aged_out: 0,
            unmatched: 0,
            dropped_at_gap: 0,
            overlapped: 0,
            gap_until: None,
        }
    }

    /// Overrides the age limit and the table size (for tests).
    pub fn with_limits(mut self, max_age_ns: u64, capacity: usize) -> Inflight<D> {
        self.max_age_ns = max_age_ns;
        self.capacity = capacity.max(1);
        self
    }

    /// Number of starts waiting for completion (a sector with several I/Os in flight
    /// counts once).
    pub fn len(&self) -> usize {
        self.table.len() + self.shared.len()
    }

    /// True if no start is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The end-of-run note on I/Os not timed because another I/O of their sector was
    /// in flight with them (`overlapped`), for stderr; `None` if there were none.
    pub fn overlap_note(&self) -> Option<String> {
        (self.overlapped > 0).then(|| {
            format!(
                "note: {} I/O were not timed: each was in flight together with another I/O of the same device and sector, whose completions cannot be told apart",
                self.overlapped
            )
        })
    }

    /// Adds the I/Os not timed because another I/O of their sector was in flight with
    /// them to a tool's end-of-run account (nothing if there were none).
    pub fn note_overlaps(&self, account: &mut perf_tools_ftrace::session::RunAccount) {
        if self.overlapped > 0 {
            account.notes.push(format!(
                "{} not timed (another I/O of their sector in flight)",
                perf_tools_ftrace::session::thousands(self.overlapped)
            ));
        }
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
                dropped += u64::from(s.ts & SKIP == 0);
            }
        });
        // A sector's several I/Os (counted in `overlapped`) may have lost completions:
        // how many are still in flight is no longer known. The sector stays as one
        // invalidated start, as a single I/O in flight does.
        for (key, sh) in self.shared.drain() {
            let newest = Start {
                ts: sh.newest.ts | DEAD,
                who: sh.newest.who,
            };
            self.table.insert(key, newest);
        }
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
                if ts.saturating_sub(self.last_sweep) > 1_000_000_000 || self.len() >= self.capacity
                {
                    self.sweep(ts);
                }
                let key = Key::new(dev, sector);
                if issue && self.prefer_insert {
                    // -Q: keep the queue-insert time when insert fired; else time from
                    // issue. An insert invalidated by a gap stays invalid: its issue
                    // must not time the I/O from the issue instead. On a sector with
                    // several I/Os in flight, an issue is taken for one of theirs.
                    if self.shared.contains_key(&key) {
                        return None;
                    }
                    if let Some(s) = self.table.get(&key) {
                        if ts.saturating_sub(s.ts & !FLAGS) <= self.max_age_ns {
                            return None;
                        }
                    }
                }
                let keep = keep_start(&who);
                let invalid = self.gap_until.is_some_and(|until| ts <= until);
                let flags = if keep { 0 } else { SKIP } | if invalid { DEAD } else { 0 };
                let start = Start {
                    ts: ts | flags,
                    who,
                };
                if let Some(sh) = self.shared.get_mut(&key) {
                    sh.newest = start;
                    if sh.requeued > 0 {
                        sh.requeued -= 1;
                    } else {
                        sh.in_flight += 1;
                        if flags == 0 {
                            self.overlapped += 1;
                        }
                    }
                    return None;
                }
                match self.table.get(&key) {
                    // Another I/O of this sector is in flight (not one from before a
                    // loss, whose completion may be lost: that one is replaced).
                    Some(s)
                        if s.ts & DEAD == 0
                            && ts.saturating_sub(s.ts & !FLAGS) <= self.max_age_ns =>
                    {
                        let timed = |s: u64| u64::from(s & FLAGS == 0);
                        self.overlapped += timed(s.ts) + timed(start.ts);
                        self.table.remove(&key);
                        self.shared.insert(
                            key,
                            Shared {
                                in_flight: 2,
                                requeued: 0,
                                newest: start,
                            },
                        );
                    }
                    _ => {
                        if keep && invalid {
                            self.dropped_at_gap += 1;
                        }
                        self.table.insert(key, start);
                    }
                }
                None
            }
            BlockEvent::Requeue { dev, sector } => {
                let key = Key::new(dev, sector);
                if let Some(sh) = self.shared.get_mut(&key) {
                    sh.requeued = (sh.requeued + 1).min(sh.in_flight);
                } else {
                    // Started again later, and timed from there (as the original does).
                    self.table.remove(&key);
                }
                None
            }
            BlockEvent::Complete { dev, sector, what } => {
                let key = Key::new(dev, sector);
                if let Some(sh) = self.shared.get_mut(&key) {
                    // One of several: not timed (counted when they met).
                    sh.in_flight -= 1;
                    if sh.in_flight <= sh.requeued {
                        self.shared.remove(&key);
                    }
                    return None;
                }
                match self.table.remove(&key) {
                    // Started before a loss, or left out: not timed (counted when
                    // invalidated).
                    Some(start) if start.ts & FLAGS != 0 => None,
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
        let shared_before = self.shared.len();
        let mut limit = now.saturating_sub(self.max_age_ns);
        self.table.retain(|s| s.ts & !FLAGS >= limit);
        self.shared.retain(|_, sh| sh.newest.ts & !FLAGS >= limit);
        // Still full: drop the oldest half by age.
        if self.len() >= self.capacity {
            let mut ts: Vec<u64> = self.table.values().map(|s| s.ts & !FLAGS).collect();
            ts.extend(self.shared.values().map(|sh| sh.newest.ts & !FLAGS));
            ts.sort_unstable();
            limit = ts[ts.len() / 2];
            self.table.retain(|s| s.ts & !FLAGS >= limit);
            self.shared.retain(|_, sh| sh.newest.ts & !FLAGS >= limit);
        }
        self.aged_out += (before - self.table.len()) as u64;
        self.aged_out += (shared_before - self.shared.len()) as u64;
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
        assert_eq!(t.unmatched, 0, "its completion is absorbed, not unmatched");
        assert!(t.is_empty());
    }

    fn requeue(ts: u64, minor: u32, sector: u64) -> (u64, BlockEvent) {
        (
            ts,
            BlockEvent::Requeue {
                dev: Device { major: 7, minor },
                sector,
            },
        )
    }

    /// Feeds `evs` (keeping every start) and returns the latencies timed.
    fn lats(t: &mut Inflight, evs: &[(u64, BlockEvent)]) -> Vec<u64> {
        evs.iter()
            .filter_map(|(ts, e)| t.feed(*ts, e, |_| true))
            .map(|c| c.latency_ns())
            .collect()
    }

    #[test]
    fn two_ios_of_one_sector_in_flight_are_not_timed() {
        // Two reads of sector 8 overlap; the first completion (150) is one of them, but
        // which? Pairing it with the newest start timed the read of 100 as 40 ns.
        let mut t = Inflight::new(StartPoint::Issue);
        let evs = [
            start((100, 0, 8), true),
            start((110, 0, 8), true),
            start((120, 0, 16), true),
            done(150, 0, 8),
            done(160, 0, 16),
            done(200, 0, 8),
        ];
        assert_eq!(lats(&mut t, &evs), vec![40], "only sector 16 is timed");
        assert_eq!((t.overlapped, t.unmatched), (2, 0));
        assert!(t.is_empty());
        // Once both completed, the sector pairs again; three at once count three.
        let evs = [
            start((300, 0, 8), true),
            done(350, 0, 8),
            start((400, 0, 8), true),
            start((410, 0, 8), true),
            start((420, 0, 8), true),
            done(430, 0, 8),
            done(440, 0, 8),
            done(450, 0, 8),
            start((500, 0, 8), true),
            done(520, 0, 8),
        ];
        assert_eq!(lats(&mut t, &evs), vec![50, 20]);
        assert_eq!((t.overlapped, t.unmatched), (5, 0));
        assert!(t.is_empty());
    }

    #[test]
    fn a_requeued_request_started_again_is_the_same_io() {
        let mut t = Inflight::new(StartPoint::Issue);
        // Issued, sent back by the driver, issued again: one I/O, timed from the
        // second issue (as the original).
        let evs = [
            start((100, 0, 8), true),
            requeue(110, 0, 8),
            start((130, 0, 8), true),
            done(200, 0, 8),
        ];
        assert_eq!(lats(&mut t, &evs), vec![70]);
        assert_eq!(t.overlapped, 0);
        // Requeued while another I/O of the sector is in flight: its new start is not a
        // third I/O, and the sector pairs again once both completed.
        let evs = [
            start((300, 0, 8), true),
            start((310, 0, 8), true),
            requeue(320, 0, 8),
            start((330, 0, 8), true),
            done(340, 0, 8),
            done(350, 0, 8),
            start((400, 0, 8), true),
            done(460, 0, 8),
        ];
        assert_eq!(lats(&mut t, &evs), vec![60]);
        assert_eq!((t.overlapped, t.unmatched), (2, 0));
        assert!(t.is_empty());
    }

    #[test]
    fn a_start_left_out_still_holds_its_sector() {
        // A start the tool does not show (another process, with -n) overlapping one it
        // shows: the first completion may be the one left out.
        let mut t = Inflight::new(StartPoint::Issue);
        t.feed(100, &start((100, 0, 8), true).1, |_| false);
        t.feed(110, &start((110, 0, 8), true).1, |_| true);
        assert!(t.feed(150, &done(150, 0, 8).1, |_| true).is_none());
        assert!(t.feed(200, &done(200, 0, 8).1, |_| true).is_none());
        assert_eq!((t.overlapped, t.unmatched), (1, 0));
        assert!(t.is_empty());
    }

    #[test]
    fn a_loss_leaves_a_shared_sector_as_one_invalidated_start() {
        let mut t = Inflight::new(StartPoint::Issue);
        t.feed(100, &start((100, 0, 8), true).1, |_| true);
        t.feed(110, &start((110, 0, 8), true).1, |_| true);
        t.gap(150);
        assert_eq!((t.overlapped, t.dropped_at_gap, t.len()), (2, 0, 1));
        // Its next completion is absorbed; a start after the loss pairs again.
        let evs = [done(200, 0, 8), start((300, 0, 8), true), done(330, 0, 8)];
        assert_eq!(lats(&mut t, &evs), vec![30]);
        assert_eq!(t.unmatched, 0);
    }

    #[test]
    fn queue_mode_takes_an_issue_on_a_shared_sector_for_one_of_its_inserts() {
        let mut t = Inflight::new(StartPoint::Insert);
        let evs = [
            start((100, 0, 8), false),
            start((110, 0, 8), false),
            start((120, 0, 8), true),
            start((130, 0, 8), true),
            done(150, 0, 8),
            done(160, 0, 8),
            start((200, 0, 8), false),
            start((210, 0, 8), true),
            done(250, 0, 8),
        ];
        assert_eq!(lats(&mut t, &evs), vec![50]);
        assert_eq!((t.overlapped, t.unmatched), (2, 0));
        assert!(t.is_empty());
    }
}
