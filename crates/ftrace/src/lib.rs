//! The tracing engine of perf-tools-rs: ftrace through tracefs, without parsing its text.
//!
//! * [`tracefs`]: find or mount tracefs; [`owner`]: the suite's `<tool>-<pid>` naming and
//!   whether an owner lives.
//! * [`instance`]: a private `instances/<tool>-<pid>` per run, removed on every exit path
//!   ([`lastresort`] even on SIGABRT); [`probe`]: kprobes, uprobes and event probes named
//!   per run; [`toplevel`]: top-level settings saved and restored where no instance can
//!   be used; [`cleanup`]: removal of what killed runs left behind, on top of those.
//! * [`format`]: event layouts from `events/*/*/format`; [`ringbuf`]: binary page
//!   decoding; [`reader`]: per-CPU `trace_pipe_raw` readers; [`merge`]: cross-CPU time
//!   order; [`session`]: an instance with its readers, the checks that its state holds and
//!   the end of a run ([`session::RunAccount`]); [`text_pipe`]: the kernel's text
//!   rendering (`trace_pipe`), for what has no binary decoder; [`graph`]: the
//!   function_graph tracer (funcgraph, funcslower) on top of it.
//! * [`comm`]: process names for events that carry none.
//! * [`canary`]: sources chosen best first, each verified with a known action of the
//!   tool's own.
//! * [`check`]: the tracefs part of every tool's `--check` and of perf-tools-doctor.

pub mod canary;
pub mod check;
pub mod cleanup;
pub mod comm;
pub mod elf;
pub mod format;
pub mod function;
pub mod graph;
pub mod hist;
pub mod instance;
pub mod lastresort;
pub mod merge;
pub mod owner;
pub mod probe;
pub mod reader;
pub mod ringbuf;
pub mod scope;
pub mod session;
pub mod text_pipe;
pub mod toplevel;
pub mod tracefs;
