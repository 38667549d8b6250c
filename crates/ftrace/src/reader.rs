//! Reading the binary per-CPU ring buffers (`per_cpu/cpuN/trace_pipe_raw`) of an instance.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::instance::Instance;
use crate::ringbuf::{decode_page, missed_before, Missed, PageError, PageLayout, PageSummary};
use perf_tools_core::signals::Shutdown;

struct CpuReader {
    at: CpuPosition,
    file: File,
    pages: u64,
}

/// How far a CPU's stream has been read: the CPU, and the time stamp of the newest
/// event read from it so far (0: none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuPosition {
    /// The CPU.
    pub cpu: u32,
    /// The newest event's time stamp.
    pub last_ts: u64,
}

/// Events lost from one CPU's buffer: every lost event has a time stamp in
/// `after..=before`. `after` is the newest event read from that CPU before the loss (0
/// if none), `before` the first event read after it (or, for a page that reports a loss
/// and holds no event, its header time stamp, which no lost event is newer than).
///
/// A tool that pairs events (a start with its end) must not pair a start older than
/// `before` with an end newer than `after`: the start's own end, or the next start of
/// the same key, may be among the lost events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The CPU whose buffer lost events.
    pub cpu: u32,
    /// No lost event is older than this.
    pub after: u64,
    /// No lost event is newer than this.
    pub before: u64,
}

/// Decodes one page read from CPU `at.cpu` like [`decode_page`], and reports the events
/// lost before it (the page's missed-events flag) or inside it (a corrupt page: the
/// events after the damage) as a [`Gap`]: `on_gap` runs before the page's first event
/// reaches `on_event`, so a consumer sees the gap in its place in the CPU's stream.
/// `at` is where the CPU's stream stands (updated); `now` gives a time
/// no event of the page is newer than (the trace clock read after the page was read),
/// used only for a corrupt page.
pub fn decode_page_with_gaps<S>(
    page: &[u8],
    layout: &PageLayout,
    at: &mut CpuPosition,
    state: &mut S,
    on_event: &mut impl FnMut(&mut S, u32, u64, &[u8]),
    on_gap: &mut impl FnMut(&mut S, Gap),
    now: impl FnOnce() -> u64,
) -> Result<PageSummary, PageError> {
    let cpu = at.cpu;
    let last_ts = &mut at.last_ts;
    let mut pending = missed_before(page, layout);
    // Events of one CPU come in time order: the last one delivered is the newest.
    let decoded = if pending.is_none() {
        // The common case, on the per-event path: no loss before this page.
        decode_page(page, layout, |ts, p| {
            *last_ts = ts;
            on_event(state, cpu, ts, p)
        })
    } else {
        decode_page(page, layout, |ts, p| {
            if let Some(header_ts) = pending.take() {
                on_gap(
                    state,
                    Gap {
                        cpu,
                        after: *last_ts,
                        before: ts.max(header_ts),
                    },
                );
            }
            *last_ts = ts;
            on_event(state, cpu, ts, p)
        })
    };
    let before = match (&decoded, pending) {
        (Err(_), p) => Some(now().max(p.unwrap_or(0)).max(*last_ts)),
        (Ok(_), Some(header_ts)) => Some(header_ts.max(*last_ts)),
        (Ok(_), None) => None,
    };
    if let Some(before) = before {
        on_gap(
            state,
            Gap {
                cpu,
                after: *last_ts,
                before,
            },
        );
    }
    decoded
}

/// One CPU's progress through a [`RawReader::drain_rounds`].
#[derive(Debug, Clone, Copy, Default)]
struct RoundState {
    /// Nothing more to read from this CPU in this drain.
    done: bool,
    /// Short (partly filled) pages read in a row.
    short_pages: u32,
    /// Pages read in this drain.
    pages: usize,
    /// Timestamp of the newest event read in this drain (0: none yet).
    newest: u64,
    /// Stopped at the page limit with data left: the CPU still holds events older
    /// than `clock`, so its newest event bounds the watermark.
    cut: bool,
}

/// Non-blocking readers of every CPU's raw buffer in one instance.
///
/// Drop the reader before the instance: the kernel refuses to remove an instance whose
/// buffers are open. [`crate::session::Session`] keeps that order.
pub struct RawReader {
    cpus: Vec<CpuReader>,
    layout: PageLayout,
    buf: Vec<u8>,
    corrupt_reported: bool,
    max_pages: usize,
    /// Each CPU's `per_cpu/cpuN/stats`, and their loss counters' sum at open.
    stats_paths: Vec<std::path::PathBuf>,
    lost_at_open: u64,
}

/// What one [`RawReader::drain`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainStats {
    /// Pages read.
    pub pages: u64,
    /// Data events delivered.
    pub events: u64,
    /// Events the kernel reported lost (lower bound when a count was not stored).
    pub missed: u64,
    /// Pages that could not be decoded (each reported once on stderr).
    pub corrupt_pages: u64,
    /// Losses reported to `on_gap` (pages flagged with lost events, corrupt pages).
    pub gaps: u64,
}

/// Outcome of [`RawReader::wait`]: the suite's one [`Shutdown::wait`] result.
pub use perf_tools_core::signals::Wake;

/// The sum of the loss counters in the `stats` files at `paths`.
fn lost_in(paths: &[std::path::PathBuf]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| crate::instance::parse_stats(&t).total())
        .sum()
}

impl RawReader {
    /// Opens `per_cpu/cpuN/trace_pipe_raw` of every CPU of `instance`.
    pub fn open(instance: &Instance) -> Result<RawReader> {
        let layout = instance.page_layout()?;
        let mut cpus = Vec::new();
        for cpu in instance.cpus()? {
            let path = instance
                .dir()
                .join(format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            cpus.push(CpuReader {
                at: CpuPosition { cpu, last_ts: 0 },
                file,
                pages: 0,
            });
        }
        let buffer_kb: usize = instance
            .read("buffer_size_kb")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1 << 16);
        let max_pages = (2 * buffer_kb * 1024 / layout.page_size()).max(64);
        let stats_paths: Vec<_> = cpus
            .iter()
            .map(|c| {
                instance
                    .dir()
                    .join(format!("per_cpu/cpu{}/stats", c.at.cpu))
            })
            .collect();
        let lost_at_open = lost_in(&stats_paths);
        Ok(RawReader {
            stats_paths,
            lost_at_open,
            max_pages,
            cpus,
            layout,
            buf: vec![0u8; layout.page_size()],
            corrupt_reported: false,
        })
    }

    /// Events the kernel lost in these buffers since they were opened: the exact sum of
    /// every CPU's loss counters (`overrun`, `commit overrun`, `dropped events` in
    /// `per_cpu/cpuN/stats`). The pages' own missed-events flags only give a lower
    /// bound (at least one per page when the count did not fit in the page).
    pub fn lost_events(&self) -> u64 {
        lost_in(&self.stats_paths).saturating_sub(self.lost_at_open)
    }

    /// The page geometry in use.
    pub fn layout(&self) -> PageLayout {
        self.layout
    }

    /// Waits until a buffer reaches the instance's `buffer_percent` watermark, a shutdown
    /// signal arrives, standard output's reader goes away, or `timeout` passes.
    pub fn wait(&self, shutdown: &Shutdown, timeout: Duration) -> Wake {
        let fds: Vec<_> = self.cpus.iter().map(|c| c.file.as_raw_fd()).collect();
        shutdown.wait(&fds, timeout)
    }

    /// Reads every page currently available on every CPU and calls
    /// `on_event(cpu, timestamp, payload)` for each event, in time order per CPU.
    ///
    /// A CPU is drained until the kernel has nothing more or hands back a partly filled
    /// page (the reader caught up with the writer). For tools that pair nothing: lost
    /// events are only counted (see [`RawReader::drain_rounds`] for their positions).
    pub fn drain(&mut self, mut on_event: impl FnMut(u32, u64, &[u8])) -> DrainStats {
        self.drain_rounds(
            u64::MAX,
            &mut (),
            |_, cpu, ts, p| on_event(cpu, ts, p),
            |_, _| {},
            |_, _| {},
        )
    }

    /// Like [`RawReader::drain`], but reads the CPUs round-robin, one page each per
    /// round, and after every round calls `on_round(state, watermark)`: every event with a
    /// timestamp `<= watermark` has been delivered, on every CPU. `clock` is a clock
    /// reading taken before the drain (events up to it are in the buffers by then); the
    /// watermark never passes it. Releasing merged events at each watermark keeps the
    /// merge queues to about a page per CPU instead of a whole buffer. Every loss of
    /// events (a page flagged with missed events, a corrupt page) is reported to
    /// `on_gap` in its place in that CPU's stream, before the events that follow it (see
    /// [`Gap`]); a tool that pairs events must stop pairing across it. The callbacks get
    /// `state` (e.g. the tool's merge-and-pair pipeline) to work on.
    pub fn drain_rounds<S>(
        &mut self,
        clock: u64,
        state: &mut S,
        mut on_event: impl FnMut(&mut S, u32, u64, &[u8]),
        mut on_gap: impl FnMut(&mut S, Gap),
        mut on_round: impl FnMut(&mut S, u64),
    ) -> DrainStats {
        let mut stats = DrainStats::default();
        let caught_up = self.layout.data_size.saturating_sub(512);
        let mut cpus = vec![RoundState::default(); self.cpus.len()];
        loop {
            let mut reading = false;
            for (c, st) in self.cpus.iter_mut().zip(cpus.iter_mut()) {
                if st.done {
                    continue;
                }
                // Bound the work per call (twice the buffer) so a flood on one CPU
                // cannot keep the reader here forever; everything buffered at the
                // start is read.
                if st.pages >= self.max_pages {
                    st.done = true;
                    st.cut = true;
                    continue;
                }
                // read() copies a whole sub-buffer (swapped out of the ring when full).
                // Mapping the buffer instead (mmap of trace_pipe_raw, Linux 6.10+) was
                // measured slower under fio load on 6.18 (0.16-0.20 vs 0.10 us of CPU
                // per I/O for iolatency): its GET_READER ioctl consumes the data it hands
                // out event by event in the kernel, which costs more than the copy.
                let n = match c.file.read(&mut self.buf) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    // EAGAIN: nothing more; ENODEV: CPU went offline; ENOMEM/EBUSY:
                    // transient. Try again at the next drain.
                    Err(_) => 0,
                };
                if n == 0 {
                    st.done = true;
                    continue;
                }
                reading = true;
                st.pages += 1;
                c.pages += 1;
                stats.pages += 1;
                let cpu = c.at.cpu;
                let mut gaps = 0;
                let decoded = decode_page_with_gaps(
                    &self.buf[..n],
                    &self.layout,
                    &mut c.at,
                    state,
                    &mut on_event,
                    &mut |state: &mut S, gap| {
                        gaps += 1;
                        on_gap(state, gap)
                    },
                    perf_tools_core::clock::monotonic_ns,
                );
                stats.gaps += gaps;
                st.newest = c.at.last_ts;
                if st.newest > clock {
                    // Written since the drain began: nothing of it can be released
                    // before the next drain (the watermark never passes `clock`), so
                    // reading on would only fill the merge. Under sustained overload
                    // that was up to twice the buffer held in decoded events (tens of
                    // MiB); the next drain, with a newer clock, goes on from here.
                    st.done = true;
                }
                match decoded {
                    Ok(s) => {
                        stats.events += s.events as u64;
                        if s.missed != Missed::None {
                            stats.missed += s.missed.at_least();
                        }
                        // A short page means the reader caught up with the writer,
                        // except the first page of a drain, which may be the tail of a
                        // page partly consumed by the previous drain while full pages
                        // wait behind it: stop at the second short page in a row.
                        if s.data_len < caught_up {
                            st.short_pages += 1;
                            if st.short_pages >= 2 {
                                st.done = true;
                            }
                        } else {
                            st.short_pages = 0;
                        }
                    }
                    Err(e) => {
                        stats.corrupt_pages += 1;
                        if !self.corrupt_reported {
                            self.corrupt_reported = true;
                            eprintln!("warning: CPU {cpu} page {}: {e}; skipping it", c.pages);
                        }
                    }
                }
            }
            // A CPU still being read (or cut off at the page limit) may hold events just
            // after its newest one so far; one that is done holds nothing older than
            // `clock`.
            let watermark = cpus
                .iter()
                .filter(|s| !s.done || s.cut)
                .map(|s| s.newest.saturating_sub(1))
                .fold(clock, u64::min);
            on_round(state, watermark);
            if !reading {
                return stats;
            }
        }
    }
}
