//! tcpretrans: trace TCP retransmits, with addresses, ports and TCP state.
//!
//! A port of perf-tools' `tcpretrans` with the same options, header line and columns.
//! Where the original put a kprobe on `tcp_retransmit_skb()` and looked sockets up in
//! `/proc/net/tcp` once a second (IPv4 only, x86 registers, sockets that closed meanwhile
//! shown as `-`), this reads the `tcp:tcp_retransmit_skb` tracepoint, which carries the
//! addresses, ports and state itself (IPv4 and IPv6, every network namespace), decoded
//! by the running kernel's format file from the raw ring buffer of a private instance.
//! `-l` tells tail loss probes from other retransmits by the kernel stack of each
//! retransmit (no kernel has a tail-loss-probe tracepoint); `-s` prints those stacks.

pub mod decode;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use std::io::Write;
use std::time::Duration;

use decode::{endpoint, state_name, RetransLayout, Retransmit, StackLayout};
use perf_tools_core::check::{Report, Status};
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::format::EventFormat;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::session::{EndOfRun, RunAccount, Session, StreamEnd};
use perf_tools_ftrace::tracefs::{self, Tracefs};

/// The tool's name: its instance is `instances/tcpretrans-<pid>`.
pub const TOOL: &str = "tcpretrans";

/// The kernel function whose presence in a retransmit's stack marks a tail loss probe.
pub const TLP_FUNCTION: &str = "tcp_send_loss_probe";

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tcpretrans",
    version,
    about = "Trace TCP retransmits, showing addresses, ports and TCP state",
    long_about = None,
    after_help = "Examples:\n  tcpretrans                # trace TCP retransmits\n  tcpretrans -l             # also tell tail loss probes (L>) from other retransmits (R>)\n  tcpretrans -s             # print the kernel stack of each retransmit\n\nSee the tcpretrans(8) man page for more."
)]
pub struct Args {
    /// Mark retransmits sent by a TCP tail loss probe as L> (found in each retransmit's kernel stack)
    #[arg(short = 'l')]
    pub tlp: bool,
    /// Print the kernel stack of each retransmit
    #[arg(short = 's')]
    pub stacks: bool,
    /// Trace for this many seconds, then end as on Ctrl-C (default: until Ctrl-C)
    #[arg(long, value_name = "seconds", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 1024, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
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

/// The column header line, as the original prints it.
pub fn header() -> String {
    format!(
        "{:<8} {:<6} {:<20} -- {:<20} {:<12}\n",
        "TIME", "PID", "LADDR:LPORT", "RADDR:RPORT", "STATE"
    )
}

/// One row, in the original's layout (`%-8s %-6s %-20s %s> %-20s %-12s`). Every column
/// comes from the kernel (numbers, addresses, fixed names): nothing to escape.
pub fn row(out: &mut Vec<u8>, time: &str, r: &Retransmit, kind: u8) {
    let state = r.state.map_or("-".into(), state_name);
    let _ = writeln!(
        out,
        "{:<8} {:<6} {:<20} {}> {:<20} {:<12}",
        time,
        r.pid,
        endpoint(&r.local),
        kind as char,
        endpoint(&r.remote),
        state
    );
}

/// What the event format files of this kernel give: the retransmit layout, and the stack
/// layout when stacks are needed.
struct Layouts {
    retrans: RetransLayout,
    stack: Option<StackLayout>,
}

fn read_format(tracefs: &Tracefs, rel: &str) -> Result<EventFormat> {
    let path = tracefs.path(rel);
    let text = tracefs::read_file(&path).with_context(|| format!("reading {}", path.display()))?;
    EventFormat::parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The fix when the tracepoint is missing.
const NO_TRACEPOINT_FIX: &str = "use Linux 4.15+ built with CONFIG_INET=y and CONFIG_EVENT_TRACING=y (the tcp:tcp_retransmit_skb tracepoint); on older kernels use the original perf-tools tcpretrans (kprobes)";

fn layouts(tracefs: &Tracefs, stacks: bool) -> Result<Layouts> {
    if !tracefs.has_event("tcp", "tcp_retransmit_skb") {
        return Err(anyhow!(
            "this kernel has no tcp:tcp_retransmit_skb tracepoint ({} is missing); {NO_TRACEPOINT_FIX}",
            tracefs.path("events/tcp/tcp_retransmit_skb").display()
        ));
    }
    let retrans = RetransLayout::new(&read_format(tracefs, "events/tcp/tcp_retransmit_skb/format")?)
        .context("this kernel's tcp_retransmit_skb format cannot be decoded (report it as a bug of perf-tools-rs, with the format file)")?;
    let stack = if stacks {
        Some(
            StackLayout::new(&read_format(tracefs, "events/ftrace/kernel_stack/format")?)
                .context("kernel stack records cannot be decoded (-s and -l need them); run without -s and -l")?,
        )
    } else {
        None
    };
    Ok(Layouts { retrans, stack })
}

/// A retransmit read from the kernel, waiting for its stack (with `-s`/`-l`) and for
/// its turn in time order.
#[derive(Debug, Clone)]
struct Held {
    ev: Retransmit,
    /// Return addresses, innermost first (`None`: no stack record came with it).
    frames: Option<Vec<u64>>,
}

/// The per-event path: decode, pair each retransmit with the stack record the kernel
/// writes right after it on the same CPU, order across CPUs.
struct Pipeline {
    layouts: Layouts,
    merger: Merger<Held>,
    /// Per CPU: the last retransmit read, until the next record of that CPU tells
    /// whether a stack came with it.
    waiting: Vec<Option<(u64, Held)>>,
    undecoded: u64,
    orphan_stacks: u64,
    /// Retransmits that went on without a stack record.
    stackless: u64,
    /// The watermark of the last round of the current drain.
    last_watermark: u64,
}

impl Pipeline {
    fn slot(&mut self, cpu: u32) -> &mut Option<(u64, Held)> {
        let cpu = cpu as usize;
        if cpu >= self.waiting.len() {
            self.waiting.resize(cpu + 1, None);
        }
        &mut self.waiting[cpu]
    }

    /// Moves CPU `cpu`'s waiting retransmit (if any) to the merge, without a stack.
    fn settle(&mut self, cpu: u32) {
        if let Some((ts, h)) = self.slot(cpu).take() {
            self.stackless += 1;
            self.merger.push(cpu as usize, ts, h);
        }
    }

    fn push(&mut self, cpu: u32, ts: u64, p: &[u8]) {
        let Some(id) = p.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            self.undecoded += 1;
            return;
        };
        if id == self.layouts.retrans.id {
            let Some(ev) = self.layouts.retrans.decode(p) else {
                self.undecoded += 1;
                return;
            };
            self.settle(cpu);
            let h = Held { ev, frames: None };
            if self.layouts.stack.is_some() {
                *self.slot(cpu) = Some((ts, h));
            } else {
                self.merger.push(cpu as usize, ts, h);
            }
        } else if let Some(stack) = self.layouts.stack.as_ref().filter(|s| s.id == id) {
            let pid = stack.pid(p);
            let mut frames = Vec::new();
            stack.frames(p, &mut frames);
            match self.slot(cpu).take() {
                Some((ts, mut h)) if Some(h.ev.pid) == pid => {
                    h.frames = Some(frames);
                    self.merger.push(cpu as usize, ts, h);
                }
                other => {
                    *self.slot(cpu) = other;
                    self.settle(cpu);
                    self.orphan_stacks += 1;
                }
            }
        } else {
            self.settle(cpu);
            self.undecoded += 1;
        }
    }

    /// Events up to this time may be released: the oldest retransmit still waiting for
    /// its stack holds the rest back.
    fn hold(&self, watermark: u64) -> u64 {
        self.waiting
            .iter()
            .flatten()
            .map(|(ts, _)| ts.saturating_sub(1))
            .fold(watermark, u64::min)
    }

    /// After a whole drain (every CPU read up to the present): a retransmit still
    /// waiting that was recorded more than `patience` before `clock` gets no stack (its
    /// stack record was lost); it goes on without one. Not between the rounds of a
    /// drain: there, an old retransmit's stack may be in the CPU's next page.
    fn expire(&mut self, clock: u64, patience: u64) {
        for cpu in 0..self.waiting.len() {
            if matches!(&self.waiting[cpu], Some((ts, _)) if ts.saturating_add(patience) < clock) {
                self.settle(cpu as u32);
            }
        }
    }

    fn settle_all(&mut self) {
        for cpu in 0..self.waiting.len() {
            self.settle(cpu as u32);
        }
    }
}

/// Turns event timestamps (CLOCK_MONOTONIC) into the wall-clock `HH:MM:SS` of the TIME
/// column, in local time as the original.
struct WallClock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns.
    offset: i128,
    last: Option<(u64, String)>,
}

impl WallClock {
    fn new() -> WallClock {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        WallClock {
            offset: real - perf_tools_core::clock::monotonic_ns() as i128,
            last: None,
        }
    }

    fn time(&mut self, mono_ns: u64) -> &str {
        let ns = mono_ns as i128 + self.offset;
        let secs = (ns.div_euclid(1_000_000_000)) as u64;
        if self.last.as_ref().is_none_or(|(s, _)| *s != secs) {
            let text = chrono::DateTime::from_timestamp(secs as i64, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| "-".to_string());
            self.last = Some((secs, text));
        }
        self.last.as_ref().map_or("-", |(_, t)| t.as_str())
    }
}

/// `RetransSegs` of `/proc/net/snmp`: segments this network namespace retransmitted.
pub fn retrans_segs() -> Option<u64> {
    parse_retrans_segs(&std::fs::read_to_string("/proc/net/snmp").ok()?)
}

/// The `RetransSegs` counter from the text of `/proc/net/snmp`.
pub fn parse_retrans_segs(text: &str) -> Option<u64> {
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let names = tcp.next()?;
    let values = tcp.next()?;
    let i = names.split_whitespace().position(|n| n == "RetransSegs")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Kernel symbols for `-s` and `-l`, with the reason they cannot serve `-l`.
fn symbols(args: &Args) -> Result<Option<perf_tools_ftrace::probe::render::Symbols>> {
    if !args.stacks && !args.tlp {
        return Ok(None);
    }
    let syms = perf_tools_ftrace::probe::render::Symbols::load();
    if args.tlp {
        if syms.is_empty() {
            return Err(anyhow!("-l needs kernel symbol addresses to find {TLP_FUNCTION} in each retransmit's stack, and /proc/kallsyms shows none (kernel.kptr_restrict=2, or not root); fix: run as root with `sysctl kernel.kptr_restrict=1`, or run without -l"));
        }
        if !tlp_known(&syms) {
            return Err(anyhow!("-l: this kernel has no function {TLP_FUNCTION} in /proc/kallsyms (tail loss probes came in Linux 3.10); run without -l"));
        }
    } else if syms.is_empty() {
        eprintln!("WARNING: /proc/kallsyms shows no addresses (kernel.kptr_restrict=2?): stack frames print as hex addresses; fix: sysctl kernel.kptr_restrict=1");
    }
    Ok(Some(syms))
}

/// True if `/proc/kallsyms` (as loaded) has the tail-loss-probe function.
fn tlp_known(syms: &perf_tools_ftrace::probe::render::Symbols) -> bool {
    // The symbol table is by address; its names are searched once, here.
    std::fs::read_to_string("/proc/kallsyms")
        .ok()
        .and_then(|t| {
            t.lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    let (a, _, n) = (it.next()?, it.next()?, it.next()?);
                    (n == TLP_FUNCTION).then(|| u64::from_str_radix(a, 16).ok())?
                })
                .next()
        })
        .and_then(|a| syms.lookup(a))
        .is_some_and(|(n, ..)| n == TLP_FUNCTION)
}

/// Is this stack a tail loss probe's?
fn is_tlp(syms: &perf_tools_ftrace::probe::render::Symbols, frames: &[u64]) -> bool {
    frames
        .iter()
        .any(|&a| syms.lookup(a).is_some_and(|(n, ..)| n == TLP_FUNCTION))
}

/// What tcpretrans would use on this host and whether it can run (`--check`, and its
/// row in perf-tools-doctor): the tracepoint and its layout, stack records and kernel
/// symbols for `-s`/`-l`, verified in a private instance removed before this returns.
pub fn check() -> Result<Report> {
    use perf_tools_ftrace::check as fc;
    let mut report = Report::new(TOOL);
    let Some(tracefs) = fc::tracefs(&mut report) else {
        return Ok(report);
    };
    let Some(inst) = fc::instance(&tracefs, TOOL, &mut report) else {
        return Ok(report);
    };
    let dir = inst.dir().to_path_buf();
    let ev = fc::event(
        &mut report,
        &dir,
        "tcp",
        "tcp_retransmit_skb",
        true,
        NO_TRACEPOINT_FIX,
    );
    let mut decodes = false;
    if let Some(f) = &ev {
        match RetransLayout::new(f) {
            Ok(l) => {
                decodes = true;
                report.item("layout", Status::Yes, l.describe(), "", true);
            }
            Err(e) => {
                report.item(
                    "layout",
                    Status::No,
                    format!("{e:#}"),
                    "report this kernel's tcp_retransmit_skb format file as a bug of perf-tools-rs",
                    true,
                );
            }
        }
    }
    let stack = fc::event(
        &mut report,
        tracefs.root(),
        "ftrace",
        "kernel_stack",
        false,
        "none: -s and -l are unavailable without kernel stack records (CONFIG_STACKTRACE)",
    )
    .map(|f| StackLayout::new(&f));
    let stacks_ok = matches!(stack, Some(Ok(_)));
    if let Some(Err(e)) = &stack {
        report.item(
            "stack records",
            Status::Degraded,
            format!("{e:#}; -s and -l are unavailable"),
            "report this kernel's kernel_stack format file as a bug of perf-tools-rs",
            false,
        );
    }
    let syms = perf_tools_ftrace::probe::render::Symbols::load();
    let tlp = !syms.is_empty() && tlp_known(&syms);
    report.item(
        "kernel symbols",
        if tlp { Status::Yes } else { Status::Degraded },
        if syms.is_empty() {
            "/proc/kallsyms shows no addresses: -l is unavailable, -s prints hex addresses"
                .to_string()
        } else if tlp {
            format!(
                "{} code symbols, {TLP_FUNCTION} among them (for -l)",
                syms.len()
            )
        } else {
            format!("no {TLP_FUNCTION} in /proc/kallsyms: -l is unavailable")
        },
        if syms.is_empty() {
            "run as root with sysctl kernel.kptr_restrict=1 (or 0)"
        } else {
            ""
        },
        false,
    );
    if decodes {
        if stacks_ok {
            if let Err(e) = inst.write("options/stacktrace", "1") {
                report.item(
                    "stack option",
                    Status::Degraded,
                    format!("{e:#}; -s and -l are unavailable"),
                    "use a kernel built with CONFIG_STACKTRACE=y",
                    false,
                );
            }
        }
        fc::verify_recording(&inst, &[("tcp", "tcp_retransmit_skb")], &mut report);
    }
    inst.remove()?;
    report.uses = if report.verdict() == Status::No {
        "tcp:tcp_retransmit_skb unavailable".to_string()
    } else if stacks_ok && tlp {
        "tcp:tcp_retransmit_skb in a private instance (kernel stacks for -s and -l)".to_string()
    } else {
        "tcp:tcp_retransmit_skb in a private instance (no -l)".to_string()
    };
    Ok(report)
}

/// Runs tcpretrans.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let want_stacks = args.stacks || args.tlp;
    // Everything that can be refused is checked before any kernel state is created.
    let layouts = layouts(&tracefs, want_stacks)?;
    let mut syms = symbols(&args)?;

    let inst = cleanup::start_instance(&tracefs, TOOL)?;
    inst.ensure("trace_clock", "mono")?;
    inst.ensure("buffer_size_kb", &args.buffer_kb.to_string())?;
    let _ = inst.ensure("buffer_percent", "25");
    if want_stacks {
        inst.write("options/stacktrace", "1").context(
            "turning on kernel stack records (-s, -l); the kernel needs CONFIG_STACKTRACE=y",
        )?;
    }
    inst.enable_event("tcp", "tcp_retransmit_skb")?;
    inst.set_tracing_on(true)?;
    let mut session = Session::start(inst)?;
    let segs_before = retrans_segs();

    let mut out = Output::stdout();
    out.buf.extend_from_slice(header().as_bytes());
    out.flush()?;

    let mut pipe = Pipeline {
        layouts,
        merger: Merger::new(),
        waiting: Vec::new(),
        undecoded: 0,
        orphan_stacks: 0,
        stackless: 0,
        last_watermark: 0,
    };
    let mut clock = WallClock::new();
    let mut lost_reported = 0u64;
    let (mut rows, mut tlps, mut undecided) = (0u64, 0u64, 0u64);
    let mut frame = Vec::new();
    let mut print = |out: &mut Vec<u8>, ts: u64, h: &mut Held| {
        let kind = match (&h.frames, &syms) {
            (Some(f), Some(s)) if args.tlp && is_tlp(s, f) => b'L',
            (None, _) if args.tlp => {
                undecided += 1;
                b'R'
            }
            _ => b'R',
        };
        tlps += u64::from(kind == b'L');
        rows += 1;
        row(out, clock.time(ts), &h.ev, kind);
        if args.stacks {
            match (&h.frames, syms.as_mut()) {
                (Some(frames), Some(s)) => {
                    for &a in frames {
                        frame.clear();
                        s.render(&mut frame, a, false);
                        out.extend_from_slice(b" => ");
                        out.extend_from_slice(&frame);
                        out.push(b'\n');
                    }
                }
                _ => out.extend_from_slice(b" => (no stack recorded)\n"),
            }
        }
    };
    let end = session.stream(
        &shutdown,
        args.duration,
        Duration::from_millis(200),
        |reader, _, batch| {
            let stats = reader.drain_rounds(
                batch.clock,
                &mut pipe,
                |p, cpu, ts, payload| p.push(cpu, ts, payload),
                |p, gap| p.settle(gap.cpu),
                |p, watermark| {
                    p.last_watermark = watermark;
                    let w = p.hold(watermark);
                    p.merger.release(w, |ts, h| print(&mut out.buf, ts, h));
                },
            );
            pipe.expire(batch.clock, 500_000_000);
            let w = pipe.hold(pipe.last_watermark);
            pipe.merger.release(w, |ts, h| print(&mut out.buf, ts, h));
            if batch.last {
                pipe.settle_all();
                pipe.merger
                    .release(u64::MAX, |ts, h| print(&mut out.buf, ts, h));
            }
            if stats.gaps > 0 {
                let reported = (lost_reported + stats.missed).max(reader.lost_events());
                if reported > lost_reported {
                    eprintln!(
                        "WARNING: {} events lost: the kernel buffer overflowed (try --buffer-kb larger than {}); retransmits may be missing",
                        reported - lost_reported,
                        args.buffer_kb
                    );
                }
                lost_reported = reported;
            }
            out.flush()?;
            Ok(())
        },
    )?;
    if end == StreamEnd::OutputClosed {
        return session.finish();
    }
    if std::env::var_os("PT_DEBUG").is_some() {
        eprintln!(
            "debug: rows {rows} undecoded {} stacks without a retransmit {} retransmits without a stack {}",
            pipe.undecoded, pipe.orphan_stacks, pipe.stackless
        );
    }
    let mut account = RunAccount::new(TOOL, "rows");
    account.rows = rows;
    if let (Some(a), Some(b)) = (segs_before, retrans_segs()) {
        account.seen.push((
            b.saturating_sub(a),
            "TCP segments retransmitted in tcpretrans's own network namespace (RetransSegs of /proc/net/snmp; rows cover every namespace)".to_string(),
        ));
    }
    if pipe.undecoded > 0 {
        account.notes.push(format!(
            "{} records not decoded",
            perf_tools_ftrace::session::thousands(pipe.undecoded)
        ));
    }
    session.end_run(
        &mut out,
        EndOfRun {
            lost_reported,
            note_on_stderr: false,
            loss_effect: "rows may be missing".to_string(),
            account: Some(account),
        },
        || Ok(()),
    )?;
    let stackless = pipe.stackless;
    if stackless > 0 && want_stacks {
        eprintln!(
            "note: {stackless} retransmits came without a kernel stack record ({} stack records came without a retransmit){}",
            pipe.orphan_stacks,
            if undecided > 0 {
                ": shown as R>, though some may have been tail loss probes"
            } else {
                ""
            }
        );
    }
    if args.tlp {
        eprintln!("note: {tlps} of {rows} retransmits were tail loss probes (L>)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn header_and_rows_match_the_originals_layout() {
        assert_eq!(
            header(),
            "TIME     PID    LADDR:LPORT          -- RADDR:RPORT          STATE       \n"
        );
        let mut v = Vec::new();
        let r = Retransmit {
            pid: 3375,
            state: Some(1),
            local: "10.150.18.225:53874".parse::<SocketAddr>().unwrap(),
            remote: "10.105.152.3:6001".parse::<SocketAddr>().unwrap(),
        };
        row(&mut v, "05:16:44", &r, b'R');
        let r6 = Retransmit {
            pid: 0,
            state: None,
            local: "[::1]:40000".parse::<SocketAddr>().unwrap(),
            remote: "[::1]:9".parse::<SocketAddr>().unwrap(),
        };
        row(&mut v, "05:16:45", &r6, b'L');
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "05:16:44 3375   10.150.18.225:53874  R> 10.105.152.3:6001    ESTABLISHED \n\
             05:16:45 0      [::1]:40000          L> [::1]:9              -           \n"
        );
    }

    fn pipeline() -> (Pipeline, Vec<u8>, Vec<u8>) {
        let fmt = |name: &str| {
            EventFormat::parse(
                &std::fs::read_to_string(format!(
                    "{}/../../tests/fixtures/formats/6.18/{name}",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap(),
            )
            .unwrap()
        };
        let (rf, sf) = (fmt("tcp_retransmit_skb"), fmt("kernel_stack"));
        let mut ev = vec![0u8; 80];
        ev[..2].copy_from_slice(&rf.id.to_ne_bytes());
        let fam = rf.field("family").unwrap().offset;
        ev[fam..fam + 2].copy_from_slice(&2u16.to_ne_bytes());
        let mut st = vec![0u8; 16 + 3 * 8];
        st[..2].copy_from_slice(&sf.id.to_ne_bytes());
        st[8..12].copy_from_slice(&3i32.to_ne_bytes());
        let p = Pipeline {
            layouts: Layouts {
                retrans: RetransLayout::new(&rf).unwrap(),
                stack: Some(StackLayout::new(&sf).unwrap()),
            },
            merger: Merger::new(),
            waiting: Vec::new(),
            undecoded: 0,
            orphan_stacks: 0,
            stackless: 0,
            last_watermark: 0,
        };
        (p, ev, st)
    }

    fn released(p: &mut Pipeline, w: u64) -> Vec<(u64, bool)> {
        let mut v = Vec::new();
        p.merger
            .release(w, |ts, h| v.push((ts, h.frames.is_some())));
        v
    }

    #[test]
    fn a_stack_in_the_next_page_still_pairs_however_old_the_event() {
        let (mut p, ev, st) = pipeline();
        let sec = 1_000_000_000;
        // Read long after it happened (the reader was starved): the event ends one page...
        p.push(1, 5 * sec, &ev);
        let w = p.hold(u64::MAX);
        assert!(w < 5 * sec, "held back while waiting for its stack");
        assert!(released(&mut p, w).is_empty());
        // ...its stack starts the next, read in the next round of the same drain.
        p.push(1, 5 * sec + 10, &st);
        let w = p.hold(u64::MAX);
        assert_eq!(released(&mut p, w), [(5 * sec, true)]);
        assert_eq!(p.orphan_stacks, 0);
        // After a whole drain, a retransmit whose stack never came goes on without one;
        // a recent one keeps waiting.
        p.push(0, 6 * sec, &ev);
        p.push(1, 7 * sec, &ev);
        p.expire(7 * sec + sec / 10, sec / 2);
        let w = p.hold(u64::MAX);
        assert_eq!(released(&mut p, w), [(6 * sec, false)]);
        assert_eq!(p.stackless, 1);
        // A stack record with no retransmit before it is counted, not paired.
        p.push(0, 8 * sec, &st);
        assert_eq!(p.orphan_stacks, 1);
        p.settle_all();
        assert_eq!(released(&mut p, u64::MAX), [(7 * sec, false)]);
    }

    #[test]
    fn retrans_segs_is_read_by_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\nTcp: 1 200 120000 -1 10 5 0 0 2 500 600 17 0 3 0\n";
        assert_eq!(parse_retrans_segs(snmp), Some(17));
        assert_eq!(parse_retrans_segs("Tcp: A B\n"), None);
    }

    #[test]
    fn usage_errors_are_rejected_by_the_parser() {
        for argv in [
            &["tcpretrans", "-x"][..],
            &["tcpretrans", "5"],
            &["tcpretrans", "--check", "-l"],
            &["tcpretrans", "--buffer-kb", "1"],
            &["tcpretrans", "--duration", "0"],
            &["tcpretrans", "--duration", "x"],
        ] {
            let e = Args::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
        let a = Args::try_parse_from(["tcpretrans", "-ls"]).unwrap();
        assert!(a.tlp && a.stacks);
    }
}
