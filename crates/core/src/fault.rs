//! The fault-injection point of the cleanup tests.

/// Fault injection for the cleanup tests: with `PT_FAULT=panic` in the environment this
/// panics, so a test can prove that a run's tracing state is still removed (or restored)
/// while the panic unwinds. Called once a tool's tracing is set up: by the tracing
/// engine's `Instance::set_tracing_on` when it turns recording on (iosnoop, iolatency,
/// opensnoop, kprobe) and by funcgraph after configuring its tracer. Does nothing
/// otherwise.
pub fn fault_point() {
    if std::env::var_os("PT_FAULT").is_some_and(|v| v == "panic") {
        panic!("PT_FAULT=panic: injected panic after setup");
    }
}
