//! Power-of-two latency histograms, rendered exactly as perf-tools' iolatency prints them.
//!
//! Bucket rule (documented in iolatency(8)): with unit `U` (1 ms, or 1 µs with `-u`),
//! bucket 0 holds latencies `0 <= l < 1U` and bucket `k >= 1` holds
//! `2^(k-1) U <= l < 2^k U`, exactly as the row labels `>=(ms) .. <(ms)` say. (The shell
//! original tested `latency > edge`, putting a latency of exactly 2^k ms one row lower
//! than its label; at nanosecond resolution the two rules differ only at the edges.)

use std::io::Write;

/// Width of the distribution bar, as the original.
pub const BAR_WIDTH: u64 = 38;

/// A histogram of latencies in power-of-two buckets of `unit_ns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log2Hist {
    unit_ns: u64,
    counts: Vec<u64>,
}

impl Log2Hist {
    /// An empty histogram with buckets in units of `unit_ns` nanoseconds.
    pub fn new(unit_ns: u64) -> Log2Hist {
        Log2Hist {
            unit_ns: unit_ns.max(1),
            counts: Vec::new(),
        }
    }

    /// The bucket index of a latency: 0 below one unit, else `floor(log2(l / unit)) + 1`.
    /// Computed from the two numbers' bit lengths and one shift instead of a 64-bit
    /// division (this runs once per I/O).
    #[inline]
    pub fn bucket(&self, latency_ns: u64) -> usize {
        if latency_ns < self.unit_ns {
            return 0;
        }
        // l / unit lies in [2^(k-1), 2^(k+1)) for k = log2(l) - log2(unit) (floors).
        let k = self.unit_ns.leading_zeros() - latency_ns.leading_zeros();
        if ((self.unit_ns as u128) << k) <= latency_ns as u128 {
            k as usize + 1
        } else {
            k as usize
        }
    }

    /// Counts one latency.
    #[inline]
    pub fn record(&mut self, latency_ns: u64) {
        let b = self.bucket(latency_ns);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
    }

    /// Total number of latencies recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(low edge, high edge, count)` per row, from bucket 0 to the highest non-empty
    /// one (empty rows in between included); a single `(0, 1, 0)` row when empty.
    pub fn rows(&self) -> Vec<(u64, u64, u64)> {
        let last = self.counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        (0..=last)
            .map(|b| {
                let lo = if b == 0 { 0 } else { 1u64 << (b - 1) };
                (lo, 1u64 << b, self.counts.get(b).copied().unwrap_or(0))
            })
            .collect()
    }

    /// Renders the header and rows: `%8s .. %-8s: %-8s |%-38s|` and
    /// `%8d -> %-8d: %-8d |%-38s|`, the bar scaled to the largest bucket and rounded up
    /// so that any non-zero count shows at least one `#`.
    pub fn render(&self, out: &mut Vec<u8>, unit: &str) {
        let _ = writeln!(
            out,
            "{:>8} .. {:<8}: {:<8} |{:<38}|",
            format!(">=({unit})"),
            format!("<({unit})"),
            "I/O",
            "Distribution"
        );
        let rows = self.rows();
        let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
        for (lo, hi, n) in rows {
            let _ = writeln!(out, "{lo:>8} -> {hi:<8}: {n:<8} |{:<38}|", bar(n, max));
        }
    }
}

/// The `#` bar for `n` of `max`, `ceil(n * 38 / max)` characters.
pub fn bar(n: u64, max: u64) -> String {
    if max == 0 || n == 0 {
        return String::new();
    }
    let len = (n as u128 * BAR_WIDTH as u128).div_ceil(max as u128) as usize;
    "#".repeat(len.min(BAR_WIDTH as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_equals_the_division_rule() {
        let mut x: u64 = 99;
        for unit in [1u64, 1_000, 1_000_000, 3, 7_777] {
            let h = Log2Hist::new(unit);
            let want = |l: u64| {
                let u = l / unit;
                if u == 0 {
                    0
                } else {
                    (64 - u.leading_zeros()) as usize
                }
            };
            for l in (0..5000u64).chain([u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1]) {
                assert_eq!(h.bucket(l), want(l), "unit {unit} latency {l}");
            }
            for shift in 0..64 {
                for d in [0u64, 1, 2] {
                    let l = (unit << shift.min(unit.leading_zeros())).wrapping_sub(d);
                    assert_eq!(h.bucket(l), want(l), "unit {unit} latency {l}");
                }
            }
            for _ in 0..100_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let l = x >> (x % 64);
                assert_eq!(h.bucket(l), want(l), "unit {unit} latency {l}");
            }
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn bucket_edges_follow_the_labels() {
        let h = Log2Hist::new(MS);
        assert_eq!(h.bucket(0), 0);
        assert_eq!(h.bucket(MS - 1), 0, "0.999999 ms is in 0 -> 1");
        assert_eq!(h.bucket(MS), 1, "exactly 1 ms is in 1 -> 2");
        assert_eq!(h.bucket(2 * MS - 1), 1);
        assert_eq!(h.bucket(2 * MS), 2, "exactly 2 ms is in 2 -> 4");
        assert_eq!(h.bucket(4 * MS - 1), 2);
        assert_eq!(h.bucket(4 * MS), 3, "exactly 4 ms is in 4 -> 8");
        assert_eq!(h.bucket(1024 * MS), 11);
        assert_eq!(h.bucket(u64::MAX), 45, "2^44 ms <= u64::MAX ns < 2^45 ms");
        let us = Log2Hist::new(1_000);
        assert_eq!(
            (
                us.bucket(999),
                us.bucket(1_000),
                us.bucket(1_999),
                us.bucket(2_000)
            ),
            (0, 1, 1, 2)
        );
    }

    #[test]
    fn bar_scaling_rounds_up() {
        assert_eq!(bar(0, 10), "");
        assert_eq!(bar(1, 4381), "#", "any non-zero count shows one #");
        assert_eq!(bar(4381, 4381).len(), 38);
        assert_eq!(bar(19, 38).len(), 19);
        assert_eq!(bar(20, 39).len(), 20, "19.49 rounds up to 20");
        assert_eq!(bar(0, 0), "");
    }

    #[test]
    fn renders_like_the_original() {
        let mut h = Log2Hist::new(MS);
        for _ in 0..4381 {
            h.record(MS / 2);
        }
        for _ in 0..9 {
            h.record(MS + 1);
        }
        h.record(5 * MS);
        let mut out = Vec::new();
        h.render(&mut out, "ms");
        let want = "  >=(ms) .. <(ms)   : I/O      |Distribution                          |\n       0 -> 1       : 4381     |######################################|\n       1 -> 2       : 9        |#                                     |\n       2 -> 4       : 0        |                                      |\n       4 -> 8       : 1        |#                                     |\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn idle_interval_prints_one_row() {
        let mut out = Vec::new();
        Log2Hist::new(MS).render(&mut out, "ms");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  >=(ms) .. <(ms)   : I/O      |Distribution                          |\n       0 -> 1       : 0        |                                      |\n"
        );
    }
}
