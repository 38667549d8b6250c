//! Process-level basics shared by every perf-tools-rs tool, whatever it measures.
//!
//! * [`cli`]: argument parsers (durations, ranges), generated usage, `run_main` and the
//!   exit codes (0 ok, 1 runtime, 2 usage).
//! * [`output`]: batched standard output, the one escaping rule for names from user
//!   space, closed-pipe detection.
//! * [`signals`]: orderly shutdown on every terminating signal.
//! * [`privilege`]: capability checks before any kernel state is touched.
//! * [`fdreserve`]: file descriptors held back so cleanup works at the descriptor limit.
//! * [`spill`]: bounded memory for buffered output (spills to an anonymous file).
//! * [`target`]: checks that a PID or TID given on the command line exists; threads of a
//!   process.
//! * [`cpulist`]: kernel CPU lists (`0-3,8`): the one parser and formatter.
//! * [`clock`]: CLOCK_MONOTONIC; [`fault`]: the injected-panic point of cleanup tests.
//! * [`check`]: the report of every tool's `--check` and of `perf-tools-doctor`.
//! * [`workload`]: a command forked and held before exec until the tool is ready to watch
//!   it (pmcstat's counters, syscount's trace), then followed to its end.
//! * [`window`]: outlier recording: rows around outliers from a bounded window in memory.
//!
//! The tracing engine lives in `perf-tools-ftrace`, block I/O in `perf-tools-block`, CPU
//! registers in `perf-tools-cpu` and performance counters in `perf-tools-pmc`.

pub mod cgroup;
pub mod check;
pub mod cli;
pub mod clock;
pub mod cpulist;
pub mod fault;
pub mod fdreserve;
pub mod output;
pub mod privilege;
pub mod signals;
pub mod spill;
pub mod target;
pub mod window;
pub mod workload;
