//! Sources of arguments: the probes each needs, and the decoding of every event by the
//! kernel's format files.

use anyhow::{bail, Result};

use perf_tools_ftrace::format::{EventFormat, Field};
use perf_tools_ftrace::probe::{Probe, Support};
use perf_tools_ftrace::tracefs::Tracefs;

/// Where the arguments come from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Event probes (`e:`) on `syscalls/sys_enter_execve` and `sys_enter_execveat`
    /// fetching the file name and the argv strings (5.15+).
    Eprobe,
    /// Kprobes on the execve/execveat syscall entry functions fetching the same from the
    /// saved user registers.
    Kprobe,
    /// No dynamic probes: the `sched:sched_process_exec` tracepoint (file name, pid) and
    /// `/proc/PID/cmdline` read right after the event.
    Proc,
}

impl Source {
    /// A description for `-v` and `--check`.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Eprobe => "event probes on the execve/execveat syscall tracepoints fetching the argument strings",
            Source::Kprobe => "kprobes on the execve/execveat syscall functions fetching the argument strings",
            Source::Proc => "the sched_process_exec tracepoint, with arguments read from /proc/PID/cmdline right after each exec",
        }
    }

    /// The SRC column (`-v`) of rows whose arguments this source fetched.
    pub fn tag(self) -> &'static str {
        match self {
            Source::Eprobe => "eprobe",
            Source::Kprobe => "kprobe",
            Source::Proc => SRC_PROC,
        }
    }
}

/// SRC of arguments read from `/proc/PID/cmdline` after the exec.
pub const SRC_PROC: &str = "proc";

/// The tracepoints every source uses: (event, kind).
pub const SCHED: [(&str, Kind); 3] = [
    ("sched_process_exec", Kind::Exec),
    ("sched_process_fork", Kind::Fork),
    ("sched_process_exit", Kind::Exit),
];

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A successful exec: new pid, old pid (the thread that called exec), file name.
    Exec,
    /// A fork or clone: the parent thread and the child.
    Fork,
    /// A thread exited.
    Exit,
    /// `task:task_newtask`: a new task and its clone flags (thread or process).
    NewTask,
    /// A probe at exec entry with the file name and arguments.
    Args,
}

/// The arguments a probe fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// argv[0], argv[1], ... (at most as many as the probe fetches), and whether
    /// argv has more entries than shown.
    Args(Vec<Vec<u8>>, bool),
    /// A string could not be fetched (a page not present): the arguments are not known
    /// from the probe.
    Fault,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// `sched_process_exec`.
    Exec {
        /// The process id after the exec.
        pid: u32,
        /// The thread that called exec (differs from `pid` when a thread other than the
        /// leader exec'd).
        old_pid: u32,
        /// The file name given to exec.
        filename: Vec<u8>,
    },
    /// `sched_process_fork`.
    Fork {
        /// The thread that forked.
        parent: u32,
        /// The new thread or process.
        child: u32,
    },
    /// `task_newtask`.
    NewTask {
        /// The thread that created it.
        parent: u32,
        /// The new task.
        child: u32,
        /// Its clone flags.
        flags: u64,
    },
    /// `sched_process_exit`.
    Exit {
        /// The thread that exited.
        pid: u32,
    },
    /// An exec entry probe.
    Args {
        /// The thread calling exec.
        tid: u32,
        /// What it fetched.
        args: Fetched,
    },
    /// Events were lost on some CPU, none newer than `until` (a time stamp).
    Gap {
        /// The end of the gap.
        until: u64,
    },
}

/// Decodes one event (by its format file) into an [`Ev`].
#[derive(Debug, Clone)]
pub struct EventDecoder {
    /// The event's id.
    pub id: u16,
    kind: Kind,
    a: Option<Field>,
    b: Option<Field>,
    name: Option<Field>,
    ptrs: Vec<Field>,
    strs: Vec<Field>,
}

impl EventDecoder {
    /// A decoder of an event of `kind` with format `fmt`.
    pub fn new(fmt: &EventFormat, kind: Kind) -> Result<EventDecoder> {
        let mut d = EventDecoder {
            id: fmt.id,
            kind,
            a: None,
            b: None,
            name: None,
            ptrs: Vec::new(),
            strs: Vec::new(),
        };
        match kind {
            Kind::Exec => {
                d.a = Some(fmt.require("pid")?);
                d.b = Some(fmt.require("old_pid")?);
                d.name = Some(fmt.require("filename")?);
            }
            Kind::Fork => {
                d.a = Some(fmt.require("parent_pid")?);
                d.b = Some(fmt.require("child_pid")?);
            }
            Kind::Exit => d.a = Some(fmt.require("pid")?),
            Kind::NewTask => {
                d.a = Some(fmt.require("common_pid")?);
                d.b = Some(fmt.require("pid")?);
                d.name = Some(fmt.require("clone_flags")?);
            }
            Kind::Args => {
                d.a = Some(fmt.require("common_pid")?);
                let mut i = 0;
                while let (Some(p), Some(s)) =
                    (fmt.field(&format!("p{i}")), fmt.field(&format!("a{i}")))
                {
                    d.ptrs.push(p.clone());
                    d.strs.push(s.clone());
                    i += 1;
                }
                if i < 2 {
                    bail!("event {} has no argument fields p0/a0, p1/a1", fmt.name);
                }
            }
        }
        Ok(d)
    }

    /// Decodes one payload of this decoder's event.
    pub fn decode(&self, payload: &[u8]) -> Option<Ev> {
        let int = |f: &Option<Field>| -> Option<u32> {
            f.as_ref()
                .and_then(|f| f.read_i64(payload))
                .map(|v| v as u32)
        };
        Some(match self.kind {
            Kind::Exec => Ev::Exec {
                pid: int(&self.a)?,
                old_pid: int(&self.b)?,
                filename: self.name.as_ref()?.read_bytes(payload).to_vec(),
            },
            Kind::Fork => Ev::Fork {
                parent: int(&self.a)?,
                child: int(&self.b)?,
            },
            Kind::Exit => Ev::Exit { pid: int(&self.a)? },
            Kind::NewTask => Ev::NewTask {
                parent: int(&self.a)?,
                child: int(&self.b)?,
                flags: self.name.as_ref()?.read_u64(payload)?,
            },
            Kind::Args => {
                let tid = int(&self.a)?;
                let mut args = Vec::new();
                let mut more = true;
                let mut fault = false;
                for (p, s) in self.ptrs.iter().zip(&self.strs) {
                    let ptr = p.read_u64(payload)?;
                    if ptr == 0 {
                        // argv's terminating NULL.
                        more = false;
                        break;
                    }
                    match s.read_fetched_string(payload) {
                        Some(a) => args.push(a.to_vec()),
                        None => {
                            fault = true;
                            break;
                        }
                    }
                }
                // The last entry fetched only tells whether there are more.
                if more && !fault && args.len() == self.strs.len() {
                    args.pop();
                }
                Ev::Args {
                    tid,
                    args: if fault || args.is_empty() {
                        Fetched::Fault
                    } else {
                        Fetched::Args(args, more)
                    },
                }
            }
        })
    }
}

/// The size of a user pointer (argv's entries).
const PTR: usize = std::mem::size_of::<usize>();

/// The fetch arguments of an argv at `argv` (a fetch argument yielding its address):
/// `p<i>` the pointer and `a<i>` the string, for argv[0] ..= argv[n], n = `argc` + 1.
pub fn argv_fetches(argv: &str, argc: usize, string: &str) -> String {
    let mut s = String::new();
    for i in 0..=argc + 1 {
        let off = i * PTR;
        s.push_str(&format!(
            " p{i}=+u{off}({argv}):x64 a{i}=+0(+u{off}({argv})):{string}"
        ));
    }
    s
}

/// The syscall entry functions and where their user registers keep the argv pointer,
/// on this architecture: (function, argv fetch).
fn syscall_functions() -> &'static [(&'static str, &'static str)] {
    if cfg!(target_arch = "x86_64") {
        // struct pt_regs: si at 104 (execve's argv), dx at 96 (execveat's argv).
        &[
            ("__x64_sys_execve", "+104($arg1)"),
            ("__x64_sys_execveat", "+96($arg1)"),
        ]
    } else if cfg!(target_arch = "aarch64") {
        // struct pt_regs: regs[1] at 8, regs[2] at 16.
        &[
            ("__arm64_sys_execve", "+8($arg1)"),
            ("__arm64_sys_execveat", "+16($arg1)"),
        ]
    } else {
        &[]
    }
}

/// A rejected probe in one line: the definition (36 fetch arguments) is left out; the
/// kernel's error_log entry, if it wrote one, is kept.
fn short_rejection(e: anyhow::Error, what: &str) -> anyhow::Error {
    match e.downcast_ref::<perf_tools_ftrace::probe::ProbeError>() {
        Some(p) => {
            let log = p
                .log
                .as_ref()
                .map(|l| format!(": {}", l.message))
                .unwrap_or_default();
            anyhow::anyhow!("the kernel rejected {what} ({}){log}", p.os_error)
        }
        None => e,
    }
}

/// Creates the probes of one source (pushed onto `probes`). Returns the (system, event,
/// kind) list to enable, or an error explaining why this source is unavailable.
pub fn create_source(
    tracefs: &Tracefs,
    support: &Support,
    source: Source,
    argc: usize,
    has: impl Fn(&str, &str) -> bool,
    probes: &mut Vec<Probe>,
) -> Result<Vec<(String, String, Kind)>> {
    let mut events: Vec<(String, String, Kind)> = SCHED
        .iter()
        .map(|(e, k)| ("sched".to_string(), e.to_string(), *k))
        .collect();
    // Tells threads from processes, for parents known from the events alone.
    if has("task", "task_newtask") {
        events.push(("task".into(), "task_newtask".into(), Kind::NewTask));
    }
    match source {
        Source::Eprobe => {
            if !support.dynamic_events {
                bail!("no dynamic_events file (Linux 4.17+)");
            }
            if !support.ustring {
                bail!("no ustring fetch type (Linux 5.5+)");
            }
            let readme = std::fs::read_to_string(tracefs.path("README")).unwrap_or_default();
            if !readme.contains("<attached-group>") {
                bail!("this kernel has no event probes (tracefs README lists no e: probe type; CONFIG_EPROBE_EVENTS)");
            }
            let mut made = 0;
            for call in ["execve", "execveat"] {
                if !has("syscalls", &format!("sys_enter_{call}")) {
                    continue;
                }
                let name = format!("execsnoop_{call}");
                let def = format!(
                    "syscalls.sys_enter_{call}{}",
                    argv_fetches("$argv", argc, "ustring")
                );
                let p =
                    Probe::create(tracefs, "dynamic_events", "e", &name, &def).map_err(|e| {
                        short_rejection(e, &format!("an event probe on syscalls.sys_enter_{call}"))
                    })?;
                events.push((p.group().to_string(), name, Kind::Args));
                probes.push(p);
                made += 1;
            }
            if made == 0 {
                bail!("no syscalls/sys_enter_execve tracepoint (CONFIG_FTRACE_SYSCALLS)");
            }
        }
        Source::Kprobe => {
            if !support.kprobes {
                bail!("no kprobe_events (CONFIG_KPROBE_EVENTS)");
            }
            if !support.args || !support.ustring {
                bail!("no $argN fetch arguments or ustring type (Linux 5.5+)");
            }
            let funcs = syscall_functions();
            if funcs.is_empty() {
                bail!(
                    "no syscall register layout known for {}",
                    std::env::consts::ARCH
                );
            }
            for (i, (func, argv)) in funcs.iter().enumerate() {
                let name = if i == 0 {
                    "execsnoop_execve"
                } else {
                    "execsnoop_execveat"
                };
                let def = format!("{func}{}", argv_fetches(argv, argc, "ustring"));
                match Probe::create(tracefs, support.kprobe_control(), "p", name, &def)
                    .map_err(|e| short_rejection(e, &format!("a kprobe on {func}")))
                {
                    Ok(p) => {
                        events.push((p.group().to_string(), p.event().to_string(), Kind::Args));
                        probes.push(p);
                    }
                    // execveat is optional; execve is not.
                    Err(e) if i == 0 => return Err(e),
                    Err(_) => {}
                }
            }
        }
        Source::Proc => {}
    }
    Ok(events)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixture(name: &str) -> EventFormat {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/formats/6.18/"
        );
        EventFormat::parse(&std::fs::read_to_string(format!("{dir}{name}")).unwrap()).unwrap()
    }

    #[test]
    fn decodes_the_sched_events_by_their_real_formats() {
        let f = fixture("sched_process_exec");
        let d = EventDecoder::new(&f, Kind::Exec).unwrap();
        let mut p = vec![0u8; 20];
        p[..2].copy_from_slice(&f.id.to_ne_bytes());
        p[8..12].copy_from_slice(&((8u32 << 16) | 20).to_ne_bytes());
        p[12..16].copy_from_slice(&42i32.to_ne_bytes());
        p[16..20].copy_from_slice(&43i32.to_ne_bytes());
        p.extend_from_slice(b"/bin/ls\0");
        assert_eq!(
            d.decode(&p).unwrap(),
            Ev::Exec {
                pid: 42,
                old_pid: 43,
                filename: b"/bin/ls".to_vec()
            }
        );
        let f = fixture("sched_process_fork");
        let d = EventDecoder::new(&f, Kind::Fork).unwrap();
        let mut p = vec![0u8; 24];
        p[12..16].copy_from_slice(&7i32.to_ne_bytes());
        p[20..24].copy_from_slice(&8i32.to_ne_bytes());
        assert_eq!(
            d.decode(&p).unwrap(),
            Ev::Fork {
                parent: 7,
                child: 8
            }
        );
        let f = fixture("task_newtask");
        let d = EventDecoder::new(&f, Kind::NewTask).unwrap();
        let mut p = vec![0u8; 42];
        p[4..8].copy_from_slice(&5i32.to_ne_bytes());
        p[8..12].copy_from_slice(&6i32.to_ne_bytes());
        p[32..40].copy_from_slice(&0x10000u64.to_ne_bytes());
        assert_eq!(
            d.decode(&p).unwrap(),
            Ev::NewTask {
                parent: 5,
                child: 6,
                flags: 0x10000
            }
        );
        let f = fixture("sched_process_exit");
        let d = EventDecoder::new(&f, Kind::Exit).unwrap();
        let mut p = vec![0u8; 36];
        p[24..28].copy_from_slice(&9i32.to_ne_bytes());
        assert_eq!(d.decode(&p).unwrap(), Ev::Exit { pid: 9 });
    }

    /// The format the kernel writes for an args probe with `argc` 1 (p0..p2, a0..a2).
    pub(crate) const ARGS_FORMAT: &str = "name: execsnoop_execve\nID: 3001\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:u64 p0;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:__data_loc char[] a0;\toffset:16;\tsize:4;\tsigned:1;\n\
\tfield:u64 p1;\toffset:20;\tsize:8;\tsigned:0;\n\
\tfield:__data_loc char[] a1;\toffset:28;\tsize:4;\tsigned:1;\n\
\tfield:u64 p2;\toffset:32;\tsize:8;\tsigned:0;\n\
\tfield:__data_loc char[] a2;\toffset:40;\tsize:4;\tsigned:1;\n\n\
print fmt: \"(%lx)\", REC->p0\n";

    /// An args payload: `args` with `None` for a fault, `ptrs` the pointers.
    pub(crate) fn args_payload(tid: u32, ptrs: [u64; 3], args: [Option<&[u8]>; 3]) -> Vec<u8> {
        let mut p = vec![0u8; 44];
        p[..2].copy_from_slice(&3001u16.to_ne_bytes());
        p[4..8].copy_from_slice(&(tid as i32).to_ne_bytes());
        for i in 0..3 {
            p[8 + 12 * i..16 + 12 * i].copy_from_slice(&ptrs[i].to_ne_bytes());
            let start = p.len() as u32;
            let len = match args[i] {
                Some(a) => {
                    p.extend_from_slice(a);
                    p.push(0);
                    a.len() as u32 + 1
                }
                None => 0,
            };
            p[16 + 12 * i..20 + 12 * i].copy_from_slice(&((len << 16) | start).to_ne_bytes());
        }
        p
    }

    #[test]
    fn args_end_at_the_null_pointer_and_a_fault_is_not_an_end() {
        let f = EventFormat::parse(ARGS_FORMAT).unwrap();
        let d = EventDecoder::new(&f, Kind::Args).unwrap();
        let args = |ptrs, a| match d.decode(&args_payload(5, ptrs, a)).unwrap() {
            Ev::Args { args, .. } => args,
            e => panic!("{e:?}"),
        };
        // ls "" (an empty argument is not a fault), then argv's NULL.
        assert_eq!(
            args([1, 2, 0], [Some(b"ls"), Some(b""), None]),
            Fetched::Args(vec![b"ls".to_vec(), Vec::new()], false)
        );
        // A third entry exists: more than -a 1 shows.
        assert_eq!(
            args([1, 2, 3], [Some(b"ls"), Some(b"-l"), Some(b"x")]),
            Fetched::Args(vec![b"ls".to_vec(), b"-l".to_vec()], true)
        );
        // A string the kernel could not fetch behind a non-NULL pointer.
        assert_eq!(args([1, 2, 0], [Some(b"ls"), None, None]), Fetched::Fault);
    }

    #[test]
    fn probe_definitions_fetch_pointers_and_strings_up_to_argc_plus_one() {
        let s = argv_fetches("$argv", 1, "ustring");
        assert_eq!(
            s,
            " p0=+u0($argv):x64 a0=+0(+u0($argv)):ustring p1=+u8($argv):x64 a1=+0(+u8($argv)):ustring p2=+u16($argv):x64 a2=+0(+u16($argv)):ustring"
        );
    }
}
