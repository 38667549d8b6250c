//! Outlier recording: rows that pass a test (an I/O slower than a threshold, a slow
//! call) are printed with the rows around them in time, from a bounded window of
//! recent rows held in memory.
//!
//! [`ContextWindow`] takes rows in time order (each [`Timed`]) and says for each whether
//! it is an outlier. It emits ([`Emit`]) each outlier, every row whose time lies within
//! `before` of an outlier's time (taken from the window) and within `after` of it
//! (printed as it arrives), each row once and in arrival order, however the contexts of
//! outliers overlap. Everything else is dropped.
//!
//! Memory is bounded whatever the rate and duration: the window holds at most
//! [`Bound::rows`] rows and [`Bound::bytes`] bytes (a row costs its size plus
//! [`Timed::heap_bytes`]). When the bound is hit the oldest rows are dropped, and if an
//! outlier's `before` context then lacks rows, [`Emit::Truncated`] says which span of
//! time is missing, before the context rows: never silently. So does [`Emit::Lost`] for
//! a span where the source lost events ([`ContextWindow::gap`]).

use std::collections::VecDeque;

/// A row with a time stamp (ns, any monotonic clock the rows share).
pub trait Timed {
    /// The row's time: rows reach [`ContextWindow::push`] in non-decreasing order of it.
    fn ts(&self) -> u64;
    /// Heap memory the row owns, on top of its size (0 for plain data).
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// The memory bound of a [`ContextWindow`]: whichever is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// At most this many rows held.
    pub rows: usize,
    /// At most this many bytes held (rows' sizes plus their heap memory).
    pub bytes: usize,
}

/// What a [`ContextWindow`] passes on, in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit<R> {
    /// A row to print: an outlier, or context of one.
    Row {
        /// The row.
        row: R,
        /// It is an outlier (else context).
        outlier: bool,
    },
    /// The context before the next outlier is incomplete: rows with times from `from` to
    /// `to` (inclusive) were dropped because the window reached its bound.
    Truncated {
        /// Time of the oldest missing row that falls in the context.
        from: u64,
        /// Time of the newest missing row.
        to: u64,
        /// How many rows the bound has dropped since the previous truncation report
        /// (some may lie before `from`, out of the context).
        dropped: u64,
    },
    /// Rows with times from `from` to `to` may be missing from the context being
    /// printed: the source lost events then ([`ContextWindow::gap`]).
    Lost {
        /// Start of the loss.
        from: u64,
        /// End of the loss.
        to: u64,
    },
}

/// Counts of a [`ContextWindow`]'s run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Rows pushed.
    pub seen: u64,
    /// Outliers emitted.
    pub outliers: u64,
    /// Context rows emitted.
    pub context: u64,
    /// Rows dropped because the window was full (whether or not an outlier needed them).
    pub dropped: u64,
    /// [`Emit::Truncated`] reports.
    pub truncations: u64,
    /// Most rows held at once.
    pub peak_rows: usize,
}

/// Most losses a [`ContextWindow`] keeps apart (see [`ContextWindow::gap`]).
pub const MAX_GAPS: usize = 64;

/// The bounded window of recent rows and the outlier contexts (see the module doc).
#[derive(Debug)]
pub struct ContextWindow<R> {
    before: u64,
    after: u64,
    bound: Bound,
    limit: Option<u64>,
    held: VecDeque<R>,
    held_bytes: usize,
    /// Rows with times up to this are emitted as they arrive (after an outlier).
    show_until: Option<u64>,
    /// Times of the oldest and newest rows the bound dropped, not yet reported, and how
    /// many rows that was.
    dropped: Option<(u64, u64, u64)>,
    /// Losses of events not yet reported that a later outlier's context may cover (at
    /// most [`MAX_GAPS`]: past that, neighbours are merged).
    gaps: VecDeque<(u64, u64)>,
    /// Counts so far.
    pub stats: WindowStats,
}

impl<R: Timed> ContextWindow<R> {
    /// A window keeping `before` ns of rows before each outlier and showing `after` ns
    /// after it, holding at most `bound`. With `limit`, at most that many outliers are
    /// taken: see [`ContextWindow::done`].
    pub fn new(before: u64, after: u64, bound: Bound, limit: Option<u64>) -> Self {
        ContextWindow {
            before,
            after,
            bound,
            limit,
            held: VecDeque::new(),
            held_bytes: 0,
            show_until: None,
            dropped: None,
            gaps: VecDeque::new(),
            stats: WindowStats::default(),
        }
    }

    fn cost(row: &R) -> usize {
        std::mem::size_of::<R>() + row.heap_bytes()
    }

    /// Whether any context is kept: with `before` and `after` both 0, only outliers are
    /// printed (rows with the same time as an outlier are not its context).
    fn context(&self) -> bool {
        self.before > 0 || self.after > 0
    }

    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|n| self.stats.outliers >= n)
    }

    /// Takes the next row (times non-decreasing); `outlier` says whether it is one.
    /// Calls `emit` for what is to be printed now, in order.
    pub fn push(&mut self, row: R, outlier: bool, mut emit: impl FnMut(Emit<R>)) {
        self.stats.seen += 1;
        let ts = row.ts();
        let in_after = self.context() && self.show_until.is_some_and(|u| ts <= u);
        if self.limit_reached() {
            // After the last outlier: only the rest of its context is printed (an
            // outlier in it is still marked as one, but opens no context).
            if in_after {
                self.emit_row(row, outlier, &mut emit);
            }
            return;
        }
        if outlier {
            self.age(ts);
            if let Some((from, to, dropped)) = self.dropped.take() {
                self.stats.truncations += 1;
                emit(Emit::Truncated {
                    from: from.max(ts.saturating_sub(self.before)),
                    to,
                    dropped,
                });
            }
            for (from, to) in self.gaps.drain(..) {
                emit(Emit::Lost { from, to });
            }
            while let Some(r) = self.held.pop_front() {
                self.held_bytes -= Self::cost(&r);
                self.stats.context += 1;
                emit(Emit::Row {
                    row: r,
                    outlier: false,
                });
            }
            self.stats.outliers += 1;
            emit(Emit::Row { row, outlier: true });
            self.show_until = Some(ts.saturating_add(self.after));
        } else if in_after {
            self.emit_row(row, false, &mut emit);
        } else if self.context() {
            self.age(ts);
            let cost = Self::cost(&row);
            // Room first, so the window never holds more than the bound, even for a
            // moment; it grows its storage by at most the bound's worth.
            while !self.held.is_empty()
                && (self.held.len() >= self.bound.rows || self.held_bytes + cost > self.bound.bytes)
            {
                let Some(r) = self.held.pop_front() else {
                    break;
                };
                self.held_bytes -= Self::cost(&r);
                self.stats.dropped += 1;
                let t = r.ts();
                self.dropped = Some(match self.dropped {
                    Some((from, _, n)) => (from, t, n + 1),
                    None => (t, t, 1),
                });
            }
            if self.held.len() == self.held.capacity() {
                let room = self.bound.rows.saturating_sub(self.held.len());
                self.held
                    .reserve_exact(self.held.len().max(16).min(room).max(1));
            }
            self.held_bytes += cost;
            self.held.push_back(row);
            self.stats.peak_rows = self.stats.peak_rows.max(self.held.len());
        }
    }

    fn emit_row(&mut self, row: R, outlier: bool, emit: &mut impl FnMut(Emit<R>)) {
        if outlier {
            self.stats.outliers += 1;
        } else {
            self.stats.context += 1;
        }
        emit(Emit::Row { row, outlier });
    }

    /// Drops the held rows too old to be context of an outlier at `now`, and forgets
    /// dropped rows that could no longer be missed.
    fn age(&mut self, now: u64) {
        let oldest = now.saturating_sub(self.before);
        while self.held.front().is_some_and(|r| r.ts() < oldest) {
            if let Some(r) = self.held.pop_front() {
                self.held_bytes -= Self::cost(&r);
            }
        }
        if self.dropped.is_some_and(|(_, to, _)| to < oldest) {
            self.dropped = None;
        }
        while self.gaps.front().is_some_and(|&(_, to)| to < oldest) {
            self.gaps.pop_front();
        }
    }

    /// The source lost events from `from` to `to` (times of the rows), so rows of that
    /// span may never arrive. If the context being printed covers it, [`Emit::Lost`]
    /// says so now; else it is kept for an outlier whose context will cover it (said
    /// before that context's rows). Outside every context it is forgotten: the tool
    /// reports its losses anyway. Call it in time order with the rows, as far as the
    /// source allows.
    pub fn gap(&mut self, from: u64, to: u64, mut emit: impl FnMut(Emit<R>)) {
        if !self.context() {
            return;
        }
        if self.show_until.is_some_and(|u| from <= u) {
            emit(Emit::Lost { from, to });
            if self.show_until.is_some_and(|u| to <= u) || self.limit_reached() {
                return;
            }
        }
        if self.limit_reached() {
            return;
        }
        if self.gaps.len() >= MAX_GAPS {
            // Merge the two oldest: still a range holding every lost event.
            if let (Some(a), Some(b)) = (self.gaps.pop_front(), self.gaps.pop_front()) {
                self.gaps.push_front((a.0.min(b.0), a.1.max(b.1)));
            }
        }
        self.gaps.push_back((from, to));
    }

    /// Time has reached `now` (no row older than it will come): ages the window. Returns
    /// true when the outlier limit was reached and the context after the last outlier
    /// is complete, i.e. the run can end.
    pub fn advance(&mut self, now: u64) -> bool {
        self.age(now);
        self.done_at(now)
    }

    /// True when the outlier limit was reached and `now` is past the context after the
    /// last outlier.
    pub fn done_at(&self, now: u64) -> bool {
        self.limit_reached() && self.show_until.is_none_or(|u| now > u)
    }

    /// Rows held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Bytes held now (see [`Bound::bytes`]).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Row(u64);

    impl Timed for Row {
        fn ts(&self) -> u64 {
            self.0
        }
    }

    const BIG: Bound = Bound {
        rows: usize::MAX,
        bytes: usize::MAX,
    };

    /// Runs rows (time, outlier) through a window; returns what it printed as text:
    /// `*t` for an outlier, `t` for context, `#from-to/n` for a truncation.
    fn run(w: &mut ContextWindow<Row>, rows: &[(u64, bool)]) -> Vec<String> {
        let mut out = Vec::new();
        for &(t, o) in rows {
            w.push(Row(t), o, |e| {
                out.push(match e {
                    Emit::Row { row, outlier: true } => format!("*{}", row.0),
                    Emit::Row { row, .. } => format!("{}", row.0),
                    Emit::Truncated { from, to, dropped } => format!("#{from}-{to}/{dropped}"),
                    Emit::Lost { from, to } => format!("lost {from}-{to}"),
                })
            });
        }
        out
    }

    #[test]
    fn outlier_with_context_before_and_after_and_nothing_else() {
        let mut w = ContextWindow::new(10, 10, BIG, None);
        let rows = [
            (0, false),
            (5, false),
            (15, false),
            (20, false),
            (25, true),
            (30, false),
            (35, false),
            (36, false),
            (50, false),
        ];
        assert_eq!(run(&mut w, &rows), ["15", "20", "*25", "30", "35"]);
        assert_eq!((w.stats.seen, w.stats.outliers, w.stats.context), (9, 1, 4));
        assert_eq!(w.stats.dropped, 0);
    }

    #[test]
    fn overlapping_contexts_print_each_row_once_in_order() {
        let mut w = ContextWindow::new(10, 10, BIG, None);
        let rows = [
            (1, false),
            (8, false),
            (12, true),
            (14, false),
            (18, true),
            (22, false),
            (27, false),
            (29, false),
            (31, true),
            (40, false),
            (42, false),
        ];
        assert_eq!(
            run(&mut w, &rows),
            ["8", "*12", "14", "*18", "22", "27", "29", "*31", "40"]
        );
        assert_eq!((w.stats.outliers, w.stats.context), (3, 6));
    }

    #[test]
    fn rows_at_the_edges_of_the_context_are_in_it() {
        let mut w = ContextWindow::new(10, 10, BIG, None);
        let rows = [
            (9, false),
            (10, false),
            (20, true),
            (30, false),
            (31, false),
        ];
        assert_eq!(run(&mut w, &rows), ["10", "*20", "30"]);
    }

    #[test]
    fn no_context_prints_only_outliers() {
        let mut w = ContextWindow::new(0, 0, BIG, None);
        let rows = [(1, false), (2, true), (2, false), (3, false), (4, true)];
        assert_eq!(run(&mut w, &rows), ["*2", "*4"]);
        assert_eq!(w.held(), 0);
    }

    #[test]
    fn a_full_window_says_which_span_of_context_is_missing() {
        let bound = Bound {
            rows: 3,
            bytes: usize::MAX,
        };
        let mut w = ContextWindow::new(100, 0, bound, None);
        let rows: Vec<(u64, bool)> = (1..=6).map(|t| (t, false)).chain([(7, true)]).collect();
        assert_eq!(run(&mut w, &rows), ["#1-3/3", "4", "5", "6", "*7"]);
        assert_eq!((w.stats.dropped, w.stats.truncations), (3, 1));
        assert_eq!(w.stats.peak_rows, 3);
        // Reported once: the next outlier's context is complete again.
        assert_eq!(run(&mut w, &[(8, false), (9, true)]), ["8", "*9"]);
        assert_eq!(w.stats.truncations, 1);
    }

    #[test]
    fn the_byte_bound_holds_too() {
        let each = std::mem::size_of::<Row>();
        let bound = Bound {
            rows: usize::MAX,
            bytes: 2 * each,
        };
        let mut w = ContextWindow::new(100, 0, bound, None);
        let out = run(
            &mut w,
            &[(1, false), (2, false), (3, false), (4, false), (5, true)],
        );
        assert_eq!(out, ["#1-2/2", "3", "4", "*5"]);
    }

    #[test]
    fn rows_dropped_outside_the_context_are_not_reported() {
        let bound = Bound {
            rows: 2,
            bytes: usize::MAX,
        };
        let mut w = ContextWindow::new(10, 0, bound, None);
        // 1 and 2 are dropped by the bound, but the outlier's context starts at 40.
        let out = run(
            &mut w,
            &[
                (1, false),
                (2, false),
                (3, false),
                (4, false),
                (45, false),
                (50, true),
            ],
        );
        assert_eq!(out, ["45", "*50"]);
        assert_eq!((w.stats.dropped, w.stats.truncations), (2, 0));
        // The span reported is cut to the context.
        let mut w = ContextWindow::new(10, 0, bound, None);
        let out = run(
            &mut w,
            &[
                (1, false),
                (42, false),
                (43, false),
                (44, false),
                (45, false),
                (50, true),
            ],
        );
        assert_eq!(out, ["#42-43/2", "44", "45", "*50"]);
    }

    #[test]
    fn count_stops_after_the_last_outliers_context() {
        let mut w = ContextWindow::new(5, 5, BIG, Some(2));
        let out = run(
            &mut w,
            &[
                (1, true),
                (3, false),
                (10, false),
                (20, true),
                (23, true),
                (25, false),
                (26, false),
                (30, true),
            ],
        );
        // 23 is an outlier inside the last one's context: marked, opens no context.
        assert_eq!(out, ["*1", "3", "*20", "*23", "25"]);
        assert_eq!(w.stats.outliers, 3);
        assert!(!w.done_at(25));
        assert!(w.advance(26));
        // Without context, the run can end at the last outlier.
        let mut w = ContextWindow::new(0, 0, BIG, Some(1));
        assert!(!w.advance(0));
        assert_eq!(run(&mut w, &[(1, false), (2, true), (3, true)]), ["*2"]);
        assert!(w.advance(3));
    }

    #[test]
    fn a_loss_inside_a_context_is_said_and_one_outside_is_not() {
        let mut w = ContextWindow::new(10, 10, BIG, None);
        let mut out = Vec::new();
        let mut note = |e: Emit<Row>| {
            out.push(match e {
                Emit::Row { row, outlier: true } => format!("*{}", row.0),
                Emit::Row { row, .. } => row.0.to_string(),
                Emit::Lost { from, to } => format!("lost {from}-{to}"),
                Emit::Truncated { .. } => "#".into(),
            })
        };
        w.push(Row(1), false, &mut note);
        w.gap(2, 3, &mut note); // too old for the outlier at 20: forgotten
        w.push(Row(12), false, &mut note);
        w.gap(13, 14, &mut note); // in its context before: said before the rows
        w.push(Row(20), true, &mut note);
        w.gap(25, 26, &mut note); // in its context after: said at once
        w.push(Row(28), false, &mut note);
        w.gap(45, 46, &mut note); // out of every context
        w.push(Row(50), false, &mut note);
        assert_eq!(out, ["lost 13-14", "12", "*20", "lost 25-26", "28"]);
        // The last one may still be in the context of an outlier to come, until too old.
        assert_eq!(w.gaps, [(45, 46)]);
        w.advance(57);
        assert!(w.gaps.is_empty());
        // Kept apart up to MAX_GAPS, then merged: still covering every loss.
        for i in 0..200 {
            w.gap(100 + 2 * i, 101 + 2 * i, |_| {});
        }
        assert_eq!(w.gaps.len(), MAX_GAPS);
        assert_eq!(w.gaps.front().map(|g| g.0), Some(100));
        assert_eq!(w.gaps.back(), Some(&(498, 499)));
    }

    #[test]
    fn aging_keeps_only_the_before_span() {
        let mut w = ContextWindow::new(10, 0, BIG, None);
        run(&mut w, &[(1, false), (5, false), (12, false)]);
        assert_eq!(w.held(), 2);
        w.advance(20);
        assert_eq!(w.held(), 1);
        assert_eq!(w.held_bytes(), std::mem::size_of::<Row>());
        w.advance(30);
        assert_eq!(w.held(), 0);
    }

    /// A reference model: a row is printed iff it is an outlier or within the context of
    /// one, with every row kept (no bound).
    fn model(rows: &[(u64, bool)], before: u64, after: u64) -> Vec<String> {
        let context = before > 0 || after > 0;
        rows.iter()
            .filter(|&&(t, o)| {
                o || context
                    && rows.iter().any(|&(u, uo)| {
                        uo && ((t <= u && u - t <= before) || (t >= u && t - u <= after))
                    })
            })
            .map(|&(t, o)| if o { format!("*{t}") } else { t.to_string() })
            .collect()
    }

    #[test]
    fn matches_the_reference_model_on_random_streams() {
        // xorshift: deterministic pseudo-random streams.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..500 {
            let (before, after) = (next() % 20, next() % 20);
            let mut t = 0;
            let rows: Vec<(u64, bool)> = (0..60)
                .map(|_| {
                    t += next() % 4;
                    (t, next() % 9 == 0)
                })
                .collect();
            let mut w = ContextWindow::new(before, after, BIG, None);
            let got = run(&mut w, &rows);
            assert_eq!(
                got,
                model(&rows, before, after),
                "{before} {after} {rows:?}"
            );
            assert_eq!(
                w.stats.outliers + w.stats.context,
                got.len() as u64,
                "each row printed once"
            );
            // With a bound, the output is the model's minus dropped rows, with a
            // truncation report wherever one is missing, and memory never exceeds it.
            let bound = Bound {
                rows: 1 + (next() % 6) as usize,
                bytes: usize::MAX,
            };
            let mut w = ContextWindow::new(before, after, bound, None);
            let mut peak = 0;
            let mut got = Vec::new();
            for &(t, o) in &rows {
                w.push(Row(t), o, |e| {
                    got.push(match e {
                        Emit::Row { row, outlier: true } => format!("*{}", row.0),
                        Emit::Row { row, .. } => row.0.to_string(),
                        Emit::Truncated { .. } | Emit::Lost { .. } => "#".to_string(),
                    })
                });
                peak = peak.max(w.held());
            }
            assert!(peak <= bound.rows);
            assert!(
                w.held.capacity() <= bound.rows.max(16),
                "{}",
                w.held.capacity()
            );
            let want = model(&rows, before, after);
            let printed: Vec<&String> = got.iter().filter(|g| *g != "#").collect();
            // Printed rows are a subsequence of the model's output, with every outlier.
            let mut it = want.iter();
            for p in &printed {
                assert!(it.any(|m| m == *p), "{p} not in {want:?}: {got:?}");
            }
            assert_eq!(
                printed.iter().filter(|p| p.starts_with('*')).count(),
                want.iter().filter(|p| p.starts_with('*')).count()
            );
            if printed.len() < want.len() {
                assert!(
                    got.iter().any(|g| g == "#"),
                    "silent loss: {got:?} {want:?}"
                );
            }
        }
    }
}
