//! Streaming the kernel's text rendering of a trace (`trace_pipe`), for what has no binary
//! decoder: the function_graph tracer, and probe records a tool cannot decode.
//!
//! [`TextPipe::stream`] is the loop: wait (the suite's one [`Shutdown::wait`]), read
//! what the pipe holds, hand it on; at the end, turn tracing off and read what is left.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::session::StreamEnd;
use perf_tools_core::signals::{Shutdown, Wake};

/// Most bytes one read turn takes from the pipe before handing them on.
const TURN_CAP: usize = 1 << 20;

/// A non-blocking reader of one `trace_pipe` (of an instance, or the top level).
#[derive(Debug)]
pub struct TextPipe {
    file: File,
    path: PathBuf,
}

impl TextPipe {
    /// Opens `dir/trace_pipe` without blocking.
    pub fn open(dir: &Path) -> Result<TextPipe> {
        let path = dir.join("trace_pipe");
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(TextPipe { file, path })
    }

    /// Appends what the pipe holds now (up to about `cap` bytes) to `out`; returns the
    /// number of bytes read.
    pub fn read_available(&mut self, out: &mut Vec<u8>, cap: usize) -> Result<usize> {
        let mut chunk = [0u8; 1 << 16];
        let start = out.len();
        while out.len() - start < cap {
            match self.file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    break
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", self.path.display()))
                }
            }
        }
        Ok(out.len() - start)
    }

    /// Reads exactly one entry of the trace, as the kernel rendered it, and appends it
    /// to `out`; returns false (appending nothing) when the pipe holds nothing now.
    ///
    /// A read of `trace_pipe` renders entries into the reader's page-sized buffer until
    /// it holds at least as many bytes as were asked for, then hands out the rest of
    /// that buffer on the next reads before rendering anything new. So a one-byte read
    /// renders exactly one entry (with the `CPU:N [LOST M EVENTS]` line before it, if
    /// events were lost there) and the next read returns the rest of it: the entry's
    /// bounds come from the kernel, not from newlines, which text from user space (a
    /// task name, a string field) may contain. Two reads per entry: for tools that
    /// must show the kernel's own text for any event, at event rates where that is
    /// affordable.
    pub fn read_entry(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let mut first = [0u8; 1];
        match self.file.read(&mut first) {
            Ok(0) => return Ok(false),
            Ok(_) => out.push(first[0]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return Ok(false)
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
        // The rest of the entry: at most a page, returned by one read.
        let mut rest = [0u8; 4096];
        loop {
            match self.file.read(&mut rest) {
                Ok(n) => {
                    out.extend_from_slice(&rest[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", self.path.display()))
                }
            }
        }
    }

    /// The pipe's file descriptor, to wait on it.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// The read loop: waits for text (at most `poll`), hands each read to
    /// `on_text(text, last)` until a shutdown signal arrives or standard output's reader
    /// goes away. At a shutdown it calls `stop_tracing`, then hands on everything still
    /// in the pipe; the final call has `last` set (its text may be empty).
    pub fn stream(
        &mut self,
        shutdown: &Shutdown,
        poll: Duration,
        mut stop_tracing: impl FnMut() -> Result<()>,
        mut on_text: impl FnMut(&[u8], bool) -> Result<()>,
    ) -> Result<StreamEnd> {
        let mut raw = Vec::new();
        loop {
            let wake = shutdown.wait(&[self.file.as_raw_fd()], poll);
            if wake == Wake::OutputClosed {
                return Ok(StreamEnd::OutputClosed);
            }
            let finishing = wake == Wake::Shutdown;
            if finishing {
                stop_tracing()?;
            }
            raw.clear();
            self.read_available(&mut raw, TURN_CAP)?;
            if !finishing {
                on_text(&raw, false)?;
                continue;
            }
            // Whatever was still buffered when tracing stopped.
            loop {
                let mut more = Vec::new();
                if self.read_available(&mut more, TURN_CAP)? == 0 {
                    on_text(&raw, true)?;
                    return Ok(StreamEnd::Finished);
                }
                on_text(&raw, false)?;
                raw = more;
            }
        }
    }
}

/// The kernel's `[LOST N EVENTS]` markers in `text`: how many markers, and the sum of
/// their counts.
pub fn lost_markers(text: &[u8]) -> (u64, u64) {
    const MARK: &[u8] = b"[LOST ";
    let (mut markers, mut events) = (0u64, 0u64);
    let mut rest = text;
    while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
        markers += 1;
        rest = &rest[at + MARK.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Some(n) = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
        {
            events = events.saturating_add(n);
        }
    }
    (markers, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_markers_are_counted_and_summed() {
        assert_eq!(
            lost_markers(b" 0)   |  f() {\nCPU:1 [LOST 12 EVENTS]\nCPU:0 [LOST 3 EVENTS]\n"),
            (2, 15)
        );
        assert_eq!(lost_markers(b"no loss here\n"), (0, 0));
        assert_eq!(lost_markers(b"[LOST x EVENTS]"), (1, 0));
    }

    #[test]
    fn reads_what_a_pipe_holds_without_blocking() {
        let dir = std::env::temp_dir().join(format!("ptrs-textpipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("trace_pipe");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut p = TextPipe::open(&dir).unwrap();
        let mut w = OpenOptions::new().write(true).open(&fifo).unwrap();
        std::io::Write::write_all(&mut w, b"line 1\nline").unwrap();
        let mut out = Vec::new();
        assert_eq!(p.read_available(&mut out, 1 << 20).unwrap(), 11);
        assert_eq!(p.read_available(&mut out, 1 << 20).unwrap(), 0);
        assert_eq!(out, b"line 1\nline");
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
