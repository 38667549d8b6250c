//! Host tests: the built pmcstat against this machine's kernel. Software events work on
//! any Linux with perf events, PMU or not; hardware modes are checked against whatever
//! this machine has (a VM without a PMU here and in CI: the clear failure message).
//! Most tests need root (system-wide and kernel-mode counting); without it they print
//! why they skip, except under CI, where that is a failure.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};
use testkit::{libc, run, run_as_nobody, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_pmcstat");
const T: Duration = Duration::from_secs(20);
const NO_PMU: &str = "no hardware PMU exposed (hypervisor?): only software events are available";

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root, and CI runs as root");
    }
    eprintln!("SKIPPED {test}: not root");
    false
}

fn paranoid() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// True if this machine exposes a CPU PMU (then hardware modes must work, not fail).
fn has_pmu() -> bool {
    std::fs::read_dir("/sys/bus/event_source/devices")
        .unwrap()
        .flatten()
        .any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n == "cpu" || n.starts_with("cpu_") || n.starts_with("armv")
        })
}

/// Data rows: lines whose first field is a number (or a not-supported marker).
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|f| {
            f.first()
                .is_some_and(|x| x.parse::<f64>().is_ok() || x.starts_with('<'))
        })
        .collect()
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

const SW_HEADER: &str = "TASK_MS      CPUS CSW        MIGR     PGFAULT";

#[test]
fn sw_mode_on_a_command_counts_task_clock_and_context_switches() {
    if !root_or_skip("sw_mode_on_a_command_counts_task_clock_and_context_switches") {
        return;
    }
    let t = Instant::now();
    let (code, out, err) = run(BIN, &["-m", "sw", "-c", "sleep 0.2"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.lines().next(), Some(SW_HEADER), "{out}");
    // pmcstat ends with the command, well before the 1 s interval.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let r = rows(&out);
    assert_eq!(r.len(), 1, "one (partial) row: {out}");
    let f = &r[0];
    assert_eq!(f.len(), 5, "{f:?}");
    // sleep runs for about a millisecond of CPU: more than 0, far less than its 200 ms.
    let task_ms = num(&f[0]);
    assert!(task_ms > 0.0 && task_ms < 150.0, "TASK_MS {task_ms}");
    // It blocks in nanosleep at least once: a context switch.
    let csw = num(&f[2]);
    assert!((1.0..1000.0).contains(&csw), "CSW {csw}");
    // exec of a dynamically linked binary touches pages: page faults.
    assert!(num(&f[4]) > 10.0, "PGFAULT {}", f[4]);
    assert!(
        err.contains("command \"sleep 0.2\"") && err.contains("exited with status 0"),
        "{err}"
    );
}

#[test]
fn command_exit_status_is_reported_and_children_are_counted() {
    if !root_or_skip("command_exit_status_is_reported_and_children_are_counted") {
        return;
    }
    // A shell that forks a CPU-bound child (inherit) and fails with status 3.
    let (code, out, err) = run(
        BIN,
        &[
            "-m",
            "sw",
            "-c",
            "sh -c 'dd if=/dev/zero of=/dev/null bs=64k count=20000 2>/dev/null; exit 3'",
        ],
    );
    // pmcstat exits with the command's status, as perf stat and time do.
    assert_eq!(code, 3, "the command's status: {err}");
    assert!(err.contains("exited with status 3"), "{err}");
    let r = rows(&out);
    let task_ms: f64 = r.iter().map(|f| num(&f[0])).sum();
    // dd's copying is counted although dd is a child of the measured shell.
    assert!(
        task_ms > 5.0,
        "TASK_MS {task_ms}: children not counted? {out}"
    );

    // -c: the shell says it is not found and exits 127, which pmcstat passes on.
    let (code, _, err) = run(BIN, &["-m", "sw", "-c", "no-such-command-pmcstat x"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("not found"), "{err}");
    // After --: pmcstat runs it itself and says why it cannot.
    let (code, _, err) = run(BIN, &["-m", "sw", "--", "no-such-command-pmcstat", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("command not found"), "{err}");
}

#[test]
fn sw_mode_on_a_busy_pid() {
    if !root_or_skip("sw_mode_on_a_busy_pid") {
        return;
    }
    // Busy in the shell (mostly: tens of ms per loop), and blocking in wait() for a short
    // sleep now and then, so there are both CPU time and context switches to count; busy
    // enough that a loaded machine's share still gives it well over the bound below.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "while :; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.01; done",
        ])
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let t = Instant::now();
    let (code, out, err) = run(BIN, &["-m", "sw", "-p", &pid, "0.5", "1.5"]);
    let took = t.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "stderr: {err}");
    // The duration is honoured: 3 rows of 0.5 s, then exit.
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let r = rows(&out);
    assert!((2..=4).contains(&r.len()), "{out}");
    let task_ms: f64 = r.iter().map(|f| num(&f[0])).sum();
    let csw: f64 = r.iter().map(|f| num(&f[2])).sum();
    // A busy shell on a 2-CPU machine: at least a fifth of 1.5 s, at most all of it.
    assert!(
        task_ms > 300.0 && task_ms < 1.5 * 1000.0 * 1.2,
        "TASK_MS total {task_ms}: {out}"
    );
    assert!(csw >= 5.0, "CSW total {csw}: {out}");
    for f in &r {
        let cpus = num(&f[1]);
        assert!((0.0..=1.3).contains(&cpus), "one busy thread: CPUS {cpus}");
    }
}

#[test]
fn pid_run_ends_when_the_process_exits() {
    if !root_or_skip("pid_run_ends_when_the_process_exits") {
        return;
    }
    // Alive until its stdin closes, after pmcstat is counting (however slow its start).
    let mut child = std::process::Command::new("sh")
        .args(["-c", "read x"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut r = spawn(BIN, &["-m", "sw", "-p", &pid.to_string()]);
    r.wait_for("TASK_MS", T);
    drop(child.stdin.take());
    // Reap it so it is gone (not a zombie) once it exits.
    let _ = child.wait();
    let (code, err) = r.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("PID {pid} exited")), "{err}");
    // A sleeping process runs for almost no time: a row of small, honest numbers.
    assert!(!rows(&r.seen.join("\n")).is_empty(), "{:?}", r.seen);

    let (code, _, err) = run(BIN, &["-m", "sw", "-p", "999999999"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such process"), "{err}");
}

#[test]
fn system_wide_duration_is_honoured_and_ctrl_c_prints_a_last_row() {
    if !root_or_skip("system_wide_duration_is_honoured_and_ctrl_c_prints_a_last_row") {
        return;
    }
    // The original ignored the duration system-wide; here it ends the run.
    let t = Instant::now();
    let (code, out, err) = run(BIN, &["-m", "sw", "0.2", "0.5"]);
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let r = rows(&out);
    assert!((2..=4).contains(&r.len()), "{out}");
    // System-wide task-clock is the measured CPUs' time: CPUS = number of online CPUs.
    let ncpu = std::thread::available_parallelism().unwrap().get() as f64;
    for f in &r {
        assert!((num(&f[1]) - ncpu).abs() < 0.3, "CPUS {} vs {ncpu}", f[1]);
    }

    let mut run = spawn(BIN, &["-m", "sw", "0.3"]);
    run.collect_until(T, |seen| !rows(&seen.join("\n")).is_empty());
    std::thread::sleep(Duration::from_millis(150));
    run.signal(libc::SIGINT);
    let (code, err) = run.finish(T);
    assert_eq!(code, 0, "{err}");
    let r = rows(&run.seen.join("\n"));
    assert!(
        r.len() >= 2,
        "a final partial row after Ctrl-C: {:?}",
        run.seen
    );
    // The partial row covers ~150 ms of a 300 ms interval.
    let last_ms = num(&r[r.len() - 1][0]);
    assert!(last_ms < 0.3 * 1000.0 * ncpu, "last row {last_ms} ms");
}

#[test]
fn sigterm_ends_a_command_run_and_the_command() {
    if !root_or_skip("sigterm_ends_a_command_run_and_the_command") {
        return;
    }
    // sh forks sleep here: pmcstat ends both (run() would wait for sleep's stderr).
    let mut r = spawn(BIN, &["-m", "sw", "-c", "sleep 30; true", "0.2"]);
    r.collect_until(T, |seen| !rows(&seen.join("\n")).is_empty());
    r.signal(libc::SIGTERM);
    let (code, err) = r.finish(T);
    // The command ended by SIGTERM: 128 + 15, as a shell reports it.
    assert_eq!(code, 143, "{err}");
    assert!(
        err.contains("was killed by signal 15 (SIGTERM) when pmcstat was stopped"),
        "{err}"
    );
    // No sleep 30 left behind by this run.
    let pid: i32 = err
        .split("(PID ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn header_repeats_every_25_rows() {
    if !root_or_skip("header_repeats_every_25_rows") {
        return;
    }
    let (code, out, err) = run(BIN, &["-m", "sw", "0.02", "1.2"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let headers: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == SW_HEADER)
        .map(|(i, _)| i)
        .collect();
    assert!(headers.len() >= 2, "{out}");
    assert_eq!(headers[0], 0);
    assert_eq!(headers[1], 26, "25 rows between headers: {out}");
}

#[test]
fn closed_pipe_ends_quietly() {
    if !root_or_skip("closed_pipe_ends_quietly") {
        return;
    }
    let script = format!("{BIN} -m sw 0.05 | head -2 >/dev/null; exit ${{PIPESTATUS[0]}}");
    let (code, _, err) = run("bash", &["-c", &script]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn hardware_modes_without_a_pmu_fail_clearly() {
    for mode in ["arch", "ipc", "cache", "tlb", "icache", "resstalls"] {
        let (code, out, err) = run(BIN, &["-m", mode, "-c", "true"]);
        if has_pmu() && matches!(mode, "icache" | "resstalls") {
            // Which of their events exist depends on the CPU: rows, or the reason none
            // can be counted; never a silent empty run.
            assert!(
                code == 0 || err.contains("none of the requested events"),
                "{err}"
            );
            continue;
        }
        if has_pmu() {
            // A machine with a PMU: the mode runs (values or <not-supported> per event).
            assert_eq!(code, 0, "-m {mode}: {err}");
            assert!(out.contains("IPC"), "{out}");
            continue;
        }
        assert_eq!(code, 1, "-m {mode}: {out}{err}");
        assert!(out.is_empty(), "nothing on stdout: {out}");
        assert!(
            err.starts_with(&format!("pmcstat: error: {NO_PMU}")),
            "{err}"
        );
        assert!(
            err.contains("pmcstat -m sw"),
            "offers the software view: {err}"
        );
    }
    // The default mode is arch, system-wide.
    if !has_pmu() {
        let (code, _, err) = run(BIN, &[]);
        assert_eq!(code, 1);
        assert!(err.contains(NO_PMU), "{err}");
        // -e with only hardware events: the same message.
        let (code, _, err) = run(BIN, &["-e", "cycles,instructions", "-c", "true"]);
        assert_eq!(code, 1);
        assert!(err.contains(NO_PMU), "{err}");
    }
}

#[test]
fn mixed_event_list_shows_not_supported_never_zero() {
    if !root_or_skip("mixed_event_list_shows_not_supported_never_zero") || has_pmu() {
        return;
    }
    let (code, out, err) = run(BIN, &["-e", "task-clock,cycles,cs", "-c", "sleep 0.1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some("task-clock     cycles         cs"));
    let r = rows(&out);
    assert_eq!(r.len(), 1, "{out}");
    assert!(num(&r[0][0]) > 0.0);
    assert_eq!(r[0][1], "<not-supported>");
    assert!(num(&r[0][2]) >= 1.0);
    assert!(err.contains(NO_PMU), "{err}");
}

#[test]
fn show_events_works_without_a_pmu() {
    let (code, out, err) = run(BIN, &["--show-events"]);
    assert_eq!(code, 0, "{err}");
    // --show-events and the counting modes agree on whether there is a usable PMU.
    let first = out.lines().next().unwrap_or_default();
    if has_pmu() {
        assert!(first.contains("core PMUs: cpu"), "{out}");
    } else {
        assert!(first.ends_with("core PMUs: none"), "{out}");
        assert!(out.contains(NO_PMU), "{out}");
        assert!(!first.contains("type 4"), "{out}");
        let (code, _, err) = run(BIN, &["-m", "ipc", "-c", "true"]);
        assert_eq!(code, 1);
        assert!(err.contains(NO_PMU), "{err}");
    }
    let cycles = out
        .lines()
        .find(|l| l.starts_with("cycles "))
        .unwrap_or_else(|| panic!("{out}"));
    let f: Vec<&str> = cycles.split_whitespace().collect();
    // PERF_TYPE_HARDWARE (0), PERF_COUNT_HW_CPU_CYCLES (0), plus the hybrid PMU type in
    // the high bits on hybrid CPUs.
    assert_eq!(f[3], "0", "{cycles}");
    assert!(f[4] == "0x0" || f[4].ends_with("00000000"), "{cycles}");
    let (code, out, _) = run(BIN, &["-m", "sw", "--show-events"]);
    assert_eq!(code, 0);
    assert!(out
        .lines()
        .any(|l| l.starts_with("task-clock ") && l.contains(" software ")));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["0"][..],
        &["-1"],
        &["x"],
        &["1", "0"],
        &["1", "-5"],
        &["1", "soon"],
        &["-m", "bogus"],
        &["-e", "bogus-event"],
        &["-e", "cycles", "-m", "ipc"],
        &["-p", "0"],
        &["-C", "a-b"],
        &["-c", ""],
        &["-c", "true", "--", "true"],
        &["-p", "1", "--", "true"],
    ] {
        let (code, _, err) = run(BIN, args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, _, err) = run(BIN, &["-C", "0", "-p", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("pick one of -C, -p, -c"), "{err}");
    let (code, _, err) = run(BIN, &["-p", "1", "-c", "true"]);
    assert_eq!(code, 2);
    assert!(err.contains("pick one of -C, -p, -c"), "{err}");
    let (code, out, _) = run(BIN, &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("pmcstat"));
}

#[test]
fn unprivileged_use_is_explained() {
    if !root_or_skip("unprivileged_use_is_explained") {
        return;
    }
    let level = paranoid();
    // System-wide software counting as nobody: allowed only at perf_event_paranoid <= 0.
    let (code, out, err) = run_as_nobody(BIN, &["-m", "sw", "0.1", "0.2"]);
    if level > 0 {
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("Permission denied (EACCES)"), "{err}");
        assert!(err.contains("CAP_PERFMON"), "{err}");
        assert!(
            err.contains(&format!("perf_event_paranoid is {level} here")),
            "{err}"
        );
        assert!(err.contains("kernel.perf_event_paranoid <= 0"), "{err}");
    } else {
        assert_eq!(code, 0, "{err}");
    }
    // A command of one's own, kernel mode included: allowed at <= 1.
    let (code, _, err) = run_as_nobody(BIN, &["-m", "sw", "-c", "true"]);
    if level > 1 {
        assert_eq!(code, 1);
        assert!(err.contains("kernel.perf_event_paranoid <= 1"), "{err}");
        assert!(err.contains("--user"), "suggests --user: {err}");
    } else {
        assert_eq!(code, 0, "{err}");
    }
    // User mode only: allowed at <= 2. Context switches cannot be counted that way:
    // they show as not supported, never as 0.
    let (code, out, err) = run_as_nobody(BIN, &["-m", "sw", "--user", "-c", "sleep 0.1"]);
    if level > 2 {
        assert_eq!(code, 1);
        assert!(err.contains(">= 3"), "{err}");
    } else {
        assert_eq!(code, 0, "{err}");
        let r = rows(&out);
        assert_eq!(r.len(), 1, "{out}");
        assert!(num(&r[0][0]) > 0.0);
        assert_eq!(r[0][2], "<not-supported>");
        assert!(err.contains("happens only in kernel mode"), "{err}");
    }
}

#[test]
fn command_exit_status_is_pmcstats_exit_status() {
    if !root_or_skip("command_exit_status_is_pmcstats_exit_status") {
        return;
    }
    let (code, out, err) = run(BIN, &["-m", "sw", "-c", "exit 3"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("exited with status 3"), "{err}");
    // Killed by a signal: 128 + the signal number.
    let (code, _, err) = run(BIN, &["-m", "sw", "-c", "kill -9 $$"]);
    assert_eq!(code, 137, "{err}");
    assert!(err.contains("killed by signal 9 (SIGKILL)"), "{err}");
    let (code, _, err) = run(BIN, &["-m", "sw", "-c", "true"]);
    assert_eq!(code, 0, "{err}");
    // Ended by pmcstat at the end of the duration, as asked: 0.
    let (code, _, err) = run(BIN, &["-m", "sw", "-c", "sleep 30", "0.2", "0.4"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("at the end of the duration"), "{err}");
}

#[test]
fn command_runs_through_sh_so_globs_expand() {
    if !root_or_skip("command_runs_through_sh_so_globs_expand") {
        return;
    }
    // The original's own example, with a glob that exists on every machine.
    let (code, out, err) = run(BIN, &["-m", "sw", "-c", "cksum /etc/host*"]);
    assert_eq!(code, 0, "{out}{err}");
    let expanded: Vec<&str> = out.lines().filter(|l| l.contains(" /etc/host")).collect();
    assert!(
        expanded.iter().any(|l| l.ends_with("/etc/hosts")),
        "cksum saw the expanded names: {out}"
    );
    assert!(!out.contains("/etc/host*"), "{out}");
    assert_eq!(rows(&out).len(), 1 + expanded.len(), "{out}");
}

#[test]
fn command_after_double_dash_is_passed_exactly() {
    if !root_or_skip("command_after_double_dash_is_passed_exactly") {
        return;
    }
    // No shell: the glob and the spaces reach the program as given.
    let (code, out, err) = run(
        BIN,
        &["-m", "sw", "--", "printf", "<%s>\\n", "/etc/host*", "a  b"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("</etc/host*>\n<a  b>\n"), "{out}");
    // A shell when asked for one, and its status.
    let (code, out, err) = run(
        BIN,
        &["-m", "sw", "0.5", "--", "sh", "-c", "echo x; exit 5"],
    );
    assert_eq!(code, 5, "{out}{err}");
    assert!(out.lines().any(|l| l == "x"), "{out}");
}

#[test]
fn closed_pipe_is_noticed_while_waiting() {
    if !root_or_skip("closed_pipe_is_noticed_while_waiting") {
        return;
    }
    // head exits after the header; pmcstat must not linger until its 30 s interval.
    // The command's tree is ended too (sh forks sleep): nothing holds our stderr open,
    // so run() returns as soon as the pipeline does.
    for cmd in [
        format!("{BIN} -m sw 30 | head -1"),
        format!("{BIN} -m sw -c 'sleep 30' 30 | head -1"),
        format!("{BIN} -m sw -c 'sleep 30; true' 0.2 | (sleep 0.5; head -1)"),
    ] {
        let t = Instant::now();
        let script = format!("{cmd}; exit ${{PIPESTATUS[0]}}");
        let (code, out, err) = run("bash", &["-c", &script]);
        let took = t.elapsed();
        assert_eq!(code, 0, "{cmd}: {err}");
        assert_eq!(out, format!("{SW_HEADER}\n"));
        // Far below the interval and the command's 30 s, with room for a loaded machine.
        assert!(took < Duration::from_secs(10), "{cmd}: took {took:?}");
    }
}

#[test]
fn run_pct_column_only_on_request() {
    if !root_or_skip("run_pct_column_only_on_request") {
        return;
    }
    // Default: the original's layout, so awk '{print $NF}' prints the last metric.
    let (code, out, err) = run(BIN, &["-m", "sw", "-c", "true"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("RUN%"), "{out}");
    assert!(rows(&out).iter().all(|f| f.len() == 5), "{out}");
    let (code, out, err) = run(BIN, &["-m", "sw", "--run-pct", "-c", "true"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some(&*format!("{SW_HEADER}     RUN%")));
    let r = rows(&out);
    assert!(r.iter().all(|f| f.len() == 6 && f[5] == "100.0"), "{out}");
}
