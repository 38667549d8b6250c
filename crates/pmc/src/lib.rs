//! CPU performance counters through `perf_event_open(2)`, without parsing perf's text.
//!
//! * [`event`]: what to count and its `perf_event_attr` type/config per PMU and CPU vendor
//!   (generic hardware, cache and software events; raw codes only where nothing generic
//!   exists, chosen by CPUID vendor and model);
//! * [`cpu`]: CPUID vendor/family/model and core PMU discovery (hybrid `cpu_*` PMUs);
//! * [`counters`]: groups opened per CPU, per thread with inherit, or on a held command
//!   with enable_on_exec; group reads with time_enabled/time_running; multiplex scaling;
//!   `<not supported>` and `<not counted>` kept apart from zero;
//! * [`explain`]: refusals explained with perf_event_paranoid and CAP_PERFMON, and the
//!   "no hardware PMU" message for VMs;
//! * [`msr_pmu`]: the perf `msr` PMU (APERF/MPERF/TSC) for frequency without `/dev/cpu/*/msr`.

pub mod counters;
pub mod cpu;
pub mod event;
pub mod explain;
pub mod msr_pmu;
