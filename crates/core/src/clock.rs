//! The clock tracing instances are set to (`trace_clock=mono`).

/// Reads CLOCK_MONOTONIC in nanoseconds: the clock of instances set to `trace_clock=mono`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Reads a clock in nanoseconds: `CLOCK_MONOTONIC`, or a CPU-time clock
/// (`CLOCK_PROCESS_CPUTIME_ID`, `CLOCK_THREAD_CPUTIME_ID`: the scheduler's account of
/// the caller's CPU time, without time the hypervisor took the vCPU away).
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
