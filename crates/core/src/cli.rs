//! Process-level conventions shared by every tool: exit codes, error reporting, number
//! parsers with readable range messages, and the usage line / man SYNOPSIS generated
//! from a tool's clap definition.
//!
//! Exit codes: 0 success (including a reader closing the output pipe), 1 runtime error,
//! 2 usage error (clap's own errors and [`UsageError`]).
//!
//! Every error a tool reports starts with `error:` after the tool's name
//! (`iosnoop: error: ...`), as clap's own usage errors do (`error: ...`), so scripts
//! can `grep error:` the way they grepped the originals' `ERROR:`. Warnings and notes
//! never start with it.

use clap::{Arg, ArgAction, Command};
use std::fmt;
use std::num::{IntErrorKind, ParseIntError};
use std::str::FromStr;

/// A usage error detected after argument parsing (conflicting or out-of-range values).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Builds a usage error (exit code 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// A name-matching regex of the tools' options (`-n`, a file-name pattern), matched
/// against raw bytes as grep and awk do in the C locale, which the originals ran in:
/// `.` and classes such as `\w` are ASCII, and a non-ASCII letter in the pattern
/// matches its UTF-8 bytes. (The Unicode class tables are not built in: the file
/// carrying every tool stays smaller.) A bad pattern is a usage error naming `what`.
pub fn name_regex(pattern: &str, what: &str) -> anyhow::Result<regex::bytes::Regex> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .map_err(|e| usage(format!("invalid {what}: {e}")))
}

/// One year in seconds: the upper bound of every duration and interval.
pub const ONE_YEAR: f64 = 31_536_000.0;

/// Parses a positive number of seconds, at most one year (the `duration` / `-d secs`
/// argument of the tracing tools). For clap's `value_parser`.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    parse_seconds("duration", 0.0, ONE_YEAR, s)
}

/// A clap value parser for a number of seconds (fractions allowed) above 0 when `min` is
/// 0, else from `min`, up to `max`, whose error names the value:
/// `interval must be at least 0.01 seconds, at most one year: 0` (NaN and infinities
/// are refused).
pub fn seconds(
    what: &'static str,
    min: f64,
    max: f64,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |s: &str| parse_seconds(what, min, max, s)
}

fn parse_seconds(what: &str, min: f64, max: f64, s: &str) -> Result<f64, String> {
    let low_ok = |v: f64| if min == 0.0 { v > 0.0 } else { v >= min };
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && low_ok(v) && v <= max => Ok(v),
        Ok(_) => {
            let low = if min == 0.0 {
                "a positive number of seconds".to_string()
            } else {
                format!("at least {min} seconds")
            };
            let high = if max == ONE_YEAR {
                "at most one year".to_string()
            } else {
                format!("at most {max} seconds")
            };
            Err(format!("{what} must be {low}, {high}: {s}"))
        }
        Err(_) => Err(format!("{what} is not a number of seconds: {s:?}")),
    }
}

/// A whole-number type [`at_least`] and [`between`] can parse.
pub trait Whole: FromStr<Err = ParseIntError> + PartialOrd + Copy + fmt::Display {}
impl<T: FromStr<Err = ParseIntError> + PartialOrd + Copy + fmt::Display> Whole for T {}

fn parse_whole<T: Whole>(what: &str, s: &str, min: T, max: Option<T>) -> Result<T, String> {
    let range = || match max {
        Some(max) => format!("{what} must be between {min} and {max}"),
        None => format!("{what} must be at least {min}"),
    };
    match s.parse::<T>() {
        Ok(v) if v < min || max.is_some_and(|m| v > m) => Err(range()),
        Ok(v) => Ok(v),
        Err(e) => match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
                Err(format!("{}: {s} is too large", range()))
            }
            _ if s.starts_with('-') => Err(range()),
            _ => Err(format!("{what} must be a whole number, not {s:?}")),
        },
    }
}

/// A clap value parser for a whole number of at least `min`, whose error names the
/// value: `count must be at least 1` (clap's own range parser would say
/// `0 is not in 1..18446744073709551615`).
pub fn at_least<T: Whole + Send + Sync + 'static>(
    what: &'static str,
    min: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s: &str| parse_whole(what, s, min, None)
}

/// A clap value parser for a whole number from `min` to `max`:
/// `--buffer-kb must be between 64 and 1048576`.
pub fn between<T: Whole + Send + Sync + 'static>(
    what: &'static str,
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s: &str| parse_whole(what, s, min, Some(max))
}

/// The prefix of every error message: `tool: error: `.
pub fn error_prefix(tool: &str) -> String {
    format!("{tool}: error: ")
}

/// Maps a tool's result to an exit code, printing errors as `tool: error: message`.
pub fn exit_code<S: Into<Status>>(tool: &str, result: anyhow::Result<S>) -> i32 {
    match result {
        Ok(status) => status.into().0,
        Err(e) if crate::output::is_broken_pipe(&e) => 0,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!(
                "{}{e}\nTry '{tool} --help' for more information.",
                error_prefix(tool)
            );
            2
        }
        Err(e) => {
            eprintln!("{}{e:#}{}", error_prefix(tool), hint(&e));
            1
        }
    }
}

/// The exit status of a run that did not fail: 0, or one the tool chose (pmcstat returns
/// its measured command's, as `time` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub i32);

impl From<()> for Status {
    fn from(_: ()) -> Status {
        Status(0)
    }
}

impl From<i32> for Status {
    fn from(code: i32) -> Status {
        Status(code)
    }
}

/// What to do about an error whose cause the message alone does not say.
fn hint(e: &anyhow::Error) -> &'static str {
    let emfile = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.raw_os_error() == Some(libc::EMFILE));
    if emfile {
        " (the open-file limit is too low for this run: raise it with 'ulimit -n', e.g. to 1024)"
    } else {
        ""
    }
}

/// A piece of a synopsis line, with the face a man page gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Typed as is: the tool's name and option letters (bold in a man page).
    Literal(String),
    /// Stands for a value the user supplies (italic in a man page).
    Placeholder(String),
    /// Brackets, `|` and `...` (roman).
    Punct(&'static str),
}

/// One word of a synopsis line (`[-d device]`, `funcstring...`): never split when a
/// line is wrapped.
pub type Word = Vec<Span>;

/// A synopsis line: the tool's name then its words.
pub type Line = Vec<Word>;

fn is_help_or_version(a: &Arg) -> bool {
    matches!(
        a.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    )
}

fn takes_value(a: &Arg) -> bool {
    a.get_num_args().is_some_and(|r| r.takes_values())
}

fn value_name(a: &Arg) -> String {
    a.get_value_names()
        .and_then(|v| v.first())
        .map(|s| s.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase())
}

/// `-d device`, `--buffer-kb KiB`, `-Q`, `--json` (no brackets).
fn option_spans(a: &Arg) -> Vec<Span> {
    let flag = match (a.get_short(), a.get_long()) {
        (Some(s), _) => format!("-{s}"),
        (None, Some(l)) => format!("--{l}"),
        (None, None) => String::new(),
    };
    let mut v = vec![Span::Literal(flag)];
    if takes_value(a) {
        v.push(Span::Punct(" "));
        v.push(Span::Placeholder(value_name(a)));
    }
    v
}

/// The synopsis of a tool, generated from its clap definition: the lines of its
/// usage (`-h`, usage errors) and of its man page's SYNOPSIS.
///
/// Short flags are bundled as the originals wrote them (`[-Qst]`), options show their
/// value names (`[-d device]`), mutually exclusive options share one bracket
/// (`[-n name | -p PID]`), required operands have no brackets (`funcstring...`),
/// optional operands nest (`[interval [count]]`), and an option that must be used
/// alone (`--cleanup`) gets a line of its own. `-h` and `-V` are left to OPTIONS.
pub fn synopsis(cmd: &Command) -> Vec<Line> {
    let mut cmd = cmd.clone();
    cmd.build();
    let name = cmd.get_name().to_string();
    let options: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set() && !is_help_or_version(a))
        .collect();
    let (alone, options): (Vec<&Arg>, Vec<&Arg>) =
        options.into_iter().partition(|a| a.is_exclusive_set());

    // Mutually exclusive options: connected components of the conflict graph that
    // are cliques (each conflicts with every other) share one bracket.
    let idx = |a: &Arg| options.iter().position(|o| o.get_id() == a.get_id());
    let mut group: Vec<usize> = (0..options.len()).collect();
    fn root(g: &mut [usize], mut i: usize) -> usize {
        while g[i] != i {
            i = g[i];
        }
        i
    }
    let conflicts: Vec<Vec<usize>> = options
        .iter()
        .map(|a| {
            cmd.get_arg_conflicts_with(a)
                .into_iter()
                .filter_map(&idx)
                .collect()
        })
        .collect();
    for (i, cs) in conflicts.iter().enumerate() {
        for &j in cs {
            let (ri, rj) = (root(&mut group, i), root(&mut group, j));
            group[ri.max(rj)] = ri.min(rj);
        }
    }
    let roots: Vec<usize> = (0..options.len()).map(|i| root(&mut group, i)).collect();
    let members =
        |r: usize| -> Vec<usize> { (0..options.len()).filter(|&i| roots[i] == r).collect() };
    let is_clique = |m: &[usize]| {
        m.iter().all(|&i| {
            m.iter()
                .all(|&j| i == j || conflicts[i].contains(&j) || conflicts[j].contains(&i))
        })
    };
    let grouped = |i: usize| {
        let m = members(roots[i]);
        m.len() > 1 && is_clique(&m)
    };

    let mut words: Vec<Word> = Vec::new();
    // Bundled short flags: case-insensitive order, lower case first (`-aCDHPtT`).
    let mut letters: Vec<char> = options
        .iter()
        .enumerate()
        .filter(|(i, a)| !takes_value(a) && a.get_short().is_some() && !grouped(*i))
        .filter_map(|(_, a)| a.get_short())
        .collect();
    letters.sort_by_key(|c| (c.to_ascii_lowercase(), c.is_ascii_uppercase()));
    if !letters.is_empty() {
        words.push(vec![
            Span::Punct("["),
            Span::Literal(format!("-{}", letters.into_iter().collect::<String>())),
            Span::Punct("]"),
        ]);
    }
    for (i, a) in options.iter().enumerate() {
        if grouped(i) {
            if roots[i] != i {
                continue; // rendered with the group's first member
            }
            let mut w = vec![Span::Punct("[")];
            for (k, &j) in members(i).iter().enumerate() {
                if k > 0 {
                    w.push(Span::Punct(" | "));
                }
                w.extend(option_spans(options[j]));
            }
            w.push(Span::Punct("]"));
            words.push(w);
        } else if takes_value(a) || a.get_short().is_none() {
            let mut w = vec![Span::Punct("[")];
            w.extend(option_spans(a));
            w.push(Span::Punct("]"));
            words.push(w);
        }
    }
    // Operands: required ones bare, optional ones nested in one word
    // (`[interval [count]]`).
    let mut optional: Word = Vec::new();
    let mut open = 0;
    for p in cmd
        .get_positionals()
        .filter(|a| !a.is_hide_set() && !a.is_last_set())
    {
        let mut w = Vec::new();
        let required = p.is_required_set();
        if !required {
            if open > 0 {
                w.push(Span::Punct(" "));
            }
            w.push(Span::Punct("["));
            open += 1;
        }
        w.push(Span::Placeholder(value_name(p)));
        if p.get_num_args().is_some_and(|r| r.max_values() > 1) {
            w.push(Span::Punct("..."));
        }
        if required && open == 0 {
            words.push(w);
        } else {
            optional.extend(w);
        }
    }
    if open > 0 {
        optional.extend(std::iter::repeat_n(Span::Punct("]"), open));
        words.push(optional);
    }
    // Arguments taken only after `--` (pmcstat's command): `[-- command...]`.
    for p in cmd
        .get_positionals()
        .filter(|a| !a.is_hide_set() && a.is_last_set())
    {
        let required = p.is_required_set();
        let mut w = Vec::new();
        if !required {
            w.push(Span::Punct("["));
        }
        w.push(Span::Punct("-- "));
        w.push(Span::Placeholder(value_name(p)));
        w.push(Span::Punct("..."));
        if !required {
            w.push(Span::Punct("]"));
        }
        words.push(w);
    }

    let mut lines = vec![words];
    for a in alone {
        lines.push(vec![option_spans(a)]);
    }
    for l in &mut lines {
        l.insert(0, vec![Span::Literal(name.clone())]);
    }
    lines
}

/// A synopsis word as plain text.
pub fn word_text(w: &[Span]) -> String {
    w.iter()
        .map(|s| match s {
            Span::Literal(t) | Span::Placeholder(t) => t.as_str(),
            Span::Punct(t) => t,
        })
        .collect()
}

/// The usage text clap prints after `Usage: `: the synopsis lines, wrapped before 80
/// columns, continuation lines indented under the first option.
pub fn usage_text(cmd: &Command) -> String {
    const WIDTH: usize = 80;
    const PREFIX: usize = "Usage: ".len();
    let mut out = String::new();
    for (n, line) in synopsis(cmd).iter().enumerate() {
        if n > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(PREFIX));
        }
        let name = line.first().map(|w| word_text(w)).unwrap_or_default();
        let indent = PREFIX + name.len() + 1;
        out.push_str(&name);
        let mut col = PREFIX + name.len();
        for w in line.iter().skip(1) {
            let t = word_text(w);
            if col + 1 + t.len() > WIDTH && col > indent {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                col = indent;
            } else {
                out.push(' ');
                col += 1;
            }
            out.push_str(&t);
            col += t.len();
        }
    }
    out
}

/// A tool's clap definition with its generated usage (see [`synopsis`]): what `-h`
/// and usage errors print and what the man page shows. Every tool's `command()`.
pub fn command<A: clap::CommandFactory>() -> Command {
    let cmd = A::command();
    let usage = usage_text(&cmd);
    cmd.override_usage(usage)
}

/// Parses the process's arguments with [`command`]: exits 2 on usage errors, 0 after
/// `--help`/`--version`.
pub fn parse<A: clap::Parser>() -> A {
    parse_from(std::env::args_os())
}

/// [`parse`] of the given arguments (the first is the program name clap shows in
/// usage and help; the multi-call binary passes the tool's name there).
pub fn parse_from<A, I, T>(args: I) -> A
where
    A: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut matches = command::<A>().get_matches_from(args);
    match A::from_arg_matches_mut(&mut matches) {
        Ok(a) => a,
        Err(e) => e.format(&mut command::<A>()).exit(),
    }
}

/// Parses arguments with clap (exit 2 on usage errors, 0 for --help/--version), runs the
/// tool and exits with [`exit_code`]. This is the whole body of every tool's `main`.
pub fn run_main<A: clap::Parser, S: Into<Status>>(
    tool: &str,
    run: fn(A) -> anyhow::Result<S>,
) -> ! {
    run_main_from(tool, run, std::env::args_os().collect())
}

/// [`run_main`] with explicit arguments (`args[0]` is the name usage and help show):
/// how the multi-call binary `perf-tools` runs a tool, so that the tool behaves the same
/// (help, exit codes, cleanup) whichever way it was started.
pub fn run_main_from<A: clap::Parser, S: Into<Status>>(
    tool: &str,
    run: fn(A) -> anyhow::Result<S>,
    args: Vec<std::ffi::OsString>,
) -> ! {
    let args = parse_from::<A, _, _>(args);
    let code = exit_code(tool, run(args));
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn count_zero_says_at_least_one() {
        let p = at_least::<u64>("count", 1);
        assert_eq!(p("0"), Err("count must be at least 1".to_string()));
        assert_eq!(p("1"), Ok(1));
        assert_eq!(p("-3"), Err("count must be at least 1".to_string()));
        assert_eq!(
            p("x"),
            Err("count must be a whole number, not \"x\"".to_string())
        );
        assert_eq!(
            p("99999999999999999999"),
            Err("count must be at least 1: 99999999999999999999 is too large".to_string())
        );
    }

    #[test]
    fn seconds_name_the_value_and_both_ends() {
        assert_eq!(parse_duration("2.5"), Ok(2.5));
        assert_eq!(
            parse_duration("0"),
            Err("duration must be a positive number of seconds, at most one year: 0".into())
        );
        assert_eq!(
            parse_duration("x"),
            Err("duration is not a number of seconds: \"x\"".into())
        );
        for bad in ["-1", "inf", "NaN", "31536001"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("31536000"), Ok(ONE_YEAR));
        let p = seconds("interval", 0.01, 86_400.0);
        assert_eq!(p("0.01"), Ok(0.01));
        assert_eq!(p("86400"), Ok(86_400.0));
        assert_eq!(
            p("0.001"),
            Err("interval must be at least 0.01 seconds, at most 86400 seconds: 0.001".into())
        );
        assert!(p("86401").is_err());
    }

    #[test]
    fn between_names_both_ends() {
        let p = between::<u32>("--buffer-kb", 64, 1_048_576);
        assert_eq!(
            p("63"),
            Err("--buffer-kb must be between 64 and 1048576".to_string())
        );
        assert_eq!(p("64"), Ok(64));
        assert_eq!(p("1048576"), Ok(1_048_576));
        assert!(p("1048577").is_err());
    }

    #[test]
    fn range_error_through_clap_is_readable() {
        #[derive(Parser, Debug)]
        #[command(name = "t")]
        struct A {
            #[arg(value_name = "count", value_parser = at_least::<u64>("count", 1))]
            count: Option<u64>,
        }
        let e = A::try_parse_from(["t", "0"]).unwrap_err().to_string();
        assert!(
            e.contains("invalid value '0' for '[count]': count must be at least 1"),
            "{e}"
        );
        assert!(!e.contains("18446744073709551615"), "{e}");
    }

    /// A made-up tool with every shape the synopsis handles.
    #[derive(Parser, Debug)]
    #[command(name = "demo", version)]
    struct Demo {
        #[arg(short = 'Q')]
        queue: bool,
        #[arg(short = 'a')]
        all: bool,
        #[arg(short = 'd', value_name = "device")]
        device: Option<String>,
        #[arg(short = 'n', value_name = "name", conflicts_with_all = ["pid", "tid"])]
        name: Option<String>,
        #[arg(short = 'p', value_name = "PID", conflicts_with = "tid")]
        pid: Option<u32>,
        #[arg(short = 'L', value_name = "TID")]
        tid: Option<u32>,
        #[arg(short = 'v', conflicts_with = "secs")]
        view: bool,
        #[arg(short = 's', value_name = "secs")]
        secs: Option<u32>,
        #[arg(long)]
        json: bool,
        #[arg(long = "buffer-kb", value_name = "KiB", default_value_t = 4)]
        buffer_kb: u32,
        #[arg(long, hide = true)]
        secret: bool,
        #[arg(value_name = "definition")]
        definition: String,
        #[arg(value_name = "interval")]
        interval: Option<u32>,
        #[arg(value_name = "count")]
        count: Option<u32>,
        #[arg(long, exclusive = true)]
        cleanup: bool,
    }

    #[test]
    fn synopsis_shows_values_groups_required_operands_and_alone_options() {
        let text: Vec<String> = synopsis(&command::<Demo>())
            .iter()
            .map(|l| l.iter().map(|w| word_text(w)).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            text,
            [
                "demo [-aQ] [-d device] [-n name | -p PID | -L TID] [-v | -s secs] [--json] \
                 [--buffer-kb KiB] definition [interval [count]]",
                "demo --cleanup",
            ]
        );
    }

    #[test]
    fn usage_wraps_under_the_first_option_and_is_what_errors_print() {
        let u = usage_text(&command::<Demo>());
        assert_eq!(
            u,
            "demo [-aQ] [-d device] [-n name | -p PID | -L TID] [-v | -s secs]\n            \
             [--json] [--buffer-kb KiB] definition [interval [count]]\n       demo --cleanup"
        );
        let e = command::<Demo>()
            .try_get_matches_from(["demo", "-p", "1", "-n", "x", "d"])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("Usage: {u}\n")), "{e}");
        let e = command::<Demo>()
            .try_get_matches_from(["demo"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("<definition>"), "{e}");
        assert!(e.contains(&format!("Usage: {u}\n")), "{e}");
        assert!(command::<Demo>()
            .try_get_matches_from(["demo", "--cleanup"])
            .is_ok());
    }

    #[test]
    fn errors_start_with_error() {
        assert_eq!(error_prefix("iosnoop"), "iosnoop: error: ");
    }
}
