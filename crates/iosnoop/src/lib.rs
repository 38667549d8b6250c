//! iosnoop: trace block device I/O with per-I/O latency.
//!
//! A port of perf-tools' `iosnoop` with the same options, header lines and columns,
//! that decodes `block_rq_*` events by the running kernel's format files (so BLOCK and
//! BYTES stay right on Linux 6.11+), works in a private tracefs instance, and leaves
//! nothing behind on any exit path.

use anyhow::Result;
use clap::Parser;
use std::io::Write;
use std::time::Duration;

use perf_tools_block::diskstats::DiskStats;
use perf_tools_block::{BlockPipeline, Completed, DeviceSpec, Full, StartPoint, Who};
use perf_tools_core::cli;
use perf_tools_core::output::{escape_into, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_core::target::{self, ProcessThreads, Procfs};
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::comm::saved_tgid;
use perf_tools_ftrace::scope::Columns;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;
use perf_tools_heatmap::IoHeatmap;

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "iosnoop",
    version,
    about = "Trace block device I/O and print details including issuing PID and latency",
    long_about = None,
    after_help = "Examples:\n  iosnoop                   # watch block I/O live (unbuffered)\n  iosnoop 1                 # trace 1 sec (buffered)\n  iosnoop -Q                # include queueing time in LATms\n  iosnoop -ts               # include start and end timestamps\n  iosnoop -i '*R*'          # trace reads\n  iosnoop -d sda            # only device sda (or -d 8,0, -d /dev/sda, a partition)\n  iosnoop -p 91             # show I/O issued when PID 91 is on-CPU\n  iosnoop -Qp 91            # show I/O queued by PID 91, queue time\n\nSee the iosnoop(8) man page for more."
)]
pub struct Args {
    /// Only trace this device: "major,minor" (e.g. "202,1"), a name (sda, nvme0n1, a partition such as sda1) or a /dev path
    #[arg(short = 'd', value_name = "device")]
    pub device: Option<DeviceSpec>,
    /// Only trace I/O whose type matches this glob (e.g. '*R*' for all reads)
    #[arg(short = 'i', value_name = "iotype")]
    pub iotype: Option<String>,
    /// Only show I/O issued by processes whose name matches this regex
    #[arg(short = 'n', value_name = "name", conflicts_with_all = ["pid", "tid"])]
    pub name: Option<String>,
    /// Only trace I/O issued while a thread of process PID was on-CPU (all its threads, also ones created later)
    #[arg(short = 'p', value_name = "PID", conflicts_with = "tid")]
    pub pid: Option<u32>,
    /// Only trace I/O issued while thread TID was on-CPU (what -p did in the original)
    #[arg(short = 'L', value_name = "TID")]
    pub tid: Option<u32>,
    /// Use queue insert as the start time (LATms includes queueing time)
    #[arg(short = 'Q')]
    pub queue: bool,
    /// Include the start time of each I/O (STARTs column, seconds)
    #[arg(short = 's')]
    pub start: bool,
    /// Include the completion time of each I/O (ENDs column, seconds)
    #[arg(short = 't')]
    pub end: bool,
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(value_name = "duration", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Only print I/O whose latency (LATms, unrounded) is at least MS milliseconds (the outliers); every I/O is still traced and decoded
    #[arg(long = "min-ms", value_name = "MS", value_parser = parse_ms)]
    pub min_ms: Option<f64>,
    /// With --min-ms, also print every I/O that completed within SECS seconds before or after each outlier, from a bounded window in memory; adds a first column: * outlier, - context
    #[arg(long, value_name = "SECS", requires = "min_ms", value_parser = perf_tools_core::cli::seconds("--context", 0.0, 3600.0))]
    pub context: Option<f64>,
    /// With --context, the most I/Os the window holds (the memory bound); older ones are dropped and the output then says the context was truncated
    #[arg(long = "context-rows", value_name = "N", requires = "context", default_value_t = DEFAULT_CONTEXT_ROWS, value_parser = perf_tools_core::cli::between::<usize>("--context-rows", 1000, 10_000_000))]
    pub context_rows: usize,
    /// With --min-ms, stop after N outliers (and the --context after the last one)
    #[arg(long, value_name = "N", requires = "min_ms", value_parser = perf_tools_core::cli::between::<u64>("--count", 1, u64::MAX))]
    pub count: Option<u64>,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Print what this tool would use on this host and why, then exit: 0 if it can run, 1 if not (nothing is left in tracefs)
    #[arg(long, exclusive = true)]
    pub check: bool,
    /// Also write a latency heat map (SVG) of every I/O shown to FILE at the end of the run
    #[arg(long, value_name = "FILE")]
    pub heatmap: Option<std::path::PathBuf>,
    /// Container scope (iosnoop: --cgroup and --container, by the task that issued the
    /// I/O) and the issuing task's CGROUP and NSPID columns, before LATms
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::ScopeArgs,
}

/// Default of `--context-rows`: the I/Os the outlier window holds at most.
pub const DEFAULT_CONTEXT_ROWS: usize = 100_000;

/// Parses `--min-ms`: a number of milliseconds, 0 or more (fractions allowed), at most a
/// day.
fn parse_ms(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400_000.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "--min-ms must be a number of milliseconds from 0 to 86400000: {s}"
        )),
    }
}

/// A completed I/O held in the outlier window ([`perf_tools_core::window`]), timed by
/// its completion (the order rows are printed in).
#[derive(Debug, Clone, Copy)]
pub struct Io(pub Completed);

impl perf_tools_core::window::Timed for Io {
    fn ts(&self) -> u64 {
        self.0.end_ts
    }
}

/// The bytes the outlier window holds at most with `rows` rows (`--context-rows`).
pub fn context_bytes(rows: usize) -> usize {
    rows * std::mem::size_of::<Io>()
}

/// The outlier recorder of `--min-ms`, `--context` and `--count`: which I/O are printed,
/// with which marker, and the end-of-run line.
#[derive(Debug)]
pub struct Outliers {
    /// Latency threshold, ns.
    pub min_ns: u64,
    /// The first column (`*` outlier, `-` context) is printed (`--context`).
    pub marker: bool,
    /// The window of recent I/O.
    pub window: perf_tools_core::window::ContextWindow<Io>,
    min_ms: f64,
    bound_rows: usize,
    limit: Option<u64>,
}

impl Outliers {
    /// The recorder for these options, if `--min-ms` was given.
    pub fn new(args: &Args) -> Option<Outliers> {
        let min_ms = args.min_ms?;
        let context_ns = args.context.map_or(0, |s| (s * 1e9).round() as u64);
        let bound_rows = args.context_rows;
        Some(Outliers {
            min_ns: (min_ms * 1e6).round() as u64,
            marker: args.context.is_some(),
            window: perf_tools_core::window::ContextWindow::new(
                context_ns,
                context_ns,
                perf_tools_core::window::Bound {
                    rows: bound_rows,
                    bytes: context_bytes(bound_rows),
                },
                args.count,
            ),
            min_ms,
            bound_rows,
            limit: args.count,
        })
    }

    /// Takes a completed I/O (in completion order) and writes what is to be printed now.
    pub fn push(&mut self, rows: &mut RowFormat, out: &mut Vec<u8>, c: &Completed) {
        let (marker, bound) = (self.marker, self.bound_rows);
        self.window
            .push(Io(*c), c.latency_ns() >= self.min_ns, |e| {
                emit(marker, bound, rows, out, e)
            });
    }

    /// Events were lost from `from` to `to` (trace clock): said in the output if a
    /// context covers that span.
    pub fn gap(&mut self, rows: &mut RowFormat, out: &mut Vec<u8>, from: u64, to: u64) {
        let (marker, bound) = (self.marker, self.bound_rows);
        self.window
            .gap(from, to, |e| emit(marker, bound, rows, out, e));
    }

    /// The end-of-run line (stderr).
    pub fn summary(&self) -> String {
        let st = &self.window.stats;
        let mut line = format!(
            "iosnoop: {} I/O seen, {} outliers (LATms >= {})",
            st.seen, st.outliers, self.min_ms
        );
        if self.marker {
            line.push_str(&format!(", {} context rows", st.context));
        }
        if let Some(n) = self.limit.filter(|&n| st.outliers >= n) {
            line.push_str(&format!("; stopped after {n} (--count)"));
        }
        if st.truncations > 0 {
            line.push_str(&format!(
                "; context truncated {} times ({} I/O dropped from the full window, --context-rows {})",
                st.truncations, st.dropped, self.bound_rows
            ));
        }
        line
    }
}

/// Writes what the outlier window passes on.
fn emit(
    marker: bool,
    bound: usize,
    rows: &mut RowFormat,
    out: &mut Vec<u8>,
    e: perf_tools_core::window::Emit<Io>,
) {
    use perf_tools_core::window::Emit;
    match e {
        Emit::Row { row, outlier } => {
            if marker {
                out.extend_from_slice(if outlier { b"* " } else { b"- " });
            }
            rows.row(out, &row.0);
        }
        Emit::Truncated { from, to, dropped } => {
            let _ = writeln!(
                out,
                "# context truncated: I/O that completed from {} to {} s are not shown ({dropped} I/O dropped: the window holds at most {bound}, --context-rows)",
                secs_text(from),
                secs_text(to)
            );
        }
        Emit::Lost { from, to } => {
            let _ = writeln!(
                out,
                "# events lost from {} to {} s: I/O of this context that completed then may be missing",
                secs_text(from),
                secs_text(to)
            );
        }
    }
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// Formats rows exactly as the original: optional `%-15s` STARTs/ENDs, then
/// `%-12.12s %-6s %-4s %-8s %-12s %-6s %8s`. COMM (at most 12 bytes of the name, as
/// the original) is escaped with [`escape_into`], so a name cannot start a new row or
/// reach the terminal as a control sequence; it may then be wider than 12 columns.
/// With [`RowFormat::mark_unqueued`] (for `-Q`), LATms of a request that never passed
/// the I/O scheduler queue (timed from issue) ends with `*`.
///
/// Consecutive rows mostly repeat the process, type, device and size: those columns
/// are kept formatted and reused while they stay the same. This runs once per I/O, so
/// columns are appended as fixed-size chunks and then cut to length (no per-byte
/// pushes, no calls to memcpy for a few bytes).
#[derive(Debug, Clone, Default)]
pub struct RowFormat {
    /// STARTs column.
    pub start: bool,
    /// ENDs column.
    pub end: bool,
    /// Mark LATms with a trailing `*` when the I/O was timed from issue because it never
    /// passed `block_rq_insert` (for `-Q`, where LATms is otherwise from queue insert).
    pub mark_unqueued: bool,
    /// Rows formatted.
    pub rows: u64,
    /// Rows marked with `*` ([`RowFormat::mark_unqueued`]).
    pub unqueued: u64,
    /// `COMM PID ` columns of recent processes, direct-mapped by pid (COMM escaped).
    /// Names that escape to more than 12 bytes (only names with control characters or
    /// invalid UTF-8) do not fit and are formatted for each row instead.
    who: [Option<(i32, u128, Chunk<24>)>; 16],
    /// `TYPE DEV ` and `BYTES ` columns for the last (rwbs, device, sectors).
    what: Option<((u64, u32, u32), Chunk<24>, Chunk<16>)>,
    /// The `--show-cgroup` / `--show-nspid` columns of the issuing thread, before LATms.
    pub extra: Option<Columns>,
}

/// Up to `N` bytes of formatted text, padded with spaces.
#[derive(Debug, Clone, Copy)]
struct Chunk<const N: usize> {
    text: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Chunk<N> {
    fn default() -> Self {
        Chunk {
            text: [b' '; N],
            len: 0,
        }
    }
}

impl<const N: usize> Chunk<N> {
    /// `value` left-aligned in `width` columns plus one space (`%-Ns `), clipped to `N`.
    fn from_field(parts: &[(&[u8], usize)]) -> Self {
        let mut c = Chunk::default();
        for (value, width) in parts {
            let v = &value[..value.len().min(N.saturating_sub(c.len + 1))];
            c.text[c.len..c.len + v.len()].copy_from_slice(v);
            c.len = (c.len + (*width).max(v.len()) + 1).min(N);
        }
        c
    }

    /// Appends the chunk: a fixed-size copy, then cut to its length.
    #[inline(always)]
    fn append(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&self.text);
        out.truncate(at + self.len);
    }
}

/// Decimal digits of `v`, left-aligned in a space-filled chunk, as `%-Ns ` would.
#[inline(always)]
fn number<const N: usize>(v: u64, width: usize) -> Chunk<N> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let n = (digits.len() - i).min(N - 1);
    let mut c = Chunk::<N>::default();
    // A byte loop, not copy_from_slice: for a few bytes a memcpy call costs more.
    #[allow(clippy::manual_memcpy)]
    for k in 0..n {
        c.text[k] = digits[i + k];
    }
    c.len = n.max(width) + 1;
    c
}

fn trim_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

impl RowFormat {
    /// A formatter with the optional STARTs and ENDs columns.
    pub fn new(start: bool, end: bool) -> RowFormat {
        RowFormat {
            start,
            end,
            ..Default::default()
        }
    }

    /// The column header line.
    pub fn header(&self, out: &mut Vec<u8>) {
        if self.start {
            let _ = write!(out, "{:<15} ", "STARTs");
        }
        if self.end {
            let _ = write!(out, "{:<15} ", "ENDs");
        }
        let extra = self.extra.as_ref().map(Columns::header).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<12} {:<6} {:<4} {:<8} {:<12} {:<6} {extra}{:>8}",
            "COMM", "PID", "TYPE", "DEV", "BLOCK", "BYTES", "LATms"
        );
    }

    /// One row for a completed I/O, written straight into `out`.
    pub fn row(&mut self, out: &mut Vec<u8>, c: &Completed) {
        if self.start {
            secs_into(out, c.start.ts);
        }
        if self.end {
            secs_into(out, c.end_ts);
        }
        let comm = u128::from_ne_bytes(c.start.who.comm);
        let slot = &mut self.who[c.start.who.pid as usize % 16];
        let mut wide = None;
        let who = match slot {
            Some((pid, kept, chunk)) if *pid == c.start.who.pid && *kept == comm => *chunk,
            // Escaped once here, when the process is first seen: the rows after it copy
            // the kept chunk.
            _ => match who_columns::<24>(&c.start.who) {
                Some(chunk) => {
                    *slot = Some((c.start.who.pid, comm, chunk));
                    chunk
                }
                None => {
                    *slot = None;
                    wide = who_columns::<64>(&c.start.who);
                    Chunk::default()
                }
            },
        };
        let mut rwbs = [0u8; 8];
        rwbs.copy_from_slice(&c.what.rwbs[..8]);
        let key = (
            u64::from_ne_bytes(rwbs),
            c.dev.to_kernel(),
            c.what.nr_sector,
        );
        if self.what.as_ref().is_none_or(|(k, ..)| *k != key) {
            let (major, minor) = (
                number::<16>(c.dev.major as u64, 0),
                number::<16>(c.dev.minor as u64, 0),
            );
            let mut dev = [0u8; 24];
            let (a, b) = (major.len - 1, minor.len - 1);
            dev[..a].copy_from_slice(&major.text[..a]);
            dev[a] = b',';
            dev[a + 1..a + 1 + b].copy_from_slice(&minor.text[..b]);
            let type_dev =
                Chunk::from_field(&[(trim_nul(&c.what.rwbs), 4), (&dev[..a + 1 + b], 8)]);
            self.what = Some((key, type_dev, number(c.what.nr_sector as u64 * 512, 6)));
        }
        out.reserve(128);
        match &wide {
            None => who.append(out),
            Some(w) => w.append(out),
        }
        if let Some((_, type_dev, bytes)) = &self.what {
            type_dev.append(out);
            number::<24>(c.sector, 12).append(out);
            bytes.append(out);
        }
        if let Some(cols) = self.extra.as_mut() {
            cols.write(out, c.start.who.pid as u32);
        }
        // LATms with two decimals, rounded to the nearest 10 µs, right-aligned in 8.
        let lat = (c.latency_ns() + 5_000) / 10_000;
        let whole = number::<24>(lat / 100, 0);
        let digits = whole.len - 1;
        let pad = 5usize.saturating_sub(digits);
        let at = out.len();
        out.extend_from_slice(&[b' '; 8]);
        out.truncate(at + pad);
        let at = out.len();
        out.extend_from_slice(&whole.text);
        out.truncate(at + digits);
        out.extend_from_slice(&[b'.', b'0' + (lat % 100 / 10) as u8, b'0' + (lat % 10) as u8]);
        self.rows += 1;
        if self.mark_unqueued && !c.start.who.queued {
            self.unqueued += 1;
            out.push(b'*');
        }
        out.push(b'\n');
    }
}

/// The `COMM PID ` columns (`%-12.12s %-6s `, COMM escaped), if they fit in `N` bytes.
fn who_columns<const N: usize>(who: &Who) -> Option<Chunk<N>> {
    let name = trim_nul(&who.comm);
    let mut escaped = Vec::with_capacity(16);
    escape_into(&mut escaped, &name[..name.len().min(12)]);
    let pid = number::<16>(who.pid as u64, 6);
    let pid = &pid.text[..pid.len - 1];
    (escaped.len().max(12) + pid.len().max(6) + 2 <= N)
        .then(|| Chunk::from_field(&[(&escaped, 12), (pid, 6)]))
}

/// Pads `out` with `fill` up to length `len`.
#[inline]
fn pad_to(out: &mut Vec<u8>, len: usize, fill: u8) {
    while out.len() < len {
        out.push(fill);
    }
}

/// Appends seconds with microseconds, rounded to the nearest microsecond as ftrace
/// prints timestamps (`5982800.302061`), padded to 15 columns plus a space.
fn secs_into(out: &mut Vec<u8>, ns: u64) {
    let mark = out.len();
    let us = (ns + 500) / 1_000;
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(num.format(us / 1_000_000).as_bytes());
    out.push(b'.');
    let frac = num.format(us % 1_000_000 + 1_000_000).as_bytes();
    out.extend_from_slice(&frac[1..]);
    pad_to(out, mark + 15, b' ');
    out.push(b' ');
}

/// Seconds with microseconds, as in the STARTs and ENDs columns, unpadded.
fn secs_text(ns: u64) -> String {
    let us = (ns + 500) / 1_000;
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let ftext = if let Some(p) = args.pid {
        format!(" issued by PID {p}")
    } else if let Some(t) = args.tid {
        format!(" issued by TID {t}")
    } else if let Some(n) = &args.name {
        format!(" issued by process name \"{n}\"")
    } else {
        String::new()
    };
    match args.duration {
        Some(d) => format!("Tracing block I/O{ftext} for {d} seconds (buffered)..."),
        None => format!("Tracing block I/O{ftext}. Ctrl-C to end."),
    }
}

/// What iosnoop would use on this host and whether it can run (`--check`, and its row
/// in perf-tools-doctor): the block tracepoints and their layout, verified in a private
/// instance that is removed before this returns.
pub fn check() -> Result<perf_tools_core::check::Report> {
    perf_tools_block::check("iosnoop")
}

/// The filters in force, as the user gave them, and whether each is applied in the
/// kernel (for the end-of-run account).
pub fn filter_notes(args: &Args) -> Vec<(String, bool)> {
    let mut v = Vec::new();
    if let Some(d) = &args.device {
        v.push((format!("-d {d}"), true));
    }
    if let Some(i) = &args.iotype {
        v.push((format!("-i '{i}'"), true));
    }
    if let Some(t) = args.tid {
        v.push((format!("-L {t}"), true));
    }
    if let Some(p) = args.pid {
        v.push((format!("-p {p}"), false));
    }
    if let Some(n) = &args.name {
        v.push((format!("-n {n}"), false));
    }
    v.extend(args.scope.filter_notes(false));
    v
}

/// Runs iosnoop.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let name_re = match &args.name {
        Some(n) => Some(cli::name_regex(n, "-n regex")?),
        None => None,
    };
    let start_point = if args.queue {
        StartPoint::Insert
    } else {
        StartPoint::Issue
    };
    // Targets are checked before any kernel state is created: a process, thread or device
    // name that does not exist is an error; a major,minor that does not exist (yet) is
    // traced with a warning, as it may appear.
    let device = perf_tools_block::device_filter(args.device.as_ref())?;
    if let Some(p) = args.pid {
        target::require_process(p)?;
    }
    if let Some(t) = args.tid {
        target::require_thread(t)?;
    }
    // -L is the kernel filter on the thread on-CPU; -p covers every thread of the
    // process, decided in user space (thread -> process, read once per thread).
    let filters = perf_tools_block::filters(device.as_ref(), args.iotype.as_deref(), args.tid)
        .map_err(|e| cli::usage(e.to_string()))?;
    let mut threads = args.pid.map(|p| ProcessThreads::new(Procfs::default(), p));
    perf_tools_ftrace::scope::reject_with_target(&args.scope, args.pid, args.tid)?;
    // Decided in user space by the issuing task's cgroup: a PID filter in the kernel
    // (set_event_pid) would drop the completions, which run in whatever task is on-CPU.
    let scope = std::cell::RefCell::new(args.scope.resolve()?);
    let scoped = scope.borrow().is_some();
    let mut heat = (args.heatmap.as_deref())
        .map(|p| IoHeatmap::new("iosnoop", p))
        .transpose()
        .map_err(cli::usage)?;

    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let (mut session, decoder) = perf_tools_block::start_trace(
        &tracefs,
        "iosnoop",
        start_point,
        &filters,
        args.buffer_kb,
        25,
        perf_tools_block::Placement {
            scope: scope.borrow_mut().as_mut(),
            record_tgid: threads.is_some(),
        },
    )?;
    // (PT_FAULT=panic fault injection happens in the core, when tracing is turned on.)
    // What the kernel completes meanwhile, whatever the filters: for the account.
    let disks_before = DiskStats::read();

    let mut out = Output::stdout();
    let mut rows = RowFormat::new(args.start, args.end);
    let mut columns = args.scope.columns();
    if columns.any() {
        if let Some(sc) = scope.borrow().as_ref() {
            columns.in_scope_of(sc);
        }
        rows.extra = Some(columns);
    }
    rows.mark_unqueued = args.queue;
    let mut outliers = Outliers::new(&args);
    let _ = writeln!(out.buf, "{}", banner(&args));
    if outliers.as_ref().is_some_and(|o| o.marker) {
        out.buf.extend_from_slice(b"M ");
    }
    rows.header(&mut out.buf);
    out.flush()?;

    let mut pipeline = BlockPipeline::<Full>::new(decoder, start_point);
    let mut lost_reported = 0u64;
    let mut held = perf_tools_core::spill::Held::new();
    if args.duration.is_some() {
        // Room for the rows held in memory, taken once (a failure here is not fatal:
        // the buffer then grows as needed).
        let _ = out
            .buf
            .try_reserve(perf_tools_core::spill::MEMORY_LIMIT + (1 << 20));
    }
    let mut totals = perf_tools_ftrace::reader::DrainStats::default();
    let streaming = args.duration.is_none();
    // I/O traced but left out by the filters applied here (-p, -n): for the account.
    let mut left_out = 0u64;
    let mut keep = |who: &Who| {
        // -p: a thread gone from /proc is placed by the kernel's saved_tgids.
        let kept = (threads.as_mut())
            .is_none_or(|t| t.contains_or(who.pid as u32, |tid| saved_tgid(&tracefs, tid)))
            && scope
                .borrow_mut()
                .as_mut()
                .is_none_or(|s| s.holds(who.pid as u32))
            && name_re
                .as_ref()
                .is_none_or(|re| re.is_match(trim_nul(&who.comm)));
        left_out += u64::from(!kept);
        kept
    };
    let poll = Duration::from_millis(if streaming { 100 } else { 500 });
    let end = session.stream(&shutdown, args.duration, poll, |reader, _, batch| {
        if let Some(s) = scope.borrow_mut().as_mut() {
            s.poll_turn(batch.last, &shutdown, "iosnoop");
        }
        if let Some((_, to)) = batch.state_gap {
            // Another process changed (or put back) our settings: events up to `to`
            // may be missing, so no I/O started by then is timed.
            pipeline.inflight.gap(to);
        }
        if let (Some((from, to)), Some(o)) = (batch.state_gap, outliers.as_mut()) {
            o.gap(&mut rows, &mut out.buf, from, to);
        }
        let mut write_err = None;
        let stats = reader.drain_rounds(
            batch.clock,
            &mut pipeline,
            |p, cpu, ts, payload| {
                // A fork the scope follows, else a block event.
                if !(scoped
                    && scope
                        .borrow_mut()
                        .as_mut()
                        .is_some_and(|s| s.observe(payload)))
                {
                    p.push(cpu, ts, payload);
                }
            },
            |p, gap| p.gap(gap),
            |p, watermark| {
                // Buffered (duration) mode: past a few MiB, rows wait in a temporary
                // file. Checked per row: one round can release more than the slack
                // reserved above the limit (under load, tens of thousands of I/O), and
                // growing the buffer then doubles it past a memory limit.
                let mut spill = |buf: &mut Vec<u8>| {
                    if !streaming
                        && buf.len() >= perf_tools_core::spill::MEMORY_LIMIT
                        && write_err.is_none()
                    {
                        write_err = held.absorb(buf).err();
                    }
                };
                match outliers.as_mut() {
                    None => p.release(watermark, &mut keep, |c| {
                        rows.row(&mut out.buf, c);
                        if let Some(h) = heat.as_mut() {
                            h.add(c.end_ts, c.latency_ns());
                        }
                        spill(&mut out.buf);
                    }),
                    Some(o) => {
                        p.release(watermark, &mut keep, |c| {
                            if let Some(h) = heat.as_mut() {
                                h.add(c.end_ts, c.latency_ns());
                            }
                            o.push(&mut rows, &mut out.buf, c);
                            spill(&mut out.buf);
                        });
                        for (from, to) in p.take_gaps() {
                            o.gap(&mut rows, &mut out.buf, from, to);
                        }
                        if o.window.advance(watermark) {
                            // --count: the last outlier and its context are out.
                            shutdown.request();
                        }
                    }
                }
                // Streaming under load: write every 64 KiB or so rather than once per
                // batch, so the rows being formatted stay in the CPU cache.
                if streaming && out.buf.len() >= 1 << 16 && write_err.is_none() {
                    write_err = out.flush().err();
                }
            },
        );
        if let Some(e) = write_err {
            return Err(e.into());
        }
        totals.pages += stats.pages;
        totals.events += stats.events;
        if stats.gaps > 0 {
            // The pages' flags say where events were lost and at least how many; the
            // kernel's counters say exactly how many.
            let reported = (lost_reported + stats.missed).max(reader.lost_events());
            if reported > lost_reported {
                eprintln!("WARNING: {} block events lost: the kernel buffer overflowed (try --buffer-kb larger than {}); no I/O in flight across the loss is timed", reported - lost_reported, args.buffer_kb);
            }
            lost_reported = reported;
        }
        if streaming {
            out.flush()?;
        } else if batch.last {
            held.finish(&mut out)?;
        }
        Ok(())
    })?;
    if let Some(h) = &heat {
        // Also when the run ends by a signal or a closed pipe: written, then renamed.
        h.finish("iosnoop")?;
    }
    if end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly, cleaning up.
        return session.finish();
    }
    if std::env::var_os("PT_DEBUG").is_some() {
        eprintln!(
            "debug: pages {} events {} undecoded {} unmatched completions {} aged-out starts {} dropped at gaps {} in flight {}",
            totals.pages, totals.events, pipeline.undecoded, pipeline.inflight.unmatched, pipeline.inflight.aged_out, pipeline.inflight.dropped_at_gap, pipeline.inflight.len()
        );
    }
    let mut account = RunAccount::new("iosnoop", "rows");
    account.rows = rows.rows;
    pipeline.inflight.note_overlaps(&mut account);
    account.left_out = left_out;
    if let (Some(before), Some(after)) = (disks_before.as_ref(), DiskStats::read()) {
        account.seen = after.seen(before, device.as_ref().map(|d| d.dev));
    }
    for (opt, in_kernel) in filter_notes(&args) {
        account.filter(opt, in_kernel);
    }
    if let Some(s) = scope.borrow().as_ref() {
        s.say_unknown("iosnoop", "I/O");
    }
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported,
            note_on_stderr: false,
            loss_effect: format!(
                "rows may be missing ({} I/Os in flight across the losses were not timed)",
                pipeline.inflight.dropped_at_gap
            ),
            account: Some(account),
        },
        || Ok(()),
    )?;
    if let Some(o) = &outliers {
        eprintln!("{}", o.summary());
    }
    if let Some(note) = pipeline.inflight.overlap_note() {
        eprintln!("{note}");
    }
    if rows.unqueued > 0 {
        eprintln!(
            "note: {} of {} I/O never passed the I/O scheduler queue (no block_rq_insert): their LATms, marked *, is from issue",
            rows.unqueued, rows.rows
        );
    }
    if let Some(t) = threads.as_ref().filter(|t| t.unknown > 0) {
        eprintln!(
            "note: {} I/O were left out: issued by threads that exited before iosnoop could tell whether they belonged to PID {} (use -L TID to follow one thread in the kernel)",
            t.unknown,
            t.pid()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_tools_block::{Device, Start, What};

    fn io(pid: i32, name: &[u8], queued: bool) -> Completed {
        let mut comm = [0u8; 16];
        comm[..name.len()].copy_from_slice(name);
        Completed {
            start: Start {
                ts: 1_000_000,
                who: Who { pid, comm, queued },
            },
            end_ts: 1_000_000 + 1_234_567,
            dev: Device { major: 7, minor: 0 },
            sector: 24,
            what: What {
                nr_sector: 8,
                rwbs: *b"R\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            },
        }
    }

    #[test]
    fn hostile_comm_cannot_forge_a_row_or_reach_the_terminal() {
        let mut f = RowFormat::new(false, false);
        let mut v = Vec::new();
        f.row(&mut v, &io(4242, b"ev\nfake 1 W", false));
        f.row(&mut v, &io(4243, b"\x1b[2Jx\tb\\", false));
        // The same process again: the kept (escaped) chunk is reused.
        f.row(&mut v, &io(4242, b"ev\nfake 1 W", false));
        let text = String::from_utf8(v).unwrap();
        assert_eq!(
            text,
            "ev\\nfake 1 W 4242   R    7,0      24           4096       1.23\n\
             \\e[2Jx\\tb\\\\  4243   R    7,0      24           4096       1.23\n\
             ev\\nfake 1 W 4242   R    7,0      24           4096       1.23\n"
        );
        assert_eq!(text.lines().count(), 3);
        assert!(!text.contains('\x1b'));
        // At most 12 bytes of the name, as the original's %-12.12s, then escaped.
        let mut v = Vec::new();
        f.row(&mut v, &io(9, b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n", false));
        assert!(String::from_utf8(v)
            .unwrap()
            .starts_with(&format!("{} 9      R ", "\\n".repeat(12))),);
    }

    #[test]
    fn queue_mode_marks_latency_timed_from_issue() {
        let mut f = RowFormat::new(false, false);
        f.mark_unqueued = true;
        let mut v = Vec::new();
        f.row(&mut v, &io(5, b"dd", true));
        f.row(&mut v, &io(5, b"dd", false));
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "dd           5      R    7,0      24           4096       1.23\n\
             dd           5      R    7,0      24           4096       1.23*\n"
        );
        assert_eq!((f.rows, f.unqueued), (2, 1));
        // Without -Q every row is timed from issue: nothing to mark.
        let mut f = RowFormat::new(false, false);
        let mut v = Vec::new();
        f.row(&mut v, &io(5, b"dd", false));
        assert!(String::from_utf8(v).unwrap().ends_with(" 1.23\n"));
        assert_eq!(f.unqueued, 0);
    }

    #[test]
    fn header_matches_the_original() {
        let mut v = Vec::new();
        RowFormat::new(false, false).header(&mut v);
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "COMM         PID    TYPE DEV      BLOCK        BYTES     LATms\n"
        );
        let mut v = Vec::new();
        RowFormat::new(true, true).header(&mut v);
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "STARTs          ENDs            COMM         PID    TYPE DEV      BLOCK        BYTES     LATms\n"
        );
    }

    #[test]
    fn row_matches_the_original_layout() {
        let mut comm = [0u8; 16];
        comm[..15].copy_from_slice(b"kworker/u4:1-ev");
        let c = Completed {
            start: Start {
                ts: 5_982_800_302_061_000,
                who: Who {
                    pid: 1809,
                    comm,
                    queued: false,
                },
            },
            end_ts: 5_982_800_302_679_400,
            dev: Device {
                major: 202,
                minor: 1,
            },
            sector: 17_039_600,
            what: What {
                nr_sector: 8,
                rwbs: *b"W\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            },
        };
        let mut v = Vec::new();
        RowFormat::new(true, true).row(&mut v, &c);
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "5982800.302061  5982800.302679  kworker/u4:1 1809   W    202,1    17039600     4096       0.62\n"
        );
    }

    #[test]
    fn reused_columns_never_go_stale() {
        // One formatter over varied rows must print what a fresh formatter prints for
        // each row: the kept COMM/PID and TYPE/DEV/BYTES columns follow every change.
        let mut all = Vec::new();
        for i in 0..40u64 {
            let mut comm = [0u8; 16];
            let name: &[u8] = [
                &b"dd"[..],
                b"kworker/u4:1-events",
                b"fio",
                b"e\x1b[2J\nfake 1 W",
            ][(i % 4) as usize];
            comm[..name.len().min(16)].copy_from_slice(&name[..name.len().min(16)]);
            let mut rwbs = [0u8; 16];
            rwbs[..2].copy_from_slice([b"R\0", b"WS", b"RA"][(i / 2 % 3) as usize]);
            all.push(Completed {
                start: Start {
                    ts: 1_000_000 * i,
                    who: Who {
                        pid: [7, 7, 12345, 9][(i % 4) as usize],
                        comm,
                        queued: i % 7 == 0,
                    },
                },
                end_ts: 1_000_000 * i + 123_456 * (i % 5),
                dev: Device {
                    major: [7, 259, 8][(i / 5 % 3) as usize],
                    minor: [0, 3, 1048575][(i / 7 % 3) as usize],
                },
                sector: 8 * i * i,
                what: What {
                    nr_sector: [8, 8, 256, 1][(i / 3 % 4) as usize],
                    rwbs,
                },
            });
        }
        let mut kept = RowFormat::new(false, true);
        kept.mark_unqueued = true;
        for c in &all {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            kept.row(&mut a, c);
            let mut fresh = RowFormat::new(false, true);
            fresh.mark_unqueued = true;
            fresh.row(&mut b, c);
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
    }

    fn timed(end_ms: u64, lat_ms: u64, sector: u64) -> Completed {
        let mut c = io(7, b"dd", false);
        c.end_ts = end_ms * 1_000_000;
        c.start.ts = c.end_ts - lat_ms * 1_000_000;
        c.sector = sector;
        c
    }

    #[test]
    fn outlier_rows_are_marked_and_context_rows_kept_once() {
        let args = Args::parse_from(["iosnoop", "--min-ms", "10", "--context", "0.1"]);
        let mut o = Outliers::new(&args).unwrap();
        assert!(o.marker);
        let mut f = RowFormat::new(false, false);
        let mut v = Vec::new();
        // 1000 ms: fast, out of any context; 1950: context before; 2000: outlier;
        // 2050 an outlier in the first one's context; 2150 context of the second; 2300 out.
        for (end, lat, sector) in [
            (1000, 1, 8),
            (1950, 1, 16),
            (2000, 10, 24),
            (2050, 25, 32),
            (2150, 2, 40),
            (2300, 2, 48),
        ] {
            o.push(&mut f, &mut v, &timed(end, lat, sector));
        }
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "- dd           7      R    7,0      16           4096       1.00\n\
             * dd           7      R    7,0      24           4096      10.00\n\
             * dd           7      R    7,0      32           4096      25.00\n\
             - dd           7      R    7,0      40           4096       2.00\n"
        );
        assert_eq!(
            o.summary(),
            "iosnoop: 6 I/O seen, 2 outliers (LATms >= 10), 2 context rows"
        );
    }

    #[test]
    fn a_loss_in_a_context_is_said() {
        let args = Args::parse_from(["iosnoop", "--min-ms", "10", "--context", "1"]);
        let mut o = Outliers::new(&args).unwrap();
        let mut f = RowFormat::new(false, false);
        let mut v = Vec::new();
        o.push(&mut f, &mut v, &timed(2000, 20, 8));
        o.gap(&mut f, &mut v, 2_100_000_000, 2_200_000_500);
        o.push(&mut f, &mut v, &timed(2300, 1, 16));
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "* dd           7      R    7,0      8            4096      20.00\n\
             # events lost from 2.100000 to 2.200001 s: I/O of this context that completed then may be missing\n\
             - dd           7      R    7,0      16           4096       1.00\n"
        );
    }

    #[test]
    fn min_ms_alone_keeps_the_default_layout() {
        let args = Args::parse_from(["iosnoop", "-t", "--min-ms", "0.5", "--count", "1"]);
        let mut o = Outliers::new(&args).unwrap();
        assert!(!o.marker);
        let mut f = RowFormat::new(false, true);
        let mut v = Vec::new();
        for (end, lat) in [(5, 0), (6, 1), (7, 1)] {
            o.push(&mut f, &mut v, &timed(end, lat, 8));
        }
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "0.006000        dd           7      R    7,0      8            4096       1.00\n"
        );
        assert!(o.window.advance(7_000_000));
        assert_eq!(
            o.summary(),
            "iosnoop: 3 I/O seen, 1 outliers (LATms >= 0.5); stopped after 1 (--count)"
        );
        assert!(Outliers::new(&Args::parse_from(["iosnoop"])).is_none());
    }

    #[test]
    fn a_truncated_context_is_said_in_the_output() {
        let args = Args::parse_from([
            "iosnoop",
            "--min-ms",
            "10",
            "--context",
            "100",
            "--context-rows",
            "1000",
        ]);
        let mut o = Outliers::new(&args).unwrap();
        assert_eq!(o.window.held(), 0);
        let mut f = RowFormat::new(false, false);
        let mut v = Vec::new();
        for i in 0..1200 {
            o.push(&mut f, &mut v, &timed(1000 + i, 0, i));
        }
        assert!(v.is_empty());
        assert_eq!(o.window.held(), 1000);
        assert_eq!(o.window.held_bytes(), context_bytes(1000));
        // The bound the man page states: at most 80 bytes an I/O, 8 MB by default.
        assert!(std::mem::size_of::<Io>() <= 80);
        assert!(context_bytes(DEFAULT_CONTEXT_ROWS) <= 8_000_000);
        o.push(&mut f, &mut v, &timed(3000, 20, 0));
        let text = String::from_utf8(v).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1002);
        assert_eq!(
            lines[0],
            "# context truncated: I/O that completed from 1.000000 to 1.199000 s are not shown (200 I/O dropped: the window holds at most 1000, --context-rows)"
        );
        assert!(lines[1].starts_with("- dd ") && lines[1].contains(" 200 "));
        assert!(lines[1001].starts_with("* dd "));
        assert_eq!(
            o.summary(),
            "iosnoop: 1201 I/O seen, 1 outliers (LATms >= 10), 1000 context rows; context truncated 1 times (200 I/O dropped from the full window, --context-rows 1000)"
        );
    }

    #[test]
    fn banners_match_the_original() {
        let a = Args::parse_from(["iosnoop"]);
        assert_eq!(banner(&a), "Tracing block I/O. Ctrl-C to end.");
        let a = Args::parse_from(["iosnoop", "-p", "91", "5"]);
        assert_eq!(
            banner(&a),
            "Tracing block I/O issued by PID 91 for 5 seconds (buffered)..."
        );
        let a = Args::parse_from(["iosnoop", "-L", "92"]);
        assert_eq!(
            banner(&a),
            "Tracing block I/O issued by TID 92. Ctrl-C to end."
        );
        let a = Args::parse_from(["iosnoop", "-n", "dd"]);
        assert_eq!(
            banner(&a),
            "Tracing block I/O issued by process name \"dd\". Ctrl-C to end."
        );
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["iosnoop", "-p", "1", "-n", "x"][..],
            &["iosnoop", "-p", "1", "-L", "2"],
            &["iosnoop", "-L", "1", "-n", "x"],
            &["iosnoop", "-d", "1,x"],
            &["iosnoop", "abc"],
            &["iosnoop", "0"],
            &["iosnoop", "-d", "202"],
            &["iosnoop", "-p", "x"],
            &["iosnoop", "-z"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }
}
