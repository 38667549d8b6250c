//! Saving and restoring the top-level ftrace settings a tool has to change when the
//! kernel cannot do the work in a private instance (function_graph before Linux 6.x has no
//! per-instance `set_graph_function`).
//!
//! Before a file is changed, its original value is recorded in a state file,
//! `/run/perf-tools-rs/<tool>-<pid>.state`, written atomically and synced. [`TopLevel`]
//! restores every recorded file on drop (normal end, error, panic unwinding) and then
//! removes the state file. After `kill -9` the state file stays behind: the next run of
//! any tracing tool, or `--cleanup`, restores it through [`restore_stale`] (called from
//! [`crate::cleanup::remove_stale`]).
//!
//! One top-level user at a time: [`TopLevel::begin`] takes an exclusive `flock` on
//! `/run/perf-tools-rs/ftrace-toplevel.lock`, released by the kernel when the process dies.
//!
//! Also here: glob matching and close-match suggestions against
//! `available_filter_functions`.

use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::owner::{owner_pid, pid_alive};
use crate::tracefs::Tracefs;

/// Where state files and the top-level lock live.
pub const STATE_DIR: &str = "/run/perf-tools-rs";
/// The lock file serialising top-level ftrace users of this suite.
pub const LOCK_NAME: &str = "ftrace-toplevel.lock";
const STATE_HEADER: &str = "# perf-tools-rs ftrace state v1";

/// The state file path of a tool run.
pub fn state_path(dir: &Path, tool: &str, pid: u32) -> PathBuf {
    dir.join(format!("{tool}-{pid}.state"))
}

/// Turns the text a tracefs control file reads back into the value that, written with
/// `O_TRUNC`, restores it. Lists (filters, pids) become one space-separated line; the
/// "everything" markers (`#### all functions enabled ####`, `no pid`) become empty.
pub fn normalize(rel: &str, text: &str) -> String {
    let list_file = matches!(
        rel,
        "set_graph_function"
            | "set_graph_notrace"
            | "set_ftrace_filter"
            | "set_ftrace_notrace"
            | "set_ftrace_pid"
            | "set_ftrace_notrace_pid"
    );
    if list_file {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "no pid")
            .filter_map(|l| l.split_whitespace().next())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Parses a state file: `(relative path, value)` pairs in the order they were saved.
pub fn parse_state(text: &str) -> Option<Vec<(String, String)>> {
    let mut lines = text.lines();
    if lines.next()? != STATE_HEADER {
        return None;
    }
    let mut out = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let (rel, val) = l.split_once('\t')?;
        if !safe_rel(rel) {
            return None;
        }
        out.push((rel.to_string(), val.to_string()));
    }
    Some(out)
}

/// Relative tracefs paths a state file may name: no absolute paths, no `..`.
fn safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != ".." && c != ".")
}

fn render_state(entries: &[(String, String)]) -> String {
    let mut s = String::from(STATE_HEADER);
    s.push('\n');
    for (rel, val) in entries {
        s.push_str(rel);
        s.push('\t');
        s.push_str(val);
        s.push('\n');
    }
    s
}

/// Writes `text` to `path` atomically (temporary file, fsync, rename, fsync of the dir).
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("state.tmp");
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes a value to a tracefs control file, truncating it first (which clears lists).
fn write_control(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
    if !value.is_empty() {
        f.write_all(value.as_bytes())?;
    }
    Ok(())
}

/// Restores entries, returning a description of each failure: `current_tracer` first
/// (so the tracer stops before anything it depends on changes), then the others, last
/// saved first.
fn restore_entries(tracefs: &Tracefs, entries: &[(String, String)]) -> Vec<String> {
    let mut failures = Vec::new();
    let tracer = entries.iter().filter(|(r, _)| r == "current_tracer");
    let rest = entries.iter().rev().filter(|(r, _)| r != "current_tracer");
    for (rel, val) in tracer.chain(rest) {
        if let Err(e) = write_control(&tracefs.path(rel), val) {
            failures.push(format!("restoring {rel} to {val:?}: {e}"));
        }
    }
    failures
}

/// An exclusive, process-lifetime lock on the top-level tracer.
#[derive(Debug)]
struct Lock {
    _file: File,
}

fn try_lock(dir: &Path) -> Result<Option<Lock>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a valid open file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        return Err(e).with_context(|| format!("locking {}", path.display()));
    }
    Ok(Some(Lock { _file: file }))
}

/// Top-level ftrace settings changed by this process, restored on drop.
#[derive(Debug)]
pub struct TopLevel {
    tracefs: Tracefs,
    state: PathBuf,
    entries: Vec<(String, String)>,
    restored: bool,
    _lock: Lock,
}

impl TopLevel {
    /// Takes the top-level lock (failing if another run of this suite holds it), restores
    /// state left by killed runs (reported as strings) and starts an empty state file.
    pub fn begin(tracefs: &Tracefs, tool: &str) -> Result<(TopLevel, Vec<String>)> {
        Self::begin_in(tracefs, tool, Path::new(STATE_DIR))
    }

    /// [`TopLevel::begin`] with an explicit state directory (tests).
    pub fn begin_in(tracefs: &Tracefs, tool: &str, dir: &Path) -> Result<(TopLevel, Vec<String>)> {
        perf_tools_core::fdreserve::reserve()?;
        let Some(lock) = try_lock(dir)? else {
            bail!(
                "another perf-tools-rs run is using the top-level tracer (it holds {}); wait for it to end, or run the tools one at a time",
                dir.join(LOCK_NAME).display()
            );
        };
        let restored = restore_stale_locked(tracefs, dir);
        let state = state_path(dir, tool, std::process::id());
        write_atomic(&state, &render_state(&[]))?;
        Ok((
            TopLevel {
                tracefs: tracefs.clone(),
                state,
                entries: Vec::new(),
                restored: false,
                _lock: lock,
            },
            restored,
        ))
    }

    /// The state file of this run.
    pub fn state_file(&self) -> &Path {
        &self.state
    }

    /// Reads a top-level file.
    pub fn read(&self, rel: &str) -> Result<String> {
        let p = self.tracefs.path(rel);
        crate::tracefs::read_file(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// Records the original value of `rel` (once) in the state file, then writes `value`.
    pub fn set(&mut self, rel: &str, value: &str) -> Result<()> {
        if !self.entries.iter().any(|(r, _)| r == rel) {
            let orig = normalize(rel, &self.read(rel)?);
            self.entries.push((rel.to_string(), orig));
            write_atomic(&self.state, &render_state(&self.entries))
                .context("saving the original tracing settings")?;
        }
        let p = self.tracefs.path(rel);
        write_control(&p, value).with_context(|| format!("writing {value:?} to {}", p.display()))
    }

    /// Restores every changed file and removes the state file; reports failures (the state
    /// file is then kept, so `--cleanup` can retry once this process is gone).
    pub fn restore(mut self) -> Result<()> {
        self.restore_inner()
    }

    fn restore_inner(&mut self) -> Result<()> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        perf_tools_core::fdreserve::release();
        let failures = restore_entries(&self.tracefs, &self.entries);
        if failures.is_empty() {
            let _ = fs::remove_file(&self.state);
            Ok(())
        } else {
            bail!(
                "{}; the original values are kept in {} (run the tool with --cleanup after this process ends)",
                failures.join("; "),
                self.state.display()
            )
        }
    }
}

impl Drop for TopLevel {
    fn drop(&mut self) {
        if let Err(e) = self.restore_inner() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// Restores top-level settings recorded by runs that no longer exist and removes their
/// state files. Skips the work if a live run holds the top-level lock (it did this when it
/// started). Returns a description of each thing restored.
pub fn restore_stale(tracefs: &Tracefs) -> Vec<String> {
    let dir = Path::new(STATE_DIR);
    if !dir.is_dir() {
        return Vec::new();
    }
    match try_lock(dir) {
        Ok(Some(_lock)) => restore_stale_locked(tracefs, dir),
        Ok(None) => Vec::new(),
        Err(e) => {
            eprintln!("warning: {e:#}");
            Vec::new()
        }
    }
}

fn restore_stale_locked(tracefs: &Tracefs, dir: &Path) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return done;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".state") else {
            continue;
        };
        let Some(pid) = owner_pid(stem) else { continue };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let path = e.path();
        let Some(saved) = crate::tracefs::read_file(&path)
            .ok()
            .and_then(|t| parse_state(&t))
        else {
            eprintln!(
                "warning: {} is not a state file of this suite; left alone",
                path.display()
            );
            continue;
        };
        let failures = restore_entries(tracefs, &saved);
        if failures.is_empty() {
            let _ = fs::remove_file(&path);
            let what: Vec<&str> = saved.iter().map(|(r, _)| r.as_str()).collect();
            done.push(format!(
                "stale top-level tracing changes of killed run {stem} (original values restored: {})",
                if what.is_empty() {
                    "none changed".to_string()
                } else {
                    what.join(", ")
                }
            ));
        } else {
            eprintln!(
                "warning: restoring the settings saved in {}: {}",
                path.display(),
                failures.join("; ")
            );
        }
    }
    done
}

/// Names in `available_filter_functions` text (first word of each line, without the
/// `[module]` suffix), deduplicated, in file order.
pub fn filter_function_names(text: &str) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| seen.insert(*n))
        .collect()
}

/// ftrace's glob: `*` any run, `?` one character; everything else literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p = pattern.as_bytes();
    let n = name.as_bytes();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `max` traceable names close to `pattern`: compiler clones (`name.isra.0`,
/// `name.constprop.0`), names containing it, then names within a small edit distance.
pub fn close_matches<'a>(pattern: &str, names: &[&'a str], max: usize) -> Vec<&'a str> {
    let core: String = pattern.chars().filter(|c| *c != '*' && *c != '?').collect();
    if core.is_empty() {
        return Vec::new();
    }
    let limit = (core.len() / 4).clamp(1, 3);
    let mut scored: Vec<(usize, usize, &str)> = Vec::new();
    for &n in names {
        let score = if n
            .strip_prefix(core.as_str())
            .is_some_and(|r| r.starts_with('.'))
        {
            0
        } else if n.contains(core.as_str()) {
            1
        } else if n.len().abs_diff(core.len()) <= limit {
            let d = edit_distance(n.as_bytes(), core.as_bytes());
            if d > limit {
                continue;
            }
            1 + d
        } else {
            continue;
        };
        scored.push((score, n.len(), n));
    }
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.2 == b.2);
    scored.into_iter().take(max).map(|s| s.2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_tracefs_reads() {
        assert_eq!(
            normalize("set_graph_function", "#### all functions enabled ####\n"),
            ""
        );
        assert_eq!(
            normalize("set_graph_function", "vfs_read\nvfs_write\n"),
            "vfs_read vfs_write"
        );
        assert_eq!(normalize("set_ftrace_pid", "no pid\n"), "");
        assert_eq!(normalize("set_ftrace_pid", "12\n13\n"), "12 13");
        assert_eq!(normalize("current_tracer", "nop\n"), "nop");
        assert_eq!(normalize("options/sleep-time", "1\n"), "1");
    }

    #[test]
    fn state_round_trip_and_rejects_unsafe_paths() {
        let e = vec![
            ("set_graph_function".to_string(), "a b".to_string()),
            ("current_tracer".to_string(), "nop".to_string()),
            ("set_ftrace_pid".to_string(), String::new()),
        ];
        assert_eq!(parse_state(&render_state(&e)), Some(e));
        assert_eq!(parse_state("garbage"), None);
        assert_eq!(parse_state(&format!("{STATE_HEADER}\n../x\t1\n")), None);
        assert_eq!(parse_state(&format!("{STATE_HEADER}\n/etc/x\t1\n")), None);
    }

    #[test]
    fn globs_like_ftrace() {
        assert!(glob_match("vfs_read", "vfs_read"));
        assert!(!glob_match("vfs_read", "vfs_readv"));
        assert!(glob_match("vfs_rea*", "vfs_readv"));
        assert!(glob_match("*_read", "vfs_read"));
        assert!(glob_match("*fs_re*", "vfs_readv"));
        assert!(glob_match("vfs_?ead", "vfs_read"));
        assert!(!glob_match("ext4_*", "vfs_read"));
    }

    #[test]
    fn suggests_clones_substrings_and_typos() {
        let names = [
            "vfs_read",
            "vfs_readv",
            "do_sys_open.isra.0",
            "ksys_read",
            "vfs_write",
            "unrelated",
        ];
        assert_eq!(
            close_matches("do_sys_open", &names, 5),
            vec!["do_sys_open.isra.0"]
        );
        let m = close_matches("vfs_raed", &names, 5);
        assert_eq!(m.first(), Some(&"vfs_read"), "{m:?}");
        assert!(close_matches("read", &names, 5).contains(&"ksys_read"));
        assert!(close_matches("zzzzzzzz", &names, 5).is_empty());
    }

    #[test]
    fn top_level_saves_before_changing_and_restores() {
        let root = std::env::temp_dir().join(format!("ftrace-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let tfs = root.join("tracing");
        let state = root.join("state");
        fs::create_dir_all(tfs.join("options")).unwrap();
        fs::write(tfs.join("current_tracer"), "nop\n").unwrap();
        fs::write(tfs.join("set_graph_function"), "vfs_write\n").unwrap();
        fs::write(tfs.join("options/sleep-time"), "1\n").unwrap();
        let t = Tracefs::at(&tfs);
        let (mut top, _) = TopLevel::begin_in(&t, "funcgraph", &state).unwrap();
        top.set("set_graph_function", "vfs_read").unwrap();
        top.set("options/sleep-time", "0").unwrap();
        top.set("current_tracer", "function_graph").unwrap();
        let saved = parse_state(&fs::read_to_string(top.state_file()).unwrap()).unwrap();
        assert_eq!(saved.len(), 3);
        // A second user is refused while the lock is held.
        assert!(TopLevel::begin_in(&t, "funcgraph", &state).is_err());
        top.restore().unwrap();
        assert_eq!(
            fs::read_to_string(tfs.join("set_graph_function")).unwrap(),
            "vfs_write"
        );
        assert_eq!(
            fs::read_to_string(tfs.join("current_tracer")).unwrap(),
            "nop"
        );
        assert_eq!(
            fs::read_to_string(tfs.join("options/sleep-time")).unwrap(),
            "1"
        );
        // A state file of a dead pid is restored by the next begin.
        fs::write(tfs.join("current_tracer"), "function_graph").unwrap();
        fs::write(
            state.join("funcgraph-999999999.state"),
            format!("{STATE_HEADER}\ncurrent_tracer\tnop\n"),
        )
        .unwrap();
        let (top, restored) = TopLevel::begin_in(&t, "funcgraph", &state).unwrap();
        assert_eq!(restored.len(), 1, "{restored:?}");
        assert_eq!(
            fs::read_to_string(tfs.join("current_tracer")).unwrap(),
            "nop"
        );
        assert!(!state.join("funcgraph-999999999.state").exists());
        drop(top);
        let _ = fs::remove_dir_all(&root);
    }
}
