//! CPU facts of perf-tools-rs read without tracing: model-specific registers, CPUID and
//! sysfs topology ([`msr`]), and temperature sensors ([`hwmon`]). Used by cputemp and
//! showboost, and for vendor/model decoding by the performance-counter crate.

pub mod hwmon;
pub mod msr;
