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
///
/// Asks the kernel with capget(2), which needs no file descriptor (a run under a tight
/// `ulimit -n` must not be told it lacks a privilege), and reads `CapEff` from
/// `/proc/self/status` only if that fails.
pub fn has_capability(cap: Capability) -> bool {
    effective_capabilities().is_some_and(|mask| mask & (1u64 << cap.bit()) != 0)
}

/// The effective capability set as a bit mask.
fn effective_capabilities() -> Option<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are valid, writable and of the layout capget(2) expects
    // for version 3 (two data structs).
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc == 0 {
        return Some(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32));
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Fails with an explanation unless the process may use tracing (`what` names the use).
pub fn require(cap: Capability, what: &str) -> Result<()> {
    if has_capability(cap) {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("not root: {what} needs {} — run with sudo", cap.name());
    }
    bail!("running as root but without {}: {what} needs it (a container or a capability bounding set dropped it)", cap.name());
}
