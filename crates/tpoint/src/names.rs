//! Tracepoint names: parsing `system:event`, listing what the kernel has
//! (`events/*/*`), and suggesting the closest names for one it does not have.

use std::path::Path;

/// A tracepoint, `system:event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracepoint {
    /// The system (directory under `events/`), e.g. `block`.
    pub system: String,
    /// The event, e.g. `block_rq_issue`.
    pub event: String,
}

impl std::fmt::Display for Tracepoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.system, self.event)
    }
}

/// A valid system or event name: a plain directory name (no `/`, not `.` or `..`, no
/// control characters or spaces).
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Parses `system:event` (the original's form; `system/event` is taken too).
pub fn parse(s: &str) -> Result<Tracepoint, String> {
    let (system, event) = s.split_once(':').or_else(|| s.split_once('/')).ok_or_else(|| {
        format!("tracepoint {s:?} is not of the form system:event (e.g. block:block_rq_issue; tpoint -l lists them)")
    })?;
    if !plain(system) || !plain(event) {
        return Err(format!(
            "tracepoint {s:?} is not of the form system:event (e.g. block:block_rq_issue)"
        ));
    }
    Ok(Tracepoint {
        system: system.to_string(),
        event: event.to_string(),
    })
}

/// Every tracepoint under `events_dir` (`events/<system>/<event>/`), as
/// `system:event`, sorted.
pub fn list(events_dir: &Path) -> std::io::Result<Vec<String>> {
    let mut all = Vec::new();
    for sys in std::fs::read_dir(events_dir)?.flatten() {
        if !sys.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(events) = std::fs::read_dir(sys.path()) else {
            continue;
        };
        let sname = sys.file_name().to_string_lossy().into_owned();
        for ev in events.flatten() {
            if ev.file_type().is_ok_and(|t| t.is_dir()) {
                all.push(format!("{sname}:{}", ev.file_name().to_string_lossy()));
            }
        }
    }
    all.sort();
    Ok(all)
}

/// Levenshtein distance between two byte strings.
fn distance(a: &[u8], b: &[u8]) -> usize {
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

/// Up to `max` names of `all` closest to `wanted` (as typed: `system:event`, or just an
/// event name), best first: the same event in another system, then names containing
/// what was typed (or contained in it), then names within a small edit distance.
pub fn suggest(all: &[String], wanted: &str, max: usize) -> Vec<String> {
    let wanted = wanted.to_ascii_lowercase();
    let wanted_event = wanted
        .rsplit([':', '/'])
        .next()
        .unwrap_or(&wanted)
        .to_string();
    let limit = (wanted_event.len() / 4).max(2);
    let mut scored: Vec<(usize, &String)> = all
        .iter()
        .filter_map(|name| {
            let lower = name.to_ascii_lowercase();
            let event = lower.rsplit(':').next().unwrap_or(&lower);
            let score = if event == wanted_event {
                0
            } else if wanted_event.len() >= 3
                && (event.contains(wanted_event.as_str()) || wanted_event.contains(event))
            {
                10 + event.len().abs_diff(wanted_event.len())
            } else {
                let d = distance(event.as_bytes(), wanted_event.as_bytes())
                    .min(distance(lower.as_bytes(), wanted.as_bytes()));
                if d > limit {
                    return None;
                }
                100 + d
            };
            Some((score, name))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(max)
        .map(|(_, n)| n.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn all() -> Vec<String> {
        [
            "block:block_rq_issue",
            "block:block_rq_insert",
            "block:block_rq_complete",
            "block:block_bio_queue",
            "syscalls:sys_enter_openat",
            "syscalls:sys_enter_open",
            "syscalls:sys_exit_openat",
            "sched:sched_switch",
            "sched:sched_process_exec",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn parses_system_and_event() {
        assert_eq!(
            parse("block:block_rq_issue").unwrap(),
            Tracepoint {
                system: "block".into(),
                event: "block_rq_issue".into()
            }
        );
        assert_eq!(parse("sched/sched_switch").unwrap().system, "sched");
        for bad in [
            "block_rq_issue",
            ":x",
            "x:",
            "../..:x",
            "a:b/c",
            "a:..",
            "a: b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggests_by_system_substring_and_edit_distance() {
        let a = all();
        // The right event in the wrong system.
        assert_eq!(
            suggest(&a, "syscalls:block_rq_issue", 3)[0],
            "block:block_rq_issue"
        );
        // A typo.
        assert_eq!(
            suggest(&a, "block:block_rq_isue", 1),
            vec!["block:block_rq_issue"]
        );
        assert_eq!(
            suggest(&a, "sched:sched_swich", 1),
            vec!["sched:sched_switch"]
        );
        // A part of the name.
        let s = suggest(&a, "openat", 5);
        assert!(
            s.contains(&"syscalls:sys_enter_openat".to_string()),
            "{s:?}"
        );
        assert!(s.contains(&"syscalls:sys_exit_openat".to_string()), "{s:?}");
        // Nothing close.
        assert!(suggest(&a, "zzz:qqqqqqqq", 5).is_empty());
    }

    #[test]
    fn lists_system_event_directories_only() {
        let root = std::env::temp_dir().join(format!("ptrs-tpoint-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("block/block_rq_issue")).unwrap();
        std::fs::create_dir_all(root.join("sched/sched_switch")).unwrap();
        std::fs::write(root.join("block/enable"), "0").unwrap();
        std::fs::write(root.join("header_page"), "x").unwrap();
        let l = list(&root).unwrap();
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(l, vec!["block:block_rq_issue", "sched:sched_switch"]);
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance(b"kitten", b"sitting"), 3);
        assert_eq!(distance(b"", b"abc"), 3);
        assert_eq!(distance(b"same", b"same"), 0);
    }
}
