//! Reading the binary per-CPU ring buffers (`per_cpu/cpuN/trace_pipe_raw`) of an instance.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::instance::Instance;
use crate::ringbuf::{decode_page, Missed, PageLayout};
use crate::signals::Shutdown;

struct CpuReader {
    cpu: u32,
    file: File,
    pages: u64,
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
}

/// Outcome of [`RawReader::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A buffer has data (or the timeout passed): time to drain.
    Ready,
    /// A shutdown signal arrived.
    Shutdown,
    /// The reader of our standard output went away (`iosnoop | head` after head exited):
    /// the run should end now, even if no further output would have revealed it.
    OutputClosed,
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
                cpu,
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
        Ok(RawReader {
            max_pages,
            cpus,
            layout,
            buf: vec![0u8; layout.page_size()],
            corrupt_reported: false,
        })
    }

    /// The page geometry in use.
    pub fn layout(&self) -> PageLayout {
        self.layout
    }

    /// Waits until a buffer reaches the instance's `buffer_percent` watermark, a shutdown
    /// signal arrives, standard output's reader goes away, or `timeout` passes.
    pub fn wait(&self, shutdown: &Shutdown, timeout: Duration) -> Wake {
        if shutdown.requested() {
            return Wake::Shutdown;
        }
        let mut fds: Vec<libc::pollfd> = self
            .cpus
            .iter()
            .map(|c| libc::pollfd {
                fd: c.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(libc::pollfd {
            fd: shutdown.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // With no events requested, poll reports only POLLERR/POLLHUP on stdout: for a
        // pipe, POLLERR means every reader has closed it.
        fds.push(crate::output::stdout_pollfd());
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is a valid, initialised pollfd array of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        shutdown.drain();
        let out = fds[fds.len() - 1].revents;
        if shutdown.requested() {
            Wake::Shutdown
        } else if crate::output::output_closed(out) {
            Wake::OutputClosed
        } else {
            Wake::Ready
        }
    }

    /// Reads every page currently available on every CPU and calls
    /// `on_event(cpu, timestamp, payload)` for each event, in time order per CPU.
    ///
    /// A CPU is drained until the kernel has nothing more or hands back a partly filled
    /// page (the reader caught up with the writer).
    pub fn drain(&mut self, mut on_event: impl FnMut(u32, u64, &[u8])) -> DrainStats {
        self.drain_rounds(
            u64::MAX,
            &mut (),
            |_, cpu, ts, p| on_event(cpu, ts, p),
            |_, _| {},
        )
    }

    /// Like [`RawReader::drain`], but reads the CPUs round-robin, one page each per
    /// round, and after every round calls `on_round(state, watermark)`: every event with a
    /// timestamp `<= watermark` has been delivered, on every CPU. `clock` is a clock
    /// reading taken before the drain (events up to it are in the buffers by then); the
    /// watermark never passes it. Releasing merged events at each watermark keeps the
    /// merge queues to about a page per CPU instead of a whole buffer. Both callbacks
    /// get `state` (e.g. the tool's merge-and-pair pipeline) to work on.
    pub fn drain_rounds<S>(
        &mut self,
        clock: u64,
        state: &mut S,
        mut on_event: impl FnMut(&mut S, u32, u64, &[u8]),
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
                let cpu = c.cpu;
                let decoded = decode_page(&self.buf[..n], &self.layout, |ts, p| {
                    st.newest = ts;
                    on_event(state, cpu, ts, p)
                });
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
            // A CPU still being read may hold events just after its newest one so far;
            // one that is done holds nothing older than `clock`.
            let watermark = cpus
                .iter()
                .filter(|s| !s.done)
                .map(|s| s.newest.saturating_sub(1))
                .fold(clock, u64::min);
            on_round(state, watermark);
            if !reading {
                return stats;
            }
        }
    }
}
