//! Output held back until the end of a run (the tools' buffered duration mode) in
//! bounded memory: past a few MiB, held output moves to an unlinked temporary file,
//! copied to standard output at the end. A long run under heavy load once kept every
//! formatted row in memory (950 MB after 90 s) and died when an allocation failed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::FromRawFd;

use crate::output::Output;

/// Bytes of held output kept in memory before it moves to the temporary file.
pub const MEMORY_LIMIT: usize = 4 << 20;

/// Output held until [`Held::finish`].
#[derive(Debug, Default)]
pub struct Held {
    file: Option<File>,
    /// Bytes moved to the file so far.
    pub spilled: u64,
}

/// An unlinked temporary file in `$TMPDIR` (default `/tmp`), or, where that directory
/// does not support unnamed files, an anonymous memory file.
fn temp_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TMPDIR holds a NUL byte"))?;
    // SAFETY: c is a valid NUL-terminated path; the flags and mode are plain values.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd >= 0 {
        // SAFETY: fd is a new descriptor we own.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
    let tmp_err = io::Error::last_os_error();
    // SAFETY: the name is a valid NUL-terminated string.
    let fd = unsafe { libc::memfd_create(c"perf-tools-held-output".as_ptr(), libc::MFD_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: fd is a new descriptor we own.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
    Err(io::Error::new(
        tmp_err.kind(),
        format!(
            "cannot create a temporary file in {} for the output held until the end ({tmp_err}); set TMPDIR to a writable directory",
            dir.display()
        ),
    ))
}

impl Held {
    /// Nothing held yet.
    pub fn new() -> Held {
        Held::default()
    }

    /// Moves `buf` to the temporary file once it holds [`MEMORY_LIMIT`] bytes or more
    /// (then empties it and gives back memory beyond the limit).
    pub fn absorb(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if buf.len() < MEMORY_LIMIT {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(temp_file()?),
        };
        file.write_all(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing held output to a temporary file: {e}"),
            )
        })?;
        self.spilled += buf.len() as u64;
        buf.clear();
        buf.shrink_to(MEMORY_LIMIT + (1 << 20));
        Ok(())
    }

    /// Writes everything held, in order, to standard output (`out`), then what `out`
    /// holds in memory, and forgets the temporary file.
    pub fn finish(&mut self, out: &mut Output) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            let tail = std::mem::take(&mut out.buf);
            file.seek(SeekFrom::Start(0))?;
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                let n = match file.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                out.buf.extend_from_slice(&chunk[..n]);
                out.flush()?;
            }
            out.buf = tail;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_past_the_limit_and_keeps_memory_bounded() {
        let mut h = Held::new();
        let mut buf = Vec::new();
        let mut want = Vec::new();
        for i in 0..200_000u32 {
            let row = format!("row {i} {}\n", "x".repeat((i % 50) as usize));
            buf.extend_from_slice(row.as_bytes());
            want.extend_from_slice(row.as_bytes());
            h.absorb(&mut buf).unwrap();
            assert!(buf.capacity() <= 2 * MEMORY_LIMIT + (1 << 20));
        }
        assert!(h.spilled > 0);
        // Read it back the way finish does, into a buffer instead of stdout.
        let mut file = h.file.take().unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut got = Vec::new();
        file.read_to_end(&mut got).unwrap();
        got.extend_from_slice(&buf);
        assert!(got == want, "held output differs from what was written");
    }
}
