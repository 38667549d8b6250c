//! Fake machines (MSR, CPUID, hwmon trees under a temporary root) for the MSR tools' tests.
