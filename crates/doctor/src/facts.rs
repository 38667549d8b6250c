//! The facts of this host, gathered the way the tools would use them: files read, event
//! formats parsed, probes of this run created and removed, a private instance created
//! and removed, a counter opened for 1 ms. Each section is a [`Report`] whose item names
//! are the stable keys of `--json`.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use perf_tools_core::check::{Report, Status};
use perf_tools_core::privilege::{has_capability, Capability};
use perf_tools_ftrace::check::{self as fc, Location, MOUNT_COMMAND};
use perf_tools_ftrace::probe::Probe;
use perf_tools_ftrace::tracefs::{read_file, Tracefs};

/// One section of the table (and one object of `--json`).
#[derive(Debug, Clone)]
pub struct Section {
    /// The section's key: `tracefs`, `probes`, `tracers`, `events`, `cpu`, `container`.
    pub key: &'static str,
    /// Its title in the table.
    pub title: &'static str,
    /// The facts, each item's name being its key.
    pub facts: Report,
}

/// Every fact of this host.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The running kernel's release (`uname -r`).
    pub kernel: String,
    /// The sections, in table order.
    pub sections: Vec<Section>,
}

impl Facts {
    /// The status of fact `key` in section `section`, if it was checked.
    pub fn status(&self, section: &str, key: &str) -> Option<Status> {
        self.item(section, key).map(|i| i.status)
    }

    /// The fact `key` in section `section`.
    pub fn item(&self, section: &str, key: &str) -> Option<&perf_tools_core::check::Item> {
        self.sections
            .iter()
            .find(|s| s.key == section)?
            .facts
            .items
            .iter()
            .find(|i| i.name == key)
    }

    /// True when fact `key` of `section` was checked and is `yes`.
    pub fn yes(&self, section: &str, key: &str) -> bool {
        self.status(section, key) == Some(Status::Yes)
    }
}

fn yes_no(b: bool) -> Status {
    if b {
        Status::Yes
    } else {
        Status::No
    }
}

fn kernel_release() -> String {
    read_file(Path::new("/proc/sys/kernel/osrelease"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Gathers every fact. Creates (and removes before returning) a private instance
/// `instances/perf-tools-doctor-<pid>` and test probes in the group `ptrs_<pid>`.
pub fn gather() -> Facts {
    let location = fc::locate();
    let tracefs = match &location {
        Location::Mounted(t) if has_capability(Capability::SysAdmin) => Some(t.clone()),
        _ => None,
    };
    let mut tracefs_r = Report::new("tracefs");
    let mut probes = Report::new("probes");
    let mut tracers = Report::new("tracers");
    let mut events = Report::new("events");
    tracefs_section(&location, tracefs.as_ref(), &mut tracefs_r);
    if let Some(t) = &tracefs {
        // The instance is removed at the end of this block, before the probes (which
        // are removed as soon as each is verified).
        let inst = perf_tools_ftrace::cleanup::start_instance(t, "perf-tools-doctor");
        match &inst {
            Ok(i) => tracefs_r.item(
                "instances",
                Status::Yes,
                format!(
                    "private instance instances/{} created and removed",
                    i.name()
                ),
                "",
                false,
            ),
            Err(e) => tracefs_r.item(
                "instances",
                Status::No,
                format!("{e:#}"),
                "Linux 3.16+ with tracefs mounted read-write",
                false,
            ),
        };
        probes_section(t, &mut probes);
        tracers_section(t, inst.as_ref().ok(), &mut tracers);
        events_section(t, &mut events);
        if let Ok(i) = inst {
            if let Err(e) = i.remove() {
                eprintln!("perf-tools-doctor: warning: {e:#}");
            }
        }
    } else {
        let (why, fix) = match &location {
            Location::Mounted(_) => (
                "not checked: CAP_SYS_ADMIN is needed to use tracefs",
                "run as root (sudo), or grant CAP_SYS_ADMIN",
            ),
            Location::Mountable(_) => ("not checked: tracefs is not mounted", MOUNT_COMMAND),
            Location::Absent => (
                "not checked: this kernel has no tracefs",
                "use a kernel built with CONFIG_TRACING=y (CONFIG_FTRACE=y)",
            ),
        };
        for r in [&mut probes, &mut tracers, &mut events] {
            r.item("unchecked", Status::No, why, fix, false);
        }
    }
    let mut cpu = Report::new("cpu");
    cpu_section(&mut cpu);
    let mut container = Report::new("container");
    crate::container::gather(&mut container, &location);
    Facts {
        kernel: kernel_release(),
        sections: vec![
            Section {
                key: "tracefs",
                title: "TRACEFS",
                facts: tracefs_r,
            },
            Section {
                key: "probes",
                title: "DYNAMIC PROBES",
                facts: probes,
            },
            Section {
                key: "tracers",
                title: "TRACERS",
                facts: tracers,
            },
            Section {
                key: "events",
                title: "EVENTS",
                facts: events,
            },
            Section {
                key: "cpu",
                title: "CPU",
                facts: cpu,
            },
            Section {
                key: "container",
                title: "CONTAINER",
                facts: container,
            },
        ],
    }
}

/// The lockdown mode: the bracketed word of `/sys/kernel/security/lockdown`.
pub fn lockdown_mode(text: &str) -> Option<&str> {
    let start = text.find('[')?;
    let end = text[start..].find(']')?;
    Some(&text[start + 1..start + end])
}

fn tracefs_section(location: &Location, tracefs: Option<&Tracefs>, r: &mut Report) {
    match location {
        Location::Mounted(t) => r.item(
            "mount",
            Status::Yes,
            t.root().display().to_string(),
            "",
            false,
        ),
        Location::Mountable(p) => r.item(
            "mount",
            Status::Degraded,
            format!("not mounted ({} exists)", p.display()),
            MOUNT_COMMAND,
            false,
        ),
        Location::Absent => r.item(
            "mount",
            Status::No,
            "not mounted and /sys/kernel/tracing does not exist",
            "use a kernel built with CONFIG_TRACING=y (CONFIG_FTRACE=y)",
            false,
        ),
    };
    let admin = has_capability(Capability::SysAdmin);
    r.item(
        "access",
        yes_no(admin),
        if admin {
            "CAP_SYS_ADMIN held"
        } else {
            "CAP_SYS_ADMIN missing"
        },
        "run as root (sudo), or grant CAP_SYS_ADMIN",
        false,
    );
    let lock = Path::new("/sys/kernel/security/lockdown");
    match std::fs::read_to_string(lock) {
        Ok(text) => {
            let mode = lockdown_mode(&text).unwrap_or("unknown").to_string();
            let (status, fix) = match mode.as_str() {
                "none" => (Status::Yes, ""),
                "integrity" => (
                    Status::Degraded,
                    "lockdown=integrity blocks MSR writes and raw I/O; boot with lockdown=none (or disable Secure Boot) if that is needed",
                ),
                _ => (
                    Status::No,
                    "lockdown=confidentiality blocks tracefs, kprobes and perf; boot with lockdown=none (or disable Secure Boot)",
                ),
            };
            r.item("lockdown", status, mode, fix, false)
        }
        Err(_) => r.item(
            "lockdown",
            Status::Yes,
            "none (no /sys/kernel/security/lockdown: no lockdown LSM or securityfs not mounted)",
            "",
            false,
        ),
    };
    let Some(t) = tracefs else { return };
    let read = |f: &str| read_file(&t.path(f)).map(|s| s.trim().to_string());
    match read("tracing_on") {
        Ok(v) => r.item(
            "tracing_on",
            Status::Yes,
            format!("{v} at the top level (the tools use private instances)"),
            "",
            false,
        ),
        Err(e) => r.item("tracing_on", Status::No, e.to_string(), "", false),
    };
    if let Ok(v) = read("buffer_size_kb") {
        r.item(
            "buffer_size_kb",
            Status::Yes,
            format!("{v} per CPU at the top level"),
            "",
            false,
        );
    }
    if let Ok(v) = read("buffer_total_size_kb") {
        r.item("buffer_total_size_kb", Status::Yes, v, "", false);
    }
    match read("buffer_subbuf_size_kb") {
        Ok(v) => r.item(
            "buffer_subbuf_size_kb",
            Status::Yes,
            format!("{v} (settable: larger sub-buffers cut read costs)"),
            "",
            false,
        ),
        Err(_) => r.item(
            "buffer_subbuf_size_kb",
            Status::Degraded,
            "absent: page-sized sub-buffers only",
            "Linux 6.8+",
            false,
        ),
    };
}

/// Creates a probe of this run and removes it at once; `Err` carries the kernel's reason.
fn try_probe(
    t: &Tracefs,
    control: &str,
    kind: &str,
    event: &str,
    rest: &str,
) -> Result<(), String> {
    match Probe::create(t, control, kind, event, rest) {
        Ok(p) => p.remove().map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("{e:#}").replace('\n', " ")),
    }
}

/// The file offset of this executable's entry point (a place a uprobe can be put), for
/// 64-bit little-endian ELF files.
pub fn elf_entry_offset(path: &Path) -> Option<u64> {
    let f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 64];
    f.read_exact_at(&mut h, 0).ok()?;
    if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let entry = u64_at(&h, 0x18);
    let phoff = u64_at(&h, 0x20);
    let phentsize = u16_at(&h, 0x36) as usize;
    let phnum = u16_at(&h, 0x38) as usize;
    if phentsize < 56 || phnum == 0 || phnum > 256 {
        return None;
    }
    let mut ph = vec![0u8; phentsize * phnum];
    f.read_exact_at(&mut ph, phoff).ok()?;
    ph.chunks(phentsize).find_map(|p| {
        let (ty, flags) = (u32_at(p, 0), u32_at(p, 4));
        let (off, vaddr, filesz) = (u64_at(p, 8), u64_at(p, 16), u64_at(p, 32));
        (ty == 1 && flags & 1 != 0 && entry >= vaddr && entry < vaddr + filesz)
            .then(|| entry - vaddr + off)
    })
}

fn probes_section(t: &Tracefs, r: &mut Report) {
    let readme = read_file(&t.path("README")).unwrap_or_default();
    let dynamic = t.path("dynamic_events").exists();
    let control = if dynamic {
        "dynamic_events"
    } else {
        "kprobe_events"
    };
    r.item(
        "dynamic_events",
        if dynamic {
            Status::Yes
        } else {
            Status::Degraded
        },
        if dynamic {
            "present"
        } else {
            "absent: probes are created through kprobe_events/uprobe_events"
        },
        "Linux 4.17+",
        false,
    );
    // kprobes: the control file, then a test probe on a function the kernel lists.
    if t.path("kprobe_events").exists() {
        let list = read_file(&t.path("available_filter_functions")).unwrap_or_default();
        let func = ["vfs_read", "do_sys_openat2", "do_sys_open", "schedule"]
            .into_iter()
            .find(|f| kprobe::function_available(&list, f))
            .unwrap_or("vfs_read");
        match try_probe(t, control, "p", "doctor_kprobe", func) {
            Ok(()) => r.item(
                "kprobe_events",
                Status::Yes,
                format!("verified: a kprobe on {func} created and removed"),
                "",
                false,
            ),
            Err(e) => r.item(
                "kprobe_events",
                Status::No,
                format!("present but a test probe was rejected: {e}"),
                "check the lockdown mode and /sys/kernel/debug/kprobes/enabled",
                false,
            ),
        };
    } else {
        r.item(
            "kprobe_events",
            Status::No,
            "absent (no kprobe_events)",
            "use a kernel built with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y",
            false,
        );
    }
    // uprobes: a test probe at this executable's entry point.
    if t.path("uprobe_events").exists() {
        let exe = std::fs::read_link("/proc/self/exe").ok();
        let place = exe.as_ref().and_then(|p| {
            let s = p.to_str()?;
            if s.contains(char::is_whitespace) {
                return None;
            }
            Some(format!("{s}:{:#x}", elf_entry_offset(p)?))
        });
        match place {
            Some(place) => match try_probe(t, "uprobe_events", "p", "doctor_uprobe", &place) {
                Ok(()) => r.item(
                    "uprobe_events",
                    Status::Yes,
                    "verified: a uprobe on this program created and removed",
                    "",
                    false,
                ),
                Err(e) => r.item(
                    "uprobe_events",
                    Status::No,
                    format!("present but a test probe was rejected: {e}"),
                    "check the lockdown mode",
                    false,
                ),
            },
            None => r.item(
                "uprobe_events",
                Status::Yes,
                "present (not verified: this program's entry point is unknown)",
                "",
                false,
            ),
        };
    } else {
        r.item(
            "uprobe_events",
            Status::No,
            "absent (no uprobe_events)",
            "use a kernel built with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y",
            false,
        );
    }
    // Event probes: README documents the `e` syntax on every kernel with probe events
    // (even without CONFIG_EPROBE_EVENTS), so only a test probe tells.
    let eprobe_fix = "use a kernel built with CONFIG_EPROBE_EVENTS=y (Linux 5.15+)";
    if dynamic && readme.contains("e[:[<group>/][<event>]]") {
        let target = if t.has_event("syscalls", "sys_enter_openat") {
            "syscalls.sys_enter_openat"
        } else {
            "sched.sched_process_exec"
        };
        match try_probe(t, control, "e", "doctor_eprobe", target) {
            Ok(()) => r.item(
                "eprobes",
                Status::Yes,
                format!("verified: an event probe on {target} created and removed"),
                "",
                false,
            ),
            Err(e) => r.item(
                "eprobes",
                Status::No,
                format!("README documents 'e:' but a test probe on {target} was rejected: {e}"),
                eprobe_fix,
                false,
            ),
        };
    } else {
        r.item(
            "eprobes",
            Status::No,
            "absent (the README documents no 'e:' probes)",
            eprobe_fix,
            false,
        );
    }
    let fprobe = readme.contains("f[:[<group>/][<event>]]") || readme.contains("f[MAXACTIVE]");
    r.item(
        "fprobes",
        yes_no(fprobe),
        if fprobe {
            "documented in README ('f:' probes)"
        } else {
            "absent (the README documents no 'f:' probes)"
        },
        "use a kernel built with CONFIG_FPROBE_EVENTS=y (Linux 6.4+)",
        false,
    );
    let args = readme.contains("$arg<N>");
    r.item(
        "args",
        yes_no(args),
        if args {
            "$argN documented in README"
        } else {
            "$argN not documented: use registers"
        },
        "Linux 4.20+",
        false,
    );
    let ustring = readme.contains("ustring");
    r.item(
        "ustring",
        yes_no(ustring),
        if ustring {
            "documented in README"
        } else {
            "not documented: user strings need 'string'"
        },
        "Linux 5.5+",
        false,
    );
    let btf = readme.contains("<argname>");
    r.item(
        "btf_args",
        yes_no(btf),
        if btf {
            "argument names from BTF documented in README"
        } else {
            "not documented: no argument names from BTF"
        },
        "use a kernel built with CONFIG_PROBE_EVENTS_BTF_ARGS=y and CONFIG_DEBUG_INFO_BTF=y (Linux 6.6+)",
        false,
    );
}

fn has_word(text: &str, w: &str) -> bool {
    text.split_whitespace().any(|x| x == w)
}

fn tracers_section(
    t: &Tracefs,
    inst: Option<&perf_tools_ftrace::instance::Instance>,
    r: &mut Report,
) {
    let top = read_file(&t.path("available_tracers")).unwrap_or_default();
    let top = top.trim();
    r.item(
        "available_tracers",
        Status::Yes,
        if top.is_empty() { "none" } else { top },
        "",
        false,
    );
    r.item(
        "function",
        yes_no(has_word(top, "function")),
        if has_word(top, "function") {
            "available"
        } else {
            "absent"
        },
        "use a kernel built with CONFIG_FUNCTION_TRACER=y",
        false,
    );
    r.item(
        "function_graph",
        yes_no(has_word(top, "function_graph")),
        if has_word(top, "function_graph") {
            "available at the top level"
        } else {
            "absent"
        },
        "use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y",
        false,
    );
    match inst {
        Some(i) => {
            let it = i.read("available_tracers").unwrap_or_default();
            let g = has_word(&it, "function_graph");
            r.item(
                "function_graph_instance",
                yes_no(g),
                if g {
                    "available in a private instance".to_string()
                } else {
                    format!("not in a private instance (it offers: {})", it.trim())
                },
                "use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y (instances run it since Linux 4.x)",
                false,
            );
        }
        None => {
            r.item(
                "function_graph_instance",
                Status::No,
                "no private instance could be created",
                "",
                false,
            );
        }
    }
    // set_ftrace_filter: opened for appending (no write: nothing changes) in the private
    // instance where it exists, else at the top level.
    let path = inst
        .map(|i| i.dir().join("set_ftrace_filter"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| t.path("set_ftrace_filter"));
    let open = std::fs::OpenOptions::new().append(true).open(&path);
    r.item(
        "set_ftrace_filter",
        yes_no(open.is_ok()),
        match &open {
            Ok(_) => format!("writable ({})", path.display()),
            Err(e) => format!("not writable ({}: {e})", path.display()),
        },
        "use a kernel built with CONFIG_DYNAMIC_FTRACE=y, not in lockdown mode",
        false,
    );
    drop(open);
    let hist = t.path("events/sched/sched_process_exec/hist").exists()
        || std::fs::read_dir(t.path("events/block"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .is_some_and(|e| e.path().join("hist").exists());
    r.item(
        "hist_triggers",
        yes_no(hist),
        if hist {
            "events have a hist file"
        } else {
            "absent (events have no hist file)"
        },
        "use a kernel built with CONFIG_HIST_TRIGGERS=y",
        false,
    );
    let synth = t.path("synthetic_events").exists();
    r.item(
        "synthetic_events",
        yes_no(synth),
        if synth {
            "present"
        } else {
            "absent (no synthetic_events)"
        },
        "use a kernel built with CONFIG_SYNTH_EVENTS=y",
        false,
    );
}

fn events_section(t: &Tracefs, r: &mut Report) {
    let root = t.root().to_path_buf();
    let block_fix = "use a kernel built with CONFIG_BLOCK=y and CONFIG_EVENT_TRACING=y";
    let mut issue = None;
    for ev in ["block_rq_issue", "block_rq_complete", "block_rq_insert"] {
        let mut tmp = Report::new("");
        let f = fc::event(&mut tmp, &root, "block", ev, true, block_fix);
        push_renamed(r, tmp, ev);
        if ev == "block_rq_issue" {
            issue = f;
        }
    }
    match &issue {
        Some(f) => r.item(
            "block_layout",
            Status::Yes,
            perf_tools_block::layout_name(f),
            "",
            false,
        ),
        None => r.item(
            "block_layout",
            Status::No,
            "no block_rq_issue",
            block_fix,
            false,
        ),
    };
    let sys_fix = "use a kernel built with CONFIG_FTRACE_SYSCALLS=y";
    for sc in ["open", "openat", "openat2"] {
        for dir in ["enter", "exit"] {
            let ev = format!("sys_{dir}_{sc}");
            let mut tmp = Report::new("");
            // open(2) does not exist on arm64 and openat2 before 5.6: not an error.
            let fix = if sc == "openat" {
                sys_fix.to_string()
            } else {
                format!("{sys_fix} (the syscall may not exist on this architecture or kernel)")
            };
            fc::event(&mut tmp, &root, "syscalls", &ev, true, &fix);
            push_renamed(r, tmp, &ev);
        }
    }
    for (sys, ev) in [
        ("sched", "sched_process_exec"),
        ("sched", "sched_process_fork"),
        ("sched", "sched_process_exit"),
        ("task", "task_rename"),
    ] {
        let mut tmp = Report::new("");
        fc::event(
            &mut tmp,
            &root,
            sys,
            ev,
            true,
            "use a kernel built with CONFIG_EVENT_TRACING=y",
        );
        push_renamed(r, tmp, ev);
    }
}

/// Moves the one item of `tmp` into `r` under the key `key`.
fn push_renamed(r: &mut Report, tmp: Report, key: &str) {
    for mut i in tmp.items {
        i.name = key.to_string();
        i.required = false;
        r.items.push(i);
    }
}

/// Whether `modprobe NAME` could load a module: it is in the module tree of the running
/// kernel (`modules.dep`), or built in (`modules.builtin`).
fn module_state(name: &str) -> &'static str {
    if Path::new("/sys/module").join(name).exists() {
        return "loaded";
    }
    let dir = Path::new("/lib/modules").join(kernel_release());
    let has = |f: &str| {
        std::fs::read_to_string(dir.join(f)).is_ok_and(|t| {
            t.lines().any(|l| {
                let path = l.split(':').next().unwrap_or("");
                path.rsplit('/')
                    .next()
                    .is_some_and(|b| b.split('.').next() == Some(name))
            })
        })
    };
    if has("modules.builtin") {
        "built in"
    } else if has("modules.dep") {
        "available"
    } else if dir.is_dir() {
        "not built"
    } else {
        "no module tree"
    }
}

/// A 1 ms count of `config` (`type_`) on this thread, user mode only. `Err` is the errno.
fn test_count(type_: u32, config: u64) -> Result<u64, i32> {
    use perf_tools_pmc::counters::{build_attr, open_raw, Options, Target};
    use perf_tools_pmc::event::Resolved;
    let opts = Options {
        exclude_kernel: true,
        ..Options::default()
    };
    let mut a = build_attr(Resolved { type_, config }, false, &opts);
    a.read_format = 0;
    let fd = open_raw(&mut a, Target::Task(0), -1)?;
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(1) {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    let mut buf = [0u8; 8];
    use std::os::fd::AsRawFd;
    // SAFETY: fd is an open perf event; buf is 8 writable bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    if n != 8 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(u64::from_ne_bytes(buf))
}

fn cpu_section(r: &mut Report) {
    use perf_tools_pmc::explain::{errno_name, paranoid};
    // /dev/cpu/*/msr and the msr module.
    let dev = Path::new("/dev/cpu/0/msr");
    let module = module_state("msr");
    if dev.exists() {
        let read = perf_tools_cpu::msr::Msr::system().read(0, 0x10);
        r.item(
            "msr_device",
            if read.is_ok() {
                Status::Yes
            } else {
                Status::No
            },
            match &read {
                Ok(_) => "/dev/cpu/0/msr reads IA32_TIME_STAMP_COUNTER".to_string(),
                Err(e) => format!("/dev/cpu/0/msr exists but: {e}"),
            },
            "run as root (CAP_SYS_RAWIO); on a VM the hypervisor may refuse the register",
            false,
        );
    } else {
        let fix = match module {
            "available" => "modprobe msr".to_string(),
            "loaded" | "built in" => "the msr driver is loaded but /dev/cpu/0/msr is missing: create the device nodes (udev) or check /dev".to_string(),
            _ => "use a kernel built with CONFIG_X86_MSR=y or =m (then modprobe msr)".to_string(),
        };
        r.item("msr_device", Status::No, "no /dev/cpu/0/msr", fix, false);
    }
    r.item(
        "msr_module",
        match module {
            "loaded" | "built in" => Status::Yes,
            "available" => Status::Degraded,
            _ => Status::No,
        },
        match module {
            "no module tree" => format!("not loaded; no /lib/modules/{}", kernel_release()),
            m => m.to_string(),
        },
        if module == "available" {
            "modprobe msr"
        } else {
            "use a kernel built with CONFIG_X86_MSR=y or =m"
        },
        false,
    );
    // The perf msr PMU: its events, and aperf/mperf counted for real.
    match perf_tools_pmc::msr_pmu::MsrPmu::open(Path::new("/sys")) {
        Ok(pmu) => {
            let names = pmu.event_names();
            let both = names.iter().any(|n| n == "aperf") && names.iter().any(|n| n == "mperf");
            let works = both
                && pmu
                    .counter("aperf", 0)
                    .and_then(|c| {
                        c.read().map_err(|e| {
                            perf_tools_pmc::msr_pmu::PerfMsrError::Other(e.to_string())
                        })
                    })
                    .is_ok();
            r.item(
                "msr_pmu",
                if works { Status::Yes } else { Status::Degraded },
                format!(
                    "events: {}{}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    },
                    if works {
                        "; aperf counted"
                    } else if both {
                        "; aperf could not be counted"
                    } else {
                        "; no aperf/mperf (the CPU or hypervisor does not expose them)"
                    }
                ),
                "a CPU (or hypervisor) exposing APERF/MPERF",
                false,
            );
        }
        Err(e) => {
            r.item(
                "msr_pmu",
                Status::No,
                e.to_string(),
                "use a kernel built with CONFIG_PERF_EVENTS (x86 msr PMU)",
                false,
            );
        }
    }
    // hwmon CPU temperature sensors.
    let chips = perf_tools_cpu::hwmon::Sysfs::system().hwmon_chips();
    let cpu_chips: Vec<&str> = chips
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| matches!(*n, "coretemp" | "k10temp" | "zenpower"))
        .collect();
    r.item(
        "hwmon",
        yes_no(!cpu_chips.is_empty()),
        if cpu_chips.is_empty() {
            format!(
                "no coretemp/k10temp/zenpower sensor ({} hwmon chips)",
                chips.len()
            )
        } else {
            cpu_chips.join(", ")
        },
        "modprobe coretemp (Intel) or k10temp (AMD); a VM usually exposes no sensors",
        false,
    );
    // The hardware PMU: what sysfs lists, and a 1 ms cycles count.
    let pmus = perf_tools_pmc::cpu::Pmus::system();
    let core: Vec<String> = pmus
        .devices
        .iter()
        .filter(|d| *d == "cpu" || d.starts_with("cpu_"))
        .cloned()
        .collect();
    r.item(
        "hw_pmu",
        yes_no(!core.is_empty()),
        if core.is_empty() {
            format!("none (event sources: {})", pmus.devices.join(", "))
        } else {
            let ty = core
                .iter()
                .map(|c| {
                    let t = read_file(&Path::new(perf_tools_pmc::cpu::EVENT_SOURCE_DEVICES).join(c).join("type"))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default();
                    format!("{c} (type {t})")
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{ty}{}", if pmus.is_hybrid() { ", hybrid" } else { "" })
        },
        "on a VM enable the virtual PMU (e.g. QEMU/KVM -cpu host, a metal or larger cloud instance type)",
        false,
    );
    let hw = test_count(
        perf_tools_pmc::event::PERF_TYPE_HARDWARE,
        perf_tools_pmc::event::Hw::Cycles.config(),
    );
    r.item(
        "hw_counters",
        match hw {
            Ok(n) if n > 0 => Status::Yes,
            _ => Status::No,
        },
        match hw {
            Ok(n) if n > 0 => format!("cycles counted for 1 ms: {n}"),
            Ok(_) => "cycles opened but counted 0 in 1 ms".to_string(),
            Err(e) => format!("cycles cannot be opened ({})", errno_name(e)),
        },
        "a hardware PMU (see hw_pmu); pmcstat -m sw works without one",
        false,
    );
    let sw = test_count(
        perf_tools_pmc::event::PERF_TYPE_SOFTWARE,
        perf_tools_pmc::event::Sw::TaskClock.config(),
    );
    r.item(
        "sw_counters",
        match sw {
            Ok(n) if n > 0 => Status::Yes,
            _ => Status::No,
        },
        match sw {
            Ok(n) if n > 0 => format!("task-clock counted for 1 ms: {n} ns"),
            Ok(_) => "task-clock opened but counted 0".to_string(),
            Err(e) => format!("task-clock cannot be opened ({})", errno_name(e)),
        },
        "use a kernel built with CONFIG_PERF_EVENTS=y; check kernel.perf_event_paranoid",
        false,
    );
    let perfmon = has_capability(Capability::Perfmon) || has_capability(Capability::SysAdmin);
    match paranoid() {
        Some(p) => r.item(
            "perf_event_paranoid",
            if perfmon || p <= 0 {
                Status::Yes
            } else {
                Status::Degraded
            },
            if perfmon {
                format!("{p} (CAP_PERFMON/CAP_SYS_ADMIN held: not limiting)")
            } else {
                format!("{p} (without CAP_PERFMON: CPU-wide counters need <= 0)")
            },
            "sysctl -w kernel.perf_event_paranoid=0, or run as root / with CAP_PERFMON",
            false,
        ),
        None => r.item(
            "perf_event_paranoid",
            Status::No,
            "unreadable: no perf events in this kernel",
            "use a kernel built with CONFIG_PERF_EVENTS=y",
            false,
        ),
    };
    for (key, cap, why) in [
        ("cap_sys_admin", Capability::SysAdmin, "tracefs"),
        ("cap_perfmon", Capability::Perfmon, "CPU-wide counters"),
        ("cap_sys_rawio", Capability::SysRawio, "/dev/cpu/*/msr"),
    ] {
        let has = has_capability(cap);
        r.item(
            key,
            yes_no(has),
            format!(
                "{} {} (for {why})",
                cap.name(),
                if has { "held" } else { "missing" }
            ),
            format!("run as root, or grant {}", cap.name()),
            false,
        );
    }
    let hv = perf_tools_cpu::cpuid::Cpuid::for_root(Path::new(perf_tools_cpu::msr::DEFAULT_ROOT))
        .info()
        .ok()
        .and_then(|i| i.hypervisor);
    r.item(
        "virtualization",
        Status::Yes,
        match &hv {
            Some(h) => format!("virtual machine: {h} (CPUID hypervisor bit set)"),
            None => "bare metal (CPUID hypervisor bit clear)".to_string(),
        },
        "",
        false,
    );
    r.item("container", Status::Yes, container(), "", false);
}

/// The initial cgroup and pid namespaces have fixed inode numbers
/// (`PROC_CGROUP_INIT_INO`, `PROC_PID_INIT_INO`): anything else is a container.
fn container() -> String {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(p).map(|m| m.ino()).ok();
    let cg = ino("/proc/self/ns/cgroup");
    let pid = ino("/proc/self/ns/pid");
    let cg_init = cg == Some(0xEFFF_FFFB);
    let pid_init = pid == Some(0xEFFF_FFFC);
    match (cg_init, pid_init) {
        (true, true) => "none (initial cgroup and pid namespaces)".to_string(),
        _ => format!(
            "likely: {}{}",
            if cg_init { "" } else { "own cgroup namespace " },
            if pid_init { "" } else { "own pid namespace" }
        )
        .trim_end()
        .to_string(),
    }
}
