//! Tracing one dynamic probe in a private instance, shared by the kprobe and uprobe
//! tools: the instance's filters (`-p`, `-L`, the user's expression, the tool's own
//! activity left out), stack traces (`-s`), the decoders of the probe's binary records,
//! live or buffered (`-d`) output in time order with escaped names, the `(fault)` watch,
//! and the end-of-run account. Without decoders, the kernel's text is printed instead.
//!
//! A cgroup scope ([`trace_scoped`]) is the instance's `set_event_pid` with
//! `event-fork` ([`Scope::apply`], made by the tool before the event is enabled), kept
//! current every turn; decoded records of tasks that moved out of the cgroup are dropped
//! by their `common_pid` ([`Scope::contains`]). The kernel's text (no decoders) is
//! scoped by the kernel's list only.

use anyhow::{bail, Result};
use std::io::{Read, Write};
use std::time::Duration;

use crate::format::Field;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;

use super::faults::{self, FaultWatch};
use super::render;
use super::Probe;
use crate::cleanup;
use crate::instance::Instance;
use crate::merge::Merger;
use crate::scope::{CgroupArgs, Scope};
use crate::session::{RunAccount, Session, StreamEnd};
use crate::text_pipe::{self, TextPipe};
use crate::tracefs::Tracefs;

/// The hidden argument that records the task's comm with each event.
pub const COMM_ARG: &str = "__ptrs_comm";

/// What one run traces and how (the tools' common options).
#[derive(Debug, Clone, Default)]
pub struct Spec<'a> {
    /// The tool (`kprobe`, `uprobe`): instance name, messages.
    pub tool: &'static str,
    /// A user-space probe (uprobe): addresses in hex, `-s` shows user stacks.
    pub user: bool,
    /// The user's filter expression.
    pub filter: Option<&'a str>,
    /// `-p`: a process (all its threads).
    pub pid: Option<u32>,
    /// `-L`: a thread.
    pub tid: Option<u32>,
    /// `-s`: a stack trace after each event.
    pub stack: bool,
    /// `-H`: the kernel's column headers.
    pub headers: bool,
    /// `-d`: buffered for this many seconds.
    pub duration: Option<f64>,
    /// The definition's fetch arguments (for the `(fault)` watch).
    pub fetch_args: &'a str,
    /// Shown after the event name in the live banner, e.g. ` (p:readline /bin/bash:0x8db60)`.
    pub banner_detail: String,
    /// `--cgroup` / `--container` (named in the live banner and the account).
    pub scope: CgroupArgs,
}

/// How tracing went: how it ended, the event lines printed and the events lost. The
/// instance is removed by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traced {
    /// How the stream ended.
    pub end: StreamEnd,
    /// Probe event lines printed.
    pub lines: u64,
    /// Events lost.
    pub lost: u64,
}

/// The private instance with the trace clock, the filters (the user's, `-L`, and the
/// tool's own activity left out), `-p`'s PID list, `-s`'s stack traces and the cgroup
/// `scope` ([`Scope::apply`], before the caller enables the event: no moment traces
/// every task).
pub fn setup_instance(
    tracefs: &Tracefs,
    spec: &Spec,
    p: &Probe,
    scope: Option<&mut Scope>,
) -> Result<Instance> {
    let inst = cleanup::start_instance(tracefs, spec.tool)?;
    inst.ensure("trace_clock", "mono")?;
    let (group, event) = (p.group(), p.event());
    let mut filter = spec.filter.map(str::to_string).unwrap_or_default();
    if let Some(t) = spec.tid {
        filter = if filter.is_empty() {
            format!("common_pid == {t}")
        } else {
            format!("({filter}) && common_pid == {t}")
        };
    }
    if !filter.is_empty() {
        // Set the user's expression alone first, so a rejection points into their text.
        inst.set_filter(group, event, &filter)?;
    }
    if spec.tid.is_none() && spec.pid.is_none() {
        // Leave out the tool's own activity (its tracefs reads and writes).
        let me = std::process::id();
        filter = if filter.is_empty() {
            format!("common_pid != {me}")
        } else {
            format!("({filter}) && common_pid != {me}")
        };
        inst.set_filter(group, event, &filter)?;
    }
    if let Some(pid) = spec.pid {
        if inst.follow_process(pid)?.is_empty() {
            bail!(
                "no process with PID {pid} (it exited after {} started)",
                spec.tool
            );
        }
    }
    if spec.stack {
        let opt = if spec.user {
            "options/userstacktrace"
        } else {
            "options/stacktrace"
        };
        inst.write(opt, "1")?;
    }
    if let Some(sc) = scope {
        sc.apply(&inst)
            .map_err(|e| e.context(format!("limiting tracing to the {}", sc.label())))?;
    }
    Ok(inst)
}

/// What decodes the probe's binary records.
pub struct Decoders {
    layout: render::ProbeEvent,
    stack: Option<render::StackEvent>,
    style: render::Style,
}

/// The decoders of the probe's records (and of stack records with `-s`), or `None`
/// with a warning: the tool then prints the kernel's text, unescaped.
pub fn decoders(
    tracefs: &Tracefs,
    spec: &Spec,
    p: &Probe,
    inst: &Instance,
    with_comm: bool,
) -> Option<Decoders> {
    // The column legend of the kernel's text output (read while the buffer is empty).
    let style = inst
        .read("trace")
        .ok()
        .and_then(|t| render::Style::from_header(&t))
        .unwrap_or_default();
    let layout = p
        .format(tracefs)
        .map_err(|e| e.to_string())
        .and_then(|text| render::ProbeEvent::new(&text, with_comm.then_some(COMM_ARG), true))
        .map(|l| if spec.user { l.user_space() } else { l });
    let stack = if spec.stack {
        let name = if spec.user {
            "user_stack"
        } else {
            "kernel_stack"
        };
        crate::tracefs::read_file(&tracefs.path(format!("events/ftrace/{name}/format")))
            .map_err(|e| format!("reading events/ftrace/{name}/format: {e}"))
            .and_then(|t| render::StackEvent::new(&t))
            .map(Some)
    } else {
        Ok(None)
    };
    match (layout, stack) {
        (Ok(layout), Ok(stack)) => Some(Decoders {
            layout,
            stack,
            style,
        }),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("WARNING: cannot decode this probe's records ({e}); printing the kernel's text output, in which names from user space are NOT escaped");
            None
        }
    }
}

/// The end-of-run account: why a run printed no line, from the probe's hit count
/// (before any filter) when there is one.
pub fn account(spec: &Spec, traced: &Traced, hits: Option<u64>) -> RunAccount {
    let mut a = RunAccount::new(spec.tool, "lines");
    a.rows = traced.lines;
    a.lost = traced.lost;
    if let Some(f) = spec.filter {
        a.filter(format!("'{f}'"), true);
    }
    if let Some(p) = spec.pid {
        a.filter(format!("-p {p}"), true);
    }
    if let Some(t) = spec.tid {
        a.filter(format!("-L {t}"), true);
    }
    for (option, in_kernel) in spec.scope.filter_notes(true) {
        a.filter(option, in_kernel);
    }
    let profile = if spec.user {
        "uprobe_profile"
    } else {
        "kprobe_profile"
    };
    match hits {
        Some(h) => a.seen.push((
            h,
            format!("probe hits before any filter, {}'s own included", spec.tool),
        )),
        None => a.notes.push(format!(
            "the probe's hit count is unknown (no {profile} entry)"
        )),
    }
    a
}

/// Counts the event lines of the kernel's text (not stack lines, not `#` headers).
pub fn event_lines(text: &[u8]) -> u64 {
    text.split(|&b| b == b'\n')
        .filter(|l| {
            let t = l.trim_ascii_start();
            !t.is_empty()
                && !t.starts_with(b"#")
                && !t.starts_with(b"=>")
                && !t.starts_with(b"<")
                && !l.ends_with(b"<stack trace>")
                && !l.ends_with(b"<user stack trace>")
        })
        .count() as u64
}

/// Traces: with decoders from the binary buffers, else from the kernel's text.
pub fn trace(
    spec: &Spec,
    shutdown: &Shutdown,
    inst: Instance,
    out: &mut Output,
    event: &str,
    decoders: Option<Decoders>,
    syms: render::Symbols,
) -> Result<Traced> {
    let decoded = decoders.map(|d| (d, syms));
    trace_scoped(spec, shutdown, inst, out, event, decoded, None)
}

/// [`trace`] limited to a cgroup: `scope` was applied to `inst` ([`Scope::apply`]);
/// its list is kept current every turn, a removed cgroup ends the run (exit 0), and
/// decoded records of tasks no longer in the cgroup are dropped. `decoded`: the
/// decoders with the kernel symbols, or `None` for the kernel's text.
pub fn trace_scoped(
    spec: &Spec,
    shutdown: &Shutdown,
    inst: Instance,
    out: &mut Output,
    event: &str,
    decoded: Option<(Decoders, render::Symbols)>,
    scope: Option<&mut Scope>,
) -> Result<Traced> {
    match decoded {
        Some(d) => trace_binary(spec, shutdown, inst, out, event, d, scope),
        None => trace_text(spec, shutdown, inst, out, event, scope),
    }
}

/// Whether a record belongs to the scope (always without one): its task, read by the
/// probe's format (`pid`: its `common_pid` field), is in the cgroup.
fn in_scope(scope: &mut Option<&mut Scope>, pid: &Field, payload: &[u8]) -> bool {
    match scope.as_deref_mut() {
        None => true,
        Some(sc) => pid.read_u64(payload).is_none_or(|p| sc.contains(p as u32)),
    }
}

fn banner(spec: &Spec, event: &str, out: &mut Output) {
    let _ = match spec.duration {
        Some(d) => writeln!(
            out.buf,
            "Tracing {} {event} for {d} seconds (buffered)...",
            spec.tool
        ),
        None => writeln!(
            out.buf,
            "Tracing {} {event}{}{}. Ctrl-C to end.",
            spec.tool,
            spec.banner_detail,
            spec.scope.banner_text()
        ),
    };
}

/// Streams (or, with `-d`, collects) the kernel's text rendering of the instance's
/// events: used only when the probe's records cannot be decoded.
fn trace_text(
    spec: &Spec,
    shutdown: &Shutdown,
    inst: Instance,
    out: &mut Output,
    event: &str,
    mut scope: Option<&mut Scope>,
) -> Result<Traced> {
    let mut traced = Traced {
        end: StreamEnd::Finished,
        lines: 0,
        lost: 0,
    };
    banner(spec, event, out);
    match spec.duration {
        Some(d) => {
            out.flush()?;
            match scope.as_deref_mut() {
                Some(sc) => sc.sleep(&inst, shutdown, d, spec.tool, false)?,
                None => {
                    shutdown.sleep(Duration::from_secs_f64(d));
                }
            }
            inst.set_tracing_on(false)?;
            let text = inst.read("trace")?;
            for l in text.lines() {
                if l.starts_with('#') && !spec.headers {
                    continue;
                }
                let _ = writeln!(out.buf, "{l}");
            }
            traced.lines = event_lines(text.as_bytes());
            traced.lost = text_pipe::lost_markers(text.as_bytes()).1;
            out.flush()?;
        }
        None => {
            if spec.headers {
                for l in inst.read("trace")?.lines().filter(|l| l.starts_with('#')) {
                    let _ = writeln!(out.buf, "{l}");
                }
            }
            out.flush()?;
            let mut pipe = TextPipe::open(inst.dir())?;
            let mut partial: Vec<u8> = Vec::new();
            traced.end = pipe.stream(
                shutdown,
                Duration::from_millis(100),
                || inst.set_tracing_on(false),
                |text, last| {
                    if let Some(sc) = scope.as_deref_mut() {
                        sc.turn(&inst, last, shutdown, spec.tool, false)?;
                    }
                    partial.extend_from_slice(text);
                    let end = if last {
                        Some(partial.len())
                    } else {
                        partial.iter().rposition(|&b| b == b'\n').map(|e| e + 1)
                    };
                    if let Some(end) = end {
                        for l in partial[..end].split(|&b| b == b'\n') {
                            if l.windows(5).any(|w| w == b"LOST ") {
                                eprintln!("WARNING: {}", String::from_utf8_lossy(l));
                            }
                        }
                        traced.lines += event_lines(&partial[..end]);
                        traced.lost += text_pipe::lost_markers(&partial[..end]).1;
                        out.buf.extend_from_slice(&partial[..end]);
                        partial.drain(..end);
                    }
                    out.flush()?;
                    Ok(())
                },
            )?;
        }
    }
    inst.remove()?;
    Ok(traced)
}

/// Reads the `#` header lines at the top of the instance's `trace` file (the kernel's
/// column legend and entry counts), without rendering the rest of the buffer.
fn header_lines(inst: &Instance) -> Vec<String> {
    let mut text = Vec::new();
    if let Ok(f) = std::fs::File::open(inst.dir().join("trace")) {
        let _ = f.take(16 * 1024).read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text)
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Renders the probe's records (and their stack records) as the kernel's text output
/// would, names escaped, in time order across CPUs; watches the string fetches.
struct Lines {
    dec: Decoders,
    ctx: render::Context,
    /// The comm of the last probe record per CPU, for the stack record that follows it.
    last_comm: Vec<(i32, Option<Vec<u8>>)>,
    merger: Merger<Vec<u8>>,
    watch: FaultWatch,
    /// Probe event lines rendered.
    events: u64,
}

impl Lines {
    fn new(dec: Decoders, spec: &Spec, start: u64, syms: render::Symbols) -> Lines {
        let ctx = render::Context::new(dec.style, syms);
        if ctx.syms.is_empty() && !spec.user {
            eprintln!("WARNING: no kernel symbols in /proc/kallsyms (kernel.kptr_restrict?): code addresses are printed in hex");
        }
        let watch = FaultWatch::new(
            spec.tool,
            &dec.layout.string_args(),
            &faults::string_fetches(spec.fetch_args),
            start,
        );
        Lines {
            dec,
            ctx,
            last_comm: Vec::new(),
            merger: Merger::new(),
            watch,
            events: 0,
        }
    }

    fn event(&mut self, cpu: u32, ts: u64, payload: &[u8]) {
        let Some(id) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            return;
        };
        let mut line = Vec::with_capacity(160);
        let pid = payload
            .get(4..8)
            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        let slot = cpu as usize;
        if slot >= self.last_comm.len() {
            self.last_comm.resize(slot + 1, (-1, None));
        }
        let layout = &self.dec.layout;
        if id == layout.id {
            layout.render(&mut line, &mut self.ctx, cpu, ts, payload);
            self.last_comm[slot] = (pid, layout.comm(payload).map(<[u8]>::to_vec));
            self.watch.record(ts, layout.string_faults(payload));
            self.events += 1;
        } else if let Some(st) = self.dec.stack.as_ref().filter(|s| s.id == id) {
            let comm = match &self.last_comm[slot] {
                (p, c) if *p == pid && layout.has_comm() => Some(c.as_deref()),
                _ => None,
            };
            st.render(&mut line, &mut self.ctx, comm, cpu, ts, payload);
        } else {
            return;
        }
        self.merger.push(slot, ts, line);
    }

    /// Moves the lines up to `upto` into `out`, and says once if every string fetch of
    /// the first second faulted (`end`: the run is over).
    fn release(&mut self, upto: u64, out: &mut Vec<u8>, end: bool) {
        self.merger.release(upto, |_, l| out.extend_from_slice(l));
        // Every event up to `upto` has been read: the window is judged once it has.
        if let Some(w) = self.watch.verdict(upto, end) {
            eprintln!("{w}");
        }
    }
}

/// Decodes the probe's records from the per-CPU binary buffers and prints them
/// ([`Lines`]), live or (with `-d`) after the duration.
fn trace_binary(
    spec: &Spec,
    shutdown: &Shutdown,
    inst: Instance,
    out: &mut Output,
    event: &str,
    (dec, syms): (Decoders, render::Symbols),
    mut scope: Option<&mut Scope>,
) -> Result<Traced> {
    let mut session = Session::start(inst)?;
    let pid = dec.layout.pid_field().clone();
    let mut lines = Lines::new(dec, spec, perf_tools_core::clock::monotonic_ns(), syms);
    let mut lost_in_pages = 0;
    let mut warn_lost = |n: u64| {
        lost_in_pages += n;
        if n > 0 {
            eprintln!("WARNING: {n} events lost: the kernel buffer overflowed");
        }
    };
    banner(spec, event, out);
    let end = match spec.duration {
        Some(d) => {
            out.flush()?;
            match scope.as_deref_mut() {
                Some(sc) => sc.sleep(&session.instance, shutdown, d, spec.tool, false)?,
                None => {
                    shutdown.sleep(Duration::from_secs_f64(d));
                }
            }
            session.instance.set_tracing_on(false)?;
            if spec.headers {
                for l in header_lines(&session.instance) {
                    let _ = writeln!(out.buf, "{l}");
                }
            }
            loop {
                let stats = session.reader.drain(|cpu, ts, p| {
                    if in_scope(&mut scope, &pid, p) {
                        lines.event(cpu, ts, p);
                    }
                });
                warn_lost(stats.missed);
                if stats.pages == 0 {
                    break;
                }
            }
            lines.release(u64::MAX, &mut out.buf, true);
            out.flush()?;
            StreamEnd::Finished
        }
        None => {
            if spec.headers {
                for l in header_lines(&session.instance) {
                    let _ = writeln!(out.buf, "{l}");
                }
            }
            out.flush()?;
            session.stream(
                shutdown,
                None,
                Duration::from_millis(100),
                |reader, inst, turn| {
                    if let Some(sc) = scope.as_deref_mut() {
                        sc.turn(inst, turn.last, shutdown, spec.tool, false)?;
                    }
                    let stats = reader.drain(|cpu, ts, p| {
                        if in_scope(&mut scope, &pid, p) {
                            lines.event(cpu, ts, p);
                        }
                    });
                    warn_lost(stats.missed);
                    lines.release(turn.clock, &mut out.buf, turn.last);
                    out.flush()?;
                    Ok(())
                },
            )?
        }
    };
    let lost = session.lost_events().max(lost_in_pages);
    session.finish()?;
    Ok(Traced {
        end,
        lines: lines.events,
        lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_run_explains_itself_with_the_probe_hits() {
        let spec = Spec {
            tool: "kprobe",
            filter: Some("count > 4096"),
            pid: Some(91),
            ..Spec::default()
        };
        let t = Traced {
            end: StreamEnd::Finished,
            lines: 0,
            lost: 0,
        };
        assert_eq!(
            account(&spec, &t, Some(1204)).line().unwrap(),
            "kprobe: 0 lines: 1,204 probe hits before any filter, kprobe's own included (filters 'count > 4096' -p 91); 0 lost"
        );
        let t = Traced { lines: 5, ..t };
        assert_eq!(account(&spec, &t, Some(1204)).line(), None);
    }

    #[test]
    fn counts_event_lines_of_the_kernel_text() {
        let text = b"# tracer: nop\n            cat-1  [000] .....  1.0: p_vfs_read_0: (vfs_read+0x0/0x10)\n => vfs_read\n => ksys_read\n            cat-1  [000] .....  1.1: p_vfs_read_0: (vfs_read+0x0/0x10)\n               t-2   [001] DBZff 2.0: <user stack trace>\n =>  <00005620781b7149>\n";
        assert_eq!(event_lines(text), 2);
    }
}
