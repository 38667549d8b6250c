//! perf-stat-hist: a histogram of one numeric field of a tracepoint, power-of-N or with
//! the user's bucket points, counted exactly.
//!
//! A port of perf-tools' `perf-stat-hist` with the same options, banner and histogram
//! layout. The original ran `perf stat` with one filtered copy of the tracepoint per
//! bucket; this reads the event from the raw per-CPU buffers of a private instance
//! (`instances/perf-stat-hist-<pid>`), decodes the field by name from the kernel's format
//! file and counts each event once, in its bucket. `-f` is applied in the kernel. Lost
//! events are counted and reported: the counts are then a lower bound.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use std::time::Duration;

use perf_tools_core::check::{Report, Status};
use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::format::{EventFormat, Field, Location};
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::reader::RawReader;
use perf_tools_ftrace::scope::Scope;
use perf_tools_ftrace::session::{RunAccount, Session, StreamEnd};
use perf_tools_ftrace::toplevel::close_matches;
use perf_tools_ftrace::tracefs::Tracefs;

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "perf-stat-hist",
    version,
    about = "Histogram of a numeric tracepoint field (power-of-N or given buckets), counted exactly",
    long_about = None,
    after_help = "Examples:\n  perf-stat-hist syscalls:sys_enter_read count 5\n                                  # read() request size histogram, 5 seconds\n  perf-stat-hist syscalls:sys_exit_read ret 5\n                                  # read() return histogram, 5 seconds\n  perf-stat-hist -P 10 syscalls:sys_exit_read ret 5\n                                  # ... use power-of-10\n  perf-stat-hist -P 2 -m 1024 syscalls:sys_exit_read ret 5\n                                  # ... use power-of-2, max 1024\n  perf-stat-hist -b \"10 50 100 500\" syscalls:sys_exit_read ret 5\n                                  # ... histogram based on these bucket ranges\n  perf-stat-hist -b 10 syscalls:sys_exit_read ret 5\n                                  # ... bifurcate by the value 10\n  perf-stat-hist -f 'rwbs == \"WS\"' block:block_rq_complete nr_sector 5\n                                  # ... synchronous writes histogram, 5 seconds\n\nSee the perf-stat-hist(8) man page for more."
)]
pub struct Args {
    /// Bucket points, as one string of increasing whole numbers ("10 500 1000"); rows
    /// are added for below the first and for at or above the last
    #[arg(short = 'b', value_name = "buckets", conflicts_with = "power")]
    pub buckets: Option<String>,
    /// Power for a power-of histogram (default 4)
    #[arg(short = 'P', value_name = "power", value_parser = cli::at_least::<u64>("-P power", 2))]
    pub power: Option<u64>,
    /// Largest bucket point of a power-of histogram (default 1048576)
    #[arg(short = 'm', value_name = "max")]
    pub max: Option<u64>,
    /// Count only the events this tracepoint filter keeps (applied in the kernel), e.g.
    /// 'rwbs == "WS"'
    #[arg(short = 'f', value_name = "filter")]
    pub filter: Option<String>,
    /// The tracepoint, as system:event (e.g. syscalls:sys_enter_read)
    #[arg(value_name = "tracepoint", required = true)]
    pub tracepoint: Option<String>,
    /// The numeric field of the tracepoint to summarize (see its format file)
    #[arg(value_name = "variable", required = true)]
    pub variable: Option<String>,
    /// Trace for this many seconds (default: until Ctrl-C)
    #[arg(value_name = "seconds", value_parser = cli::parse_duration)]
    pub seconds: Option<f64>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4096, value_parser = cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Container scope: only events fired by a cgroup's tasks (filtered in the kernel)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Say whether perf-stat-hist can run on this host, verified with a read() of its
    /// own counted in its bucket, then exit: 0 if it can run, 1 if not
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    cli::command::<Args>()
}

/// The bucket points of a power-of histogram: 0, then 1, p, p², ... up to `max`.
pub fn power_buckets(power: u64, max: u64) -> Vec<i128> {
    let mut b = vec![0i128];
    let mut s: u64 = 1;
    while s <= max {
        b.push(s as i128);
        match s.checked_mul(power) {
            Some(n) => s = n,
            None => break,
        }
    }
    b
}

/// Parses `-b`: whitespace-separated whole numbers, strictly increasing.
pub fn parse_buckets(s: &str) -> Result<Vec<i128>> {
    let mut b: Vec<i128> = Vec::new();
    for w in s.split_whitespace() {
        let v: i64 = w.parse().map_err(|_| {
            cli::usage(format!(
                "-b takes whole numbers separated by spaces (e.g. \"10 500 1000\"), not \"{w}\""
            ))
        })?;
        if b.last().is_some_and(|l| *l >= v as i128) {
            return Err(cli::usage(format!(
                "bucket list must increase in size: {w} follows {}",
                b.last().copied().unwrap_or_default()
            )));
        }
        b.push(v as i128);
    }
    if b.is_empty() {
        return Err(cli::usage(
            "-b needs at least one bucket point (e.g. -b 10, or -b \"10 500 1000\")",
        ));
    }
    Ok(b)
}

/// A histogram over bucket points `points`: `counts[0]` is below the first point,
/// `counts[i + 1]` is from `points[i]` up to (not including) `points[i + 1]`, the last is
/// at or above the last point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hist {
    /// The bucket points, increasing.
    pub points: Vec<i128>,
    /// One count per row (`points.len() + 1`).
    pub counts: Vec<u64>,
}

impl Hist {
    /// An empty histogram over `points`.
    pub fn new(points: Vec<i128>) -> Hist {
        let n = points.len() + 1;
        Hist {
            points,
            counts: vec![0; n],
        }
    }

    /// Counts one value.
    #[inline]
    pub fn add(&mut self, v: i128) {
        let i = self.points.partition_point(|p| *p <= v);
        self.counts[i] += 1;
    }

    /// All values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The histogram as the original prints it: a header, then one row per bucket with
    /// the count and a bar of up to 38 `#` scaled to the largest count.
    pub fn render(&self) -> String {
        let most = self.counts.iter().copied().max().unwrap_or(0);
        let bar = |n: u64| -> String {
            if most == 0 {
                return String::new();
            }
            // As many as needed for 38 * n / most, rounded up.
            let w = (38 * n as u128).div_ceil(most as u128) as usize;
            "#".repeat(w)
        };
        let mut s = format!(
            "            {:<15}: {:<8} {}\n",
            "Range", "Count", "Distribution"
        );
        let last = self.points.len() - 1;
        for (i, n) in self.counts.iter().enumerate() {
            let (lo, hi) = if i == 0 {
                (String::new(), (self.points[0] - 1).to_string())
            } else if i - 1 == last {
                (self.points[last].to_string(), String::new())
            } else {
                (
                    self.points[i - 1].to_string(),
                    (self.points[i] - 1).to_string(),
                )
            };
            s.push_str(&format!(
                "   {lo:>10} -> {hi:<10}: {n:<8} |{:<38}|\n",
                bar(*n)
            ));
        }
        s
    }
}

/// The startup line, as the original prints it.
pub fn banner(
    tracepoint: &str,
    filter: Option<&str>,
    power: Option<u64>,
    hist: &Hist,
    seconds: Option<f64>,
) -> String {
    let tp = match filter {
        Some(f) => format!("{tracepoint} (Filter: {f})"),
        None => tracepoint.to_string(),
    };
    let etext = match seconds {
        Some(d) => format!("for {d} seconds"),
        None => "until Ctrl-C".to_string(),
    };
    match power {
        Some(p) => format!(
            "Tracing {tp}, power-of-{p}, max {}, {etext}...",
            hist.points[hist.points.len() - 1]
        ),
        None => format!("Tracing {tp}, specified buckets, {etext}..."),
    }
}

/// Splits `system:event`.
fn split_tracepoint(tp: &str) -> Result<(&str, &str)> {
    match tp.split_once(':') {
        Some((s, e)) if !s.is_empty() && !e.is_empty() && !e.contains(':') => Ok((s, e)),
        _ => Err(cli::usage(format!(
            "the tracepoint is system:event (e.g. syscalls:sys_enter_read), not \"{tp}\""
        ))),
    }
}

/// The error for a tracepoint this kernel does not have, with the closest names.
fn no_such_tracepoint(tracefs: &Tracefs, tp: &str) -> anyhow::Error {
    let all = perf_tools_ftrace::tracefs::read_file(&tracefs.path("available_events"))
        .unwrap_or_default();
    let names: Vec<&str> = all.lines().collect();
    let close = close_matches(tp, &names, 5);
    let hint = if close.is_empty() {
        format!(
            "; see {} for the tracepoints of this kernel",
            tracefs.path("available_events").display()
        )
    } else {
        format!("; closest: {}", close.join(", "))
    };
    anyhow::anyhow!("tracepoint \"{tp}\" not found on this kernel{hint}")
}

/// The field `var` of the event, which must be a number.
pub fn numeric_field(f: &EventFormat, tp: &str, var: &str) -> Result<Field> {
    let numeric = |x: &Field| {
        x.location == Location::Fixed && x.array_len.is_none() && matches!(x.size, 1 | 2 | 4 | 8)
    };
    match f.field(var) {
        Some(x) if numeric(x) => Ok(x.clone()),
        Some(x) => bail!(
            "field \"{var}\" of {tp} is not a number ({}{}), so it has no histogram; numeric fields: {}",
            x.type_name,
            if x.array_len.is_some() { "[]" } else { "" },
            numeric_names(f, numeric)
        ),
        None => {
            let names: Vec<&str> = f.fields.iter().map(|x| x.name.as_str()).collect();
            let close = close_matches(var, &names, 5);
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!("closest: {}; ", close.join(", "))
            };
            bail!(
                "{tp} has no field \"{var}\" on this kernel ({hint}numeric fields: {})",
                numeric_names(f, numeric)
            )
        }
    }
}

fn numeric_names(f: &EventFormat, numeric: impl Fn(&Field) -> bool) -> String {
    f.fields
        .iter()
        .filter(|x| numeric(x) && !x.name.starts_with("common_"))
        .map(|x| x.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the field's value as the kernel declares it (signed or not).
#[inline]
fn value(field: &Field, p: &[u8]) -> Option<i128> {
    if field.signed {
        field.read_i64(p).map(i128::from)
    } else {
        field.read_u64(p).map(i128::from)
    }
}

/// The private instance with the one event enabled (tracing not on yet) and the
/// event's id and field.
fn setup(
    tracefs: &Tracefs,
    buffer_kb: u32,
    tp: &str,
    var: &str,
    filter: Option<&str>,
    scope: Option<Scope>,
) -> Result<(Instance, u16, Field, Option<InScope>)> {
    let (system, event) = split_tracepoint(tp)?;
    if !tracefs.has_event(system, event) {
        return Err(no_such_tracepoint(tracefs, tp));
    }
    let inst = cleanup::start_instance(tracefs, "perf-stat-hist")?;
    inst.set_tracing_on(false)?;
    let _ = inst.ensure("buffer_subbuf_size_kb", "64");
    inst.ensure("buffer_size_kb", &buffer_kb.to_string())?;
    let _ = inst.ensure("buffer_percent", "25");
    let format = inst.event_format(system, event)?;
    let field = numeric_field(&format, tp, var)?;
    if let Some(f) = filter {
        inst.set_filter(system, event, f)?;
    }
    // In the kernel: set_event_pid (the task on the CPU when the event fires) with
    // event-fork.
    let scope = match scope {
        Some(mut sc) => {
            sc.apply(&inst)?;
            let pid = format.field("common_pid").cloned().with_context(|| {
                format!("{tp} has no common_pid field on this kernel, which --cgroup needs")
            })?;
            Some(InScope {
                scope: sc,
                pid,
                left_out: 0,
            })
        }
        None => None,
    };
    inst.enable_event(system, event)?;
    Ok((inst, format.id, field, scope))
}

/// The run's container scope, with the event's `common_pid` field to check the task
/// of each event (one that moved out of the cgroup stays in the kernel's list).
struct InScope {
    scope: Scope,
    pid: Field,
    /// Events of tasks that had left the cgroup: not counted.
    left_out: u64,
}

/// Drains the buffers into the histogram; returns the events the pages say were lost.
fn drain(
    reader: &mut RawReader,
    id: u16,
    field: &Field,
    hist: &mut Hist,
    mut scope: Option<&mut InScope>,
) -> u64 {
    let stats = reader.drain(|_, _, p| {
        if p.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) != Some(id) {
            return;
        }
        if let Some(s) = scope.as_deref_mut() {
            let tid = s.pid.read_u64(p).unwrap_or(0) as u32;
            if !s.scope.contains(tid) {
                s.left_out += 1;
                return;
            }
        }
        if let Some(v) = value(field, p) {
            hist.add(v);
        }
    });
    stats.missed
}

/// Runs perf-stat-hist.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let (Some(tp), Some(var)) = (args.tracepoint.as_deref(), args.variable.as_deref()) else {
        return Err(cli::usage("needs a tracepoint and a variable"));
    };
    split_tracepoint(tp)?;
    let (points, power) = match &args.buckets {
        Some(_) if args.max.is_some() => {
            return Err(cli::usage(
                "-m sets the largest point of a power-of histogram: with -b, make it the last bucket point",
            ))
        }
        Some(b) => (parse_buckets(b)?, None),
        None => {
            let p = args.power.unwrap_or(4);
            (power_buckets(p, args.max.unwrap_or(1_048_576)), Some(p))
        }
    };
    let mut hist = Hist::new(points);
    let scope = args.scope.resolve()?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let (inst, id, field, mut scope) = setup(
        &tracefs,
        args.buffer_kb,
        tp,
        var,
        args.filter.as_deref(),
        scope,
    )?;
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;
    let mut out = Output::stdout();
    let _ = writeln!(
        out.buf,
        "{}",
        banner(tp, args.filter.as_deref(), power, &hist, args.seconds)
    );
    out.flush()?;
    let mut lost = 0u64;
    let end = session.stream(
        &shutdown,
        args.seconds,
        Duration::from_millis(200),
        |reader, inst, batch| {
            if let Some(s) = scope.as_mut() {
                s.scope
                    .turn(inst, batch.last, &shutdown, "perf-stat-hist", false)?;
            }
            lost += drain(reader, id, &field, &mut hist, scope.as_mut());
            Ok(())
        },
    )?;
    if end == StreamEnd::OutputClosed {
        return session.finish();
    }
    let lost = lost.max(session.lost_events());
    session.finish()?;
    let _ = write!(out.buf, "\n{}", hist.render());
    out.flush()?;
    if lost > 0 {
        eprintln!(
            "WARNING: {lost} events lost: the kernel buffer overflowed, so every count is a lower bound (try --buffer-kb larger than {})",
            args.buffer_kb
        );
    }
    let mut account = RunAccount::new("perf-stat-hist", "events counted");
    account.rows = hist.total();
    account.lost = lost;
    if let Some(f) = &args.filter {
        account.filter(format!("-f {f}"), true);
    }
    for (option, in_kernel) in args.scope.filter_notes(true) {
        account.filter(option, in_kernel);
    }
    account.left_out = scope.as_ref().map_or(0, |s| s.left_out);
    if hist.total() == 0 && account.left_out == 0 {
        account.notes.push(if scope.is_some() {
            format!("no {tp} event fired in a task of the cgroup while tracing")
        } else {
            format!("no {tp} event fired while tracing")
        });
    }
    if let Some(line) = account.line() {
        eprintln!("{line}");
    }
    Ok(())
}

/// The size of the canary read of `--check`: a value no other caller is likely to use.
const CANARY: usize = 77_777;

/// Whether perf-stat-hist can run here (`--check`, and its row in perf-tools-doctor):
/// `syscalls:sys_enter_read` in a private instance, filtered to this thread in the
/// kernel, must count a `read(-1, buf, 77777)` of its own once, in its bucket.
pub fn check() -> Result<Report> {
    let mut r = Report::new("perf-stat-hist");
    r.uses = "any tracepoint's numeric field, read from the raw buffers of a private instance (not perf stat)".into();
    let Some(tracefs) = perf_tools_ftrace::check::tracefs(&mut r) else {
        return Ok(r);
    };
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let result = (|| -> Result<Hist> {
        let (inst, id, field, _) = setup(
            &tracefs,
            64,
            "syscalls:sys_enter_read",
            "count",
            Some(&format!("common_pid == {tid}")),
            None,
        )?;
        let mut session = Session::start(inst)?;
        session.instance.set_tracing_on(true)?;
        let mut buf = [0u8; 8];
        // SAFETY: a read of fd -1 fails with EBADF and writes nothing; the length is
        // only recorded by the tracepoint.
        unsafe { libc::read(-1, buf.as_mut_ptr().cast(), CANARY) };
        session.instance.set_tracing_on(false)?;
        let mut hist = Hist::new(vec![CANARY as i128, CANARY as i128 + 1]);
        let lost = drain(&mut session.reader, id, &field, &mut hist, None);
        session.finish()?;
        if lost > 0 {
            bail!("{lost} events lost");
        }
        Ok(hist)
    })();
    match result {
        Ok(h) => {
            r.item(
            "canary",
            // The thread's own reads of tracefs files fall in the other buckets.
            if h.counts[1] == 1 {
                Status::Yes
            } else {
                Status::No
            },
            format!(
                "syscalls:sys_enter_read count of perf-stat-hist's own read(-1, buf, {CANARY}): {} counted in its bucket (1 expected; {} other reads of its own elsewhere)",
                h.counts[1],
                h.counts[0] + h.counts[2]
            ),
            "make sure no other program changes this run's instance; report this as a bug of perf-tools-rs",
            true,
        );
        }
        Err(e) => {
            r.item(
                "tracepoints",
                Status::No,
                format!("{e:#}"),
                "run as root on a kernel with tracefs and CONFIG_FTRACE_SYSCALLS=y",
                true,
            );
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn power_of_4_buckets_and_banner_match_the_original() {
        let h = Hist::new(power_buckets(4, 1_048_576));
        assert_eq!(h.points.len(), 12);
        assert_eq!(
            banner("net:net_dev_xmit", None, Some(4), &h, Some(10.0)),
            "Tracing net:net_dev_xmit, power-of-4, max 1048576, for 10 seconds..."
        );
        let h10 = Hist::new(power_buckets(10, 1_048_576));
        assert_eq!(
            banner("a:b", Some("len > 1"), Some(10), &h10, None),
            "Tracing a:b (Filter: len > 1), power-of-10, max 1000000, until Ctrl-C..."
        );
        assert_eq!(
            banner("a:b", None, None, &h10, Some(1.5)),
            "Tracing a:b, specified buckets, for 1.5 seconds..."
        );
        assert_eq!(power_buckets(2, 8), vec![0, 1, 2, 4, 8]);
        assert_eq!(power_buckets(2, u64::MAX).len(), 65);
    }

    #[test]
    fn rows_match_the_original_layout() {
        let mut h = Hist::new(vec![10, 50]);
        for v in [-3, 10, 49, 49, 50, 1000, 7] {
            h.add(v);
        }
        assert_eq!(h.counts, vec![2, 3, 2]);
        assert_eq!(
            h.render(),
            "            Range          : Count    Distribution\n\
             \x20             -> 9         : 2        |##########################            |\n\
             \x20          10 -> 49        : 3        |######################################|\n\
             \x20          50 ->           : 2        |##########################            |\n"
        );
        let empty = Hist::new(vec![0, 1]);
        assert!(empty
            .render()
            .ends_with(": 0        |                                      |\n"));
    }

    #[test]
    fn bucket_lists() {
        assert_eq!(parse_buckets(" 10 50  100 ").unwrap(), vec![10, 50, 100]);
        for bad in ["", "10 10", "10 5", "x", "1.5"] {
            let e = parse_buckets(bad).unwrap_err();
            assert!(e.downcast_ref::<cli::UsageError>().is_some(), "{bad}");
        }
    }

    const FORMAT: &str = "name: sys_enter_read\nID: 700\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:char * buf;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:__data_loc char[] name;\toffset:40;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n";

    #[test]
    fn fields_are_decoded_by_name_and_checked() {
        let f = EventFormat::parse(FORMAT).unwrap();
        let count = numeric_field(&f, "syscalls:sys_enter_read", "count").unwrap();
        let mut p = vec![0u8; 48];
        p[32..40].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(value(&count, &p), Some(u64::MAX as i128));
        let e = numeric_field(&f, "syscalls:sys_enter_read", "cont")
            .unwrap_err()
            .to_string();
        assert!(e.contains("closest: count"), "{e}");
        let e = numeric_field(&f, "syscalls:sys_enter_read", "name")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a number"), "{e}");
        let pid = numeric_field(&f, "x:y", "common_pid").unwrap();
        p[4..8].copy_from_slice(&(-2i32).to_ne_bytes());
        assert_eq!(value(&pid, &p), Some(-2));
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["perf-stat-hist"][..],
            &["perf-stat-hist", "a:b"],
            &["perf-stat-hist", "-P", "1", "a:b", "c"],
            &["perf-stat-hist", "-P", "2", "-b", "1", "a:b", "c"],
            &["perf-stat-hist", "a:b", "c", "0"],
            &["perf-stat-hist", "a:b", "c", "1", "extra"],
        ] {
            assert_eq!(
                Args::try_parse_from(argv).unwrap_err().exit_code(),
                2,
                "{argv:?}"
            );
        }
        assert!(split_tracepoint("nocolon").is_err());
    }
}
