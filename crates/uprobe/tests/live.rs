//! Live tests on this machine's kernel (uprobe events): a small C program, compiled by
//! the test, calls `probed(i, s)` a known number of times; uprobe must print exactly
//! those calls, with their arguments, strings (escaped) and return values, and leave
//! nothing behind. Where the kernel lacks uprobe events, uprobe must refuse cleanly.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{instance_of, live_or_skip, probes_of, run_pid, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_uprobe");
const T: Duration = Duration::from_secs(20);

/// `prog N STRING [wait]`: with `wait`, reads one byte from stdin first; then calls
/// `probed(i, STRING)` for i in 0..N (returning 2*i + STRING[0]).
const PROG: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((noinline)) long probed(long a, const char *s) {
    __asm__ volatile("" ::: "memory");
    return a * 2 + s[0];
}
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    long t = 0;
    char c;
    if (argc > 3 && strcmp(argv[3], "wait") == 0 && read(0, &c, 1) < 0)
        return 2;
    for (long i = 0; i < n; i++)
        t += probed(i, argv[2]);
    printf("%ld\n", t);
    return 0;
}
"#;

/// A compiled [`PROG`] in a directory of its own, removed when dropped.
struct Prog {
    dir: PathBuf,
    exe: PathBuf,
}

impl Drop for Prog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl std::ops::Deref for Prog {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.exe
    }
}

impl AsRef<std::ffi::OsStr> for Prog {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.exe.as_os_str()
    }
}

/// Compiles [`PROG`] as `name` in a directory of this test; `None` (skip) without a C
/// compiler.
fn build(name: &str) -> Option<Prog> {
    let dir = std::env::temp_dir().join(format!("uprobe-live-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, PROG).unwrap();
    let exe = dir.join(name);
    let prog = Prog {
        dir,
        exe: exe.clone(),
    };
    match Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => Some(prog),
        Ok(s) => panic!("cc failed: {s}"),
        Err(e) => {
            eprintln!("SKIPPED: no C compiler (cc: {e})");
            None
        }
    }
}

/// Starts `prog N p wait`: it calls `probed` N times once a byte comes on its stdin.
fn waiting(prog: &Prog, n: &str) -> std::process::Child {
    Command::new(prog)
        .args([n, "p", "wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn has_uprobes() -> bool {
    std::path::Path::new(testkit::TRACEFS)
        .join("uprobe_events")
        .exists()
}

/// Event lines of the probe `event` in `lines`.
fn events<'a>(lines: &'a [String], event: &str) -> Vec<&'a String> {
    let needle = format!(": {event}: (0x");
    lines.iter().filter(|l| l.contains(&needle)).collect()
}

fn assert_clean(pid: u32) {
    assert!(!instance_of("uprobe", pid), "instance left behind");
    let left = probes_of(pid);
    assert!(left.is_empty(), "probes left behind: {left:?}");
}

#[test]
fn refuses_cleanly_without_uprobe_events() {
    if !live_or_skip("refuses_cleanly_without_uprobe_events") || has_uprobes() {
        eprintln!("SKIPPED: this kernel has uprobe events (the other tests cover it)");
        return;
    }
    let (code, out, err, pid) = run_pid(BIN, &["p:libc:getpid"]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("CONFIG_UPROBE_EVENTS"), "{err}");
    assert_clean(pid);
}

/// Entry probe: exactly N lines, in order, with `$arg1`, a `:ustring` of `$arg2`
/// escaped, the program's name and PID; nothing left after Ctrl-C.
#[test]
fn entry_probe_prints_each_call_with_its_arguments() {
    if !live_or_skip("entry_probe") || !has_uprobes() {
        return;
    }
    let Some(prog) = build("upentry") else { return };
    let def = format!("p:{}:probed a=$arg1 s=+0($arg2):ustring", prog.display());
    let mut up = spawn(BIN, &[&def]);
    let banner = up.wait_for("Tracing uprobe probed", T);
    assert!(banner.contains("(p:probed /"), "{banner}");
    if cfg!(target_arch = "x86_64") {
        assert!(
            banner.ends_with(" a=%di s=+0(%si):ustring). Ctrl-C to end."),
            "{banner}"
        );
    }
    let out = Command::new(&prog)
        .args(["5", "hi\nthere"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let child_pid = {
        // The program has exited: its PID is in the lines; wait for all five.
        up.collect_until(T, |l| events(l, "probed").len() >= 5);
        let e = events(&up.seen, "probed");
        assert_eq!(e.len(), 5, "{:?}", up.seen);
        let first = e[0].trim_start();
        let (task, _) = first.split_once(' ').unwrap();
        task.rsplit_once('-').unwrap().1.parse::<u32>().unwrap()
    };
    up.signal(testkit::libc::SIGINT);
    let (code, err) = up.finish(T);
    assert_eq!(code, 0, "{err}");
    let e = events(&up.seen, "probed");
    assert_eq!(e.len(), 5, "exactly the five calls: {:?}", up.seen);
    for (i, l) in e.iter().enumerate() {
        assert!(
            l.trim_start().starts_with(&format!("upentry-{child_pid} ")),
            "{l}"
        );
        assert!(
            l.ends_with(&format!(") a=0x{i:x} s=\"hi\\nthere\"")),
            "line {i}: {l}"
        );
    }
    assert!(up.seen.iter().any(|l| l == "Ending tracing..."));
    assert_clean(up.child.id());
}

/// Return probe with `-d`: `$retval` of each call (2*i + 'x'), and `-s` prints a user
/// stack after each event whose first frame is the return address.
#[test]
fn return_probe_with_retval_and_user_stacks() {
    if !live_or_skip("return_probe") || !has_uprobes() {
        return;
    }
    let Some(prog) = build("upret") else { return };
    let def = format!("r:myret {}:probed ret=$retval", prog.display());
    let mut up = spawn(BIN, &["-s", "-d", "3", &def]);
    up.wait_for("Tracing uprobe myret for 3 seconds (buffered)...", T);
    let out = Command::new(&prog).args(["3", "x"]).output().unwrap();
    assert!(out.status.success());
    let (code, err) = up.finish(T);
    assert_eq!(code, 0, "{err}");
    let e = events(&up.seen, "myret");
    assert_eq!(e.len(), 3, "{:?}", up.seen);
    for (i, l) in e.iter().enumerate() {
        assert!(
            l.ends_with(&format!(" ret=0x{:x}", 2 * i + usize::from(b'x'))),
            "{l}"
        );
        // (0x<return address> <- 0x<function>)
        let inside = l.split_once(": (0x").unwrap().1;
        let ret_addr = inside.split_once(' ').unwrap().0;
        let idx = up.seen.iter().position(|s| s == *l).unwrap();
        assert!(
            up.seen[idx + 1].ends_with(": <user stack trace>"),
            "{:?}",
            &up.seen[idx..]
        );
        assert_eq!(
            up.seen[idx + 2],
            format!(" =>  <{:0>16}>", ret_addr),
            "{:?}",
            &up.seen[idx..]
        );
    }
    assert_clean(up.child.id());
}

/// `-p`: of two copies of the program, only the chosen one's calls are printed.
#[test]
fn pid_filter_keeps_one_process() {
    if !live_or_skip("pid_filter") || !has_uprobes() {
        return;
    }
    let Some(prog) = build("uppid") else { return };
    let start = |n: &str| waiting(&prog, n);
    let (mut a, mut b) = (start("4"), start("6"));
    let def = format!("p:{}:probed n=$arg1", prog.display());
    let pid_a = a.id().to_string();
    let mut up = spawn(BIN, &["-p", &pid_a, &def]);
    up.wait_for("Tracing uprobe probed", T);
    for c in [&mut a, &mut b] {
        c.stdin.take().unwrap().write_all(b"g").unwrap();
        assert!(c.wait().unwrap().success());
    }
    up.collect_until(Duration::from_secs(2), |l| events(l, "probed").len() > 4);
    up.signal(testkit::libc::SIGTERM);
    let (code, err) = up.finish(T);
    assert_eq!(code, 0, "{err}");
    let e = events(&up.seen, "probed");
    assert_eq!(e.len(), 4, "only -p's 4 calls: {:?}", up.seen);
    assert!(e
        .iter()
        .all(|l| l.trim_start().starts_with(&format!("uppid-{pid_a} "))));
    assert_clean(up.child.id());
}

/// `--cgroup`: two runs of the program wait on stdin, one moved into a cgroup made here;
/// only its 5 calls are traced (not the other's 7), and a cgroup removed mid-run ends the
/// run with exit 0.
#[test]
fn cgroup_scope_keeps_the_cgroups_process_only() {
    if !live_or_skip("cgroup_scope") || !has_uprobes() {
        return;
    }
    let Some(prog) = build("upcg") else { return };
    let start = |n: &str| waiting(&prog, n);
    let (mut a, mut b) = (start("5"), start("7"));
    let cg = testkit::cgroup::TestCgroup::v2("ptrs-scope-up");
    cg.add(a.id());
    let name = cg.name();
    let def = format!("p:{}:probed n=$arg1", prog.display());
    let mut up = spawn(BIN, &["--cgroup", &name, &def]);
    let banner = up.wait_for("Tracing uprobe probed", T);
    assert!(banner.contains(&format!(" for cgroup {name}")), "{banner}");
    for c in [&mut a, &mut b] {
        c.stdin.take().unwrap().write_all(b"g").unwrap();
        assert!(c.wait().unwrap().success());
    }
    up.collect_until(Duration::from_secs(2), |l| events(l, "probed").len() > 5);
    // The cgroup goes away: the run ends by itself.
    cg.remove();
    let (code, err) = up.finish(T);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("was removed"), "{err}");
    let e = events(&up.seen, "probed");
    assert_eq!(e.len(), 5, "only the cgroup's 5 calls: {:?}", up.seen);
    let pid_a = a.id();
    assert!(e
        .iter()
        .all(|l| l.trim_start().starts_with(&format!("upcg-{pid_a} "))));
    assert_clean(up.child.id());
}

/// `-l` lists the program's functions; errors explain themselves and leave nothing.
#[test]
fn listing_and_errors() {
    if !live_or_skip("listing_and_errors") || !has_uprobes() {
        return;
    }
    let Some(prog) = build("uperr") else { return };
    let p = prog.display().to_string();
    let (code, out, err, _) = run_pid(BIN, &["-l", &p]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = out.lines().collect();
    assert!(
        names.contains(&"probed") && names.contains(&"main"),
        "{out}"
    );
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted);

    let (code, _, err, pid) = run_pid(BIN, &[&format!("p:{p}:probd")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no function \"probd\"") && err.contains("closest: probed"),
        "{err}"
    );
    assert_clean(pid);

    let (code, _, err, pid) = run_pid(BIN, &[&format!("p:{p}:puts")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("use p:libc:puts"), "{err}");
    assert_clean(pid);

    let (code, _, err, pid) = run_pid(BIN, &[&format!("p:{p}:probed"), "nosuch == 1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Field not found"), "{err}");
    assert_clean(pid);

    let (code, _, err, pid) = run_pid(BIN, &[&format!("p:{p}:probed %nosuchreg")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Invalid register name"), "{err}");
    assert_clean(pid);

    let (code, _, err, _) = run_pid(BIN, &[&format!("r:{p}:probed $arg1")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("return"), "{err}");

    let (code, _, err, _) = run_pid(BIN, &["q:libc:sleep"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p: or r:"), "{err}");

    // An indirect function (glibc's strlen) is explained, not probed uselessly.
    let libc = perf_tools_ftrace::elf::system_libc().unwrap();
    let ifuncs = perf_tools_ftrace::elf::indirect_functions(
        &std::fs::read(&libc).unwrap(),
        perf_tools_ftrace::elf::Tables::All,
    )
    .unwrap_or_default();
    if let Some((f, _)) = ifuncs.iter().find(|(n, _)| n == "strlen") {
        let (code, _, err, pid) = run_pid(BIN, &[&format!("p:libc:{f}")]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("is an indirect function (GNU IFUNC)"), "{err}");
        assert_clean(pid);
    }

    // -v: the format of the probe, then nothing left.
    let (code, out, err, pid) = run_pid(BIN, &["-v", &format!("p:{p}:probed $arg1")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("name: probed\n"), "{out}");
    assert!(out.contains("field:u64 arg1;"), "{out}");
    assert_clean(pid);
}

/// A raw offset must be a function's first instruction (else -F).
#[test]
fn raw_offsets_are_checked() {
    if !live_or_skip("raw_offsets") || !has_uprobes() {
        return;
    }
    let Some(prog) = build("upraw") else { return };
    let p = prog.display().to_string();
    let (_, out, _, _) = run_pid(BIN, &["-v", &format!("p:{p}:probed")]);
    assert!(out.contains("__probe_ip"), "{out}");
    let funcs = perf_tools_ftrace::elf::file_functions(&prog).unwrap();
    let off = funcs.iter().find(|(n, _)| n == "probed").unwrap().1;
    let (code, out, err, _) = run_pid(BIN, &["-v", &format!("p:{p}:0x{off:x}")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("name: upraw_0x{off:x}\n")),
        "{out}"
    );
    let (code, _, err, pid) = run_pid(BIN, &["-v", &format!("p:{p}:0x{:x}", off + 1)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("it is probed+0x1") && err.contains("-F"),
        "{err}"
    );
    assert_clean(pid);
}
