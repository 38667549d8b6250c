//! The function tracer (`current_tracer = function`) in a private instance, shared by
//! functrace and funccount: which functions a glob selects (and refusing very broad ones
//! without `--force`), setting up the instance (filter, PIDs, the tool itself left out),
//! and decoding the `ftrace/function` records (`ip`, `parent_ip`) from the raw buffer,
//! rendered as the kernel's own text (`comm-pid [cpu] flags ts: func <-parent`) with
//! symbols from `/proc/kallsyms` ([`Symbols`]).
//!
//! Everything is chosen by what the running kernel offers: the instance must list
//! `function` in its `available_tracers` and have its own `set_ftrace_filter` (checked
//! in the instance, never by version).

use anyhow::{bail, Context as _, Result};

use crate::format::{EventFormat, Field};
use crate::instance::Instance;
use crate::scope::Scope;
use crate::toplevel::{close_matches, filter_function_names, glob_match};
use crate::tracefs::{read_file, Tracefs};
use perf_tools_core::check::{Report, Status};

pub use crate::probe::render::{Context, Style, Symbols};

/// More matching functions than this need `--force`: tracing thousands of functions
/// slows every path of the kernel through them, and floods the buffer.
pub const BROAD_LIMIT: usize = 1000;

/// The patterns of the positional arguments (each may hold a space-separated list).
pub fn patterns(functions: &[String]) -> Vec<String> {
    functions
        .iter()
        .flat_map(|f| f.split_whitespace())
        .map(str::to_string)
        .collect()
}

/// Patterns the kernel interprets itself (`!negation`, `:mod:` commands, `[classes]`):
/// their matches are not counted here.
pub fn kernel_only(p: &str) -> bool {
    p.starts_with('!') || p.contains(':') || p.contains('[')
}

/// The traceable functions (names from `available_filter_functions`) that the patterns
/// select: the union of the plain patterns' matches, without those of `!negations`.
pub fn matching<'a>(pats: &[String], names: &[&'a str]) -> Vec<&'a str> {
    let plus: Vec<&str> = pats
        .iter()
        .filter(|p| !kernel_only(p))
        .map(String::as_str)
        .collect();
    let minus: Vec<&str> = pats
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .filter(|p| !kernel_only(p))
        .collect();
    names
        .iter()
        .copied()
        .filter(|n| plus.iter().any(|p| glob_match(p, n)))
        .filter(|n| !minus.iter().any(|p| glob_match(p, n)))
        .collect()
}

/// How many traceable functions the patterns select, checked before anything changes:
/// a plain pattern that matches nothing is an error naming close matches; more than
/// [`BROAD_LIMIT`] matches is an error unless `force`.
pub fn check_selection(tool: &str, pats: &[String], names: &[&str], force: bool) -> Result<usize> {
    let mut missing = Vec::new();
    for p in pats.iter().filter(|p| !kernel_only(p)) {
        if !names.iter().any(|n| glob_match(p, n)) {
            let close = close_matches(p, names, 8);
            missing.push(format!(
                "\"{p}\" matches no traceable kernel function (not in available_filter_functions: inlined, notrace, or not in this kernel); {}",
                if close.is_empty() {
                    "no close matches".to_string()
                } else {
                    format!("close matches: {}", close.join(" "))
                }
            ));
        }
    }
    if !missing.is_empty() {
        bail!(
            "{}\n  list candidates with: grep <name> /sys/kernel/tracing/available_filter_functions",
            missing.join("\n  ")
        );
    }
    let n = matching(pats, names).len();
    if n > BROAD_LIMIT && !force {
        bail!(
            "\"{}\" matches {n} kernel functions (more than {BROAD_LIMIT}): tracing that many slows the whole kernel and floods the buffer; narrow the pattern, or add --force to {tool} to trace them anyway",
            pats.join(" ")
        );
    }
    Ok(n)
}

/// Reads `available_filter_functions` (parse it with [`filter_function_names`]).
pub fn available_functions(tracefs: &Tracefs) -> Result<String> {
    read_file(&tracefs.path("available_filter_functions")).with_context(|| {
        format!(
            "reading {}: the kernel needs CONFIG_DYNAMIC_FTRACE to trace single functions",
            tracefs.path("available_filter_functions").display()
        )
    })
}

/// Reads `available_filter_functions` and checks the selection ([`check_selection`]).
pub fn check_available(
    tracefs: &Tracefs,
    tool: &str,
    pats: &[String],
    force: bool,
) -> Result<usize> {
    let aff = available_functions(tracefs)?;
    check_selection(tool, pats, &filter_function_names(&aff), force)
}

fn has_word(text: &str, word: &str) -> bool {
    text.split_whitespace().any(|w| w == word)
}

/// Checks that the kernel has the function tracer and that function tracing is on
/// (`kernel.ftrace_enabled`), before anything is changed.
pub fn require_function_tracer(tracefs: &Tracefs, tool: &str) -> Result<()> {
    let tracers = read_file(&tracefs.path("available_tracers")).unwrap_or_default();
    if !has_word(&tracers, "function") {
        bail!(
            "this kernel has no function tracer (available_tracers: {}): it was built without CONFIG_FUNCTION_TRACER, so {tool} cannot run here; use a kernel built with CONFIG_FUNCTION_TRACER=y and CONFIG_DYNAMIC_FTRACE=y (most distribution kernels are)",
            if tracers.trim().is_empty() { "none" } else { tracers.trim() }
        );
    }
    if !tracefs.path("set_ftrace_filter").exists() {
        bail!(
            "{} has no set_ftrace_filter: the kernel lacks CONFIG_DYNAMIC_FTRACE, which {tool} needs to trace single functions",
            tracefs.root().display()
        );
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/ftrace_enabled") {
        if v.trim() == "0" {
            bail!("function tracing is disabled (sysctl kernel.ftrace_enabled = 0); enable it with: sysctl -w kernel.ftrace_enabled=1");
        }
    }
    // The list of traceable functions: without it no function can be selected (some
    // kernels list the files but refuse reading them, e.g. EPERM).
    let aff = tracefs.path("available_filter_functions");
    let mut probe = [0u8; 64];
    if let Err(e) =
        std::fs::File::open(&aff).and_then(|mut f| std::io::Read::read(&mut f, &mut probe))
    {
        bail!(
            "cannot read {} ({e}): this kernel does not let {tool} select functions to trace; use a kernel built with CONFIG_DYNAMIC_FTRACE=y, without lockdown, as root",
            aff.display()
        );
    }
    Ok(())
}

/// Why a private instance cannot run the function tracer, or `None` if it can: it must
/// list `function` in its own `available_tracers` and have its own `set_ftrace_filter`
/// and `set_ftrace_pid`.
pub fn instance_unfit(inst: &Instance) -> Option<&'static str> {
    let tracers = inst.read("available_tracers").unwrap_or_default();
    if !has_word(&tracers, "function") {
        Some("this kernel runs the function tracer only in the top-level instance")
    } else if !inst.dir().join("set_ftrace_filter").exists() {
        Some("this kernel's instances have no set_ftrace_filter")
    } else if !inst.dir().join("set_ftrace_pid").exists() {
        Some("this kernel's instances have no set_ftrace_pid")
    } else {
        None
    }
}

/// The threads to trace (`-p PID`, `-L TID`): the function_graph tools' rule, one copy.
pub use crate::graph::traced_tids;

/// What to trace in the instance.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The function patterns, written to `set_ftrace_filter`.
    pub patterns: Vec<String>,
    /// Only these threads (`set_ftrace_pid`); empty: every task but this tool.
    pub tids: Vec<u32>,
    /// Also the threads the traced ones create (`options/function-fork`), for `-p`.
    pub follow_forks: bool,
    /// Per-CPU buffer size in KiB (`buffer_size_kb`), if not the kernel's default.
    pub buffer_kb: Option<u32>,
}

/// Configures the function tracer in `inst` and turns it on with recording off
/// (`tracing_on` 0; the caller turns recording on once its readers are open). The filter
/// is written before the tracer is set, so no moment traces every function.
pub fn configure(inst: &Instance, tool: &str, setup: &Setup) -> Result<()> {
    configure_scoped(inst, tool, setup, None)
}

/// [`configure`] for a run limited to a cgroup (`--cgroup`/`--container`): the cgroup's
/// threads go to the instance's `set_ftrace_pid` with `options/function-fork` (so the
/// kernel follows their children from the first instant), before the tracer starts, so
/// no moment traces every task. The tool itself stays in `set_ftrace_notrace_pid` (it
/// may run inside the cgroup). The read loop then calls [`Scope::turn`] with
/// `function = true` and checks each record's task with [`Scope::contains`] (tasks
/// that moved out stay in the kernel's list until they exit).
pub fn configure_scoped(
    inst: &Instance,
    tool: &str,
    setup: &Setup,
    scope: Option<&mut Scope>,
) -> Result<()> {
    if scope.is_some() && !setup.tids.is_empty() {
        bail!("internal: {tool} was given both a cgroup scope and -p/-L threads");
    }
    inst.set_tracing_on(false)?;
    // The clock the readers merge CPUs by (perf_tools_core::clock::monotonic_ns), as
    // every tool of the suite: with the default "local" clock, records could be held back
    // from a live stream for as long as the two clocks differ.
    inst.ensure("trace_clock", "mono")?;
    if let Some(kb) = setup.buffer_kb {
        inst.ensure("buffer_size_kb", &kb.to_string())?;
    }
    let funcs = setup.patterns.join(" ");
    // The trailing newline makes the kernel parse the last pattern during write(2), so a
    // pattern that matches nothing fails here (EINVAL) instead of leaving an empty
    // filter, which means every function.
    if let Err(e) = inst.write("set_ftrace_filter", &format!("{funcs}\n")) {
        bail!("the kernel refused set_ftrace_filter \"{funcs}\" ({e:#}); check the names against available_filter_functions");
    }
    let filter = inst.read("set_ftrace_filter")?;
    if crate::toplevel::normalize("set_ftrace_filter", &filter).is_empty() {
        bail!("set_ftrace_filter of {} is empty after writing \"{funcs}\": the kernel selected no function, and an empty filter would trace every function", inst.dir().display());
    }
    if let Some(sc) = scope {
        sc.apply(inst)
            .with_context(|| format!("limiting tracing to the {}", sc.label()))?;
        sc.apply_function(inst)
            .with_context(|| format!("limiting function tracing to the {}", sc.label()))?;
    }
    if !setup.tids.is_empty() {
        let list: Vec<String> = setup.tids.iter().map(u32::to_string).collect();
        inst.write("set_ftrace_pid", &list.join(" "))
            .context("limiting tracing to the given PID")?;
        if setup.follow_forks {
            if inst.dir().join("options/function-fork").exists() {
                inst.write("options/function-fork", "1")?;
            } else {
                eprintln!("{tool}: this kernel has no options/function-fork (Linux 4.15+): threads created from now on are not traced");
            }
        }
    } else if inst.dir().join("set_ftrace_notrace_pid").exists() {
        // Never trace ourselves: our reads of the buffer and writes of the output could
        // run through the traced functions and feed on themselves.
        inst.write("set_ftrace_notrace_pid", &std::process::id().to_string())
            .with_context(|| format!("excluding {tool} itself from tracing"))?;
    } else {
        eprintln!("{tool}: this kernel has no set_ftrace_notrace_pid (Linux 5.8+), so {tool}'s own reads and writes are traced too: avoid functions on its I/O path (vfs_read, vfs_write, ...) or use -p");
    }
    inst.write("current_tracer", "function")
        .context("enabling the function tracer")?;
    let tracer = inst.read("current_tracer")?;
    if tracer.trim() != "function" {
        bail!(
            "the kernel did not start the function tracer in {}: current_tracer reads {:?}",
            inst.dir().display(),
            tracer.trim()
        );
    }
    Ok(())
}

/// Stops the function tracer of an instance (before it is removed).
pub fn stop(inst: &Instance) {
    let _ = inst.set_tracing_on(false);
    let _ = inst.write("current_tracer", "nop");
}

/// The `ftrace/function` record: the traced function's address and its caller's.
#[derive(Debug, Clone)]
pub struct FunctionEvent {
    /// The event id (`common_type` of these records).
    pub id: u16,
    ip: Field,
    parent_ip: Field,
    flags: Field,
    preempt: Field,
    pid: Field,
}

/// One decoded function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The traced function (its patched entry).
    pub ip: u64,
    /// The return address in its caller.
    pub parent_ip: u64,
    /// The task (thread id) that called it.
    pub pid: i32,
}

impl FunctionEvent {
    /// The decoder for a parsed `events/ftrace/function/format`.
    pub fn new(fmt: &EventFormat) -> Result<FunctionEvent> {
        Ok(FunctionEvent {
            id: fmt.id,
            ip: fmt.require("ip")?,
            parent_ip: fmt.require("parent_ip")?,
            flags: fmt.require("common_flags")?,
            preempt: fmt.require("common_preempt_count")?,
            pid: fmt.require("common_pid")?,
        })
    }

    /// The decoder for the function records of `inst`.
    pub fn of(inst: &Instance) -> Result<FunctionEvent> {
        FunctionEvent::new(&inst.event_format("ftrace", "function")?)
    }

    /// Decodes a record of this event (`None` for other events or a short record).
    pub fn decode(&self, payload: &[u8]) -> Option<Call> {
        let id = u16::from_ne_bytes([*payload.first()?, *payload.get(1)?]);
        if id != self.id {
            return None;
        }
        Some(Call {
            ip: self.ip.read_u64(payload)?,
            parent_ip: self.parent_ip.read_u64(payload)?,
            pid: self.pid.read_i64(payload)? as i32,
        })
    }

    /// Appends the line the kernel prints for this record:
    /// `comm-pid [cpu] flags timestamp: func <-parent`. `comm` is the task's name if
    /// known (`None`: `<...>`, as the kernel prints a task it did not record).
    pub fn render(
        &self,
        out: &mut Vec<u8>,
        ctx: &mut Context,
        comm: Option<&[u8]>,
        cpu: u32,
        ts: u64,
        payload: &[u8],
    ) {
        let Some(call) = self.decode(payload) else {
            return;
        };
        ctx.line_start(
            out,
            &self.pid,
            &self.flags,
            &self.preempt,
            Some(comm),
            cpu,
            ts,
            payload,
        );
        ctx.syms.render(out, call.ip, false);
        out.extend_from_slice(b" <-");
        ctx.syms.render(out, call.parent_ip, false);
        out.push(b'\n');
    }
}

/// The `#` lines at the top of an instance's `trace` file (the column legend), with the
/// [`Style`] they describe.
pub fn header(inst: &Instance) -> Result<(String, Style)> {
    let text = inst.read("trace")?;
    let head: String = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .flat_map(|l| [l, "\n"])
        .collect();
    let style = Style::from_header(&head).unwrap_or_default();
    Ok((head, style))
}

/// The `--check` report of a function-tracer tool (functrace, and funccount's counter):
/// the function tracer, `kernel.ftrace_enabled`, and a private instance that can run it
/// with its own filter and decode its records (checked in one removed before this
/// returns).
pub fn check_report(tool: &str) -> Result<Report> {
    use crate::check as fc;
    let mut r = Report::new(tool);
    let Some(tracefs) = fc::tracefs(&mut r) else {
        return Ok(r);
    };
    match require_function_tracer(&tracefs, tool) {
        Ok(()) => {
            r.item(
                "function tracer",
                Status::Yes,
                "present, with set_ftrace_filter; kernel.ftrace_enabled = 1",
                "",
                true,
            );
        }
        Err(e) => {
            r.item(
                "function tracer",
                Status::No,
                format!("{e:#}"),
                "use a kernel built with CONFIG_FUNCTION_TRACER=y and CONFIG_DYNAMIC_FTRACE=y, with sysctl kernel.ftrace_enabled=1",
                true,
            );
            r.uses = "nothing: no usable function tracer".into();
            return Ok(r);
        }
    }
    let Some(inst) = fc::instance(&tracefs, tool, &mut r) else {
        r.uses = "nothing: no private instance".into();
        return Ok(r);
    };
    let unfit = instance_unfit(&inst);
    let fmt = FunctionEvent::of(&inst);
    inst.remove()?;
    if let Some(why) = unfit {
        r.item(
            "target",
            Status::No,
            format!("{why}; {tool} does not take over the top-level tracer"),
            "use a kernel whose instances run the function tracer (Linux 4.x and later do)",
            true,
        );
        r.uses = "nothing: the function tracer cannot run in a private instance".into();
        return Ok(r);
    }
    match fmt {
        Ok(_) => {
            r.item(
                "ftrace:function",
                Status::Yes,
                "format has ip and parent_ip",
                "",
                true,
            );
        }
        Err(e) => {
            r.item("ftrace:function", Status::No, format!("{e:#}"), "", true);
            r.uses = "nothing: the function records cannot be decoded".into();
            return Ok(r);
        }
    }
    r.item(
        "target",
        Status::Yes,
        "a private instance (function tracer, set_ftrace_filter and set_ftrace_pid work there)",
        "",
        true,
    );
    r.uses = "the function tracer in a private instance, its binary ftrace:function records".into();
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;

    fn fixture(kernel: &str, name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/formats")
            .join(kernel)
            .join(name);
        std::fs::read_to_string(&p).unwrap()
    }

    /// A function record as the kernel writes it, after the format's layout.
    fn record(fmt: &EventFormat, pid: i32, flags: u8, pc: u8, ip: u64, parent: u64) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[0..2].copy_from_slice(&fmt.id.to_ne_bytes());
        p[2] = flags;
        p[3] = pc;
        p[4..8].copy_from_slice(&pid.to_ne_bytes());
        let ipf = fmt.field("ip").unwrap();
        let pf = fmt.field("parent_ip").unwrap();
        p[ipf.offset..ipf.offset + 8].copy_from_slice(&ip.to_ne_bytes());
        p[pf.offset..pf.offset + 8].copy_from_slice(&parent.to_ne_bytes());
        p
    }

    const KALLSYMS: &str = "ffffffff81000000 T _stext\nffffffff81234500 T __x64_sys_sync\nffffffff81234560 t ksys_sync\nffffffff81234600 T do_syscall_64\nffffffff81234700 D some_data\n";

    #[test]
    fn decodes_and_renders_function_records_of_every_kernel() {
        for (kernel, header) in [
            (
                "5.10",
                "#           TASK-PID     CPU#  ||||   TIMESTAMP  FUNCTION\n",
            ),
            (
                "6.12-deb13",
                "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n",
            ),
            (
                "7.x",
                "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n",
            ),
        ] {
            let fmt = EventFormat::parse(&fixture(kernel, "function")).unwrap();
            let ev = FunctionEvent::new(&fmt).unwrap();
            let p = record(
                &fmt,
                4242,
                0x01,
                0x01,
                0xffffffff81234500,
                0xffffffff81234642,
            );
            assert_eq!(
                ev.decode(&p),
                Some(Call {
                    ip: 0xffffffff81234500,
                    parent_ip: 0xffffffff81234642,
                    pid: 4242
                })
            );
            let mut other = p.clone();
            other[0] = other[0].wrapping_add(1);
            assert_eq!(ev.decode(&other), None, "{kernel}: another event id");
            assert_eq!(ev.decode(&p[..12]), None, "{kernel}: short record");
            let style = Style::from_header(header).unwrap();
            let mut ctx = Context::new(style, Symbols::parse(KALLSYMS));
            ctx.read_proc = false;
            let mut out = Vec::new();
            ev.render(&mut out, &mut ctx, Some(b"sync"), 0, 6_208_182_400, &p);
            let flags = if style.flag_cols == 4 {
                "d..1"
            } else {
                "d..1."
            };
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(
                    "            sync-4242    [000] {flags}     6.208182: __x64_sys_sync <-do_syscall_64\n"
                ),
                "{kernel}"
            );
            // An unknown task, and a hostile name.
            let mut out = Vec::new();
            ev.render(&mut out, &mut ctx, None, 1, 1_000, &p);
            assert!(
                out.starts_with(b"           <...>-4242    [001] "),
                "{kernel}"
            );
            let mut out = Vec::new();
            ev.render(&mut out, &mut ctx, Some(b"ev\x1b[31m"), 1, 1_000, &p);
            assert!(
                String::from_utf8(out).unwrap().contains("ev\\e[31m-4242"),
                "{kernel}"
            );
        }
    }

    #[test]
    fn selection_counts_matches_and_refuses_broad_or_empty_globs() {
        let mut names: Vec<String> = (0..1500).map(|i| format!("tcp_f{i}")).collect();
        names.extend(["vfs_read", "vfs_readv", "vfs_write", "ksys_read"].map(String::from));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let pats = patterns(&["vfs_read*".into()]);
        assert_eq!(matching(&pats, &names), vec!["vfs_read", "vfs_readv"]);
        assert_eq!(
            check_selection("funccount", &pats, &names, false).unwrap(),
            2
        );
        let pats = patterns(&["vfs_* !vfs_readv".into()]);
        assert_eq!(matching(&pats, &names), vec!["vfs_read", "vfs_write"]);
        let pats = patterns(&["tcp_*".into()]);
        let e = check_selection("funccount", &pats, &names, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"tcp_*\" matches 1500 kernel functions"), "{e}");
        assert!(e.contains("--force"), "{e}");
        assert_eq!(
            check_selection("funccount", &pats, &names, true).unwrap(),
            1500
        );
        let pats = patterns(&["vfs_raed".into()]);
        let e = check_selection("functrace", &pats, &names, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"vfs_raed\" matches no traceable kernel function"),
            "{e}"
        );
        assert!(e.contains("close matches: vfs_read"), "{e}");
        // Left to the kernel: module commands.
        let pats = patterns(&[":mod:ext4".into()]);
        assert_eq!(
            check_selection("functrace", &pats, &names, false).unwrap(),
            0
        );
    }

    #[test]
    fn reads_the_instance_header_style() {
        let h = "# tracer: function\n#\n#           TASK-PID     CPU#  ||||   TIMESTAMP  FUNCTION\n#              | |         |   ||||      |         |\n";
        let s = Style::from_header(h).unwrap();
        assert_eq!((s.pid_width, s.flag_cols), (7, 4));
    }
}
