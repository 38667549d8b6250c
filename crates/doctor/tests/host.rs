//! perf-tools-doctor on this machine: Linux 6.18 in a KVM guest, with tracefs at
//! /sys/kernel/tracing, block/syscall/sched tracepoints and uprobes, but no kprobes,
//! no working event probes, no function_graph, no /dev/cpu/*/msr and no hardware PMU.
//! The expectations are this machine's facts, exactly.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

const BIN: &str = env!("CARGO_BIN_EXE_perf-tools-doctor");

/// The table row of `key` (first in the output): (status word, detail), and the fix line
/// under it if any.
fn row<'a>(out: &'a str, key: &str) -> (&'a str, &'a str, Option<&'a str>) {
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.strip_prefix("  ")
                .and_then(|l| l.strip_prefix(key))
                .is_some_and(|r| r.starts_with("  "))
        })
        .unwrap_or_else(|| panic!("no row {key}:\n{out}"));
    let rest = lines[at][2 + key.len()..].trim_start();
    let (status, detail) = rest.split_once(' ').unwrap_or((rest, ""));
    let fix = lines
        .get(at + 1)
        .and_then(|l| l.trim_start().strip_prefix("fix: "));
    (status, detail.trim_start(), fix)
}

fn left_behind(pid: u32) -> Vec<String> {
    let mut v = Vec::new();
    for tool in [
        "perf-tools-doctor",
        "iosnoop",
        "iolatency",
        "funcgraph",
        "funcslower",
        "functrace",
        "funccount",
        "kprobe",
    ] {
        if testkit::instance_of(tool, pid) {
            v.push(format!("instance {tool}-{pid}"));
        }
    }
    v.extend(testkit::probes_of(pid));
    v
}

#[test]
fn table_states_this_hosts_facts_and_leaves_nothing() {
    if !testkit::live_or_skip("perf-tools-doctor table") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--all"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("error"), "{err}");
    assert!(!out.contains('\x1b'), "colour in a pipe:\n{out}");
    assert!(out.starts_with("perf-tools-doctor: Linux 6.18."), "{out}");
    assert_eq!(left_behind(pid), Vec::<String>::new());

    assert_eq!(row(&out, "mount"), ("yes", "/sys/kernel/tracing", None));
    assert_eq!(row(&out, "instances").0, "yes");
    assert_eq!(
        row(&out, "kprobe_events"),
        (
            "no",
            "absent (no kprobe_events)",
            Some("use a kernel built with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y")
        )
    );
    assert_eq!(
        row(&out, "uprobe_events"),
        (
            "yes",
            "verified: a uprobe on this program created and removed",
            None
        )
    );
    // The README documents 'e:' here, but the kernel rejects event probes.
    let (st, detail, fix) = row(&out, "eprobes");
    assert_eq!(st, "no");
    assert!(
        detail.starts_with(
            "README documents 'e:' but a test probe on syscalls.sys_enter_openat was rejected"
        ),
        "{detail}"
    );
    assert_eq!(
        fix,
        Some("use a kernel built with CONFIG_EPROBE_EVENTS=y (Linux 5.15+)")
    );
    assert_eq!(row(&out, "ustring").0, "yes");
    assert_eq!(row(&out, "args").0, "yes");
    assert_eq!(row(&out, "function").0, "yes");
    assert_eq!(
        row(&out, "function_graph"),
        (
            "no",
            "absent",
            Some("use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y")
        )
    );
    assert_eq!(row(&out, "function_graph_instance").0, "no");
    assert_eq!(row(&out, "set_ftrace_filter").0, "no");
    for ev in ["block_rq_issue", "block_rq_complete", "block_rq_insert"] {
        assert_eq!(row(&out, ev).0, "yes", "{ev}");
    }
    assert_eq!(
        row(&out, "block_layout"),
        ("yes", "6.11+ (with ioprio)", None)
    );
    for ev in [
        "sys_enter_open",
        "sys_exit_open",
        "sys_enter_openat",
        "sys_exit_openat",
        "sys_enter_openat2",
        "sys_exit_openat2",
        "sched_process_exec",
        "sched_process_fork",
        "sched_process_exit",
        "task_rename",
    ] {
        assert_eq!(row(&out, ev).0, "yes", "{ev}");
    }
    let (st, detail, fix) = row(&out, "msr_device");
    assert_eq!((st, detail), ("no", "no /dev/cpu/0/msr"));
    assert!(fix.unwrap().contains("CONFIG_X86_MSR"), "{fix:?}");
    assert_eq!(row(&out, "hw_counters").0, "no");
    assert!(row(&out, "sw_counters")
        .1
        .starts_with("task-clock counted for 1 ms: "));
    assert_eq!(row(&out, "cap_sys_admin").0, "yes");
    assert!(row(&out, "virtualization")
        .1
        .starts_with("virtual machine: "));
    // CONTAINER: this host is not a container (initial namespaces), although an image
    // leftover /.dockerenv exists here; root with every capability that matters, no
    // seccomp filter, /sys and tracefs read-write.
    let (st, detail, fix) = row(&out, "runs_in");
    assert_eq!((st, fix), ("yes", None));
    if std::path::Path::new("/.dockerenv").exists() {
        assert_eq!(
            detail,
            "host: initial PID and cgroup namespaces; /.dockerenv exists but is not \
             evidence by itself (a file of the image)"
        );
    } else {
        assert_eq!(detail, "host: initial PID and cgroup namespaces");
    }
    assert_eq!(
        row(&out, "tracefs_reachable"),
        ("yes", "tracefs at /sys/kernel/tracing", None)
    );
    let (st, detail, fix) = row(&out, "capabilities");
    assert_eq!((st, fix), ("yes", None));
    assert!(
        detail.starts_with("CapEff ")
            && detail.ends_with(": CAP_SYS_ADMIN held (tracefs), CAP_PERFMON held (counters)"),
        "{detail}"
    );
    assert_eq!(row(&out, "seccomp"), ("yes", "off (Seccomp: 0)", None));
    assert_eq!(
        row(&out, "sys_writable"),
        ("yes", "/sys is mounted read-write", None)
    );

    // TOOLS: verdict and what each would use.
    let tools = &out[out.find("\nTOOLS\n").expect("TOOLS section")..];
    for (tool, verdict) in [
        ("iosnoop", "yes"),
        ("iolatency", "yes"),
        ("opensnoop", "degraded"),
        ("syscount", "yes"),
        ("killsnoop", "yes"),
        ("perf-stat-hist", "yes"),
        ("execsnoop", "degraded"),
        ("funcgraph", "no"),
        ("funcslower", "no"),
        ("functrace", "no"),
        ("funccount", "no"),
        ("kprobe", "no"),
        ("cachestat", "degraded"),
        ("cputemp", "no"),
        ("showboost", "no"),
        ("pmcstat", "degraded"),
    ] {
        assert_eq!(row(tools, tool).0, verdict, "{tool}:\n{tools}");
    }
    // opensnoop answers with its own --check: here the uprobe source passes its
    // sentinel opens, and the kprobe sources say what is missing.
    assert!(
        row(tools, "opensnoop")
            .1
            .starts_with("file names from uprobes on the C library's open functions"),
        "{tools}"
    );
    assert!(
        tools.contains("source uprobe: verified with its own opens"),
        "{tools}"
    );
    assert!(tools.contains("fix: a kernel with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y"));
    assert_eq!(row(tools, "pmcstat").1, "software events only (-m sw)");
}

#[test]
fn default_is_one_screen_of_what_is_missing_and_the_verdicts() {
    if !testkit::live_or_skip("perf-tools-doctor brief") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(left_behind(pid), Vec::<String>::new());
    assert!(out.starts_with("perf-tools-doctor: Linux 6.18."), "{out}");
    // This machine's missing facts, each with its fix on the same line; no fact that
    // is yes.
    let missing = out
        .split("\nMISSING (")
        .nth(1)
        .and_then(|m| m.split("\nTOOLS\n").next())
        .unwrap_or_else(|| panic!("no MISSING section:\n{out}"));
    // "N of M facts; the other M-N are yes ...", then exactly N rows.
    let mut lines = missing.lines();
    let first = lines.next().unwrap();
    let nums: Vec<usize> = first
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 3, "{first}");
    assert_eq!(nums[0] + nums[2], nums[1], "{first}");
    assert_eq!(
        lines.filter(|l| !l.is_empty()).count(),
        nums[0],
        "{missing}"
    );
    for (key, fix) in [
        ("kprobe_events", "CONFIG_KPROBE_EVENTS=y"),
        ("eprobes", "CONFIG_EPROBE_EVENTS=y"),
        ("function_graph", "CONFIG_FUNCTION_GRAPH_TRACER=y"),
        ("msr_device", "CONFIG_X86_MSR=y"),
        ("hw_pmu", "virtual PMU"),
    ] {
        let (status, detail, _) = row(missing, key);
        assert_eq!(status, "no", "{key}");
        assert!(
            detail.starts_with("fix: ") && detail.contains(fix),
            "{key}: {detail}"
        );
    }
    for key in ["mount", "instances", "uprobe_events", "block_rq_issue"] {
        assert!(
            !missing
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} "))),
            "{key} is yes here, not missing:\n{missing}"
        );
    }
    let tools = out.split("\nTOOLS\n").nth(1).unwrap();
    assert_eq!(row(tools, "iosnoop").0, "yes");
    assert_eq!(
        row(tools, "funcgraph"),
        (
            "no",
            "nothing: this kernel has no function_graph tracer",
            Some("use a kernel built with CONFIG_FUNCTION_GRAPH_TRACER=y (most distribution kernels are)")
        )
    );
    // One screen (60 lines, 24 tools): far shorter than the whole table.
    let (_, all, _, _) = testkit::run_pid(BIN, &["--all"]);
    assert!(
        out.lines().count() <= 60,
        "{} lines:\n{out}",
        out.lines().count()
    );
    assert!(
        out.lines().count() * 2 < all.lines().count() + 20,
        "{out}\n---\n{all}"
    );
}

/// The `--json` keys documented in the man page's JSON section, per section.
fn documented_keys() -> Vec<(String, Vec<String>)> {
    let roff = include_str!("../../../man/src/perf-tools-doctor.roff");
    let at = roff.find("The keys are:\n").unwrap() + "The keys are:\n".len();
    let text = &roff[at..roff[at..].find("\nWithout").unwrap() + at];
    text.replace('\n', " ")
        .split(';')
        .map(|part| {
            let (sec, keys) = part.trim().trim_end_matches('.').split_once(':').unwrap();
            (
                sec.trim().to_string(),
                keys.split(',').map(|k| k.trim().to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn json_has_exactly_the_documented_fields() {
    if !testkit::live_or_skip("perf-tools-doctor --json") {
        return;
    }
    let (code, out, err, pid) = testkit::run_pid(BIN, &["--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(left_behind(pid), Vec::<String>::new());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        top,
        [
            "arch",
            "container",
            "cpu",
            "events",
            "kernel",
            "probes",
            "tools",
            "tracefs",
            "tracers",
            "version"
        ]
    );
    assert_eq!(v["version"], 1);
    assert!(v["kernel"].as_str().unwrap().starts_with("6.18."));
    let doc = documented_keys();
    assert_eq!(doc.len(), 6, "{doc:?}");
    for (sec, keys) in &doc {
        let obj = v[sec.as_str()]
            .as_object()
            .unwrap_or_else(|| panic!("no {sec}"));
        let mut have: Vec<&String> = obj.keys().collect();
        let mut want: Vec<&String> = keys.iter().collect();
        have.sort();
        want.sort();
        assert_eq!(have, want, "{sec}");
        for (k, f) in obj {
            let st = f["status"].as_str().unwrap();
            assert!(["yes", "degraded", "no"].contains(&st), "{sec}.{k}: {st}");
            assert!(f["detail"].is_string() && f["fix"].is_string(), "{sec}.{k}");
            assert_eq!(f.as_object().unwrap().len(), 3, "{sec}.{k}");
        }
    }
    assert_eq!(v["probes"]["kprobe_events"]["status"], "no");
    assert_eq!(v["events"]["block_layout"]["detail"], "6.11+ (with ioprio)");
    let tools = v["tools"].as_object().unwrap();
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bitesize",
            "cachestat",
            "cputemp",
            "execsnoop",
            "funccount",
            "funcgraph",
            "funcslower",
            "functrace",
            "iolatency",
            "iosnoop",
            "killsnoop",
            "kprobe",
            "opensnoop",
            "perf-stat-hist",
            "pmcstat",
            "reset-ftrace",
            "showboost",
            "syscount",
            "tcpretrans",
            "tpoint",
            "uprobe"
        ]
    );
    for (name, t) in tools {
        let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["exit_code", "items", "uses", "verdict"], "{name}");
        let want_code = if t["verdict"] == "no" { 1 } else { 0 };
        assert_eq!(t["exit_code"], want_code, "{name}");
        for i in t["items"].as_array().unwrap() {
            let mut k: Vec<&str> = i.as_object().unwrap().keys().map(String::as_str).collect();
            k.sort();
            assert_eq!(k, ["detail", "fix", "name", "required", "status"], "{name}");
        }
    }
    assert_eq!(v["tools"]["kprobe"]["verdict"], "no");
    assert_eq!(v["tools"]["iosnoop"]["verdict"], "yes");
    assert_eq!(v["tools"]["bitesize"]["verdict"], "yes");
    assert_eq!(v["tools"]["tpoint"]["verdict"], "yes");
    assert_eq!(v["tools"]["opensnoop"]["verdict"], "degraded");
    assert_eq!(v["tools"]["execsnoop"]["verdict"], "degraded");
    assert_eq!(v["tools"]["tcpretrans"]["verdict"], "yes");
    assert_eq!(v["tools"]["uprobe"]["verdict"], "yes");
    assert_eq!(v["tools"]["cachestat"]["verdict"], "degraded");
}

#[test]
fn without_privilege_says_what_it_could_not_check() {
    if !testkit::live_or_skip("perf-tools-doctor as nobody") {
        return;
    }
    let (code, out, err) = testkit::run_as_nobody(BIN, &["--all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(row(&out, "mount"), ("yes", "/sys/kernel/tracing", None));
    assert_eq!(
        row(&out, "access"),
        (
            "no",
            "CAP_SYS_ADMIN missing",
            Some("run as root (sudo), or grant CAP_SYS_ADMIN")
        )
    );
    assert_eq!(
        row(&out, "unchecked"),
        (
            "no",
            "not checked: CAP_SYS_ADMIN is needed to use tracefs",
            Some("run as root (sudo), or grant CAP_SYS_ADMIN")
        )
    );
    let tools = &out[out.find("\nTOOLS\n").expect("TOOLS section")..];
    for tool in [
        "iosnoop",
        "iolatency",
        "opensnoop",
        "syscount",
        "killsnoop",
        "perf-stat-hist",
        "reset-ftrace",
        "execsnoop",
        "funcgraph",
        "funcslower",
        "functrace",
        "funccount",
        "kprobe",
        "cachestat",
    ] {
        assert_eq!(row(tools, tool).0, "no", "{tool}:\n{tools}");
    }
    assert!(
        tools.contains("privilege: CAP_SYS_ADMIN missing"),
        "{tools}"
    );
    // The CPU facts do not need tracefs: still there.
    assert!(row(&out, "sw_counters")
        .1
        .starts_with("task-clock counted for 1 ms: "));
}
