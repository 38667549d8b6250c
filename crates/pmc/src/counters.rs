//! Opening counters per CPU, per thread (with inherit) or on a held command
//! (enable_on_exec), reading them as groups with time_enabled/time_running, and turning
//! cumulative readings into per-interval values scaled for multiplexing.
//!
//! Events that share a group tag are opened as one perf group per target and PMU, so they
//! are scheduled onto the PMU together and their ratios (IPC, miss rates) are exact even
//! when the kernel multiplexes. If the PMU cannot take a whole group (the kernel refuses
//! the member with EINVAL), the remaining events start a new group.

use crate::cpu::{CorePmu, CpuInfo, Pmus};
use crate::event::{Event, Hw, Resolved};
use crate::explain::{is_unsupported_errno, OpenFailure};
use perf_event_open_sys as sys;
use perf_event_open_sys::bindings as b;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What a counter is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Everything on one CPU (`pid = -1, cpu = N`).
    Cpu(u32),
    /// One thread, on any CPU (`pid = TID, cpu = -1`), with its future children when
    /// [`Options::inherit`] is set.
    Task(i32),
    /// The tasks of one cgroup while they run on one CPU (`pid` = a descriptor of the
    /// cgroup's directory, `cpu = N`, `PERF_FLAG_PID_CGROUP`). The directory must be in
    /// the hierarchy the `perf_event` controller is attached to (v2, or a v1 hierarchy
    /// mounted with `perf_event`); the caller keeps the descriptor open while opening.
    Cgroup {
        /// An open descriptor of the cgroup's directory.
        fd: RawFd,
        /// The CPU.
        cpu: u32,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cpu(c) => write!(f, "CPU {c}"),
            Target::Task(t) => write!(f, "thread {t}"),
            Target::Cgroup { cpu, .. } => write!(f, "the cgroup on CPU {cpu}"),
        }
    }
}

/// How counters are opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Count children created after opening (threads and processes).
    pub inherit: bool,
    /// Start counting when the target calls exec (for a held command).
    pub enable_on_exec: bool,
    /// Count user mode only (`exclude_kernel`, `exclude_hv`).
    pub exclude_kernel: bool,
}

/// One event to count, and its group tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The event.
    pub event: Event,
    /// Events with the same tag are opened in one perf group.
    pub group: u32,
}

/// The read format used for every counter.
pub const READ_FORMAT: u64 = (b::PERF_FORMAT_GROUP
    | b::PERF_FORMAT_TOTAL_TIME_ENABLED
    | b::PERF_FORMAT_TOTAL_TIME_RUNNING
    | b::PERF_FORMAT_ID) as u64;

/// Builds the `perf_event_attr` for one counter. Group leaders start disabled (enabled
/// by [`Counters::enable`] or by exec); members follow their leader.
pub fn build_attr(r: Resolved, leader: bool, opts: &Options) -> b::perf_event_attr {
    let mut a = b::perf_event_attr {
        size: std::mem::size_of::<b::perf_event_attr>() as u32,
        type_: r.type_,
        config: r.config,
        read_format: READ_FORMAT,
        ..Default::default()
    };
    if leader {
        a.set_disabled(1);
        if opts.enable_on_exec {
            a.set_enable_on_exec(1);
        }
    }
    a.set_inherit(opts.inherit as u64);
    if opts.exclude_kernel {
        a.set_exclude_kernel(1);
        a.set_exclude_hv(1);
    }
    a
}

/// Calls perf_event_open; returns the fd or the errno.
pub fn open_raw(
    attr: &mut b::perf_event_attr,
    target: Target,
    group_fd: RawFd,
) -> Result<OwnedFd, i32> {
    let (pid, cpu, flags) = match target {
        Target::Cpu(c) => (-1, c as i32, b::PERF_FLAG_FD_CLOEXEC),
        Target::Task(t) => (t, -1, b::PERF_FLAG_FD_CLOEXEC),
        Target::Cgroup { fd, cpu } => (
            fd,
            cpu as i32,
            b::PERF_FLAG_FD_CLOEXEC | b::PERF_FLAG_PID_CGROUP,
        ),
    };
    loop {
        // SAFETY: attr is a fully initialised perf_event_attr with a correct size field;
        // it only asks for counting.
        let fd = unsafe { sys::perf_event_open(attr, pid, cpu, group_fd, flags as _) };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor; we own it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// Whether this kernel exposes a hardware PMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareProbe {
    /// A `cycles` counter opened.
    Available,
    /// The kernel has no PMU for hardware events (this errno).
    Absent(i32),
    /// Could not tell (refused with this errno): the real open will explain.
    Unknown(i32),
}

/// Opens a user-mode `cycles` counter on this process (allowed at every paranoid level
/// up to 2) to learn whether hardware events exist at all.
pub fn probe_hardware() -> HardwareProbe {
    let opts = Options {
        exclude_kernel: true,
        ..Options::default()
    };
    let r = Resolved {
        type_: crate::event::PERF_TYPE_HARDWARE,
        config: Hw::Cycles.config(),
    };
    let mut a = build_attr(r, true, &opts);
    match open_raw(&mut a, Target::Task(0), -1) {
        Ok(_) => HardwareProbe::Available,
        Err(e)
            if matches!(
                e,
                libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV | libc::ENXIO
            ) =>
        {
            HardwareProbe::Absent(e)
        }
        Err(e) => HardwareProbe::Unknown(e),
    }
}

/// One cumulative reading of a counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Count.
    pub value: u64,
    /// Time enabled, ns.
    pub enabled: u64,
    /// Time actually counting on the PMU, ns.
    pub running: u64,
}

impl Sample {
    /// The change since `prev`.
    pub fn since(&self, prev: &Sample) -> Sample {
        Sample {
            value: self.value.saturating_sub(prev.value),
            enabled: self.enabled.saturating_sub(prev.enabled),
            running: self.running.saturating_sub(prev.running),
        }
    }
}

/// A delta reading scaled for multiplexing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaled {
    /// Counted: the estimate `value × enabled / running`, and running/enabled (1.0 when
    /// the counter was on the PMU all the time).
    Counted {
        /// Scaled value.
        value: f64,
        /// Fraction of the enabled time the counter was running.
        run: f64,
    },
    /// Enabled but never scheduled on the PMU: no estimate possible.
    NotCounted,
    /// Not enabled at all in the interval (a task that did not run): a true zero.
    Idle,
}

/// Scales a delta for multiplexing, as perf does.
pub fn scale(d: &Sample) -> Scaled {
    if d.enabled == 0 {
        Scaled::Idle
    } else if d.running == 0 {
        Scaled::NotCounted
    } else if d.running >= d.enabled {
        Scaled::Counted {
            value: d.value as f64,
            run: 1.0,
        }
    } else {
        Scaled::Counted {
            value: d.value as f64 * d.enabled as f64 / d.running as f64,
            run: d.running as f64 / d.enabled as f64,
        }
    }
}

/// One event's value for an interval, summed over CPUs, threads and PMUs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A count (scaled if multiplexed). `run` is the smallest running/enabled fraction
    /// among the parts (None when nothing was enabled: the target did not run).
    Counted {
        /// The count.
        value: f64,
        /// Smallest running fraction, 1.0 = never multiplexed.
        run: Option<f64>,
    },
    /// Opened, but never scheduled onto the PMU in this interval.
    NotCounted,
    /// The kernel has no such event here.
    NotSupported,
}

impl Value {
    /// The count, if there is one.
    pub fn get(&self) -> Option<f64> {
        match self {
            Value::Counted { value, .. } => Some(*value),
            _ => None,
        }
    }
}

/// Sums scaled parts of one event into a [`Value`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accumulator {
    value: f64,
    run: Option<f64>,
    counted: bool,
    not_counted: bool,
}

impl Accumulator {
    /// Adds one part (one CPU, thread or PMU).
    pub fn add(&mut self, s: Scaled) {
        match s {
            Scaled::Counted { value, run } => {
                self.value += value;
                self.counted = true;
                self.run = Some(self.run.map_or(run, |r| r.min(run)));
            }
            Scaled::NotCounted => {
                self.not_counted = true;
                self.run = Some(0.0);
            }
            Scaled::Idle => {}
        }
    }

    /// The value, given whether the event was opened anywhere.
    pub fn finish(&self, opened: bool) -> Value {
        if !opened {
            Value::NotSupported
        } else if self.counted {
            Value::Counted {
                value: self.value,
                run: self.run,
            }
        } else if self.not_counted {
            Value::NotCounted
        } else {
            Value::Counted {
                value: 0.0,
                run: None,
            }
        }
    }
}

/// One group read: the group's times and each member's (value, kernel id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReading {
    /// time_enabled, ns.
    pub enabled: u64,
    /// time_running, ns.
    pub running: u64,
    /// (value, id) per member, leader first.
    pub values: Vec<(u64, u64)>,
}

/// Parses a `PERF_FORMAT_GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING | ID` read:
/// `nr, time_enabled, time_running, {value, id} × nr`; None if the buffer is short.
pub fn parse_group_read(words: &[u64]) -> Option<GroupReading> {
    let (&nr, rest) = words.split_first()?;
    let nr = usize::try_from(nr).ok()?;
    if rest.len() < 2 + nr.checked_mul(2)? {
        return None;
    }
    let vals = (0..nr)
        .map(|i| (rest[2 + 2 * i], rest[3 + 2 * i]))
        .collect();
    Some(GroupReading {
        enabled: rest[0],
        running: rest[1],
        values: vals,
    })
}

/// One perf group open on one target and PMU.
#[derive(Debug)]
struct Group {
    target: Target,
    pmu: String,
    leader: OwnedFd,
    _members: Vec<OwnedFd>,
    /// (kernel event id, request index, previous cumulative sample).
    slots: Vec<(u64, usize, Sample)>,
}

impl Group {
    fn read(&self) -> io::Result<GroupReading> {
        let mut words = vec![0u64; 3 + 2 * self.slots.len()];
        loop {
            // SAFETY: words is a writable buffer of exactly the byte length given.
            let n = unsafe {
                libc::read(
                    self.leader.as_raw_fd(),
                    words.as_mut_ptr().cast(),
                    words.len() * 8,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return parse_group_read(&words[..n as usize / 8]).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("short counter read ({n} bytes) on {}", self.target),
                )
            });
        }
    }
}

/// Why an event could not be counted on some PMU or target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Request index.
    pub index: usize,
    /// PMU name.
    pub pmu: String,
    /// Reason (from the event tables, or the kernel's errno).
    pub reason: String,
}

/// A set of open counters for a list of requests.
#[derive(Debug)]
pub struct Counters {
    groups: Vec<Group>,
    requests: Vec<Request>,
    opened: Vec<usize>,
    unsupported: Vec<Unsupported>,
    hardware_groups: usize,
    vanished: Vec<Target>,
}

/// Calls `perf_event_open` for each request on each target and applicable PMU.
fn open_one(
    r: Resolved,
    leader: Option<&OwnedFd>,
    target: Target,
    opts: &Options,
) -> Result<OwnedFd, i32> {
    let mut a = build_attr(r, leader.is_none(), opts);
    open_raw(&mut a, target, leader.map_or(-1, |l| l.as_raw_fd()))
}

fn event_id(fd: &OwnedFd) -> io::Result<u64> {
    let mut id = 0u64;
    // SAFETY: PERF_EVENT_IOC_ID writes one u64 through the pointer.
    let rc = unsafe { sys::ioctls::ID(fd.as_raw_fd(), &mut id) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

impl Counters {
    /// Opens every request on every target. Software events are opened once per target;
    /// hardware events once per target and core PMU (hybrid CPUs have several; a CPU
    /// target only gets the PMU that covers it). Events the kernel or the tables do not
    /// support are recorded (see [`Counters::unsupported`]); refusals (privileges, no
    /// such process, out of descriptors) are returned as [`OpenFailure`].
    pub fn open(
        requests: &[Request],
        targets: &[Target],
        pmus: &Pmus,
        cpu: &CpuInfo,
        opts: &Options,
    ) -> Result<Counters, OpenFailure> {
        let mut c = Counters {
            groups: Vec::new(),
            requests: requests.to_vec(),
            opened: vec![0; requests.len()],
            unsupported: Vec::new(),
            hardware_groups: 0,
            vanished: Vec::new(),
        };
        for &target in targets {
            match c.open_target(target, pmus, cpu, opts) {
                Ok(()) => {}
                // A thread that exited between listing and opening: skip it.
                Err(f) if f.errno == libc::ESRCH && matches!(target, Target::Task(_)) => {
                    c.vanished.push(target)
                }
                Err(f) => return Err(f),
            }
        }
        Ok(c)
    }

    fn open_target(
        &mut self,
        target: Target,
        pmus: &Pmus,
        cpu: &CpuInfo,
        opts: &Options,
    ) -> Result<(), OpenFailure> {
        let software = CorePmu {
            name: "software".into(),
            ..CorePmu::legacy()
        };
        let requests = self.requests.clone();
        let mut units: Vec<(&CorePmu, bool)> = vec![(&software, true)];
        for p in &pmus.core {
            if let Target::Cpu(n) | Target::Cgroup { cpu: n, .. } = target {
                if !p.covers(n) {
                    continue;
                }
            }
            units.push((p, false));
        }
        for (pmu, is_sw) in units {
            let mut tags: Vec<u32> = Vec::new();
            for r in &requests {
                if r.event.is_software() == is_sw && !tags.contains(&r.group) {
                    tags.push(r.group);
                }
            }
            for tag in tags {
                let members: Vec<usize> = (0..requests.len())
                    .filter(|&i| {
                        requests[i].group == tag && requests[i].event.is_software() == is_sw
                    })
                    .collect();
                self.open_group(&members, target, pmu, cpu, opts, !is_sw)?;
            }
        }
        Ok(())
    }

    fn record_unsupported(&mut self, index: usize, pmu: &str, reason: String) {
        if !self
            .unsupported
            .iter()
            .any(|u| u.index == index && u.pmu == pmu)
        {
            self.unsupported.push(Unsupported {
                index,
                pmu: pmu.to_string(),
                reason,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open_group(
        &mut self,
        members: &[usize],
        target: Target,
        pmu: &CorePmu,
        cpu: &CpuInfo,
        opts: &Options,
        hardware: bool,
    ) -> Result<(), OpenFailure> {
        let mut cur: Option<(OwnedFd, Vec<OwnedFd>, Vec<usize>)> = None;
        for &i in members {
            let ev = self.requests[i].event;
            if opts.exclude_kernel && ev.kernel_only() {
                self.record_unsupported(
                    i,
                    &pmu.name,
                    "happens only in kernel mode: user-mode-only counting would always read 0"
                        .into(),
                );
                continue;
            }
            let resolved = match ev.resolve(pmu, cpu) {
                Ok(r) => r,
                Err(reason) => {
                    self.record_unsupported(i, &pmu.name, reason);
                    continue;
                }
            };
            let fail = |errno: i32| OpenFailure {
                errno,
                event: ev.name(),
                target,
                pmu: pmu.name.clone(),
                exclude_kernel: opts.exclude_kernel,
                hint: None,
            };
            // A software event always exists: ENOENT on a cgroup means the kernel has no
            // perf_event state for that cgroup, which no other event can fix.
            let cgroup_refused =
                |e: i32| e == libc::ENOENT && !hardware && matches!(target, Target::Cgroup { .. });
            let attempt = open_one(resolved, cur.as_ref().map(|g| &g.0), target, opts);
            let fd = match attempt {
                Ok(fd) => fd,
                // The group may not fit on the PMU: start a new group with this event.
                Err(e) if cgroup_refused(e) => return Err(fail(e)),
                Err(libc::EINVAL) | Err(libc::ENOSPC) if cur.is_some() => {
                    self.finish_group(cur.take(), target, pmu, hardware)
                        .map_err(|e| fail(e.raw_os_error().unwrap_or(libc::EIO)))?;
                    match open_one(resolved, None, target, opts) {
                        Ok(fd) => fd,
                        Err(e) if cgroup_refused(e) => return Err(fail(e)),
                        Err(e) if is_unsupported_errno(e) => {
                            self.record_unsupported(i, &pmu.name, errno_text(e));
                            continue;
                        }
                        Err(e) => return Err(fail(e)),
                    }
                }
                Err(e) if is_unsupported_errno(e) => {
                    self.record_unsupported(i, &pmu.name, errno_text(e));
                    continue;
                }
                Err(e) => return Err(fail(e)),
            };
            match &mut cur {
                None => cur = Some((fd, Vec::new(), vec![i])),
                Some((_, fds, idx)) => {
                    fds.push(fd);
                    idx.push(i);
                }
            }
        }
        self.finish_group(cur, target, pmu, hardware)
            .map_err(|e| OpenFailure {
                errno: e.raw_os_error().unwrap_or(libc::EIO),
                event: "(event id)".into(),
                target,
                pmu: pmu.name.clone(),
                exclude_kernel: opts.exclude_kernel,
                hint: None,
            })
    }

    fn finish_group(
        &mut self,
        g: Option<(OwnedFd, Vec<OwnedFd>, Vec<usize>)>,
        target: Target,
        pmu: &CorePmu,
        hardware: bool,
    ) -> io::Result<()> {
        let Some((leader, members, idx)) = g else {
            return Ok(());
        };
        let mut slots = Vec::with_capacity(idx.len());
        slots.push((event_id(&leader)?, idx[0], Sample::default()));
        for (fd, &i) in members.iter().zip(&idx[1..]) {
            slots.push((event_id(fd)?, i, Sample::default()));
        }
        for &i in &idx {
            self.opened[i] += 1;
        }
        if hardware {
            self.hardware_groups += 1;
        }
        self.groups.push(Group {
            target,
            pmu: pmu.name.clone(),
            leader,
            _members: members,
            slots,
        });
        Ok(())
    }

    /// Starts counting (every group leader; members follow).
    pub fn enable(&self) -> io::Result<()> {
        for g in &self.groups {
            // SAFETY: an ioctl on a perf fd we own, with no pointer argument.
            if unsafe { sys::ioctls::ENABLE(g.leader.as_raw_fd(), 0) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Stops counting.
    pub fn disable(&self) {
        for g in &self.groups {
            // SAFETY: as in enable.
            unsafe { sys::ioctls::DISABLE(g.leader.as_raw_fd(), 0) };
        }
    }

    /// Reads every group and returns, per request, the value since the previous read.
    pub fn read(&mut self) -> io::Result<Vec<Value>> {
        let mut acc = vec![Accumulator::default(); self.requests.len()];
        for g in &mut self.groups {
            let GroupReading {
                enabled,
                running,
                values,
            } = g.read()?;
            for (value, id) in values {
                let Some(slot) = g.slots.iter_mut().find(|s| s.0 == id) else {
                    continue;
                };
                let now = Sample {
                    value,
                    enabled,
                    running,
                };
                let d = now.since(&slot.2);
                slot.2 = now;
                acc[slot.1].add(scale(&d));
            }
        }
        Ok(acc
            .iter()
            .zip(&self.opened)
            .map(|(a, &n)| a.finish(n > 0))
            .collect())
    }

    /// The requests, in order.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// On how many targets × PMUs each request is open.
    pub fn opened(&self) -> &[usize] {
        &self.opened
    }

    /// Events that could not be opened on some PMU, with the reason.
    pub fn unsupported(&self) -> &[Unsupported] {
        &self.unsupported
    }

    /// Threads that exited before their counters could be opened (skipped).
    pub fn vanished(&self) -> &[Target] {
        &self.vanished
    }

    /// Number of open groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of open groups of hardware events.
    pub fn hardware_group_count(&self) -> usize {
        self.hardware_groups
    }

    /// (target, PMU, number of events) of each group, for diagnostics.
    pub fn layout(&self) -> Vec<(Target, String, usize)> {
        self.groups
            .iter()
            .map(|g| (g.target, g.pmu.clone(), g.slots.len()))
            .collect()
    }
}

fn errno_text(e: i32) -> String {
    let msg = io::Error::from_raw_os_error(e).to_string();
    let base = msg.split(" (os error").next().unwrap_or(&msg).to_string();
    match crate::explain::errno_name(e).as_str() {
        "" => format!("kernel: {base}"),
        n => format!("kernel: {base} ({n})"),
    }
}

/// The thread IDs of a process (`/proc/PID/task`).
pub fn threads_of(pid: i32) -> io::Result<Vec<i32>> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    v.sort_unstable();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CacheId, CacheOp, CacheResult, Sw};

    #[test]
    fn attr_fields_match_the_kernel_abi() {
        let r = Resolved {
            type_: 3,
            config: 0x10000,
        };
        let opts = Options {
            inherit: true,
            enable_on_exec: true,
            exclude_kernel: false,
        };
        let a = build_attr(r, true, &opts);
        assert_eq!((a.type_, a.config), (3, 0x10000));
        // PERF_FORMAT_TOTAL_TIME_ENABLED 1 | TOTAL_TIME_RUNNING 2 | ID 4 | GROUP 8.
        assert_eq!(a.read_format, 0xf);
        assert_eq!(a.size as usize, std::mem::size_of::<b::perf_event_attr>());
        assert!(a.size >= 64, "PERF_ATTR_SIZE_VER0 is 64");
        assert_eq!(
            (
                a.disabled(),
                a.inherit(),
                a.enable_on_exec(),
                a.exclude_kernel()
            ),
            (1, 1, 1, 0)
        );
        // Members follow the leader: not disabled, no enable_on_exec of their own.
        let m = build_attr(r, false, &opts);
        assert_eq!((m.disabled(), m.enable_on_exec(), m.inherit()), (0, 0, 1));
        let user = Options {
            exclude_kernel: true,
            ..Options::default()
        };
        let u = build_attr(r, true, &user);
        assert_eq!(
            (
                u.exclude_kernel(),
                u.exclude_hv(),
                u.inherit(),
                u.enable_on_exec()
            ),
            (1, 1, 0, 0)
        );
        // Counting only: no sampling.
        // SAFETY: both members of the union are a u64; any bits are a valid value.
        let period = unsafe { u.__bindgen_anon_1.sample_period };
        assert_eq!((u.sample_type, period), (0, 0));
    }

    #[test]
    fn multiplex_scaling() {
        // Counted all the time: unscaled.
        assert_eq!(
            scale(&Sample {
                value: 1000,
                enabled: 50,
                running: 50
            }),
            Scaled::Counted {
                value: 1000.0,
                run: 1.0
            }
        );
        // On the PMU a quarter of the time: ×4.
        assert_eq!(
            scale(&Sample {
                value: 1000,
                enabled: 400,
                running: 100
            }),
            Scaled::Counted {
                value: 4000.0,
                run: 0.25
            }
        );
        // Enabled, never scheduled: not counted, not zero.
        assert_eq!(
            scale(&Sample {
                value: 0,
                enabled: 400,
                running: 0
            }),
            Scaled::NotCounted
        );
        // Not enabled (a sleeping task): a true zero.
        assert_eq!(scale(&Sample::default()), Scaled::Idle);
    }

    #[test]
    fn deltas_saturate() {
        let a = Sample {
            value: 10,
            enabled: 5,
            running: 5,
        };
        let b2 = Sample {
            value: 25,
            enabled: 9,
            running: 7,
        };
        assert_eq!(
            b2.since(&a),
            Sample {
                value: 15,
                enabled: 4,
                running: 2
            }
        );
        assert_eq!(a.since(&b2), Sample::default());
    }

    #[test]
    fn accumulation_over_cpus() {
        let mut acc = Accumulator::default();
        acc.add(Scaled::Counted {
            value: 100.0,
            run: 1.0,
        });
        acc.add(Scaled::Counted {
            value: 300.0,
            run: 0.5,
        });
        acc.add(Scaled::Idle);
        assert_eq!(
            acc.finish(true),
            Value::Counted {
                value: 400.0,
                run: Some(0.5)
            }
        );
        let mut nc = Accumulator::default();
        nc.add(Scaled::NotCounted);
        nc.add(Scaled::Idle);
        assert_eq!(nc.finish(true), Value::NotCounted);
        // Some parts counted, one never scheduled: a value, flagged with run 0.
        let mut part = Accumulator::default();
        part.add(Scaled::Counted {
            value: 7.0,
            run: 1.0,
        });
        part.add(Scaled::NotCounted);
        assert_eq!(
            part.finish(true),
            Value::Counted {
                value: 7.0,
                run: Some(0.0)
            }
        );
        assert_eq!(Accumulator::default().finish(false), Value::NotSupported);
        assert_eq!(
            Accumulator::default().finish(true),
            Value::Counted {
                value: 0.0,
                run: None
            }
        );
    }

    #[test]
    fn group_read_layout() {
        let words = [2, 1000, 900, 11, 101, 22, 102];
        assert_eq!(
            parse_group_read(&words),
            Some(GroupReading {
                enabled: 1000,
                running: 900,
                values: vec![(11, 101), (22, 102)]
            })
        );
        assert_eq!(parse_group_read(&words[..5]), None);
        assert_eq!(parse_group_read(&[]), None);
        assert_eq!(parse_group_read(&[u64::MAX, 1, 2]), None);
    }

    fn sw_requests() -> Vec<Request> {
        [
            Sw::TaskClock,
            Sw::ContextSwitches,
            Sw::CpuMigrations,
            Sw::PageFaults,
        ]
        .into_iter()
        .map(|s| Request {
            event: Event::Software(s),
            group: 0,
        })
        .collect()
    }

    /// Software counters on this very thread: works on any kernel with perf events, as any
    /// user (user-mode only), with or without a hardware PMU.
    #[test]
    fn software_group_on_self_counts() {
        let opts = Options {
            exclude_kernel: true,
            ..Options::default()
        };
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let mut c = Counters::open(
            &sw_requests(),
            &[Target::Task(tid)],
            &Pmus::system(),
            &CpuInfo::detect(),
            &opts,
        )
        .unwrap();
        assert_eq!(c.group_count(), 1);
        // User-mode only: context switches and migrations would read 0, so they are not
        // opened at all (shown as not supported, never as 0).
        assert_eq!(c.opened(), &[1, 0, 0, 1]);
        assert!(c
            .unsupported()
            .iter()
            .all(|u| u.reason.contains("kernel mode")));
        c.enable().unwrap();
        // Burn 20 ms of this thread's CPU time (not of the clock: a loaded machine may
        // run it for less) and touch fresh memory (page faults).
        let thread_ns = || perf_tools_core::clock::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        let t0 = thread_ns();
        let mut v: Vec<u8> = Vec::new();
        while thread_ns() - t0 < 20_000_000 {
            v.resize(v.len() + 4096, 1);
        }
        std::hint::black_box(&v);
        let vals = c.read().unwrap();
        let task_ms = vals[0].get().unwrap() / 1e6;
        assert!((5.0..5000.0).contains(&task_ms), "task-clock {task_ms} ms");
        assert!(vals[3].get().unwrap() > 0.0, "page faults {:?}", vals[3]);
        // A second read is a delta, not cumulative.
        let again = c.read().unwrap();
        assert!(again[0].get().unwrap() / 1e6 < task_ms, "{again:?}");
    }

    #[test]
    fn unsupported_events_are_recorded_not_fatal() {
        // A cache event that no kernel maps: L1I writes (the tables say -1/EINVAL or 0).
        let reqs = vec![
            Request {
                event: Event::Software(Sw::TaskClock),
                group: 0,
            },
            Request {
                event: Event::Cache(CacheId::L1i, CacheOp::Write, CacheResult::Access),
                group: 1,
            },
        ];
        let opts = Options {
            exclude_kernel: true,
            ..Options::default()
        };
        let c = Counters::open(
            &reqs,
            &[Target::Task(0)],
            &Pmus::system(),
            &CpuInfo::detect(),
            &opts,
        )
        .unwrap();
        assert_eq!(c.opened()[0], 1);
        assert_eq!(c.opened()[1], 0);
        assert!(
            c.unsupported().iter().any(|u| u.index == 1),
            "{:?}",
            c.unsupported()
        );
    }
}
