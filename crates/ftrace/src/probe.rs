//! Dynamic probes (kprobes, kretprobes, uprobes, event probes) owned by one run.
//!
//! Every probe of a run lives in the event group `ptrs_<pid>` (pid of the tool), so several
//! tools (or copies of one tool) can run at once without name clashes, and probes whose
//! owner was killed with `kill -9` can be recognised and removed later
//! ([`remove_stale`], called by [`crate::cleanup::remove_stale`]).
//!
//! Probes are created through `dynamic_events` (or `kprobe_events` on kernels without
//! it). A rejected definition is explained with the kernel's own message from tracefs
//! `error_log`, including the position it points at. A [`Probe`] is removed when dropped;
//! the kernel refuses to remove a probe that is still enabled in an instance, so tools
//! must drop (remove) their instance first: declare the probes before the instance.

use anyhow::{bail, Context, Result};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::owner::pid_alive;

pub mod faults;
pub mod render;
pub mod run;
use crate::tracefs::Tracefs;

/// Prefix of the event group of every probe this suite creates: `ptrs_<pid>`.
pub const GROUP_PREFIX: &str = "ptrs_";

/// Longest event or group name the kernel accepts (`MAX_EVENT_NAME_LEN - 1`).
pub const MAX_NAME_LEN: usize = 63;

/// The event group of this process's probes: `ptrs_<pid>`.
pub fn group_name(pid: u32) -> String {
    format!("{GROUP_PREFIX}{pid}")
}

/// If `group` is `ptrs_<pid>`, returns the pid.
pub fn group_owner_pid(group: &str) -> Option<u32> {
    let pid = group.strip_prefix(GROUP_PREFIX)?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Turns any string (a function name such as `foo.isra.0`, a user alias) into a valid
/// event name: letters, digits and `_`, not starting with a digit, at most
/// [`MAX_NAME_LEN`] bytes, never empty.
pub fn sanitize_event_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, '_');
    }
    out.truncate(MAX_NAME_LEN);
    out
}

/// True if `s` is a valid event or group name as the kernel checks it.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What this kernel offers for dynamic probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// `dynamic_events` exists (Linux 4.17+).
    pub dynamic_events: bool,
    /// `kprobe_events` exists (CONFIG_KPROBE_EVENTS).
    pub kprobes: bool,
    /// `uprobe_events` exists (CONFIG_UPROBE_EVENTS).
    pub uprobes: bool,
    /// `README` documents the `ustring` fetch type (Linux 5.5+).
    pub ustring: bool,
    /// `README` documents `$arg<N>` (Linux 4.20+).
    pub args: bool,
    /// `README` documents `f[:[<group>/][<event>]]` function-entry probes (Linux 6.7+,
    /// CONFIG_FPROBE_EVENTS).
    pub fprobes: bool,
}

impl Support {
    /// Detects what the tracefs offers.
    pub fn detect(tracefs: &Tracefs) -> Support {
        let readme = fs::read_to_string(tracefs.path("README")).unwrap_or_default();
        Support {
            dynamic_events: tracefs.path("dynamic_events").exists(),
            kprobes: tracefs.path("kprobe_events").exists(),
            uprobes: tracefs.path("uprobe_events").exists(),
            ustring: readme.contains("ustring"),
            args: readme.contains("$arg<N>"),
            fprobes: readme.contains("f[:[<group>/][<event>]]"),
        }
    }

    /// The control file used to create kprobes (`dynamic_events`, else `kprobe_events`).
    pub fn kprobe_control(&self) -> &'static str {
        if self.dynamic_events {
            "dynamic_events"
        } else {
            "kprobe_events"
        }
    }
}

/// Fails with an explanation naming CONFIG_UPROBE_EVENTS unless uprobes are available.
pub fn require_uprobes(tracefs: &Tracefs) -> Result<Support> {
    let s = Support::detect(tracefs);
    if !s.uprobes {
        bail!(
            "this kernel has no uprobe events ({} does not exist): it was built without CONFIG_UPROBE_EVENTS; use a kernel with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y",
            tracefs.path("uprobe_events").display()
        );
    }
    Ok(s)
}

/// Fails with an explanation naming CONFIG_KPROBE_EVENTS unless kprobes are available.
pub fn require_kprobes(tracefs: &Tracefs) -> Result<Support> {
    let s = Support::detect(tracefs);
    if !s.kprobes {
        bail!(
            "this kernel has no kprobe events ({} does not exist): it was built without CONFIG_KPROBE_EVENTS; use a kernel with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y",
            tracefs.path("kprobe_events").display()
        );
    }
    Ok(s)
}

/// One entry of tracefs `error_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLogEntry {
    /// The message line without the timestamp, e.g. `trace_kprobe: error: Invalid fetch argument`.
    pub message: String,
    /// The command the kernel rejected (`Command:` line), if shown.
    pub command: Option<String>,
    /// 0-based byte position in `command` that the kernel's caret points at.
    pub position: Option<usize>,
}

impl ErrorLogEntry {
    /// Renders the entry for an error message: message, command and a caret line.
    pub fn render(&self) -> String {
        let mut s = self.message.clone();
        if let Some(cmd) = &self.command {
            s.push_str(&format!("\n  Command: {cmd}"));
            if let Some(p) = self.position {
                s.push_str(&format!(
                    "\n           {}^ (position {p}{})",
                    " ".repeat(p),
                    cmd.get(p..)
                        .filter(|t| !t.is_empty())
                        .map(|t| format!(": '{t}'"))
                        .unwrap_or_default()
                ));
            }
        }
        s
    }
}

/// Parses the text of tracefs `error_log`:
///
/// ```text
/// [  123.456789] trace_kprobe: error: Invalid fetch argument
///   Command: p:myprobe do_sys_open %ax:x32
///                                  ^
/// ```
pub fn parse_error_log(text: &str) -> Vec<ErrorLogEntry> {
    let mut out: Vec<ErrorLogEntry> = Vec::new();
    let mut cmd_col: Option<usize> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') && line.contains("error:") {
            let msg = match t.find(']') {
                Some(i) => t[i + 1..].trim(),
                None => t,
            };
            out.push(ErrorLogEntry {
                message: msg.to_string(),
                command: None,
                position: None,
            });
            cmd_col = None;
        } else if let Some(i) = line.find("Command: ") {
            if let Some(e) = out.last_mut() {
                e.command = Some(line[i + 9..].trim_end().to_string());
                cmd_col = Some(i + 9);
            }
        } else if t.starts_with('^') {
            if let (Some(e), Some(col)) = (out.last_mut(), cmd_col) {
                let caret = line.len() - t.len();
                e.position = caret.checked_sub(col);
            }
        }
    }
    out
}

/// A dynamic probe owned by this run, removed when dropped.
#[derive(Debug)]
pub struct Probe {
    control: PathBuf,
    group: String,
    event: String,
    definition: String,
    removed: bool,
}

fn append(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// Why a probe definition was rejected, with the kernel's explanation when it gave one.
#[derive(Debug)]
pub struct ProbeError {
    /// The full definition written.
    pub definition: String,
    /// The write error.
    pub os_error: std::io::Error,
    /// The new `error_log` entry, if the kernel wrote one.
    pub log: Option<ErrorLogEntry>,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the kernel rejected the probe '{}' ({})",
            self.definition, self.os_error
        )?;
        if let Some(l) = &self.log {
            write!(f, ":\n  {}", l.render())?;
        }
        Ok(())
    }
}

impl std::error::Error for ProbeError {}

impl Probe {
    /// Creates the probe `<kind>:ptrs_<pid>/<event> <rest>` through `control`
    /// (`dynamic_events` or `kprobe_events`). `kind` is `p`, `r` (optionally with a
    /// maxactive number) or `e`; `event` must be a valid name ([`sanitize_event_name`]).
    /// On rejection the error is a [`ProbeError`] carrying the `error_log` entry.
    pub fn create(
        tracefs: &Tracefs,
        control: &str,
        kind: &str,
        event: &str,
        rest: &str,
    ) -> Result<Probe> {
        if !is_valid_name(event) {
            bail!("invalid probe event name {event:?}");
        }
        perf_tools_core::fdreserve::reserve()?;
        let control = tracefs.path(control);
        let group = group_name(std::process::id());
        let definition = format!("{kind}:{group}/{event} {rest}");
        let log_path = tracefs.path("error_log");
        let before = fs::read_to_string(&log_path).unwrap_or_default();
        let mut r = append(&control, &definition);
        if matches!(&r, Err(e) if e.kind() == ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::EBUSY))
        {
            // Left by an earlier process with our pid: take the name over.
            let _ = append(&control, &format!("-:{group}/{event}"));
            r = append(&control, &definition);
        }
        if let Err(os_error) = r {
            let after = fs::read_to_string(&log_path).unwrap_or_default();
            let log = if after != before {
                parse_error_log(&after).pop()
            } else {
                None
            };
            return Err(ProbeError {
                definition,
                os_error,
                log,
            }
            .into());
        }
        Ok(Probe {
            control,
            group,
            event: event.to_string(),
            definition,
            removed: false,
        })
    }

    /// The event group (`ptrs_<pid>`).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The event name.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The definition as written to the kernel.
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// Reads the probe's `events/<group>/<event>/format` from the top level.
    pub fn format(&self, tracefs: &Tracefs) -> Result<String> {
        let p = tracefs.path(format!("events/{}/{}/format", self.group, self.event));
        crate::tracefs::read_file(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// Removes the probe now, reporting failure. Dropping does the same with a warning.
    pub fn remove(mut self) -> Result<()> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        perf_tools_core::fdreserve::release();
        remove_probe(&self.control, &self.group, &self.event)
    }
}

/// Removes `group/event` through `control`, retrying for up to 2 s while the kernel
/// reports it busy (an instance that enabled it is still being removed).
fn remove_probe(control: &std::path::Path, group: &str, event: &str) -> Result<()> {
    let cmd = format!("-:{group}/{event}");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match append(control, &cmd) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOENT) => {
                return Ok(())
            }
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "removing probe {group}/{event} (still enabled in some trace instance?); remove it with: echo '{cmd}' >> {}",
                        control.display()
                    )
                })
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Err(e) = self.remove_inner() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// Parses one line of `dynamic_events`/`kprobe_events` into (group, event) when it is a
/// probe definition (`p:g/e ...`, `r10:g/e ...`, `e:g/e ...`).
pub fn parse_probe_line(line: &str) -> Option<(&str, &str)> {
    let first = line.split_whitespace().next()?;
    let (kind, name) = first.split_once(':')?;
    if kind.is_empty() || !kind.starts_with(['p', 'r', 'e', 'f', 't']) {
        return None;
    }
    name.split_once('/')
}

/// Removes probes named like ours (`ptrs_<pid>/...`) whose owning process is gone.
/// Returns a description of each probe removed.
pub fn remove_stale(tracefs: &Tracefs) -> Vec<String> {
    let mut removed = Vec::new();
    // dynamic_events (4.17+) lists every kind; older kernels have one file per kind.
    for control in ["dynamic_events", "kprobe_events", "uprobe_events"] {
        let path = tracefs.path(control);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines() {
            let Some((group, event)) = parse_probe_line(line) else {
                continue;
            };
            let Some(pid) = group_owner_pid(group) else {
                continue;
            };
            if pid == std::process::id() || pid_alive(pid) {
                continue;
            }
            match remove_probe(&path, group, event) {
                Ok(()) => removed.push(format!("stale probe {group}/{event}")),
                Err(e) => eprintln!("warning: {e:#}"),
            }
        }
        if control == "dynamic_events" && path.exists() {
            // It lists every kprobe and uprobe too: nothing left for the other files.
            break;
        }
    }
    removed
}

/// This architecture's argument and return-value registers, in the fetch syntax.
pub fn register_names() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "%di %si %dx %cx %r8 %r9 (arguments 1-6), %ax (return value)",
        "aarch64" => "%x0..%x7 (arguments 1-8), %x0 (return value)",
        "riscv64" => "%a0..%a7 (arguments), %a0 (return value)",
        "s390x" => "%r2..%r6 (arguments), %r2 (return value)",
        "powerpc64" => "%r3..%r10 (arguments), %r3 (return value)",
        _ => "see Documentation/trace/kprobetrace.rst for this architecture",
    }
}

/// A hint for a rejected definition that uses architecture-specific registers.
pub fn register_hint(definition: &str) -> Option<String> {
    if !definition.contains('%') {
        return None;
    }
    let arch = std::env::consts::ARCH;
    let regs = register_names();
    Some(format!(
        "hint: register names are architecture-specific (this is {arch}: {regs}); the portable forms are $arg1, $arg2, ... and $retval (Linux 4.20+)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize_event_name("foo.isra.0"), "foo_isra_0");
        assert_eq!(sanitize_event_name("do_sys_openat2"), "do_sys_openat2");
        assert_eq!(sanitize_event_name("9lives"), "_9lives");
        assert_eq!(sanitize_event_name(""), "_");
        assert_eq!(sanitize_event_name("a-b+0x10"), "a_b_0x10");
        assert_eq!(sanitize_event_name(&"x".repeat(100)).len(), MAX_NAME_LEN);
        for s in ["foo.isra.0", "9", "", "ä/ö"] {
            assert!(is_valid_name(&sanitize_event_name(s)), "{s}");
        }
        assert!(!is_valid_name("foo.isra.0"));
    }

    #[test]
    fn group_names_carry_the_pid() {
        assert_eq!(group_name(42), "ptrs_42");
        assert_eq!(group_owner_pid("ptrs_42"), Some(42));
        assert_eq!(group_owner_pid("ptrs_"), None);
        assert_eq!(group_owner_pid("ptrs_4a"), None);
        assert_eq!(group_owner_pid("kprobes"), None);
    }

    #[test]
    fn parses_probe_lines() {
        assert_eq!(
            parse_probe_line("p:ptrs_12/open do_sys_openat2 fn=+0($arg2):ustring"),
            Some(("ptrs_12", "open"))
        );
        assert_eq!(
            parse_probe_line("r16:ptrs_12/ret do_sys_openat2 ret=$retval"),
            Some(("ptrs_12", "ret"))
        );
        assert_eq!(
            parse_probe_line("e:ptrs_3/x syscalls/sys_enter_openat fn=+0($filename):ustring"),
            Some(("ptrs_3", "x"))
        );
        assert_eq!(parse_probe_line("mysynth u64 lat; pid_t pid"), None);
    }

    #[test]
    fn parses_error_log() {
        let log = "[  123.456789] trace_kprobe: error: Invalid fetch argument\n  Command: p:myprobe do_sys_open %ax:x32 bad\n                                 ^\n[  130.000001] trace_kprobe: error: Unknown symbol\n  Command: p:ptrs_1/x nosuchfunc\n                      ^\n";
        let e = parse_error_log(log);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].message, "trace_kprobe: error: Invalid fetch argument");
        assert_eq!(
            e[0].command.as_deref(),
            Some("p:myprobe do_sys_open %ax:x32 bad")
        );
        assert_eq!(e[0].position, Some(22));
        assert_eq!(e[1].message, "trace_kprobe: error: Unknown symbol");
        assert_eq!(e[1].position, Some(11));
        let r = e[1].render();
        assert!(r.contains("position 11: 'nosuchfunc'"), "{r}");
        assert!(parse_error_log("").is_empty());
    }

    #[test]
    fn register_hint_only_for_registers() {
        assert!(register_hint("p:x do_sys_open $arg2").is_none());
        assert!(register_hint("p:x do_sys_open %si")
            .unwrap_or_default()
            .contains("$arg1"));
    }
}
