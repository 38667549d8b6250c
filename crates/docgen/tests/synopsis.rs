//! SYNOPSIS and usage lines, checked against what each tool really accepts: the man
//! pages rendered by man(1) (`man -l`), and the usage `-h` and usage errors print.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;

/// The true synopsis of every tool: value names shown, required operands without
/// brackets, exclusive options in one bracket, `--cleanup` and `--check` alone.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "iosnoop",
        &[
            "iosnoop [-Qst] [-d device] [-i iotype] [-n name | -p PID | -L TID] [--buffer-kb KiB] [--min-ms MS] [--context SECS] [--context-rows N] [--count N] [--heatmap FILE] [--cgroup PATH | --container ID|NAME] [--show-cgroup] [--show-nspid] [duration]",
            "iosnoop --cleanup",
            "iosnoop --check",
        ],
    ),
    (
        "iolatency",
        &[
            "iolatency [-DPQTu] [-d device] [-i iotype] [--json] [--buffer-kb KiB] [--heatmap FILE] [--cgroup PATH | --container ID|NAME] [interval [count]]",
            "iolatency --cleanup",
            "iolatency --check",
        ],
    ),
    (
        "cputemp",
        &["cputemp [-apu] [--source SOURCE] [--tjmax C] [interval [count]]"],
    ),
    (
        "showboost",
        &["showboost [-A] [-C CPU] [--base-mhz MHz] [--source SOURCE] [interval [count]]"],
    ),
    (
        "pmcstat",
        &["pmcstat [-m mode | -e events] [-C CPU] [-p PID] [-c CMD] [--cgroup PATH] [--container ID] [--run-pct] [--user] [--show-events] [interval [duration]] [-- command...]"],
    ),
    (
        "funcgraph",
        &[
            "funcgraph [-aCDHPtT] [-d secs] [-m maxdepth] [-p PID | -L TID] [--cgroup PATH | --container ID|NAME] funcstring...",
            "funcgraph --cleanup",
            "funcgraph --check",
        ],
    ),
    (
        "functrace",
        &[
            "functrace [-H] [-d secs] [-p PID | -L TID] [--force] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME] funcstring...",
            "functrace --cleanup",
            "functrace --check",
        ],
    ),
    (
        "funccount",
        &[
            "funccount [-T] [-d secs] [-i secs] [-t top] [--force] [--counter COUNTER] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME] funcstring...",
            "funccount --cleanup",
            "funccount --check",
        ],
    ),
    (
        "opensnoop",
        &[
            "opensnoop [-tvx] [-d secs] [-n name | -p PID | -L TID] [--errno] [--include-suite] [--cgroup PATH | --container ID|NAME] [--show-cgroup] [--show-nspid] [--buffer-kb KiB] [filename]",
            "opensnoop --cleanup",
            "opensnoop --check",
        ],
    ),
    (
        "syscount",
        &[
            "syscount [-cv] [-p PID | -d seconds] [-t top] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME] [command...]",
            "syscount --cleanup",
            "syscount --check",
        ],
    ),
    (
        "killsnoop",
        &[
            "killsnoop [-st] [-d secs] [-n name | -p PID] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME] [--show-cgroup] [--show-nspid]",
            "killsnoop --cleanup",
            "killsnoop --check",
        ],
    ),
    (
        "perf-stat-hist",
        &[
            "perf-stat-hist [-b buckets | -P power] [-m max] [-f filter] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME] tracepoint variable [seconds]",
            "perf-stat-hist --cleanup",
            "perf-stat-hist --check",
        ],
    ),
    (
        "reset-ftrace",
        &["reset-ftrace [-fq]", "reset-ftrace --check"],
    ),
    (
        "execsnoop",
        &[
            "execsnoop [-rtv] [-a argc] [-d secs] [--include-suite] [--cgroup PATH | --container ID|NAME] [--show-cgroup] [--show-nspid] [--buffer-kb KiB] [name]",
            "execsnoop --cleanup",
            "execsnoop --check",
        ],
    ),
    (
        "kprobe",
        &[
            "kprobe [-FHs] [-d secs | -v] [-p PID | -L TID] [--cgroup PATH | --container ID|NAME] kprobe_definition [filter]",
            "kprobe --cleanup",
            "kprobe --check",
        ],
    ),
    (
        "tcpretrans",
        &[
            "tcpretrans [-ls] [--source SOURCE] [--duration seconds] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME]",
            "tcpretrans --cleanup",
            "tcpretrans --check",
        ],
    ),
    (
        "uprobe",
        &[
            "uprobe [-FHs] [-d secs | -v] [-p PID | -L TID] [--cgroup PATH | --container ID|NAME] uprobe_definition [filter]",
            "uprobe -l target",
            "uprobe --cleanup",
            "uprobe --check",
        ],
    ),
    (
        "bitesize",
        &[
            "bitesize [-b buckets] [-d device] [--per-process] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME] [seconds]",
            "bitesize --cleanup",
            "bitesize --check",
        ],
    ),
    (
        "tpoint",
        &[
            "tpoint [-Hs] [-d secs | -v] [-p PID | -L TID] [--cgroup PATH | --container ID|NAME] [--show-cgroup] [--show-nspid] [--buffer-kb KiB] tracepoint [filter]",
            "tpoint -l",
            "tpoint --cleanup",
            "tpoint --check",
        ],
    ),
    (
        "funcslower",
        &[
            "funcslower [-aCHPt] [-d secs] [-p PID | -L TID] [--context SECS] [--context-rows N] [--count N] [--cgroup PATH | --container ID|NAME] funcstring latency_us",
            "funcslower --cleanup",
            "funcslower --check",
        ],
    ),
    (
        "heatmap",
        &["heatmap [--title TEXT] [--unitstime UNITS] [--unitslabel TEXT] [--minlat LAT] [--maxlat LAT] [--rows N] [--steplat LAT] [--stepsec SECONDS] [--maxcol N] [--boxsize PIXELS] [--fontsize SIZE] [--fonttype FONT] [--grid] [--accstats] [--log] [--percentiles] [--time-col NAME] [--lat-col NAME] [FILE...]"],
    ),
    (
        "cachestat",
        &[
            "cachestat [-Dt] [--count N] [--buffer-kb KiB] [--cgroup PATH | --container ID|NAME] [interval]",
            "cachestat --cleanup",
            "cachestat --check",
        ],
    ),
    ("perf-tools-doctor", &["perf-tools-doctor [-a | --json]"]),
    ("perf-tools", &["perf-tools [-f] [-l | --install-links DIR] [TOOL...]"]),
];

fn expected(tool: &str) -> Vec<String> {
    let (_, lines) = EXPECTED
        .iter()
        .find(|(t, _)| *t == tool)
        .unwrap_or_else(|| panic!("{tool}: no expected SYNOPSIS in this test"));
    lines.iter().map(|s| s.to_string()).collect()
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The page as man(1) renders it, wide enough that no synopsis line wraps.
fn man_render(page: &std::path::Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "250")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("LC_ALL", "C.UTF-8")
        // man-db's seccomp sandbox fails in some containers; the page is our own.
        .env("MAN_DISABLE_SECCOMP", "1")
        .env_remove("MAN_KEEP_FORMATTING")
        .output()
        .unwrap_or_else(|e| panic!("cannot run man (install man-db; scripts/test.sh does): {e}"));
    assert!(
        out.status.success(),
        "man -l {} failed: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_tool_has_an_expected_synopsis() {
    let tools: Vec<&str> = docgen::tools().iter().map(|t| t.name).collect();
    let listed: Vec<&str> = EXPECTED.iter().map(|(t, _)| *t).collect();
    assert_eq!(tools, listed);
}

#[test]
fn man_pages_render_the_true_synopsis_and_release_date() {
    let root = docgen::workspace_root();
    let date = docgen::release_date().unwrap();
    for t in docgen::tools() {
        // The page as generated now (man_pages_are_current checks the checked-in one
        // equals it), rendered by man(1).
        let dir = root.join("target/synopsis-test");
        std::fs::create_dir_all(&dir).unwrap();
        let page = dir.join(format!("{}.8", t.name));
        std::fs::write(&page, docgen::render_man(&t).unwrap()).unwrap();
        let text = man_render(&page);
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == "SYNOPSIS")
            .unwrap_or_else(|| panic!("{}: no SYNOPSIS in\n{text}", t.name));
        let synopsis: Vec<String> = lines[start + 1..]
            .iter()
            .take_while(|l| l.starts_with(' ') || l.is_empty())
            .filter(|l| !l.trim().is_empty())
            .map(|l| squeeze(l))
            .collect();
        // A form longer than the page wraps: its continuation lines join it.
        let mut forms: Vec<String> = Vec::new();
        for l in synopsis {
            match forms.last_mut() {
                Some(last) if !l.starts_with(&format!("{} ", t.name)) => {
                    last.push(' ');
                    last.push_str(&l);
                }
                _ => forms.push(l),
            }
        }
        assert_eq!(forms, expected(t.name), "{}: man -l SYNOPSIS", t.name);
        let footer = lines.iter().rev().find(|l| !l.trim().is_empty()).unwrap();
        assert!(
            footer.contains(&date) && footer.contains("perf-tools-rs"),
            "{}: the footer has no release date {date}: {footer:?}",
            t.name
        );
    }
}

#[test]
fn usage_lines_are_the_synopsis() {
    for t in docgen::tools() {
        let mut cmd = (t.command)();
        let usage = cmd.render_usage().to_string();
        let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage);
        // Continuation lines are indented under the first option; a new form starts
        // with the tool's name.
        let mut forms: Vec<String> = Vec::new();
        for l in usage.lines() {
            let l = l.trim();
            if l.starts_with(&format!("{} ", t.name)) || forms.is_empty() {
                forms.push(l.to_string());
            } else if let Some(last) = forms.last_mut() {
                last.push(' ');
                last.push_str(l);
            }
        }
        assert_eq!(forms, expected(t.name), "{}: usage", t.name);
        assert!(
            // The first line follows "Usage: "; continuation lines carry their own indent.
            usage
                .lines()
                .enumerate()
                .all(|(i, l)| l.len() + if i == 0 { "Usage: ".len() } else { 0 } <= 80),
            "{}: usage wider than 80 columns:\n{usage}",
            t.name
        );
    }
}

/// A usage error prints the whole usage, not just the arguments given
/// (`Usage: iosnoop -p <PID> [duration]` was printed for `-p 1 -n x`).
#[test]
fn usage_errors_print_the_whole_usage() {
    for (tool, args) in [
        ("iosnoop", &["-p", "1", "-n", "x"][..]),
        ("opensnoop", &["-p", "1", "-L", "2"][..]),
        ("funcgraph", &["-p", "1", "-L", "2", "vfs_read"][..]),
        ("funcgraph", &["-m", "3"][..]),
        ("kprobe", &["-d", "1", "-v", "p:vfs_read"][..]),
        ("kprobe", &["-p", "1"][..]),
        ("uprobe", &["-l", "libc", "p:libc:sleep"][..]),
        ("pmcstat", &["-m", "ipc", "-e", "cycles"][..]),
        ("iolatency", &["--cleanup", "1"][..]),
        ("syscount", &["-p", "1", "-d", "2"][..]),
        ("killsnoop", &["-p", "1", "-n", "x"][..]),
        ("perf-stat-hist", &["-b", "1", "-P", "2", "a:b", "c"][..]),
    ] {
        let t = docgen::tools()
            .into_iter()
            .find(|t| t.name == tool)
            .unwrap();
        let mut cmd = (t.command)();
        let usage = cmd.render_usage().to_string();
        let argv = std::iter::once(tool).chain(args.iter().copied());
        let err = (t.command)()
            .try_get_matches_from(argv)
            .unwrap_err()
            .render()
            .to_string();
        assert!(err.starts_with("error: "), "{tool} {args:?}: {err}");
        assert!(
            err.contains(&format!("\n{usage}\n")),
            "{tool} {args:?}: not the whole usage:\n{err}"
        );
    }
}

/// `iolatency 1 0` said `0 is not in 1..18446744073709551615`.
#[test]
fn range_errors_name_the_value() {
    for (tool, args, want) in [
        ("iolatency", &["1", "0"][..], "count must be at least 1"),
        ("cputemp", &["1", "0"][..], "count must be at least 1"),
        ("showboost", &["1", "0"][..], "count must be at least 1"),
        (
            "iosnoop",
            &["--buffer-kb", "1"][..],
            "--buffer-kb must be between 64 and 1048576",
        ),
        (
            "iolatency",
            &["--buffer-kb", "1"][..],
            "--buffer-kb must be between 64 and 1048576",
        ),
        (
            "opensnoop",
            &["--buffer-kb", "1"][..],
            "--buffer-kb must be between 64 and 1048576",
        ),
        ("pmcstat", &["-p", "0"][..], "PID must be at least 1"),
        ("funcgraph", &["-p", "0", "f"][..], "PID must be at least 1"),
        ("funcgraph", &["-L", "0", "f"][..], "TID must be at least 1"),
        (
            "funcgraph",
            &["-m", "10001", "f"][..],
            "maxdepth must be between 0 and 10000",
        ),
        (
            "cputemp",
            &["--tjmax", "151"][..],
            "--tjmax must be between 1 and 150",
        ),
        (
            "showboost",
            &["--base-mhz", "0"][..],
            "--base-mhz must be between 1 and 100000",
        ),
    ] {
        let t = docgen::tools()
            .into_iter()
            .find(|t| t.name == tool)
            .unwrap();
        let argv = std::iter::once(tool).chain(args.iter().copied());
        let err = (t.command)()
            .try_get_matches_from(argv)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{tool} {args:?}: {err}");
        assert!(!err.contains(" is not in "), "{tool} {args:?}: {err}");
    }
}

#[test]
fn the_multicall_binary_carries_every_tool() {
    let documented: Vec<&str> = docgen::tools()
        .iter()
        .map(|t| t.name)
        .filter(|n| *n != "perf-tools")
        .collect();
    let mut carried: Vec<&str> = perf_tools::TOOLS.iter().map(|t| t.name).collect();
    let mut want = documented.clone();
    carried.sort();
    want.sort();
    assert_eq!(
        carried, want,
        "crates/perf-tools/src/lib.rs TOOLS and docgen::tools() differ"
    );
}
