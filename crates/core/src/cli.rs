//! Process-level conventions shared by every tool: exit codes and error reporting.
//!
//! Exit codes: 0 success (including a reader closing the output pipe), 1 runtime error,
//! 2 usage error (clap's own errors and [`UsageError`]).

use std::fmt;

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

/// Parses a positive number of seconds, at most one year (the `duration` / `-d secs`
/// argument of the tracing tools). For clap's `value_parser`.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 31_536_000.0 => Ok(v),
        Ok(_) => Err(format!(
            "duration must be a positive number of seconds, at most one year: {s}"
        )),
        Err(_) => Err(format!("duration is not a number of seconds: {s:?}")),
    }
}

/// Maps a tool's result to an exit code, printing errors as `tool: message`.
pub fn exit_code(tool: &str, result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) if crate::output::is_broken_pipe(&e) => 0,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("{tool}: {e}\nTry '{tool} --help' for more information.");
            2
        }
        Err(e) => {
            eprintln!("{tool}: {e:#}");
            1
        }
    }
}

/// Fault injection for the cleanup tests: with `PT_FAULT=panic` in the environment this
/// panics, so a test can prove that a run's tracing state is still removed (or restored)
/// while the panic unwinds. Called once a tool's tracing is set up: by
/// [`Instance::set_tracing_on`](crate::instance::Instance::set_tracing_on) when it turns
/// recording on (iosnoop, iolatency, opensnoop, kprobe) and by funcgraph after
/// configuring its tracer. Does nothing otherwise.
pub fn fault_point() {
    if std::env::var_os("PT_FAULT").is_some_and(|v| v == "panic") {
        panic!("PT_FAULT=panic: injected panic after setup");
    }
}

/// Parses arguments with clap (exit 2 on usage errors, 0 for --help/--version), runs the
/// tool and exits with [`exit_code`]. This is the whole body of every tool's `main`.
pub fn run_main<A: clap::Parser>(tool: &str, run: fn(A) -> anyhow::Result<()>) -> ! {
    let args = A::parse();
    let code = exit_code(tool, run(args));
    std::process::exit(code)
}
