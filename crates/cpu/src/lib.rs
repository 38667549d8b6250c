//! CPU facts of perf-tools-rs read without tracing: CPUID ([`cpuid`]: the one CPU
//! vendor/family/model type of the suite), model-specific registers and the machine a
//! tool reads ([`msr`]), and sysfs topology and temperature sensors ([`hwmon`]). Used by
//! cputemp and showboost, and for vendor/model decoding by the performance-counter crate.

pub mod cpuid;
pub mod hwmon;
pub mod msr;
