//! What each mode counts and prints: the events, how they are grouped, the columns with
//! the originals' printf widths, and the derived metrics (IPC, BMR%, hit ratios).

use perf_tools_pmc::counters::{Request, Value};
use perf_tools_pmc::event::{CacheId, CacheOp, CacheResult, Event, Hw, Stall, Sw, VendorEvent};
use std::fmt::Write as _;

/// Cell text for an event the kernel or CPU does not provide (perf's `<not supported>`,
/// hyphenated so that it stays one whitespace-separated field).
pub const NOT_SUPPORTED: &str = "<not-supported>";
/// Cell text for an event that was never scheduled onto the PMU in the interval (perf's
/// `<not counted>`).
pub const NOT_COUNTED: &str = "<not-counted>";
/// Cell text for a derived metric that is undefined (zero denominator, or an input that
/// is not available).
pub const UNDEFINED: &str = "-";

/// Measurement modes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Cycles, instructions, IPC, branches, branch mispredicts, last-level cache (pmcarch).
    Arch,
    /// Cycles, instructions and IPC only (pmcipc).
    Ipc,
    /// L1 data, L2 and last-level cache references, misses and hit ratios (cpucache).
    Cache,
    /// Data and instruction TLB page walks and walk cycles (tlbstat).
    Tlb,
    /// Instruction cache: L1 instruction misses, L2 code-read hits and misses, and the
    /// last-level cache (icache).
    Icache,
    /// Resource stall cycles by cause: load and store buffers, reservation station,
    /// re-order buffer, FP control word, MXCSR (resstalls).
    Resstalls,
    /// Software events only: task-clock, context switches, migrations, page faults.
    Sw,
}

/// Horizontal alignment of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// printf `%-Nd` / `%-Ns`.
    Left,
    /// printf `%Nd` / `%N.Mf`.
    Right,
}

/// What a column shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// One event's count divided by `div` (1 or 1000), printed as an integer.
    Count {
        /// Request index.
        ev: usize,
        /// Divisor.
        div: u64,
    },
    /// Sum of several events' counts divided by `div`.
    Sum {
        /// Request indices.
        evs: Vec<usize>,
        /// Divisor.
        div: u64,
    },
    /// instructions / cycles.
    Ipc {
        /// instructions.
        instr: usize,
        /// cycles.
        cycles: usize,
    },
    /// 100 × sum(num) / den.
    Pct {
        /// Numerator events.
        num: Vec<usize>,
        /// Denominator event.
        den: usize,
    },
    /// Hit ratio: 100 × (refs − misses) / refs.
    Hit {
        /// References.
        refs: usize,
        /// Misses.
        misses: usize,
    },
    /// A nanosecond clock event as milliseconds.
    Ms {
        /// Request index.
        ev: usize,
    },
    /// A nanosecond clock event divided by the interval's wall time: CPUs busy.
    Cpus {
        /// Request index.
        ev: usize,
    },
    /// 100 × part / (part + other): a share of two complementary counts (hits of
    /// hits + misses).
    Share {
        /// The part.
        part: usize,
        /// The rest.
        other: usize,
    },
    /// Sum of several events' counts divided by `div`, printed with `decimals`.
    Fraction {
        /// Request indices.
        evs: Vec<usize>,
        /// Divisor.
        div: u64,
    },
    /// The smallest running/enabled percentage of the row (100 = no multiplexing).
    Run,
}

/// One output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header text.
    pub header: String,
    /// printf field width.
    pub width: usize,
    /// Alignment (headers align like the values, as the originals' printf formats).
    pub align: Align,
    /// Decimals for floating-point columns; None for integers.
    pub decimals: Option<usize>,
    /// What it shows.
    pub metric: Metric,
}

fn col(
    header: &str,
    width: usize,
    align: Align,
    decimals: Option<usize>,
    metric: Metric,
) -> Column {
    Column {
        header: header.to_string(),
        width,
        align,
        decimals,
        metric,
    }
}

fn count(header: &str, width: usize, ev: usize, div: u64) -> Column {
    col(header, width, Align::Left, None, Metric::Count { ev, div })
}

fn rcount(header: &str, width: usize, ev: usize, div: u64) -> Column {
    col(header, width, Align::Right, None, Metric::Count { ev, div })
}

fn ratio(header: &str, metric: Metric) -> Column {
    col(header, 5, Align::Right, Some(2), metric)
}

fn run_col() -> Column {
    col(RUN_HEADER, 5, Align::Right, Some(1), Metric::Run)
}

/// The header of the optional run-percentage column (`--run-pct`).
pub const RUN_HEADER: &str = "RUN%";

/// Everything a run counts and prints.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Events to open, with their group tags.
    pub requests: Vec<Request>,
    /// Columns, in order.
    pub columns: Vec<Column>,
    /// A line printed once before the first header (cache mode, as cpucache).
    pub preamble: Option<&'static str>,
}

fn req(event: Event, group: u32) -> Request {
    Request { event, group }
}

impl Layout {
    /// The layout of a mode. Events whose ratio is printed share a perf group, so the
    /// ratio is exact even when the kernel multiplexes the PMU.
    pub fn mode(mode: Mode) -> Layout {
        use Metric::*;
        let cycles = Event::Hardware(Hw::Cycles);
        let instr = Event::Hardware(Hw::Instructions);
        match mode {
            // pmcarch: %-10d %-10d %5.2f %-12d %-10d %5.2f %-11d %-10d %5.2f
            Mode::Arch => Layout {
                requests: vec![
                    req(cycles, 0),
                    req(instr, 0),
                    req(Event::Hardware(Hw::BranchInstructions), 1),
                    req(Event::Hardware(Hw::BranchMisses), 1),
                    req(Event::Vendor(VendorEvent::LlcReferences), 2),
                    req(Event::Vendor(VendorEvent::LlcMisses), 2),
                ],
                columns: vec![
                    count("K_CYCLES", 10, 0, 1000),
                    count("K_INSTR", 10, 1, 1000),
                    ratio(
                        "IPC",
                        Ipc {
                            instr: 1,
                            cycles: 0,
                        },
                    ),
                    count("BR_RETIRED", 12, 2, 1),
                    count("BR_MISPRED", 10, 3, 1),
                    ratio(
                        "BMR%",
                        Pct {
                            num: vec![3],
                            den: 2,
                        },
                    ),
                    count("LLCREF", 11, 4, 1),
                    count("LLCMISS", 10, 5, 1),
                    ratio("LLC%", Hit { refs: 4, misses: 5 }),
                ],
                preamble: None,
            },
            Mode::Ipc => Layout {
                requests: vec![req(cycles, 0), req(instr, 0)],
                columns: vec![
                    count("K_CYCLES", 10, 0, 1000),
                    count("K_INSTR", 10, 1, 1000),
                    ratio(
                        "IPC",
                        Ipc {
                            instr: 1,
                            cycles: 0,
                        },
                    ),
                ],
                preamble: None,
            },
            Mode::Cache => Layout {
                requests: vec![
                    req(cycles, 0),
                    req(instr, 0),
                    req(
                        Event::Cache(CacheId::L1d, CacheOp::Read, CacheResult::Access),
                        1,
                    ),
                    req(
                        Event::Cache(CacheId::L1d, CacheOp::Read, CacheResult::Miss),
                        1,
                    ),
                    req(Event::Vendor(VendorEvent::L2References), 2),
                    req(Event::Vendor(VendorEvent::L2Misses), 2),
                    req(Event::Vendor(VendorEvent::LlcReferences), 3),
                    req(Event::Vendor(VendorEvent::LlcMisses), 3),
                ],
                columns: vec![
                    count("CYCLES", 10, 0, 1000),
                    count("INSTR", 10, 1, 1000),
                    ratio(
                        "IPC",
                        Ipc {
                            instr: 1,
                            cycles: 0,
                        },
                    ),
                    count("L1DREF", 10, 2, 1000),
                    count("L1DMISS", 10, 3, 1000),
                    col("L1D%", 6, Align::Right, Some(2), Hit { refs: 2, misses: 3 }),
                    count("L2REF", 10, 4, 1000),
                    count("L2MISS", 10, 5, 1000),
                    col("L2%", 6, Align::Right, Some(2), Hit { refs: 4, misses: 5 }),
                    count("LLCREF", 10, 6, 1000),
                    count("LLCMISS", 10, 7, 1000),
                    col("LLC%", 6, Align::Right, Some(2), Hit { refs: 6, misses: 7 }),
                ],
                preamble: Some("All counter columns are x 1000"),
            },
            Mode::Tlb => Layout {
                requests: vec![
                    req(cycles, 0),
                    req(instr, 0),
                    req(Event::Vendor(VendorEvent::DtlbLoadWalkCycles), 0),
                    req(Event::Vendor(VendorEvent::DtlbStoreWalkCycles), 0),
                    req(Event::Vendor(VendorEvent::ItlbWalkCycles), 0),
                    req(
                        Event::Cache(CacheId::Dtlb, CacheOp::Read, CacheResult::Miss),
                        1,
                    ),
                    req(
                        Event::Cache(CacheId::Dtlb, CacheOp::Write, CacheResult::Miss),
                        1,
                    ),
                    req(
                        Event::Cache(CacheId::Itlb, CacheOp::Read, CacheResult::Miss),
                        1,
                    ),
                ],
                columns: vec![
                    count("K_CYCLES", 10, 0, 1000),
                    count("K_INSTR", 10, 1, 1000),
                    ratio(
                        "IPC",
                        Ipc {
                            instr: 1,
                            cycles: 0,
                        },
                    ),
                    col(
                        "DTLB_WALKS",
                        10,
                        Align::Left,
                        None,
                        Sum {
                            evs: vec![5, 6],
                            div: 1,
                        },
                    ),
                    count("ITLB_WALKS", 10, 7, 1),
                    col(
                        "K_DTLBCYC",
                        10,
                        Align::Left,
                        None,
                        Sum {
                            evs: vec![2, 3],
                            div: 1000,
                        },
                    ),
                    count("K_ITLBCYC", 10, 4, 1000),
                    col(
                        "DTLB%",
                        6,
                        Align::Right,
                        Some(2),
                        Pct {
                            num: vec![2, 3],
                            den: 0,
                        },
                    ),
                    col(
                        "ITLB%",
                        6,
                        Align::Right,
                        Some(2),
                        Pct {
                            num: vec![4],
                            den: 0,
                        },
                    ),
                ],
                preamble: None,
            },
            Mode::Sw => Layout {
                requests: vec![
                    req(Event::Software(Sw::TaskClock), 0),
                    req(Event::Software(Sw::ContextSwitches), 0),
                    req(Event::Software(Sw::CpuMigrations), 0),
                    req(Event::Software(Sw::PageFaults), 0),
                ],
                columns: vec![
                    col("TASK_MS", 10, Align::Left, Some(1), Ms { ev: 0 }),
                    col("CPUS", 6, Align::Right, Some(2), Cpus { ev: 0 }),
                    count("CSW", 10, 1, 1),
                    count("MIGR", 8, 2, 1),
                    count("PGFAULT", 10, 3, 1),
                ],
                preamble: None,
            },
            // icache: %-10d %10d %5.2f %9d %9d %5.2f %8d %8d %5.2f, counts in thousands.
            Mode::Icache => Layout {
                requests: vec![
                    req(instr, 0),
                    req(
                        Event::Cache(CacheId::L1i, CacheOp::Read, CacheResult::Miss),
                        0,
                    ),
                    req(Event::Vendor(VendorEvent::L2CodeHits), 1),
                    req(Event::Vendor(VendorEvent::L2CodeMisses), 1),
                    req(Event::Vendor(VendorEvent::LlcReferences), 2),
                    req(Event::Vendor(VendorEvent::LlcMisses), 2),
                ],
                columns: vec![
                    count("INS", 10, 0, 1000),
                    rcount("L1IMISS", 10, 1, 1000),
                    // As the original: instructions that did not miss, of instructions.
                    ratio("L1I%", Hit { refs: 0, misses: 1 }),
                    rcount("L2IHIT", 9, 2, 1000),
                    rcount("L2IMISS", 9, 3, 1000),
                    ratio("L2I%", Share { part: 2, other: 3 }),
                    rcount("LLCREF", 8, 4, 1000),
                    rcount("LLCMISS", 8, 5, 1000),
                    ratio("LLC%", Hit { refs: 4, misses: 5 }),
                ],
                preamble: Some("All counter columns are x 1000"),
            },
            // resstalls: nine %8.1f columns in millions of cycles; SUM adds the causes.
            Mode::Resstalls => {
                let requests: Vec<Request> = Stall::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, s)| req(Event::Vendor(VendorEvent::ResourceStalls(*s)), i as u32 / 4))
                    .collect();
                let headers = [
                    "ALL", "LOAD", "PIPE", "STORE", "ROB", "FLOAT", "MXCSR", "OTHER",
                ];
                let mut columns: Vec<Column> = headers
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        col(
                            h,
                            8,
                            Align::Right,
                            Some(1),
                            Fraction {
                                evs: vec![i],
                                div: 1_000_000,
                            },
                        )
                    })
                    .collect();
                columns.push(col(
                    "SUM",
                    8,
                    Align::Right,
                    Some(1),
                    Fraction {
                        evs: (1..8).collect(),
                        div: 1_000_000,
                    },
                ));
                Layout {
                    requests,
                    columns,
                    preamble: Some("All counter columns are x 1000000"),
                }
            }
        }
    }

    /// The same layout with the RUN% column at the end (`--run-pct`).
    pub fn with_run_column(mut self) -> Layout {
        self.columns.push(run_col());
        self
    }

    /// True if the layout ends with the RUN% column.
    pub fn has_run_column(&self) -> bool {
        self.columns.iter().any(|c| c.metric == Metric::Run)
    }

    /// A user list (`-e cycles,instructions,r412e`): one column per event with its raw
    /// count, each event counted on its own (like `perf stat -e`).
    pub fn custom(list: &str) -> Result<Layout, String> {
        let mut requests = Vec::new();
        let mut columns = Vec::new();
        for (i, name) in list.split(',').map(str::trim).enumerate() {
            if name.is_empty() {
                return Err(format!("empty event name in -e {list:?}"));
            }
            let event = Event::parse(name)?;
            requests.push(req(event, i as u32));
            columns.push(count(name, name.len().max(14), i, 1));
        }
        Ok(Layout {
            requests,
            columns,
            preamble: None,
        })
    }

    /// True if any event needs a hardware PMU.
    pub fn needs_hardware(&self) -> bool {
        self.requests.iter().any(|r| !r.event.is_software())
    }

    /// True if every event needs a hardware PMU.
    pub fn only_hardware(&self) -> bool {
        self.requests.iter().all(|r| !r.event.is_software())
    }

    /// The header line.
    pub fn header(&self, out: &mut Vec<u8>) {
        let cells: Vec<String> = self.columns.iter().map(|c| c.header.clone()).collect();
        self.line(out, &cells);
    }

    /// One data row for values read over `elapsed_s` seconds.
    pub fn row(&self, out: &mut Vec<u8>, vals: &[Value], elapsed_s: f64) {
        let cells: Vec<String> = self
            .columns
            .iter()
            .map(|c| cell(c, vals, elapsed_s))
            .collect();
        self.line(out, &cells);
    }

    fn line(&self, out: &mut Vec<u8>, cells: &[String]) {
        let mut s = String::new();
        for (c, text) in self.columns.iter().zip(cells) {
            if !s.is_empty() {
                s.push(' ');
            }
            let _ = match c.align {
                Align::Left => write!(s, "{:<w$}", text, w = c.width),
                Align::Right => write!(s, "{:>w$}", text, w = c.width),
            };
        }
        out.extend_from_slice(s.trim_end().as_bytes());
        out.push(b'\n');
    }
}

/// instructions per cycle; None when no cycles were counted.
pub fn ipc(instr: f64, cycles: f64) -> Option<f64> {
    (cycles > 0.0).then(|| instr / cycles)
}

/// 100 × num / den; None when den is zero.
pub fn pct(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| 100.0 * num / den)
}

/// Hit ratio 100 × (refs − misses) / refs; None without references.
pub fn hit_pct(refs: f64, misses: f64) -> Option<f64> {
    (refs > 0.0).then(|| 100.0 * (refs - misses) / refs)
}

/// The sum of the counted parts, or the reason there is none.
fn sum(vals: &[Value], evs: &[usize]) -> Result<f64, &'static str> {
    let mut total = 0.0;
    let mut any = false;
    let mut not_counted = false;
    for &i in evs {
        match vals.get(i) {
            Some(Value::Counted { value, .. }) => {
                total += value;
                any = true;
            }
            Some(Value::NotCounted) => not_counted = true,
            _ => {}
        }
    }
    if any {
        Ok(total)
    } else if not_counted {
        Err(NOT_COUNTED)
    } else {
        Err(NOT_SUPPORTED)
    }
}

fn float(c: &Column, v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.*}", c.decimals.unwrap_or(2), v),
        _ => UNDEFINED.to_string(),
    }
}

/// The text of one cell.
pub fn cell(c: &Column, vals: &[Value], elapsed_s: f64) -> String {
    let one = |i: usize| sum(vals, &[i]).ok();
    match &c.metric {
        Metric::Count { ev, div } => match sum(vals, &[*ev]) {
            Ok(v) => format!("{}", (v / *div as f64).floor().max(0.0) as u64),
            Err(t) => t.to_string(),
        },
        Metric::Sum { evs, div } => match sum(vals, evs) {
            Ok(v) => format!("{}", (v / *div as f64).floor().max(0.0) as u64),
            Err(t) => t.to_string(),
        },
        Metric::Ipc { instr, cycles } => float(
            c,
            one(*instr).zip(one(*cycles)).and_then(|(i, y)| ipc(i, y)),
        ),
        Metric::Pct { num, den } => float(
            c,
            sum(vals, num)
                .ok()
                .zip(one(*den))
                .and_then(|(n, d)| pct(n, d)),
        ),
        Metric::Hit { refs, misses } => float(
            c,
            one(*refs)
                .zip(one(*misses))
                .and_then(|(r, m)| hit_pct(r, m)),
        ),
        Metric::Ms { ev } => match sum(vals, &[*ev]) {
            Ok(v) => format!("{:.*}", c.decimals.unwrap_or(1), v / 1e6),
            Err(t) => t.to_string(),
        },
        Metric::Cpus { ev } => float(
            c,
            one(*ev).and_then(|v| (elapsed_s > 0.0).then(|| v / (elapsed_s * 1e9))),
        ),
        Metric::Share { part, other } => float(
            c,
            one(*part).zip(one(*other)).and_then(|(p, o)| pct(p, p + o)),
        ),
        Metric::Fraction { evs, div } => match sum(vals, evs) {
            Ok(v) => format!("{:.*}", c.decimals.unwrap_or(1), v / *div as f64),
            Err(t) => t.to_string(),
        },
        Metric::Run => float(c, run_fraction(vals).map(|r| 100.0 * r)),
    }
}

/// The smallest running/enabled fraction among the row's values: 1.0 when nothing was
/// multiplexed, 0.0 when something was never scheduled; None if nothing was enabled.
pub fn run_fraction(vals: &[Value]) -> Option<f64> {
    vals.iter()
        .filter_map(|v| match v {
            Value::Counted { run, .. } => *run,
            Value::NotCounted => Some(0.0),
            Value::NotSupported => None,
        })
        .reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(value: f64) -> Value {
        Value::Counted {
            value,
            run: Some(1.0),
        }
    }

    fn render(layout: &Layout, vals: &[Value], secs: f64) -> String {
        let mut out = Vec::new();
        layout.row(&mut out, vals, secs);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn derived_metrics() {
        assert_eq!(
            ipc(87_166_313.0, 96_163_187.0).map(|v| format!("{v:.2}")),
            Some("0.91".into())
        );
        assert_eq!(
            pct(679_187_299.0, 19_730_994_925.0).map(|v| format!("{v:.2}")),
            Some("3.44".into())
        );
        assert_eq!(
            hit_pct(656_597_454.0, 174_313_799.0).map(|v| format!("{v:.2}")),
            Some("73.45".into())
        );
        // Zero denominators are undefined, not 0 (the original printed 0.00 by
        // replacing a zero denominator with 1).
        assert_eq!(ipc(5.0, 0.0), None);
        assert_eq!(pct(5.0, 0.0), None);
        assert_eq!(hit_pct(0.0, 0.0), None);
        // All misses: 0% hits; no misses: 100%.
        assert_eq!(hit_pct(10.0, 10.0), Some(0.0));
        assert_eq!(hit_pct(10.0, 0.0), Some(100.0));
    }

    #[test]
    fn arch_header_and_row_match_the_original_formats() {
        let l = Layout::mode(Mode::Arch);
        let mut h = Vec::new();
        l.header(&mut h);
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "K_CYCLES   K_INSTR      IPC BR_RETIRED   BR_MISPRED  BMR% LLCREF      LLCMISS     LLC%\n"
        );
        // The original's sample row (pmc-cloud-tools README), in its units.
        let vals = [
            c(96_163_187_000.0),
            c(87_166_313_000.0),
            c(19_730_994_925.0),
            c(679_187_299.0),
            c(656_597_454.0),
            c(174_313_799.0),
        ];
        assert_eq!(
            render(&l, &vals, 1.0),
            "96163187   87166313    0.91 19730994925  679187299   3.44 656597454   174313799  73.45\n"
        );
        // RUN% only on request, as one more column at the end.
        let l = l.with_run_column();
        let mut h = Vec::new();
        l.header(&mut h);
        assert!(String::from_utf8(h).unwrap().ends_with(" LLC%  RUN%\n"));
        assert!(render(&l, &vals, 1.0).ends_with(" 73.45 100.0\n"));
    }

    /// `pmcstat -m MODE | awk '{print $NF}'` prints the original's last column: no mode
    /// ends with RUN% unless asked.
    #[test]
    fn default_layouts_end_with_the_originals_last_column() {
        for (mode, last) in [
            (Mode::Arch, "LLC%"),
            (Mode::Ipc, "IPC"),
            (Mode::Cache, "LLC%"),
            (Mode::Tlb, "ITLB%"),
            (Mode::Icache, "LLC%"),
            (Mode::Resstalls, "SUM"),
            (Mode::Sw, "PGFAULT"),
        ] {
            let l = Layout::mode(mode);
            assert!(!l.has_run_column(), "{mode:?}");
            assert_eq!(l.columns.last().unwrap().header, last, "{mode:?}");
            let l = l.with_run_column();
            assert!(l.has_run_column());
            assert_eq!(l.columns.last().unwrap().header, RUN_HEADER);
        }
        assert!(!Layout::custom("cycles").unwrap().has_run_column());
    }

    #[test]
    fn zero_denominators_and_missing_events_in_rows() {
        let l = Layout::mode(Mode::Arch);
        let vals = [
            c(0.0),
            c(0.0),
            c(0.0),
            c(0.0),
            Value::NotSupported,
            Value::NotSupported,
        ];
        let row = render(&l, &vals, 1.0);
        let f: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            f,
            [
                "0",
                "0",
                "-",
                "0",
                "0",
                "-",
                NOT_SUPPORTED,
                NOT_SUPPORTED,
                "-"
            ],
            "{row}"
        );
        let l = l.with_run_column();
        // Never scheduled: shown as such, never as 0, and RUN% says 0.
        let vals = [
            Value::NotCounted,
            Value::NotCounted,
            c(10.0),
            c(1.0),
            c(4.0),
            c(1.0),
        ];
        let f: Vec<String> = render(&l, &vals, 1.0)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(&f[..3], [NOT_COUNTED, NOT_COUNTED, "-"]);
        assert_eq!(f[5], "10.00");
        assert_eq!(f[8], "75.00");
        assert_eq!(f[9], "0.0");
    }

    #[test]
    fn multiplexed_rows_show_the_run_percentage() {
        let l = Layout::mode(Mode::Ipc).with_run_column();
        let vals = [
            Value::Counted {
                value: 4_000_000.0,
                run: Some(0.25),
            },
            Value::Counted {
                value: 6_000_000.0,
                run: Some(0.25),
            },
        ];
        assert_eq!(
            render(&l, &vals, 1.0),
            "4000       6000        1.50  25.0\n"
        );
        // Nothing enabled (the process did not run): zero counts, RUN% undefined.
        let idle = [
            Value::Counted {
                value: 0.0,
                run: None,
            },
            Value::Counted {
                value: 0.0,
                run: None,
            },
        ];
        assert_eq!(
            render(&l, &idle, 1.0),
            "0          0              -     -\n"
        );
    }

    #[test]
    fn software_row() {
        let l = Layout::mode(Mode::Sw);
        let mut h = Vec::new();
        l.header(&mut h);
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "TASK_MS      CPUS CSW        MIGR     PGFAULT\n"
        );
        // 1.5 s of CPU over 1 s: 1.50 CPUs busy.
        let vals = [c(1_500_000_000.0), c(42.0), c(3.0), c(100.0)];
        assert_eq!(
            render(&l, &vals, 1.0),
            "1500.0       1.50 42         3        100\n"
        );
    }

    #[test]
    fn tlb_sums_available_parts() {
        let l = Layout::mode(Mode::Tlb);
        // AMD-like: no walk-cycle events, no DTLB store walks.
        let vals = [
            c(2_000_000.0),
            c(1_000_000.0),
            Value::NotSupported,
            Value::NotSupported,
            Value::NotSupported,
            c(500.0),
            Value::NotSupported,
            c(20.0),
        ];
        let f: Vec<String> = render(&l, &vals, 1.0)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            f,
            [
                "2000",
                "1000",
                "0.50",
                "500",
                "20",
                NOT_SUPPORTED,
                NOT_SUPPORTED,
                "-",
                "-"
            ]
        );
    }

    #[test]
    fn custom_lists() {
        let l = Layout::custom("cycles, task-clock,r412e").unwrap();
        assert_eq!(l.requests.len(), 3);
        assert_eq!(l.requests[2].event, Event::Raw(0x412e));
        // Each event in its own group, like perf stat -e.
        assert_eq!(
            l.requests.iter().map(|r| r.group).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(l.needs_hardware() && !l.only_hardware());
        assert!(Layout::custom("cycles,,instructions").is_err());
        assert!(Layout::custom("bogus").is_err());
        let mut h = Vec::new();
        l.header(&mut h);
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "cycles         task-clock     r412e\n"
        );
        let mut h = Vec::new();
        l.with_run_column().header(&mut h);
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "cycles         task-clock     r412e           RUN%\n"
        );
        assert!(!Layout::mode(Mode::Sw).needs_hardware());
        assert!(Layout::mode(Mode::Arch).only_hardware());
    }

    #[test]
    fn icache_header_and_row_match_the_original_formats() {
        let l = Layout::mode(Mode::Icache);
        assert_eq!(l.preamble, Some("All counter columns are x 1000"));
        let mut h = Vec::new();
        l.header(&mut h);
        // %-10s %10s %5s %9s %9s %5s %8s %8s %5s
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "INS           L1IMISS  L1I%    L2IHIT   L2IMISS  L2I%   LLCREF  LLCMISS  LLC%\n"
        );
        let vals = [
            c(5_000_000_000.0), // instructions
            c(50_000_000.0),    // L1-icache-load-misses
            c(30_000_000.0),    // L2 code hits
            c(10_000_000.0),    // L2 code misses
            c(4_000_000.0),     // LLC references
            c(1_000_000.0),     // LLC misses
        ];
        // %-10d %10d %5.2f %9d %9d %5.2f %8d %8d %5.2f of thousands; L1I% = 100 ×
        // (INS − L1IMISS) / INS, L2I% = 100 × hit / (hit + miss), LLC% the hit ratio.
        assert_eq!(
            render(&l, &vals, 1.0),
            "5000000         50000 99.00     30000     10000 75.00     4000     1000 75.00\n"
        );
        // An E-core-only or pre-Zen CPU: the L2 columns are not supported, never 0.
        let vals = [
            c(1000.0),
            c(10.0),
            Value::NotSupported,
            Value::NotSupported,
            c(0.0),
            c(0.0),
        ];
        let f: Vec<String> = render(&l, &vals, 1.0)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            f,
            [
                "1",
                "0",
                "99.00",
                NOT_SUPPORTED,
                NOT_SUPPORTED,
                "-",
                "0",
                "0",
                "-"
            ]
        );
    }

    #[test]
    fn resstalls_header_and_row_match_the_original_formats() {
        let l = Layout::mode(Mode::Resstalls);
        assert_eq!(l.preamble, Some("All counter columns are x 1000000"));
        // The original's event list: RESOURCE_STALLS.ANY then r02a2 .. r80a2.
        assert_eq!(
            l.requests.iter().map(|r| r.event).collect::<Vec<_>>(),
            Stall::ALL.map(|s| Event::Vendor(VendorEvent::ResourceStalls(s)))
        );
        let mut h = Vec::new();
        l.header(&mut h);
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "     ALL     LOAD     PIPE    STORE      ROB    FLOAT    MXCSR    OTHER      SUM\n"
        );
        let vals: Vec<Value> = [900.0, 100.0, 200.0, 300.0, 150.0, 0.0, 0.0, 50.0]
            .iter()
            .map(|m| c(m * 1e6 + 40_000.0))
            .collect();
        assert_eq!(
            render(&l, &vals, 1.0),
            "   900.0    100.0    200.0    300.0    150.0      0.0      0.0     50.0    800.3\n"
        );
        // Skylake: ANY and STORE only; SUM adds what is counted.
        let mut vals = vec![Value::NotSupported; 8];
        vals[0] = c(7_500_000.0);
        vals[3] = c(2_500_000.0);
        let f: Vec<String> = render(&l, &vals, 1.0)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            f,
            [
                "7.5",
                NOT_SUPPORTED,
                NOT_SUPPORTED,
                "2.5",
                NOT_SUPPORTED,
                NOT_SUPPORTED,
                NOT_SUPPORTED,
                NOT_SUPPORTED,
                "2.5"
            ]
        );
    }
}
