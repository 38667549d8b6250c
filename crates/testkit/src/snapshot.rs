//! A snapshot of the tracefs state the tools must leave unchanged (leak-matrix tests).
//!
//! [`Snapshot::take`] records, as `key → value` entries:
//!
//! * the top-level settings a tool could change ([`SCALAR_FILES`]: `current_tracer`,
//!   `tracing_on`, `buffer_size_kb`, the ftrace filter and pid lists, ...) and every
//!   `options/*` file, with their contents;
//! * the list files ([`LIST_FILES`]: `kprobe_events`, `dynamic_events`, `uprobe_events`,
//!   `set_event`, ...) one entry per line, and every directory of `instances/`;
//! * every `events/*/*/filter` that is not `none` and every `events/*/*/trigger` with an
//!   active trigger (lines not starting with `#`), i.e. filters and triggers of the top
//!   instance;
//! * the state files (`*.state`) of top-level changes in [`STATE_DIR`].
//!
//! A file this kernel does not have is recorded as [`ABSENT`], so the same snapshot works
//! on every kernel. [`Snapshot::diff`] lists what changed between two snapshots; its
//! [`Display`](std::fmt::Display) is the readable report (`+` added, `-` removed, `~`
//! changed). The guest-side twin of this module is `tracefs_snapshot` in
//! `tests/vm/lib.sh`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

/// Value recorded for a file or directory the kernel does not have.
pub const ABSENT: &str = "<absent>";

/// Where the tools keep the state files of top-level ftrace changes
/// (`perf_tools_ftrace::toplevel::STATE_DIR`).
pub const STATE_DIR: &str = "/run/perf-tools-rs";

/// Top-level files recorded whole.
pub const SCALAR_FILES: &[&str] = &[
    "current_tracer",
    "tracing_on",
    "buffer_size_kb",
    "buffer_percent",
    "trace_clock",
    "tracing_cpumask",
    "tracing_thresh",
    "max_graph_depth",
    "set_ftrace_filter",
    "set_ftrace_notrace",
    "set_graph_function",
    "set_graph_notrace",
    "set_ftrace_pid",
    "set_ftrace_notrace_pid",
    "set_event_pid",
    "set_event_notrace_pid",
];

/// Top-level files recorded one entry per line (their lines name probes and events, which
/// may belong to other runs, see [`owner_pid`]).
pub const LIST_FILES: &[&str] = &[
    "kprobe_events",
    "uprobe_events",
    "dynamic_events",
    "synthetic_events",
    "set_event",
];

/// The recorded state: sorted `key → value` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    entries: BTreeMap<String, String>,
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An entry that appeared.
    Added {
        /// Entry key.
        key: String,
        /// Its value.
        value: String,
    },
    /// An entry that disappeared.
    Removed {
        /// Entry key.
        key: String,
        /// Its former value.
        value: String,
    },
    /// An entry whose value changed.
    Changed {
        /// Entry key.
        key: String,
        /// Value before.
        before: String,
        /// Value after.
        after: String,
    },
}

impl Change {
    /// The key of the changed entry.
    pub fn key(&self) -> &str {
        match self {
            Change::Added { key, .. }
            | Change::Removed { key, .. }
            | Change::Changed { key, .. } => key,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &str| {
            if v.is_empty() {
                String::new()
            } else {
                format!(" = {v:?}")
            }
        };
        match self {
            Change::Added { key, value } => write!(f, "+ {key}{}", show(value)),
            Change::Removed { key, value } => write!(f, "- {key}{}", show(value)),
            Change::Changed { key, before, after } => {
                write!(f, "~ {key}: {before:?} -> {after:?}")
            }
        }
    }
}

/// The differences between two snapshots, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// The changes.
    pub changes: Vec<Change>,
}

impl Diff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Splits the changes into those that count and those to ignore: a change is ignored
    /// when it concerns state owned by a process ([`owner_pid`]) for which `ignore` is
    /// true (another run of the tools that is not under test). Changes of unowned
    /// state (settings, filters of ordinary events) always count.
    pub fn split_owned(self, ignore: impl Fn(u32) -> bool) -> (Diff, Diff) {
        let (ignored, counted): (Vec<Change>, Vec<Change>) = self
            .changes
            .into_iter()
            .partition(|c| owner_pid(c.key()).is_some_and(&ignore));
        (Diff { changes: counted }, Diff { changes: ignored })
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            writeln!(f, "  {c}")?;
        }
        Ok(())
    }
}

/// The process that owns the state an entry key names, if it follows the tools' naming:
/// probe groups `ptrs_<pid>` (in probe lists, `set_event`, `events/ptrs_<pid>/...`),
/// instances `instances/<tool>-<pid>` and state files `<tool>-<pid>.state`.
pub fn owner_pid(key: &str) -> Option<u32> {
    if let Some(i) = key.find("ptrs_") {
        let digits: String = key[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(pid) = digits.parse() {
            return Some(pid);
        }
    }
    let name = if let Some(n) = key.strip_prefix("instances/") {
        n
    } else if key.ends_with(".state") {
        key.rsplit('/').next()?.strip_suffix(".state")?
    } else {
        return None;
    };
    let (_, pid) = name.rsplit_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Reads a file; `None` if it does not exist (or vanished meanwhile). Other errors are
/// recorded in the value, so they show up in a diff instead of being lost.
fn read(path: &Path) -> Option<String> {
    match fs::read(path) {
        Ok(b) => Some(String::from_utf8_lossy(&b).trim_end().to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => Some(format!("<unreadable: {e}>")),
    }
}

/// Sorted names of the entries of a directory; `None` if it does not exist.
fn names(dir: &Path) -> Option<Vec<String>> {
    let rd = fs::read_dir(dir).ok()?;
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    Some(v)
}

/// Sorted names of the subdirectories of a directory (none if it does not exist).
fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

impl Snapshot {
    /// Snapshots the tracefs at [`crate::TRACEFS`] and the state files in [`STATE_DIR`].
    pub fn take() -> Snapshot {
        Snapshot::take_at(Path::new(crate::TRACEFS), Path::new(STATE_DIR))
    }

    /// Snapshots the tracefs mounted at `tracefs` and the state files in `state_dir`.
    pub fn take_at(tracefs: &Path, state_dir: &Path) -> Snapshot {
        let mut e = BTreeMap::new();
        for &f in SCALAR_FILES {
            let v = read(&tracefs.join(f)).unwrap_or_else(|| ABSENT.to_string());
            e.insert(f.to_string(), v);
        }
        match names(&tracefs.join("options")) {
            Some(opts) => {
                for o in opts {
                    let rel = format!("options/{o}");
                    if let Some(v) = read(&tracefs.join(&rel)) {
                        e.insert(rel, v);
                    }
                }
            }
            None => {
                e.insert("options/".to_string(), ABSENT.to_string());
            }
        }
        for &f in LIST_FILES {
            match read(&tracefs.join(f)) {
                Some(text) => {
                    e.insert(f.to_string(), "present".to_string());
                    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        e.insert(format!("{f}: {line}"), String::new());
                    }
                }
                None => {
                    e.insert(f.to_string(), ABSENT.to_string());
                }
            }
        }
        match names(&tracefs.join("instances")) {
            Some(list) => {
                for i in list {
                    e.insert(format!("instances/{i}"), String::new());
                }
            }
            None => {
                e.insert("instances/".to_string(), ABSENT.to_string());
            }
        }
        let events = tracefs.join("events");
        for sys in subdirs(&events) {
            for ev in subdirs(&events.join(&sys)) {
                let dir = events.join(&sys).join(&ev);
                if let Some(f) = read(&dir.join("filter")) {
                    if f != "none" {
                        e.insert(format!("events/{sys}/{ev}/filter"), f);
                    }
                }
                if let Some(t) = read(&dir.join("trigger")) {
                    let active: Vec<&str> = t
                        .lines()
                        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                        .collect();
                    if !active.is_empty() {
                        e.insert(format!("events/{sys}/{ev}/trigger"), active.join("\n"));
                    }
                }
            }
        }
        for n in names(state_dir).unwrap_or_default() {
            if n.ends_with(".state") {
                let p = state_dir.join(&n);
                let v = read(&p).unwrap_or_default();
                e.insert(p.display().to_string(), v);
            }
        }
        Snapshot { entries: e }
    }

    /// The recorded entries.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// What changed from `self` (before) to `after`.
    pub fn diff(&self, after: &Snapshot) -> Diff {
        let mut changes = Vec::new();
        for (k, v) in &self.entries {
            match after.entries.get(k) {
                None => changes.push(Change::Removed {
                    key: k.clone(),
                    value: v.clone(),
                }),
                Some(a) if a != v => changes.push(Change::Changed {
                    key: k.clone(),
                    before: v.clone(),
                    after: a.clone(),
                }),
                Some(_) => {}
            }
        }
        for (k, v) in &after.entries {
            if !self.entries.contains_key(k) {
                changes.push(Change::Added {
                    key: k.clone(),
                    value: v.clone(),
                });
            }
        }
        changes.sort_by(|a, b| a.key().cmp(b.key()));
        Diff { changes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary tree, removed on drop (also when an assertion fails).
    struct Tree(std::path::PathBuf);

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn tree(name: &str) -> Tree {
        let root =
            std::env::temp_dir().join(format!("ptrs-snapshot-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in [
            "t/options",
            "t/instances",
            "t/events/block/block_rq_issue",
            "t/events/sched/sched_switch",
            "s",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for (f, v) in [
            ("t/current_tracer", "nop\n"),
            ("t/tracing_on", "1\n"),
            ("t/options/sleep-time", "1\n"),
            ("t/kprobe_events", ""),
            ("t/set_event", ""),
            ("t/events/block/block_rq_issue/filter", "none\n"),
            (
                "t/events/block/block_rq_issue/trigger",
                "# Available triggers:\n# traceon traceoff\n",
            ),
            ("t/events/sched/sched_switch/filter", "none\n"),
        ] {
            fs::write(root.join(f), v).unwrap();
        }
        Tree(root)
    }

    #[test]
    fn records_absent_files_and_finds_every_kind_of_change() {
        let root = tree("diff");
        let (t, s) = (root.0.join("t"), root.0.join("s"));
        let before = Snapshot::take_at(&t, &s);
        assert_eq!(before.entries()["dynamic_events"], ABSENT);
        assert_eq!(before.entries()["set_graph_function"], ABSENT);
        assert_eq!(before.entries()["kprobe_events"], "present");
        assert_eq!(before, Snapshot::take_at(&t, &s));
        assert!(before.diff(&Snapshot::take_at(&t, &s)).is_empty());

        fs::write(t.join("current_tracer"), "function_graph\n").unwrap();
        fs::write(t.join("options/sleep-time"), "0\n").unwrap();
        fs::write(t.join("kprobe_events"), "p:ptrs_42/open do_sys_openat2\n").unwrap();
        fs::write(t.join("events/block/block_rq_issue/filter"), "dev == 7\n").unwrap();
        fs::write(
            t.join("events/block/block_rq_issue/trigger"),
            "# Available triggers:\ntraceoff:unlimited\n",
        )
        .unwrap();
        fs::create_dir(t.join("instances/iosnoop-77")).unwrap();
        fs::write(s.join("funcgraph-9.state"), "# state\n").unwrap();
        fs::write(s.join("ftrace-toplevel.lock"), "").unwrap();
        fs::remove_file(t.join("tracing_on")).unwrap();
        let d = before.diff(&Snapshot::take_at(&t, &s));
        let text = d.to_string();
        for want in [
            "~ current_tracer: \"nop\" -> \"function_graph\"",
            "~ options/sleep-time: \"1\" -> \"0\"",
            "+ kprobe_events: p:ptrs_42/open do_sys_openat2",
            "+ events/block/block_rq_issue/filter = \"dev == 7\"",
            "+ events/block/block_rq_issue/trigger = \"traceoff:unlimited\"",
            "+ instances/iosnoop-77",
            "funcgraph-9.state = \"# state\"",
            "~ tracing_on: \"1\" -> \"<absent>\"",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        assert!(!text.contains("toplevel.lock"), "{text}");
        assert_eq!(d.changes.len(), 8, "{text}");

        // Changes owned by pid 42 and 77 are set aside; the rest still counts.
        let (counted, ignored) = d.split_owned(|p| p == 42 || p == 77);
        assert_eq!(ignored.changes.len(), 2, "{ignored}");
        assert_eq!(counted.changes.len(), 6, "{counted}");
        let (_, ignored) = Diff {
            changes: counted.changes,
        }
        .split_owned(|p| p == 9);
        assert_eq!(
            ignored.to_string().trim(),
            format!("+ {}/funcgraph-9.state = \"# state\"", s.display())
        );
    }

    #[test]
    fn owners_follow_the_tools_naming() {
        assert_eq!(owner_pid("instances/iosnoop-123"), Some(123));
        assert_eq!(owner_pid("instances/mine"), None);
        assert_eq!(
            owner_pid("dynamic_events: e:ptrs_9/opensnoop_openat x"),
            Some(9)
        );
        assert_eq!(owner_pid("set_event: ptrs_10:myopen"), Some(10));
        assert_eq!(owner_pid("events/ptrs_11/myopen/filter"), Some(11));
        assert_eq!(owner_pid("/run/perf-tools-rs/funcgraph-12.state"), Some(12));
        assert_eq!(owner_pid("current_tracer"), None);
        assert_eq!(owner_pid("events/block/block_rq_issue/filter"), None);
    }
}
