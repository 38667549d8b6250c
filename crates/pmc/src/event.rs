//! What to count, and how each event becomes a `perf_event_attr` type and config.
//!
//! Generic events (`PERF_TYPE_HARDWARE`, `PERF_TYPE_HW_CACHE`) are used wherever the
//! kernel maps them for the running CPU, so the same request works on Intel and AMD.
//! Raw codes are used only for what has no generic event (L2 requests on Intel, page-walk
//! cycles), chosen by CPUID vendor, family and model ([`vendor_event`]). On a hybrid CPU
//! generic events carry the PMU type in config bits 32-63 (`PERF_PMU_TYPE_SHIFT`) and raw
//! events use the PMU's type number, so one request is opened on each core PMU.

use crate::cpu::{CoreKind, CorePmu, CpuInfo, Vendor};
use perf_event_open_sys::bindings as b;
use std::fmt;

/// `PERF_TYPE_HARDWARE` (0): generic hardware events.
pub const PERF_TYPE_HARDWARE: u32 = b::PERF_TYPE_HARDWARE;
/// `PERF_TYPE_SOFTWARE` (1): kernel software events.
pub const PERF_TYPE_SOFTWARE: u32 = b::PERF_TYPE_SOFTWARE;
/// `PERF_TYPE_HW_CACHE` (3): generic cache events, config `id | op << 8 | result << 16`.
pub const PERF_TYPE_HW_CACHE: u32 = b::PERF_TYPE_HW_CACHE;
/// `PERF_TYPE_RAW` (4): raw core PMU event codes.
pub const PERF_TYPE_RAW: u32 = b::PERF_TYPE_RAW;
/// `PERF_PMU_TYPE_SHIFT` (32): where a hybrid PMU's type goes in a generic event's config.
pub const PERF_PMU_TYPE_SHIFT: u32 = b::PERF_PMU_TYPE_SHIFT;

/// Generic hardware events (`PERF_COUNT_HW_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hw {
    /// `cycles`: core clock cycles (unhalted).
    Cycles,
    /// `instructions`: instructions retired.
    Instructions,
    /// `cache-references`: the vendor's chosen cache accesses (Intel: last-level cache).
    CacheReferences,
    /// `cache-misses`: the vendor's chosen cache misses (Intel: last-level cache).
    CacheMisses,
    /// `branch-instructions`: branches retired.
    BranchInstructions,
    /// `branch-misses`: mispredicted branches retired.
    BranchMisses,
    /// `bus-cycles`.
    BusCycles,
    /// `stalled-cycles-frontend`.
    StalledCyclesFrontend,
    /// `stalled-cycles-backend`.
    StalledCyclesBackend,
    /// `ref-cycles`: reference (TSC-rate) cycles.
    RefCycles,
}

impl Hw {
    /// The `PERF_COUNT_HW_*` value.
    pub fn config(self) -> u64 {
        (match self {
            Hw::Cycles => b::PERF_COUNT_HW_CPU_CYCLES,
            Hw::Instructions => b::PERF_COUNT_HW_INSTRUCTIONS,
            Hw::CacheReferences => b::PERF_COUNT_HW_CACHE_REFERENCES,
            Hw::CacheMisses => b::PERF_COUNT_HW_CACHE_MISSES,
            Hw::BranchInstructions => b::PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
            Hw::BranchMisses => b::PERF_COUNT_HW_BRANCH_MISSES,
            Hw::BusCycles => b::PERF_COUNT_HW_BUS_CYCLES,
            Hw::StalledCyclesFrontend => b::PERF_COUNT_HW_STALLED_CYCLES_FRONTEND,
            Hw::StalledCyclesBackend => b::PERF_COUNT_HW_STALLED_CYCLES_BACKEND,
            Hw::RefCycles => b::PERF_COUNT_HW_REF_CPU_CYCLES,
        }) as u64
    }

    const NAMES: &'static [(&'static str, Hw)] = &[
        ("cycles", Hw::Cycles),
        ("cpu-cycles", Hw::Cycles),
        ("instructions", Hw::Instructions),
        ("cache-references", Hw::CacheReferences),
        ("cache-misses", Hw::CacheMisses),
        ("branch-instructions", Hw::BranchInstructions),
        ("branches", Hw::BranchInstructions),
        ("branch-misses", Hw::BranchMisses),
        ("bus-cycles", Hw::BusCycles),
        ("stalled-cycles-frontend", Hw::StalledCyclesFrontend),
        ("idle-cycles-frontend", Hw::StalledCyclesFrontend),
        ("stalled-cycles-backend", Hw::StalledCyclesBackend),
        ("idle-cycles-backend", Hw::StalledCyclesBackend),
        ("ref-cycles", Hw::RefCycles),
    ];
}

/// Kernel software events (`PERF_COUNT_SW_*`): available without a hardware PMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sw {
    /// `cpu-clock`: wall time on the CPU, in ns.
    CpuClock,
    /// `task-clock`: time the task ran (or the CPU was measured), in ns.
    TaskClock,
    /// `page-faults`.
    PageFaults,
    /// `context-switches`.
    ContextSwitches,
    /// `cpu-migrations`.
    CpuMigrations,
    /// `minor-faults`.
    MinorFaults,
    /// `major-faults`.
    MajorFaults,
    /// `alignment-faults`.
    AlignmentFaults,
    /// `emulation-faults`.
    EmulationFaults,
}

impl Sw {
    /// The `PERF_COUNT_SW_*` value.
    pub fn config(self) -> u64 {
        (match self {
            Sw::CpuClock => b::PERF_COUNT_SW_CPU_CLOCK,
            Sw::TaskClock => b::PERF_COUNT_SW_TASK_CLOCK,
            Sw::PageFaults => b::PERF_COUNT_SW_PAGE_FAULTS,
            Sw::ContextSwitches => b::PERF_COUNT_SW_CONTEXT_SWITCHES,
            Sw::CpuMigrations => b::PERF_COUNT_SW_CPU_MIGRATIONS,
            Sw::MinorFaults => b::PERF_COUNT_SW_PAGE_FAULTS_MIN,
            Sw::MajorFaults => b::PERF_COUNT_SW_PAGE_FAULTS_MAJ,
            Sw::AlignmentFaults => b::PERF_COUNT_SW_ALIGNMENT_FAULTS,
            Sw::EmulationFaults => b::PERF_COUNT_SW_EMULATION_FAULTS,
        }) as u64
    }

    const NAMES: &'static [(&'static str, Sw)] = &[
        ("cpu-clock", Sw::CpuClock),
        ("task-clock", Sw::TaskClock),
        ("page-faults", Sw::PageFaults),
        ("faults", Sw::PageFaults),
        ("context-switches", Sw::ContextSwitches),
        ("cs", Sw::ContextSwitches),
        ("cpu-migrations", Sw::CpuMigrations),
        ("migrations", Sw::CpuMigrations),
        ("minor-faults", Sw::MinorFaults),
        ("major-faults", Sw::MajorFaults),
        ("alignment-faults", Sw::AlignmentFaults),
        ("emulation-faults", Sw::EmulationFaults),
    ];
}

/// Generic cache (`PERF_COUNT_HW_CACHE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheId {
    /// L1 data cache (`L1-dcache`).
    L1d,
    /// L1 instruction cache (`L1-icache`).
    L1i,
    /// Last-level cache (`LLC`).
    Ll,
    /// Data TLB (`dTLB`).
    Dtlb,
    /// Instruction TLB (`iTLB`).
    Itlb,
    /// Branch prediction unit (`branch`).
    Bpu,
    /// Local memory node (`node`).
    Node,
}

/// Cache operation (`PERF_COUNT_HW_CACHE_OP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOp {
    /// Loads.
    Read,
    /// Stores.
    Write,
    /// Prefetches.
    Prefetch,
}

/// Cache result (`PERF_COUNT_HW_CACHE_RESULT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Accesses.
    Access,
    /// Misses.
    Miss,
}

const CACHE_NAMES: &[(&str, CacheId)] = &[
    ("L1-dcache", CacheId::L1d),
    ("L1-icache", CacheId::L1i),
    ("LLC", CacheId::Ll),
    ("dTLB", CacheId::Dtlb),
    ("iTLB", CacheId::Itlb),
    ("branch", CacheId::Bpu),
    ("node", CacheId::Node),
];

const CACHE_OPS: &[(&str, &str, CacheOp)] = &[
    ("loads", "load-misses", CacheOp::Read),
    ("stores", "store-misses", CacheOp::Write),
    ("prefetches", "prefetch-misses", CacheOp::Prefetch),
];

/// The `PERF_TYPE_HW_CACHE` config: `id | op << 8 | result << 16`.
pub fn cache_config(id: CacheId, op: CacheOp, result: CacheResult) -> u64 {
    let id = match id {
        CacheId::L1d => b::PERF_COUNT_HW_CACHE_L1D,
        CacheId::L1i => b::PERF_COUNT_HW_CACHE_L1I,
        CacheId::Ll => b::PERF_COUNT_HW_CACHE_LL,
        CacheId::Dtlb => b::PERF_COUNT_HW_CACHE_DTLB,
        CacheId::Itlb => b::PERF_COUNT_HW_CACHE_ITLB,
        CacheId::Bpu => b::PERF_COUNT_HW_CACHE_BPU,
        CacheId::Node => b::PERF_COUNT_HW_CACHE_NODE,
    } as u64;
    let op = match op {
        CacheOp::Read => b::PERF_COUNT_HW_CACHE_OP_READ,
        CacheOp::Write => b::PERF_COUNT_HW_CACHE_OP_WRITE,
        CacheOp::Prefetch => b::PERF_COUNT_HW_CACHE_OP_PREFETCH,
    } as u64;
    let result = match result {
        CacheResult::Access => b::PERF_COUNT_HW_CACHE_RESULT_ACCESS,
        CacheResult::Miss => b::PERF_COUNT_HW_CACHE_RESULT_MISS,
    } as u64;
    id | (op << 8) | (result << 16)
}

/// Events with no generic encoding, or whose generic encoding differs by vendor:
/// resolved per CPU by [`vendor_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorEvent {
    /// Last-level cache references (Intel: `cache-references`, LONGEST_LAT_CACHE.REFERENCE
    /// 0x4f2e; others: the generic `LLC-loads`).
    LlcReferences,
    /// Last-level cache misses (Intel: `cache-misses`, LONGEST_LAT_CACHE.MISS 0x412e;
    /// others: the generic `LLC-load-misses`).
    LlcMisses,
    /// L2 requests (Intel big cores: L2_RQSTS.REFERENCES 0xff24; AMD: `cache-references`,
    /// which the kernel maps to L2 requests).
    L2References,
    /// L2 misses (Intel big cores: L2_RQSTS.MISS 0x3f24; AMD: `cache-misses`).
    L2Misses,
    /// Cycles a page walk for a load was active (Intel DTLB_LOAD_MISSES.WALK_ACTIVE).
    DtlbLoadWalkCycles,
    /// Cycles a page walk for a store was active (DTLB_STORE_MISSES.WALK_ACTIVE).
    DtlbStoreWalkCycles,
    /// Cycles an instruction-fetch page walk was active (ITLB_MISSES.WALK_ACTIVE).
    ItlbWalkCycles,
    /// Instruction fetches (code reads) that hit the L2 cache (Intel L2_RQSTS.CODE_RD_HIT
    /// or IFETCH_HIT; AMD l2_cache_req_stat.ic_hit_in_l2).
    L2CodeHits,
    /// Instruction fetches that missed the L2 cache (Intel L2_RQSTS.CODE_RD_MISS or
    /// IFETCH_MISS; AMD l2_cache_req_stat.ic_fill_miss).
    L2CodeMisses,
    /// Cycles of resource-related allocation stalls (Intel RESOURCE_STALLS, event 0xa2).
    ResourceStalls(Stall),
}

/// The RESOURCE_STALLS causes of pmc-cloud-tools' resstalls (Nehalem's umasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// RESOURCE_STALLS.ANY (umask 0x01): any resource-related stall.
    Any,
    /// RESOURCE_STALLS.LOAD / .LB (0x02): no load buffer entry free.
    Load,
    /// RESOURCE_STALLS.RS_FULL / .RS (0x04): no reservation station entry free.
    RsFull,
    /// RESOURCE_STALLS.STORE / .SB (0x08): no store buffer entry free.
    Store,
    /// RESOURCE_STALLS.ROB_FULL / .ROB (0x10): re-order buffer full.
    RobFull,
    /// RESOURCE_STALLS.FPCW (0x20): writing the floating-point control word.
    Fpcw,
    /// RESOURCE_STALLS.MXCSR (0x40): writing the MXCSR register.
    Mxcsr,
    /// RESOURCE_STALLS.OTHER (0x80): other causes.
    Other,
}

impl Stall {
    /// Every cause, in the original's column order.
    pub const ALL: [Stall; 8] = [
        Stall::Any,
        Stall::Load,
        Stall::RsFull,
        Stall::Store,
        Stall::RobFull,
        Stall::Fpcw,
        Stall::Mxcsr,
        Stall::Other,
    ];

    /// The umask of the cause in event 0xa2 (as Nehalem and Westmere define all eight).
    pub fn umask(self) -> u64 {
        match self {
            Stall::Any => 0x01,
            Stall::Load => 0x02,
            Stall::RsFull => 0x04,
            Stall::Store => 0x08,
            Stall::RobFull => 0x10,
            Stall::Fpcw => 0x20,
            Stall::Mxcsr => 0x40,
            Stall::Other => 0x80,
        }
    }

    /// Intel's name for the cause.
    pub fn intel_name(self) -> &'static str {
        match self {
            Stall::Any => "RESOURCE_STALLS.ANY",
            Stall::Load => "RESOURCE_STALLS.LOAD",
            Stall::RsFull => "RESOURCE_STALLS.RS_FULL",
            Stall::Store => "RESOURCE_STALLS.STORE",
            Stall::RobFull => "RESOURCE_STALLS.ROB_FULL",
            Stall::Fpcw => "RESOURCE_STALLS.FPCW",
            Stall::Mxcsr => "RESOURCE_STALLS.MXCSR",
            Stall::Other => "RESOURCE_STALLS.OTHER",
        }
    }
}

/// One countable event, independent of the PMU it is opened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A generic hardware event.
    Hardware(Hw),
    /// A software event.
    Software(Sw),
    /// A generic cache event.
    Cache(CacheId, CacheOp, CacheResult),
    /// A raw core PMU code (`rUUEE`: umask UU, event EE; higher bits as the PMU's format).
    Raw(u64),
    /// A vendor-dependent event.
    Vendor(VendorEvent),
}

/// An event's attr type and config for one PMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// `perf_event_attr.type`.
    pub type_: u32,
    /// `perf_event_attr.config`.
    pub config: u64,
}

impl Event {
    /// Parses perf's event names: generic hardware (`cycles`, `instructions`,
    /// `cache-misses`, ...), software (`task-clock`, `cs`, ...), generic cache
    /// (`L1-dcache-load-misses`, `dTLB-loads`, ...) and raw `rNNNN` hex codes.
    pub fn parse(name: &str) -> Result<Event, String> {
        let n = name.trim();
        if let Some((_, h)) = Hw::NAMES.iter().find(|(s, _)| s.eq_ignore_ascii_case(n)) {
            return Ok(Event::Hardware(*h));
        }
        if let Some((_, s)) = Sw::NAMES.iter().find(|(s, _)| s.eq_ignore_ascii_case(n)) {
            return Ok(Event::Software(*s));
        }
        for (prefix, id) in CACHE_NAMES {
            let Some(rest) = strip_prefix_ci(n, prefix).and_then(|r| r.strip_prefix('-')) else {
                continue;
            };
            for (access, miss, op) in CACHE_OPS {
                if rest.eq_ignore_ascii_case(access) {
                    return Ok(Event::Cache(*id, *op, CacheResult::Access));
                }
                if rest.eq_ignore_ascii_case(miss) {
                    return Ok(Event::Cache(*id, *op, CacheResult::Miss));
                }
            }
        }
        if let Some(hex) = n.strip_prefix('r') {
            if !hex.is_empty() && hex.len() <= 16 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                if let Ok(v) = u64::from_str_radix(hex, 16) {
                    return Ok(Event::Raw(v));
                }
            }
        }
        Err(format!(
            "unknown event {n:?}: use a generic name (cycles, instructions, cache-references, \
             cache-misses, branches, branch-misses, ref-cycles, task-clock, cpu-clock, \
             context-switches, cpu-migrations, page-faults, L1-dcache-load-misses, \
             LLC-loads, dTLB-load-misses, ...) or a raw code rUUEE (hex)"
        ))
    }

    /// True for kernel software events (opened once per target, on no hardware PMU).
    pub fn is_software(&self) -> bool {
        matches!(self, Event::Software(_))
    }

    /// True for events that only happen in kernel mode (context switches, migrations):
    /// with user-mode-only counting (`exclude_kernel`) they would always read 0.
    pub fn kernel_only(&self) -> bool {
        matches!(
            self,
            Event::Software(Sw::ContextSwitches) | Event::Software(Sw::CpuMigrations)
        )
    }

    /// perf's name for the event (raw codes as `rNNNN`).
    pub fn name(&self) -> String {
        match self {
            Event::Hardware(h) => Hw::NAMES
                .iter()
                .find(|(_, x)| x == h)
                .map_or("?", |(s, _)| s)
                .to_string(),
            Event::Software(w) => Sw::NAMES
                .iter()
                .find(|(_, x)| x == w)
                .map_or("?", |(s, _)| s)
                .to_string(),
            Event::Cache(id, op, res) => {
                let prefix = CACHE_NAMES
                    .iter()
                    .find(|(_, x)| x == id)
                    .map_or("?", |(s, _)| s);
                let (access, miss, _) = CACHE_OPS
                    .iter()
                    .find(|(_, _, o)| o == op)
                    .copied()
                    .unwrap_or(("?", "?", *op));
                match res {
                    CacheResult::Access => format!("{prefix}-{access}"),
                    CacheResult::Miss => format!("{prefix}-{miss}"),
                }
            }
            Event::Raw(c) => format!("r{c:x}"),
            Event::Vendor(v) => match v {
                VendorEvent::LlcReferences => "llc-references",
                VendorEvent::LlcMisses => "llc-misses",
                VendorEvent::L2References => "l2-references",
                VendorEvent::L2Misses => "l2-misses",
                VendorEvent::DtlbLoadWalkCycles => "dtlb-load-walk-cycles",
                VendorEvent::DtlbStoreWalkCycles => "dtlb-store-walk-cycles",
                VendorEvent::ItlbWalkCycles => "itlb-walk-cycles",
                VendorEvent::L2CodeHits => "l2-code-hits",
                VendorEvent::L2CodeMisses => "l2-code-misses",
                VendorEvent::ResourceStalls(s) => match s {
                    Stall::Any => "resource-stalls.any",
                    Stall::Load => "resource-stalls.load",
                    Stall::RsFull => "resource-stalls.rs-full",
                    Stall::Store => "resource-stalls.store",
                    Stall::RobFull => "resource-stalls.rob-full",
                    Stall::Fpcw => "resource-stalls.fpcw",
                    Stall::Mxcsr => "resource-stalls.mxcsr",
                    Stall::Other => "resource-stalls.other",
                },
            }
            .to_string(),
        }
    }

    /// The attr type and config to open this event on `pmu` of `cpu`, or why the CPU
    /// has no such event.
    pub fn resolve(&self, pmu: &CorePmu, cpu: &CpuInfo) -> Result<Resolved, String> {
        // A hybrid PMU's type goes in the high config bits of generic hardware events.
        let ext = if pmu.hybrid {
            (pmu.type_ as u64) << PERF_PMU_TYPE_SHIFT
        } else {
            0
        };
        match *self {
            Event::Hardware(h) => Ok(Resolved {
                type_: PERF_TYPE_HARDWARE,
                config: h.config() | ext,
            }),
            Event::Software(s) => Ok(Resolved {
                type_: PERF_TYPE_SOFTWARE,
                config: s.config(),
            }),
            Event::Cache(id, op, res) => Ok(Resolved {
                type_: PERF_TYPE_HW_CACHE,
                config: cache_config(id, op, res) | ext,
            }),
            Event::Raw(code) => Ok(Resolved {
                type_: if pmu.hybrid { pmu.type_ } else { PERF_TYPE_RAW },
                config: code,
            }),
            Event::Vendor(v) => vendor_event(v, cpu, pmu)?.resolve(pmu, cpu),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// Intel core microarchitectures grouped by the encodings used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntelGen {
    /// Haswell, Broadwell (client and server): page-walk cycles are WALK_DURATION
    /// (umask 0x10, no counter mask) of events 0x08/0x49/0x85.
    Haswell,
    /// Skylake, Cascade Lake, Ice Lake client, Tiger Lake, Rocket Lake: WALK_ACTIVE
    /// (umask 0x10, cmask 1) of events 0x08/0x49/0x85.
    Skylake,
    /// Ice Lake server: as Skylake for page walks, but no L2_RQSTS.REFERENCES/MISS.
    IcelakeServer,
    /// Golden Cove and later big cores (Alder/Raptor Lake P-cores, Sapphire/Emerald/
    /// Granite Rapids, Meteor/Arrow/Lunar/Panther Lake P-cores): WALK_ACTIVE of events
    /// 0x12 (load), 0x13 (store), 0x11 (ITLB).
    GoldenCove,
}

/// Hybrid Intel models, whose E-core PMU (`cpu_atom`) uses different encodings.
const INTEL_HYBRID: &[u32] = &[
    0x97, 0x9a, 0xb7, 0xba, 0xbf, 0xaa, 0xac, 0xc5, 0xc6, 0xbd, 0xcc,
];

/// The big-core generation of an Intel family 6 model, per Intel's perfmon event lists.
pub fn intel_gen(model: u32) -> Option<IntelGen> {
    Some(match model {
        0x3c | 0x3f | 0x45 | 0x46 | 0x3d | 0x47 | 0x4f | 0x56 => IntelGen::Haswell,
        0x4e | 0x5e | 0x8e | 0x9e | 0xa5 | 0xa6 | 0x55 | 0x7d | 0x7e | 0x8c | 0x8d | 0xa7 => {
            IntelGen::Skylake
        }
        0x6a | 0x6c => IntelGen::IcelakeServer,
        0x97 | 0x9a | 0xb7 | 0xba | 0xbf | 0x8f | 0xcf | 0xad | 0xae | 0xaa | 0xac | 0xc5
        | 0xc6 | 0xbd | 0xcc => IntelGen::GoldenCove,
        _ => return None,
    })
}

/// Raw config for an Intel event: event code, umask and counter mask.
pub const fn intel_raw(event: u64, umask: u64, cmask: u64) -> u64 {
    event | (umask << 8) | (cmask << 24)
}

/// Intel big cores grouped by their instruction-fetch L2 events (L2_RQSTS, event 0x24)
/// and RESOURCE_STALLS causes (event 0xa2), per Intel's perfmon event lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntelFrontGen {
    /// Nehalem, Westmere: L2_RQSTS.IFETCH_HIT/MISS (umasks 0x10/0x20); all eight
    /// RESOURCE_STALLS causes, which pmc-cloud-tools' resstalls was written for.
    Nehalem,
    /// Sandy Bridge (client and Jaketown): CODE_RD_HIT/MISS 0x10/0x20; RESOURCE_STALLS
    /// ANY, LB, RS, SB, ROB.
    SandyBridge,
    /// Ivy Bridge (client and Ivytown): CODE_RD_HIT/MISS 0x10/0x20; ANY, RS, SB, ROB.
    IvyBridge,
    /// Haswell, Broadwell: CODE_RD_HIT/MISS 0xc4/0x24; ANY, RS, SB, ROB.
    Haswell,
    /// Skylake, Kaby/Coffee/Comet Lake, Skylake-SP, Cascade Lake: 0xc4/0x24; ANY, SB.
    Skylake,
    /// Ice Lake to Meteor Lake P-cores, Sapphire/Emerald/Granite Rapids: 0xc4/0x24; SB
    /// only (their umask 0x02 is SCOREBOARD, not load-buffer stalls).
    IceLake,
    /// Lion Cove and Cougar Cove P-cores (Arrow, Lunar, Panther Lake): 0x44/0x24; no
    /// RESOURCE_STALLS event.
    LionCove,
}

impl IntelFrontGen {
    /// The group of an Intel family 6 model.
    pub fn of(model: u32) -> Option<IntelFrontGen> {
        use IntelFrontGen::*;
        Some(match model {
            0x1a | 0x1e | 0x1f | 0x2e | 0x25 | 0x2c | 0x2f => Nehalem,
            0x2a | 0x2d => SandyBridge,
            0x3a | 0x3e => IvyBridge,
            0x3c | 0x45 | 0x46 | 0x3f | 0x3d | 0x47 | 0x56 | 0x4f => Haswell,
            0x4e | 0x5e | 0x8e | 0x9e | 0xa5 | 0xa6 | 0x55 => Skylake,
            0x7d | 0x7e | 0x6a | 0x6c | 0x8c | 0x8d | 0xa7 | 0x97 | 0x9a | 0xb7 | 0xba | 0xbf
            | 0x8f | 0xcf | 0xad | 0xae | 0xaa | 0xac | 0xb5 => IceLake,
            0xc5 | 0xc6 | 0xbd | 0xcc | 0xd5 | 0xe5 => LionCove,
            _ => return None,
        })
    }

    /// (hit, miss) umasks of the L2 code-read events (event 0x24).
    pub fn l2_code_umasks(self) -> (u64, u64) {
        match self {
            IntelFrontGen::Nehalem | IntelFrontGen::SandyBridge | IntelFrontGen::IvyBridge => {
                (0x10, 0x20)
            }
            IntelFrontGen::Haswell | IntelFrontGen::Skylake | IntelFrontGen::IceLake => {
                (0xc4, 0x24)
            }
            IntelFrontGen::LionCove => (0x44, 0x24),
        }
    }

    /// The RESOURCE_STALLS causes these cores define.
    pub fn stalls(self) -> &'static [Stall] {
        use Stall::*;
        match self {
            IntelFrontGen::Nehalem => &Stall::ALL,
            IntelFrontGen::SandyBridge => &[Any, Load, RsFull, Store, RobFull],
            IntelFrontGen::IvyBridge | IntelFrontGen::Haswell => &[Any, RsFull, Store, RobFull],
            IntelFrontGen::Skylake => &[Any, Store],
            IntelFrontGen::IceLake => &[Store],
            IntelFrontGen::LionCove => &[],
        }
    }

    fn name(self) -> &'static str {
        match self {
            IntelFrontGen::Nehalem => "Nehalem/Westmere",
            IntelFrontGen::SandyBridge => "Sandy Bridge",
            IntelFrontGen::IvyBridge => "Ivy Bridge",
            IntelFrontGen::Haswell => "Haswell/Broadwell",
            IntelFrontGen::Skylake => "Skylake",
            IntelFrontGen::IceLake => "Ice Lake and later",
            IntelFrontGen::LionCove => "Lion Cove",
        }
    }
}

/// AMD l2_cache_req_stat (event 0x64) umasks, the same from Zen 1 to Zen 5 (and Hygon):
/// ic_hit_in_l2 (ic_fill_hit_s | ic_fill_hit_x) and ic_fill_miss.
const AMD_L2_IC_HIT: u64 = 0x0664;
const AMD_L2_IC_MISS: u64 = 0x0164;

/// The instruction-fetch and resource-stall events of the icache and resstalls modes.
fn front_event(v: VendorEvent, cpu: &CpuInfo, pmu: &CorePmu) -> Result<Event, String> {
    let what = Event::Vendor(v);
    if cpu.vendor.is_amd_like() {
        return match v {
            VendorEvent::L2CodeHits | VendorEvent::L2CodeMisses if cpu.family >= 0x17 => {
                Ok(Event::Raw(if v == VendorEvent::L2CodeHits {
                    AMD_L2_IC_HIT
                } else {
                    AMD_L2_IC_MISS
                }))
            }
            VendorEvent::ResourceStalls(_) => Err(format!(
                "{cpu}: AMD has no RESOURCE_STALLS event (its dispatch-stall events count \
                 other causes)"
            )),
            _ => Err(format!("{cpu}: no encoding of {what} is known before Zen")),
        };
    }
    let gen = if cpu.vendor == Vendor::Intel && cpu.family == 6 {
        IntelFrontGen::of(cpu.model)
    } else {
        None
    };
    let Some(gen) = gen else {
        return Err(format!(
            "{cpu}: no encoding of {what} is known for this CPU"
        ));
    };
    if pmu.hybrid && pmu.kind != CoreKind::Core {
        return Err(format!(
            "{}: the E-cores of {cpu} have no {what} event",
            pmu.name
        ));
    }
    let (hit, miss) = gen.l2_code_umasks();
    Ok(Event::Raw(match v {
        VendorEvent::L2CodeHits => intel_raw(0x24, hit, 0),
        VendorEvent::L2CodeMisses => intel_raw(0x24, miss, 0),
        VendorEvent::ResourceStalls(s) if gen.stalls().contains(&s) => {
            intel_raw(0xa2, s.umask(), 0)
        }
        VendorEvent::ResourceStalls(s) => {
            return Err(format!(
                "{cpu}: {} cores define no {}",
                gen.name(),
                s.intel_name()
            ))
        }
        _ => return Err(format!("{cpu}: no encoding of {what}")),
    }))
}

/// Resolves a vendor-dependent event to a generic or raw event for this CPU and PMU.
pub fn vendor_event(v: VendorEvent, cpu: &CpuInfo, pmu: &CorePmu) -> Result<Event, String> {
    use VendorEvent::*;
    if matches!(v, L2CodeHits | L2CodeMisses | ResourceStalls(_)) {
        return front_event(v, cpu, pmu);
    }
    let amd_like = cpu.vendor.is_amd_like();
    let intel = cpu.vendor == Vendor::Intel;
    let generic = match v {
        LlcReferences if intel => Some(Event::Hardware(Hw::CacheReferences)),
        LlcMisses if intel => Some(Event::Hardware(Hw::CacheMisses)),
        LlcReferences => Some(Event::Cache(
            CacheId::Ll,
            CacheOp::Read,
            CacheResult::Access,
        )),
        LlcMisses => Some(Event::Cache(CacheId::Ll, CacheOp::Read, CacheResult::Miss)),
        L2References if amd_like => Some(Event::Hardware(Hw::CacheReferences)),
        L2Misses if amd_like => Some(Event::Hardware(Hw::CacheMisses)),
        _ => None,
    };
    if let Some(e) = generic {
        return Ok(e);
    }
    let what = Event::Vendor(v);
    if amd_like {
        return Err(format!(
            "{cpu}: AMD defines no {what} event in the core PMU"
        ));
    }
    let gen = if intel && cpu.family == 6 {
        intel_gen(cpu.model)
    } else {
        None
    };
    let Some(gen) = gen else {
        return Err(format!(
            "{cpu}: no encoding of {what} is known for this CPU"
        ));
    };
    if INTEL_HYBRID.contains(&cpu.model) && pmu.kind != CoreKind::Core {
        return Err(format!(
            "{}: no encoding of {what} is known for the E-cores of {cpu}",
            pmu.name
        ));
    }
    let (dtlb_load, dtlb_store, itlb, walk_cmask) = match gen {
        IntelGen::Haswell => (0x08, 0x49, 0x85, 0),
        IntelGen::Skylake | IntelGen::IcelakeServer => (0x08, 0x49, 0x85, 1),
        IntelGen::GoldenCove => (0x12, 0x13, 0x11, 1),
    };
    let code = match v {
        L2References | L2Misses if gen == IntelGen::IcelakeServer => {
            return Err(format!(
                "{cpu}: Ice Lake server defines no L2_RQSTS.REFERENCES/MISS"
            ))
        }
        L2References => intel_raw(0x24, 0xff, 0),
        L2Misses => intel_raw(0x24, 0x3f, 0),
        DtlbLoadWalkCycles => intel_raw(dtlb_load, 0x10, walk_cmask),
        DtlbStoreWalkCycles => intel_raw(dtlb_store, 0x10, walk_cmask),
        ItlbWalkCycles => intel_raw(itlb, 0x10, walk_cmask),
        // Resolved to generic events, or by front_event, above.
        LlcReferences | LlcMisses | L2CodeHits | L2CodeMisses | ResourceStalls(_) => {
            return Err(format!("{cpu}: no encoding of {what}"))
        }
    };
    Ok(Event::Raw(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intel(model: u32) -> CpuInfo {
        CpuInfo::new(Vendor::Intel, 6, model)
    }
    fn amd(family: u32) -> CpuInfo {
        CpuInfo::new(Vendor::Amd, family, 1)
    }
    fn r(type_: u32, config: u64) -> Result<Resolved, String> {
        Ok(Resolved { type_, config })
    }

    /// The kernel ABI values of include/uapi/linux/perf_event.h, written out.
    #[test]
    fn abi_constants_are_the_kernel_values() {
        assert_eq!(
            (
                PERF_TYPE_HARDWARE,
                PERF_TYPE_SOFTWARE,
                PERF_TYPE_HW_CACHE,
                PERF_TYPE_RAW
            ),
            (0, 1, 3, 4)
        );
        assert_eq!(PERF_PMU_TYPE_SHIFT, 32);
        let hw: Vec<u64> = [
            Hw::Cycles,
            Hw::Instructions,
            Hw::CacheReferences,
            Hw::CacheMisses,
            Hw::BranchInstructions,
            Hw::BranchMisses,
            Hw::BusCycles,
            Hw::StalledCyclesFrontend,
            Hw::StalledCyclesBackend,
            Hw::RefCycles,
        ]
        .iter()
        .map(|h| h.config())
        .collect();
        assert_eq!(hw, (0..10).collect::<Vec<u64>>());
        let sw: Vec<u64> = [
            Sw::CpuClock,
            Sw::TaskClock,
            Sw::PageFaults,
            Sw::ContextSwitches,
            Sw::CpuMigrations,
            Sw::MinorFaults,
            Sw::MajorFaults,
            Sw::AlignmentFaults,
            Sw::EmulationFaults,
        ]
        .iter()
        .map(|s| s.config())
        .collect();
        assert_eq!(sw, (0..9).collect::<Vec<u64>>());
        use CacheId::*;
        use CacheOp::*;
        use CacheResult::*;
        assert_eq!(cache_config(L1d, Read, Access), 0x0);
        assert_eq!(cache_config(L1d, Read, Miss), 0x10000);
        assert_eq!(cache_config(L1i, Read, Miss), 0x10001);
        assert_eq!(cache_config(Ll, Read, Access), 0x2);
        assert_eq!(cache_config(Ll, Read, Miss), 0x10002);
        assert_eq!(cache_config(Dtlb, Read, Miss), 0x10003);
        assert_eq!(cache_config(Dtlb, Write, Miss), 0x10103);
        assert_eq!(cache_config(Itlb, Read, Miss), 0x10004);
        assert_eq!(cache_config(Bpu, Read, Access), 0x5);
        assert_eq!(cache_config(Node, Prefetch, Miss), 0x10206);
    }

    #[test]
    fn parses_perf_names() {
        assert_eq!(Event::parse("cycles"), Ok(Event::Hardware(Hw::Cycles)));
        assert_eq!(Event::parse("cpu-cycles"), Ok(Event::Hardware(Hw::Cycles)));
        assert_eq!(
            Event::parse("branches"),
            Ok(Event::Hardware(Hw::BranchInstructions))
        );
        assert_eq!(Event::parse("cs"), Ok(Event::Software(Sw::ContextSwitches)));
        assert_eq!(
            Event::parse("Task-Clock"),
            Ok(Event::Software(Sw::TaskClock))
        );
        assert_eq!(
            Event::parse("L1-dcache-load-misses"),
            Ok(Event::Cache(CacheId::L1d, CacheOp::Read, CacheResult::Miss))
        );
        assert_eq!(
            Event::parse("LLC-loads"),
            Ok(Event::Cache(
                CacheId::Ll,
                CacheOp::Read,
                CacheResult::Access
            ))
        );
        assert_eq!(
            Event::parse("dTLB-store-misses"),
            Ok(Event::Cache(
                CacheId::Dtlb,
                CacheOp::Write,
                CacheResult::Miss
            ))
        );
        assert_eq!(
            Event::parse("l1-icache-prefetches"),
            Ok(Event::Cache(
                CacheId::L1i,
                CacheOp::Prefetch,
                CacheResult::Access
            ))
        );
        assert_eq!(Event::parse("r4f2e"), Ok(Event::Raw(0x4f2e)));
        assert_eq!(Event::parse("r01001012"), Ok(Event::Raw(0x0100_1012)));
        for bad in [
            "",
            "r",
            "rxyz",
            "r11112222333344445",
            "cycle",
            "L1-dcache",
            "dTLB-foo",
        ] {
            assert!(Event::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn names_round_trip() {
        for n in [
            "cycles",
            "instructions",
            "cache-misses",
            "task-clock",
            "context-switches",
            "L1-dcache-load-misses",
            "LLC-loads",
            "dTLB-store-misses",
            "iTLB-load-misses",
            "r4f2e",
        ] {
            assert_eq!(Event::parse(n).unwrap().name(), n);
        }
    }

    #[test]
    fn generic_events_on_a_legacy_pmu() {
        let pmu = CorePmu::legacy();
        let cpu = amd(0x19);
        assert_eq!(Event::Hardware(Hw::Cycles).resolve(&pmu, &cpu), r(0, 0));
        assert_eq!(
            Event::Hardware(Hw::BranchMisses).resolve(&pmu, &cpu),
            r(0, 5)
        );
        assert_eq!(Event::Software(Sw::TaskClock).resolve(&pmu, &cpu), r(1, 1));
        assert_eq!(
            Event::Software(Sw::ContextSwitches).resolve(&pmu, &cpu),
            r(1, 3)
        );
        assert_eq!(
            Event::Cache(CacheId::L1d, CacheOp::Read, CacheResult::Miss).resolve(&pmu, &cpu),
            r(3, 0x10000)
        );
        assert_eq!(Event::Raw(0x412e).resolve(&pmu, &cpu), r(4, 0x412e));
    }

    #[test]
    fn hybrid_pmus_get_the_extended_type() {
        let core = CorePmu::hybrid("cpu_core", 4, None);
        let atom = CorePmu::hybrid("cpu_atom", 10, None);
        let cpu = intel(0x97);
        assert_eq!(
            Event::Hardware(Hw::Cycles).resolve(&core, &cpu),
            r(0, 4 << 32)
        );
        assert_eq!(
            Event::Hardware(Hw::Instructions).resolve(&atom, &cpu),
            r(0, (10 << 32) | 1)
        );
        assert_eq!(
            Event::Cache(CacheId::Dtlb, CacheOp::Read, CacheResult::Miss).resolve(&atom, &cpu),
            r(3, (10 << 32) | 0x10003)
        );
        // Raw codes go to the PMU's own type; software events ignore the PMU.
        assert_eq!(Event::Raw(0xff24).resolve(&atom, &cpu), r(10, 0xff24));
        assert_eq!(
            Event::Software(Sw::PageFaults).resolve(&atom, &cpu),
            r(1, 2)
        );
    }

    #[test]
    fn vendor_llc_and_l2() {
        let pmu = CorePmu::legacy();
        // Intel: the generic pair the kernel maps to LONGEST_LAT_CACHE (the original's
        // r4f2e/r412e); L2 from L2_RQSTS.
        let skl = intel(0x5e);
        assert_eq!(
            Event::Vendor(VendorEvent::LlcReferences).resolve(&pmu, &skl),
            r(0, 2)
        );
        assert_eq!(
            Event::Vendor(VendorEvent::LlcMisses).resolve(&pmu, &skl),
            r(0, 3)
        );
        assert_eq!(
            Event::Vendor(VendorEvent::L2References).resolve(&pmu, &skl),
            r(4, 0xff24)
        );
        assert_eq!(
            Event::Vendor(VendorEvent::L2Misses).resolve(&pmu, &skl),
            r(4, 0x3f24)
        );
        assert!(Event::Vendor(VendorEvent::L2References)
            .resolve(&pmu, &intel(0x6a))
            .is_err());
        // AMD: the kernel's cache-references/misses are L2 requests/misses; the LLC is the
        // generic LL cache event (which Zen's kernel table leaves unsupported).
        let zen = amd(0x19);
        assert_eq!(
            Event::Vendor(VendorEvent::L2References).resolve(&pmu, &zen),
            r(0, 2)
        );
        assert_eq!(
            Event::Vendor(VendorEvent::L2Misses).resolve(&pmu, &zen),
            r(0, 3)
        );
        assert_eq!(
            Event::Vendor(VendorEvent::LlcReferences).resolve(&pmu, &zen),
            r(3, 0x2)
        );
        assert_eq!(
            Event::Vendor(VendorEvent::LlcMisses).resolve(&pmu, &zen),
            r(3, 0x10002)
        );
    }

    #[test]
    fn walk_cycles_per_intel_generation() {
        let pmu = CorePmu::legacy();
        let walk = |m: u32| {
            [
                VendorEvent::DtlbLoadWalkCycles,
                VendorEvent::DtlbStoreWalkCycles,
                VendorEvent::ItlbWalkCycles,
            ]
            .map(|v| Event::Vendor(v).resolve(&pmu, &intel(m)).map(|x| x.config))
        };
        // Skylake: DTLB_LOAD_MISSES.WALK_ACTIVE = event 0x08 umask 0x10 cmask 1.
        assert_eq!(
            walk(0x55),
            [Ok(0x0100_1008), Ok(0x0100_1049), Ok(0x0100_1085)]
        );
        assert_eq!(
            walk(0x7e),
            [Ok(0x0100_1008), Ok(0x0100_1049), Ok(0x0100_1085)]
        );
        // Haswell: WALK_DURATION, no counter mask.
        assert_eq!(walk(0x3f), [Ok(0x1008), Ok(0x1049), Ok(0x1085)]);
        // Sapphire Rapids: events moved to 0x12/0x13/0x11.
        assert_eq!(
            walk(0x8f),
            [Ok(0x0100_1012), Ok(0x0100_1013), Ok(0x0100_1011)]
        );
        // Unknown model: no guess.
        assert!(walk(0x1a).iter().all(|x| x.is_err()));
        // AMD: not defined.
        assert!(Event::Vendor(VendorEvent::ItlbWalkCycles)
            .resolve(&pmu, &amd(0x19))
            .is_err());
    }

    #[test]
    fn hybrid_raw_events_only_on_the_p_cores() {
        let core = CorePmu::hybrid("cpu_core", 4, Some(vec![0, 1]));
        let atom = CorePmu::hybrid("cpu_atom", 10, Some(vec![2, 3]));
        let adl = intel(0x97);
        assert_eq!(
            Event::Vendor(VendorEvent::DtlbLoadWalkCycles).resolve(&core, &adl),
            r(4, 0x0100_1012)
        );
        assert_eq!(
            Event::Vendor(VendorEvent::L2References).resolve(&core, &adl),
            r(4, 0xff24)
        );
        assert!(Event::Vendor(VendorEvent::DtlbLoadWalkCycles)
            .resolve(&atom, &adl)
            .is_err());
        // Generic events still work on the E-cores.
        assert_eq!(
            Event::Vendor(VendorEvent::LlcMisses).resolve(&atom, &adl),
            r(0, (10 << 32) | 3)
        );
    }

    /// L2 instruction-fetch hits and misses per generation, against Intel's perfmon lists
    /// (NehalemEP, sandybridge, ivybridge, haswell, skylake, icelake, sapphirerapids,
    /// lunarlake_lioncove core.json) and AMD's l2_cache_req_stat umasks.
    #[test]
    fn l2_code_reads_per_generation() {
        let pmu = CorePmu::legacy();
        let code = |cpu: &CpuInfo| {
            [VendorEvent::L2CodeHits, VendorEvent::L2CodeMisses]
                .map(|v| Event::Vendor(v).resolve(&pmu, cpu))
        };
        // Nehalem (0x1a) and Westmere-EP (0x2c): IFETCH_HIT 0x1024, IFETCH_MISS 0x2024.
        for m in [0x1a, 0x2c, 0x2a, 0x2d, 0x3a, 0x3e] {
            assert_eq!(code(&intel(m)), [r(4, 0x1024), r(4, 0x2024)], "{m:#x}");
        }
        // Haswell to Sapphire Rapids: CODE_RD_HIT 0xc424, CODE_RD_MISS 0x2424 (the
        // original's r4424 is not the documented hit encoding there).
        for m in [0x3c, 0x4f, 0x5e, 0x55, 0x7e, 0x6a, 0x8f, 0x97, 0xaa] {
            assert_eq!(code(&intel(m)), [r(4, 0xc424), r(4, 0x2424)], "{m:#x}");
        }
        // Lion Cove (Lunar Lake, Arrow Lake): CODE_RD_HIT is 0x4424 again.
        for m in [0xbd, 0xc6, 0xcc] {
            assert_eq!(code(&intel(m)), [r(4, 0x4424), r(4, 0x2424)], "{m:#x}");
        }
        // AMD Zen 1-5 and Hygon: l2_cache_req_stat.ic_hit_in_l2 / ic_fill_miss.
        for f in [0x17, 0x19, 0x1a] {
            assert_eq!(code(&amd(f)), [r(4, 0x0664), r(4, 0x0164)], "{f:#x}");
        }
        let hygon = CpuInfo::new(Vendor::Hygon, 0x18, 1);
        assert_eq!(code(&hygon), [r(4, 0x0664), r(4, 0x0164)]);
        // Older AMD, unknown Intel models and E-cores: not supported, never a guess.
        assert!(code(&amd(0x15)).iter().all(|x| x.is_err()));
        assert!(code(&intel(0x1c)).iter().all(|x| x.is_err()));
        let atom = CorePmu::hybrid("cpu_atom", 10, None);
        let core = CorePmu::hybrid("cpu_core", 4, None);
        let e = Event::Vendor(VendorEvent::L2CodeHits).resolve(&atom, &intel(0x97));
        assert!(e.unwrap_err().contains("E-cores"));
        assert_eq!(
            Event::Vendor(VendorEvent::L2CodeHits).resolve(&core, &intel(0x97)),
            r(4, 0xc424)
        );
    }

    /// RESOURCE_STALLS (event 0xa2) per generation: only the causes each defines.
    #[test]
    fn resource_stalls_per_generation() {
        let pmu = CorePmu::legacy();
        let stalls = |cpu: &CpuInfo| -> Vec<Option<u64>> {
            Stall::ALL
                .iter()
                .map(|s| {
                    Event::Vendor(VendorEvent::ResourceStalls(*s))
                        .resolve(&pmu, cpu)
                        .ok()
                        .map(|x| {
                            assert_eq!(x.type_, PERF_TYPE_RAW);
                            x.config
                        })
                })
                .collect()
        };
        // Nehalem/Westmere: all eight, the original's r01a2 ... r80a2.
        let all: Vec<Option<u64>> = [0x1a2, 0x2a2, 0x4a2, 0x8a2, 0x10a2, 0x20a2, 0x40a2, 0x80a2]
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(stalls(&intel(0x1e)), all);
        assert_eq!(stalls(&intel(0x2f)), all);
        // Sandy Bridge: ANY, LB, RS, SB, ROB.
        assert_eq!(
            stalls(&intel(0x2a)),
            [
                Some(0x1a2),
                Some(0x2a2),
                Some(0x4a2),
                Some(0x8a2),
                Some(0x10a2),
                None,
                None,
                None
            ]
        );
        // Ivy Bridge, Haswell, Broadwell: ANY, RS, SB, ROB.
        for m in [0x3a, 0x3f, 0x4f] {
            assert_eq!(
                stalls(&intel(m)),
                [
                    Some(0x1a2),
                    None,
                    Some(0x4a2),
                    Some(0x8a2),
                    Some(0x10a2),
                    None,
                    None,
                    None
                ],
                "{m:#x}"
            );
        }
        // Skylake, Cascade Lake: ANY and SB.
        for m in [0x5e, 0x55] {
            assert_eq!(
                stalls(&intel(m)),
                [Some(0x1a2), None, None, Some(0x8a2), None, None, None, None]
            );
        }
        // Ice Lake .. Sapphire Rapids: SB only (umask 0x02 means SCOREBOARD there).
        for m in [0x7e, 0x6a, 0x8f, 0x97] {
            assert_eq!(
                stalls(&intel(m)),
                [None, None, None, Some(0x8a2), None, None, None, None]
            );
        }
        // Lion Cove and AMD: none.
        assert!(stalls(&intel(0xbd)).iter().all(Option::is_none));
        assert!(stalls(&amd(0x19)).iter().all(Option::is_none));
        let why = Event::Vendor(VendorEvent::ResourceStalls(Stall::Load))
            .resolve(&pmu, &intel(0x5e))
            .unwrap_err();
        assert!(
            why.contains("Skylake cores define no RESOURCE_STALLS.LOAD"),
            "{why}"
        );
    }
}
