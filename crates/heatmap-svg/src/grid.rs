//! The grid: (time, latency) points counted in cells, in memory that grows with the
//! number of cells (columns × rows), never with the number of points.

use std::collections::VecDeque;

/// Rows of the log latency axis per doubling of latency.
pub const LOG_ROWS_PER_DOUBLING: u32 = 4;

/// At most this many rows (a latency axis beyond it counts points as out of range).
pub const LIMIT_ROWS: usize = 10_000;

/// How points are put into cells: trace2heatmap.pl's options, with its meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct GridOptions {
    /// Divisor that turns the time column into seconds (1 for s, 1000 for ms ...).
    pub time_factor: f64,
    /// Seconds per column (`--stepsec`, fractions allowed).
    pub step_sec: f64,
    /// Smallest latency included (`--minlat`).
    pub min_lat: f64,
    /// Largest latency included (`--maxlat`); `None`: every latency from `min_lat` up.
    pub max_lat: Option<f64>,
    /// Number of rows (`--rows`): with `max_lat`, the step is
    /// `int((max_lat - min_lat) / rows)` as in trace2heatmap.pl; without it, at most
    /// this many rows of a power-of-two step that grows with the data.
    pub rows: usize,
    /// A fixed latency step (`--steplat`) instead of `rows`.
    pub step_lat: Option<f64>,
    /// Log latency axis: [`LOG_ROWS_PER_DOUBLING`] rows per doubling.
    pub log: bool,
    /// Largest column drawn (`--maxcol`, 0 is the first): later points are left out.
    pub max_col: Option<u64>,
    /// Most columns the map may span (trace2heatmap.pl: 10000).
    pub limit_cols: usize,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            time_factor: 1.0,
            step_sec: 1.0,
            min_lat: 0.0,
            max_lat: None,
            rows: 50,
            step_lat: None,
            log: false,
            max_col: None,
            limit_cols: 10_000,
        }
    }
}

/// Points not counted in any cell, by reason (every point is either in a cell or here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Excluded {
    /// Latency below `--minlat` (or, on the log axis, not above zero).
    pub below_min: u64,
    /// Latency above `--maxlat`, or beyond [`LIMIT_ROWS`] rows.
    pub above_max: u64,
    /// Column after `--maxcol`.
    pub beyond_max_col: u64,
    /// Outside the `limit_cols` columns the map may span.
    pub beyond_limit: u64,
    /// Time or latency not a finite number.
    pub not_finite: u64,
}

impl Excluded {
    /// All points left out.
    pub fn total(&self) -> u64 {
        self.below_min + self.above_max + self.beyond_max_col + self.beyond_limit + self.not_finite
    }
}

/// The latency axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Axis {
    /// Rows `min + r * step ..< min + (r + 1) * step`.
    Linear {
        /// Lower bound of row 0.
        min: f64,
        /// Row height; `None` while every point so far had latency `min` (auto step).
        step: Option<f64>,
        /// Whether the step doubles as larger latencies arrive (no --maxlat, --steplat).
        auto: bool,
    },
    /// Rows `2^((low + r) / k) ..< 2^((low + r + 1) / k)`.
    Log {
        /// Rows per doubling.
        k: u32,
        /// Log bin of row 0 (`None` before the first point).
        low: Option<i64>,
    },
}

/// A latency heat map's counts.
#[derive(Debug, Clone)]
pub struct Grid {
    opts: GridOptions,
    /// Time of the first point (raw units): column 0 starts there.
    t0: Option<f64>,
    /// Column number (relative to `t0`) of `cols[0]`.
    first_col: i64,
    /// Counts per column, by row (each as long as its highest row used).
    cols: VecDeque<Vec<u64>>,
    axis: Axis,
    /// Largest row index that `max_lat` allows, for a fixed linear axis.
    fixed_rows: Option<usize>,
    counted: u64,
    /// 1 / step of the auto linear axis (a power of two, so exact).
    inv_step: f64,
    /// Points left out, by reason.
    pub excluded: Excluded,
}

/// A problem with the options (a usage error for a tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError(pub String);

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionError {}

impl Grid {
    /// An empty grid, or why the options cannot make one.
    pub fn new(opts: GridOptions) -> Result<Grid, OptionError> {
        let err = |s: &str| Err(OptionError(s.to_string()));
        if !(opts.step_sec.is_finite() && opts.step_sec > 0.0) {
            return err("--stepsec must be a positive number of seconds");
        }
        if !(opts.time_factor.is_finite() && opts.time_factor > 0.0) {
            return err("the time factor must be positive");
        }
        if !opts.min_lat.is_finite() {
            return err("--minlat must be a number");
        }
        if opts.rows == 0 || opts.rows > LIMIT_ROWS {
            return err("--rows must be between 1 and 10000");
        }
        if opts.limit_cols == 0 {
            return err("the column limit must be at least 1");
        }
        if let Some(m) = opts.max_lat {
            if !(m.is_finite() && m > opts.min_lat) {
                return err("--maxlat must be a number larger than --minlat");
            }
        }
        let mut fixed_rows = None;
        let axis = if opts.log {
            if opts.step_lat.is_some() {
                return err("--steplat cannot be used with --log (rows are 4 per doubling)");
            }
            let k = LOG_ROWS_PER_DOUBLING;
            let low = (opts.min_lat > 0.0).then(|| log_bin(opts.min_lat, k));
            Axis::Log { k, low }
        } else {
            let step = match (opts.step_lat, opts.max_lat) {
                (Some(s), _) => {
                    if !(s.is_finite() && s > 0.0) {
                        return err("--steplat must be a positive number");
                    }
                    Some(s)
                }
                (None, Some(max)) => {
                    // trace2heatmap.pl: int((max - min) / rows), an error when 0; a
                    // fractional step where the range is itself below one row per unit.
                    let exact = (max - opts.min_lat) / opts.rows as f64;
                    Some(if exact >= 1.0 { exact.floor() } else { exact })
                }
                (None, None) => None,
            };
            if let (Some(s), Some(max)) = (step, opts.max_lat) {
                let r = ((max - opts.min_lat) / s).floor();
                if r >= LIMIT_ROWS as f64 {
                    return err("too many rows (more than 10000): use a larger --steplat");
                }
                fixed_rows = Some(r as usize);
            }
            Axis::Linear {
                min: opts.min_lat,
                step,
                auto: step.is_none(),
            }
        };
        Ok(Grid {
            opts,
            t0: None,
            first_col: 0,
            cols: VecDeque::new(),
            axis,
            fixed_rows,
            counted: 0,
            inv_step: 1.0,
            excluded: Excluded::default(),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &GridOptions {
        &self.opts
    }

    /// The latency axis as it is now.
    pub fn axis(&self) -> Axis {
        self.axis
    }

    /// Points counted in cells.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// Counts one point: `time` in the input's time units, `latency` in its own.
    /// Returns whether it went into a cell (else it is counted in [`Grid::excluded`]).
    #[inline]
    pub fn add(&mut self, time: f64, latency: f64) -> bool {
        if !(time.is_finite() && latency.is_finite()) {
            self.excluded.not_finite += 1;
            return false;
        }
        if latency < self.opts.min_lat || (self.opts.log && latency <= 0.0) {
            self.excluded.below_min += 1;
            return false;
        }
        if self.opts.max_lat.is_some_and(|m| latency > m) {
            self.excluded.above_max += 1;
            return false;
        }
        let t0 = *self.t0.get_or_insert(time);
        // The order of trace2heatmap.pl: ((time - start) / factor) / step.
        // (x / 1.0 is x: those divisions are skipped, the result is the same.)
        let mut col = time - t0;
        if self.opts.time_factor != 1.0 {
            col /= self.opts.time_factor;
        }
        if self.opts.step_sec != 1.0 {
            col /= self.opts.step_sec;
        }
        let col = floor(col);
        if self.opts.max_col.is_some_and(|m| col > m as f64) {
            self.excluded.beyond_max_col += 1;
            return false;
        }
        let Some(ci) = self.column_index(col) else {
            self.excluded.beyond_limit += 1;
            return false;
        };
        let Some(row) = self.row_of(latency) else {
            self.excluded.above_max += 1;
            return false;
        };
        let column = &mut self.cols[ci];
        if column.len() <= row {
            column.resize(row + 1, 0);
        }
        column[row] += 1;
        self.counted += 1;
        true
    }

    /// The index in `cols` of column `col` (relative to t0), adding columns as needed,
    /// or `None` if the map would then span more than the limit.
    #[inline]
    fn column_index(&mut self, col: f64) -> Option<usize> {
        let limit = self.opts.limit_cols as f64;
        if self.cols.is_empty() {
            if col.abs() >= 1e15 {
                return None;
            }
            self.first_col = col as i64;
            self.cols.push_back(Vec::new());
            return Some(0);
        }
        let first = self.first_col as f64;
        let last = first + self.cols.len() as f64 - 1.0;
        if col >= first && col <= last {
            return Some((col - first) as usize);
        }
        if col > last {
            if col - first + 1.0 > limit {
                return None;
            }
            let n = (col - last) as usize;
            for _ in 0..n {
                self.cols.push_back(Vec::new());
            }
            Some(self.cols.len() - 1)
        } else {
            if last - col + 1.0 > limit {
                return None;
            }
            let n = (first - col) as usize;
            for _ in 0..n {
                self.cols.push_front(Vec::new());
            }
            self.first_col = col as i64;
            Some(0)
        }
    }

    /// The row of `latency` (at least `min_lat`, at most `max_lat`), rescaling the axis
    /// where it grows with the data; `None` beyond [`LIMIT_ROWS`].
    #[inline]
    fn row_of(&mut self, latency: f64) -> Option<usize> {
        match self.axis {
            Axis::Linear { min, step, auto } => {
                let Some(mut s) = step else {
                    // Auto step, not yet known: row 0 holds `min` whatever the step.
                    if latency == min {
                        return Some(0);
                    }
                    let s = first_step(latency - min, self.opts.rows);
                    self.inv_step = 1.0 / s;
                    self.axis = Axis::Linear {
                        min,
                        step: Some(s),
                        auto,
                    };
                    return Some(((latency - min) / s) as usize);
                };
                let mut row = if auto {
                    // A power of two: multiplying by its inverse is exact, and cheaper.
                    floor((latency - min) * self.inv_step)
                } else {
                    floor((latency - min) / s)
                };
                if auto {
                    // Double the step (merging row pairs, so every count stays in the
                    // cell that holds its latency) until the latency fits.
                    while row >= self.opts.rows as f64 {
                        self.merge_rows();
                        s *= 2.0;
                        self.inv_step = 1.0 / s;
                        row = ((latency - min) / s).floor();
                    }
                    self.axis = Axis::Linear {
                        min,
                        step: Some(s),
                        auto,
                    };
                }
                (row < LIMIT_ROWS as f64).then_some(row as usize)
            }
            Axis::Log { k, low } => {
                let bin = log_bin(latency, k);
                let low = match low {
                    None => {
                        self.axis = Axis::Log { k, low: Some(bin) };
                        bin
                    }
                    Some(l) if bin < l => {
                        if self.row_span(bin, l) > LIMIT_ROWS {
                            return None;
                        }
                        let shift = (l - bin) as usize;
                        for c in self.cols.iter_mut().filter(|c| !c.is_empty()) {
                            c.splice(0..0, std::iter::repeat_n(0, shift));
                        }
                        self.axis = Axis::Log { k, low: Some(bin) };
                        bin
                    }
                    Some(l) => l,
                };
                let row = (bin - low) as usize;
                (row < LIMIT_ROWS).then_some(row)
            }
        }
    }

    fn row_span(&self, low: i64, old_low: i64) -> usize {
        let used = self.cols.iter().map(|c| c.len()).max().unwrap_or(0) as i64;
        (old_low - low + used).max(0) as usize
    }

    /// Doubles the linear step: row `i` becomes rows `2i` and `2i + 1`.
    fn merge_rows(&mut self) {
        for c in self.cols.iter_mut() {
            let n = c.len().div_ceil(2);
            for i in 0..n {
                let a = c[2 * i];
                let b = c.get(2 * i + 1).copied().unwrap_or(0);
                c[i] = a + b;
            }
            c.truncate(n);
        }
    }

    /// Number of columns the map spans (first to last point's column).
    pub fn columns(&self) -> usize {
        self.cols.len()
    }

    /// Number of rows drawn: those used, and for a fixed `--maxlat` axis at least the
    /// rows below `max_lat` (as trace2heatmap.pl draws them).
    pub fn rows(&self) -> usize {
        let used = self.cols.iter().map(|c| c.len()).max().unwrap_or(0);
        used.max(self.fixed_rows.unwrap_or(0))
    }

    /// Count of cell (column, row), columns from the first (earliest) one.
    pub fn count(&self, col: usize, row: usize) -> u64 {
        self.cols
            .get(col)
            .and_then(|c| c.get(row))
            .copied()
            .unwrap_or(0)
    }

    /// The counts of column `col` by row (shorter than [`Grid::rows`] where the top
    /// rows are empty).
    pub fn column(&self, col: usize) -> &[u64] {
        self.cols.get(col).map(|c| c.as_slice()).unwrap_or(&[])
    }

    /// Largest count of one cell.
    pub fn largest(&self) -> u64 {
        self.cols
            .iter()
            .flat_map(|c| c.iter())
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Seconds from the first point's column start to the start of column `col`.
    pub fn column_start(&self, col: usize) -> f64 {
        (self.first_col + col as i64) as f64 * self.opts.step_sec
    }

    /// Column number of the first column relative to the first point's (negative when
    /// earlier points came later in the input).
    pub fn first_column(&self) -> i64 {
        self.first_col
    }

    /// Lower latency bound of row `row` (its upper bound is `row_bound(row + 1)`).
    pub fn row_bound(&self, row: usize) -> f64 {
        match self.axis {
            Axis::Linear { min, step, .. } => min + row as f64 * step.unwrap_or(1.0),
            Axis::Log { k, low } => 2f64.powf((low.unwrap_or(0) + row as i64) as f64 / k as f64),
        }
    }

    /// The row holding the `p`-th percentile (nearest rank, `p` in 0..=1) of column
    /// `col`, or `None` for an empty column.
    pub fn percentile_row(&self, col: usize, p: f64) -> Option<usize> {
        let c = self.column(col);
        let total: u64 = c.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
        let mut acc = 0;
        for (r, n) in c.iter().enumerate() {
            acc += n;
            if acc >= rank {
                return Some(r);
            }
        }
        None
    }
}

/// `x.floor()` without a call into libm (x86-64's baseline has no rounding
/// instruction): exact for |x| < 2^63; beyond, a value as far out of every limit.
#[inline(always)]
fn floor(x: f64) -> f64 {
    let i = x as i64;
    let f = i as f64;
    if f > x {
        f - 1.0
    } else {
        f
    }
}

/// The log bin of a positive latency: `floor(log2(latency) * k)`. For k = 4 (the
/// axis' rows per doubling) from the number's binary exponent and its mantissa
/// compared with 2^(1/4), 2^(1/2) and 2^(3/4), without a call to log2: a latency is
/// in bin 4e + j exactly when it is at least 2^e times the j-th of those.
#[inline]
fn log_bin(latency: f64, k: u32) -> i64 {
    const QUARTERS: [f64; 3] = [
        1.189_207_115_002_721,
        std::f64::consts::SQRT_2,
        1.681_792_830_507_429,
    ];
    if k == 4 && latency.is_normal() && latency > 0.0 {
        let bits = latency.to_bits();
        let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
        let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
        let j = QUARTERS.iter().filter(|&&q| m >= q).count() as i64;
        return 4 * e + j;
    }
    (latency.log2() * k as f64).floor() as i64
}

/// The smallest power of two `s` with `d / s < rows`.
fn first_step(d: f64, rows: usize) -> f64 {
    let mut s = 2f64.powi((d / rows as f64).log2().ceil() as i32);
    while d / s >= rows as f64 {
        s *= 2.0;
    }
    while s > f64::MIN_POSITIVE && d / (s / 2.0) < rows as f64 {
        s /= 2.0;
    }
    s
}
