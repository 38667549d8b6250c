//! The arithmetic of a row: from the raw counts of an interval to HITS, MISSES, DIRTIES
//! and RATIO, the original's model, with every impossible value flagged instead of
//! clamped.
//!
//! The model: every page cache access calls the accessed function, and the original
//! took `mark_buffer_dirty` calls out of them, so `accesses = accessed -
//! buffer_dirtied`; every folio added to the cache is a miss unless the same folio
//! (inode and index) is dirtied in the same interval: then it was added to be written
//! ([`Tally`]; the original subtracted all dirties, which went negative when cached pages
//! were re-dirtied, and clamped that to 0); `hits = accesses - misses`. Hits can still
//! come out negative in an interval (readahead adds folios before they are read): they
//! are then shown as `?`, explained on stderr.

/// The counts of one interval, one per kernel event (a folio, or a page on kernels
/// without large folios), except the `*_pages` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls of the page-accessed function (`folio_mark_accessed` / `mark_page_accessed`).
    pub accessed: u64,
    /// Calls of `mark_buffer_dirty`.
    pub buffer_dirtied: u64,
    /// Folios added to the page cache (`mm_filemap_add_to_page_cache`).
    pub added: u64,
    /// Pages in those folios (from the event's `order` where it has one, else one each).
    pub added_pages: u64,
    /// Folios dirtied (`writeback_dirty_folio` / `writeback_dirty_page`).
    pub dirtied: u64,
    /// Of the folios added, those dirtied in the same interval (same inode and index):
    /// added to be written, not read: not misses.
    pub written: u64,
    /// Pages in those folios.
    pub written_pages: u64,
}

impl Counts {
    /// Folios added to be read: misses, in folios.
    pub fn miss_folios(&self) -> u64 {
        self.added - self.written
    }

    /// Pages added to be read: MISSES.
    pub fn miss_pages(&self) -> u64 {
        self.added_pages - self.written_pages
    }
}

/// Collects an interval's events and pairs additions with dirties of the same folio.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Counts,
    /// (inode, index, pages) of each addition.
    adds: Vec<(u64, u64, u64)>,
    /// (inode, index) of each dirty.
    dirty: std::collections::HashSet<(u64, u64)>,
}

impl Tally {
    /// A folio of `pages` pages added at (inode, index).
    pub fn add(&mut self, ino: u64, index: u64, pages: u64) {
        self.counts.added += 1;
        self.counts.added_pages += pages;
        self.adds.push((ino, index, pages));
    }

    /// A folio at (inode, index) dirtied.
    pub fn dirty(&mut self, ino: u64, index: u64) {
        self.counts.dirtied += 1;
        self.dirty.insert((ino, index));
    }

    /// A page-accessed call.
    pub fn accessed(&mut self) {
        self.counts.accessed += 1;
    }

    /// A `mark_buffer_dirty` call.
    pub fn buffer_dirtied(&mut self) {
        self.counts.buffer_dirtied += 1;
    }

    /// The interval's counts (additions paired with dirties); starts a new interval.
    pub fn take(&mut self) -> Counts {
        let mut c = self.counts;
        for (ino, index, pages) in &self.adds {
            if self.dirty.contains(&(*ino, *index)) {
                c.written += 1;
                c.written_pages += pages;
            }
        }
        *self = Tally::default();
        c
    }
}

/// One printed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A value.
    Value(i64),
    /// A percentage.
    Percent(f64),
    /// No source on this kernel, or undefined (a ratio of no accesses): `-`.
    Missing,
    /// The model gave an impossible value: `?`, explained on stderr.
    Impossible,
}

impl Cell {
    fn render(self, width: usize) -> String {
        match self {
            Cell::Value(v) => format!("{v:>width$}"),
            Cell::Percent(p) => format!("{:>w$.1}%", p, w = width - 1),
            Cell::Missing => format!("{:>width$}", "-"),
            Cell::Impossible => format!("{:>width$}", "?"),
        }
    }
}

/// A derived row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// HITS.
    pub hits: Cell,
    /// MISSES.
    pub misses: Cell,
    /// DIRTIES (folios dirtied).
    pub dirties: u64,
    /// RATIO, hits / (hits + misses).
    pub ratio: Cell,
    /// Why a value is `?`, one line each (for stderr).
    pub problems: Vec<String>,
}

/// Derives a row from an interval's counts; `have_accesses` is false where the kernel
/// offers no source for accesses (HITS and RATIO are then `-`). MISSES are pages; HITS
/// and RATIO are in the kernel's units (folios: pages where no large folios are used).
pub fn derive(c: &Counts, have_accesses: bool) -> Row {
    let mut problems = Vec::new();
    let misses = c.miss_folios() as i64;
    let (hits, ratio) = if !have_accesses {
        (Cell::Missing, Cell::Missing)
    } else {
        let total = c.accessed as i64 - c.buffer_dirtied as i64;
        let hits = total - misses;
        if total < 0 || hits < 0 {
            problems.push(format!(
                "HITS and RATIO shown as ?: fewer accesses ({} accessed - {} buffers dirtied) than folios read in ({misses}): readahead added folios not read yet; see -D",
                c.accessed, c.buffer_dirtied
            ));
            (Cell::Impossible, Cell::Impossible)
        } else if total == 0 {
            (Cell::Value(0), Cell::Missing)
        } else {
            (
                Cell::Value(hits),
                Cell::Percent(100.0 * hits as f64 / total as f64),
            )
        }
    };
    Row {
        hits,
        misses: Cell::Value(c.miss_pages() as i64),
        dirties: c.dirtied,
        ratio,
        problems,
    }
}

/// Buffers and Cached of `/proc/meminfo`, in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Meminfo {
    /// `Buffers:` in MiB (None if absent).
    pub buffers_mb: Option<f64>,
    /// `Cached:` in MiB (None if absent).
    pub cached_mb: Option<f64>,
}

impl Meminfo {
    /// Parses the text of `/proc/meminfo`.
    pub fn parse(text: &str) -> Meminfo {
        let mut m = Meminfo::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 || f[2] != "kB" {
                continue;
            }
            let Ok(kb) = f[1].parse::<u64>() else {
                continue;
            };
            match f[0] {
                "Buffers:" => m.buffers_mb = Some(kb as f64 / 1024.0),
                "Cached:" => m.cached_mb = Some(kb as f64 / 1024.0),
                _ => {}
            }
        }
        m
    }

    /// Reads `/proc/meminfo` (absent values when it cannot be read).
    pub fn read() -> Meminfo {
        Meminfo::parse(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
    }
}

/// The page cache charged to a cgroup, in MiB, from its `memory.stat`: `file` (v2) or
/// `total_cache` / `cache` (a v1 memory hierarchy). None when the cgroup has no
/// memory accounting (the controller is not enabled for it, or a v1 hierarchy of
/// another controller).
pub fn cgroup_cache_mb(dir: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    cache_bytes(&text).map(|b| b as f64 / (1024.0 * 1024.0))
}

/// The page cache bytes of `memory.stat` text (see [`cgroup_cache_mb`]).
fn cache_bytes(text: &str) -> Option<u64> {
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    value("file")
        .or_else(|| value("total_cache"))
        .or_else(|| value("cache"))
}

/// Formats a row in the original's columns; `debug` adds the raw counters.
pub fn format_row(stamp: Option<&str>, row: &Row, mem: &Meminfo, debug: Option<&Counts>) -> String {
    let mut s = String::new();
    if let Some(t) = stamp {
        s.push_str(&format!("{t:<8} "));
    }
    let mb = |v: Option<f64>, w: usize| match v {
        Some(v) => format!("{v:>w$.0}"),
        None => format!("{:>w$}", "-"),
    };
    s.push_str(&format!(
        "{} {} {:>8} {} {} {}",
        row.hits.render(8),
        row.misses.render(8),
        row.dirties,
        row.ratio.render(8),
        mb(mem.buffers_mb, 12),
        mb(mem.cached_mb, 10)
    ));
    if let Some(c) = debug {
        let acc = if row.hits == Cell::Missing && row.ratio == Cell::Missing && c.accessed == 0 {
            "-".to_string()
        } else {
            c.accessed.to_string()
        };
        s.push_str(&format!(
            "  ({acc} {} {} {} {} {})",
            c.buffer_dirtied, c.added, c.written, c.dirtied, c.added_pages
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(accessed: u64, buffer_dirtied: u64, added: u64, written: u64) -> Counts {
        Counts {
            accessed,
            buffer_dirtied,
            added,
            added_pages: added,
            dirtied: written,
            written,
            written_pages: written,
        }
    }

    #[test]
    fn the_originals_example_row() {
        // 08:29:01 of the original's example: 775 hits, 20489 misses, 3.6%.
        let r = derive(&c(775 + 20489, 0, 20489, 0), true);
        assert_eq!(r.hits, Cell::Value(775));
        assert_eq!(r.misses, Cell::Value(20489));
        assert_eq!(r.ratio.render(8), "    3.6%");
        assert!(r.problems.is_empty());
        let m = Meminfo::parse(
            "MemTotal: 100 kB\nBuffers:            512 kB\nCached:          91136 kB\n",
        );
        assert_eq!(
            format_row(Some("08:29:01"), &r, &m, None),
            "08:29:01      775    20489        0     3.6%            0         89"
        );
    }

    #[test]
    fn folios_added_then_dirtied_are_writes_not_misses() {
        let mut t = Tally::default();
        // A read of a 4-page folio at index 0 and of a page at 4 of inode 7.
        t.add(7, 0, 4);
        t.add(7, 4, 1);
        // A write creating index 0 of inode 9, then dirtying it; a re-dirty of a cached
        // page (inode 7, index 100) that was never added.
        t.dirty(9, 0);
        t.add(9, 0, 1);
        t.dirty(7, 100);
        let k = t.take();
        assert_eq!((k.added, k.added_pages, k.dirtied), (3, 6, 2));
        assert_eq!((k.written, k.written_pages), (1, 1));
        assert_eq!((k.miss_folios(), k.miss_pages()), (2, 5));
        // The next interval starts empty.
        assert_eq!(t.take(), Counts::default());
        let r = derive(&k, false);
        assert_eq!(r.misses, Cell::Value(5));
        assert_eq!(r.dirties, 2);
        assert!(r.problems.is_empty());
    }

    #[test]
    fn buffer_dirties_are_taken_out_of_accesses() {
        // 100 accesses of which 10 from mark_buffer_dirty; 30 added of which 20 written.
        let r = derive(&c(100, 10, 30, 20), true);
        assert_eq!(r.misses, Cell::Value(10));
        assert_eq!(r.hits, Cell::Value(80));
        assert_eq!(r.dirties, 20);
        assert_eq!(r.ratio, Cell::Percent(100.0 * 80.0 / 90.0));
    }

    #[test]
    fn negative_hits_are_flagged_not_printed() {
        // Readahead added 64 folios, only 8 accessed so far: hits would be -56.
        let r = derive(&c(8, 0, 64, 0), true);
        assert_eq!(r.misses, Cell::Value(64));
        assert_eq!(r.hits, Cell::Impossible);
        assert_eq!(r.ratio, Cell::Impossible);
        assert_eq!(r.problems.len(), 1);
        assert!(r.problems[0].contains("8 accessed"), "{:?}", r.problems);
        let line = format_row(None, &r, &Meminfo::default(), Some(&c(8, 0, 64, 0)));
        assert_eq!(
            line,
            "       ?       64        0        ?            -          -  (8 0 64 0 0 64)"
        );
        // More buffer dirties than accesses: flagged too.
        assert_eq!(derive(&c(5, 6, 0, 0), true).hits, Cell::Impossible);
        // A ratio outside 0..100% cannot come out otherwise.
        for (a, b, d, w) in [(10, 0, 0, 0), (10, 5, 2, 1), (1000, 999, 1, 0)] {
            match derive(&c(a, b, d, w), true).ratio {
                Cell::Percent(p) => assert!((0.0..=100.0).contains(&p), "{p}"),
                Cell::Missing | Cell::Impossible => {}
                Cell::Value(v) => panic!("ratio as a value {v}"),
            }
        }
    }

    #[test]
    fn without_an_access_source_hits_and_ratio_are_dashes() {
        let r = derive(&c(0, 0, 1024, 0), false);
        assert_eq!(r.hits, Cell::Missing);
        assert_eq!(r.ratio, Cell::Missing);
        assert_eq!(r.misses, Cell::Value(1024));
        let line = format_row(None, &r, &Meminfo::default(), Some(&c(0, 0, 1024, 0)));
        assert_eq!(
            line,
            "       -     1024        0        -            -          -  (- 0 1024 0 0 1024)"
        );
    }

    #[test]
    fn an_idle_interval_has_no_ratio() {
        let r = derive(&Counts::default(), true);
        assert_eq!(r.hits, Cell::Value(0));
        assert_eq!(r.ratio, Cell::Missing);
        assert!(r.problems.is_empty());
    }

    #[test]
    fn cgroup_cache_is_file_in_v2_and_total_cache_in_v1() {
        assert_eq!(
            cache_bytes("anon 4096\nfile 1048576\nkernel 0\n"),
            Some(1 << 20)
        );
        assert_eq!(
            cache_bytes("cache 8192\nrss 0\ntotal_cache 16384\n"),
            Some(16384)
        );
        assert_eq!(cache_bytes("cache 8192\nrss 0\n"), Some(8192));
        assert_eq!(cache_bytes("anon 1\nfile_mapped 2\n"), None);
    }

    #[test]
    fn meminfo_ignores_other_lines() {
        let m = Meminfo::parse("Buffers: x kB\nSwapCached: 4 kB\nCached: 2048 kB\n");
        assert_eq!(m.buffers_mb, None);
        assert_eq!(m.cached_mb, Some(2.0));
    }
}
