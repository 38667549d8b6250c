//! Decoding of `block_rq_*` events by the running kernel's format files, keeping the
//! detail a tool needs ([`Full`] for iosnoop, [`Lean`] for iolatency).

use anyhow::{bail, Result};
use std::fmt;

use perf_tools_ftrace::format::{EventFormat, Field};
use perf_tools_ftrace::instance::Instance;

use crate::device::{Device, StartPoint};

/// Who started a request: the thread on CPU when its start event fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Who {
    /// Thread id.
    pub pid: i32,
    /// Its command name, NUL-padded (read up to the first NUL).
    pub comm: [u8; 16],
    /// True if this start is the request's queue insert (`block_rq_insert`), false if it
    /// is its issue (`block_rq_issue`): with [`StartPoint::Insert`], requests that never
    /// passed the I/O scheduler queue are timed from issue, and this tells them apart.
    pub queued: bool,
}

/// What a completed request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct What {
    /// Sectors completed.
    pub nr_sector: u32,
    /// The rwbs string (`R`, `WS`, `RA`, …), NUL-padded (read up to the first NUL).
    pub rwbs: [u8; 16],
}

/// How much of each event a trace keeps besides its kind, device, sector and time:
/// [`Full`] keeps [`Who`] and [`What`] (iosnoop prints them), [`Lean`] keeps nothing more
/// (iolatency needs only the times), so the events held for merging and the starts held
/// in flight are half the size or less, and the payload fields are never read.
pub trait Detail: Copy + fmt::Debug + PartialEq + Eq {
    /// What a start keeps: [`Who`] or `()`.
    type Who: Copy + fmt::Debug + PartialEq + Eq;
    /// What a completion keeps: [`What`] or `()`.
    type What: Copy + fmt::Debug + PartialEq + Eq;
    /// The start's detail; calls `read` only if this detail keeps it.
    fn who(read: impl FnOnce() -> Who) -> Self::Who;
    /// The completion's detail; calls `read` only if this detail keeps it.
    fn what(read: impl FnOnce() -> What) -> Self::What;
    /// The thread that started the request, if this detail keeps it (for a container
    /// scope decided in user space).
    fn pid(who: &Self::Who) -> Option<u32>;
}

/// Keep who started each request and its type and size (iosnoop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Detail for Full {
    type Who = Who;
    type What = What;
    #[inline(always)]
    fn who(read: impl FnOnce() -> Who) -> Who {
        read()
    }
    #[inline(always)]
    fn what(read: impl FnOnce() -> What) -> What {
        read()
    }
    #[inline(always)]
    fn pid(who: &Who) -> Option<u32> {
        Some(who.pid as u32)
    }
}

/// Keep only device, sector and times (iolatency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lean;

impl Detail for Lean {
    type Who = ();
    type What = ();
    #[inline(always)]
    fn who(_: impl FnOnce() -> Who) {}
    #[inline(always)]
    fn what(_: impl FnOnce() -> What) {}
    #[inline(always)]
    fn pid(_: &()) -> Option<u32> {
        None
    }
}

/// Keep device, sector, times and the thread that started each request (iolatency with
/// a container scope, decided by the starting thread in user space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tasked;

impl Detail for Tasked {
    type Who = u32;
    type What = ();
    #[inline(always)]
    fn who(read: impl FnOnce() -> Who) -> u32 {
        read().pid as u32
    }
    #[inline(always)]
    fn what(_: impl FnOnce() -> What) {}
    #[inline(always)]
    fn pid(who: &u32) -> Option<u32> {
        Some(*who)
    }
}

/// A decoded block event, with the detail `D` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEvent<D: Detail = Full> {
    /// `block_rq_insert` (queued) or `block_rq_issue` (sent to the device).
    Start {
        /// True for `block_rq_issue`, false for `block_rq_insert`.
        issue: bool,
        /// Device.
        dev: Device,
        /// First 512-byte sector.
        sector: u64,
        /// Who started it ([`Who`] with [`Full`]).
        who: D::Who,
    },
    /// `block_rq_requeue`: a started request goes back to the queue, to be started
    /// again (the same I/O: its next start is not another I/O of the sector).
    Requeue {
        /// Device.
        dev: Device,
        /// First 512-byte sector.
        sector: u64,
    },
    /// `block_rq_complete`.
    Complete {
        /// Device.
        dev: Device,
        /// First 512-byte sector.
        sector: u64,
        /// What it was ([`What`] with [`Full`]).
        what: D::What,
    },
}

/// Where an integer field lives: `(offset, size)` with size 1, 2, 4 or 8.
type Int = (usize, usize);

#[derive(Debug, Clone)]
struct Accessors {
    id: u16,
    issue: bool,
    dev: Int,
    sector: Int,
    pid: Int,
    pid_signed: bool,
    nr_sector: Int,
    /// `comm` for starts, `rwbs` for completions: a fixed char array copied whole.
    text: Option<Int>,
    /// The payload must be at least this long for every accessor to be in bounds.
    min_len: usize,
}

fn int(f: &Field) -> Result<Int> {
    if f.location != perf_tools_ftrace::format::Location::Fixed || ![1, 2, 4, 8].contains(&f.size) {
        bail!("field {} is not an integer (size {})", f.name, f.size);
    }
    Ok((f.offset, f.size))
}

fn accessors(fmt: &EventFormat, issue: bool, complete: bool) -> Result<Accessors> {
    let pid = fmt.require("common_pid")?;
    let text = if complete {
        Some(fmt.require("rwbs")?)
    } else {
        fmt.field("comm").cloned()
    }
    .filter(|f| f.location == perf_tools_ftrace::format::Location::Fixed)
    .map(|f| (f.offset, f.size.min(16)));
    let mut a = Accessors {
        id: fmt.id,
        issue,
        dev: int(&fmt.require("dev")?)?,
        sector: int(&fmt.require("sector")?)?,
        pid: int(&pid)?,
        pid_signed: pid.signed,
        // Completions need it; starts carry it too (bitesize reads it from issues), but
        // the pairing tools do not, so a start without it still decodes.
        nr_sector: if complete {
            int(&fmt.require("nr_sector")?)?
        } else {
            fmt.field("nr_sector")
                .and_then(|f| int(f).ok())
                .unwrap_or((0, 0))
        },
        text,
        min_len: 0,
    };
    a.min_len = [
        a.dev,
        a.sector,
        a.pid,
        a.nr_sector,
        a.text.unwrap_or((0, 0)),
    ]
    .iter()
    .map(|&(o, n)| o + n)
    .max()
    .unwrap_or(0);
    Ok(a)
}

/// Reads an integer at `(offset, size)`; the caller checked the payload is long enough.
#[inline(always)]
fn read_int(p: &[u8], (off, size): Int) -> u64 {
    perf_tools_ftrace::format::read_uint(p, off, size).unwrap_or(0)
}

/// Copies a fixed char array whole (NUL padding included: readers trim at the NUL).
#[inline(always)]
fn read_text<const N: usize>(p: &[u8], at: Option<Int>) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some((off, n)) = at {
        if let Some(src) = p.get(off..off + n.min(N)) {
            out[..src.len()].copy_from_slice(src);
        }
    }
    out
}

/// Field accessors for the block events a trace uses, compiled once from the running
/// kernel's format files.
#[derive(Debug, Clone)]
pub struct BlockDecoder {
    starts: Vec<Accessors>,
    complete: Accessors,
    requeue: Option<Accessors>,
}

impl BlockDecoder {
    /// The tracepoints to enable for `start`.
    pub fn events(start: StartPoint) -> &'static [&'static str] {
        match start {
            StartPoint::Issue => &["block_rq_issue", "block_rq_complete"],
            StartPoint::Insert => &["block_rq_insert", "block_rq_issue", "block_rq_complete"],
        }
    }

    /// Builds a decoder from format files (as read from a kernel or from fixtures).
    pub fn from_formats(
        insert: Option<&EventFormat>,
        issue: &EventFormat,
        complete: &EventFormat,
    ) -> Result<Self> {
        let mut starts = Vec::new();
        if let Some(i) = insert {
            starts.push(accessors(i, false, false)?);
        }
        starts.push(accessors(issue, true, false)?);
        Ok(BlockDecoder {
            starts,
            complete: accessors(complete, false, true)?,
            requeue: None,
        })
    }

    /// Also decodes `block_rq_requeue` (by its format): a requeued request's next start
    /// is then known to be the same I/O started again, not another I/O of its sector.
    pub fn with_requeue(mut self, requeue: &EventFormat) -> Result<Self> {
        self.requeue = Some(accessors(requeue, false, false)?);
        Ok(self)
    }

    /// True if requeues are decoded ([`BlockDecoder::with_requeue`]): the trace must
    /// enable `block_rq_requeue` too.
    pub fn decodes_requeues(&self) -> bool {
        self.requeue.is_some()
    }

    /// Reads the format files of the events for `start` from an instance.
    pub fn load(inst: &Instance, start: StartPoint) -> Result<Self> {
        let insert = match start {
            StartPoint::Insert => Some(inst.event_format("block", "block_rq_insert")?),
            StartPoint::Issue => None,
        };
        let issue = inst.event_format("block", "block_rq_issue")?;
        let complete = inst.event_format("block", "block_rq_complete")?;
        let dec = Self::from_formats(insert.as_ref(), &issue, &complete)?;
        // Every kernel the suite runs on has it; without it (or with a format that does
        // not decode) a requeued request's second start looks like another I/O of its
        // sector, and is not timed.
        Ok(match inst.event_format("block", "block_rq_requeue") {
            Ok(f) => dec.clone().with_requeue(&f).unwrap_or(dec),
            Err(_) => dec,
        })
    }

    /// Decodes one event payload with every detail; `None` for other events or
    /// truncated payloads.
    #[inline]
    pub fn decode(&self, payload: &[u8]) -> Option<BlockEvent> {
        self.decode_as::<Full>(payload)
    }

    /// Decodes one event payload, reading only the fields `D` keeps.
    #[inline]
    pub fn decode_as<D: Detail>(&self, payload: &[u8]) -> Option<BlockEvent<D>> {
        let id = u16::from_ne_bytes([*payload.first()?, *payload.get(1)?]);
        let c = &self.complete;
        if id == c.id {
            if payload.len() < c.min_len {
                return None;
            }
            return Some(BlockEvent::Complete {
                dev: Device::from_kernel(read_int(payload, c.dev) as u32),
                sector: read_int(payload, c.sector),
                what: D::what(|| What {
                    nr_sector: read_int(payload, c.nr_sector) as u32,
                    rwbs: read_text(payload, c.text),
                }),
            });
        }
        let Some(a) = self.starts.iter().find(|a| a.id == id) else {
            let r = self.requeue.as_ref().filter(|r| r.id == id)?;
            if payload.len() < r.min_len {
                return None;
            }
            return Some(BlockEvent::Requeue {
                dev: Device::from_kernel(read_int(payload, r.dev) as u32),
                sector: read_int(payload, r.sector),
            });
        };
        if payload.len() < a.min_len {
            return None;
        }
        Some(BlockEvent::Start {
            issue: a.issue,
            dev: Device::from_kernel(read_int(payload, a.dev) as u32),
            sector: read_int(payload, a.sector),
            who: D::who(|| Who {
                pid: perf_tools_ftrace::format::to_i64(
                    read_int(payload, a.pid),
                    a.pid.1,
                    a.pid_signed,
                ) as i32,
                comm: read_text(payload, a.text),
                queued: !a.issue,
            }),
        })
    }
}

/// A request start's size and issuer, for the I/O size histograms (bitesize).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartSize {
    /// True for `block_rq_issue`, false for `block_rq_insert`.
    pub issue: bool,
    /// Device.
    pub dev: Device,
    /// Sectors (512 bytes) of the request, from its `nr_sector` field.
    pub nr_sector: u32,
    /// The thread on CPU and its command name.
    pub who: Who,
}

impl BlockDecoder {
    /// Decodes a start event (`block_rq_issue`, `block_rq_insert`) with its size;
    /// `None` for completions, other events, truncated payloads, or a kernel whose start
    /// events have no `nr_sector` field.
    #[inline]
    pub fn decode_start_size(&self, payload: &[u8]) -> Option<StartSize> {
        let id = u16::from_ne_bytes([*payload.first()?, *payload.get(1)?]);
        let a = self.starts.iter().find(|a| a.id == id)?;
        if payload.len() < a.min_len || a.nr_sector.1 == 0 {
            return None;
        }
        Some(StartSize {
            issue: a.issue,
            dev: Device::from_kernel(read_int(payload, a.dev) as u32),
            nr_sector: read_int(payload, a.nr_sector) as u32,
            who: Who {
                pid: perf_tools_ftrace::format::to_i64(
                    read_int(payload, a.pid),
                    a.pid.1,
                    a.pid_signed,
                ) as i32,
                comm: read_text(payload, a.text),
                queued: !a.issue,
            },
        })
    }
}

/// The layout of a block request event, from its format: Linux 6.11 added the `ioprio`
/// field to the `block_rq_*` events (moving `rwbs` and `comm`). The decoder reads either
/// by field name; this is what `--check` and the doctor show.
pub fn layout_name(fmt: &EventFormat) -> &'static str {
    if fmt.field("ioprio").is_some() {
        "6.11+ (with ioprio)"
    } else {
        "pre-6.11 (no ioprio)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(dir: &str, ev: &str) -> EventFormat {
        let p = format!(
            "{}/../../tests/fixtures/formats/{dir}/{ev}",
            env!("CARGO_MANIFEST_DIR")
        );
        EventFormat::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// Builds a payload for `f` with the given integer and string field values.
    pub(crate) fn payload(
        f: &EventFormat,
        ints: &[(&str, u64)],
        strs: &[(&str, &[u8])],
    ) -> Vec<u8> {
        let mut p = vec![0u8; 128];
        p[..2].copy_from_slice(&f.id.to_ne_bytes());
        for (name, v) in ints {
            let fld = f.field(name).unwrap();
            p[fld.offset..fld.offset + fld.size].copy_from_slice(&v.to_ne_bytes()[..fld.size]);
        }
        for (name, v) in strs {
            let fld = f.field(name).unwrap();
            p[fld.offset..fld.offset + v.len()].copy_from_slice(v);
        }
        p
    }

    #[test]
    fn decodes_layouts_before_and_after_the_611_ioprio_field() {
        for dir in ["6.18", "6.12", "6.1", "5.10"] {
            let issue = fmt(dir, "block_rq_issue");
            let complete = fmt(dir, "block_rq_complete");
            let dec = BlockDecoder::from_formats(None, &issue, &complete).unwrap();
            let dev = (7u64 << 20) | 3;
            // 6.11 added ioprio between bytes and rwbs: later fields moved.
            assert_eq!(
                issue.field("ioprio").is_some(),
                dir != "6.1" && dir != "5.10",
                "{dir}"
            );
            let p = payload(
                &issue,
                &[("dev", dev), ("sector", 2048), ("common_pid", 77)],
                &[("comm", b"dd"), ("rwbs", b"R")],
            );
            match dec.decode(&p).unwrap() {
                BlockEvent::Start {
                    issue,
                    dev,
                    sector,
                    who,
                } => {
                    assert!(issue);
                    assert_eq!(
                        (dev.to_string(), sector, who.pid),
                        ("7,3".to_string(), 2048, 77)
                    );
                    assert_eq!(&who.comm[..3], b"dd\0");
                }
                e => panic!("{e:?}"),
            }
            let p = payload(
                &complete,
                &[("dev", dev), ("sector", 2048), ("nr_sector", 8)],
                &[("rwbs", b"WS")],
            );
            assert_eq!(
                dec.decode(&p).unwrap(),
                BlockEvent::Complete {
                    dev: Device { major: 7, minor: 3 },
                    sector: 2048,
                    what: What {
                        nr_sector: 8,
                        rwbs: *b"WS\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                    }
                }
            );
            // The lean decode keeps the same device and sector, and nothing else.
            assert_eq!(
                dec.decode_as::<Lean>(&p).unwrap(),
                BlockEvent::Complete {
                    dev: Device { major: 7, minor: 3 },
                    sector: 2048,
                    what: ()
                }
            );
        }
    }

    #[test]
    fn start_sizes_decode_on_every_layout() {
        for dir in ["6.18", "6.12", "6.1", "5.10"] {
            let issue = fmt(dir, "block_rq_issue");
            let complete = fmt(dir, "block_rq_complete");
            let dec = BlockDecoder::from_formats(None, &issue, &complete).unwrap();
            let p = payload(
                &issue,
                &[
                    ("dev", (7 << 20) | 1),
                    ("sector", 64),
                    ("nr_sector", 256),
                    ("common_pid", 42),
                ],
                &[("comm", b"fio"), ("rwbs", b"R")],
            );
            let s = dec.decode_start_size(&p).unwrap();
            assert_eq!(
                (s.issue, s.dev.to_string(), s.nr_sector, s.who.pid),
                (true, "7,1".to_string(), 256, 42),
                "{dir}"
            );
            assert_eq!(&s.who.comm[..4], b"fio\0", "{dir}");
            // A completion is not a start.
            let p = payload(&complete, &[("nr_sector", 8)], &[]);
            assert_eq!(dec.decode_start_size(&p), None, "{dir}");
        }
    }

    #[test]
    fn requeues_decode_by_their_format() {
        let (issue, complete) = (
            fmt("6.18", "block_rq_issue"),
            fmt("6.18", "block_rq_complete"),
        );
        let requeue = fmt("6.18", "block_rq_requeue");
        let p = payload(
            &requeue,
            &[("dev", (7 << 20) | 2), ("sector", 4096), ("nr_sector", 8)],
            &[("rwbs", b"R")],
        );
        let plain = BlockDecoder::from_formats(None, &issue, &complete).unwrap();
        assert!(!plain.decodes_requeues());
        assert_eq!(plain.decode(&p), None, "not asked for: another event");
        let dec = plain.with_requeue(&requeue).unwrap();
        assert!(dec.decodes_requeues());
        assert_eq!(
            dec.decode_as::<Lean>(&p),
            Some(BlockEvent::Requeue {
                dev: Device { major: 7, minor: 2 },
                sector: 4096
            })
        );
        assert_eq!(dec.decode(&p[..20]), None, "truncated");
        assert_eq!(dec.decode_start_size(&p), None, "not a start");
    }

    #[test]
    fn starts_say_whether_they_are_a_queue_insert() {
        for dir in ["6.18", "6.12", "6.1", "5.10"] {
            let insert = fmt(dir, "block_rq_insert");
            let issue = fmt(dir, "block_rq_issue");
            let complete = fmt(dir, "block_rq_complete");
            let dec = BlockDecoder::from_formats(Some(&insert), &issue, &complete).unwrap();
            for (f, queued) in [(&insert, true), (&issue, false)] {
                let p = payload(f, &[("dev", 7 << 20), ("sector", 8)], &[]);
                match dec.decode(&p) {
                    Some(BlockEvent::Start { who, .. }) => {
                        assert_eq!(who.queued, queued, "{dir}")
                    }
                    e => panic!("{dir}: {e:?}"),
                }
            }
        }
    }
}
