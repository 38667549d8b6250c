//! Cross-CPU time ordering of decoded events.
//!
//! Events from one CPU arrive in time order, but an I/O issued on one CPU may complete
//! on another, and the two CPUs' buffers are read one after the other. [`Merger`] holds
//! decoded events and releases them in timestamp order, only up to a watermark: the
//! clock reading taken *before* the buffers were drained. Anything newer may still have
//! an earlier partner on a CPU that was read first, so it waits for the next batch.

/// Orders events by timestamp across drains.
#[derive(Debug)]
pub struct Merger<T> {
    pending: Vec<(u64, T)>,
}

impl<T> Default for Merger<T> {
    fn default() -> Self {
        Merger {
            pending: Vec::new(),
        }
    }
}

impl<T> Merger<T> {
    /// Creates an empty merger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event with its timestamp.
    #[inline]
    pub fn push(&mut self, ts: u64, ev: T) {
        self.pending.push((ts, ev));
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Calls `f` for every held event with timestamp `<= watermark`, oldest first, and
    /// keeps the rest. Pass `u64::MAX` to release everything.
    pub fn release(&mut self, watermark: u64, mut f: impl FnMut(u64, T)) {
        // Stable sort: events with equal stamps keep their per-CPU read order.
        self.pending.sort_by_key(|e| e.0);
        let split = self.pending.partition_point(|e| e.0 <= watermark);
        let rest = self.pending.split_off(split);
        for (ts, ev) in std::mem::replace(&mut self.pending, rest) {
            f(ts, ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_order_up_to_watermark() {
        let mut m = Merger::new();
        m.push(30, "c1-b");
        m.push(10, "c1-a");
        m.push(20, "c0-a");
        m.push(40, "c0-b");
        let mut out = Vec::new();
        m.release(30, |ts, e| out.push((ts, e)));
        assert_eq!(out, vec![(10, "c1-a"), (20, "c0-a"), (30, "c1-b")]);
        assert_eq!(m.len(), 1);
        m.push(35, "late");
        out.clear();
        m.release(u64::MAX, |ts, e| out.push((ts, e)));
        assert_eq!(out, vec![(35, "late"), (40, "c0-b")]);
        assert!(m.is_empty());
    }
}
