//! Cgroups made by live tests: a directory under this machine's cgroup v2 mount (or a v1
//! hierarchy such as `/sys/fs/cgroup/pids`), removed on drop after its tasks (and those
//! of every sub-cgroup made below it) are moved back to the hierarchy's root.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cgroup v2 mount here: `/sys/fs/cgroup/unified` on a hybrid host, else
/// `/sys/fs/cgroup`. Panics if there is none.
pub fn v2_root() -> PathBuf {
    for p in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let p = Path::new(p);
        if p.join("cgroup.procs").is_file() && !p.join("tasks").exists() {
            return p.to_path_buf();
        }
    }
    panic!("no cgroup v2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup");
}

/// A cgroup made for a test, removed (after moving its tasks to the root) on drop.
pub struct TestCgroup {
    root: PathBuf,
    /// The cgroup's directory.
    pub dir: PathBuf,
}

impl TestCgroup {
    /// Makes `root/rel` (and any missing parents: all are removed on drop only if
    /// `rel` is a single component; make nested ones as separate values).
    pub fn new(root: &Path, rel: &str) -> TestCgroup {
        let dir = root.join(rel);
        std::fs::create_dir_all(&dir).expect("making a test cgroup");
        TestCgroup {
            root: root.to_path_buf(),
            dir,
        }
    }

    /// A cgroup named after the test and this process under the v2 mount.
    pub fn v2(name: &str) -> TestCgroup {
        TestCgroup::new(&v2_root(), &format!("{name}-{}", std::process::id()))
    }

    /// The cgroup's name (the last component of its path), as `--cgroup` takes it.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A file path for [`gated_shell`]'s gate, in a scratch directory of the test named
    /// after the cgroup (made now; removed with the cgroup).
    pub fn gate(&self) -> PathBuf {
        let d = self.scratch();
        std::fs::create_dir_all(&d).expect("making a scratch directory");
        d.join("go")
    }

    fn scratch(&self) -> PathBuf {
        std::env::temp_dir().join(self.name())
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .expect("moving a process into a test cgroup");
    }

    /// Moves the tasks back to the root and removes the cgroup now (also done on drop).
    pub fn remove(&self) {
        remove_tree(&self.root, &self.dir);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.remove();
        let _ = std::fs::remove_dir_all(self.scratch());
    }
}

/// Moves every task under `dir` back to `root` and removes the directories, deepest
/// first.
fn remove_tree(root: &Path, dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(root, &e.path());
        }
    }
    for _ in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for p in procs.lines() {
            let _ = std::fs::write(root.join("cgroup.procs"), p);
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shell loop that returns once the file `path` exists (polled every 50 ms).
pub fn sh_wait_for(path: &Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.05; done", path.display())
}

/// The second gate beside `go`: a test creates it once the rows of its workers are out,
/// and workers that wait for it ([`sh_wait_for`]) stay alive until then, so that what a
/// tool reads from /proc for a row (arguments, cgroup, PID namespace) is still there
/// however late a loaded machine lets the tool read its events.
pub fn done_gate(go: &Path) -> PathBuf {
    go.with_extension("done")
}

/// A shell running `script` once the file `go` exists (polled every 50 ms), so that a
/// test can move it into a cgroup and start the tool before it does its work.
pub fn gated_shell(go: &Path, script: &str) -> std::process::Child {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{}; {script}", sh_wait_for(go)))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawning sh")
}

/// A [`gated_shell`] that forks a dd making `count` O_DIRECT reads of `bs` bytes from
/// `dev`, starting `skip` blocks of `bs` in (a child: the shell does not exec it); dd
/// exits as soon as they are done, before a 100 ms poll of a cgroup can list it. With
/// `linger` the shell stays a second more, so that it is alive (placed by /proc) when a
/// tool reads its fork of dd. Two readers at once must not start at the same sector:
/// block tools pair a start with its completion by (device, sector), so two requests in
/// flight at one sector are told apart by neither the kernel's events nor the tools.
pub fn gated_dd(
    go: &Path,
    dev: &Path,
    (bs, count, skip): (u32, u32, u32),
    linger: bool,
) -> std::process::Child {
    gated_shell(
        go,
        &format!(
            "dd if={dev} of=/dev/null iflag=direct bs={bs} count={count} skip={skip} 2>/dev/null; s=$?; {linger}exit $s",
            dev = dev.display(),
            linger = if linger { "sleep 1; " } else { "" }
        ),
    )
}

/// The container-scope refusals every scoped tool shares, made before tracefs is
/// touched: `--cgroup` with `-p` is a usage error (exit 2; skipped when `has_pid` is
/// false); a path that is no cgroup an error (exit 1) that names the cgroup problem, and
/// `tool` made no instance. `operands`: what the tool needs besides (a function, a probe).
pub fn assert_scope_refusals(bin: &str, tool: &str, has_pid: bool, operands: &[&str]) {
    let with = |lead: &[&str]| -> Vec<String> {
        lead.iter().chain(operands).map(|s| s.to_string()).collect()
    };
    if has_pid {
        let args = with(&["--cgroup", "/", "-p", "1"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (rc, _, err) = crate::run(bin, &args);
        assert_eq!(rc, 2, "{tool} {args:?}: {err}");
        assert!(err.contains("cannot be combined with -p or -L"), "{err}");
    }
    let args = with(&["--cgroup", "/proc/no-such-cgroup", "-d", "1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (rc, _, err, pid) = crate::run_pid(bin, &args);
    assert_eq!(rc, 1, "{tool} {args:?}: {err}");
    assert!(
        err.contains("/proc/no-such-cgroup is not a cgroup")
            || err.contains("no cgroup hierarchy is mounted"),
        "{err}"
    );
    assert!(
        !crate::instance_of(tool, pid),
        "{tool}: instance left behind"
    );
}
