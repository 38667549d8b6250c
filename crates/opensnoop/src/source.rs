//! Event sources: where file names come from, the probes each needs, and the decoding
//! of their events by the kernel's format files.

use anyhow::{bail, Context, Result};

use perf_tools_ftrace::format::{EventFormat, Field};
use perf_tools_ftrace::probe::{Probe, Support};
use perf_tools_ftrace::tracefs::Tracefs;

use crate::row::SRC_PROC;

/// Where file names come from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Event probes (`e:`) on `syscalls/sys_enter_*` fetching the user string (5.15+).
    Eprobe,
    /// A kprobe on `do_sys_openat2` (5.6+) or `do_sys_open` with a `$arg2` string fetch.
    Kprobe,
    /// The original's kretprobe on `getname()`.
    Getname,
    /// Uprobes on the C library's open functions fetching the path argument, matched to
    /// the syscall by thread and by the path's address; opens that bypass the C library
    /// (static binaries, direct syscalls) are resolved as with [`Source::ProcFd`].
    Uprobe,
    /// No dynamic probes: successful opens resolved from `/proc/PID/fd/FD` afterwards.
    ProcFd,
}

impl Source {
    /// A description for `-v`.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Eprobe => "event probes on the syscalls' enter tracepoints fetching the user string",
            Source::Kprobe => "a kprobe on the kernel's open function fetching $arg2 as a string",
            Source::Getname => "a kretprobe on getname() (the original's method)",
            Source::Uprobe => "uprobes on the C library's open functions fetching the path argument; opens that bypass it (static binaries, direct syscalls) resolved from /proc/PID/fd/FD afterwards",
            Source::ProcFd => "syscall tracepoints only; paths of successful opens read from /proc/PID/fd/FD afterwards",
        }
    }

    /// True if some successful opens are resolved from `/proc/PID/fd/FD` afterwards
    /// (all of them, or those the probes miss).
    pub fn resolves_from_proc(self) -> bool {
        matches!(self, Source::ProcFd | Source::Uprobe)
    }

    /// The SRC column (`-v`) of rows whose name this source read.
    pub fn tag(self) -> &'static str {
        match self {
            Source::Eprobe => "eprobe",
            Source::Kprobe => "kprobe",
            Source::Getname => "getname",
            Source::Uprobe => "uprobe",
            Source::ProcFd => SRC_PROC,
        }
    }
}

/// The open syscalls, traced when the kernel has their tracepoints.
pub const SYSCALLS: &[&str] = &["open", "openat", "openat2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Syscall entry: forget any name remembered for the thread.
    Enter,
    /// A probe hit carrying the name (and perhaps comm).
    Name,
    /// A uprobe hit at a C library open function: the name, its address `ptr` (to be
    /// matched with the next syscall entry of the thread) and perhaps comm.
    UName,
    /// Syscall exit with the return value.
    Exit,
    /// `task:task_rename` (exec, prctl PR_SET_NAME, a write to /proc/TID/comm): `tid` is
    /// the renamed thread, `name` its new comm and `comm` its old one.
    Rename,
    /// Events were lost on some CPU, none newer than `ret` (a time stamp): names
    /// remembered before it may belong to lost exits.
    Gap,
}

/// Decodes one event (by its format file) into an [`Ev`].
pub(crate) struct EventDecoder {
    pub id: u16,
    pub kind: Kind,
    pid: Field,
    name: Option<Field>,
    pub comm: Option<Field>,
    ret: Option<Field>,
    ptr: Option<Field>,
}

/// One decoded event.
pub(crate) struct Ev {
    pub kind: Kind,
    pub tid: u32,
    pub ret: i64,
    pub name: Option<Vec<u8>>,
    pub comm: Option<Vec<u8>>,
    /// The file name's address (syscall entry: `filename`; uprobe: `ptr`).
    pub ptr: Option<u64>,
}

impl EventDecoder {
    pub fn new(fmt: &EventFormat, kind: Kind) -> Result<EventDecoder> {
        if kind == Kind::Rename {
            return Ok(EventDecoder {
                id: fmt.id,
                kind,
                pid: fmt.require("pid")?,
                name: Some(fmt.require("newcomm")?),
                comm: Some(fmt.require("oldcomm")?),
                ret: None,
                ptr: None,
            });
        }
        Ok(EventDecoder {
            id: fmt.id,
            kind,
            pid: fmt.require("common_pid")?,
            name: if matches!(kind, Kind::Name | Kind::UName) {
                Some(fmt.require("fn")?)
            } else {
                None
            },
            comm: fmt.field("comm").cloned(),
            ret: if kind == Kind::Exit {
                Some(fmt.require("ret")?)
            } else {
                None
            },
            ptr: match kind {
                Kind::Enter => fmt.field("filename").cloned(),
                Kind::UName => Some(fmt.require("ptr")?),
                _ => None,
            },
        })
    }

    pub fn decode(&self, payload: &[u8]) -> Option<Ev> {
        Some(Ev {
            kind: self.kind,
            tid: self.pid.read_i64(payload)? as u32,
            ret: self
                .ret
                .as_ref()
                .and_then(|f| f.read_i64(payload))
                .unwrap_or(0),
            name: self.name.as_ref().map(|f| f.read_bytes(payload).to_vec()),
            comm: self.comm.as_ref().map(|f| f.read_bytes(payload).to_vec()),
            ptr: self.ptr.as_ref().and_then(|f| f.read_u64(payload)),
        })
    }
}

/// The C library and its open functions' uprobe targets, found once: reading its ELF
/// tables takes milliseconds, done while the kernel applies the instance's settings.
#[derive(Debug)]
pub(crate) struct Libc {
    /// Where it is, if found.
    pub path: Option<std::path::PathBuf>,
    /// Its open functions, or why they could not be read.
    pub targets: std::result::Result<Vec<crate::elf::Target>, String>,
}

impl Libc {
    /// Finds the C library and reads its open functions.
    pub fn find() -> Libc {
        let path = crate::elf::system_libc();
        let targets = match &path {
            Some(p) => crate::elf::open_targets(p).map_err(|e| format!("{e:#}")),
            None => Ok(Vec::new()),
        };
        Libc { path, targets }
    }
}

/// Tries to create the probes of one source. Returns the probes and the (system, event,
/// kind) list to enable, or an error explaining why this source is unavailable.
pub(crate) fn create_source(
    tracefs: &Tracefs,
    support: &Support,
    source: Source,
    syscalls: &[&str],
    libc: &Libc,
    probes: &mut Vec<Probe>,
) -> Result<Vec<(String, String, Kind)>> {
    let string = if support.ustring { "ustring" } else { "string" };
    let mut events = Vec::new();
    let enters = |events: &mut Vec<(String, String, Kind)>| {
        for s in syscalls {
            events.push((
                "syscalls".to_string(),
                format!("sys_enter_{s}"),
                Kind::Enter,
            ));
        }
    };
    match source {
        Source::Eprobe => {
            if !support.dynamic_events {
                bail!("no dynamic_events file");
            }
            for s in syscalls {
                let name = format!("opensnoop_{s}");
                let target = format!("syscalls.sys_enter_{s}");
                let p = Probe::create(
                    tracefs,
                    "dynamic_events",
                    "e",
                    &name,
                    &format!("{target} fn=+0($filename):{string} comm=$comm:string"),
                )
                .or_else(|_| {
                    Probe::create(
                        tracefs,
                        "dynamic_events",
                        "e",
                        &name,
                        &format!("{target} fn=+0($filename):{string}"),
                    )
                })?;
                events.push((p.group().to_string(), name, Kind::Name));
                probes.push(p);
            }
        }
        Source::Kprobe => {
            if !support.kprobes {
                bail!("no kprobe_events (CONFIG_KPROBE_EVENTS)");
            }
            if !support.args {
                bail!("no $argN fetch arguments (Linux 4.20+)");
            }
            let control = support.kprobe_control();
            let mut last = None;
            for func in ["do_sys_openat2", "do_sys_open"] {
                match Probe::create(
                    tracefs,
                    control,
                    "p",
                    "opensnoop_name",
                    &format!("{func} fn=+0($arg2):{string} comm=$comm"),
                ) {
                    Ok(p) => {
                        enters(&mut events);
                        events.push((p.group().to_string(), p.event().to_string(), Kind::Name));
                        probes.push(p);
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        Source::Getname => {
            if !support.kprobes {
                bail!("no kprobe_events (CONFIG_KPROBE_EVENTS)");
            }
            let p = Probe::create(
                tracefs,
                support.kprobe_control(),
                "r",
                "opensnoop_getname",
                "getname fn=+0(+0($retval)):string comm=$comm",
            )?;
            enters(&mut events);
            events.push((p.group().to_string(), p.event().to_string(), Kind::Name));
            probes.push(p);
        }
        Source::Uprobe => {
            if !tracefs.path("uprobe_events").exists() {
                bail!("no uprobe_events (CONFIG_UPROBE_EVENTS)");
            }
            let Some(libc_path) = libc.path.as_ref() else {
                bail!("no C library found (opensnoop is not linked with one, and none is in the usual places)");
            };
            let targets = match &libc.targets {
                Ok(t) => t.clone(),
                Err(e) => bail!("{e}"),
            };
            let path = libc_path
                .to_str()
                .filter(|p| !p.contains(char::is_whitespace));
            let Some(path) = path else {
                bail!(
                    "the C library's path {} cannot be given to the kernel",
                    libc_path.display()
                );
            };
            let mut defs = Vec::with_capacity(targets.len());
            for t in &targets {
                let Some(reg) = crate::elf::arg_register(t.path_arg) else {
                    bail!("no argument registers known for {}", std::env::consts::ARCH);
                };
                defs.push((
                    t.names.join("/"),
                    format!(
                        "{path}:0x{:x} fn=+0({reg}):{string} ptr={reg}:x64 comm=$comm",
                        t.offset
                    ),
                ));
            }
            // One event with a probe on each function (the kernel appends probes with
            // the same argument types to an event): turning it off waits for one
            // grace period rather than one per function (~30 ms each, at the end).
            let first = probes.len();
            let event = "opensnoop_u";
            let mut made = 0;
            for (names, def) in &defs {
                let p = Probe::create(tracefs, "uprobe_events", "p", event, def)
                    .with_context(|| format!("uprobe on {names} in {path}"))?;
                probes.push(p);
                made += 1;
            }
            let group = probes.get(first).map(|p| p.group().to_string());
            let listed = group.as_ref().map_or(0, |g| {
                let head = format!("p:{g}/{event} ");
                std::fs::read_to_string(tracefs.path("uprobe_events"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with(&head))
                    .count()
            });
            if let (Some(g), true) = (group.as_ref(), listed == made) {
                events.push((g.clone(), event.to_string(), Kind::UName));
            } else {
                // A kernel that cannot append probes to an event (before 5.2), or
                // replaced one: an event per function.
                for p in probes.drain(first..) {
                    p.remove()?;
                }
                for (i, (names, def)) in defs.iter().enumerate() {
                    let event = format!("opensnoop_u{i}");
                    let p = Probe::create(tracefs, "uprobe_events", "p", &event, def)
                        .with_context(|| format!("uprobe on {names} in {path}"))?;
                    events.push((p.group().to_string(), event, Kind::UName));
                    probes.push(p);
                }
            }
            enters(&mut events);
        }
        Source::ProcFd => {}
    }
    for s in syscalls {
        events.push(("syscalls".to_string(), format!("sys_exit_{s}"), Kind::Exit));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_exit_and_enter_fixtures() {
        for k in ["5.10", "6.1", "6.12"] {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/formats/");
            let text = std::fs::read_to_string(format!("{dir}{k}/sys_exit_openat")).unwrap();
            let f = EventFormat::parse(&text).unwrap();
            let d = EventDecoder::new(&f, Kind::Exit).unwrap();
            let mut payload = vec![0u8; 24];
            payload[..2].copy_from_slice(&f.id.to_ne_bytes());
            payload[4..8].copy_from_slice(&1234i32.to_ne_bytes());
            payload[16..24].copy_from_slice(&(-2i64).to_ne_bytes());
            let ev = d.decode(&payload).unwrap();
            assert_eq!((ev.tid, ev.ret), (1234, -2), "{k}");
            let text = std::fs::read_to_string(format!("{dir}{k}/sys_enter_openat")).unwrap();
            let f = EventFormat::parse(&text).unwrap();
            // The enter tracepoint's filename is a user pointer, not a string.
            assert!(!f.require("filename").unwrap().is_string(), "{k}");
        }
    }
}
