//! Batched output for pipes: rows accumulate in memory and reach stdout in one write per
//! batch read from the kernel, never a write per line and never later than the batch.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

/// A buffered writer on file descriptor 1 that only writes when flushed.
pub struct Output {
    file: ManuallyDrop<File>,
    /// Pending output. Tools append rows with `write!`/`extend_from_slice`.
    pub buf: Vec<u8>,
}

impl Output {
    /// Wraps standard output.
    pub fn stdout() -> Output {
        // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop keeps us from
        // closing it.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
        Output {
            file,
            buf: Vec::with_capacity(1 << 16),
        }
    }

    /// Writes everything pending. An `EPIPE` error means the reader went away
    /// (`iosnoop | head`); callers end the run quietly then (see [`is_broken_pipe`]).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        r
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// True if the error (anywhere in its chain) is a broken pipe on output.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Whether to colour output: only on a terminal and when `NO_COLOR` is unset or empty.
pub fn use_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    // SAFETY: isatty has no preconditions.
    !no_color && unsafe { libc::isatty(1) } == 1
}
