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
pub mod scope;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use std::io::Write;
use std::time::Duration;

use decode::{
    endpoint_of, kprobe_fetchargs, state_name, ProbeLayout, RetransDecoder, RetransLayout,
    Retransmit, StackLayout, KPROBE_FUNCTIONS,
};
use perf_tools_core::check::{Report, Status};
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::format::EventFormat;
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::probe::{Probe, Support};
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
    /// Where retransmits come from: the tcp:tcp_retransmit_skb tracepoint, or a kprobe on __tcp_retransmit_skb (verified by a canary; IPv4 addresses, ports and state of every socket, ports and state only of IPv6 ones); auto: the tracepoint where the kernel has it
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub source: SourceArg,
    /// Trace for this many seconds, then end as on Ctrl-C (default: until Ctrl-C)
    #[arg(long, value_name = "seconds", value_parser = perf_tools_core::cli::parse_duration)]
    pub duration: Option<f64>,
    /// Per-CPU kernel buffer size of the private trace instance, in KiB
    #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 1024, value_parser = perf_tools_core::cli::between::<u32>("--buffer-kb", 64, 1_048_576))]
    pub buffer_kb: u32,
    /// Container scope: only retransmits of TCP connections whose sockets a cgroup's
    /// processes hold (matched by addresses and ports, read every 200 ms)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Remove trace instances left behind by killed runs of any tool, then exit
    #[arg(long, exclusive = true)]
    pub cleanup: bool,
    /// Print what this tool would use on this host and why, then exit: 0 if it can run, 1 if not (nothing is left in tracefs)
    #[arg(long, exclusive = true)]
    pub check: bool,
}

/// `--source`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceArg {
    /// The tracepoint where the kernel has it, else the kprobe.
    Auto,
    /// `tcp:tcp_retransmit_skb`.
    Tracepoint,
    /// A kprobe on `__tcp_retransmit_skb` (or `tcp_retransmit_skb`).
    Kprobe,
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
        endpoint_of(r, &r.local),
        kind as char,
        endpoint_of(r, &r.remote),
        state
    );
}

/// What the event format files of this kernel give: the retransmit layout, and the stack
/// layout when stacks are needed.
struct Layouts {
    retrans: RetransDecoder,
    /// Records to pass over without counting them (the kprobe source's canary).
    skip: Option<u16>,
    stack: Option<StackLayout>,
}

fn read_format(tracefs: &Tracefs, rel: &str) -> Result<EventFormat> {
    let path = tracefs.path(rel);
    let text = tracefs::read_file(&path).with_context(|| format!("reading {}", path.display()))?;
    EventFormat::parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The fix when the tracepoint is missing.
const NO_TRACEPOINT_FIX: &str = "use Linux 4.15+ built with CONFIG_INET=y and CONFIG_EVENT_TRACING=y (the tcp:tcp_retransmit_skb tracepoint), or a kernel with kprobes (CONFIG_KPROBE_EVENTS=y) for the kprobe source";

/// The tracepoint's layout, or why it cannot be used.
fn tracepoint_layout(tracefs: &Tracefs) -> Result<RetransLayout> {
    if !tracefs.has_event("tcp", "tcp_retransmit_skb") {
        return Err(anyhow!(
            "this kernel has no tcp:tcp_retransmit_skb tracepoint ({} is missing); {NO_TRACEPOINT_FIX}",
            tracefs.path("events/tcp/tcp_retransmit_skb").display()
        ));
    }
    RetransLayout::new(&read_format(tracefs, "events/tcp/tcp_retransmit_skb/format")?)
        .context("this kernel's tcp_retransmit_skb format cannot be decoded (report it as a bug of perf-tools-rs, with the format file)")
}

/// The kprobe source, set up: its probes (removed when dropped, after the instance)
/// and the layout of their records.
struct KprobeSource {
    /// The retransmit probe, then the canary probe.
    probes: Vec<Probe>,
    function: &'static str,
    layout: ProbeLayout,
    canary: ProbeLayout,
}

/// The kernel function whose first argument is a `struct sock *` that the canary can
/// make the kernel pass: a send on a TCP socket.
const CANARY_FUNCTION: &str = "tcp_sendmsg";

/// The fetch form of a function's first argument on this kernel and architecture.
fn first_arg(support: &Support) -> Result<&'static str> {
    if support.args {
        return Ok("$arg1");
    }
    match std::env::consts::ARCH {
        "x86_64" => Ok("%di"),
        "aarch64" => Ok("%x0"),
        arch => Err(anyhow!("this kernel's kprobes have no $arg1 (Linux 4.20+), and tcpretrans does not know the first-argument register of {arch}")),
    }
}

/// Creates the kprobe source's probes (before any instance, so that they outlive it).
fn kprobe_source(tracefs: &Tracefs) -> Result<KprobeSource> {
    let support = perf_tools_ftrace::probe::require_kprobes(tracefs)?;
    let arg = first_arg(&support)?;
    let fetch = kprobe_fetchargs(arg);
    let control = support.kprobe_control();
    let mut last = None;
    let mut main = None;
    for f in KPROBE_FUNCTIONS {
        match Probe::create(
            tracefs,
            control,
            "p",
            "tcpretrans_retransmit",
            &format!("{f} {fetch}"),
        ) {
            Ok(p) => {
                main = Some((f, p));
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some((function, main)) = main else {
        let e = last.unwrap_or_else(|| anyhow!("no function to probe"));
        return Err(e.context(format!(
            "creating a kprobe on {} (neither can be probed on this kernel)",
            KPROBE_FUNCTIONS.join(" or ")
        )));
    };
    let canary = Probe::create(
        tracefs,
        control,
        "p",
        "tcpretrans_canary",
        &format!("{CANARY_FUNCTION} {fetch}"),
    )
    .with_context(|| format!("creating the canary kprobe on {CANARY_FUNCTION}"))?;
    let layout = ProbeLayout::new(&EventFormat::parse(&main.format(tracefs)?)?)?;
    let canary_layout = ProbeLayout::new(&EventFormat::parse(&canary.format(tracefs)?)?)?;
    Ok(KprobeSource {
        probes: vec![main, canary],
        function,
        layout,
        canary: canary_layout,
    })
}

impl KprobeSource {
    fn describe(&self) -> String {
        let tlp = if self.function == KPROBE_FUNCTIONS[0] {
            ""
        } else {
            "; tail loss probes are not seen (they do not call tcp_retransmit_skb)"
        };
        format!(
            "kprobe on {} reading the head of struct sock_common (verified with a canary on {CANARY_FUNCTION}): IPv4 addresses, ports and state; IPv6 sockets show ports and state, addresses as -; every attempt, also those the kernel then fails to send{tlp}",
            self.function
        )
    }

    /// The canary: a send on a loopback TCP connection of this process, seen through
    /// the same fetches on `tcp_sendmsg`, must show exactly its addresses, ports,
    /// family and state. Leaves the canary probe disabled and the instance's tracing off.
    fn verify(&self, inst: &Instance) -> Result<()> {
        use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
        let group = self.probes[1].group().to_string();
        let enable = format!("events/{group}/{}/enable", self.probes[1].event());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("the kprobe source's canary needs a TCP connection on 127.0.0.1 (is the loopback interface up? `ip link set lo up`)")?;
        let server: SocketAddr = listener.local_addr()?;
        let mut client = TcpStream::connect(server)
            .context("connecting the canary's TCP connection on 127.0.0.1")?;
        let (_accepted, _) = listener.accept()?;
        let local = client.local_addr()?;
        let mut reader = perf_tools_ftrace::reader::RawReader::open(inst)?;
        inst.write(&enable, "1")?;
        inst.write("tracing_on", "1")?;
        client.write_all(b"x")?;
        let want = (local, server, Some(1));
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut found = false;
        while !found && std::time::Instant::now() < deadline {
            reader.drain(|_, _, p| {
                if p.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) != Some(self.canary.id) {
                    return;
                }
                if let Some(r) = self.canary.decode(p) {
                    if (r.local, r.remote, r.state) == want && r.addrs_known {
                        found = true;
                    } else if seen.len() < 3 {
                        seen.push(r);
                    }
                }
            });
            if !found {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        inst.write("tracing_on", "0")?;
        inst.write(&enable, "0")?;
        if !found {
            bail!(
                "the kprobe source's canary failed: a send from {local} to {server} on this process's own TCP connection did not come back through the fetches of struct sock_common on {CANARY_FUNCTION} (seen instead: {}); this kernel lays struct sock_common out otherwise, so the kprobe source would show wrong addresses",
                if seen.is_empty() {
                    "nothing".to_string()
                } else {
                    seen.iter()
                        .map(|r| format!("{}->{} state {:?}", r.local, r.remote, r.state))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
        Ok(())
    }
}

/// Which source a run uses, and its kprobes if it is the kprobe.
enum Source {
    Tracepoint(Box<RetransLayout>),
    Kprobe(Box<KprobeSource>),
}

/// Picks the source by what this kernel has: the tracepoint where it exists and its
/// layout decodes (unless `--source kprobe`), else the kprobe source.
fn pick_source(tracefs: &Tracefs, want: SourceArg) -> Result<Source> {
    match want {
        SourceArg::Tracepoint => {
            tracepoint_layout(tracefs).map(|l| Source::Tracepoint(Box::new(l)))
        }
        SourceArg::Kprobe => kprobe_source(tracefs).map(|k| Source::Kprobe(Box::new(k))),
        SourceArg::Auto => match tracepoint_layout(tracefs) {
            Ok(l) => Ok(Source::Tracepoint(Box::new(l))),
            Err(tp) => kprobe_source(tracefs)
                .map(|k| Source::Kprobe(Box::new(k)))
                .map_err(|kp| anyhow!("{tp:#}; and the kprobe fallback is unavailable: {kp:#}")),
        },
    }
}

fn layouts(tracefs: &Tracefs, source: &Source, stacks: bool) -> Result<Layouts> {
    let (retrans, skip) = match source {
        Source::Tracepoint(l) => (RetransDecoder::Tracepoint((**l).clone()), None),
        Source::Kprobe(k) => (RetransDecoder::Kprobe(k.layout.clone()), Some(k.canary.id)),
    };
    let stack = if stacks {
        Some(
            StackLayout::new(&read_format(tracefs, "events/ftrace/kernel_stack/format")?)
                .context("kernel stack records cannot be decoded (-s and -l need them); run without -s and -l")?,
        )
    } else {
        None
    };
    Ok(Layouts {
        retrans,
        skip,
        stack,
    })
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
/// writes after it on the same CPU, order across CPUs.
///
/// The kernel commits a retransmit's record, then walks the stack and commits the stack
/// record; an interrupt in between may send another retransmit on the same CPU (a
/// timer's, in a softirq run on the interrupt's exit, while a process-context
/// retransmit, e.g. from the socket backlog, waits for its stack). Its records then sit
/// between the first retransmit and that one's stack: A, B, stack of B, stack of A. So
/// each CPU keeps its retransmits that still wait for a stack, oldest first; a stack
/// record belongs to the newest one waiting (the innermost), and retransmits go to the
/// merge oldest first, once they have their stack or are given up on.
struct Pipeline {
    layouts: Layouts,
    merger: Merger<Held>,
    /// Per CPU: retransmits read, oldest first, not yet passed to the merge; `true` once
    /// settled (stack attached, or given up on).
    waiting: Vec<std::collections::VecDeque<(u64, Held, bool)>>,
    undecoded: u64,
    orphan_stacks: u64,
    /// Retransmits that went on without a stack record.
    stackless: u64,
    /// The watermark of the last round of the current drain.
    last_watermark: u64,
}

impl Pipeline {
    fn queue(&mut self, cpu: u32) -> &mut std::collections::VecDeque<(u64, Held, bool)> {
        let cpu = cpu as usize;
        if cpu >= self.waiting.len() {
            self.waiting.resize_with(cpu + 1, Default::default);
        }
        &mut self.waiting[cpu]
    }

    /// Passes CPU `cpu`'s settled retransmits at the front of its queue to the merge.
    fn flush(&mut self, cpu: u32) {
        let c = cpu as usize;
        while matches!(
            self.waiting.get(c).and_then(|q| q.front()),
            Some((_, _, true))
        ) {
            if let Some((ts, h, _)) = self.waiting[c].pop_front() {
                self.merger.push(c, ts, h);
            }
        }
    }

    /// Gives up on CPU `cpu`'s retransmits recorded before `before` that still wait for
    /// a stack (all, with `u64::MAX`): they go on without one.
    fn settle_before(&mut self, cpu: u32, before: u64) {
        let mut n = 0;
        for (ts, _, done) in self.queue(cpu).iter_mut() {
            if !*done && *ts < before {
                *done = true;
                n += 1;
            }
        }
        self.stackless += n;
        self.flush(cpu);
    }

    /// Gives up on all of CPU `cpu`'s retransmits still waiting for a stack.
    fn settle(&mut self, cpu: u32) {
        self.settle_before(cpu, u64::MAX);
    }

    fn push(&mut self, cpu: u32, ts: u64, p: &[u8]) {
        let Some(id) = p.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            self.undecoded += 1;
            return;
        };
        if Some(id) == self.layouts.skip {
            return;
        }
        if id == self.layouts.retrans.id() {
            let Some(ev) = self.layouts.retrans.decode(p) else {
                self.undecoded += 1;
                return;
            };
            let h = Held { ev, frames: None };
            let waits = self.layouts.stack.is_some();
            self.queue(cpu).push_back((ts, h, !waits));
            self.flush(cpu);
        } else if let Some(stack) = self.layouts.stack.as_ref().filter(|s| s.id == id) {
            let pid = stack.pid(p);
            let mut frames = Vec::new();
            stack.frames(p, &mut frames);
            // The newest retransmit of this CPU still waiting: the innermost.
            match self.queue(cpu).iter_mut().rev().find(|(_, _, done)| !*done) {
                Some((_, h, done)) if Some(h.ev.pid) == pid => {
                    h.frames = Some(frames);
                    *done = true;
                }
                _ => self.orphan_stacks += 1,
            }
            self.flush(cpu);
        } else {
            self.undecoded += 1;
        }
    }

    /// Events up to this time may be released: the oldest retransmit not yet passed to
    /// the merge holds the rest back.
    fn hold(&self, watermark: u64) -> u64 {
        self.waiting
            .iter()
            .filter_map(|q| q.front())
            .map(|(ts, ..)| ts.saturating_sub(1))
            .fold(watermark, u64::min)
    }

    /// After a whole drain (every CPU read up to the present): a retransmit still
    /// waiting that was recorded more than `patience` before `clock` gets no stack (its
    /// stack record was lost); it goes on without one. Not between the rounds of a
    /// drain: there, an old retransmit's stack may be in the CPU's next page.
    fn expire(&mut self, clock: u64, patience: u64) {
        for cpu in 0..self.waiting.len() {
            self.settle_before(cpu as u32, clock.saturating_sub(patience));
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
    if !tracefs.has_event("tcp", "tcp_retransmit_skb") {
        return check_kprobe(tracefs, report);
    }
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
    report.item(
        "source",
        if decodes { Status::Yes } else { Status::No },
        "the tcp:tcp_retransmit_skb tracepoint (the kprobe source, --source kprobe, is for kernels without it)",
        "",
        false,
    );
    report.uses = if report.verdict() == Status::No {
        "tcp:tcp_retransmit_skb unavailable".to_string()
    } else if stacks_ok && tlp {
        "tcp:tcp_retransmit_skb in a private instance (kernel stacks for -s and -l)".to_string()
    } else {
        "tcp:tcp_retransmit_skb in a private instance (no -l)".to_string()
    };
    Ok(report)
}

/// `--check` on a kernel without the tracepoint: the kprobe source, set up and verified
/// by its canary in a private instance, all removed before this returns.
fn check_kprobe(tracefs: Tracefs, mut report: Report) -> Result<Report> {
    use perf_tools_ftrace::check as fc;
    report.item(
        "tracepoint",
        Status::Degraded,
        format!("no tcp:tcp_retransmit_skb here ({NO_TRACEPOINT_FIX}); trying the kprobe source"),
        "",
        false,
    );
    let k = match kprobe_source(&tracefs) {
        Ok(k) => k,
        Err(e) => {
            report.item(
                "source",
                Status::No,
                format!("kprobe source: {e:#}"),
                "use a kernel with CONFIG_KPROBE_EVENTS=y, or Linux 4.15+ (the tracepoint)",
                true,
            );
            report.uses = "no source: neither the tracepoint nor a kprobe".to_string();
            return Ok(report);
        }
    };
    let Some(inst) = fc::instance(&tracefs, TOOL, &mut report) else {
        return Ok(report);
    };
    let verified = k.verify(&inst);
    let ok = verified.is_ok();
    match verified {
        Ok(()) => report.item("source", Status::Yes, k.describe(), "", true),
        Err(e) => report.item(
            "source",
            Status::No,
            format!("{e:#}"),
            "use a kernel with the tcp:tcp_retransmit_skb tracepoint (Linux 4.15+)",
            true,
        ),
    };
    if ok {
        let stack_ok = tracefs.path("events/ftrace/kernel_stack/format").exists()
            && inst.write("options/stacktrace", "1").is_ok();
        report.item(
            "stack records",
            if stack_ok {
                Status::Yes
            } else {
                Status::Degraded
            },
            if stack_ok {
                "kernel stacks for -s and -l"
            } else {
                "no kernel stack records: -s and -l are unavailable"
            },
            if stack_ok {
                ""
            } else {
                "use a kernel built with CONFIG_STACKTRACE=y"
            },
            false,
        );
    }
    inst.remove()?;
    drop(k);
    report.uses = if ok {
        format!(
            "a kprobe on {} (no tcp:tcp_retransmit_skb tracepoint here)",
            KPROBE_FUNCTIONS.join(" or ")
        )
    } else {
        "no source: the kprobe source failed its canary".to_string()
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
    // By connection (see the scope module): a retransmit runs in whatever task is on
    // the CPU, so no PID filter can tell whose it was.
    let sockets = std::cell::RefCell::new(args.scope.resolve()?.map(scope::Sockets::new));
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let want_stacks = args.stacks || args.tlp;
    // Everything that can be refused is checked before any kernel state is created
    // (but the kprobe source's probes, which must outlive the instance).
    let mut syms = symbols(&args)?;
    let source = pick_source(&tracefs, args.source)?;
    let layouts = layouts(&tracefs, &source, want_stacks)?;

    let inst = cleanup::start_instance(&tracefs, TOOL)?;
    inst.ensure("trace_clock", "mono")?;
    inst.ensure("buffer_size_kb", &args.buffer_kb.to_string())?;
    let _ = inst.ensure("buffer_percent", "25");
    if let Source::Kprobe(k) = &source {
        // Before stack records are on: the canary's records are read and cleared.
        k.verify(&inst)?;
        inst.write("trace", "")
            .context("clearing the canary's records from the instance")?;
        eprintln!("tcpretrans: source: {}", k.describe());
    }
    if want_stacks {
        inst.write("options/stacktrace", "1").context(
            "turning on kernel stack records (-s, -l); the kernel needs CONFIG_STACKTRACE=y",
        )?;
    }
    match &source {
        Source::Tracepoint(_) => {
            if args.source != SourceArg::Auto {
                eprintln!("tcpretrans: source: the tcp:tcp_retransmit_skb tracepoint");
            }
            inst.enable_event("tcp", "tcp_retransmit_skb")?;
        }
        Source::Kprobe(k) => {
            inst.enable_event(k.probes[0].group(), k.probes[0].event())?;
        }
    }
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
    let mut left_out = 0u64;
    let mut print = |out: &mut Vec<u8>, ts: u64, h: &mut Held| {
        if sockets.borrow().as_ref().is_some_and(|s| !s.holds(&h.ev)) {
            left_out += 1;
            return;
        }
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
            if let Some(s) = sockets.borrow_mut().as_mut() {
                if !batch.last && !s.refresh() && !shutdown.requested() {
                    s.scope().say_gone(TOOL);
                    // The next turn is the last: it drains what is left.
                    shutdown.request();
                }
            }
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
    account.left_out = left_out;
    for (option, in_kernel) in args.scope.filter_notes(false) {
        account.filter(option, in_kernel);
    }
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
            addrs_known: true,
        };
        row(&mut v, "05:16:44", &r, b'R');
        let r6 = Retransmit {
            pid: 0,
            state: None,
            local: "[::1]:40000".parse::<SocketAddr>().unwrap(),
            remote: "[::1]:9".parse::<SocketAddr>().unwrap(),
            addrs_known: true,
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
                retrans: RetransDecoder::Tracepoint(RetransLayout::new(&rf).unwrap()),
                skip: None,
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

    /// A stack record with a given return address (to tell stacks apart).
    fn stack_with(st: &[u8], addr: u64) -> Vec<u8> {
        let mut st = st.to_vec();
        let n = st.len();
        st[n - 8..].copy_from_slice(&addr.to_ne_bytes());
        st
    }

    fn released_frames(p: &mut Pipeline) -> Vec<(u64, Option<u64>)> {
        let w = p.hold(u64::MAX);
        let mut v = Vec::new();
        p.merger.release(w, |ts, h| {
            v.push((ts, h.frames.as_ref().and_then(|f| f.last().copied())))
        });
        v
    }

    #[test]
    fn a_retransmit_nested_before_anothers_stack_leaves_both_their_stacks() {
        let (mut p, ev, st) = pipeline();
        // CPU 0: retransmit A (process context); an interrupt's softirq sends B and its
        // stack before A's stack is recorded.
        p.push(0, 100, &ev);
        p.push(0, 200, &ev);
        p.push(0, 201, &stack_with(&st, 0xb));
        // B has its stack but waits behind A: rows go out in time order.
        assert!(released_frames(&mut p).is_empty());
        p.push(0, 101, &stack_with(&st, 0xa));
        assert_eq!(
            released_frames(&mut p),
            [(100, Some(0xa)), (200, Some(0xb))]
        );
        assert_eq!((p.stackless, p.orphan_stacks), (0, 0));
        // Back to back, each with its stack: paired in order.
        p.push(1, 300, &ev);
        p.push(1, 301, &stack_with(&st, 0xc));
        p.push(1, 400, &ev);
        p.push(1, 401, &stack_with(&st, 0xd));
        assert_eq!(
            released_frames(&mut p),
            [(300, Some(0xc)), (400, Some(0xd))]
        );
        // A lost stack (the kernel could not record it): C waits, D behind it has
        // its own; after the patience C goes on without one, D after it.
        p.push(1, 500, &ev);
        p.push(1, 600, &ev);
        p.push(1, 601, &stack_with(&st, 0xe));
        assert!(released_frames(&mut p).is_empty());
        p.expire(1000, 300);
        assert_eq!(released_frames(&mut p), [(500, None), (600, Some(0xe))]);
        assert_eq!((p.stackless, p.orphan_stacks), (1, 0));
        // Lost events on a CPU: what waits there goes on without a stack.
        p.push(1, 700, &ev);
        p.settle(1);
        assert_eq!(released_frames(&mut p), [(700, None)]);
        assert_eq!(p.stackless, 2);
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
