//! Synthetic block traces in the running kernel's binary format, for benchmarks and
//! tests of the whole per-event path without a kernel.

use crate::{BlockPipeline, Detail, Device};
use perf_tools_ftrace::format::EventFormat;
use perf_tools_ftrace::reader::CpuPosition;
use perf_tools_ftrace::ringbuf::{PageBuilder, PageLayout};

/// Shape of a synthetic load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Number of I/Os.
    pub ios: u64,
    /// CPUs whose buffers the events are spread over.
    pub cpus: u32,
    /// Nanoseconds between I/O starts.
    pub gap_ns: u64,
    /// I/Os in flight at once (latency = `depth * gap_ns`, plus jitter).
    pub depth: u64,
    /// The device every I/O goes to.
    pub dev: Device,
}

impl Load {
    /// The shape of `scripts/bench-block.sh`'s fio run on this project's 2-vCPU VM:
    /// `ios` I/Os on 2 CPUs, one every 7 µs (about 140k IOPS), 32 in flight, on 7,0.
    pub fn fio(ios: u64) -> Load {
        Load {
            ios,
            cpus: 2,
            gap_ns: 7_000,
            depth: 32,
            dev: Device { major: 7, minor: 0 },
        }
    }
}

/// Reads `block_rq_issue` and `block_rq_complete` format files from `dir` (e.g. the
/// repository's `tests/fixtures/formats/6.18`).
pub fn formats(dir: &std::path::Path) -> anyhow::Result<(EventFormat, EventFormat)> {
    let read = |name: &str| -> anyhow::Result<EventFormat> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        EventFormat::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    Ok((read("block_rq_issue")?, read("block_rq_complete")?))
}

/// Rounds a benchmark repeats its timed part: `ROUNDS` from the environment (e.g. 50
/// so the timed part dominates a `perf record`), else `default`.
pub fn bench_rounds(default: usize) -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

fn payload(f: &EventFormat, ints: &[(&str, u64)], strs: &[(&str, &[u8])]) -> Vec<u8> {
    // Fixed part up to the last field, then an empty string for each __data_loc.
    let end = f
        .fields
        .iter()
        .map(|x| x.offset + x.size)
        .max()
        .unwrap_or(8);
    let mut p = vec![0u8; end];
    p[..2].copy_from_slice(&f.id.to_ne_bytes());
    for x in &f.fields {
        if x.location != perf_tools_ftrace::format::Location::Fixed && x.size == 4 {
            let loc = (1u32 << 16) | p.len() as u32;
            p[x.offset..x.offset + 4].copy_from_slice(&loc.to_ne_bytes());
            p.push(0);
        }
    }
    for (name, v) in ints {
        if let Some(x) = f.field(name) {
            let n = x.size.min(8);
            p[x.offset..x.offset + n].copy_from_slice(&v.to_ne_bytes()[..n]);
        }
    }
    for (name, v) in strs {
        if let Some(x) = f.field(name) {
            let n = v.len().min(x.size);
            p[x.offset..x.offset + n].copy_from_slice(&v[..n]);
        }
    }
    p
}

/// Builds the pages each CPU's `trace_pipe_raw` would return for `load`: 4 KiB
/// random reads, each issued on one CPU and completed on the same or another one.
/// Returns one list of pages per CPU, and the I/Os' latencies in ns (in I/O order).
pub fn pages(
    issue: &EventFormat,
    complete: &EventFormat,
    layout: PageLayout,
    load: Load,
) -> (Vec<Vec<Vec<u8>>>, Vec<u64>) {
    let (per_cpu, ios) = events(issue, complete, load, 1 << 21, true);
    let pages = per_cpu
        .into_iter()
        .map(|evs| paginate(layout, evs.into_iter().map(|(ts, p)| (ts, p, false))))
        .collect();
    (pages, ios.iter().map(|io| io.end - io.start).collect())
}

/// One I/O of a synthetic trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Io {
    /// Its first sector.
    pub sector: u64,
    /// Time stamp of its start (`block_rq_issue`).
    pub start: u64,
    /// Time stamp of its completion.
    pub end: u64,
}

/// Like [`pages`], but with lost events, as a kernel buffer that overflowed hands
/// them out: the I/Os go to only `blocks` 4 KiB blocks (so later I/Os reuse the
/// sectors of earlier ones, as fio on a small device does; with `overlap`, also while
/// an earlier I/O of the block is in flight, else never two at once), and for each `(cpu, at, len)` in `losses` that CPU's events `at..at + len`
/// (taken modulo its number of events, never its last one) are left out; the page
/// holding the first event after them is flagged with the number lost (stored, or
/// unknown when `stored` is false), and the page before ends at the loss.
/// Returns the pages per CPU, every I/O as it really happened, and the number of
/// events left out.
pub fn lossy_pages(
    issue: &EventFormat,
    complete: &EventFormat,
    layout: PageLayout,
    load: Load,
    (blocks, overlap): (u64, bool),
    losses: &[(u32, usize, usize)],
    stored: bool,
) -> (Vec<Vec<Vec<u8>>>, Vec<Io>, u64) {
    let (per_cpu, ios) = if overlap {
        events(issue, complete, load, blocks.max(1), false)
    } else {
        events(issue, complete, load, blocks.max(2 * load.depth + 2), true)
    };
    let mut lost_total = 0;
    let pages = per_cpu
        .into_iter()
        .enumerate()
        .map(|(cpu, evs)| {
            let n = evs.len();
            let mut lost = vec![false; n];
            for &(c, at, len) in losses {
                if c as usize == cpu && n > 1 {
                    let from = at % (n - 1);
                    for l in &mut lost[from..(from + len).min(n - 1)] {
                        *l = true;
                    }
                }
            }
            let mut run = 0u64;
            let mut kept = Vec::new();
            for (i, (ts, p)) in evs.into_iter().enumerate() {
                if lost[i] {
                    run += 1;
                } else {
                    kept.push((ts, p, run > 0));
                    lost_total += run;
                    run = 0;
                }
            }
            // The stored count: the run lost right before each flagged event.
            let mut counts = Vec::new();
            let mut r = 0u64;
            for l in &lost {
                if *l {
                    r += 1;
                } else if r > 0 {
                    counts.push(r);
                    r = 0;
                }
            }
            paginate_counts(layout, kept, counts, stored)
        })
        .collect();
    (pages, ios, lost_total)
}

/// The events of `load` per CPU, each CPU's in time order, and the I/Os. Sectors
/// are picked among `blocks` 4 KiB blocks, skipping those of I/Os in flight if
/// `skip_busy`.
#[allow(clippy::type_complexity)]
fn events(
    issue: &EventFormat,
    complete: &EventFormat,
    load: Load,
    blocks: u64,
    skip_busy: bool,
) -> (Vec<Vec<(u64, Vec<u8>)>>, Vec<Io>) {
    let cpus = load.cpus.max(1) as u64;
    let mut per_cpu: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); cpus as usize];
    let mut ios = Vec::with_capacity(load.ios as usize);
    let dev = load.dev.to_kernel() as u64;
    let mut busy_until: std::collections::HashMap<u64, u64> = Default::default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..load.ios {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ts = 1_000_000_000 + i * load.gap_ns;
        // At least 1 ns: a completion never shares its start's time stamp.
        let lat = (load.depth * load.gap_ns / 2 + x % (load.depth * load.gap_ns).max(1)).max(1);
        // A permutation of the blocks (of 2^21 by default: no sector repeats), moved
        // on past any block still in flight.
        let mut block = i.wrapping_mul(0x9e37_79b1) % blocks;
        while skip_busy && busy_until.get(&block).is_some_and(|&end| end >= ts) {
            block = (block + 1) % blocks;
        }
        busy_until.insert(block, ts + lat);
        let sector = block * 8;
        let pid = 1000 + (i % 4);
        let on = |k: u64| (k % cpus) as usize;
        per_cpu[on(i)].push((
            ts,
            payload(
                issue,
                &[
                    ("dev", dev),
                    ("sector", sector),
                    ("nr_sector", 8),
                    ("bytes", 4096),
                    ("common_pid", pid),
                ],
                &[("rwbs", b"R"), ("comm", b"fio")],
            ),
        ));
        per_cpu[on(x >> 40)].push((
            ts + lat,
            payload(
                complete,
                &[("dev", dev), ("sector", sector), ("nr_sector", 8)],
                &[("rwbs", b"R")],
            ),
        ));
        ios.push(Io {
            sector,
            start: ts,
            end: ts + lat,
        });
    }
    for evs in &mut per_cpu {
        evs.sort_by_key(|e| e.0);
    }
    (per_cpu, ios)
}

/// Packs one CPU's events into pages; an event marked `true` starts a new page
/// flagged with lost events (unknown count).
fn paginate(
    layout: PageLayout,
    evs: impl IntoIterator<Item = (u64, Vec<u8>, bool)>,
) -> Vec<Vec<u8>> {
    paginate_counts(layout, evs.into_iter().collect(), Vec::new(), false)
}

/// [`paginate`], storing `counts[k]` in the `k`-th flagged page when `stored`.
fn paginate_counts(
    layout: PageLayout,
    evs: Vec<(u64, Vec<u8>, bool)>,
    counts: Vec<u64>,
    stored: bool,
) -> Vec<Vec<u8>> {
    let mut counts = counts.into_iter();
    let mut out = Vec::new();
    let mut b: Option<(PageBuilder, Option<Option<u64>>)> = None;
    for (ts, p, after_loss) in evs {
        let fits = !after_loss && b.as_mut().is_some_and(|(b, _)| b.event(ts, &p));
        if !fits {
            if let Some((full, missed)) = b.take() {
                out.push(full.finish(missed));
            }
            let mut nb = PageBuilder::new(layout, ts);
            nb.event(ts, &p);
            let missed = after_loss.then(|| counts.next().filter(|_| stored));
            b = Some((nb, missed));
        }
    }
    if let Some((last, missed)) = b {
        out.push(last.finish(missed));
    }
    out
}

/// Feeds `pages` (one list per CPU) to `pipe` the way the tools drain a live trace:
/// up to `batch` pages from each CPU in turn, each event pushed into `pipe` (and
/// each loss of events a page reports, as [`BlockPipeline::gap`]), then
/// `release(pipe, watermark)` with the oldest timestamp that is safe to release (the
/// newest one read from the CPU that is furthest behind; `u64::MAX` at the end).
pub fn replay<D: Detail>(
    pages: &[Vec<Vec<u8>>],
    layout: &PageLayout,
    batch: usize,
    pipe: &mut BlockPipeline<D>,
    mut release: impl FnMut(&mut BlockPipeline<D>, u64),
) {
    let mut next = vec![0usize; pages.len()];
    let mut at: Vec<CpuPosition> = (0..pages.len() as u32)
        .map(|cpu| CpuPosition { cpu, last_ts: 0 })
        .collect();
    loop {
        let mut any = false;
        let mut watermark = u64::MAX;
        for (cpu, list) in pages.iter().enumerate() {
            for page in list.iter().skip(next[cpu]).take(batch) {
                any = true;
                // The tools' own page walk: losses reach the pipeline in place.
                let _ = perf_tools_ftrace::reader::decode_page_with_gaps(
                    page,
                    layout,
                    &mut at[cpu],
                    pipe,
                    &mut |pipe: &mut BlockPipeline<D>, cpu, ts, payload: &[u8]| {
                        pipe.push(cpu, ts, payload)
                    },
                    &mut |pipe: &mut BlockPipeline<D>, gap| pipe.gap(gap),
                    || u64::MAX,
                );
            }
            next[cpu] = (next[cpu] + batch).min(list.len());
            if next[cpu] < list.len() {
                watermark = watermark.min(at[cpu].last_ts);
            }
        }
        release(pipe, watermark);
        if !any {
            break;
        }
    }
}
