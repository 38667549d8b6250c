//! Formatting: the banner, the header and one row, as the original prints them.

use std::io::Write;

use perf_tools_core::output::escape_into;

use crate::Args;

/// SRC (with `-v`) of a path read from `/proc/TID/fd/FD` after the open (tracepoint-only fallback).
pub const SRC_PROC: &str = "proc";
/// SRC of a successful open whose fd was closed and reused before its path could be read
/// (fallback; FILE is [`UNKNOWN`]).
pub const SRC_REUSED: &str = "reused";
/// SRC of a successful open whose fd was already closed (or its process gone) when its
/// path was to be read (fallback; FILE is [`UNKNOWN`]).
pub const SRC_CLOSED: &str = "closed";
/// SRC of a failed open in the fallback: the kernel recorded only the name's address
/// (FILE is [`UNKNOWN`]).
pub const SRC_FAILED: &str = "failed";

/// FILE when a name could not be known (one token; `-v` shows why in SRC).
pub const UNKNOWN: &str = "[unknown]";

/// The startup line, as the original prints it.
pub fn banner(args: &Args) -> String {
    let mut ftext = if let Some(p) = args.pid {
        format!(" issued by PID {p}")
    } else if let Some(t) = args.tid {
        format!(" issued by TID {t}")
    } else if let Some(n) = &args.name {
        format!(" issued by process name \"{n}\"")
    } else {
        String::new()
    };
    if let Some(f) = &args.filename {
        ftext.push_str(&format!(" for filenames containing \"{f}\""));
    }
    match args.duration {
        Some(d) => format!("Tracing open()s{ftext} for {d} seconds (buffered)..."),
        None => format!("Tracing open()s{ftext}. Ctrl-C to end."),
    }
}

/// The column header line (`src`: the SRC column of `-v`).
pub fn header(time: bool, src: bool) -> String {
    header_with(time, src, "")
}

/// [`header`] with extra columns (`--show-cgroup`, `--show-nspid`: their header text,
/// each followed by a space) just before FILE.
pub fn header_with(time: bool, src: bool, extra: &str) -> String {
    let mut s = String::new();
    if time {
        s.push_str(&format!("{:<16} ", "TIMEs"));
    }
    s.push_str(&format!("{:<16} {:<6} {:>4} ", "COMM", "PID", "FD"));
    if src {
        s.push_str(&format!("{:<7} ", "SRC"));
    }
    s.push_str(extra);
    s.push_str("FILE");
    s
}

/// The FD column: the original's hex (`0x3`) or `-1`, or with `--errno` decimal and
/// the error name of a failure.
pub fn fd_text(ret: i64, errno: bool) -> String {
    match (ret < 0, errno) {
        (false, false) => format!("0x{ret:x}"),
        (true, false) => "-1".to_string(),
        (false, true) => ret.to_string(),
        (true, true) => errno_name(-ret)
            .map(str::to_string)
            .unwrap_or_else(|| ret.to_string()),
    }
}

/// One output row. The process and file names come from user space and are escaped
/// ([`escape_into`]) so that they cannot break the row or reach the terminal raw.
pub fn row(
    out: &mut Vec<u8>,
    time: Option<u64>,
    comm: &[u8],
    pid: u32,
    fd: &str,
    src: Option<&str>,
    file: &[u8],
) {
    row_with(out, time, comm, pid, fd, src, b"", file)
}

/// [`row`] with extra columns (already formatted, each followed by a space) just before
/// FILE.
#[allow(clippy::too_many_arguments)]
pub fn row_with(
    out: &mut Vec<u8>,
    time: Option<u64>,
    comm: &[u8],
    pid: u32,
    fd: &str,
    src: Option<&str>,
    extra: &[u8],
    file: &[u8],
) {
    if let Some(ns) = time {
        let us = (ns + 500) / 1000;
        let t = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        let _ = write!(out, "{t:<16} ");
    }
    let start = out.len();
    escape_into(out, &comm[..comm.len().min(16)]);
    for _ in (out.len() - start)..16 {
        out.push(b' ');
    }
    let _ = write!(out, " {pid:<6} {fd:>4} ");
    if let Some(src) = src {
        let _ = write!(out, "{src:<7} ");
    }
    out.extend_from_slice(extra);
    escape_into(out, file);
    out.push(b'\n');
}

/// Linux errno names (asm-generic numbering: x86, arm64, riscv, ...).
pub fn errno_name(e: i64) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
        "",
        "ENOMSG",
        "EIDRM",
        "ECHRNG",
        "EL2NSYNC",
        "EL3HLT",
        "EL3RST",
        "ELNRNG",
        "EUNATCH",
        "ENOCSI",
        "EL2HLT",
        "EBADE",
        "EBADR",
        "EXFULL",
        "ENOANO",
        "EBADRQC",
        "EBADSLT",
        "",
        "EBFONT",
        "ENOSTR",
        "ENODATA",
        "ETIME",
        "ENOSR",
        "ENONET",
        "ENOPKG",
        "EREMOTE",
        "ENOLINK",
        "EADV",
        "ESRMNT",
        "ECOMM",
        "EPROTO",
        "EMULTIHOP",
        "EDOTDOT",
        "EBADMSG",
        "EOVERFLOW",
        "ENOTUNIQ",
        "EBADFD",
        "EREMCHG",
        "ELIBACC",
        "ELIBBAD",
        "ELIBSCN",
        "ELIBMAX",
        "ELIBEXEC",
        "EILSEQ",
        "ERESTART",
        "ESTRPIPE",
        "EUSERS",
        "ENOTSOCK",
        "EDESTADDRREQ",
        "EMSGSIZE",
        "EPROTOTYPE",
        "ENOPROTOOPT",
        "EPROTONOSUPPORT",
        "ESOCKTNOSUPPORT",
        "EOPNOTSUPP",
        "EPFNOSUPPORT",
        "EAFNOSUPPORT",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ESHUTDOWN",
        "ETOOMANYREFS",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "EALREADY",
        "EINPROGRESS",
        "ESTALE",
        "EUCLEAN",
        "ENOTNAM",
        "ENAVAIL",
        "EISNAM",
        "EREMOTEIO",
        "EDQUOT",
        "ENOMEDIUM",
        "EMEDIUMTYPE",
        "ECANCELED",
        "ENOKEY",
        "EKEYEXPIRED",
        "EKEYREVOKED",
        "EKEYREJECTED",
        "EOWNERDEAD",
        "ENOTRECOVERABLE",
        "ERFKILL",
        "EHWPOISON",
    ];
    let n = NAMES.get(usize::try_from(e).ok()?)?;
    (!n.is_empty()).then_some(*n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn banners_match_the_original() {
        let a = Args::parse_from(["opensnoop"]);
        assert_eq!(banner(&a), "Tracing open()s. Ctrl-C to end.");
        let a = Args::parse_from(["opensnoop", "-p", "181", "-d", "5"]);
        assert_eq!(
            banner(&a),
            "Tracing open()s issued by PID 181 for 5 seconds (buffered)..."
        );
        let a = Args::parse_from(["opensnoop", "-n", "bash", "conf"]);
        assert_eq!(
            banner(&a),
            "Tracing open()s issued by process name \"bash\" for filenames containing \"conf\". Ctrl-C to end."
        );
        let a = Args::parse_from(["opensnoop", "-L", "7"]);
        assert_eq!(
            banner(&a),
            "Tracing open()s issued by TID 7. Ctrl-C to end."
        );
    }

    #[test]
    fn header_and_rows_match_the_original() {
        assert_eq!(header(false, false), "COMM             PID      FD FILE");
        assert_eq!(
            header(true, false),
            "TIMEs            COMM             PID      FD FILE"
        );
        let mut v = Vec::new();
        row(
            &mut v,
            None,
            b"opensnoop",
            5342,
            &fd_text(3, false),
            None,
            b"/etc/ld.so.cache",
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "opensnoop        5342    0x3 /etc/ld.so.cache\n"
        );
        let mut v = Vec::new();
        row(
            &mut v,
            Some(1_234_567_890_600),
            b"a-very-long-command-name",
            1,
            "-1",
            None,
            b"/x y",
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "1234.567891      a-very-long-comm 1        -1 /x y\n"
        );
    }

    #[test]
    fn with_v_file_stays_the_last_column_and_src_comes_before_it() {
        assert_eq!(
            header(false, true),
            "COMM             PID      FD SRC     FILE"
        );
        let mut v = Vec::new();
        row(
            &mut v,
            None,
            b"cat",
            42,
            "0x3",
            Some(SRC_PROC),
            b"/etc/hostname",
        );
        row(
            &mut v,
            None,
            b"cat",
            42,
            "0x4",
            Some(SRC_REUSED),
            UNKNOWN.as_bytes(),
        );
        row(
            &mut v,
            None,
            b"cat",
            42,
            "-1",
            Some(SRC_FAILED),
            UNKNOWN.as_bytes(),
        );
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "cat              42      0x3 proc    /etc/hostname\n\
             cat              42      0x4 reused  [unknown]\n\
             cat              42       -1 failed  [unknown]\n"
        );
        // Without -v every FILE of the fallback is the path or one token.
        let mut v = Vec::new();
        row(&mut v, None, b"cat", 42, "0x4", None, UNKNOWN.as_bytes());
        let line = String::from_utf8(v).unwrap();
        assert_eq!(line.split_whitespace().last(), Some(UNKNOWN));
        assert_eq!(line.split_whitespace().count(), 4);
    }

    #[test]
    fn hostile_names_cannot_forge_rows_or_reach_the_terminal() {
        let mut v = Vec::new();
        row(
            &mut v,
            None,
            b"ev\nfake\x1b[2J",
            7,
            "0x3",
            None,
            b"/tmp/x\nfake 1 3 etc-shadow\x1b]0;t\x07\xff",
        );
        let text = String::from_utf8(v).unwrap();
        assert_eq!(
            text,
            "ev\\nfake\\e[2J    7       0x3 /tmp/x\\nfake 1 3 etc-shadow\\e]0;t\\x07\\xff\n"
        );
        assert_eq!(text.lines().count(), 1);
        // An escaped name longer than the column pushes it instead of being cut.
        let mut v = Vec::new();
        row(&mut v, None, b"\x01\x02\x03\x04\x05", 7, "-1", None, b"f");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "\\x01\\x02\\x03\\x04\\x05 7        -1 f\n"
        );
    }

    #[test]
    fn fd_column() {
        assert_eq!(fd_text(3, false), "0x3");
        assert_eq!(fd_text(26, false), "0x1a");
        assert_eq!(fd_text(-2, false), "-1");
        assert_eq!(fd_text(26, true), "26");
        assert_eq!(fd_text(-2, true), "ENOENT");
        assert_eq!(fd_text(-13, true), "EACCES");
        assert_eq!(fd_text(-9999, true), "-9999");
        assert_eq!(errno_name(36), Some("ENAMETOOLONG"));
        assert_eq!(errno_name(133), Some("EHWPOISON"));
    }
}
