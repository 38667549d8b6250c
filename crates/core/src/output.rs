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
        // Say what failed (a full disk, a file past `ulimit -f`); the kind is kept, so
        // a closed pipe is still recognised (is_broken_pipe).
        r.map_err(|e| io::Error::new(e.kind(), format!("writing to standard output: {e}")))
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

/// A `pollfd` for standard output that asks for no events: `poll` then reports only
/// POLLERR/POLLHUP on it, and for a pipe POLLERR means every reader has closed it
/// (`tool | head` after head exited). Add it to a tool's `poll` set and test the result
/// with [`output_closed`], so a tool that is waiting notices at once, not at its next
/// write.
pub fn stdout_pollfd() -> libc::pollfd {
    libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    }
}

/// True if `revents` of a polled [`stdout_pollfd`] say that the reader of our output
/// pipe went away (POLLERR on a pipe; a terminal or file never ends a run this way).
pub fn output_closed(revents: libc::c_short) -> bool {
    reader_gone(1, revents)
}

/// Polls standard output without waiting: true if its reader went away.
pub fn stdout_closed() -> bool {
    let mut p = stdout_pollfd();
    // SAFETY: p is a valid pollfd array of length 1.
    unsafe { libc::poll(&mut p, 1, 0) };
    output_closed(p.revents)
}

/// True if `revents` (from polling `fd` for no events) mean that `fd` is a pipe whose
/// every reader has closed it.
fn reader_gone(fd: libc::c_int, revents: libc::c_short) -> bool {
    revents & libc::POLLERR != 0 && is_pipe(fd)
}

fn is_pipe(fd: libc::c_int) -> bool {
    // SAFETY: libc::stat is plain data, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into a valid stat buffer we own.
    (unsafe { libc::fstat(fd, &mut st) }) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
}

/// Whether to colour output: only on a terminal and when `NO_COLOR` is unset or empty.
pub fn use_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    // SAFETY: isatty has no preconditions.
    !no_color && unsafe { libc::isatty(1) } == 1
}

/// Appends `bytes`, a name that came from user space (a process name, a file name, a
/// probe's string), to `out` so that it cannot break the row it is printed in: the same
/// rule in every tool, documented in each man page's FIELDS section.
///
/// * `\` becomes `\\`, newline `\n`, tab `\t`, carriage return `\r`, escape `\e`;
/// * every other control character (C0, DEL, and the C1 range U+0080..U+009F, which some
///   terminals obey as commands) and every byte that is not part of valid UTF-8 becomes
///   `\xNN`, one per byte;
/// * everything else (printable ASCII including spaces, other valid UTF-8) is copied.
///
/// The result is printable, has no line breaks, and the original bytes can be recovered
/// from it. Printable ASCII, the common case, is copied in one step.
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
    {
        out.extend_from_slice(bytes);
        return;
    }
    let hex = |out: &mut Vec<u8>, b: u8| {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'\\',
            b'x',
            DIGITS[usize::from(b >> 4)],
            DIGITS[usize::from(b & 15)],
        ]);
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\x1b' => out.extend_from_slice(b"\\e"),
                c if c.is_control() => {
                    let mut utf8 = [0u8; 4];
                    for &b in c.encode_utf8(&mut utf8).as_bytes() {
                        hex(out, b);
                    }
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            hex(out, b);
        }
    }
}

/// [`escape_into`] as a new string, for names printed with `format!`/`write!`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    escape_into(&mut out, bytes);
    // escape_into writes only valid UTF-8: copied valid characters and ASCII escapes.
    String::from_utf8(out).unwrap_or_default()
}

/// Applies [`escape_into`] to a text stream from the kernel (a `trace_pipe` of a tool that
/// shows the kernel's own text, such as funcgraph), line by line: the newlines that end
/// the kernel's lines are kept, everything else the rule escapes (a terminal escape or
/// control character in a process name) is spelled out. A partial last line waits for
/// the rest, so a character split across two reads is not mistaken for invalid bytes.
///
/// The kernel prints process names raw, so a newline inside one still splits its line:
/// only tools that decode the binary records (iosnoop, opensnoop, kprobe) can escape it.
#[derive(Debug, Default)]
pub struct LineEscaper {
    carry: Vec<u8>,
}

impl LineEscaper {
    /// Escapes the complete lines of `carry + data` into `out`, keeping a partial last
    /// line for the next call.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.carry.extend_from_slice(data);
        let Some(end) = self.carry.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        for line in self.carry[..end].split(|&b| b == b'\n') {
            escape_into(out, line);
            out.push(b'\n');
        }
        self.carry.drain(..=end);
    }

    /// Escapes what is left (a last line without a newline) into `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        escape_into(out, &self.carry);
        self.carry.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_whose_reader_closed_is_noticed_by_poll() {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let poll_writer = || {
            let mut p = stdout_pollfd();
            p.fd = fds[1];
            // SAFETY: p is a valid pollfd array of length 1.
            unsafe { libc::poll(&mut p, 1, 0) };
            reader_gone(fds[1], p.revents)
        };
        assert!(!poll_writer(), "reader still open");
        // SAFETY: closing the read end we own.
        unsafe { libc::close(fds[0]) };
        // A child another test forks may hold the read end until it execs: wait a bit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !poll_writer() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(poll_writer(), "reader closed: POLLERR");
        // SAFETY: closing the write end we own.
        unsafe { libc::close(fds[1]) };
        // Not a pipe (a regular file): never "closed" this way.
        assert!(!reader_gone(-1, libc::POLLERR));
    }

    #[test]
    fn printable_names_are_copied_unchanged() {
        assert_eq!(escape(b"kworker/u4:1-ev"), "kworker/u4:1-ev");
        assert_eq!(escape(b"my file.txt"), "my file.txt");
        assert_eq!(
            escape("caf\u{e9} \u{65e5}\u{672c}".as_bytes()),
            "caf\u{e9} \u{65e5}\u{672c}"
        );
        assert_eq!(escape(b""), "");
    }

    #[test]
    fn a_newline_in_a_name_cannot_start_a_row() {
        let e = escape(b"ev\nfake 1 W");
        assert_eq!(e, "ev\\nfake 1 W");
        assert!(!e.contains('\n'));
        assert_eq!(escape(b"x\nfake 1 3 etc-shadow"), "x\\nfake 1 3 etc-shadow");
    }

    #[test]
    fn control_characters_and_terminal_escapes_are_spelled_out() {
        assert_eq!(escape(b"a\tb\rc"), "a\\tb\\rc");
        assert_eq!(escape(b"\x1b[2J\x07"), "\\e[2J\\x07");
        assert_eq!(escape(b"\x7f\x00"), "\\x7f\\x00");
        // U+009B (CSI in the C1 range) as UTF-8: c2 9b.
        assert_eq!(escape("a\u{9b}b".as_bytes()), "a\\xc2\\x9bb");
    }

    #[test]
    fn invalid_utf8_is_shown_as_hex_bytes_and_backslash_is_doubled() {
        assert_eq!(escape(b"a\xffb\xc3"), "a\\xffb\\xc3");
        assert_eq!(escape(b"C:\\x41"), "C:\\\\x41");
    }

    #[test]
    fn line_escaper_keeps_line_ends_and_joins_split_characters() {
        let mut e = LineEscaper::default();
        let mut out = Vec::new();
        let text = "  0)   caf\u{e9}-1 |  1.0 us | f();\n bash\x1b[2J-2 | g();\n".as_bytes();
        // Split inside the two-byte é.
        let cut = text.iter().position(|&b| b == 0xc3).unwrap() + 1;
        e.push(&text[..cut], &mut out);
        assert!(out.is_empty(), "a partial line waits");
        e.push(&text[cut..], &mut out);
        e.push(b"tail", &mut out);
        e.finish(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  0)   caf\u{e9}-1 |  1.0 us | f();\n bash\\e[2J-2 | g();\ntail"
        );
    }

    #[test]
    fn every_escaped_name_is_printable_single_line_text() {
        let all: Vec<u8> = (0..=255u8).collect();
        let e = escape(&all);
        assert!(e.chars().all(|c| !c.is_control()), "{e:?}");
    }
}
