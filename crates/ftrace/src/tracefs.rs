//! Finding (and if necessary mounting) tracefs.

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::path::{Path, PathBuf};

use perf_tools_core::privilege::{self, Capability};

/// The preferred tracefs mount point.
pub const TRACEFS_PATH: &str = "/sys/kernel/tracing";
/// The legacy location under debugfs.
pub const DEBUGFS_TRACING_PATH: &str = "/sys/kernel/debug/tracing";

/// A located tracefs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    root: PathBuf,
}

/// Picks a tracefs root from the text of `/proc/mounts`: `/sys/kernel/tracing` when it is
/// a tracefs mount, else any tracefs mount, else `tracing/` under a debugfs mount.
pub fn pick_mount(mounts: &str) -> Option<PathBuf> {
    let mut tracefs = Vec::new();
    let mut debugfs = Vec::new();
    for line in mounts.lines() {
        let mut it = line.split_whitespace();
        let (_, Some(dir), Some(fstype)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let dir = unescape_mount_path(dir);
        match fstype {
            "tracefs" => tracefs.push(dir),
            "debugfs" => debugfs.push(dir),
            _ => {}
        }
    }
    if let Some(p) = tracefs
        .iter()
        .find(|p| p.as_path() == Path::new(TRACEFS_PATH))
    {
        return Some(p.clone());
    }
    if let Some(p) = tracefs.into_iter().next() {
        return Some(p);
    }
    debugfs.into_iter().map(|d| d.join("tracing")).next()
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

impl Tracefs {
    /// Uses an explicit tracefs root (for tests and unusual mounts).
    pub fn at(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into() }
    }

    /// Checks privileges, then finds tracefs from /proc/mounts, mounting it at
    /// `/sys/kernel/tracing` when neither it nor debugfs is mounted.
    pub fn open() -> Result<Tracefs> {
        privilege::require(Capability::SysAdmin, "tracing")?;
        let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
        if let Some(root) = pick_mount(&mounts) {
            if root.join("events").is_dir() {
                return Ok(Tracefs { root });
            }
        }
        mount_tracefs(Path::new(TRACEFS_PATH))?;
        eprintln!(
            "note: tracefs was not mounted; mounted it at {TRACEFS_PATH} (it stays mounted; 'umount {TRACEFS_PATH}' undoes it)"
        );
        Ok(Tracefs {
            root: PathBuf::from(TRACEFS_PATH),
        })
    }

    /// The tracefs root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a file below the root.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Whether `events/<system>/<event>` exists on this kernel.
    pub fn has_event(&self, system: &str, event: &str) -> bool {
        self.root
            .join("events")
            .join(system)
            .join(event)
            .join("format")
            .is_file()
    }
}

fn mount_tracefs(target: &Path) -> Result<()> {
    if !target.is_dir() {
        bail!(
            "tracefs is not mounted and {} does not exist: the kernel lacks CONFIG_TRACING (ftrace)",
            target.display()
        );
    }
    let c = |s: &str| CString::new(s).expect("static string without NUL");
    let dir = CString::new(target.as_os_str().as_encoded_bytes()).context("mount point path")?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            c("nodev").as_ptr(),
            dir.as_ptr(),
            c("tracefs").as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "tracefs is not mounted and mounting it at {} failed: {err}; mount it by hand (mount -t tracefs nodev {}) or check that the kernel has CONFIG_TRACING",
            target.display(),
            target.display()
        );
    }
    Ok(())
}

/// Reads a tracefs file as text. Some tracefs files (`events/header_page`) end the file
/// after the first `read()` when that read is short, so read with a large buffer.
pub fn read_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_sys_kernel_tracing() {
        let m = "sysfs /sys sysfs rw 0 0\ndebugfs /sys/kernel/debug debugfs rw 0 0\ntracefs /mnt/t tracefs rw 0 0\ntracefs /sys/kernel/tracing tracefs rw 0 0\n";
        assert_eq!(pick_mount(m), Some(PathBuf::from("/sys/kernel/tracing")));
    }

    #[test]
    fn falls_back_to_other_tracefs_then_debugfs() {
        assert_eq!(
            pick_mount("tracefs /mnt/my\\040t tracefs rw 0 0\n"),
            Some(PathBuf::from("/mnt/my t"))
        );
        assert_eq!(
            pick_mount("debugfs /sys/kernel/debug debugfs rw 0 0\n"),
            Some(PathBuf::from(DEBUGFS_TRACING_PATH))
        );
        assert_eq!(pick_mount("proc /proc proc rw 0 0\n"), None);
    }
}
