//! Privilege checks made before anything in the kernel is touched.

use anyhow::{bail, Result};

/// Linux capability numbers used by the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// CAP_SYS_ADMIN (21): tracefs instances, event enabling, mounting tracefs.
    SysAdmin,
    /// CAP_SYS_RAWIO (17): reading `/dev/cpu/N/msr`.
    SysRawio,
    /// CAP_PERFMON (38): system-wide performance counters.
    Perfmon,
}

impl Capability {
    fn bit(self) -> u32 {
        match self {
            Capability::SysAdmin => 21,
            Capability::SysRawio => 17,
            Capability::Perfmon => 38,
        }
    }

    /// The capability's name as documented in capabilities(7).
    pub fn name(self) -> &'static str {
        match self {
            Capability::SysAdmin => "CAP_SYS_ADMIN",
            Capability::SysRawio => "CAP_SYS_RAWIO",
            Capability::Perfmon => "CAP_PERFMON",
        }
    }
}

/// True if the effective capability set of this process holds `cap`.
pub fn has_capability(cap: Capability) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << cap.bit()) != 0)
}

/// Fails with an explanation unless the process may use tracing (`what` names the use).
pub fn require(cap: Capability, what: &str) -> Result<()> {
    if has_capability(cap) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!("not root: {what} needs {} — run with sudo", cap.name());
    }
    bail!("running as root but without {}: {what} needs it (a container or a capability bounding set dropped it)", cap.name());
}
