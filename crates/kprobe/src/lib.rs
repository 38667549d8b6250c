//! kprobe: create, trace and remove one dynamic kernel probe.
//!
//! A port of perf-tools' `kprobe`: the same options and definition syntax (`p:` or `r:`,
//! alias optional), the kernel's event lines as output, plus: the lines are rendered from
//! the probe's binary records ([`render`]), so names from user space are escaped and
//! cannot forge lines; the probe lives in a per-run group `ptrs_<pid>` and is traced in a
//! private instance (never the top level), rejected definitions are explained from tracefs `error_log` with the position the
//! kernel points at, aliases are sanitized into valid event names, kretprobe misses are
//! reported, and the probe is removed on every exit path (or by the next run's
//! stale-state cleanup after `kill -9`).

use anyhow::{bail, Result};
use clap::Parser;
use std::io::Write;

use perf_tools_core::cli;
use perf_tools_core::output::Output;
use perf_tools_core::signals::Shutdown;
use perf_tools_core::target;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::probe::{self, Probe, ProbeError};
use perf_tools_ftrace::session::StreamEnd;
use perf_tools_ftrace::tracefs::Tracefs;

use perf_tools_ftrace::probe::run;
pub use perf_tools_ftrace::probe::{faults, render};

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "kprobe",
    version,
    about = "Create, trace and remove one dynamic kernel probe (kprobe or kretprobe)",
    long_about = None,
    after_help = "Examples:\n  kprobe p:do_sys_openat2                    # trace do_sys_openat2() entry\n  kprobe r:do_sys_openat2                    # trace its return\n  kprobe 'r:do_sys_openat2 $retval'          # with the return value\n  kprobe 'p:myopen do_sys_openat2 filename=+0($arg2):ustring'\n                                             # file name (2nd argument)\n  kprobe 'p:myopen do_sys_openat2 filename=+0($arg2):ustring' 'filename ~ \"*stat\"'\n                                             # only names ending in stat\n  kprobe -s p:vfs_fsync                      # with kernel stack traces\n  kprobe -p 91 p:vfs_read                    # only PID 91\n  kprobe --cgroup /sys/fs/cgroup/web p:vfs_read  # only that cgroup's tasks\n  kprobe -v 'p:do_sys_openat2 $arg1 $arg2'   # show the format, trace nothing\n\n$argN and $retval are portable across architectures (Linux 4.20+); register names\n(%di, %x0, ...) are not. See the kprobe(8) man page and the kernel's kprobetrace.rst."
)]
pub struct Args {
    /// Force: skip the available_filter_functions safety check
    #[arg(short = 'F')]
    pub force: bool,
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration, conflicts_with = "view")]
    pub duration: Option<f64>,
    /// Only trace this process (all its threads, also ones created later)
    #[arg(short = 'p', value_name = "PID", conflicts_with = "tid")]
    pub pid: Option<u32>,
    /// Only trace this thread
    #[arg(short = 'L', value_name = "TID")]
    pub tid: Option<u32>,
    /// Create the probe, print its format, remove it (trace nothing)
    #[arg(short = 'v')]
    pub view: bool,
    /// Print the trace's column headers
    #[arg(short = 'H')]
    pub headers: bool,
    /// Print the kernel stack after each event
    #[arg(short = 's')]
    pub stack: bool,
    /// Probe definition: p:[alias] func [args] or r:[alias] func [args]
    #[arg(value_name = "kprobe_definition", required = true)]
    pub definition: Option<String>,
    /// Optional ftrace filter expression, e.g. 'filename ~ "*stat"'
    #[arg(value_name = "filter")]
    pub filter: Option<String>,
    /// Container scope, filtered in the kernel (set_event_pid of the private instance)
    #[command(flatten)]
    pub scope: perf_tools_ftrace::scope::CgroupArgs,
    /// Remove trace instances and probes left behind by killed runs, then exit
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

/// A parsed probe definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// `p`, `r` or `rN` (maxactive).
    pub kind: String,
    /// The (sanitized) event name.
    pub event: String,
    /// The probed place: `func`, `func+off` or `module:func`.
    pub func: String,
    /// The fetch arguments, as given.
    pub args: String,
}

/// Parses `p:[alias] func [args]` / `r:[alias] func [args]`. Without an alias (the second
/// word is missing or is an argument: contains `=`, `%`, `$`, `(` or `@`) the event is
/// named after the function, sanitized (`foo.isra.0` → `foo_isra_0`).
pub fn parse_definition(def: &str) -> Result<Definition, String> {
    let def = def.trim();
    let Some((kind, rest)) = def.split_once(':') else {
        return Err("invalid kprobe definition (should start with p: or r:)".into());
    };
    let kind_ok =
        kind == "p" || (kind.starts_with('r') && kind[1..].bytes().all(|b| b.is_ascii_digit()));
    if !kind_ok {
        return Err("invalid kprobe definition (should start with p: or r:)".into());
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let Some(&first) = words.first() else {
        return Err("kprobe definition has no function".into());
    };
    let is_arg = |w: &str| w.contains(['=', '%', '$', '(', '@']);
    let (alias, func, args) = match words.get(1) {
        Some(w) if !is_arg(w) => (first, *w, &words[2..]),
        _ => (first, first, &words[1..]),
    };
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    Ok(Definition {
        kind: kind.to_string(),
        event: probe::sanitize_event_name(alias),
        func: func.to_string(),
        args: args.join(" "),
    })
}

/// The function name to look up in `available_filter_functions` (no offset or module).
pub fn base_function(place: &str) -> &str {
    let f = place.rsplit(':').next().unwrap_or(place);
    f.split('+').next().unwrap_or(f)
}

/// True if `func` is listed in the text of `available_filter_functions`.
pub fn function_available(list: &str, func: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().next() == Some(func))
}

/// Kretprobe misses of `event` from the text of `kprobe_profile`.
pub fn misses(profile: &str, event: &str) -> Option<u64> {
    profile_counts(profile, event).map(|(_, m)| m)
}

/// `(hits, misses)` of `event` from the text of `kprobe_profile`. The hits count every
/// time the probe fired, before any event filter or PID filter.
pub fn profile_counts(profile: &str, event: &str) -> Option<(u64, u64)> {
    profile.lines().find_map(|l| {
        let c: Vec<&str> = l.split_whitespace().collect();
        let name = c.first()?;
        if name.rsplit('/').next() != Some(event) || c.len() < 3 {
            return None;
        }
        Some((c[1].parse().ok()?, c[2].parse().ok()?))
    })
}

/// What kprobe would use on this host and whether it can run (`--check`, and its row in
/// perf-tools-doctor): kprobe events (verified by creating and removing a probe of this
/// run on a function the kernel lists), the control file, and the fetch syntax the
/// kernel's README documents (`$argN`, `ustring`). Nothing is left behind.
pub fn check() -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut r = Report::new("kprobe");
    let Some(tracefs) = fc::tracefs(&mut r) else {
        return Ok(r);
    };
    let support = probe::Support::detect(&tracefs);
    if !support.kprobes {
        r.item(
            "kprobe events",
            Status::No,
            format!("{} does not exist", tracefs.path("kprobe_events").display()),
            "use a kernel built with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y",
            true,
        );
        r.uses = "nothing: no kprobe events".into();
        return Ok(r);
    }
    let list =
        std::fs::read_to_string(tracefs.path("available_filter_functions")).unwrap_or_default();
    let func = ["vfs_read", "do_sys_openat2", "do_sys_open", "schedule"]
        .into_iter()
        .find(|f| function_available(&list, f))
        .unwrap_or("vfs_read");
    match Probe::create(
        &tracefs,
        support.kprobe_control(),
        "p",
        "perf_tools_check",
        func,
    ) {
        Ok(p) => {
            p.remove()?;
            r.item(
                "kprobe events",
                Status::Yes,
                format!(
                    "a test probe on {func} created and removed through {}",
                    support.kprobe_control()
                ),
                "",
                true,
            );
        }
        Err(e) => {
            r.item(
                "kprobe events",
                Status::No,
                format!("{e:#}").replace('\n', " "),
                "check the host's lockdown mode (/sys/kernel/security/lockdown) and that kprobes are not disabled (debug.kprobes-optimization, /sys/kernel/debug/kprobes/enabled)",
                true,
            );
            r.uses = "nothing: kprobes cannot be created".into();
            return Ok(r);
        }
    }
    r.item(
        "available_filter_functions",
        if list.is_empty() {
            Status::Degraded
        } else {
            Status::Yes
        },
        if list.is_empty() {
            "not readable: functions cannot be checked before probing (-F needed)"
        } else {
            "readable: functions are checked before probing"
        },
        "use a kernel built with CONFIG_DYNAMIC_FTRACE=y, or pass -F",
        false,
    );
    r.item(
        "$argN",
        if support.args {
            Status::Yes
        } else {
            Status::Degraded
        },
        if support.args {
            "documented in README"
        } else {
            "not documented in README: use registers (%di, %si, ...) instead"
        },
        "Linux 4.20+",
        false,
    );
    r.item(
        "ustring",
        if support.ustring {
            Status::Yes
        } else {
            Status::Degraded
        },
        if support.ustring {
            "documented in README"
        } else {
            "not documented in README: user strings need 'string'"
        },
        "Linux 5.5+",
        false,
    );
    r.uses = format!("kprobes through {}", support.kprobe_control());
    Ok(r)
}

/// Runs kprobe: checks, creates the probe, sets up a private instance, traces, and ends
/// with the loss, miss and end-of-run reports.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    let Some(def_text) = args.definition.as_deref() else {
        return Err(cli::usage("no kprobe definition given"));
    };
    let def = parse_definition(def_text).map_err(cli::usage)?;
    args.scope.reject_with_target(args.pid, args.tid)?;
    // Resolved before any kernel state is made: a wrong path changes nothing.
    let mut scope = if args.view {
        None
    } else {
        args.scope.resolve()?
    };
    // The suite's rule: a target that does not exist is an error before any state.
    if let Some(p) = args.pid {
        target::require_process(p)?;
    }
    if let Some(t) = args.tid {
        target::require_thread(t)?;
    }
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    let support = probe::require_kprobes(&tracefs)?;
    if !args.force {
        require_traceable(&tracefs, &def)?;
    }
    // Declared before the instance: removed after it (the kernel refuses to remove a
    // probe still enabled in an instance).
    let (p, with_comm) = create_probe(&tracefs, &support, &def, args.view)?;
    if args.view {
        print!("{}", p.format(&tracefs)?);
        return p.remove();
    }
    // Reading /proc/kallsyms takes tens of ms of CPU: done meanwhile, while the
    // instance's settings wait on the kernel (RCU grace periods).
    let symbols = std::thread::spawn(render::Symbols::load);
    let spec = spec(&args, &def);
    let inst = run::setup_instance(&tracefs, &spec, &p, scope.as_mut())?;
    let decoders = run::decoders(&tracefs, &spec, &p, &inst, with_comm);
    inst.enable_event(p.group(), p.event())?;
    inst.set_tracing_on(true)?;
    let mut out = Output::stdout();
    let decoded = decoders.map(|d| (d, symbols.join().unwrap_or_default()));
    let traced = run::trace_scoped(
        &spec,
        &shutdown,
        inst,
        &mut out,
        p.event(),
        decoded,
        scope.as_mut(),
    )?;
    if traced.end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly (the instance is gone).
        return p.remove();
    }
    let profile = std::fs::read_to_string(tracefs.path("kprobe_profile")).unwrap_or_default();
    let counts = profile_counts(&profile, p.event());
    p.remove()?;
    let _ = writeln!(out.buf, "\nEnding tracing...");
    out.flush()?;
    if traced.lost > 0 {
        eprintln!(
            "WARNING: {} events lost in total: the kernel buffer overflowed; lines are missing",
            traced.lost
        );
    }
    if def.kind.starts_with('r') {
        if let Some(m) = counts.map(|c| c.1).filter(|&m| m > 0) {
            eprintln!("WARNING: {m} kretprobe hits were missed (maxactive too low: use r<N>: with a larger N, e.g. r64:)");
        }
    }
    if let Some(line) = run::account(&spec, &traced, counts.map(|c| c.0)).line() {
        eprintln!("{line}");
    }
    Ok(())
}

/// Refuses a function the kernel does not list as traceable (the original's safety
/// check; `-F` skips it).
fn require_traceable(tracefs: &Tracefs, def: &Definition) -> Result<()> {
    let f = base_function(&def.func);
    let path = tracefs.path("available_filter_functions");
    let list = std::fs::read_to_string(&path).unwrap_or_default();
    if !function_available(&list, f) {
        bail!("func {f} not in {}: either it doesn't exist, or it might be unsafe to kprobe; use -F to override", path.display());
    }
    Ok(())
}

/// Creates the probe. Outside `-v` it also records the task's comm (`$comm`), so lines
/// name the task as it was when the event fired, from the binary record, escaped; a
/// kernel refusing that gets the user's definition alone (tasks are then named from
/// /proc). Returns the probe and whether it records the comm.
fn create_probe(
    tracefs: &Tracefs,
    support: &probe::Support,
    def: &Definition,
    view: bool,
) -> Result<(Probe, bool)> {
    let create = |extra: &str| {
        Probe::create(
            tracefs,
            support.kprobe_control(),
            &def.kind,
            &def.event,
            format!("{} {} {extra}", def.func, def.args).trim(),
        )
    };
    let attempt = if view {
        None
    } else {
        create(&format!("{}=$comm", run::COMM_ARG)).ok()
    };
    let with_comm = attempt.is_some();
    match attempt.map_or_else(|| create(""), Ok) {
        Ok(p) => Ok((p, with_comm)),
        Err(e) => {
            let hint = e
                .downcast_ref::<ProbeError>()
                .and_then(|pe| probe::register_hint(&pe.definition))
                .map(|h| format!("\n{h}"))
                .unwrap_or_default();
            Err(e.context(format!("creating the probe{hint}")))
        }
    }
}

/// The shared run description of these options.
fn spec<'a>(args: &'a Args, def: &'a Definition) -> run::Spec<'a> {
    run::Spec {
        tool: "kprobe",
        user: false,
        filter: args.filter.as_deref(),
        pid: args.pid,
        tid: args.tid,
        stack: args.stack,
        headers: args.headers,
        duration: args.duration,
        fetch_args: &def.args,
        banner_detail: String::new(),
        scope: args.scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_definitions_with_and_without_alias() {
        let d = parse_definition("p:myopen do_sys_openat2 fn=+0($arg2):ustring").unwrap();
        assert_eq!(
            (
                d.kind.as_str(),
                d.event.as_str(),
                d.func.as_str(),
                d.args.as_str()
            ),
            ("p", "myopen", "do_sys_openat2", "fn=+0($arg2):ustring")
        );
        let d = parse_definition("r:do_sys_openat2 $retval").unwrap();
        assert_eq!(
            (d.event.as_str(), d.func.as_str()),
            ("do_sys_openat2", "do_sys_openat2")
        );
        assert_eq!(d.args, "$retval");
        let d = parse_definition("p:foo.isra.0").unwrap();
        assert_eq!(
            (d.event.as_str(), d.func.as_str()),
            ("foo_isra_0", "foo.isra.0")
        );
        let d = parse_definition("r16:x vfs_read").unwrap();
        assert_eq!(d.kind, "r16");
        assert!(parse_definition("q:foo").is_err());
        assert!(parse_definition("do_sys_open").is_err());
        assert!(parse_definition("p:").is_err());
    }

    #[test]
    fn safety_check_helpers() {
        assert_eq!(base_function("vfs_read+0x10"), "vfs_read");
        assert_eq!(base_function("ext4:ext4_sync_file"), "ext4_sync_file");
        let list = "vfs_read\next4_sync_file [ext4]\n";
        assert!(function_available(list, "ext4_sync_file"));
        assert!(!function_available(list, "vfs_rea"));
    }

    #[test]
    fn reads_misses() {
        let p = "  myret                                                  10               3\n  other 1 0\n";
        assert_eq!(misses(p, "myret"), Some(3));
        assert_eq!(misses(p, "none"), None);
    }

    #[test]
    fn reads_hits_and_misses() {
        let p = "  ptrs_1/myret                                           10               3\n";
        assert_eq!(profile_counts(p, "myret"), Some((10, 3)));
        assert_eq!(profile_counts(p, "other"), None);
    }

    #[test]
    fn usage_errors() {
        for argv in [
            &["kprobe"][..],
            &["kprobe", "-p", "1", "-L", "1", "p:x"],
            &["kprobe", "-d", "1", "-v", "p:x"],
            &["kprobe", "-d", "0", "p:x"],
        ] {
            assert_eq!(
                Args::try_parse_from(argv).unwrap_err().exit_code(),
                2,
                "{argv:?}"
            );
        }
    }
}
