//! One trace entry as the kernel rendered it in `trace_pipe` (read whole, with its
//! bounds from the kernel: [`perf_tools_ftrace::text_pipe::TextPipe::read_entry`]),
//! made safe to print: the parts that can hold text from user space are escaped, so a
//! task name or a string field cannot start a new line or reach the terminal as a
//! control sequence, while everything else stays exactly as the kernel printed it.
//!
//! An entry is, as the kernel prints it with its default context columns:
//!
//! ```text
//! [CPU:1 [LOST 12 EVENTS]\n]      the kernel's loss marker, when events were lost
//! <comm, right-aligned in 16>-<pid> [<cpu>] <flags> <secs>.<usecs>: <body>\n
//! ```
//!
//! The comm field is the first 16 bytes (a task name has at most 15). Between it and
//! the `: ` that ends the timestamp the kernel prints only numbers, spaces, brackets and
//! flag letters. The body is the event's `print fmt` output on one line, or for a
//! stack entry `<stack trace>` followed by ` => symbol` lines.

use perf_tools_core::output::escape_into;

/// What an entry was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kind {
    /// An event line.
    pub event: bool,
    /// A stack entry (`<stack trace>` and its lines).
    pub stack: bool,
    /// Events the kernel reported lost before this entry (`[LOST N EVENTS]`; a marker
    /// without a count counts 1).
    pub lost: u64,
    /// The loss marker was present.
    pub lost_marker: bool,
    /// The entry did not have the expected layout: printed whole on one escaped line.
    pub odd: bool,
}

/// Width of the comm field (`%16s`).
const COMM_WIDTH: usize = 16;

/// Splits off a leading `CPU:N [LOST M EVENTS]\n` (or `[LOST EVENTS]`) marker: returns
/// the marker line (with its newline), the count, and the rest.
fn lost_marker(chunk: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    let rest = chunk.strip_prefix(b"CPU:")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let after = rest[digits..].strip_prefix(b" [LOST ")?;
    let (count, after) = if let Some(a) = after.strip_prefix(b"EVENTS]\n") {
        (1, a)
    } else {
        let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
        let count = std::str::from_utf8(&after[..n])
            .ok()
            .and_then(|d| d.parse::<u64>().ok())?;
        (count, after[n..].strip_prefix(b" EVENTS]\n")?)
    };
    let line_len = chunk.len() - after.len();
    Some((&chunk[..line_len], count, after))
}

/// Appends the safe rendering of one entry (as [`TextPipe::read_entry`] returned it)
/// to `out`, and says what it was.
///
/// [`TextPipe::read_entry`]: perf_tools_ftrace::text_pipe::TextPipe::read_entry
pub fn render(chunk: &[u8], out: &mut Vec<u8>) -> Kind {
    let mut kind = Kind::default();
    let mut entry = chunk;
    // The kernel puts its marker at the very start; a task name cannot be there, since
    // the comm field is right-aligned in 16 columns and a name has at most 15 bytes.
    if let Some((line, n, rest)) = lost_marker(entry) {
        out.extend_from_slice(line);
        kind.lost = n;
        kind.lost_marker = true;
        entry = rest;
    }
    if entry.is_empty() {
        return kind;
    }
    let entry = entry.strip_suffix(b"\n").unwrap_or(entry);
    let context = (entry.len() > COMM_WIDTH && entry[COMM_WIDTH] == b'-')
        .then(|| {
            let after = &entry[COMM_WIDTH..];
            let end = after.windows(2).position(|w| w == b": ")? + 2;
            // Only what the kernel prints there: digits, spaces, brackets, flag letters.
            after[..end]
                .iter()
                .all(|b| b.is_ascii_graphic() || *b == b' ')
                .then_some(COMM_WIDTH + end)
        })
        .flatten();
    let Some(body_at) = context else {
        kind.odd = true;
        escape_into(out, entry);
        out.push(b'\n');
        return kind;
    };
    escape_into(out, &entry[..COMM_WIDTH]);
    out.extend_from_slice(&entry[COMM_WIDTH..body_at]);
    let body = &entry[body_at..];
    let stack_head = [&b"<stack trace>\n"[..], b"<user stack trace>\n"]
        .into_iter()
        .find(|h| body.starts_with(h));
    match stack_head {
        Some(head) => {
            // Kernel symbols, one per line: the kernel's newlines are kept.
            kind.stack = true;
            out.extend_from_slice(head);
            for line in body[head.len()..].split(|&b| b == b'\n') {
                escape_into(out, line);
                out.push(b'\n');
            }
        }
        None => {
            kind.event = true;
            escape_into(out, body);
            out.push(b'\n');
        }
    }
    kind
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(chunk: &[u8]) -> (String, Kind) {
        let mut out = Vec::new();
        let k = render(chunk, &mut out);
        (String::from_utf8(out).unwrap(), k)
    }

    #[test]
    fn a_plain_event_line_is_unchanged() {
        let line = "              dd-2412    [001] ..... 26248.299878: block_rq_issue: 7,3 R 4096 () 2048 + 8 none,0,0 [dd]\n";
        let (s, k) = r(line.as_bytes());
        assert_eq!(s, line);
        assert!(k.event && !k.stack && !k.odd && k.lost == 0);
    }

    #[test]
    fn a_hostile_task_name_or_string_field_stays_on_its_line() {
        // comm "  x\n  fake-1 [0" (15 bytes) right-aligned in 16, and a body whose string
        // field holds a newline and a terminal escape.
        let mut chunk = Vec::new();
        chunk.extend_from_slice(b"   x\n  fake-1 [0");
        assert_eq!(chunk.len(), 16);
        chunk.extend_from_slice(b"-4242    [000] ..... 1.000001: ev: name=a\n    dd-1 [001] .... 2.0: ev: forged \x1b[2J\n");
        let (s, k) = r(&chunk);
        assert_eq!(s.lines().count(), 1, "{s:?}");
        assert_eq!(
            s,
            "   x\\n  fake-1 [0-4242    [000] ..... 1.000001: ev: name=a\\n    dd-1 [001] .... 2.0: ev: forged \\e[2J\n"
        );
        assert!(k.event && !k.odd);
    }

    #[test]
    fn stack_entries_keep_their_lines() {
        let chunk = b"           <...>-77      [000] ..... 5.000002: <stack trace>\n => ftrace_syscall_enter\n => do_syscall_64\n";
        let (s, k) = r(chunk);
        assert_eq!(s, String::from_utf8(chunk.to_vec()).unwrap());
        assert!(k.stack && !k.event);
        // A task name cannot add a stack line: its bytes are escaped.
        let chunk = b"   a\n => fake_fn-77      [000] ..... 5.000002: <stack trace>\n => real\n";
        let (s, _) = r(chunk);
        assert_eq!(
            s.lines().filter(|l| l.starts_with(" => ")).count(),
            1,
            "{s}"
        );
    }

    #[test]
    fn loss_markers_are_kept_and_counted() {
        let chunk = b"CPU:1 [LOST 12 EVENTS]\n              dd-1       [001] ..... 1.000000: sys_getppid()\n";
        let (s, k) = r(chunk);
        assert_eq!(s, String::from_utf8(chunk.to_vec()).unwrap());
        assert_eq!((k.lost, k.lost_marker, k.event), (12, true, true));
        let (_, k) = r(b"CPU:0 [LOST EVENTS]\n              dd-1       [001] ..... 1.000000: x\n");
        assert_eq!(k.lost, 1);
        // Text that only looks like a marker further in is not one.
        let chunk = b" CPU:0 [LOST 99-5 [000] ..... 1.000000: x\n";
        let (_, k) = r(chunk);
        assert_eq!((k.lost, k.lost_marker), (0, false));
    }

    #[test]
    fn an_entry_of_another_layout_is_one_escaped_line() {
        let (s, k) = r(b"short\nline\n");
        assert_eq!(s, "short\\nline\n");
        assert!(k.odd && !k.event);
    }
}
