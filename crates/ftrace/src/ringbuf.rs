//! Decoder for the binary pages ("sub-buffers") read from `per_cpu/cpuN/trace_pipe_raw`.
//!
//! A page is a header (`u64` timestamp, a `long` commit word holding the data size and
//! the missed-events flags) followed by variable-length records: data events, padding,
//! time extends and absolute time stamps. The kernel's
//! `Documentation/trace/ring-buffer-design.rst` and `kernel/trace/ring_buffer.c` describe
//! the layout; the rules implemented here are:
//!
//! * `type_len` 1..=28: data event, payload `4 * type_len` bytes after the header word;
//! * `type_len` 0: data event, `array[0]` holds the payload length + 4;
//! * 29: padding (`time_delta == 0`: rest of page empty; otherwise skip `4 + array[0]`
//!   bytes and add its delta);
//! * 30: time extend (`ts += array[0] << 27 | time_delta`);
//! * 31: absolute time stamp (replaces `ts`, keeping the running high 5 bits).
//!
//! The decoder never panics or reads out of bounds on malformed input; it reports a
//! [`PageError`] naming the offset.

use std::fmt;

const RB_MISSED_EVENTS: u64 = 1 << 31;
const RB_MISSED_STORED: u64 = 1 << 30;
const COMMIT_SIZE_MASK: u64 = (1 << 27) - 1;
const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
const TS_SHIFT: u32 = 27;
const TS_MSB: u64 = 0xf8 << 56;

/// Page geometry, from `events/header_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLayout {
    /// Size of the commit word: 8 on 64-bit kernels, 4 on 32-bit ones.
    pub commit_size: usize,
    /// Offset of the first record (16 on 64-bit kernels).
    pub data_offset: usize,
    /// Bytes available for records in one page.
    pub data_size: usize,
}

impl PageLayout {
    /// The layout of an x86_64 kernel with 4 KiB sub-buffers.
    pub const X86_64_4K: PageLayout = PageLayout {
        commit_size: 8,
        data_offset: 16,
        data_size: 4080,
    };

    /// The layout of an x86_64 kernel with 64 KiB sub-buffers (`buffer_subbuf_size_kb`
    /// = 64, what iosnoop and iolatency use on Linux 6.8+).
    pub const X86_64_64K: PageLayout = PageLayout {
        commit_size: 8,
        data_offset: 16,
        data_size: 65_520,
    };

    /// Parses the text of `events/header_page`.
    pub fn parse(text: &str) -> Result<PageLayout, String> {
        let mut commit = None;
        let mut data = None;
        for line in text.lines() {
            let (mut name, mut offset, mut size) = ("", None, None);
            for part in line.split(';') {
                let part = part.trim();
                if let Some(d) = part.strip_prefix("field:") {
                    name = d.split_whitespace().last().unwrap_or("");
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.trim().parse::<usize>().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.trim().parse::<usize>().ok();
                }
            }
            match (name, offset, size) {
                ("commit", Some(_), Some(s)) => commit = Some(s),
                ("data", Some(o), Some(s)) => data = Some((o, s)),
                _ => {}
            }
        }
        let commit_size = commit.ok_or("header_page has no commit field")?;
        let (data_offset, data_size) = data.ok_or("header_page has no data field")?;
        if !(commit_size == 4 || commit_size == 8) || data_offset < 8 + commit_size || data_size < 8
        {
            return Err(format!(
                "unexpected header_page layout: commit {commit_size} bytes, data at {data_offset} size {data_size}"
            ));
        }
        Ok(PageLayout {
            commit_size,
            data_offset,
            data_size,
        })
    }

    /// Total size of one page as returned by a read: header plus data area.
    pub fn page_size(&self) -> usize {
        self.data_offset + self.data_size
    }
}

/// Events lost before the first record of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// No loss reported.
    #[default]
    None,
    /// The kernel stored the exact number lost.
    Count(u64),
    /// Events were lost but the count did not fit in the page.
    Unknown,
}

impl Missed {
    /// A lower bound of the number lost (1 when the count is unknown).
    pub fn at_least(self) -> u64 {
        match self {
            Missed::None => 0,
            Missed::Count(n) => n,
            Missed::Unknown => 1,
        }
    }
}

/// What a page held besides its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageSummary {
    /// Bytes of record data (the commit size).
    pub data_len: usize,
    /// Data records delivered.
    pub events: usize,
    /// Events lost before this page.
    pub missed: Missed,
}

/// A malformed page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    /// Byte offset inside the data area where decoding stopped.
    pub offset: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt ring-buffer page at data offset {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for PageError {}

#[inline]
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
fn word_at(b: &[u8], off: usize, size: usize) -> Option<u64> {
    if size == 8 {
        let s = b.get(off..off + 8)?;
        Some(u64::from_ne_bytes([
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
        ]))
    } else {
        u32_at(b, off).map(u64::from)
    }
}

#[inline]
fn split_header(w: u32) -> (u32, u32) {
    if cfg!(target_endian = "little") {
        (w & 0x1f, w >> 5)
    } else {
        (w >> 27, w & 0x07ff_ffff)
    }
}

/// The page header's time stamp, if the page reports events lost before it (the
/// `RB_MISSED_EVENTS` flag of its commit word); `None` when it reports no loss or is
/// too short to have a header. A cheap look at the header, before [`decode_page`]
/// delivers the page's events: every event lost before this page is no newer than the
/// returned time stamp (the writer began this page after the lost ones).
#[inline]
pub fn missed_before(page: &[u8], layout: &PageLayout) -> Option<u64> {
    let commit = word_at(page, 8, layout.commit_size)?;
    if commit & RB_MISSED_EVENTS == 0 {
        return None;
    }
    word_at(page, 0, 8)
}

/// Decodes one page, calling `on_event(timestamp, payload)` for each data record in order.
///
/// `page` must be a whole page as read from `trace_pipe_raw` (at least the header).
/// Records already delivered before an error stay delivered.
pub fn decode_page(
    page: &[u8],
    layout: &PageLayout,
    mut on_event: impl FnMut(u64, &[u8]),
) -> Result<PageSummary, PageError> {
    let bad = |offset, message| PageError { offset, message };
    let mut ts = word_at(page, 0, 8).ok_or(bad(0, "page shorter than its header"))?;
    let commit =
        word_at(page, 8, layout.commit_size).ok_or(bad(0, "page shorter than its header"))?;
    let size = (commit & COMMIT_SIZE_MASK) as usize;
    let data = page
        .get(layout.data_offset..)
        .ok_or(bad(0, "page shorter than its header"))?;
    if size > layout.data_size || size > data.len() {
        return Err(bad(0, "commit size larger than the page"));
    }
    let missed = if commit & RB_MISSED_EVENTS != 0 {
        if commit & RB_MISSED_STORED != 0 {
            match word_at(data, size, layout.commit_size) {
                Some(n) => Missed::Count(n),
                None => Missed::Unknown,
            }
        } else {
            Missed::Unknown
        }
    } else {
        Missed::None
    };
    let data = &data[..size];
    let mut summary = PageSummary {
        data_len: size,
        events: 0,
        missed,
    };
    let mut off = 0usize;
    while off + 4 <= size {
        let w = u32_at(data, off).ok_or(bad(off, "truncated record header"))?;
        let (type_len, delta) = split_header(w);
        match type_len {
            TYPE_PADDING => {
                if delta == 0 {
                    break; // null padding: the rest of the page is empty
                }
                let len =
                    u32_at(data, off + 4).ok_or(bad(off, "truncated padding record"))? as usize;
                ts = ts.wrapping_add(delta as u64);
                off = off
                    .checked_add(4 + len)
                    .filter(|&n| n <= size)
                    .ok_or(bad(off, "padding runs past the page"))?;
            }
            TYPE_TIME_EXTEND => {
                let hi = u32_at(data, off + 4).ok_or(bad(off, "truncated time extend"))? as u64;
                ts = ts.wrapping_add((hi << TS_SHIFT) + delta as u64);
                off += 8;
            }
            TYPE_TIME_STAMP => {
                let hi =
                    u32_at(data, off + 4).ok_or(bad(off, "truncated absolute time stamp"))? as u64;
                let mut abs = (hi << TS_SHIFT) | delta as u64;
                if ts & TS_MSB != 0 {
                    abs |= ts & TS_MSB;
                    if abs < ts {
                        abs = abs.wrapping_add(1 << 59);
                    }
                }
                ts = abs;
                off += 8;
            }
            0 => {
                let len = u32_at(data, off + 4).ok_or(bad(off, "truncated long event"))? as usize;
                if len < 4 {
                    return Err(bad(off, "long event with length below 4"));
                }
                let start = off + 8;
                let end = (off + 4)
                    .checked_add(len)
                    .filter(|&n| n <= size)
                    .ok_or(bad(off, "event runs past the page"))?;
                ts = ts.wrapping_add(delta as u64);
                on_event(ts, &data[start..end]);
                summary.events += 1;
                // The writer rounds lengths up to the 4-byte alignment.
                off = (end + 3) & !3;
            }
            n => {
                let end = off + 4 + 4 * n as usize;
                if end > size {
                    return Err(bad(off, "event runs past the page"));
                }
                ts = ts.wrapping_add(delta as u64);
                on_event(ts, &data[off + 4..end]);
                summary.events += 1;
                off = end;
            }
        }
    }
    Ok(summary)
}

/// Builds synthetic pages in the kernel's format, for tests and fuzz seeds.
///
/// The builder writes the same encodings the kernel does: small events for payloads up
/// to 112 bytes, long events above (or always, with `force_long`), time extends for
/// deltas beyond 27 bits, and optional padding and absolute stamps.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone)]
pub struct PageBuilder {
    layout: PageLayout,
    base_ts: u64,
    last_ts: u64,
    data: Vec<u8>,
    /// Encode every event in the long form (as 8-byte-aligned architectures do).
    pub force_long: bool,
}

#[cfg(any(test, feature = "testing"))]
impl PageBuilder {
    /// Starts a page whose header time stamp is `base_ts`.
    pub fn new(layout: PageLayout, base_ts: u64) -> Self {
        PageBuilder {
            layout,
            base_ts,
            last_ts: base_ts,
            data: Vec::new(),
            force_long: false,
        }
    }

    fn header(&mut self, type_len: u32, delta: u32) {
        let w = if cfg!(target_endian = "little") {
            (delta << 5) | type_len
        } else {
            (type_len << 27) | (delta & 0x07ff_ffff)
        };
        self.data.extend_from_slice(&w.to_ne_bytes());
    }

    fn delta_for(&mut self, ts: u64) -> u32 {
        let delta = ts.saturating_sub(self.last_ts);
        self.last_ts = self.last_ts.max(ts);
        if delta >= 1 << TS_SHIFT {
            self.header(TYPE_TIME_EXTEND, (delta & ((1 << TS_SHIFT) - 1)) as u32);
            self.data
                .extend_from_slice(&((delta >> TS_SHIFT) as u32).to_ne_bytes());
            0
        } else {
            delta as u32
        }
    }

    /// Appends a data event at absolute time `ts` (must not go backwards).
    /// Returns false (and writes nothing) when it does not fit.
    pub fn event(&mut self, ts: u64, payload: &[u8]) -> bool {
        let padded = (payload.len().max(1) + 3) & !3;
        let long = self.force_long || padded > 4 * 28;
        let need = 8 + if long { 8 + padded } else { 4 + padded };
        if self.data.len() + need > self.layout.data_size {
            return false;
        }
        let delta = self.delta_for(ts);
        if long {
            self.header(0, delta);
            self.data
                .extend_from_slice(&((padded + 4) as u32).to_ne_bytes());
        } else {
            self.header((padded / 4) as u32, delta);
        }
        self.data.extend_from_slice(payload);
        self.data
            .resize(self.data.len() + padded - payload.len(), 0);
        true
    }

    /// Appends a discarded-event padding record of `len` payload bytes at time `ts`.
    /// Returns false (and writes nothing) when it does not fit.
    pub fn discarded(&mut self, ts: u64, len: usize) -> bool {
        if self.data.len() + 8 + 8 + len.max(4) > self.layout.data_size {
            return false;
        }
        let delta = self.delta_for(ts).max(1);
        self.header(TYPE_PADDING, delta);
        self.data.extend_from_slice(&(len as u32).to_ne_bytes());
        self.data.resize(self.data.len() + len.saturating_sub(4), 0);
        true
    }

    /// Appends an absolute time stamp record setting the clock to `ts`.
    pub fn absolute(&mut self, ts: u64) {
        self.header(TYPE_TIME_STAMP, (ts & ((1 << TS_SHIFT) - 1)) as u32);
        self.data
            .extend_from_slice(&((ts >> TS_SHIFT) as u32).to_ne_bytes());
        self.last_ts = ts;
    }

    /// Finishes the page. `missed`: `Some(Some(n))` stores a count, `Some(None)` flags an
    /// unknown loss. The result is a whole zero-filled page as `read()` returns it.
    pub fn finish(&self, missed: Option<Option<u64>>) -> Vec<u8> {
        let mut page = vec![0u8; self.layout.page_size()];
        page[..8].copy_from_slice(&self.base_ts.to_ne_bytes());
        let mut commit = self.data.len() as u64;
        match missed {
            Some(Some(n)) => {
                commit |= RB_MISSED_EVENTS | RB_MISSED_STORED;
                let at = self.layout.data_offset + self.data.len();
                let cs = self.layout.commit_size;
                page[at..at + cs].copy_from_slice(&n.to_ne_bytes()[..cs]);
            }
            Some(None) => commit |= RB_MISSED_EVENTS,
            None => {}
        }
        let cs = self.layout.commit_size;
        page[8..8 + cs].copy_from_slice(&commit.to_ne_bytes()[..cs]);
        let d = self.layout.data_offset;
        page[d..d + self.data.len()].copy_from_slice(&self.data);
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(page: &[u8]) -> (Vec<(u64, Vec<u8>)>, PageSummary) {
        let mut v = Vec::new();
        let s = decode_page(page, &PageLayout::X86_64_4K, |ts, p| {
            v.push((ts, p.to_vec()))
        })
        .unwrap();
        (v, s)
    }

    #[test]
    fn parses_real_header_page() {
        let l = PageLayout::parse(include_str!(
            "../../../tests/fixtures/formats/6.18/header_page"
        ))
        .unwrap();
        assert_eq!(l, PageLayout::X86_64_4K);
        assert_eq!(l.page_size(), 4096);
    }

    #[test]
    fn round_trips_small_long_extended_and_padding() {
        let mut b = PageBuilder::new(PageLayout::X86_64_4K, 1_000);
        assert!(b.event(1_010, &[1, 0, 2, 3]));
        assert!(b.event(1_010 + (5u64 << 27) + 7, &[9; 200])); // long form + time extend
        assert!(b.discarded(1_010 + (5u64 << 27) + 50, 24));
        assert!(b.event(1_010 + (5u64 << 27) + 60, &[7; 13]));
        b.absolute(99_000_000_000);
        assert!(b.event(99_000_000_005, &[5; 8]));
        let page = b.finish(None);
        let (ev, s) = collect(&page);
        let ts: Vec<u64> = ev.iter().map(|e| e.0).collect();
        assert_eq!(
            ts,
            vec![
                1_010,
                1_010 + (5u64 << 27) + 7,
                1_010 + (5u64 << 27) + 60,
                99_000_000_005
            ]
        );
        assert_eq!(&ev[1].1[..200], &[9; 200][..]);
        assert_eq!(ev[2].1.len(), 16, "13-byte payload is padded to 16");
        assert_eq!(s.events, 4);
        assert_eq!(s.missed, Missed::None);
    }

    #[test]
    fn forced_long_form_decodes_identically() {
        let mut b = PageBuilder::new(PageLayout::X86_64_4K, 0);
        b.force_long = true;
        b.event(3, &[1, 2, 3, 4]);
        b.event(8, &[5, 6, 7, 8]);
        let (ev, _) = collect(&b.finish(None));
        assert_eq!(ev, vec![(3, vec![1, 2, 3, 4]), (8, vec![5, 6, 7, 8])]);
    }

    #[test]
    fn missed_events_counted_or_flagged() {
        let mut b = PageBuilder::new(PageLayout::X86_64_4K, 0);
        b.event(1, &[0; 8]);
        assert_eq!(
            collect(&b.finish(Some(Some(42)))).1.missed,
            Missed::Count(42)
        );
        assert_eq!(collect(&b.finish(Some(None))).1.missed, Missed::Unknown);
        let l = PageLayout::X86_64_4K;
        let mut b = PageBuilder::new(l, 77);
        b.event(80, &[0; 8]);
        assert_eq!(missed_before(&b.finish(Some(Some(3))), &l), Some(77));
        assert_eq!(missed_before(&b.finish(Some(None)), &l), Some(77));
        assert_eq!(missed_before(&b.finish(None), &l), None);
        assert_eq!(missed_before(&[0; 12], &l), None);
    }

    #[test]
    fn absolute_stamp_keeps_high_bits() {
        let base = (3u64 << 59) | 500;
        let mut b = PageBuilder::new(PageLayout::X86_64_4K, base);
        b.absolute(600); // low 59 bits only, as the kernel stores them
        b.event(600, &[0; 4]);
        let (ev, _) = collect(&b.finish(None));
        assert_eq!(ev[0].0, (3u64 << 59) | 600);
    }

    #[test]
    fn malformed_pages_are_errors_not_panics() {
        let layout = PageLayout::X86_64_4K;
        assert!(decode_page(&[0u8; 10], &layout, |_, _| {}).is_err());
        let mut page = vec![0u8; 4096];
        page[8..16].copy_from_slice(&5000u64.to_ne_bytes());
        assert!(decode_page(&page, &layout, |_, _| {}).is_err());
        // A small event claiming more bytes than the commit size.
        let mut page = vec![0u8; 4096];
        page[8..16].copy_from_slice(&8u64.to_ne_bytes());
        page[16..20].copy_from_slice(&28u32.to_ne_bytes());
        assert!(decode_page(&page, &layout, |_, _| {}).is_err());
        // Long event with length < 4.
        page[16..20].copy_from_slice(&0u32.to_ne_bytes());
        page[20..24].copy_from_slice(&2u32.to_ne_bytes());
        assert!(decode_page(&page, &layout, |_, _| {}).is_err());
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut page = vec![0u8; 4096];
        for _ in 0..2000 {
            for b in page.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let commit = x % 4200;
            page[8..16].copy_from_slice(&commit.to_ne_bytes());
            let _ = decode_page(&page, &PageLayout::X86_64_4K, |_, _| {});
        }
    }
}
