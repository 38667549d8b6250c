//! uprobe: create, trace and remove one user-level dynamic probe.
//!
//! A port of perf-tools' `uprobe`: the same options and definition syntax (`p:` or `r:`,
//! alias optional, `target:symbol` or `target:0xoffset`, the target a path, a program in
//! `$PATH` or a library name such as `libc`), the kernel's event lines as output, and
//! `-l` to list a target's functions. Symbols are resolved from the file's own symbol
//! tables ([`perf_tools_ftrace::elf`]), so no objdump, file or ldconfig is needed. Plus:
//! `$argN` works on entry probes (translated to this architecture's argument registers,
//! which the kernel's uprobes lack), a raw offset must be a function's first instruction
//! unless `-F`, an unknown symbol gets the closest names, lines are rendered from the
//! probe's binary records ([`perf_tools_ftrace::probe::render`]) so names from user space
//! are escaped, the probe lives in a per-run group `ptrs_<pid>` traced in a private
//! instance, and it is removed on every exit path (or by the next run's stale-state
//! cleanup after `kill -9`).

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};

use perf_tools_core::cli;
use perf_tools_core::output::{escape, Output};
use perf_tools_core::signals::Shutdown;
use perf_tools_core::target;
use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::elf;
use perf_tools_ftrace::probe::{self, render, run, Probe, ProbeError};
use perf_tools_ftrace::session::StreamEnd;
use perf_tools_ftrace::tracefs::Tracefs;

/// Command-line options (the original's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "uprobe",
    version,
    about = "Create, trace and remove one user-level dynamic probe (uprobe or uretprobe)",
    long_about = None,
    after_help = "Examples:\n  uprobe p:bash:readline                     # trace readline() in every bash\n  uprobe p:/bin/bash:readline                # the same, by path\n  uprobe 'r:bash:readline +0($retval):string'\n                                             # its return value, as a string\n  uprobe p:libc:sleep                        # sleep() of every process using libc\n  uprobe 'p:libc:sleep $arg1'                # with its first argument\n  uprobe 'p:libc:puts s=+0($arg1):ustring'   # a string argument\n  uprobe -p 1182 p:libc:gettimeofday         # only PID 1182\n  uprobe 'r:libc:fopen file=$retval' 'file == 0'\n                                             # fopen() returning NULL\n  uprobe p:libc:0xbf130                      # an offset (must start a function, or -F)\n  uprobe -l bash                             # list bash's functions\n\n$argN is translated to this architecture's argument registers (function entry only);\nregisters (%di, %x0, ...) can be used directly. See the uprobe(8) man page and the\nkernel's uprobetracer.rst.\n\nWARNING: a uprobe on a widely used library function (libc:malloc) slows down every\nprocess calling it."
)]
pub struct Args {
    /// Force: probe an offset that is not the start of a known function
    #[arg(short = 'F')]
    pub force: bool,
    /// Trace for this many seconds, buffered, then print (default: live until Ctrl-C)
    #[arg(short = 'd', value_name = "secs", value_parser = perf_tools_core::cli::parse_duration, conflicts_with = "view")]
    pub duration: Option<f64>,
    /// List the functions of this executable or library (path, program or library name), then exit
    #[arg(short = 'l', value_name = "target", exclusive = true)]
    pub list: Option<String>,
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
    /// Print the user stack (raw addresses) after each event
    #[arg(short = 's')]
    pub stack: bool,
    /// Probe definition: p:[alias] target:symbol[+offset] [args], r:... for the return; target:0xoffset for an offset
    #[arg(value_name = "uprobe_definition", required = true)]
    pub definition: Option<String>,
    /// Optional ftrace filter expression, e.g. 'file == 0'
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

/// Where in the target the probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A function, plus an offset into it.
    Symbol {
        /// The symbol name.
        name: String,
        /// Bytes into the function.
        offset: u64,
    },
    /// A file offset given as `0x...`.
    Offset(u64),
}

/// A parsed uprobe definition (before the target and symbol are resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// `p` or `r`.
    pub kind: String,
    /// The (sanitized) event name.
    pub event: String,
    /// The target as given: a path, a program or a library name.
    pub target: String,
    /// The probed place.
    pub place: Place,
    /// The fetch arguments, as given.
    pub args: String,
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The short name of a target, as the original names probes of offsets: the file name
/// up to its first `.` (`/lib/x86_64-linux-gnu/libc.so.6` → `libc`).
pub fn segment(target: &str) -> &str {
    let base = target.rsplit('/').next().unwrap_or(target);
    base.split('.').next().unwrap_or(base)
}

/// Parses `p:[alias] target:symbol[+off] [args]`, `p:[alias] target:0xoffset [args]` and
/// the same with `r:`. Without an alias the event is named after the symbol, or
/// `<segment>_<offset>` for an offset, sanitized into a valid event name.
pub fn parse_definition(def: &str) -> Result<Definition, String> {
    let def = def.trim();
    let Some((kind, rest)) = def.split_once(':') else {
        return Err("invalid uprobe definition (should start with p: or r:)".into());
    };
    if kind != "p" && kind != "r" {
        return Err("invalid uprobe definition (should start with p: or r:)".into());
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let Some(&first) = words.first() else {
        return Err("uprobe definition has no target (expected target:symbol)".into());
    };
    let (alias, probe_word, args) = if first.contains(':') {
        (None, first, &words[1..])
    } else {
        match words.get(1) {
            Some(w) if w.contains(':') => (Some(first), *w, &words[2..]),
            _ => {
                return Err(format!(
                    "invalid uprobe definition: expected [alias] target:symbol (e.g. p:libc:sleep or p:mysleep libc:sleep), got {first:?}"
                ))
            }
        }
    };
    let Some((target, place_text)) = probe_word.split_once(':') else {
        return Err("invalid uprobe definition: expected target:symbol".into());
    };
    if target.is_empty() {
        return Err("missing target before ':' (a path, a program or a library, e.g. libc)".into());
    }
    if place_text.is_empty() || place_text.contains(':') {
        return Err(format!(
            "invalid place {place_text:?} in {probe_word:?}: expected a symbol, symbol+offset or 0xoffset"
        ));
    }
    let place = if place_text.starts_with("0x") || place_text.starts_with("0X") {
        Place::Offset(
            parse_number(place_text).ok_or_else(|| format!("invalid offset {place_text:?}"))?,
        )
    } else {
        let (name, off) = match place_text.split_once('+') {
            Some((n, o)) => (
                n,
                parse_number(o).ok_or_else(|| format!("invalid offset {o:?} in {place_text:?}"))?,
            ),
            None => (place_text, 0),
        };
        if name.is_empty() {
            return Err(format!("missing symbol in {probe_word:?}"));
        }
        Place::Symbol {
            name: name.to_string(),
            offset: off,
        }
    };
    let default_alias = match &place {
        Place::Offset(o) => format!("{}_0x{o:x}", segment(target)),
        Place::Symbol { name, offset: 0 } => name.clone(),
        Place::Symbol { name, offset } => format!("{name}_0x{offset:x}"),
    };
    let alias = alias.map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
    Ok(Definition {
        kind: kind.to_string(),
        event: probe::sanitize_event_name(alias.as_deref().unwrap_or(&default_alias)),
        target: target.to_string(),
        place,
        args: args.join(" "),
    })
}

/// Translates `$argN` into this architecture's argument registers (the kernel's uprobes
/// have no `$argN`). Only at a function's entry (`entry`) of a `p:` probe do the
/// registers hold the arguments.
pub fn translate_args(args: &str, kind: &str, entry: bool) -> Result<String, String> {
    let mut out = String::with_capacity(args.len());
    let mut rest = args;
    while let Some(i) = rest.find("$arg") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            out.push_str("$arg");
            rest = after;
            continue;
        }
        let n: u8 = after[..digits]
            .parse()
            .map_err(|_| format!("invalid argument number in $arg{}", &after[..digits]))?;
        if kind != "p" {
            return Err(format!("$arg{n} is not available at a function's return (its registers are overwritten by then): use a p: probe for arguments, $retval for the return value"));
        }
        if !entry {
            return Err(format!("$arg{n} is only meaningful at a function's first instruction (a symbol without +offset): use registers ({}) elsewhere", elf::arg_register(1).unwrap_or("%...")));
        }
        let reg = elf::arg_register(n).ok_or_else(|| {
            format!(
                "$arg{n}: this architecture ({}) has no argument register {n} known to uprobe: use a register or $stackN",
                std::env::consts::ARCH
            )
        })?;
        out.push_str(reg);
        rest = &after[digits..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where a target is: a path as given (containing `/`), else a program in `$PATH`, else
/// a shared library of that name (`libc`, `libpthread`), as the original resolves them.
pub fn resolve_target(target: &str) -> Result<PathBuf> {
    let p = if target.contains('/') {
        PathBuf::from(target)
    } else if let Some(p) = elf::find_program(target) {
        p
    } else if let Some(p) = elf::find_library(target) {
        p
    } else {
        bail!(
            "\"{target}\" is neither a program in $PATH nor a library in this process's mappings, the directories of /etc/ld.so.conf or {}: give a full path",
            elf::LIBRARY_DIRS.join(", ")
        );
    };
    if !p.is_file() {
        bail!(
            "resolved \"{target}\" to {}, but it is not a file",
            p.display()
        );
    }
    let p = p.canonicalize().unwrap_or(p);
    if p.to_string_lossy().contains(char::is_whitespace) {
        bail!(
            "{} contains white space, which uprobe_events cannot take: use a link without it",
            p.display()
        );
    }
    Ok(p)
}

/// Up to five names of `funcs` closest to `want`: those containing it (or contained in
/// it), then by edit distance.
pub fn closest<'a>(funcs: &'a [(String, u64)], want: &str) -> Vec<&'a str> {
    let mut names: Vec<&str> = funcs.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    let wl = want.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .map(|n| {
            let nl = n.to_ascii_lowercase();
            let d = if nl.contains(&wl) || (nl.len() >= 3 && wl.contains(&nl)) {
                n.len().abs_diff(want.len()) / 4
            } else {
                edit_distance(&nl, &wl)
            };
            (d, n)
        })
        .filter(|(d, _)| *d <= want.len().div_ceil(3).max(2))
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The probe's file offset in `path`, and whether it is a function's first instruction.
pub fn resolve_place(path: &Path, place: &Place, force: bool) -> Result<(u64, bool)> {
    let funcs = elf::file_functions(path);
    match place {
        Place::Symbol { name, offset } => {
            let funcs = funcs?;
            let found: Vec<u64> = funcs
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, o)| *o)
                .collect();
            let indirect = || {
                std::fs::read(path)
                    .ok()
                    .and_then(|b| elf::indirect_functions(&b, elf::Tables::All).ok())
                    .is_some_and(|f| f.iter().any(|(n, _)| n == name))
            };
            match found.first() {
                Some(&o) => {
                    if indirect() {
                        eprintln!("WARNING: {} also has an indirect (GNU IFUNC) {name}, another version of it: programs linked against the current version call the implementation that one chooses, which this probe does not see (0 hits then)", path.display());
                    }
                    if found.iter().any(|&x| x != o) {
                        eprintln!("WARNING: {} has {} functions named {name}; probing the first, at 0x{o:x} (give an offset to choose)", path.display(), found.len());
                    }
                    Ok((o + offset, *offset == 0))
                }
                None => {
                    if indirect() {
                        let like: Vec<&str> = funcs
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .filter(|n| n.contains(name.as_str()))
                            .take(8)
                            .collect();
                        let hint = if like.is_empty() {
                            "the file names none of them: probe a caller, or find the implementation's offset (perf probe, gdb) and use -F with it".to_string()
                        } else {
                            format!("functions named like it here: {}", like.join(", "))
                        };
                        bail!("{name} in {} is an indirect function (GNU IFUNC): the dynamic linker runs it once to choose an implementation (e.g. one for this CPU's vector instructions), and programs call that implementation instead; {hint}", path.display());
                    }
                    let mut msg = format!("no function \"{name}\" in {}", path.display());
                    let near = closest(&funcs, name);
                    if !near.is_empty() {
                        msg.push_str(&format!("; closest: {}", near.join(", ")));
                    }
                    if let Some(libc) = elf::system_libc().filter(|l| {
                        l.canonicalize().ok().as_deref() != Some(path)
                            && elf::file_functions(l)
                                .is_ok_and(|f| f.iter().any(|(n, _)| n == name))
                    }) {
                        msg.push_str(&format!(
                            "; it is a function of the C library {}: use p:libc:{name}",
                            libc.display()
                        ));
                    } else {
                        msg.push_str(&format!(" (list them with: uprobe -l {})", path.display()));
                    }
                    bail!(msg)
                }
            }
        }
        Place::Offset(o) => {
            let at_start = match &funcs {
                Ok(f) => f.iter().any(|(_, x)| x == o),
                Err(_) => false,
            };
            if !at_start && !force {
                let why = match &funcs {
                    Ok(f) => match f.iter().filter(|(_, x)| x <= o).max_by_key(|(_, x)| *x) {
                        Some((n, x)) => format!("it is {n}+0x{:x}", o - x),
                        None => "it is before every function".to_string(),
                    },
                    Err(e) => format!("the file's functions are unknown: {e:#}"),
                };
                bail!("0x{o:x} is not the first instruction of a function in {} ({why}): a probe in the middle of an instruction corrupts the traced program; use -F to probe it anyway", path.display());
            }
            Ok((*o, at_start))
        }
    }
}

/// Hits of `event` on `path` from the text of `uprobe_profile` (`path event hits`), when
/// exactly one line matches (another run may use the same name on the same file).
pub fn profile_hits(profile: &str, path: &str, event: &str) -> Option<u64> {
    let hits: Vec<u64> = profile
        .lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c.len() >= 3 && c[0] == path && c[1].rsplit('/').next() == Some(event))
                .then(|| c[2].parse().ok())
                .flatten()
        })
        .collect();
    match hits.as_slice() {
        [h] => Some(*h),
        _ => None,
    }
}

/// A resolved probe: what goes to the kernel after `p:ptrs_<pid>/<event> `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The target's file.
    pub path: PathBuf,
    /// The file offset probed.
    pub offset: u64,
    /// The fetch arguments for the kernel (`$argN` translated).
    pub args: String,
}

impl Resolved {
    /// `path:0xoffset args`.
    pub fn place(&self) -> String {
        format!("{}:0x{:x}", self.path.display(), self.offset)
    }
}

/// Resolves a definition's target, place and arguments.
pub fn resolve(def: &Definition, force: bool) -> Result<Resolved> {
    let path = resolve_target(&def.target)?;
    let (offset, entry) = resolve_place(&path, &def.place, force)?;
    let args = translate_args(&def.args, &def.kind, entry).map_err(cli::usage)?;
    Ok(Resolved { path, offset, args })
}

/// Prints the functions of `target` (`-l`), sorted, each once.
fn list(target: &str) -> Result<()> {
    let path = resolve_target(target)?;
    let funcs = elf::file_functions(&path)?;
    let mut names: Vec<&str> = funcs.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Output::stdout();
    let write = || -> std::io::Result<()> {
        for n in names {
            let _ = writeln!(out.buf, "{}", escape(n.as_bytes()));
            if out.buf.len() > 64 * 1024 {
                out.flush()?;
            }
        }
        out.flush()
    };
    match write() {
        // The reader went away (uprobe -l libc | head): nothing more to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// What uprobe would use on this host and whether it can run (`--check`, and its row in
/// perf-tools-doctor): uprobe events (verified by creating and removing a probe of this
/// run on a C library function), and the fetch syntax.
pub fn check() -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut r = Report::new("uprobe");
    let Some(tracefs) = fc::tracefs(&mut r) else {
        return Ok(r);
    };
    let support = probe::Support::detect(&tracefs);
    if !support.uprobes {
        r.item(
            "uprobe events",
            Status::No,
            format!("{} does not exist", tracefs.path("uprobe_events").display()),
            "use a kernel built with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y",
            true,
        );
        r.uses = "nothing: no uprobe events".into();
        return Ok(r);
    }
    // A function of a file every system has: the C library (else this program).
    let target = elf::system_libc()
        .and_then(|p| {
            let f = elf::file_functions(&p).ok()?;
            let (_, o) = f.iter().find(|(n, _)| n == "getpid")?;
            Some((p, *o))
        })
        .or_else(|| {
            let p = std::fs::read_link("/proc/self/exe").ok()?;
            let o = elf::file_functions(&p).ok()?.first()?.1;
            Some((p, o))
        });
    let Some((path, off)) = target else {
        r.item(
            "uprobe events",
            Status::Degraded,
            "not verified: no ELF file with functions to probe (C library or this program)",
            "",
            false,
        );
        r.uses = "uprobes through uprobe_events (not verified)".into();
        return Ok(r);
    };
    match Probe::create(
        &tracefs,
        "uprobe_events",
        "p",
        "perf_tools_check",
        &format!("{}:0x{off:x}", path.display()),
    ) {
        Ok(p) => {
            p.remove()?;
            r.item(
                "uprobe events",
                Status::Yes,
                format!(
                    "a test probe on {}:0x{off:x} created and removed through uprobe_events",
                    path.display()
                ),
                "",
                true,
            );
        }
        Err(e) => {
            r.item(
                "uprobe events",
                Status::No,
                format!("{e:#}").replace('\n', " "),
                "check the host's lockdown mode (/sys/kernel/security/lockdown) and that the file is on a filesystem uprobes support",
                true,
            );
            r.uses = "nothing: uprobes cannot be created".into();
            return Ok(r);
        }
    }
    let arg1 = elf::arg_register(1);
    r.item(
        "$argN",
        if arg1.is_some() {
            Status::Yes
        } else {
            Status::Degraded
        },
        match arg1 {
            Some(reg) => format!(
                "translated to this architecture's registers ($arg1 = {reg}) at function entry"
            ),
            None => format!(
                "no argument registers known for {}: use registers",
                std::env::consts::ARCH
            ),
        },
        "",
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
            "not documented in README: use 'string' for user strings"
        },
        "Linux 5.5+",
        false,
    );
    r.uses = "uprobes through uprobe_events".into();
    Ok(r)
}

/// Runs uprobe: resolves the definition, creates the probe, sets up a private instance,
/// traces, and ends with the loss report and the end-of-run account.
pub fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup::cleanup_command();
    }
    if args.check {
        return check()?.print_check();
    }
    if let Some(t) = &args.list {
        return list(t);
    }
    let Some(def_text) = args.definition.as_deref() else {
        return Err(cli::usage("no uprobe definition given"));
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
    let res = resolve(&def, args.force)?;
    let shutdown = Shutdown::install()?;
    let tracefs = Tracefs::open()?;
    probe::require_uprobes(&tracefs)?;
    // Declared before the instance: removed after it (the kernel refuses to remove a
    // probe still enabled in an instance).
    let (p, with_comm) = create_probe(&tracefs, &def, &res, args.view)?;
    if args.view {
        print!("{}", p.format(&tracefs)?);
        return p.remove();
    }
    let spec = run::Spec {
        tool: "uprobe",
        user: true,
        filter: args.filter.as_deref(),
        pid: args.pid,
        tid: args.tid,
        stack: args.stack,
        headers: args.headers,
        duration: args.duration,
        fetch_args: &def.args,
        banner_detail: format!(
            " ({}:{} {}{}{})",
            def.kind,
            def.event,
            res.place(),
            if res.args.is_empty() { "" } else { " " },
            res.args
        ),
        scope: args.scope.clone(),
    };
    let inst = run::setup_instance(&tracefs, &spec, &p, scope.as_mut())?;
    let decoders = run::decoders(&tracefs, &spec, &p, &inst, with_comm);
    inst.enable_event(p.group(), p.event())?;
    inst.set_tracing_on(true)?;
    let mut out = Output::stdout();
    let traced = run::trace_scoped(
        &spec,
        &shutdown,
        inst,
        &mut out,
        p.event(),
        decoders.map(|d| (d, render::Symbols::default())),
        scope.as_mut(),
    )?;
    if traced.end == StreamEnd::OutputClosed {
        // Nobody reads our output any more: end quietly (the instance is gone).
        return p.remove();
    }
    let profile = std::fs::read_to_string(tracefs.path("uprobe_profile")).unwrap_or_default();
    let hits = profile_hits(&profile, &res.path.to_string_lossy(), p.event());
    p.remove()?;
    let _ = writeln!(out.buf, "\nEnding tracing...");
    out.flush()?;
    if traced.lost > 0 {
        eprintln!(
            "WARNING: {} events lost in total: the kernel buffer overflowed; lines are missing",
            traced.lost
        );
    }
    if let Some(line) = run::account(&spec, &traced, hits).line() {
        eprintln!("{line}");
    }
    Ok(())
}

/// Creates the probe. Outside `-v` it also records the task's comm (`$comm`), so lines
/// name the task as it was when the event fired, escaped; a kernel refusing that gets
/// the user's definition alone. Returns the probe and whether it records the comm.
fn create_probe(
    tracefs: &Tracefs,
    def: &Definition,
    res: &Resolved,
    view: bool,
) -> Result<(Probe, bool)> {
    let create = |extra: &str| {
        Probe::create(
            tracefs,
            "uprobe_events",
            &def.kind,
            &def.event,
            format!("{} {} {extra}", res.place(), res.args).trim(),
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
                .filter(|pe| pe.definition.contains('%'))
                .map(|_| {
                    format!(
                        "\nhint: register names are architecture-specific (this is {}: {}); uprobe also takes $arg1, $arg2, ... at a function's entry and $retval",
                        std::env::consts::ARCH,
                        probe::register_names()
                    )
                })
                .unwrap_or_default();
            Err(e).context(format!("creating the probe{hint}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_definitions_as_the_original() {
        let d = parse_definition("p:bash:readline").unwrap();
        assert_eq!(
            (d.kind.as_str(), d.event.as_str(), d.target.as_str()),
            ("p", "readline", "bash")
        );
        assert_eq!(
            d.place,
            Place::Symbol {
                name: "readline".into(),
                offset: 0
            }
        );
        let d = parse_definition("r:my /bin/bash:readline cmd=+0($retval):string").unwrap();
        assert_eq!(
            (d.kind.as_str(), d.event.as_str(), d.target.as_str()),
            ("r", "my", "/bin/bash")
        );
        assert_eq!(d.args, "cmd=+0($retval):string");
        let d = parse_definition("p:libc:0xbf130").unwrap();
        assert_eq!(d.place, Place::Offset(0xbf130));
        assert_eq!(d.event, "libc_0xbf130");
        let d = parse_definition("p:/lib/x86_64-linux-gnu/libc.so.6:0x10 %di").unwrap();
        assert_eq!(d.event, "libc_0x10");
        assert_eq!(d.args, "%di");
        let d = parse_definition("p:libc:sleep+0x8").unwrap();
        assert_eq!(
            d.place,
            Place::Symbol {
                name: "sleep".into(),
                offset: 8
            }
        );
        assert_eq!(d.event, "sleep_0x8");
        let d = parse_definition("p:x.y libc:sleep").unwrap();
        assert_eq!(d.event, "x_y");
        for bad in [
            "q:libc:sleep",
            "r4:libc:sleep",
            "libc:sleep",
            "p:",
            "p:sleep",
            "p:alias sleep",
            "p::sleep",
            "p:libc:",
            "p:libc:0xzz",
            "p:libc:a:b",
        ] {
            assert!(parse_definition(bad).is_err(), "{bad}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn translates_args_to_registers_at_entry_only() {
        assert_eq!(
            translate_args("a=$arg1 s=+0($arg2):ustring $arg6", "p", true).unwrap(),
            "a=%di s=+0(%si):ustring %r9"
        );
        assert_eq!(
            translate_args("r=$retval $comm", "r", true).unwrap(),
            "r=$retval $comm"
        );
        assert!(translate_args("$arg7", "p", true).is_err());
        assert!(translate_args("$arg1", "r", true)
            .unwrap_err()
            .contains("return"));
        assert!(translate_args("$arg1", "p", false).is_err());
    }

    #[test]
    fn segments_and_profile() {
        assert_eq!(segment("/lib/x86_64-linux-gnu/libc.so.6"), "libc");
        assert_eq!(segment("bash"), "bash");
        let p = "  /tmp/t x                                                          2\n  /tmp/t y 7\n  /tmp/u x 9\n";
        assert_eq!(profile_hits(p, "/tmp/t", "x"), Some(2));
        assert_eq!(profile_hits(p, "/tmp/t", "y"), Some(7));
        assert_eq!(profile_hits(p, "/tmp/t", "z"), None);
        let twice = "  /tmp/t x 2\n  /tmp/t x 3\n";
        assert_eq!(profile_hits(twice, "/tmp/t", "x"), None);
    }

    #[test]
    fn closest_names() {
        let f: Vec<(String, u64)> = ["readline", "read", "readdir", "write", "rl_readline"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        let c = closest(&f, "redline");
        assert_eq!(c.first(), Some(&"readline"), "{c:?}");
        assert!(closest(&f, "zzzzzzzz").is_empty());
        assert!(closest(&f, "readlin").contains(&"readline"));
    }

    #[test]
    fn usage_errors() {
        for argv in [
            &["uprobe"][..],
            &["uprobe", "-p", "1", "-L", "1", "p:libc:sleep"],
            &["uprobe", "-d", "1", "-v", "p:libc:sleep"],
            &["uprobe", "-d", "0", "p:libc:sleep"],
            &["uprobe", "-l", "libc", "p:libc:sleep"],
        ] {
            assert_eq!(
                Args::try_parse_from(argv).unwrap_err().exit_code(),
                2,
                "{argv:?}"
            );
        }
        assert!(Args::try_parse_from(["uprobe", "-l", "libc"]).is_ok());
    }
}
