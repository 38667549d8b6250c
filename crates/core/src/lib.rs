//! Shared core of perf-tools-rs.
//!
//! * [`tracefs`]: find or mount tracefs; [`privilege`]: check privileges first.
//! * [`instance`]: a private `instances/<tool>-<pid>` per run, removed on every exit path;
//!   [`stale`]: removal of what killed runs left behind.
//! * [`format`]: event layouts from `events/*/*/format`; [`ringbuf`]: binary page
//!   decoding; [`reader`]: per-CPU `trace_pipe_raw` readers; [`merge`]: cross-CPU time order.
//! * [`signals`], [`output`], [`cli`]: orderly shutdown, batched output, exit codes.
//! * [`target`]: checks that a PID or TID given on the command line exists; threads of
//!   a process.

pub mod block;
pub mod cli;
pub mod fdreserve;
pub mod format;
pub mod ftrace;
pub mod hwmon;
mod inflight_table;
pub mod instance;
pub mod lastresort;
pub mod merge;
pub mod msr;
pub mod output;
pub mod perf_msr;
pub mod pmc;
pub mod privilege;
pub mod probe;
pub mod reader;
pub mod ringbuf;
pub mod session;
pub mod signals;
pub mod spill;
pub mod stale;
pub mod target;
pub mod tracefs;

/// Reads CLOCK_MONOTONIC in nanoseconds: the clock of instances set to `trace_clock=mono`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
