//! bitesize: a histogram of block I/O sizes.
//!
//! A port of perf-tools' `bitesize` with the same options, banner and histogram layout.
//! It counts `block:block_rq_issue` events by their `nr_sector` field, decoded by the
//! running kernel's format file (perf-tools-block, right on the pre- and post-6.11
//! layouts), in a private tracefs instance that is removed on every exit path. Every
//! issued request is counted in user space, so buckets cost nothing in the kernel (the
//! original ran one filtered perf counter per bucket), and lost events are counted and
//! reported.

use anyhow::{bail, Result};
use clap::Parser;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use perf_tools_block::diskstats::DiskStats;
use perf_tools_block::{BlockDecoder, DeviceSpec, StartPoint};
use perf_tools_core::cli;
use perf_tools_core::output::{escape, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, Session, StreamEnd};
use perf_tools_ftrace::tracefs::Tracefs;

/// The tool's name (instance `instances/bitesize-<pid>`).
pub const TOOL: &str = "bitesize";

/// Command-line options (the original's, plus long-only extras and `-d`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "bitesize",
    version,
    about = "Show block device I/O sizes as a histogram",
    long_about = None,
    after_help = "Examples:\n  bitesize                  # trace I/O size until Ctrl-C\n  bitesize 10               # trace I/O size for 10 seconds\n  bitesize -b \"8 16 32\"     # specify custom bucket points (KiB)\n  bitesize -d sda 5         # only device sda, for 5 seconds\n  bitesize --per-process    # one histogram per process name\n\nSee the bitesize(8) man page for more."
)]
pub struct Args {
    /// Histogram bucket points in Kbytes, increasing (e.g. "8 16 32"; default "1 8 64 128")
    #[arg(short = 'b', value_name = "buckets", value_parser = parse_buckets)]
    pub buckets: Option<Buckets>,
    /// Only count I/O on this device: "major,minor", a name (sda, nvme0n1, a partition) or a /dev path
    #[arg(short = 'd', value_name = "device")]
    pub device: Option<DeviceSpec>,
    /// One histogram per process name (the thread on CPU when the I/O was issued)
    #[arg(long = "per-process")]
    pub per_process: bool,
    /// Trace for this many seconds (default: until Ctrl-C)
    #[arg(value_name = "seconds", value_parser = perf_tools_core::cli::parse_duration)]
    pub seconds: Option<f64>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4096, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Container scope: only I/O issued while a cgroup's task was on the CPU (filtered in
    /// the kernel)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Print what this tool would use on this host and why, then exit: 0 if it can run, 1 if not (nothing is left in tracefs)
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    perf_tools_core::cli::command::<Args>()
}

/// Histogram bucket points in KiB, strictly increasing, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets(pub Vec<u32>);

impl Default for Buckets {
    fn default() -> Self {
        Buckets(vec![1, 8, 64, 128])
    }
}

/// Most KiB a bucket point may be (4 GiB: more than any request's `nr_sector` holds).
const MAX_BUCKET_KB: u32 = 4 << 20;

/// Parses `-b`: whole KiB separated by spaces or commas, increasing.
pub fn parse_buckets(s: &str) -> Result<Buckets, String> {
    let mut v: Vec<u32> = Vec::new();
    for word in s.split(|c: char| c.is_whitespace() || c == ',') {
        if word.is_empty() {
            continue;
        }
        let n: u32 = word.parse().map_err(|_| {
            format!("bucket {word:?} is not a whole number of Kbytes (e.g. -b \"8 16 32\")")
        })?;
        if n == 0 || n > MAX_BUCKET_KB {
            return Err(format!(
                "bucket {n} is out of range: buckets are from 1 to {MAX_BUCKET_KB} Kbytes"
            ));
        }
        if v.last().is_some_and(|&last| n <= last) {
            return Err(format!(
                "bucket list must increase in size: {n} follows {}",
                v.last().copied().unwrap_or(0)
            ));
        }
        v.push(n);
    }
    if v.is_empty() {
        return Err("no buckets given (e.g. -b \"8 16 32\")".to_string());
    }
    Ok(Buckets(v))
}

/// Counts of I/O per bucket: index 0 is below the first point, index `i` is from
/// point `i-1` up to (not including) point `i`, the last is from the last point up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// Bucket points in 512-byte sectors (KiB × 2).
    sectors: Vec<u64>,
    /// One count per row.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram with these points.
    pub fn new(b: &Buckets) -> Histogram {
        Histogram {
            sectors: b.0.iter().map(|&k| u64::from(k) * 2).collect(),
            counts: vec![0; b.0.len() + 1],
        }
    }

    /// Counts one request of `nr_sector` sectors.
    #[inline]
    pub fn add(&mut self, nr_sector: u32) {
        let i = self.sectors.partition_point(|&s| s <= u64::from(nr_sector));
        self.counts[i] += 1;
    }

    /// Requests counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The column header of a histogram, as the original prints it.
pub fn header() -> String {
    format!(
        "            {:<15}: {:<8} {}\n",
        "Kbytes", "I/O", "Distribution"
    )
}

/// The bar for `n` of at most `most`: 38 columns for `most`, at least one `#` for any
/// I/O (rounded up, as the original).
fn stars(n: u64, most: u64) -> String {
    if most == 0 {
        return String::new();
    }
    let k = (n.saturating_mul(38)).div_ceil(most).min(38) as usize;
    "#".repeat(k)
}

/// The rows of a histogram in the original's layout; `most` scales the bars.
pub fn render(b: &Buckets, h: &Histogram, most: u64, out: &mut String) {
    let p = &b.0;
    let last = p.len() - 1;
    for (i, &n) in h.counts.iter().enumerate() {
        let bar = stars(n, most);
        let _ = if i == 0 {
            writeln!(
                out,
                "   {:>10} -> {:<10.1}: {:<8} |{:<38}|",
                "",
                f64::from(p[0]) - 0.1,
                n,
                bar
            )
        } else if i - 1 < last {
            writeln!(
                out,
                "   {:>10.1} -> {:<10.1}: {:<8} |{:<38}|",
                f64::from(p[i - 1]),
                f64::from(p[i]) - 0.1,
                n,
                bar
            )
        } else {
            writeln!(
                out,
                "   {:>10.1} -> {:<10}: {:<8} |{:<38}|",
                f64::from(p[last]),
                "",
                n,
                bar
            )
        };
    }
}

/// The banner, as the original prints it.
pub fn banner(seconds: Option<f64>) -> String {
    match seconds {
        Some(d) => format!("Tracing block I/O size (bytes), for {d} seconds..."),
        None => "Tracing block I/O size (bytes), until Ctrl-C...".to_string(),
    }
}

/// What was counted: one histogram, or one per process name.
#[derive(Debug, Clone)]
pub struct Counts {
    buckets: Buckets,
    /// All I/O (without `--per-process`).
    pub all: Histogram,
    /// Per process name (NUL-padded comm), with `--per-process`.
    pub by_name: Option<HashMap<[u8; 16], Histogram>>,
}

impl Counts {
    /// Empty counts.
    pub fn new(buckets: Buckets, per_process: bool) -> Counts {
        Counts {
            all: Histogram::new(&buckets),
            by_name: per_process.then(HashMap::new),
            buckets,
        }
    }

    /// Counts one request.
    #[inline]
    pub fn add(&mut self, comm: &[u8; 16], nr_sector: u32) {
        match &mut self.by_name {
            None => self.all.add(nr_sector),
            Some(m) => {
                let b = &self.buckets;
                m.entry(*comm)
                    .or_insert_with(|| Histogram::new(b))
                    .add(nr_sector);
                self.all.add(nr_sector);
            }
        }
    }

    /// The histogram(s) after a blank line, as the original prints them. With
    /// `--per-process`, one per process name (most I/O first; names escaped), each
    /// scaled to its own largest bucket.
    pub fn report(&self) -> String {
        let mut s = String::from("\n");
        match &self.by_name {
            None => {
                s.push_str(&header());
                let most = self.all.counts.iter().copied().max().unwrap_or(0);
                render(&self.buckets, &self.all, most, &mut s);
            }
            Some(m) => {
                let mut names: Vec<(&[u8; 16], &Histogram)> = m.iter().collect();
                names.sort_by(|a, b| b.1.total().cmp(&a.1.total()).then(a.0.cmp(b.0)));
                for (i, (comm, h)) in names.into_iter().enumerate() {
                    if i > 0 {
                        s.push('\n');
                    }
                    let name = &comm[..comm.iter().position(|&c| c == 0).unwrap_or(16)];
                    let _ = writeln!(s, "Process name: {}", escape(name));
                    s.push_str(&header());
                    let most = h.counts.iter().copied().max().unwrap_or(0);
                    render(&self.buckets, h, most, &mut s);
                }
            }
        }
        s
    }
}

/// What bitesize would use on this host and whether it can run (`--check`, and its
/// row in perf-tools-doctor): tracefs, a private instance, `block:block_rq_issue` with
/// its `nr_sector` field, recording verified; the instance is removed before this
/// returns.
pub fn check() -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut report = Report::new(TOOL);
    let Some(tracefs) = fc::tracefs(&mut report) else {
        return Ok(report);
    };
    let Some(inst) = fc::instance(&tracefs, TOOL, &mut report) else {
        return Ok(report);
    };
    let fix =
        "use a kernel built with CONFIG_BLOCK=y and CONFIG_EVENT_TRACING=y (block tracepoints)";
    let dir = inst.dir().to_path_buf();
    let issue = fc::event(&mut report, &dir, "block", "block_rq_issue", true, fix);
    if let Some(issue) = &issue {
        match issue.require("nr_sector") {
            Ok(_) => {
                report.item(
                    "layout",
                    Status::Yes,
                    format!(
                        "{}; sizes from nr_sector, read by field name",
                        perf_tools_block::layout_name(issue)
                    ),
                    "",
                    true,
                );
            }
            Err(e) => {
                report.item(
                    "layout",
                    Status::No,
                    format!("{e:#}"),
                    "report this kernel's block_rq_issue format file as a bug of perf-tools-rs",
                    true,
                );
            }
        }
        fc::verify_recording(&inst, &[("block", "block_rq_issue")], &mut report);
    }
    inst.remove()?;
    report.uses = if report.verdict() == Status::No {
        "block tracepoints unavailable".to_string()
    } else {
        "block_rq_issue (nr_sector) in a private instance".to_string()
    };
    Ok(report)
}

/// Runs bitesize.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let buckets = args.buckets.clone().unwrap_or_default();
    // A device name that does not exist is an error before any kernel state is made.
    let device = perf_tools_block::device_filter(args.device.as_ref())?;
    let (issue_filter, _) = perf_tools_block::filters(device.as_ref(), None, None)
        .map_err(|e| cli::usage(e.to_string()))?;

    let mut scope = args.scope.resolve()?;

    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let inst = cleanup::start_instance(&tracefs, TOOL)?;
    // Larger sub-buffers (6.8+) cut the reads per event; older kernels keep pages.
    let _ = inst.ensure("buffer_subbuf_size_kb", "64");
    inst.ensure("buffer_size_kb", &args.buffer_kb.to_string())?;
    let _ = inst.ensure("buffer_percent", "25");
    let fmt = inst.event_format("block", "block_rq_issue")?;
    if fmt.field("nr_sector").is_none() {
        bail!("this kernel's block:block_rq_issue has no nr_sector field (see {}/events/block/block_rq_issue/format): bitesize cannot tell request sizes; please report it as a bug of perf-tools-rs", inst.dir().display());
    }
    let decoder = BlockDecoder::load(&inst, StartPoint::Issue)?;
    if let Some(f) = &issue_filter {
        inst.set_filter("block", "block_rq_issue", f)?;
    }
    if let Some(sc) = scope.as_mut() {
        // In the kernel: the issuing task (the thread on the CPU at block_rq_issue).
        sc.apply(&inst)?;
    }
    inst.enable_event("block", "block_rq_issue")?;
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;
    let disks_before = DiskStats::read();

    let mut out = Output::stdout();
    let _ = writeln!(out.buf, "{}", banner(args.seconds));
    out.flush()?;

    let mut counts = Counts::new(buckets, args.per_process);
    let mut undecoded = 0u64;
    // I/O of tasks that had moved out of the cgroup (the kernel's list keeps them).
    let mut left_out = 0u64;
    let end = session.stream(
        &shutdown,
        args.seconds,
        Duration::from_millis(200),
        |reader, inst, batch| {
            if let Some(sc) = scope.as_mut() {
                sc.turn(inst, batch.last, &shutdown, TOOL, false)?;
            }
            reader.drain(|_, _, payload| match decoder.decode_start_size(payload) {
                Some(s)
                    if scope
                        .as_mut()
                        .is_some_and(|sc| !sc.contains(s.who.pid as u32)) =>
                {
                    left_out += 1
                }
                Some(s) => counts.add(&s.who.comm, s.nr_sector),
                None => undecoded += 1,
            });
            Ok(())
        },
    )?;
    if end == StreamEnd::OutputClosed {
        return session.finish();
    }
    if undecoded > 0 {
        eprintln!("WARNING: {undecoded} events could not be decoded (truncated or of another type) and are not counted");
    }
    let lost_now = session.lost_events();
    out.buf.extend_from_slice(counts.report().as_bytes());
    out.flush()?;
    let mut account = RunAccount::new(TOOL, "I/Os in the histogram");
    account.rows = counts.all.total();
    if let (Some(before), Some(after)) = (disks_before.as_ref(), DiskStats::read()) {
        account.seen = after.seen(before, device.as_ref().map(|d| d.dev));
    }
    if let Some(d) = &args.device {
        account.filter(format!("-d {d}"), true);
    }
    for (option, in_kernel) in args.scope.filter_notes(true) {
        account.filter(option, in_kernel);
    }
    account.left_out = left_out;
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported: lost_now,
            note_on_stderr: true,
            loss_effect: "the histogram is missing that many I/Os (try a larger --buffer-kb)"
                .to_string(),
            account: Some(account),
        },
        || Ok(()),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_histogram_matches_the_original_layout() {
        let b = Buckets::default();
        let mut h = Histogram::new(&b);
        h.counts = vec![0, 38, 10108, 13, 1];
        let mut s = header();
        render(&b, &h, 10108, &mut s);
        assert_eq!(
            s,
            "            Kbytes         : I/O      Distribution\n\
             \x20             -> 0.9       : 0        |                                      |\n\
             \x20         1.0 -> 7.9       : 38       |#                                     |\n\
             \x20         8.0 -> 63.9      : 10108    |######################################|\n\
             \x20        64.0 -> 127.9     : 13       |#                                     |\n\
             \x20       128.0 ->           : 1        |#                                     |\n"
        );
    }

    #[test]
    fn bars_round_up_like_the_original() {
        let b = Buckets(vec![8, 16, 24, 32]);
        let mut h = Histogram::new(&b);
        h.counts = vec![89, 14665, 657, 661, 376];
        let mut s = String::new();
        render(&b, &h, 14665, &mut s);
        let bars: Vec<usize> = s
            .lines()
            .map(|l| l.split('|').nth(1).unwrap().trim_end().len())
            .collect();
        // ceil(38 * n / most), as the awk loop `si < 38 * n / most` counts.
        assert_eq!(bars, vec![1, 38, 2, 2, 1]);
        assert!(s.starts_with("              -> 7.9       : 89 "));
        assert_eq!(stars(0, 0), "");
        assert_eq!(stars(5, 0), "");
    }

    #[test]
    fn sizes_land_in_the_right_bucket() {
        let b = Buckets::default();
        let mut h = Histogram::new(&b);
        // 0 (a flush), 512 B, 1 KiB, 4 KiB, 7.5 KiB, 8 KiB, 63.5 KiB, 64 KiB, 128 KiB, 1 MiB.
        for s in [0, 1, 2, 8, 15, 16, 127, 128, 256, 2048] {
            h.add(s);
        }
        assert_eq!(h.counts, vec![2, 3, 2, 1, 2]);
        assert_eq!(h.total(), 10);
    }

    #[test]
    fn buckets_parse_like_the_original_and_refuse_nonsense() {
        assert_eq!(parse_buckets("8 16 32").unwrap(), Buckets(vec![8, 16, 32]));
        assert_eq!(
            parse_buckets(" 8,16  32 ").unwrap(),
            Buckets(vec![8, 16, 32])
        );
        assert_eq!(parse_buckets("4").unwrap(), Buckets(vec![4]));
        for bad in ["", "8 8", "16 8", "x", "1.5", "0 8", "-1", "99999999"] {
            assert!(parse_buckets(bad).is_err(), "{bad:?}");
        }
        assert!(parse_buckets("16 8")
            .unwrap_err()
            .contains("must increase in size"));
    }

    #[test]
    fn one_bucket_gives_two_rows() {
        let b = Buckets(vec![4]);
        let mut h = Histogram::new(&b);
        h.add(7);
        h.add(8);
        h.add(8);
        let mut s = String::new();
        render(&b, &h, 2, &mut s);
        assert_eq!(
            s,
            "              -> 3.9       : 1        |###################                   |\n\
             \x20         4.0 ->           : 2        |######################################|\n"
        );
    }

    #[test]
    fn per_process_histograms_escape_names() {
        let mut c = Counts::new(Buckets(vec![4]), true);
        let mut evil = [0u8; 16];
        evil[..9].copy_from_slice(b"x\n  1 -> ");
        let mut dd = [0u8; 16];
        dd[..2].copy_from_slice(b"dd");
        c.add(&dd, 8);
        c.add(&dd, 8);
        c.add(&evil, 1);
        let r = c.report();
        assert!(r.starts_with("\nProcess name: dd\n"), "{r}");
        assert!(r.contains("\nProcess name: x\\n  1 -> \n"), "{r}");
        assert_eq!(r.matches("Kbytes").count(), 2);
        assert_eq!(c.all.total(), 3);
    }

    #[test]
    fn banners_match_the_original() {
        assert_eq!(
            banner(None),
            "Tracing block I/O size (bytes), until Ctrl-C..."
        );
        assert_eq!(
            banner(Some(10.0)),
            "Tracing block I/O size (bytes), for 10 seconds..."
        );
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["bitesize", "-b", "8 4"][..],
            &["bitesize", "-b", ""],
            &["bitesize", "abc"],
            &["bitesize", "0"],
            &["bitesize", "-d", "7"],
            &["bitesize", "-z"],
            &["bitesize", "1", "2"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
        let a = Args::try_parse_from(["bitesize", "-b", "8 16 32", "5"]).unwrap();
        assert_eq!(a.buckets, Some(Buckets(vec![8, 16, 32])));
        assert_eq!(a.seconds, Some(5.0));
    }
}
