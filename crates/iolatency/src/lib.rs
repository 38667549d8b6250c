//! iolatency: summarize block I/O latency as power-of-two histograms.
//!
//! A port of perf-tools' `iolatency` with the same options and histogram text. It decodes
//! `block_rq_*` events by format from the binary ring buffers (right on Linux 6.11+ too),
//! works in a private tracefs instance, and counts every completed I/O exactly once:
//! in-flight starts are kept across intervals (the original cleared them at each tick),
//! and an I/O belongs to the interval in which it completed.

pub mod hist;

use anyhow::Result;
use clap::Parser;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use hist::Log2Hist;
use perf_tools_block::diskstats::DiskStats;
use perf_tools_block::{BlockPipeline, Detail, Device, DeviceSpec, Lean, StartPoint, Tasked};
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_core::{cli, clock::monotonic_ns};
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::reader::Wake;
use perf_tools_ftrace::scope::Scope;
use perf_tools_ftrace::session::{EndOfRun, RunAccount};
use perf_tools_ftrace::tracefs::Tracefs;
use perf_tools_heatmap::IoHeatmap;

/// Command-line options (the original's, plus long-only or new extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "iolatency",
    version,
    about = "Summarize block device I/O latency as a histogram",
    after_help = "Examples:\n  iolatency                 # summarize latency every second\n  iolatency -Q              # include block I/O queue time\n  iolatency 5 2             # 2 x 5 second summaries\n  iolatency -i '*R*'        # trace reads\n  iolatency -d 202,1        # trace device 202,1 only\n  iolatency -d nvme0n1      # trace device nvme0n1 only (a name, partition or /dev path)\n  iolatency -uP             # microsecond buckets, with percentiles\n  iolatency -D --json 10    # per-disk NDJSON every 10 seconds\n\nSee the iolatency(8) man page for more."
)]
pub struct Args {
    /// Only trace this device: "major,minor" (e.g. "202,1"), a name (sda, nvme0n1, a partition such as sda1) or a /dev path
    #[arg(short = 'd', value_name = "device")]
    pub device: Option<DeviceSpec>,
    /// Only trace I/O whose type matches this glob (e.g. '*R*' for all reads)
    #[arg(short = 'i', value_name = "iotype")]
    pub iotype: Option<String>,
    /// Use queue insert as the start time (include queueing time)
    #[arg(short = 'Q')]
    pub queue: bool,
    /// Print a timestamp (HH:MM:SS:) before each summary
    #[arg(short = 'T')]
    pub timestamp: bool,
    /// Microsecond buckets instead of milliseconds
    #[arg(short = 'u', long = "usecs")]
    pub usecs: bool,
    /// One histogram per device (named, e.g. "vda (254,0)")
    #[arg(short = 'D', long = "per-disk")]
    pub per_disk: bool,
    /// Print p50, p90, p99, p99.9 and max latency after each histogram
    #[arg(short = 'P', long = "percentiles")]
    pub percentiles: bool,
    /// Print one JSON object per interval (NDJSON) instead of text
    #[arg(long)]
    pub json: bool,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Print what this tool would use on this host and why, then exit: 0 if it can run, 1 if not (nothing is left in tracefs)
    #[arg(long, exclusive = true)]
    pub check: bool,
    /// Seconds between summaries (default 1; fractions allowed)
    #[arg(value_name = "interval", value_parser = cli::seconds("interval", 0.01, 86_400.0))]
    pub interval: Option<f64>,
    /// Also write a latency heat map (SVG) of every I/O counted to FILE at the end of the run
    #[arg(long, value_name = "FILE")]
    pub heatmap: Option<std::path::PathBuf>,
    /// Container scope: only I/O started by a cgroup's tasks (decided in user space by the
    /// thread that issued or queued each request)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Number of summaries (default: until Ctrl-C)
    #[arg(value_name = "count", value_parser = perf_tools_core::cli::at_least::<u64>("count", 1))]
    pub count: Option<u64>,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let every = args.interval.unwrap_or(1.0);
    if args.count.is_some() {
        format!("Tracing block I/O. Output every {every} seconds.")
    } else {
        format!("Tracing block I/O. Output every {every} seconds. Ctrl-C to end.")
    }
}

/// Latency statistics of one device (or of all devices) in one interval.
#[derive(Debug, Clone)]
pub struct Stats {
    /// The power-of-two histogram.
    pub hist: Log2Hist,
    /// Exact distribution for percentiles (nanoseconds, 3 significant digits).
    pub hdr: Option<Histogram<u64>>,
}

impl Stats {
    fn new(unit_ns: u64, exact: bool) -> Stats {
        let hdr = exact
            .then(|| Histogram::new_with_bounds(1, 3_600_000_000_000, 3))
            .and_then(|h| h.ok());
        Stats {
            hist: Log2Hist::new(unit_ns),
            hdr,
        }
    }

    fn record(&mut self, lat_ns: u64) {
        self.hist.record(lat_ns);
        if let Some(h) = &mut self.hdr {
            h.saturating_record(lat_ns.max(1));
        }
    }

    /// `(p50, p90, p99, p99.9, max)` in nanoseconds, if percentiles are kept and any
    /// I/O was recorded.
    pub fn percentiles(&self) -> Option<[u64; 5]> {
        let h = self.hdr.as_ref().filter(|h| !h.is_empty())?;
        Some([
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        ])
    }
}

/// One interval's summary, per device or for all devices (`None`).
#[derive(Debug, Clone)]
pub struct Summary {
    /// Statistics keyed by device (`None`: all devices together), except `last`.
    by_dev: BTreeMap<Option<Device>, Stats>,
    /// The device recorded last, and its statistics (kept out of the map).
    last: Option<(Option<Device>, Stats)>,
    /// Events the kernel lost since the previous summary (its per-CPU counters).
    pub lost: u64,
    /// Events of this interval were lost (a loss overlaps its time span): its counts
    /// miss I/O.
    pub incomplete: bool,
    unit_ns: u64,
    exact: bool,
    per_disk: bool,
}

impl Summary {
    /// An empty summary.
    pub fn new(unit_ns: u64, exact: bool, per_disk: bool) -> Summary {
        Summary {
            by_dev: BTreeMap::new(),
            last: None,
            lost: 0,
            incomplete: false,
            unit_ns,
            exact,
            per_disk,
        }
    }

    /// Counts one completed I/O.
    #[inline]
    pub fn record(&mut self, dev: Device, lat_ns: u64) {
        let key = self.per_disk.then_some(dev);
        // Runs once per I/O: the device of the previous I/O is the likely one.
        if let Some((k, stats)) = &mut self.last {
            if *k == key {
                stats.record(lat_ns);
                return;
            }
        }
        let (unit, exact) = (self.unit_ns, self.exact);
        if let Some((k, stats)) = self.last.take() {
            self.by_dev.insert(k, stats);
        }
        let mut stats = self
            .by_dev
            .remove(&key)
            .unwrap_or_else(|| Stats::new(unit, exact));
        stats.record(lat_ns);
        self.last = Some((key, stats));
    }

    /// Statistics per device (`None`: all devices together), in device order.
    pub fn by_dev(&self) -> Vec<(&Option<Device>, &Stats)> {
        let mut v: Vec<(&Option<Device>, &Stats)> = self.by_dev.iter().collect();
        if let Some((k, s)) = &self.last {
            v.push((k, s));
            v.sort_by_key(|e| *e.0);
        }
        v
    }

    /// Total I/O counted.
    pub fn total(&self) -> u64 {
        self.by_dev().iter().map(|(_, s)| s.hist.total()).sum()
    }

    fn unit(&self) -> (&'static str, f64) {
        if self.unit_ns == 1_000 {
            ("us", 1_000.0)
        } else {
            ("ms", 1_000_000.0)
        }
    }

    /// What was lost, if anything: the kernel's count since the previous summary, and
    /// whether events of this interval are among them.
    pub fn loss_warning(&self) -> Option<String> {
        let whose = "events of this interval were lost: its counts are incomplete";
        match (self.lost, self.incomplete) {
            (0, false) => None,
            (0, true) => Some(whose.to_string()),
            (n, false) => Some(format!("{n} events lost since the last summary")),
            (n, true) => Some(format!("{n} events lost since the last summary; {whose}")),
        }
    }

    /// Renders the text form: blank line, optional timestamp, then per histogram an
    /// optional device line, the histogram, and optional percentiles.
    pub fn render_text(&self, out: &mut Vec<u8>, timestamp: Option<&str>) {
        let (unit, div) = self.unit();
        out.push(b'\n');
        if let Some(t) = timestamp {
            let _ = writeln!(out, "{t}");
        }
        if let Some(w) = self.loss_warning() {
            let _ = writeln!(out, "WARNING: {w}");
        }
        let empty = Stats::new(self.unit_ns, self.exact);
        let mut entries = self.by_dev();
        if entries.is_empty() {
            entries.push((&None, &empty));
        }
        for (i, (dev, stats)) in entries.into_iter().enumerate() {
            if let Some(d) = dev {
                if i > 0 {
                    out.push(b'\n');
                }
                // The kernel's name for the device, escaped like every name printed.
                let _ = writeln!(
                    out,
                    "Device {} ({d}):",
                    d.name()
                        .map(|n| perf_tools_core::output::escape(n.as_bytes()))
                        .unwrap_or_else(|| "?".into())
                );
            }
            stats.hist.render(out, unit);
            if self.exact {
                match stats.percentiles() {
                    Some(p) => {
                        let f = |v: u64| format!("{:.3}", v as f64 / div);
                        let _ = writeln!(
                            out,
                            "  p50 {}  p90 {}  p99 {}  p99.9 {}  max {} ({unit}), {} I/O",
                            f(p[0]),
                            f(p[1]),
                            f(p[2]),
                            f(p[3]),
                            f(p[4]),
                            stats.hist.total()
                        );
                    }
                    None => {
                        let _ = writeln!(out, "  no I/O completed");
                    }
                }
            }
        }
    }

    /// Renders one NDJSON line.
    pub fn render_json(&self, out: &mut Vec<u8>, interval_s: f64, unix_time: f64) {
        let (unit, div) = self.unit();
        let hists: Vec<serde_json::Value> = self
            .by_dev()
            .into_iter()
            .map(|(dev, s)| {
                let buckets: Vec<serde_json::Value> = s
                    .hist
                    .rows()
                    .into_iter()
                    .map(|(lo, hi, n)| serde_json::json!({"ge": lo, "lt": hi, "count": n}))
                    .collect();
                let p = s.percentiles();
                let pv = |i: usize| p.map(|p| p[i] as f64 / div);
                serde_json::json!({
                    "device": dev.map(|d| d.to_string()).unwrap_or_else(|| "all".into()),
                    "name": dev.and_then(|d| d.name()),
                    "count": s.hist.total(),
                    "buckets": buckets,
                    "p50": pv(0), "p90": pv(1), "p99": pv(2), "p99_9": pv(3), "max": pv(4),
                })
            })
            .collect();
        let v = serde_json::json!({
            "time": unix_time,
            "interval_s": interval_s,
            "unit": unit,
            "count": self.total(),
            "lost_events": self.lost,
            "incomplete": self.incomplete,
            "histograms": hists,
        });
        let _ = writeln!(out, "{v}");
    }
}

/// Takes one raw event: a fork the scope follows ([`Scope::observe`]), else a block
/// event for the pipeline.
#[inline]
fn push<D: Detail>(
    pipeline: &mut BlockPipeline<D>,
    scope: &mut Option<Scope>,
    cpu: u32,
    ts: u64,
    payload: &[u8],
) {
    if !scope.as_mut().is_some_and(|s| s.observe(payload)) {
        pipeline.push(cpu, ts, payload);
    }
}

/// Pairs the held events up to `upto` and counts every completed I/O in `summary` (and
/// in the heat map, with --heatmap).
fn count_completed<D: Detail>(
    pipeline: &mut BlockPipeline<D>,
    summary: &mut Summary,
    heat: &mut Option<IoHeatmap>,
    scope: &mut Option<Scope>,
    upto: u64,
) {
    pipeline.release(
        upto,
        // With a scope: only I/O started by a thread of the cgroup is timed.
        |who| match (scope.as_mut(), D::pid(who)) {
            (Some(sc), Some(pid)) => sc.holds(pid),
            _ => true,
        },
        |c| {
            summary.record(c.dev, c.latency_ns());
            if let Some(h) = heat.as_mut() {
                h.add(c.end_ts, c.latency_ns());
            }
        },
    );
}

/// What iolatency would use on this host and whether it can run (`--check`, and its row
/// in perf-tools-doctor): the block tracepoints and their layout, verified in a private
/// instance that is removed before this returns.
pub fn check() -> Result<perf_tools_core::check::Report> {
    perf_tools_block::check("iolatency")
}

/// Runs iolatency.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    // The device is checked before any kernel state is created: a name that does not
    // exist is an error; a major,minor that does not exist (yet) is traced with a warning.
    let device = perf_tools_block::device_filter(args.device.as_ref())?;
    let filters = perf_tools_block::filters(device.as_ref(), args.iotype.as_deref(), None)
        .map_err(|e| cli::usage(e.to_string()))?;
    let heat = (args.heatmap.as_deref())
        .map(|p| IoHeatmap::new("iolatency", p))
        .transpose()
        .map_err(cli::usage)?;
    // Without a scope the events keep no thread (less to hold and pair).
    match args.scope.resolve()? {
        Some(sc) => trace::<Tasked>(&args, device, filters, heat, Some(sc)),
        None => trace::<Lean>(&args, device, filters, heat, None),
    }
}

/// The trace of [`run`], its options checked, keeping detail `D` of each request
/// ([`Tasked`] for a scope).
fn trace<D: Detail>(
    args: &Args,
    device: Option<perf_tools_block::DeviceFilter>,
    filters: (Option<String>, Option<String>),
    mut heat: Option<IoHeatmap>,
    mut scope: Option<Scope>,
) -> Result<()> {
    let start_point = if args.queue {
        StartPoint::Insert
    } else {
        StartPoint::Issue
    };
    let interval = args.interval.unwrap_or(1.0);
    let interval_ns = (interval * 1e9) as u64;
    let unit_ns = if args.usecs { 1_000 } else { 1_000_000 };
    let exact = args.percentiles || args.json;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let (mut session, decoder) = perf_tools_block::start_trace(
        &tracefs,
        "iolatency",
        start_point,
        &filters,
        args.buffer_kb,
        50,
        perf_tools_block::Placement {
            scope: scope.as_mut(),
            record_tgid: false,
        },
    )?;

    let mut out = Output::stdout();
    if args.json {
        eprintln!("{}", banner(args));
    } else {
        let _ = writeln!(out.buf, "{}", banner(args));
        out.flush()?;
    }

    let mut pipeline = BlockPipeline::<D>::new(decoder, start_point);
    let mut summary = Summary::new(unit_ns, exact, args.per_disk);
    let mut printed = 0u64;
    // I/Os counted in the printed histograms, and what the disks did meanwhile: for the
    // end-of-run account, which explains all-zero histograms.
    let mut counted = 0u64;
    let disks_before = DiskStats::read();
    // Lost events: reported in printed summaries so far, and flagged in pages since.
    let mut lost_reported = 0u64;
    let mut lost_in_band = 0u64;
    // Losses of events the pairing has passed, as time ranges holding every lost event.
    let mut losses: Vec<(u64, u64)> = Vec::new();
    let mut tick = monotonic_ns() + interval_ns;
    'run: loop {
        let now = monotonic_ns();
        let timeout =
            Duration::from_nanos(tick.saturating_sub(now)).min(Duration::from_millis(500));
        match session.reader.wait(&shutdown, timeout) {
            Wake::Shutdown => {
                if heat.is_some() {
                    // What completed before the signal goes into the heat map too.
                    let watermark = monotonic_ns();
                    let mut state = (&mut pipeline, &mut summary, &mut heat, &mut scope);
                    session.reader.drain_rounds(
                        watermark,
                        &mut state,
                        |(p, _, _, sc), cpu, ts, payload| push(p, sc, cpu, ts, payload),
                        |(p, ..), gap| p.gap(gap),
                        |(p, summary, heat, sc), wm| count_completed(p, summary, heat, sc, wm),
                    );
                }
                break;
            }
            Wake::OutputClosed => {
                if let Some(h) = &heat {
                    h.finish("iolatency")?;
                }
                session.finish()?;
                return Ok(());
            }
            Wake::Ready => {}
        }
        if let Some(sc) = scope.as_mut() {
            sc.poll_turn(false, &shutdown, "iolatency");
        }
        session.check_state()?;
        if let Some((from, to)) = session.take_state_gap() {
            // Another process changed (or put back) our settings: events between these
            // times may be missing. No I/O started by then is timed, and the intervals
            // that overlap say they are incomplete.
            pipeline.inflight.gap(to);
            losses.push((from, to));
        }
        let watermark = monotonic_ns();
        // Pair as the drain goes (up to the current interval's end at most), so the
        // merge holds about a page per CPU rather than a whole buffer.
        let mut state = (&mut pipeline, &mut summary, &mut heat, &mut scope);
        let stats = session.reader.drain_rounds(
            watermark,
            &mut state,
            |(p, _, _, sc), cpu, ts, payload| push(p, sc, cpu, ts, payload),
            |(p, ..), gap| p.gap(gap),
            |(p, summary, heat, sc), wm| count_completed(p, summary, heat, sc, wm.min(tick)),
        );
        lost_in_band += stats.missed;
        // Close every interval whose end has passed: an I/O counts in the interval in
        // which it completed; starts still in flight carry over.
        while watermark >= tick {
            count_completed(&mut pipeline, &mut summary, &mut heat, &mut scope, tick);
            losses.extend(pipeline.take_gaps());
            let from = tick.saturating_sub(interval_ns);
            summary.incomplete = losses.iter().any(|&(a, b)| a < tick && b >= from);
            losses.retain(|&(_, b)| b >= tick);
            // The pages' flags give at least how many; the kernel's counters, exactly.
            let reported = (lost_reported + lost_in_band).max(session.reader.lost_events());
            lost_in_band = 0;
            summary.lost = reported - lost_reported;
            lost_reported = reported;
            if let Some(w) = summary.loss_warning() {
                eprintln!(
                    "WARNING: {w} (the kernel buffer overflowed: try --buffer-kb larger than {})",
                    args.buffer_kb
                );
            }
            if args.json {
                let unix = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
                summary.render_json(&mut out.buf, interval, unix);
            } else {
                let ts = args
                    .timestamp
                    .then(|| chrono::Local::now().format("%H:%M:%S:").to_string());
                summary.render_text(&mut out.buf, ts.as_deref());
            }
            out.flush()?;
            counted += summary.total();
            summary = Summary::new(unit_ns, exact, args.per_disk);
            printed += 1;
            tick += interval_ns;
            if args.count.is_some_and(|c| printed >= c) {
                break 'run;
            }
        }
        count_completed(
            &mut pipeline,
            &mut summary,
            &mut heat,
            &mut scope,
            watermark,
        );
    }
    if let Some(h) = &heat {
        // Also when the run ends by a signal: written, then renamed.
        h.finish("iolatency")?;
    }
    let mut account = RunAccount::new("iolatency", "I/Os in the histograms");
    account.rows = counted;
    pipeline.inflight.note_overlaps(&mut account);
    if let (Some(before), Some(after)) = (disks_before.as_ref(), DiskStats::read()) {
        account.seen = after.seen(before, device.as_ref().map(|d| d.dev));
    }
    if printed == 0 {
        account
            .notes
            .push("no interval ended before the run did".to_string());
    }
    for opt in filter_notes(args) {
        account.filter(opt, true);
    }
    for (option, in_kernel) in args.scope.filter_notes(false) {
        account.filter(option, in_kernel);
    }
    if let Some(sc) = &scope {
        sc.say_unknown("iolatency", "I/O");
    }
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported,
            note_on_stderr: args.json,
            loss_effect: format!(
                "histograms undercount ({} I/Os in flight across the losses were not timed)",
                pipeline.inflight.dropped_at_gap
            ),
            account: Some(account),
        },
        || Ok(()),
    )?;
    if let Some(note) = pipeline.inflight.overlap_note() {
        eprintln!("{note}");
    }
    Ok(())
}

/// The filters in force, as the user gave them (all applied in the kernel), for the
/// end-of-run account.
pub fn filter_notes(args: &Args) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(d) = &args.device {
        v.push(format!("-d {d}"));
    }
    if let Some(i) = &args.iotype {
        v.push(format!("-i '{i}'"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_match_the_original() {
        assert_eq!(
            banner(&Args::parse_from(["iolatency"])),
            "Tracing block I/O. Output every 1 seconds. Ctrl-C to end."
        );
        assert_eq!(
            banner(&Args::parse_from(["iolatency", "5", "2"])),
            "Tracing block I/O. Output every 5 seconds."
        );
        assert_eq!(
            banner(&Args::parse_from(["iolatency", "0.2"])),
            "Tracing block I/O. Output every 0.2 seconds. Ctrl-C to end."
        );
    }

    #[test]
    fn usage_errors() {
        for argv in [
            &["iolatency", "0"][..],
            &["iolatency", "x"],
            &["iolatency", "1", "0"],
            &["iolatency", "1", "-3"],
            &["iolatency", "-d", "1"],
            &["iolatency", "1", "2", "3"],
        ] {
            assert_eq!(
                Args::try_parse_from(argv).unwrap_err().exit_code(),
                2,
                "{argv:?}"
            );
        }
    }

    #[test]
    fn summary_text_with_percentiles_and_devices() {
        let mut s = Summary::new(1_000_000, true, true);
        let (a, b) = (Device { major: 7, minor: 0 }, Device { major: 7, minor: 1 });
        for i in 0..100 {
            s.record(a, 100_000 + i * 1_000);
        }
        s.record(b, 3_000_000);
        let mut out = Vec::new();
        s.render_text(&mut out, Some("12:00:00:"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("\n12:00:00:\nDevice "), "{text}");
        assert!(text.contains("(7,0):\n  >=(ms) .. <(ms)"), "{text}");
        assert!(
            text.contains(
                "       0 -> 1       : 100      |######################################|"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "       2 -> 4       : 1        |######################################|"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  p50 0.149  p90 0.189  p99 0.198  p99.9 0.199  max 0.199 (ms), 100 I/O"
            ),
            "{text}"
        );
        assert_eq!(s.total(), 101);
        // Interleaved devices: each keeps its own counts; output stays in device order.
        let mut s = Summary::new(1_000_000, false, true);
        for i in 0..10 {
            s.record(if i % 3 == 0 { b } else { a }, 500_000);
        }
        let counts: Vec<(Option<Device>, u64)> = s
            .by_dev()
            .iter()
            .map(|(d, st)| (**d, st.hist.total()))
            .collect();
        assert_eq!(counts, vec![(Some(a), 6), (Some(b), 4)]);
    }

    #[test]
    fn an_interval_with_lost_events_says_so_above_its_histogram() {
        let mut s = Summary::new(1_000_000, false, false);
        let mut out = Vec::new();
        s.render_text(&mut out, None);
        assert!(!String::from_utf8(out).unwrap().contains("WARNING"));
        s.incomplete = true;
        assert_eq!(
            s.loss_warning().unwrap(),
            "events of this interval were lost: its counts are incomplete"
        );
        s.incomplete = false;
        s.lost = 7;
        assert_eq!(
            s.loss_warning().unwrap(),
            "7 events lost since the last summary"
        );
        s.lost = 4_400_000;
        s.incomplete = true;
        let mut out = Vec::new();
        s.render_text(&mut out, None);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("\nWARNING: 4400000 events lost since the last summary; events of this interval were lost: its counts are incomplete\n  >=(ms)"),
            "{text}"
        );
        let mut out = Vec::new();
        s.render_json(&mut out, 1.0, 0.0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["lost_events"].as_u64(), v["incomplete"].as_bool()),
            (Some(4_400_000), Some(true))
        );
    }

    #[test]
    fn summary_json_is_one_parseable_line() {
        let mut s = Summary::new(1_000, true, false);
        s.record(Device { major: 8, minor: 0 }, 1_500);
        s.lost = 3;
        let mut out = Vec::new();
        s.render_json(&mut out, 1.0, 1700000000.0);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["unit"], "us");
        assert_eq!(v["count"], 1);
        assert_eq!(v["lost_events"], 3);
        assert_eq!(v["incomplete"], false);
        assert_eq!(v["histograms"][0]["device"], "all");
        assert_eq!(v["histograms"][0]["buckets"][1]["count"], 1);
        assert_eq!(v["histograms"][0]["buckets"][1]["ge"], 1);
        assert!((v["histograms"][0]["max"].as_f64().unwrap() - 1.5).abs() < 0.01);
    }
}
