//! Block-layer request events (`block:block_rq_insert`, `block_rq_issue`,
//! `block_rq_complete`): decoding by format, in-kernel filters, and pairing of a
//! request's start with its completion. Shared by iosnoop and iolatency.

pub mod diskstats;
mod inflight_table;

use crate::inflight_table::{Key, Table};
use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

use perf_tools_ftrace::format::{EventFormat, Field};
use perf_tools_ftrace::instance::Instance;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::reader::Gap;

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

/// Who started a request: the thread on CPU when its start event fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Who {
    /// Thread id.
    pub pid: i32,
    /// Its command name, NUL-padded (read up to the first NUL).
    pub comm: [u8; 16],
    /// True if this start is the request's queue insert (`block_rq_insert`), false if it
    /// is its issue (`block_rq_issue`): with [`StartPoint::Insert`], requests that never
    /// passed the I/O scheduler queue are timed from issue, and this tells them apart.
    pub queued: bool,
}

/// What a completed request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct What {
    /// Sectors completed.
    pub nr_sector: u32,
    /// The rwbs string (`R`, `WS`, `RA`, …), NUL-padded (read up to the first NUL).
    pub rwbs: [u8; 16],
}

/// How much of each event a trace keeps besides its kind, device, sector and time:
/// [`Full`] keeps [`Who`] and [`What`] (iosnoop prints them), [`Lean`] keeps nothing more
/// (iolatency needs only the times), so the events held for merging and the starts held
/// in flight are half the size or less, and the payload fields are never read.
pub trait Detail: Copy + fmt::Debug + PartialEq + Eq {
    /// What a start keeps: [`Who`] or `()`.
    type Who: Copy + fmt::Debug + PartialEq + Eq;
    /// What a completion keeps: [`What`] or `()`.
    type What: Copy + fmt::Debug + PartialEq + Eq;
    /// The start's detail; calls `read` only if this detail keeps it.
    fn who(read: impl FnOnce() -> Who) -> Self::Who;
    /// The completion's detail; calls `read` only if this detail keeps it.
    fn what(read: impl FnOnce() -> What) -> Self::What;
}

/// Keep who started each request and its type and size (iosnoop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Detail for Full {
    type Who = Who;
    type What = What;
    #[inline(always)]
    fn who(read: impl FnOnce() -> Who) -> Who {
        read()
    }
    #[inline(always)]
    fn what(read: impl FnOnce() -> What) -> What {
        read()
    }
}

/// Keep only device, sector and times (iolatency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lean;

impl Detail for Lean {
    type Who = ();
    type What = ();
    #[inline(always)]
    fn who(_: impl FnOnce() -> Who) {}
    #[inline(always)]
    fn what(_: impl FnOnce() -> What) {}
}

/// A decoded block event, with the detail `D` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEvent<D: Detail = Full> {
    /// `block_rq_insert` (queued) or `block_rq_issue` (sent to the device).
    Start {
        /// True for `block_rq_issue`, false for `block_rq_insert`.
        issue: bool,
        /// Device.
        dev: Device,
        /// First 512-byte sector.
        sector: u64,
        /// Who started it ([`Who`] with [`Full`]).
        who: D::Who,
    },
    /// `block_rq_complete`.
    Complete {
        /// Device.
        dev: Device,
        /// First 512-byte sector.
        sector: u64,
        /// What it was ([`What`] with [`Full`]).
        what: D::What,
    },
}

/// Where an integer field lives: `(offset, size)` with size 1, 2, 4 or 8.
type Int = (usize, usize);

#[derive(Debug, Clone)]
struct Accessors {
    id: u16,
    issue: bool,
    dev: Int,
    sector: Int,
    pid: Int,
    pid_signed: bool,
    nr_sector: Int,
    /// `comm` for starts, `rwbs` for completions: a fixed char array copied whole.
    text: Option<Int>,
    /// The payload must be at least this long for every accessor to be in bounds.
    min_len: usize,
}

fn int(f: &Field) -> Result<Int> {
    if f.location != perf_tools_ftrace::format::Location::Fixed || ![1, 2, 4, 8].contains(&f.size) {
        bail!("field {} is not an integer (size {})", f.name, f.size);
    }
    Ok((f.offset, f.size))
}

fn accessors(fmt: &EventFormat, issue: bool, complete: bool) -> Result<Accessors> {
    let pid = fmt.require("common_pid")?;
    let text = if complete {
        Some(fmt.require("rwbs")?)
    } else {
        fmt.field("comm").cloned()
    }
    .filter(|f| f.location == perf_tools_ftrace::format::Location::Fixed)
    .map(|f| (f.offset, f.size.min(16)));
    let mut a = Accessors {
        id: fmt.id,
        issue,
        dev: int(&fmt.require("dev")?)?,
        sector: int(&fmt.require("sector")?)?,
        pid: int(&pid)?,
        pid_signed: pid.signed,
        nr_sector: if complete {
            int(&fmt.require("nr_sector")?)?
        } else {
            (0, 0)
        },
        text,
        min_len: 0,
    };
    a.min_len = [
        a.dev,
        a.sector,
        a.pid,
        a.nr_sector,
        a.text.unwrap_or((0, 0)),
    ]
    .iter()
    .map(|&(o, n)| o + n)
    .max()
    .unwrap_or(0);
    Ok(a)
}

/// Reads an integer at `(offset, size)`; the caller checked the payload is long enough.
#[inline(always)]
fn read_int(p: &[u8], (off, size): Int) -> u64 {
    perf_tools_ftrace::format::read_uint(p, off, size).unwrap_or(0)
}

/// Copies a fixed char array whole (NUL padding included: readers trim at the NUL).
#[inline(always)]
fn read_text<const N: usize>(p: &[u8], at: Option<Int>) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some((off, n)) = at {
        if let Some(src) = p.get(off..off + n.min(N)) {
            out[..src.len()].copy_from_slice(src);
        }
    }
    out
}

/// Field accessors for the block events a trace uses, compiled once from the running
/// kernel's format files.
#[derive(Debug, Clone)]
pub struct BlockDecoder {
    starts: Vec<Accessors>,
    complete: Accessors,
}

impl BlockDecoder {
    /// The tracepoints to enable for `start`.
    pub fn events(start: StartPoint) -> &'static [&'static str] {
        match start {
            StartPoint::Issue => &["block_rq_issue", "block_rq_complete"],
            StartPoint::Insert => &["block_rq_insert", "block_rq_issue", "block_rq_complete"],
        }
    }

    /// Builds a decoder from format files (as read from a kernel or from fixtures).
    pub fn from_formats(
        insert: Option<&EventFormat>,
        issue: &EventFormat,
        complete: &EventFormat,
    ) -> Result<Self> {
        let mut starts = Vec::new();
        if let Some(i) = insert {
            starts.push(accessors(i, false, false)?);
        }
        starts.push(accessors(issue, true, false)?);
        Ok(BlockDecoder {
            starts,
            complete: accessors(complete, false, true)?,
        })
    }

    /// Reads the format files of the events for `start` from an instance.
    pub fn load(inst: &Instance, start: StartPoint) -> Result<Self> {
        let insert = match start {
            StartPoint::Insert => Some(inst.event_format("block", "block_rq_insert")?),
            StartPoint::Issue => None,
        };
        let issue = inst.event_format("block", "block_rq_issue")?;
        let complete = inst.event_format("block", "block_rq_complete")?;
        Self::from_formats(insert.as_ref(), &issue, &complete)
    }

    /// Decodes one event payload with every detail; `None` for other events or
    /// truncated payloads.
    #[inline]
    pub fn decode(&self, payload: &[u8]) -> Option<BlockEvent> {
        self.decode_as::<Full>(payload)
    }

    /// Decodes one event payload, reading only the fields `D` keeps.
    #[inline]
    pub fn decode_as<D: Detail>(&self, payload: &[u8]) -> Option<BlockEvent<D>> {
        let id = u16::from_ne_bytes([*payload.first()?, *payload.get(1)?]);
        let c = &self.complete;
        if id == c.id {
            if payload.len() < c.min_len {
                return None;
            }
            return Some(BlockEvent::Complete {
                dev: Device::from_kernel(read_int(payload, c.dev) as u32),
                sector: read_int(payload, c.sector),
                what: D::what(|| What {
                    nr_sector: read_int(payload, c.nr_sector) as u32,
                    rwbs: read_text(payload, c.text),
                }),
            });
        }
        let a = self.starts.iter().find(|a| a.id == id)?;
        if payload.len() < a.min_len {
            return None;
        }
        Some(BlockEvent::Start {
            issue: a.issue,
            dev: Device::from_kernel(read_int(payload, a.dev) as u32),
            sector: read_int(payload, a.sector),
            who: D::who(|| Who {
                pid: perf_tools_ftrace::format::to_i64(
                    read_int(payload, a.pid),
                    a.pid.1,
                    a.pid_signed,
                ) as i32,
                comm: read_text(payload, a.text),
                queued: !a.issue,
            }),
        })
    }
}

/// Sets up a block-I/O trace for `tool` in its own instance and starts reading it: mono
/// trace clock, `buffer_kb` KiB per CPU, the reader's wake-up watermark `buffer_percent`,
/// the start/completion filters (from [`filters`]) and the events for `start`, then
/// tracing on. Returns the running session and the decoder for its events.
pub fn start_trace(
    tracefs: &perf_tools_ftrace::tracefs::Tracefs,
    tool: &str,
    start: StartPoint,
    (start_filter, complete_filter): &(Option<String>, Option<String>),
    buffer_kb: u32,
    buffer_percent: u32,
) -> Result<(perf_tools_ftrace::session::Session, BlockDecoder)> {
    let inst = perf_tools_ftrace::cleanup::start_instance(tracefs, tool)?;
    // Each of the next three writes costs the kernel at least one RCU grace period (the
    // clock: two; the buffers: reallocation), so none is made when the value is already
    // in place. Sub-buffers first: resizing then allocates 64 KiB ones directly.
    inst.ensure("trace_clock", "mono")?;
    // Larger sub-buffers (Linux 6.8+) cut the read() calls and page swaps per event by
    // 16x, most of the kernel-side cost of reading a busy trace; older kernels keep
    // their page-sized ones.
    let _ = inst.ensure("buffer_subbuf_size_kb", "64");
    inst.ensure("buffer_size_kb", &buffer_kb.to_string())?;
    // Older kernels have no buffer_percent: reading then simply wakes on any data.
    let _ = inst.ensure("buffer_percent", &buffer_percent.to_string());
    let decoder = BlockDecoder::load(&inst, start)?;
    for &ev in BlockDecoder::events(start) {
        let filter = if ev == "block_rq_complete" {
            complete_filter
        } else {
            start_filter
        };
        if let Some(f) = filter {
            inst.set_filter("block", ev, f)?;
        }
    }
    for &ev in BlockDecoder::events(start) {
        inst.enable_event("block", ev)?;
    }
    inst.set_tracing_on(true)?;
    Ok((perf_tools_ftrace::session::Session::start(inst)?, decoder))
}

/// The layout of a block request event, from its format: Linux 6.11 added the `ioprio`
/// field to the `block_rq_*` events (moving `rwbs` and `comm`). The decoder reads either
/// by field name; this is what `--check` and the doctor show.
pub fn layout_name(fmt: &EventFormat) -> &'static str {
    if fmt.field("ioprio").is_some() {
        "6.11+ (with ioprio)"
    } else {
        "pre-6.11 (no ioprio)"
    }
}

/// The `--check` of a block I/O tool (iosnoop, iolatency): tracefs, a private instance,
/// the `block_rq_issue`/`block_rq_complete` events (and `block_rq_insert` for `-Q`) with
/// a layout the decoder reads, and the events enabled once to see the kernel take them.
/// Everything created is removed before it returns.
pub fn check(tool: &str) -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut report = Report::new(tool);
    let Some(tracefs) = fc::tracefs(&mut report) else {
        return Ok(report);
    };
    let Some(inst) = fc::instance(&tracefs, tool, &mut report) else {
        return Ok(report);
    };
    let fix =
        "use a kernel built with CONFIG_BLOCK=y and CONFIG_EVENT_TRACING=y (block tracepoints)";
    let dir = inst.dir().to_path_buf();
    let issue = fc::event(&mut report, &dir, "block", "block_rq_issue", true, fix);
    let complete = fc::event(&mut report, &dir, "block", "block_rq_complete", true, fix);
    let insert = fc::event(
        &mut report,
        &dir,
        "block",
        "block_rq_insert",
        false,
        "none needed: -Q (queue time) is unavailable without it",
    );
    if let (Some(issue), Some(complete)) = (&issue, &complete) {
        match BlockDecoder::from_formats(insert.as_ref(), issue, complete) {
            Ok(_) => {
                report.item(
                    "layout",
                    Status::Yes,
                    format!(
                        "{}; decoded by field name (dev, sector, nr_sector, rwbs, comm)",
                        layout_name(issue)
                    ),
                    "",
                    true,
                );
            }
            Err(e) => {
                report.item(
                    "layout",
                    Status::No,
                    format!("{e:#}"),
                    "report this kernel's block_rq_* format files as a bug of perf-tools-rs",
                    true,
                );
            }
        }
        let mut events = vec![("block", "block_rq_issue"), ("block", "block_rq_complete")];
        if insert.is_some() {
            events.push(("block", "block_rq_insert"));
        }
        fc::verify_recording(&inst, &events, &mut report);
    }
    inst.remove()?;
    report.uses = if report.verdict() == Status::No {
        "block tracepoints unavailable".to_string()
    } else if insert.is_some() {
        "block_rq_issue/block_rq_complete (block_rq_insert for -Q) in a private instance"
            .to_string()
    } else {
        "block_rq_issue/block_rq_complete in a private instance (no -Q)".to_string()
    };
    Ok(report)
}

/// The start of an I/O still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start<W = Who> {
    /// Start timestamp (ns, trace clock).
    pub ts: u64,
    /// Who started it ([`Who`] with [`Full`] detail).
    pub who: W,
}

/// A completed I/O: its start and completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed<D: Detail = Full> {
    /// The matching start.
    pub start: Start<D::Who>,
    /// Completion timestamp (ns).
    pub end_ts: u64,
    /// Device.
    pub dev: Device,
    /// First sector.
    pub sector: u64,
    /// What it was ([`What`] with [`Full`] detail).
    pub what: D::What,
}

impl<D: Detail> Completed<D> {
    /// Latency in nanoseconds.
    pub fn latency_ns(&self) -> u64 {
        self.end_ts.saturating_sub(self.start.ts)
    }
}

impl Key {
    #[inline(always)]
    fn new(dev: Device, sector: u64) -> Key {
        Key {
            dev: dev.to_kernel(),
            sector,
        }
    }
}

/// Marks a start in the table as invalidated by a gap (the top bit of its time stamp:
/// trace clocks in nanoseconds stay below 2^63 for 292 years).
const DEAD: u64 = 1 << 63;

/// Pairs starts with completions by (device, sector).
///
/// Starts wait in a bounded table; starts older than `max_age_ns` are dropped, and a
/// completion without a start is dropped. When events were lost ([`Inflight::gap`]),
/// no start from before the loss pairs with a completion after it: the start's own
/// completion, or a later start of the same sector, may be among the lost events, and
/// pairing across the loss would print the time between two different I/Os. Such
/// starts are kept as invalidated entries (so their completion, or in `-Q` mode their
/// issue, is absorbed rather than timed) and counted in `dropped_at_gap`. In-flight
/// starts survive across output intervals.
#[derive(Debug)]
pub struct Inflight<D: Detail = Full> {
    table: Table<Start<D::Who>>,
    prefer_insert: bool,
    max_age_ns: u64,
    capacity: usize,
    last_sweep: u64,
    /// Starts dropped because they aged out or the table was full.
    pub aged_out: u64,
    /// Completions that had no start (filtered out, started before tracing, or lost).
    pub unmatched: u64,
    /// I/Os not timed because their start came before a loss of events and their
    /// completion (if any arrived) after it.
    pub dropped_at_gap: u64,
    /// Starts no newer than this are invalidated on arrival (the end of the latest loss).
    gap_until: Option<u64>,
}

impl<D: Detail> Inflight<D> {
    /// Creates a table; `start` decides which start wins when both insert and issue fire.
    pub fn new(start: StartPoint) -> Inflight<D> {
        Inflight {
            table: Table::with_capacity(1024),
            prefer_insert: start == StartPoint::Insert,
            max_age_ns: 120_000_000_000,
            capacity: 1 << 20,
            last_sweep: 0,
            aged_out: 0,
            unmatched: 0,
            dropped_at_gap: 0,
            gap_until: None,
        }
    }

    /// Overrides the age limit and the table size (for tests).
    pub fn with_limits(mut self, max_age_ns: u64, capacity: usize) -> Inflight<D> {
        self.max_age_ns = max_age_ns;
        self.capacity = capacity.max(1);
        self
    }

    /// Number of starts waiting for completion.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if no start is waiting.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Events were lost, none of them newer than `until`; call it in time order with
    /// the events, at (or before) the time of the oldest lost event. Every start in
    /// flight is invalidated, and so is every later start no newer than `until`: none
    /// of them pairs with a completion.
    pub fn gap(&mut self, until: u64) {
        let mut dropped = 0;
        self.table.for_each_mut(|s| {
            if s.ts & DEAD == 0 {
                s.ts |= DEAD;
                dropped += 1;
            }
        });
        self.dropped_at_gap += dropped;
        self.gap_until = self.gap_until.max(Some(until));
    }

    /// Feeds one event in time order; returns a completed I/O when it closes one.
    /// `keep_start` decides whether a start is tracked (e.g. a process-name filter).
    #[inline]
    pub fn feed(
        &mut self,
        ts: u64,
        ev: &BlockEvent<D>,
        keep_start: impl FnOnce(&D::Who) -> bool,
    ) -> Option<Completed<D>> {
        match *ev {
            BlockEvent::Start {
                issue,
                dev,
                sector,
                who,
            } => {
                if ts.saturating_sub(self.last_sweep) > 1_000_000_000
                    || self.table.len() >= self.capacity
                {
                    self.sweep(ts);
                }
                let key = Key::new(dev, sector);
                if issue && self.prefer_insert {
                    // -Q: keep the queue-insert time when insert fired; else time from
                    // issue. An insert invalidated by a gap stays invalid: its issue
                    // must not time the I/O from the issue instead.
                    if let Some(s) = self.table.get(&key) {
                        if ts.saturating_sub(s.ts & !DEAD) <= self.max_age_ns {
                            return None;
                        }
                    }
                }
                if keep_start(&who) {
                    let ts = if self.gap_until.is_some_and(|until| ts <= until) {
                        self.dropped_at_gap += 1;
                        ts | DEAD
                    } else {
                        ts
                    };
                    self.table.insert(key, Start { ts, who });
                } else {
                    self.table.remove(&key);
                }
                None
            }
            BlockEvent::Complete { dev, sector, what } => {
                match self.table.remove(&Key::new(dev, sector)) {
                    // Started before a loss: not timed (counted when invalidated).
                    Some(start) if start.ts & DEAD != 0 => None,
                    Some(start) if ts >= start.ts && ts - start.ts <= self.max_age_ns => {
                        Some(Completed {
                            start,
                            end_ts: ts,
                            dev,
                            sector,
                            what,
                        })
                    }
                    Some(_) => {
                        self.aged_out += 1;
                        None
                    }
                    None => {
                        self.unmatched += 1;
                        None
                    }
                }
            }
        }
    }

    fn sweep(&mut self, now: u64) {
        self.last_sweep = now;
        let before = self.table.len();
        let mut limit = now.saturating_sub(self.max_age_ns);
        self.table.retain(|s| s.ts & !DEAD >= limit);
        // Still full: drop the oldest half by age.
        if self.table.len() >= self.capacity {
            let mut ts: Vec<u64> = self.table.values().map(|s| s.ts & !DEAD).collect();
            ts.sort_unstable();
            limit = ts[ts.len() / 2];
            self.table.retain(|s| s.ts & !DEAD >= limit);
        }
        self.aged_out += (before - self.table.len()) as u64;
    }
}

/// What the merge holds: an event, or the place of a loss of events in a CPU's stream
/// (with the time stamp no lost event is newer than).
#[derive(Debug, Clone, Copy)]
enum Held<D: Detail> {
    Event(BlockEvent<D>),
    Gap { until: u64 },
}

/// The per-event path of a block trace as one unit, shared by iosnoop and iolatency:
/// decode each raw event by format, order events across CPUs ([`Merger`]), and pair
/// starts with completions ([`Inflight`]), keeping the detail `D` of each event.
#[derive(Debug)]
pub struct BlockPipeline<D: Detail = Full> {
    decoder: BlockDecoder,
    merger: Merger<Held<D>>,
    /// Starts waiting for their completion, and pairing statistics.
    pub inflight: Inflight<D>,
    /// Events that were not block events of this trace, or were truncated.
    pub undecoded: u64,
    /// Losses of events reached in time order and not yet taken by
    /// [`BlockPipeline::take_gaps`]: `(after, before)`, every lost event in between.
    gaps: Vec<(u64, u64)>,
}

impl<D: Detail> BlockPipeline<D> {
    /// A pipeline for events decoded by `decoder`, timed from `start`.
    pub fn new(decoder: BlockDecoder, start: StartPoint) -> BlockPipeline<D> {
        BlockPipeline {
            decoder,
            merger: Merger::new(),
            inflight: Inflight::new(start),
            undecoded: 0,
            gaps: Vec::new(),
        }
    }

    /// Takes one raw event read from CPU `cpu`'s buffer (events of one CPU in the order
    /// the kernel recorded them).
    #[inline]
    pub fn push(&mut self, cpu: u32, ts: u64, payload: &[u8]) {
        match self.decoder.decode_as::<D>(payload) {
            Some(ev) => self.merger.push(cpu as usize, ts, Held::Event(ev)),
            None => self.undecoded += 1,
        }
    }

    /// Takes a loss of events from a CPU's buffer, in its place in that CPU's stream
    /// (after the events read before it, before those read after it): when the merge
    /// reaches it, every start in flight is invalidated, and so is every start up to
    /// the end of the loss (see [`Inflight::gap`]).
    pub fn gap(&mut self, gap: Gap) {
        self.merger
            .push(gap.cpu as usize, gap.after, Held::Gap { until: gap.before });
    }

    /// The losses the merge has reached since the last call, as `(after, before)`
    /// time-stamp ranges holding every lost event (to mark output intervals as
    /// incomplete).
    pub fn take_gaps(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.gaps)
    }

    /// Pairs every held event up to `watermark` (a clock reading taken before the
    /// buffers were drained; `u64::MAX` at the end) in time order and calls `done` for
    /// each completed I/O. `keep_start(who)` decides whether a start is tracked.
    pub fn release(
        &mut self,
        watermark: u64,
        mut keep_start: impl FnMut(&D::Who) -> bool,
        mut done: impl FnMut(&Completed<D>),
    ) {
        let inflight = &mut self.inflight;
        let gaps = &mut self.gaps;
        self.merger.release(watermark, |ts, held| match held {
            Held::Event(ev) => {
                if let Some(c) = inflight.feed(ts, ev, &mut keep_start) {
                    done(&c);
                }
            }
            Held::Gap { until } => {
                inflight.gap(*until);
                // Bounded for tools that never take them: past 1024, one range
                // covering them all (still holding every lost event).
                if gaps.len() >= 1024 {
                    let all = gaps
                        .iter()
                        .fold((ts, *until), |a, g| (a.0.min(g.0), a.1.max(g.1)));
                    gaps.clear();
                    gaps.push(all);
                } else {
                    gaps.push((ts, *until));
                }
            }
        });
    }
}

/// Synthetic block traces in the running kernel's binary format, for benchmarks and
/// tests of the whole per-event path without a kernel.
#[cfg(any(test, feature = "testing"))]
pub mod synthetic {
    use super::{BlockPipeline, Detail, Device};
    use perf_tools_ftrace::format::EventFormat;
    use perf_tools_ftrace::reader::CpuPosition;
    use perf_tools_ftrace::ringbuf::{PageBuilder, PageLayout};

    /// Shape of a synthetic load.
    #[derive(Debug, Clone, Copy)]
    pub struct Load {
        /// Number of I/Os.
        pub ios: u64,
        /// CPUs whose buffers the events are spread over.
        pub cpus: u32,
        /// Nanoseconds between I/O starts.
        pub gap_ns: u64,
        /// I/Os in flight at once (latency = `depth * gap_ns`, plus jitter).
        pub depth: u64,
        /// The device every I/O goes to.
        pub dev: Device,
    }

    impl Load {
        /// The shape of `scripts/bench-block.sh`'s fio run on this project's 2-vCPU VM:
        /// `ios` I/Os on 2 CPUs, one every 7 µs (about 140k IOPS), 32 in flight, on 7,0.
        pub fn fio(ios: u64) -> Load {
            Load {
                ios,
                cpus: 2,
                gap_ns: 7_000,
                depth: 32,
                dev: Device { major: 7, minor: 0 },
            }
        }
    }

    /// Reads `block_rq_issue` and `block_rq_complete` format files from `dir` (e.g. the
    /// repository's `tests/fixtures/formats/6.18`).
    pub fn formats(dir: &std::path::Path) -> anyhow::Result<(EventFormat, EventFormat)> {
        let read = |name: &str| -> anyhow::Result<EventFormat> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            EventFormat::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        };
        Ok((read("block_rq_issue")?, read("block_rq_complete")?))
    }

    /// Rounds a benchmark repeats its timed part: `ROUNDS` from the environment (e.g. 50
    /// so the timed part dominates a `perf record`), else `default`.
    pub fn bench_rounds(default: usize) -> usize {
        std::env::var("ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(default)
    }

    fn payload(f: &EventFormat, ints: &[(&str, u64)], strs: &[(&str, &[u8])]) -> Vec<u8> {
        // Fixed part up to the last field, then an empty string for each __data_loc.
        let end = f
            .fields
            .iter()
            .map(|x| x.offset + x.size)
            .max()
            .unwrap_or(8);
        let mut p = vec![0u8; end];
        p[..2].copy_from_slice(&f.id.to_ne_bytes());
        for x in &f.fields {
            if x.location != perf_tools_ftrace::format::Location::Fixed && x.size == 4 {
                let loc = (1u32 << 16) | p.len() as u32;
                p[x.offset..x.offset + 4].copy_from_slice(&loc.to_ne_bytes());
                p.push(0);
            }
        }
        for (name, v) in ints {
            if let Some(x) = f.field(name) {
                let n = x.size.min(8);
                p[x.offset..x.offset + n].copy_from_slice(&v.to_ne_bytes()[..n]);
            }
        }
        for (name, v) in strs {
            if let Some(x) = f.field(name) {
                let n = v.len().min(x.size);
                p[x.offset..x.offset + n].copy_from_slice(&v[..n]);
            }
        }
        p
    }

    /// Builds the pages each CPU's `trace_pipe_raw` would return for `load`: 4 KiB
    /// random reads, each issued on one CPU and completed on the same or another one.
    /// Returns one list of pages per CPU, and the I/Os' latencies in ns (in I/O order).
    pub fn pages(
        issue: &EventFormat,
        complete: &EventFormat,
        layout: PageLayout,
        load: Load,
    ) -> (Vec<Vec<Vec<u8>>>, Vec<u64>) {
        let (per_cpu, ios) = events(issue, complete, load, 1 << 21);
        let pages = per_cpu
            .into_iter()
            .map(|evs| paginate(layout, evs.into_iter().map(|(ts, p)| (ts, p, false))))
            .collect();
        (pages, ios.iter().map(|io| io.end - io.start).collect())
    }

    /// One I/O of a synthetic trace.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Io {
        /// Its first sector.
        pub sector: u64,
        /// Time stamp of its start (`block_rq_issue`).
        pub start: u64,
        /// Time stamp of its completion.
        pub end: u64,
    }

    /// Like [`pages`], but with lost events, as a kernel buffer that overflowed hands
    /// them out: the I/Os go to only `blocks` 4 KiB blocks (so later I/Os reuse the
    /// sectors of earlier ones, as fio on a small device does; never two in flight at
    /// once), and for each `(cpu, at, len)` in `losses` that CPU's events `at..at + len`
    /// (taken modulo its number of events, never its last one) are left out; the page
    /// holding the first event after them is flagged with the number lost (stored, or
    /// unknown when `stored` is false), and the page before ends at the loss.
    /// Returns the pages per CPU, every I/O as it really happened, and the number of
    /// events left out.
    pub fn lossy_pages(
        issue: &EventFormat,
        complete: &EventFormat,
        layout: PageLayout,
        load: Load,
        blocks: u64,
        losses: &[(u32, usize, usize)],
        stored: bool,
    ) -> (Vec<Vec<Vec<u8>>>, Vec<Io>, u64) {
        let (per_cpu, ios) = events(issue, complete, load, blocks.max(2 * load.depth + 2));
        let mut lost_total = 0;
        let pages = per_cpu
            .into_iter()
            .enumerate()
            .map(|(cpu, evs)| {
                let n = evs.len();
                let mut lost = vec![false; n];
                for &(c, at, len) in losses {
                    if c as usize == cpu && n > 1 {
                        let from = at % (n - 1);
                        for l in &mut lost[from..(from + len).min(n - 1)] {
                            *l = true;
                        }
                    }
                }
                let mut run = 0u64;
                let mut kept = Vec::new();
                for (i, (ts, p)) in evs.into_iter().enumerate() {
                    if lost[i] {
                        run += 1;
                    } else {
                        kept.push((ts, p, run > 0));
                        lost_total += run;
                        run = 0;
                    }
                }
                // The stored count: the run lost right before each flagged event.
                let mut counts = Vec::new();
                let mut r = 0u64;
                for l in &lost {
                    if *l {
                        r += 1;
                    } else if r > 0 {
                        counts.push(r);
                        r = 0;
                    }
                }
                paginate_counts(layout, kept, counts, stored)
            })
            .collect();
        (pages, ios, lost_total)
    }

    /// The events of `load` per CPU, each CPU's in time order, and the I/Os. Sectors
    /// are picked among `blocks` 4 KiB blocks, skipping those of I/Os in flight.
    #[allow(clippy::type_complexity)]
    fn events(
        issue: &EventFormat,
        complete: &EventFormat,
        load: Load,
        blocks: u64,
    ) -> (Vec<Vec<(u64, Vec<u8>)>>, Vec<Io>) {
        let cpus = load.cpus.max(1) as u64;
        let mut per_cpu: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); cpus as usize];
        let mut ios = Vec::with_capacity(load.ios as usize);
        let dev = load.dev.to_kernel() as u64;
        let mut busy_until: std::collections::HashMap<u64, u64> = Default::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..load.ios {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = 1_000_000_000 + i * load.gap_ns;
            // At least 1 ns: a completion never shares its start's time stamp.
            let lat = (load.depth * load.gap_ns / 2 + x % (load.depth * load.gap_ns).max(1)).max(1);
            // A permutation of the blocks (of 2^21 by default: no sector repeats), moved
            // on past any block still in flight.
            let mut block = i.wrapping_mul(0x9e37_79b1) % blocks;
            while busy_until.get(&block).is_some_and(|&end| end >= ts) {
                block = (block + 1) % blocks;
            }
            busy_until.insert(block, ts + lat);
            let sector = block * 8;
            let pid = 1000 + (i % 4);
            let on = |k: u64| (k % cpus) as usize;
            per_cpu[on(i)].push((
                ts,
                payload(
                    issue,
                    &[
                        ("dev", dev),
                        ("sector", sector),
                        ("nr_sector", 8),
                        ("bytes", 4096),
                        ("common_pid", pid),
                    ],
                    &[("rwbs", b"R"), ("comm", b"fio")],
                ),
            ));
            per_cpu[on(x >> 40)].push((
                ts + lat,
                payload(
                    complete,
                    &[("dev", dev), ("sector", sector), ("nr_sector", 8)],
                    &[("rwbs", b"R")],
                ),
            ));
            ios.push(Io {
                sector,
                start: ts,
                end: ts + lat,
            });
        }
        for evs in &mut per_cpu {
            evs.sort_by_key(|e| e.0);
        }
        (per_cpu, ios)
    }

    /// Packs one CPU's events into pages; an event marked `true` starts a new page
    /// flagged with lost events (unknown count).
    fn paginate(
        layout: PageLayout,
        evs: impl IntoIterator<Item = (u64, Vec<u8>, bool)>,
    ) -> Vec<Vec<u8>> {
        paginate_counts(layout, evs.into_iter().collect(), Vec::new(), false)
    }

    /// [`paginate`], storing `counts[k]` in the `k`-th flagged page when `stored`.
    fn paginate_counts(
        layout: PageLayout,
        evs: Vec<(u64, Vec<u8>, bool)>,
        counts: Vec<u64>,
        stored: bool,
    ) -> Vec<Vec<u8>> {
        let mut counts = counts.into_iter();
        let mut out = Vec::new();
        let mut b: Option<(PageBuilder, Option<Option<u64>>)> = None;
        for (ts, p, after_loss) in evs {
            let fits = !after_loss && b.as_mut().is_some_and(|(b, _)| b.event(ts, &p));
            if !fits {
                if let Some((full, missed)) = b.take() {
                    out.push(full.finish(missed));
                }
                let mut nb = PageBuilder::new(layout, ts);
                nb.event(ts, &p);
                let missed = after_loss.then(|| counts.next().filter(|_| stored));
                b = Some((nb, missed));
            }
        }
        if let Some((last, missed)) = b {
            out.push(last.finish(missed));
        }
        out
    }

    /// Feeds `pages` (one list per CPU) to `pipe` the way the tools drain a live trace:
    /// up to `batch` pages from each CPU in turn, each event pushed into `pipe` (and
    /// each loss of events a page reports, as [`BlockPipeline::gap`]), then
    /// `release(pipe, watermark)` with the oldest timestamp that is safe to release (the
    /// newest one read from the CPU that is furthest behind; `u64::MAX` at the end).
    pub fn replay<D: Detail>(
        pages: &[Vec<Vec<u8>>],
        layout: &PageLayout,
        batch: usize,
        pipe: &mut BlockPipeline<D>,
        mut release: impl FnMut(&mut BlockPipeline<D>, u64),
    ) {
        let mut next = vec![0usize; pages.len()];
        let mut at: Vec<CpuPosition> = (0..pages.len() as u32)
            .map(|cpu| CpuPosition { cpu, last_ts: 0 })
            .collect();
        loop {
            let mut any = false;
            let mut watermark = u64::MAX;
            for (cpu, list) in pages.iter().enumerate() {
                for page in list.iter().skip(next[cpu]).take(batch) {
                    any = true;
                    // The tools' own page walk: losses reach the pipeline in place.
                    let _ = perf_tools_ftrace::reader::decode_page_with_gaps(
                        page,
                        layout,
                        &mut at[cpu],
                        pipe,
                        &mut |pipe: &mut BlockPipeline<D>, cpu, ts, payload: &[u8]| {
                            pipe.push(cpu, ts, payload)
                        },
                        &mut |pipe: &mut BlockPipeline<D>, gap| pipe.gap(gap),
                        || u64::MAX,
                    );
                }
                next[cpu] = (next[cpu] + batch).min(list.len());
                if next[cpu] < list.len() {
                    watermark = watermark.min(at[cpu].last_ts);
                }
            }
            release(pipe, watermark);
            if !any {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(dir: &str, ev: &str) -> EventFormat {
        let p = format!(
            "{}/../../tests/fixtures/formats/{dir}/{ev}",
            env!("CARGO_MANIFEST_DIR")
        );
        EventFormat::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// Builds a payload for `f` with the given integer and string field values.
    pub(crate) fn payload(
        f: &EventFormat,
        ints: &[(&str, u64)],
        strs: &[(&str, &[u8])],
    ) -> Vec<u8> {
        let mut p = vec![0u8; 128];
        p[..2].copy_from_slice(&f.id.to_ne_bytes());
        for (name, v) in ints {
            let fld = f.field(name).unwrap();
            p[fld.offset..fld.offset + fld.size].copy_from_slice(&v.to_ne_bytes()[..fld.size]);
        }
        for (name, v) in strs {
            let fld = f.field(name).unwrap();
            p[fld.offset..fld.offset + v.len()].copy_from_slice(v);
        }
        p
    }

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

    #[test]
    fn decodes_layouts_before_and_after_the_611_ioprio_field() {
        for dir in ["6.18", "6.12", "6.1", "5.10"] {
            let issue = fmt(dir, "block_rq_issue");
            let complete = fmt(dir, "block_rq_complete");
            let dec = BlockDecoder::from_formats(None, &issue, &complete).unwrap();
            let dev = (7u64 << 20) | 3;
            // 6.11 added ioprio between bytes and rwbs: later fields moved.
            assert_eq!(
                issue.field("ioprio").is_some(),
                dir != "6.1" && dir != "5.10",
                "{dir}"
            );
            let p = payload(
                &issue,
                &[("dev", dev), ("sector", 2048), ("common_pid", 77)],
                &[("comm", b"dd"), ("rwbs", b"R")],
            );
            match dec.decode(&p).unwrap() {
                BlockEvent::Start {
                    issue,
                    dev,
                    sector,
                    who,
                } => {
                    assert!(issue);
                    assert_eq!(
                        (dev.to_string(), sector, who.pid),
                        ("7,3".to_string(), 2048, 77)
                    );
                    assert_eq!(&who.comm[..3], b"dd\0");
                }
                e => panic!("{e:?}"),
            }
            let p = payload(
                &complete,
                &[("dev", dev), ("sector", 2048), ("nr_sector", 8)],
                &[("rwbs", b"WS")],
            );
            assert_eq!(
                dec.decode(&p).unwrap(),
                BlockEvent::Complete {
                    dev: Device { major: 7, minor: 3 },
                    sector: 2048,
                    what: What {
                        nr_sector: 8,
                        rwbs: *b"WS\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                    }
                }
            );
            // The lean decode keeps the same device and sector, and nothing else.
            assert_eq!(
                dec.decode_as::<Lean>(&p).unwrap(),
                BlockEvent::Complete {
                    dev: Device { major: 7, minor: 3 },
                    sector: 2048,
                    what: ()
                }
            );
        }
    }

    #[test]
    fn starts_say_whether_they_are_a_queue_insert() {
        for dir in ["6.18", "6.12", "6.1", "5.10"] {
            let insert = fmt(dir, "block_rq_insert");
            let issue = fmt(dir, "block_rq_issue");
            let complete = fmt(dir, "block_rq_complete");
            let dec = BlockDecoder::from_formats(Some(&insert), &issue, &complete).unwrap();
            for (f, queued) in [(&insert, true), (&issue, false)] {
                let p = payload(f, &[("dev", 7 << 20), ("sector", 8)], &[]);
                match dec.decode(&p) {
                    Some(BlockEvent::Start { who, .. }) => {
                        assert_eq!(who.queued, queued, "{dir}")
                    }
                    e => panic!("{dir}: {e:?}"),
                }
            }
        }
    }

    fn start(ts_dev_sector: (u64, u32, u64), issue: bool) -> (u64, BlockEvent) {
        let (ts, minor, sector) = ts_dev_sector;
        (
            ts,
            BlockEvent::Start {
                issue,
                dev: Device { major: 7, minor },
                sector,
                who: Who {
                    queued: !issue,
                    ..Who::default()
                },
            },
        )
    }

    fn done(ts: u64, minor: u32, sector: u64) -> (u64, BlockEvent) {
        (
            ts,
            BlockEvent::Complete {
                dev: Device { major: 7, minor },
                sector,
                what: What::default(),
            },
        )
    }

    #[test]
    fn lean_events_stay_small() {
        // What iolatency holds per event in the merge and per I/O in flight.
        use std::mem::size_of;
        assert!(size_of::<(u64, BlockEvent<Lean>)>() <= 32);
        assert!(
            size_of::<(u64, Held<Lean>)>() <= 32,
            "a gap marker costs no space"
        );
        assert_eq!(size_of::<Start<()>>(), 8);
        assert!(size_of::<(u64, BlockEvent<Lean>)>() < size_of::<(u64, BlockEvent<Full>)>());
    }

    #[test]
    fn pairs_by_device_and_sector() {
        let mut t = Inflight::new(StartPoint::Issue);
        let evs = [
            start((100, 0, 8), true),
            start((110, 1, 8), true),
            done(150, 1, 8),
            done(400, 0, 8),
            done(500, 0, 8),
        ];
        let lat: Vec<u64> = evs
            .iter()
            .filter_map(|(ts, e)| t.feed(*ts, e, |_| true))
            .map(|c| c.latency_ns())
            .collect();
        assert_eq!(lat, vec![40, 300]);
        assert_eq!(t.unmatched, 1, "a completion without a start is dropped");
        assert!(t.is_empty());
    }

    #[test]
    fn queue_mode_keeps_insert_time_and_falls_back_to_issue() {
        let mut t = Inflight::new(StartPoint::Insert);
        let evs = [
            start((100, 0, 8), false),
            start((130, 0, 8), true),
            done(200, 0, 8),
            start((300, 0, 16), true),
            done(350, 0, 16),
        ];
        let lat: Vec<(u64, bool)> = evs
            .iter()
            .filter_map(|(ts, e)| t.feed(*ts, e, |_| true))
            .map(|c| (c.latency_ns(), c.start.who.queued))
            .collect();
        // The second I/O never passed the queue: timed from issue, and marked so.
        assert_eq!(lat, vec![(100, true), (50, false)]);
    }

    #[test]
    fn old_starts_age_out_instead_of_pairing() {
        let mut t = Inflight::new(StartPoint::Issue).with_limits(1_000, 4);
        assert!(t.feed(0, &start((0, 0, 8), true).1, |_| true).is_none());
        assert!(t.feed(5_000, &done(5_000, 0, 8).1, |_| true).is_none());
        assert_eq!(t.aged_out, 1);
        // Capacity bound: the table never grows past its capacity.
        for i in 0..100u64 {
            t.feed(10_000 + i, &start((0, 0, 100 + i), true).1, |_| true);
            assert!(t.len() <= 4);
        }
    }

    #[test]
    fn no_start_before_a_gap_pairs_with_a_completion_after_it() {
        // Sector 8's completion at 150 and the next start of sector 8 at 160 were lost
        // (on another CPU); without the gap, 100 would pair with 420.
        let mut t = Inflight::new(StartPoint::Issue);
        assert!(t.feed(100, &start((100, 0, 8), true).1, |_| true).is_none());
        assert!(t
            .feed(110, &start((110, 0, 16), true).1, |_| true)
            .is_none());
        t.gap(200);
        assert_eq!(t.dropped_at_gap, 2, "every start in flight is invalidated");
        // A start inside the loss may have lost its completion too.
        assert!(t
            .feed(190, &start((190, 0, 24), true).1, |_| true)
            .is_none());
        assert_eq!(t.dropped_at_gap, 3);
        assert!(t.feed(420, &done(420, 0, 8).1, |_| true).is_none());
        assert!(t.feed(430, &done(430, 0, 24).1, |_| true).is_none());
        assert_eq!(
            t.unmatched, 0,
            "completions of invalidated starts are absorbed"
        );
        // After the loss, pairing resumes.
        assert!(t
            .feed(500, &start((500, 0, 16), true).1, |_| true)
            .is_none());
        let c = t.feed(530, &done(530, 0, 16).1, |_| true).unwrap();
        assert_eq!(c.latency_ns(), 30);
        assert_eq!(t.dropped_at_gap, 3);
        // Invalidated starts still age out.
        let mut t = Inflight::<Full>::new(StartPoint::Issue).with_limits(1_000, 4);
        t.feed(0, &start((0, 0, 8), true).1, |_| true);
        t.gap(10);
        for i in 0..8u64 {
            t.feed(5_000 + i, &start((0, 0, 100 + i), true).1, |_| true);
        }
        assert!(t.len() <= 4);
    }

    #[test]
    fn queue_mode_does_not_time_from_issue_when_the_insert_preceded_a_gap() {
        let mut t = Inflight::new(StartPoint::Insert);
        t.feed(100, &start((100, 0, 8), false).1, |_| true);
        t.gap(200);
        // The issue after the loss: timing it from the issue would hide the queue time.
        assert!(t.feed(300, &start((300, 0, 8), true).1, |_| true).is_none());
        assert!(t.feed(350, &done(350, 0, 8).1, |_| true).is_none());
        assert_eq!(t.dropped_at_gap, 1);
        // A later request bypassing the scheduler is timed from its issue again.
        t.feed(400, &start((400, 0, 8), true).1, |_| true);
        assert_eq!(
            t.feed(460, &done(460, 0, 8).1, |_| true)
                .unwrap()
                .latency_ns(),
            60
        );
    }

    #[test]
    fn name_filter_drops_starts() {
        let mut t = Inflight::new(StartPoint::Issue);
        t.feed(1, &start((1, 0, 8), true).1, |_| false);
        assert!(t.feed(2, &done(2, 0, 8).1, |_| true).is_none());
    }
}
