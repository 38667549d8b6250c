//! The sources of the counts, chosen by what the running kernel has (never by version).
//!
//! | count | first choice | else |
//! | --- | --- | --- |
//! | pages added | tracepoint `filemap:mm_filemap_add_to_page_cache` | none: cachestat cannot run |
//! | pages dirtied | tracepoint `writeback:writeback_dirty_folio` | `writeback:writeback_dirty_page` |
//! | accesses | kprobe on `folio_mark_accessed` | kprobe on `mark_page_accessed`; none: HITS and RATIO `-` |
//! | buffer dirties | kprobe on `mark_buffer_dirty` | none: HITS and RATIO `-` |
//!
//! The kprobes live in the run's group `ptrs_<pid>` and are removed when the [`Plan`] is
//! dropped (after every instance using them).

use anyhow::{bail, Result};

use perf_tools_ftrace::format::{EventFormat, Field};
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::probe::{Probe, Support};
use perf_tools_ftrace::tracefs::Tracefs;

use crate::calc::Tally;

/// The page-addition tracepoint.
pub const ADD: (&str, &str) = ("filemap", "mm_filemap_add_to_page_cache");
/// The page-dirty tracepoints, best first.
pub const DIRTY: &[(&str, &str)] = &[
    ("writeback", "writeback_dirty_folio"),
    ("writeback", "writeback_dirty_page"),
];
/// The page-accessed functions, best first.
pub const ACCESSED: &[&str] = &["folio_mark_accessed", "mark_page_accessed"];
/// The buffer-dirty function.
pub const BUFFER_DIRTY: &str = "mark_buffer_dirty";

/// One kprobe of the plan: the function and the probe (removed on drop).
#[derive(Debug)]
pub struct Kprobe {
    /// The probed function.
    pub function: String,
    /// The probe.
    pub probe: Probe,
}

/// The sources chosen on this kernel.
#[derive(Debug)]
pub struct Plan {
    /// The dirty tracepoint.
    pub dirty: (&'static str, &'static str),
    /// The accessed kprobe and the buffer-dirty kprobe, if the kernel has both.
    pub accesses: Option<(Kprobe, Kprobe)>,
    /// What was not available and why (for stderr and `--check`).
    pub notes: Vec<String>,
}

impl Plan {
    /// Chooses the sources on this kernel, creating the kprobes.
    pub fn choose(tracefs: &Tracefs) -> Result<Plan> {
        let has = |(s, e): (&str, &str)| tracefs.path(format!("events/{s}/{e}/format")).exists();
        if !has(ADD) {
            bail!(
                "this kernel has no tracepoint {}:{} ({} is missing): there is no source for page cache misses; use a kernel with CONFIG_TRACEPOINTS=y and CONFIG_EVENT_TRACING=y",
                ADD.0,
                ADD.1,
                tracefs.path(format!("events/{}/{}", ADD.0, ADD.1)).display()
            );
        }
        let Some(&dirty) = DIRTY.iter().find(|&&d| has(d)) else {
            bail!(
                "this kernel has neither writeback:writeback_dirty_folio nor writeback:writeback_dirty_page: there is no source for page dirties"
            );
        };
        let mut notes = Vec::new();
        let accesses = if Support::detect(tracefs).kprobes {
            match kprobes(tracefs) {
                Ok(k) => Some(k),
                Err(e) => {
                    notes.push(format!(
                        "no source for page cache accesses ({}): HITS and RATIO are shown as -; MISSES and DIRTIES come from tracepoints",
                        perf_tools_ftrace::canary::one_line(&e)
                    ));
                    None
                }
            }
        } else {
            notes.push(format!(
                "this kernel has no kprobe events ({} is missing; CONFIG_KPROBE_EVENTS) and no tracepoint marks page accesses: HITS and RATIO are shown as -; MISSES and DIRTIES come from tracepoints",
                tracefs.path("kprobe_events").display()
            ));
            None
        };
        Ok(Plan {
            dirty,
            accesses,
            notes,
        })
    }

    /// True if HITS and RATIO can be computed.
    pub fn has_accesses(&self) -> bool {
        self.accesses.is_some()
    }

    /// The mapping in one line (`--check`'s "uses").
    pub fn describe(&self) -> String {
        let acc = match &self.accesses {
            Some((a, b)) => format!("kprobes {}() - {}()", a.function, b.function),
            None => "none (HITS and RATIO shown as -)".into(),
        };
        format!(
            "misses: {}:{}; dirties: {}:{}; accesses: {acc}; counted from a private instance's raw buffers",
            ADD.0, ADD.1, self.dirty.0, self.dirty.1
        )
    }

    /// The `--check` items: (role, source, available).
    pub fn items(&self) -> Vec<(String, String, bool)> {
        let mut v = vec![
            (
                "misses".to_string(),
                format!(
                    "tracepoint {}:{} (pages added to the page cache)",
                    ADD.0, ADD.1
                ),
                true,
            ),
            (
                "dirties".to_string(),
                format!("tracepoint {}:{}", self.dirty.0, self.dirty.1),
                true,
            ),
        ];
        match &self.accesses {
            Some((a, b)) => v.push((
                "accesses".into(),
                format!("kprobes on {}() and {}()", a.function, b.function),
                true,
            )),
            None => v.push(("accesses".into(), self.notes.join("; "), false)),
        }
        v
    }

    /// Enables every source in `inst` (with `filter` on each, e.g. for the canary) and
    /// returns the decoder of their events.
    pub fn enable(&self, inst: &Instance, filter: Option<&str>) -> Result<Decoder> {
        let mut events: Vec<(String, String)> = vec![
            (ADD.0.into(), ADD.1.into()),
            (self.dirty.0.into(), self.dirty.1.into()),
        ];
        if let Some((a, b)) = &self.accesses {
            for k in [a, b] {
                events.push((k.probe.group().into(), k.probe.event().into()));
            }
        }
        let mut formats = Vec::new();
        for (s, e) in &events {
            if let Some(f) = filter {
                inst.set_filter(s, e, f)?;
            }
            formats.push(inst.event_format(s, e)?);
        }
        let dec = Decoder::new(&formats[0], &formats[1], formats.get(2).zip(formats.get(3)))?;
        for (s, e) in &events {
            inst.enable_event(s, e)?;
        }
        Ok(dec)
    }
}

/// Creates the accessed and buffer-dirty kprobes.
fn kprobes(tracefs: &Tracefs) -> Result<(Kprobe, Kprobe)> {
    let control = Support::detect(tracefs).kprobe_control();
    let mut why = Vec::new();
    let mut acc = None;
    for f in ACCESSED {
        match Probe::create(tracefs, control, "p", "cachestat_accessed", f) {
            Ok(probe) => {
                acc = Some(Kprobe {
                    function: f.to_string(),
                    probe,
                });
                break;
            }
            Err(e) => why.push(format!("{f}: {}", perf_tools_ftrace::canary::one_line(&e))),
        }
    }
    let Some(acc) = acc else {
        bail!("no kprobe on a page-accessed function: {}", why.join("; "));
    };
    let mbd = Probe::create(
        tracefs,
        control,
        "p",
        "cachestat_buffer_dirty",
        BUFFER_DIRTY,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{BUFFER_DIRTY}: {}",
            perf_tools_ftrace::canary::one_line(&e)
        )
    })?;
    Ok((
        acc,
        Kprobe {
            function: BUFFER_DIRTY.into(),
            probe: mbd,
        },
    ))
}

/// Counts events by type id, decoded by the kernel's format files.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// `common_pid` (the same place in every event).
    pid: Field,
    add: u16,
    add_ino: Field,
    add_index: Field,
    order: Option<Field>,
    dirty: u16,
    dirty_ino: Field,
    dirty_index: Field,
    accessed: Option<u16>,
    buffer_dirty: Option<u16>,
}

impl Decoder {
    /// From the format files of the add and dirty tracepoints and, if used, of the
    /// accessed and buffer-dirty kprobes.
    pub fn new(
        add: &EventFormat,
        dirty: &EventFormat,
        kprobes: Option<(&EventFormat, &EventFormat)>,
    ) -> Result<Decoder> {
        let order = add.field("order").cloned();
        if let Some(o) = &order {
            if o.size == 0 || o.size > 8 {
                bail!("the order field of {} has size {}", ADD.1, o.size);
            }
        }
        Ok(Decoder {
            pid: add.require("common_pid")?,
            add: add.id,
            add_ino: add.require("i_ino")?,
            add_index: add.require("index")?,
            order,
            dirty: dirty.id,
            dirty_ino: dirty.require("ino")?,
            dirty_index: dirty.require("index")?,
            accessed: kprobes.map(|(a, _)| a.id),
            buffer_dirty: kprobes.map(|(_, b)| b.id),
        })
    }

    /// The thread on the CPU when the event fired (for a container scope).
    #[inline]
    pub fn pid(&self, payload: &[u8]) -> Option<u32> {
        self.pid.read_u64(payload).map(|p| p as u32)
    }

    /// True if added pages are sized by the event's `order` field.
    pub fn has_order(&self) -> bool {
        self.order.is_some()
    }

    /// Counts one event; false if it could not be decoded (too short, unknown type).
    #[inline]
    pub fn count(&self, payload: &[u8], t: &mut Tally) -> bool {
        let Some(ty) = payload.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            return false;
        };
        if ty == self.add {
            let pages = match &self.order {
                Some(f) => match f.read_u64(payload) {
                    Some(o) if o < 32 => 1u64 << o,
                    _ => return false,
                },
                None => 1,
            };
            let (Some(ino), Some(index)) = (
                self.add_ino.read_u64(payload),
                self.add_index.read_u64(payload),
            ) else {
                return false;
            };
            t.add(ino, index, pages);
        } else if ty == self.dirty {
            let (Some(ino), Some(index)) = (
                self.dirty_ino.read_u64(payload),
                self.dirty_index.read_u64(payload),
            ) else {
                return false;
            };
            t.dirty(ino, index);
        } else if Some(ty) == self.accessed {
            t.accessed();
        } else if Some(ty) == self.buffer_dirty {
            t.buffer_dirtied();
        } else {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixture(kernel: &str, name: &str) -> EventFormat {
        let p = format!(
            "{}/../../tests/fixtures/cachestat/{kernel}/{name}.format",
            env!("CARGO_MANIFEST_DIR")
        );
        EventFormat::parse(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }

    /// A payload of `f`'s layout with the given fields set.
    fn payload(f: &EventFormat, set: &[(&str, u64)]) -> Vec<u8> {
        let len = f.fields.iter().map(|x| x.offset + x.size).max().unwrap();
        let mut p = vec![0u8; len];
        p[..2].copy_from_slice(&f.id.to_ne_bytes());
        for (name, v) in set {
            let x = f.field(name).unwrap();
            p[x.offset..x.offset + x.size].copy_from_slice(&v.to_ne_bytes()[..x.size]);
        }
        p
    }

    #[test]
    fn decodes_the_folio_events_of_6_18() {
        let add = fixture("6.18", "mm_filemap_add_to_page_cache");
        let dirty = fixture("6.18", "writeback_dirty_folio");
        let d = Decoder::new(&add, &dirty, None).unwrap();
        assert!(d.has_order());
        let mut t = Tally::default();
        // A 4-page folio read at index 8, a written page at index 0.
        assert!(d.count(
            &payload(&add, &[("i_ino", 12), ("index", 8), ("order", 2)]),
            &mut t
        ));
        assert!(d.count(
            &payload(&add, &[("i_ino", 12), ("index", 0), ("order", 0)]),
            &mut t
        ));
        assert!(d.count(&payload(&dirty, &[("ino", 12), ("index", 0)]), &mut t));
        // Unknown type, and a truncated payload.
        assert!(!d.count(&[0xff, 0xff, 0, 0], &mut t));
        assert!(!d.count(&payload(&add, &[])[..20], &mut t));
        let c = t.take();
        assert_eq!((c.added, c.added_pages, c.dirtied), (2, 5, 1));
        assert_eq!((c.miss_pages(), c.miss_folios()), (4, 1));
    }

    #[test]
    fn decodes_the_page_events_of_5_10() {
        let add = fixture("5.10", "mm_filemap_add_to_page_cache");
        let dirty = fixture("5.10", "writeback_dirty_page");
        let d = Decoder::new(&add, &dirty, None).unwrap();
        assert!(!d.has_order());
        let mut t = Tally::default();
        for i in 0..3 {
            assert!(d.count(&payload(&add, &[("i_ino", 5), ("index", i)]), &mut t));
        }
        assert!(d.count(&payload(&dirty, &[("ino", 5), ("index", 2)]), &mut t));
        let c = t.take();
        assert_eq!((c.added_pages, c.miss_pages(), c.dirtied), (3, 2, 1));
    }
}
