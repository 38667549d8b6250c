//! Cross-CPU time ordering of decoded events.
//!
//! Events from one CPU arrive in time order, but an I/O issued on one CPU may complete
//! on another, and the two CPUs' buffers are read one after the other. [`Merger`] holds
//! decoded events in one queue per CPU and releases them in timestamp order (a k-way
//! merge of already ordered queues: nothing is sorted), only up to a watermark: the
//! clock reading taken *before* the buffers were drained. Anything newer may still have
//! an earlier partner on a CPU that was read first, so it waits for the next batch.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One CPU's events: `events[next..]` are still held.
#[derive(Debug)]
struct Queue<T> {
    events: Vec<(u64, T)>,
    next: usize,
}

impl<T> Queue<T> {
    #[inline]
    fn head(&self) -> Option<u64> {
        self.events.get(self.next).map(|e| e.0)
    }

    /// Forgets released events (keeps the allocation). Held events are moved to the
    /// front only once released ones are at least half the queue, so the copying stays
    /// proportional to the events released however often `release` runs.
    fn compact(&mut self) {
        if self.next == self.events.len() {
            self.events.clear();
            self.next = 0;
        } else if self.next * 2 >= self.events.len() {
            self.events.drain(..self.next);
            self.next = 0;
        }
    }
}

/// Orders events by timestamp across CPUs and drains.
#[derive(Debug)]
pub struct Merger<T> {
    queues: Vec<Queue<T>>,
    len: usize,
}

impl<T> Default for Merger<T> {
    fn default() -> Self {
        Merger {
            queues: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Merger<T> {
    /// Creates an empty merger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event read from buffer `cpu` with its timestamp. Events of one CPU must
    /// be pushed in the order the kernel recorded them.
    #[inline]
    pub fn push(&mut self, cpu: usize, ts: u64, ev: T) {
        if cpu >= self.queues.len() {
            self.queues.resize_with(cpu + 1, || Queue {
                events: Vec::new(),
                next: 0,
            });
        }
        self.queues[cpu].events.push((ts, ev));
        self.len += 1;
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` for every held event with timestamp `<= watermark`, oldest first
    /// (ties: lower CPU first), and keeps the rest. Pass `u64::MAX` to release all.
    /// `f` gets the event by reference (it may take owned parts out of it): released
    /// events are dropped when `release` returns.
    pub fn release(&mut self, watermark: u64, mut f: impl FnMut(u64, &mut T)) {
        if self.queues.len() <= 8 {
            self.release_scan(watermark, &mut f);
        } else {
            self.release_heap(watermark, &mut f);
        }
        for q in &mut self.queues {
            q.compact();
        }
        self.len = self.queues.iter().map(|q| q.events.len() - q.next).sum();
    }

    /// Releases queue `cpu`'s run of events up to `bound` (the next-oldest head, as
    /// `(ts, cpu)`; ties go to the lower CPU) and never past `watermark`.
    #[inline]
    fn release_run(
        q: &mut Queue<T>,
        cpu: usize,
        bound: (u64, usize),
        watermark: u64,
        f: &mut impl FnMut(u64, &mut T),
    ) {
        let limit = if cpu < bound.1 {
            bound.0
        } else {
            bound.0.saturating_sub(1)
        }
        .min(watermark);
        let mut i = q.next;
        while let Some((t, ev)) = q.events.get_mut(i) {
            if *t > limit {
                break;
            }
            f(*t, ev);
            i += 1;
        }
        q.next = i;
    }

    /// Few CPUs: find the oldest head by a linear scan (cheaper than a heap), then
    /// release that CPU's run up to the second-oldest head.
    fn release_scan(&mut self, watermark: u64, f: &mut impl FnMut(u64, &mut T)) {
        loop {
            let mut best: Option<(u64, usize)> = None;
            let mut second = (u64::MAX, usize::MAX);
            for (cpu, q) in self.queues.iter().enumerate() {
                if let Some(t) = q.head() {
                    match best {
                        Some(b) if (t, cpu) >= b => second = second.min((t, cpu)),
                        _ => {
                            if let Some(b) = best {
                                second = second.min(b);
                            }
                            best = Some((t, cpu));
                        }
                    }
                }
            }
            let Some((t, cpu)) = best else { return };
            if t > watermark {
                return;
            }
            Self::release_run(&mut self.queues[cpu], cpu, second, watermark, f);
        }
    }

    /// Many CPUs: a heap of queue heads.
    fn release_heap(&mut self, watermark: u64, f: &mut impl FnMut(u64, &mut T)) {
        let mut heads: BinaryHeap<Reverse<(u64, usize)>> = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(cpu, q)| q.head().map(|t| Reverse((t, cpu))))
            .collect();
        while let Some(Reverse((ts, cpu))) = heads.pop() {
            if ts > watermark {
                break;
            }
            let next = heads.peek().map_or((u64::MAX, usize::MAX), |Reverse(h)| *h);
            let q = &mut self.queues[cpu];
            Self::release_run(q, cpu, next, watermark, f);
            if let Some(t) = q.head() {
                heads.push(Reverse((t, cpu)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_order_up_to_watermark() {
        let mut m = Merger::new();
        m.push(1, 10, "c1-a");
        m.push(1, 30, "c1-b");
        m.push(0, 20, "c0-a");
        m.push(0, 40, "c0-b");
        let mut out = Vec::new();
        m.release(30, |ts, e| out.push((ts, *e)));
        assert_eq!(out, vec![(10, "c1-a"), (20, "c0-a"), (30, "c1-b")]);
        assert_eq!(m.len(), 1);
        m.push(1, 35, "late");
        out.clear();
        m.release(u64::MAX, |ts, e| out.push((ts, *e)));
        assert_eq!(out, vec![(35, "late"), (40, "c0-b")]);
        assert!(m.is_empty());
    }

    #[test]
    fn equals_a_sort_on_interleaved_runs() {
        check_against_sort(4);
        check_against_sort(12);
    }

    fn check_against_sort(ncpu: usize) {
        // Pseudo-random per-CPU ordered runs; the merge must equal a stable sort by
        // (ts, cpu), for any watermark sequence.
        let mut x: u64 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut m = Merger::new();
        let mut all = Vec::new();
        let mut clock = vec![0u64; ncpu];
        let mut out = Vec::new();
        for round in 0..50 {
            for _ in 0..(next() % 40) {
                let cpu = (next() % ncpu as u64) as usize;
                clock[cpu] += next() % 5;
                m.push(cpu, clock[cpu], (cpu, round));
                all.push((clock[cpu], (cpu, round)));
            }
            // Every later push is newer than this: it is the watermark's invariant.
            let wm = clock.iter().min().unwrap_or(&0).saturating_sub(1);
            m.release(wm, |ts, e| out.push((ts, *e)));
        }
        m.release(u64::MAX, |ts, e| out.push((ts, *e)));
        let mut want = all.clone();
        want.sort_by_key(|&(ts, (cpu, _))| (ts, cpu));
        let key = |v: &Vec<(u64, (usize, i32))>| {
            v.iter().map(|&(ts, (c, _))| (ts, c)).collect::<Vec<_>>()
        };
        assert!(key(&out) == key(&want), "merge order differs from a sort");
        assert_eq!(out.len(), all.len());
    }
}
