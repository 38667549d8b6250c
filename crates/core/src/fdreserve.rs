//! File descriptors kept back for cleanup.
//!
//! Cleanup writes control files (`tracing_on`, `kprobe_events`, saved top-level
//! settings) and each write needs a descriptor. Under a tight `ulimit -n` a run could set
//! up, trace, and then fail to undo what it did. So setup first raises the soft
//! descriptor limit to the hard one, then keeps [`RESERVED`] descriptors open (on
//! `/dev/null`) that cleanup closes before it writes anything. Setup fails early, before
//! any kernel state exists, when even that is impossible.

use anyhow::{bail, Result};
use std::fs::File;
use std::sync::Mutex;

/// Descriptors held back: cleanup writes one control file at a time.
pub const RESERVED: usize = 2;

static RESERVE: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit, which is
/// always permitted; returns the soft limit now in force.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and holds [`RESERVED`] descriptors
/// for cleanup. Call before creating any kernel state; calling it again tops the reserve
/// up. Fails with what to do when the limit leaves no room.
pub fn reserve() -> Result<()> {
    let _ = raise_nofile_limit();
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| soft);
    let mut held = RESERVE.lock().unwrap_or_else(|p| p.into_inner());
    while held.len() < RESERVED {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => bail!(
                "cannot keep {RESERVED} file descriptors for cleanup ({e}; the limit is {}): raise it with 'ulimit -n' (at least 64)",
                limit
            ),
        }
    }
    Ok(())
}

/// Closes the reserved descriptors so that the cleanup that follows can open the files
/// it writes. Cleanup code calls it first; it does nothing when nothing is held.
pub fn release() {
    let mut held = RESERVE.lock().unwrap_or_else(|p| p.into_inner());
    held.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_limit_is_raised_to_the_hard_limit() {
        let soft = raise_nofile_limit().unwrap();
        let now = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE);
        assert_eq!(now.unwrap(), (soft, soft));
    }

    #[test]
    fn reserve_holds_descriptors_until_released() {
        reserve().unwrap();
        assert_eq!(RESERVE.lock().unwrap().len(), RESERVED);
        reserve().unwrap();
        assert_eq!(RESERVE.lock().unwrap().len(), RESERVED);
        release();
        assert!(RESERVE.lock().unwrap().is_empty());
    }
}
