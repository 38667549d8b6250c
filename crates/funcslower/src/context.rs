//! The outlier recorder of `--context`: every call of the function is traced, and the
//! calls at least `latency_us` long are printed with the calls that returned within
//! SECS before and after them, from the shared bounded window
//! ([`perf_tools_core::window::ContextWindow`]).
//!
//! # Where the duration and the time of a call come from
//!
//! From the kernel's function_graph text, with `options/funcgraph-abstime` on (and
//! `options/funcgraph-tail`, so every return names its function), not from raw
//! `ftrace:funcgraph_exit` records. Why:
//!
//! - The text's duration is exact for the threshold. The kernel prints the whole
//!   microseconds of `rettime - calltime` in full and cuts only the fraction
//!   (`trace_print_graph_duration`: "301398.6 us", "1533.901 us"), and the threshold is
//!   whole microseconds, so `printed whole us >= latency_us` is exactly
//!   `rettime - calltime >= latency_us * 1000`, the test `tracing_thresh` makes. With
//!   `-C` (sleep-time off) the kernel adjusts the call time before printing, so the text
//!   is on-CPU time as the default mode's is.
//! - It reads the same on 5.10, 6.12 and 7.x (captured in the VM guests: the lines of
//!   the unit tests). The binary `funcgraph_exit` record does not: `calltime` and
//!   `rettime` moved out of `struct ftrace_graph_ret` (and a `retval` field came in)
//!   between those kernels, and the format files of ftrace's internal events have not
//!   always matched what is written; decoding them would also need a kallsyms lookup
//!   to name the function, and the rows would no longer look like the default mode's.
//! - funcslower reads the text already (`trace_pipe`, or `trace` after `-d`), so `-P`,
//!   `-C`, `-p`, `-L` and `--cgroup` work unchanged.
//!
//! A call is a line with a duration: a return (`} /* func */`, timestamped when it
//! returned) or a call the kernel prints on one line (`func();`, when its return was
//! the next event of that CPU; timestamped when it was entered, so it returned at that
//! time plus its duration). Entry lines (`func() {`), context-switch notes and rules
//! are not calls and are not printed with `--context`. The timestamp column is cut
//! from the printed row unless `-t` was given.
//!
//! Rows are taken in the kernel's order. One CPU's returns come in time order; lines
//! of different CPUs are merged by the kernel by the time of their events, so a call
//! printed on one line can return after a row of another CPU printed after it. Such a
//! row counts as returning when the call before it did (times never go backwards): the
//! edge of a context can then be off by that overlap, at most the duration of the
//! one-line call.

use std::io::Write;
use std::time::Instant;

use perf_tools_core::window::{Bound, ContextWindow, Emit, Timed};
use perf_tools_ftrace::graph::LineSink;

/// How far behind the monotonic clock the trace time is assumed to be while no row
/// arrives (two reads of the pipe, which is read every 250 ms at most).
const IDLE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Default of `--context-rows`: the calls the window holds at most.
pub const DEFAULT_CONTEXT_ROWS: usize = 100_000;

/// Bytes of a row's text counted by the memory bound on top of the row itself (a
/// function_graph line is 40 to 110 bytes; longer ones use up the bound sooner).
pub const ROW_TEXT_BYTES: usize = 128;

/// The bytes the window holds at most with `rows` rows (`--context-rows`).
pub fn context_bytes(rows: usize) -> usize {
    rows.saturating_mul(std::mem::size_of::<Call>() + ROW_TEXT_BYTES)
}

/// A call as printed (without the marker), timed by its return (ns of the trace clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// When it returned, ns.
    pub ts: u64,
    /// The row's text, with its newline.
    pub text: Vec<u8>,
}

impl Timed for Call {
    fn ts(&self) -> u64 {
        self.ts
    }
    fn heap_bytes(&self) -> usize {
        self.text.capacity()
    }
}

/// One line of function_graph text with `funcgraph-abstime` on, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The line's timestamp (ns): the return's, or the entry's for a one-line call.
    pub stamp: u64,
    /// The line without the timestamp column (as without `-t`).
    pub rest: &'a [u8],
    /// The call's duration (ns, as printed) and whether the line is a one-line call;
    /// `None` for a line without a duration (an entry `func() {`).
    pub call: Option<(u64, bool)>,
}

/// Parses `SSSSS.UUUUUU` (the abstime column) into ns.
fn parse_stamp(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    let dot = s.iter().position(|&b| b == b'.')?;
    let (secs, frac) = (&s[..dot], &s[dot + 1..]);
    if secs.is_empty() || frac.len() != 6 {
        return None;
    }
    let secs = parse_digits(secs)?;
    let us = parse_digits(frac)?;
    secs.checked_mul(1_000_000_000)?.checked_add(us * 1000)
}

fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses a printed duration (`301398.6`, `1533.901`, `12345678`) into ns: the whole
/// microseconds exactly, the fraction as far as it is printed.
pub fn parse_duration_ns(s: &[u8]) -> Option<u64> {
    let (whole, frac) = match s.iter().position(|&b| b == b'.') {
        Some(d) => (&s[..d], &s[d + 1..]),
        None => (s, &b""[..]),
    };
    let us = parse_digits(whole)?;
    let mut ns = 0u64;
    if s.contains(&b'.') {
        if frac.len() > 3 {
            return None;
        }
        ns = parse_digits(frac)? * 10u64.pow(3 - frac.len() as u32);
    }
    us.checked_mul(1000)?.checked_add(ns)
}

/// Takes apart a line of function_graph text printed with `funcgraph-abstime`
/// (`"    9.233957 |   1) @ 301398.6 us |  } /* do_nanosleep */\n"`); `None` for a
/// line without the timestamp column (rules, context-switch notes, blank lines,
/// `[LOST N EVENTS]`).
pub fn parse_line(line: &[u8]) -> Option<Parsed<'_>> {
    const SEP: &[u8] = b" |  ";
    let cut = line.windows(SEP.len()).position(|w| w == SEP)?;
    let stamp = parse_stamp(&line[..cut])?;
    let rest = &line[cut + SEP.len()..];
    // The duration is the number before the last " us " (the function column after it
    // has no " us "; a process name before it may).
    let call = rest.windows(4).rposition(|w| w == b" us ").and_then(|at| {
        let start = rest[..at]
            .iter()
            .rposition(|b| b.is_ascii_whitespace())
            .map_or(0, |p| p + 1);
        let ns = parse_duration_ns(&rest[start..at])?;
        let func = rest[at + 4..].trim_ascii();
        let func = func.strip_prefix(b"|").unwrap_or(func).trim_ascii();
        let one_line = func.ends_with(b");");
        (one_line || func.starts_with(b"}")).then_some((ns, one_line))
    });
    Some(Parsed { stamp, rest, call })
}

/// Rewrites a `#` header line for `--context`: the TIME column is cut unless `-t`,
/// and the column lines get the marker column (`M`).
pub fn header_line(line: &[u8], timestamps: bool, out: &mut Vec<u8>) {
    const TIME: [&[u8]; 2] = [b"#     TIME       ", b"#      |         "];
    let mut line = line.to_vec();
    if !timestamps && TIME.iter().any(|t| line.starts_with(t)) {
        line.drain(1..TIME[0].len());
    }
    if line.windows(14).any(|w| w == b"FUNCTION CALLS") {
        out.extend_from_slice(b"#M ");
        out.extend_from_slice(&line[1..]);
    } else if line.len() > 2 && line[1..].trim_ascii().starts_with(b"|") {
        out.extend_from_slice(b"#| ");
        out.extend_from_slice(&line[1..]);
    } else {
        out.extend_from_slice(&line);
    }
}

/// The recorder: parses lines, decides outliers, prints through the window.
#[derive(Debug)]
pub struct Recorder {
    /// Outliers are calls of at least this many ns.
    thresh_ns: u64,
    thresh_us: u64,
    timestamps: bool,
    bound_rows: usize,
    limit: Option<u64>,
    /// The window of recent calls.
    pub window: ContextWindow<Call>,
    /// The newest row time taken, and when it was read (to tell time while idle).
    last: Option<(u64, Instant)>,
    /// Events were lost since the last row.
    lost_since: bool,
}

impl Recorder {
    /// A recorder for calls of at least `thresh_us`, with `context_secs` before and
    /// after each, holding at most `rows` rows; `timestamps` keeps the TIME column;
    /// `limit` (`--count`) ends after that many outliers.
    pub fn new(
        thresh_us: u64,
        context_secs: f64,
        rows: usize,
        timestamps: bool,
        limit: Option<u64>,
    ) -> Recorder {
        let ns = (context_secs * 1e9).round() as u64;
        Recorder {
            thresh_ns: thresh_us.saturating_mul(1000),
            thresh_us,
            timestamps,
            bound_rows: rows,
            limit,
            window: ContextWindow::new(
                ns,
                ns,
                Bound {
                    rows,
                    bytes: context_bytes(rows),
                },
                limit,
            ),
            last: None,
            lost_since: false,
        }
    }

    fn emit(bound: usize, out: &mut Vec<u8>, e: Emit<Call>) {
        match e {
            Emit::Row { row, outlier } => {
                out.extend_from_slice(if outlier { b"* " } else { b"- " });
                out.extend_from_slice(&row.text);
            }
            Emit::Truncated { from, to, dropped } => {
                let _ = writeln!(
                    out,
                    "# context truncated: calls that returned from {} to {} s are not shown ({dropped} calls dropped: the window holds at most {bound}, --context-rows)",
                    secs(from),
                    secs(to)
                );
            }
            Emit::Lost { from, to } => {
                let _ = writeln!(
                    out,
                    "# events lost from {} to {} s: calls of this context that returned then may be missing",
                    secs(from),
                    secs(to)
                );
            }
        }
    }

    /// The end-of-run line (stderr).
    pub fn summary(&self) -> String {
        let st = &self.window.stats;
        let mut line = format!(
            "funcslower: {} calls seen, {} outliers (>= {} us), {} context rows",
            st.seen, st.outliers, self.thresh_us, st.context
        );
        if let Some(n) = self.limit.filter(|&n| st.outliers >= n) {
            line.push_str(&format!("; stopped after {n} (--count)"));
        }
        if st.truncations > 0 {
            line.push_str(&format!(
                "; context truncated {} times ({} calls dropped from the full window, --context-rows {})",
                st.truncations, st.dropped, self.bound_rows
            ));
        }
        line
    }
}

/// ns as seconds with 6 decimals (the abstime column's precision).
fn secs(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1000)
}

impl LineSink for Recorder {
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if line.starts_with(b"#") {
            header_line(line, self.timestamps, out);
            return;
        }
        if perf_tools_ftrace::text_pipe::lost_markers(line).0 > 0 {
            self.lost_since = true;
            return;
        }
        let Some(p) = parse_line(line) else {
            return;
        };
        let Some((dur, one_line)) = p.call else {
            return;
        };
        let returned = if one_line {
            p.stamp.saturating_add(dur)
        } else {
            p.stamp
        };
        let prev = self.last.map(|l| l.0);
        let ts = prev.map_or(returned, |t| returned.max(t));
        if std::mem::take(&mut self.lost_since) {
            let from = prev.unwrap_or(ts);
            let bound = self.bound_rows;
            self.window.gap(from, ts, |e| Self::emit(bound, out, e));
        }
        self.last = Some((ts, Instant::now()));
        let text = if self.timestamps { line } else { p.rest };
        let call = Call {
            ts,
            text: text.to_vec(),
        };
        let bound = self.bound_rows;
        self.window
            .push(call, dur >= self.thresh_ns, |e| Self::emit(bound, out, e));
    }

    fn tick(&mut self, last: bool, out: &mut Vec<u8>) -> bool {
        if last && std::mem::take(&mut self.lost_since) {
            if let Some((t, _)) = self.last {
                let bound = self.bound_rows;
                self.window.gap(t, t, |e| Self::emit(bound, out, e));
            }
        }
        // The trace clock (ns, the rate of the monotonic clock) has moved on at least
        // as far as the monotonic clock since the newest row was read; less a margin
        // for calls that returned before the last read of the pipe but are read at the
        // next one, so that no row still to come is older than `now`.
        match self.last {
            Some((t, at)) => {
                let waited = at.elapsed().saturating_sub(IDLE_MARGIN);
                let now = t.saturating_add(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
                self.window.advance(now)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_every_whole_microsecond() {
        assert_eq!(parse_duration_ns(b"301398.6"), Some(301_398_600));
        assert_eq!(parse_duration_ns(b"1533.901"), Some(1_533_901));
        assert_eq!(parse_duration_ns(b"0.250"), Some(250));
        assert_eq!(parse_duration_ns(b"12345678"), Some(12_345_678_000));
        for bad in [&b""[..], b"1.2345", b"x.1", b"1.", b"-1.0"] {
            assert_eq!(parse_duration_ns(bad), None, "{bad:?}");
        }
    }

    const PIPE_612: &str =
        include_str!("../../../tests/fixtures/funcgraph-text/6.12-deb13/pipe.txt");
    const PIPE_510: &str = include_str!("../../../tests/fixtures/funcgraph-text/5.10/pipe.txt");
    const PIPE_7: &str = include_str!("../../../tests/fixtures/funcgraph-text/7.x/pipe.txt");
    const PROC_510: &str =
        include_str!("../../../tests/fixtures/funcgraph-text/5.10/trace-proc.txt");

    /// Feeds text to a recorder line by line, then the end; returns what it printed.
    fn feed(r: &mut Recorder, text: &str) -> String {
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            r.line(line.as_bytes(), &mut out);
        }
        r.tick(true, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn real_lines_of_every_kernel_parse_into_calls() {
        // 6.12: a return (timed at its line), a one-line call (timed at its entry), an
        // entry (no duration) and the context-switch note (no timestamp column).
        let p = parse_line(b"    9.233957 |   1) @ 301398.6 us |  } /* do_nanosleep */\n").unwrap();
        assert_eq!(p.stamp, 9_233_957_000);
        assert_eq!(p.rest, b" 1) @ 301398.6 us |  } /* do_nanosleep */\n");
        assert_eq!(p.call, Some((301_398_600, false)));
        let p = parse_line(b"    8.883709 |   1) * 15380.08 us |  do_nanosleep();\n").unwrap();
        assert_eq!((p.stamp, p.call), (8_883_709_000, Some((15_380_080, true))));
        let p = parse_line(b"    8.932569 |   1)               |  do_nanosleep() {\n").unwrap();
        assert_eq!(p.call, None);
        for note in [
            " ------------------------------------------\n",
            " 1)   usleep-162   =>   usleep-163  \n",
            "\n",
            "CPU:1 [LOST 12 EVENTS]\n",
        ] {
            assert_eq!(parse_line(note.as_bytes()), None, "{note:?}");
        }
        // -P: a process name with " us " in it does not fool the duration.
        let p =
            parse_line(b"    7.131407 |   0)   a 5 us b-109 | # 1531.822 us |  do_nanosleep();\n")
                .unwrap();
        assert_eq!(p.call, Some((1_531_822, true)));
        // Every kernel's capture: each line with a duration is a call, no other is.
        for (k, text, calls) in [
            ("5.10", PIPE_510, 8),
            ("6.12", PIPE_612, 8),
            ("7.x", PIPE_7, 8),
        ] {
            let n = text
                .lines()
                .filter_map(|l| parse_line(l.as_bytes()))
                .filter(|p| p.call.is_some())
                .count();
            let with_us = text.lines().filter(|l| l.contains(" us ")).count();
            assert_eq!((n, with_us), (calls, calls), "{k}");
        }
    }

    /// The 6.12 capture: calls of 15.4 ms (one line), 1.5 ms (one line), 301.4 ms
    /// (9.233957), 2.2 ms (9.254738), 50.7 ms (9.378629), 3.9 ms (one line, returned
    /// 9.390803), 201.4 ms (9.550754), 500.8 ms (10.080593). Threshold 100000 us.
    #[test]
    fn exactly_the_outliers_and_the_calls_within_the_context_are_printed() {
        let mut r = Recorder::new(100_000, 0.1, 1000, false, None);
        assert_eq!(
            feed(&mut r, PIPE_612),
            "*  1) @ 301398.6 us |  } /* do_nanosleep */\n\
             -  0) # 2163.573 us |  } /* do_nanosleep */\n\
             *  1) @ 201394.8 us |  } /* do_nanosleep */\n\
             *  1) @ 500819.3 us |  } /* do_nanosleep */\n"
        );
        assert_eq!(
            r.summary(),
            "funcslower: 8 calls seen, 3 outliers (>= 100000 us), 1 context rows"
        );
        // 0.2 s: the one-line call that returned at 9.390803 (entered 9.386857) is in
        // the first outlier's context; each row once although the contexts overlap.
        let mut r = Recorder::new(100_000, 0.2, 1000, true, None);
        assert_eq!(
            feed(&mut r, PIPE_612),
            "*     9.233957 |   1) @ 301398.6 us |  } /* do_nanosleep */\n\
             -     9.254738 |   0) # 2163.573 us |  } /* do_nanosleep */\n\
             -     9.378629 |   0) * 50703.20 us |  } /* do_nanosleep */\n\
             -     9.386857 |   0) # 3946.386 us |  do_nanosleep();\n\
             *     9.550754 |   1) @ 201394.8 us |  } /* do_nanosleep */\n\
             *    10.080593 |   1) @ 500819.3 us |  } /* do_nanosleep */\n"
        );
        assert_eq!((r.window.stats.outliers, r.window.stats.context), (3, 3));
        // The threshold is inclusive and exact in whole microseconds: 301398 us is an
        // outlier at 301398 and not at 301399.
        let o = "    9.233957 |   1) @ 301398.6 us |  } /* do_nanosleep */\n";
        assert!(feed(&mut Recorder::new(301_398, 1.0, 1000, false, None), o).starts_with('*'));
        assert_eq!(
            feed(&mut Recorder::new(301_399, 1.0, 1000, false, None), o),
            ""
        );
    }

    #[test]
    fn other_kernels_and_headers() {
        // 5.10, -P and -H from `trace` (-d): the TIME column is cut from the header and
        // the rows, the marker column added; 150 ms context. usleep-112 returned at
        // 7.408441, before sleep-111 (7.526228) printed above it: it counts as returning
        // then (times never go backwards), within the context after it.
        let mut r = Recorder::new(100_000, 0.15, 1000, false, None);
        assert_eq!(
            feed(&mut r, PROC_510),
            "# tracer: function_graph\n\
             #\n\
             #M  CPU  TASK/PID         DURATION                  FUNCTION CALLS\n\
             #|  |     |    |           |   |                     |   |   |   |\n\
             -  0)   usleep-109   | # 1531.822 us |  do_nanosleep();\n\
             *  0)   sleep-110    | @ 100961.9 us |  do_nanosleep();\n\
             *  0)   sleep-111    | @ 200841.9 us |  do_nanosleep();\n\
             -  1)   usleep-112   | * 50932.55 us |  do_nanosleep();\n"
        );
        // 7.x: the 315.7 ms sleep (8.562038) with the 1.5 ms call that returned 0.03 s
        // later; the 5.2 and 1.4 ms ones 0.36 s before are out of a 0.1 s context.
        let mut r = Recorder::new(300_000, 0.1, 1000, false, Some(1));
        assert_eq!(
            feed(&mut r, PIPE_7),
            "*  1) @ 315663.8 us |  } /* do_nanosleep */\n\
             -  0) # 1485.879 us |  } /* do_nanosleep */\n"
        );
        assert!(
            r.summary().ends_with("; stopped after 1 (--count)"),
            "{}",
            r.summary()
        );
    }

    /// A synthetic burst in the kernel's format: 1500 calls of 2 us, 1 ms apart, then a
    /// 150 ms one; a 10 s context held in a window of 1000 rows.
    #[test]
    fn a_burst_is_bounded_and_the_truncation_said() {
        let mut text = String::new();
        for i in 0..1500u64 {
            let t = 1_000_000 + i * 1000; // us
            text.push_str(&format!(
                "{:>5}.{:06} |   0)   2.000 us    |  do_nanosleep();\n",
                t / 1_000_000,
                t % 1_000_000
            ));
        }
        text.push_str("    2.700000 |   0) @ 150000.0 us |  } /* do_nanosleep */\n");
        let mut r = Recorder::new(100_000, 10.0, 1000, false, None);
        let mut out = Vec::new();
        let mut peak = (0, 0);
        for line in text.split_inclusive('\n') {
            r.line(line.as_bytes(), &mut out);
            peak = (
                peak.0.max(r.window.held()),
                peak.1.max(r.window.held_bytes()),
            );
        }
        assert!(peak.0 <= 1000 && peak.1 <= context_bytes(1000), "{peak:?}");
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 1000 + 1);
        assert_eq!(
            lines[0],
            "# context truncated: calls that returned from 1.000002 to 1.499002 s are not shown (500 calls dropped: the window holds at most 1000, --context-rows)"
        );
        assert_eq!(lines[1], "-  0)   2.000 us    |  do_nanosleep();");
        assert_eq!(lines[1001], "*  0) @ 150000.0 us |  } /* do_nanosleep */");
        assert_eq!(
            r.summary(),
            "funcslower: 1501 calls seen, 1 outliers (>= 100000 us), 1000 context rows; context truncated 1 times (500 calls dropped from the full window, --context-rows 1000)"
        );
        assert!(context_bytes(DEFAULT_CONTEXT_ROWS) <= 16_000_000);
    }

    #[test]
    fn a_loss_in_a_context_is_said_and_count_ends_the_run() {
        let text = "    1.000000 |   0) # 1000.000 us |  } /* do_nanosleep */\n\
                    CPU:0 [LOST 7 EVENTS]\n\
                        1.200000 |   0) @ 200000.0 us |  } /* do_nanosleep */\n\
                    CPU:0 [LOST 3 EVENTS]\n\
                        1.250000 |   0) # 1000.000 us |  } /* do_nanosleep */\n";
        let mut r = Recorder::new(100_000, 0.5, 1000, false, Some(1));
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            r.line(line.as_bytes(), &mut out);
        }
        assert!(
            !r.tick(false, &mut out),
            "the context after the outlier is not over"
        );
        r.line(
            b"    1.800000 |   0) # 1000.000 us |  } /* do_nanosleep */\n",
            &mut out,
        );
        assert!(r.tick(false, &mut out), "past the context: the run can end");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# events lost from 1.000000 to 1.200000 s: calls of this context that returned then may be missing\n\
             -  0) # 1000.000 us |  } /* do_nanosleep */\n\
             *  0) @ 200000.0 us |  } /* do_nanosleep */\n\
             # events lost from 1.200000 to 1.250000 s: calls of this context that returned then may be missing\n\
             -  0) # 1000.000 us |  } /* do_nanosleep */\n"
        );
    }
}
