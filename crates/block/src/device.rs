//! Block devices as `-d` names them (numbers, kernel names, paths; partitions as their
//! disk plus a sector range), and the in-kernel filter strings of a block trace.

use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// A block device number as the block tracepoints encode it (`major << 20 | minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Device {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl Device {
    /// Decodes the kernel-internal `dev_t` used in trace events.
    pub fn from_kernel(dev: u32) -> Device {
        Device {
            major: dev >> 20,
            minor: dev & 0xfffff,
        }
    }

    /// Encodes for an event filter (`dev == N`).
    pub fn to_kernel(self) -> u32 {
        (self.major << 20) | self.minor
    }

    /// The kernel's name for the device (`sda`, `loop0`), from /sys/dev/block.
    pub fn name(self) -> Option<String> {
        let link =
            std::fs::read_link(format!("/sys/dev/block/{}:{}", self.major, self.minor)).ok()?;
        Some(link.file_name()?.to_str()?.to_string())
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.major, self.minor)
    }
}

impl FromStr for Device {
    type Err = String;

    /// Parses `"major,minor"` (also accepts `major:minor`).
    fn from_str(s: &str) -> Result<Device, String> {
        let bad = || {
            format!("invalid device '{s}': expected \"major,minor\", e.g. \"202,1\" (see ls -l /dev or lsblk)")
        };
        let (a, b) = s.split_once([',', ':']).ok_or_else(bad)?;
        let major: u32 = a.trim().parse().map_err(|_| bad())?;
        let minor: u32 = b.trim().parse().map_err(|_| bad())?;
        if major >= 1 << 12 || minor >= 1 << 20 {
            return Err(format!(
                "invalid device '{s}': major must be < 4096 and minor < 1048576"
            ));
        }
        Ok(Device { major, minor })
    }
}

/// A block device as given on the command line (`-d`): `major,minor` as the originals
/// wrote it, a kernel name (`sda`, `nvme0n1`, a partition such as `sda1`) or a path to a
/// device node (`/dev/loop0`, `/dev/mapper/vg-root`; a name containing `/` is taken under
/// `/dev`). Parsing checks only the form; [`DeviceSpec::resolve`] finds the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `major,minor` (or `major:minor`).
    Number(Device),
    /// A name under `/sys/class/block`.
    Name(String),
    /// A device node.
    Path(std::path::PathBuf),
}

impl fmt::Display for DeviceSpec {
    /// As the user can give it again: `7,0`, `sda1`, `/dev/sda`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Number(d) => write!(f, "{d}"),
            DeviceSpec::Name(n) => write!(f, "{n}"),
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<DeviceSpec, String> {
        if s.contains([',', ':']) {
            return s.parse().map(DeviceSpec::Number);
        }
        if s.starts_with('/') {
            return Ok(DeviceSpec::Path(s.into()));
        }
        if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) || s == "." || s == ".." {
            return Err(format!(
                "invalid device '{}': expected \"major,minor\" (e.g. \"202,1\"), a device name (e.g. sda, nvme0n1, sda1) or a /dev path",
                perf_tools_core::output::escape(s.as_bytes())
            ));
        }
        if s.contains('/') {
            return Ok(DeviceSpec::Path(std::path::Path::new("/dev").join(s)));
        }
        Ok(DeviceSpec::Name(s.to_string()))
    }
}

/// What a `-d` filter traces: requests to `dev`, and for a partition only those whose
/// first sector lies in the partition (block events name the whole disk, with sectors
/// counted from the start of the disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    /// The device the block events carry (the disk, for a partition).
    pub dev: Device,
    /// For a partition: its sectors on the disk, `start..end`.
    pub sectors: Option<std::ops::Range<u64>>,
}

/// A `-d` argument resolved against the running system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDevice {
    /// The filter to apply.
    pub filter: DeviceFilter,
    /// Set when the device does not exist (yet) but is traced anyway: the tool prints it
    /// as a warning. Only a `major,minor` (or a device node) can be traced before it
    /// exists; an unknown name is an error.
    pub warning: Option<String>,
}

impl DeviceSpec {
    /// Finds the device in `/sys` (see [`DeviceSpec::resolve_in`]).
    pub fn resolve(&self) -> Result<ResolvedDevice> {
        self.resolve_in(std::path::Path::new("/sys"))
    }

    /// Finds the device in the sysfs tree at `sys`: a name through
    /// `class/block/<name>/dev`, a number or device node through `dev/block/M:m`. A
    /// partition becomes its disk plus its sector range (`start`, `size`). An unknown name
    /// (or a path that is not a block device) is an error listing the block devices; a
    /// `major,minor` that does not exist is traced anyway, with a warning, since the
    /// original allowed tracing a device that may appear.
    pub fn resolve_in(&self, sys: &std::path::Path) -> Result<ResolvedDevice> {
        let number = match self {
            DeviceSpec::Number(d) => *d,
            DeviceSpec::Name(name) => {
                let dir = sys.join("class/block").join(name);
                if name.contains('/') || !dir.join("dev").is_file() {
                    bail!(
                        "no block device named '{}' (block devices: {}; or give major,minor)",
                        perf_tools_core::output::escape(name.as_bytes()),
                        block_device_names(sys)
                    );
                }
                return Ok(ResolvedDevice {
                    filter: filter_for(&dir)?,
                    warning: None,
                });
            }
            DeviceSpec::Path(path) => {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                let shown = perf_tools_core::output::escape(path.as_os_str().as_encoded_bytes());
                let meta = std::fs::metadata(path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot use {shown} as a block device: {e} (block devices: {})",
                        block_device_names(sys)
                    )
                })?;
                if !meta.file_type().is_block_device() {
                    bail!(
                        "{shown} is not a block device (block devices: {})",
                        block_device_names(sys)
                    );
                }
                let rdev = meta.rdev();
                Device {
                    major: (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32,
                    minor: ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32,
                }
            }
        };
        let dir = sys
            .join("dev/block")
            .join(format!("{}:{}", number.major, number.minor));
        if !dir.join("dev").is_file() {
            return Ok(ResolvedDevice {
                filter: DeviceFilter {
                    dev: number,
                    sectors: None,
                },
                warning: Some(format!(
                    "block device {number} does not exist (yet); tracing it anyway, rows appear if it does (block devices: {})",
                    block_device_names(sys)
                )),
            });
        }
        Ok(ResolvedDevice {
            filter: filter_for(&dir)?,
            warning: None,
        })
    }
}

/// Resolves a tool's `-d` argument, if any (see [`DeviceSpec::resolve`]), printing the
/// warning for a device that does not exist yet on stderr. Tools call it before creating
/// any kernel state.
pub fn device_filter(spec: Option<&DeviceSpec>) -> Result<Option<DeviceFilter>> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let r = spec.resolve()?;
    if let Some(w) = &r.warning {
        eprintln!("WARNING: {w}");
    }
    Ok(Some(r.filter))
}

/// Reads a `M:m` device number file of sysfs.
fn read_dev(path: &std::path::Path) -> Result<Device> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{}: {e}", path.display()))
}

fn read_u64(path: &std::path::Path) -> Result<u64> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The filter for the sysfs directory of a block device (`class/block/<name>`): a disk
/// is itself; a partition is its disk (the parent directory) and its sector range.
fn filter_for(dir: &std::path::Path) -> Result<DeviceFilter> {
    let dev = read_dev(&dir.join("dev"))?;
    if !dir.join("partition").exists() {
        return Ok(DeviceFilter { dev, sectors: None });
    }
    let start = read_u64(&dir.join("start"))?;
    let size = read_u64(&dir.join("size"))?;
    // `dir` is a symlink into the device tree, where a partition sits in its disk's
    // directory: `..` (resolved after the link) is the disk.
    Ok(DeviceFilter {
        dev: read_dev(&dir.join("../dev"))?,
        sectors: Some(start..start.saturating_add(size)),
    })
}

/// The block devices of the system, for error messages: `loop0, sda, sda1, ...`.
fn block_device_names(sys: &std::path::Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(sys.join("class/block"))
        .map(|d| {
            d.flatten()
                .map(|e| perf_tools_core::output::escape(e.file_name().as_encoded_bytes()))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return "none found".into();
    }
    names.sort_by_key(|a| natural_key(a));
    names.join(", ")
}

/// Sorts `loop2` before `loop10`.
fn natural_key(s: &str) -> (String, usize, String) {
    let head: String = s.chars().take_while(|c| !c.is_ascii_digit()).collect();
    (head, s.len(), s.to_string())
}

/// Which tracepoint marks the start of an I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPoint {
    /// `block_rq_issue`: the request is sent to the device (latency = device time).
    Issue,
    /// `block_rq_insert`: the request enters the I/O scheduler queue (latency includes
    /// queueing). On blk-mq, requests that bypass the scheduler never fire insert; they
    /// are then timed from `block_rq_issue`.
    Insert,
}

/// The in-kernel filters for a block trace: `(start filter, completion filter)`.
/// `None` means no filter for that event. `tid` keeps only starts by that thread
/// (`common_pid`: the thread on CPU when the request was issued or queued).
pub fn filters(
    device: Option<&DeviceFilter>,
    iotype: Option<&str>,
    tid: Option<u32>,
) -> Result<(Option<String>, Option<String>)> {
    let mut common = Vec::new();
    if let Some(t) = iotype {
        if t.contains('"') || t.contains('\\') {
            bail!("invalid I/O type glob {t:?}: quotes and backslashes are not allowed");
        }
        common.push(format!("rwbs ~ \"{t}\""));
    }
    if let Some(d) = device {
        common.push(format!("dev == {}", d.dev.to_kernel()));
        if let Some(r) = &d.sectors {
            common.push(format!("sector >= {} && sector < {}", r.start, r.end));
        }
    }
    let mut start = common.clone();
    if let Some(p) = tid {
        start.push(format!("common_pid == {p}"));
    }
    let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join(" && "));
    Ok((join(start), join(common)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parsing_and_encoding() {
        let d: Device = "202,1".parse().unwrap();
        assert_eq!(d.to_kernel(), (202 << 20) | 1);
        assert_eq!(Device::from_kernel(d.to_kernel()), d);
        assert_eq!("7:3".parse::<Device>().unwrap().to_string(), "7,3");
        assert!("202".parse::<Device>().is_err());
        assert!("a,b".parse::<Device>().is_err());
        assert!("5000,1".parse::<Device>().is_err());
    }

    /// A sysfs tree as the kernel lays it out for a disk `sda` (8,0) with partition
    /// `sda1` (8,1, sectors 2048..6144), `loop0` (7,0) and `nvme0n1` (259,0).
    fn fake_sysfs(tag: &str) -> std::path::PathBuf {
        use std::os::unix::fs::symlink;
        let root =
            std::env::temp_dir().join(format!("ptrs-fake-sysfs-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let devices = root.join("devices/virtual/block");
        for (path, dev) in [
            ("sda", "8:0"),
            ("sda/sda1", "8:1"),
            ("loop0", "7:0"),
            ("nvme0n1", "259:0"),
        ] {
            let d = devices.join(path);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
            let name = path.rsplit('/').next().unwrap();
            std::fs::create_dir_all(root.join("class/block")).unwrap();
            std::fs::create_dir_all(root.join("dev/block")).unwrap();
            symlink(&d, root.join("class/block").join(name)).unwrap();
            symlink(&d, root.join("dev/block").join(dev)).unwrap();
        }
        let p = devices.join("sda/sda1");
        std::fs::write(p.join("partition"), "1\n").unwrap();
        std::fs::write(p.join("start"), "2048\n").unwrap();
        std::fs::write(p.join("size"), "4096\n").unwrap();
        root
    }

    #[test]
    fn device_specs_parse_numbers_names_and_paths() {
        let p = |s: &str| s.parse::<DeviceSpec>();
        assert_eq!(
            p("202,1").unwrap(),
            DeviceSpec::Number(Device {
                major: 202,
                minor: 1
            })
        );
        assert_eq!(p("sda").unwrap(), DeviceSpec::Name("sda".into()));
        assert_eq!(p("nvme0n1").unwrap(), DeviceSpec::Name("nvme0n1".into()));
        assert_eq!(
            p("/dev/loop0").unwrap(),
            DeviceSpec::Path("/dev/loop0".into())
        );
        assert_eq!(
            p("mapper/vg-root").unwrap(),
            DeviceSpec::Path("/dev/mapper/vg-root".into())
        );
        for bad in ["202", "", "x,y", "5000,1", "..", "1,"] {
            let e = p(bad).unwrap_err();
            assert!(e.contains("major"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn device_names_resolve_through_sysfs() {
        let sys = fake_sysfs("names");
        let r = |s: &str| s.parse::<DeviceSpec>().unwrap().resolve_in(&sys);
        let disk = |major, minor| DeviceFilter {
            dev: Device { major, minor },
            sectors: None,
        };
        for (spec, want) in [
            ("sda", disk(8, 0)),
            ("loop0", disk(7, 0)),
            ("nvme0n1", disk(259, 0)),
            ("7,0", disk(7, 0)),
            ("259:0", disk(259, 0)),
        ] {
            let got = r(spec).unwrap();
            assert_eq!((got.filter, got.warning), (want, None), "{spec}");
        }
        // A partition, by name or by number: its disk and its sector range.
        for spec in ["sda1", "8,1"] {
            let got = r(spec).unwrap();
            assert_eq!(
                got.filter,
                DeviceFilter {
                    dev: Device { major: 8, minor: 0 },
                    sectors: Some(2048..6144)
                },
                "{spec}"
            );
        }
        std::fs::remove_dir_all(sys).unwrap();
    }

    #[test]
    fn an_unknown_device_name_is_an_error_listing_the_block_devices() {
        let sys = fake_sysfs("unknown");
        for spec in ["sdz", "sda\x1b[2J"] {
            let e = DeviceSpec::Name(spec.into())
                .resolve_in(&sys)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("no block device named '"), "{e}");
            assert!(
                e.contains("(block devices: loop0, nvme0n1, sda, sda1; or give major,minor)"),
                "{e}"
            );
            assert!(!e.contains('\x1b'), "the name is escaped: {e}");
        }
        // A path that is missing, or not a block device.
        let e = DeviceSpec::Path("/nonexistent/dev".into())
            .resolve_in(&sys)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot use /nonexistent/dev as a block device"),
            "{e}"
        );
        assert!(e.contains("block devices: loop0"), "{e}");
        let e = DeviceSpec::Path("/dev/null".into())
            .resolve_in(&sys)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/dev/null is not a block device"), "{e}");
        std::fs::remove_dir_all(sys).unwrap();
    }

    #[test]
    fn a_missing_major_minor_is_traced_with_a_warning() {
        let sys = fake_sysfs("missing");
        let got = "999,999"
            .parse::<DeviceSpec>()
            .unwrap()
            .resolve_in(&sys)
            .unwrap();
        assert_eq!(
            got.filter,
            DeviceFilter {
                dev: Device {
                    major: 999,
                    minor: 999
                },
                sectors: None
            }
        );
        let w = got.warning.unwrap();
        assert!(
            w.starts_with("block device 999,999 does not exist (yet); tracing it anyway"),
            "{w}"
        );
        std::fs::remove_dir_all(sys).unwrap();
    }

    #[test]
    fn filter_strings_match_the_original() {
        let d = DeviceFilter {
            dev: Device { major: 7, minor: 0 },
            sectors: None,
        };
        let (s, c) = filters(Some(&d), Some("*R*"), Some(42)).unwrap();
        assert_eq!(
            s.unwrap(),
            "rwbs ~ \"*R*\" && dev == 7340032 && common_pid == 42"
        );
        assert_eq!(c.unwrap(), "rwbs ~ \"*R*\" && dev == 7340032");
        // A partition: its disk, and its sectors on the disk.
        let p = DeviceFilter {
            dev: Device { major: 8, minor: 0 },
            sectors: Some(2048..6144),
        };
        let (s, c) = filters(Some(&p), None, None).unwrap();
        assert_eq!(s, c);
        assert_eq!(
            c.unwrap(),
            "dev == 8388608 && sector >= 2048 && sector < 6144"
        );
        let (s, c) = filters(None, None, Some(1)).unwrap();
        assert_eq!((s.as_deref(), c), (Some("common_pid == 1"), None));
        assert!(filters(None, Some("\"x"), None).is_err());
    }
}
