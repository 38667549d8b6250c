//! Decoding of `tcp:tcp_retransmit_skb` records by the running kernel's format file,
//! and of the kernel's stack records (`ftrace:kernel_stack`) that follow them with `-s`.
//!
//! The event's fields changed across kernels (e.g. 5.10 has no `err`, 6.12+ has one;
//! `family` is absent before 5.x); every field is looked up by name, and the ones a
//! kernel may lack are optional.

use anyhow::{bail, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use perf_tools_ftrace::format::{EventFormat, Field};

/// `AF_INET` and `AF_INET6`, as the tracepoint stores them.
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

/// Where the fields of `tcp_retransmit_skb` are on this kernel.
#[derive(Debug, Clone)]
pub struct RetransLayout {
    /// The event id (`common_type` of its records).
    pub id: u16,
    pid: Field,
    state: Option<Field>,
    sport: Field,
    dport: Field,
    family: Option<Field>,
    saddr: Field,
    daddr: Field,
    saddr_v6: Option<Field>,
    daddr_v6: Option<Field>,
}

/// One decoded retransmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// The PID on-CPU when the kernel retransmitted (often 0: a timer).
    pub pid: i32,
    /// The TCP state number (`None`: this kernel's event has no `state`).
    pub state: Option<i32>,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// False when the source could give the ports but not the addresses (an IPv6
    /// socket seen by the kprobe source): the address columns then show `-`.
    pub addrs_known: bool,
}

fn sized(fmt: &EventFormat, name: &str, size: usize) -> Result<Field> {
    let f = fmt.require(name)?;
    if f.size != size {
        bail!(
            "{}: field {name} is {} bytes, expected {size}",
            fmt.name,
            f.size
        );
    }
    Ok(f)
}

fn optional(fmt: &EventFormat, name: &str, size: usize) -> Result<Option<Field>> {
    match fmt.field(name) {
        None => Ok(None),
        Some(_) => sized(fmt, name, size).map(Some),
    }
}

impl RetransLayout {
    /// The layout from the event's parsed format file; an error names the field that is
    /// missing or has an unexpected size.
    pub fn new(fmt: &EventFormat) -> Result<RetransLayout> {
        let l = RetransLayout {
            id: fmt.id,
            pid: sized(fmt, "common_pid", 4)?,
            state: optional(fmt, "state", 4)?,
            sport: sized(fmt, "sport", 2)?,
            dport: sized(fmt, "dport", 2)?,
            family: optional(fmt, "family", 2)?,
            saddr: sized(fmt, "saddr", 4)?,
            daddr: sized(fmt, "daddr", 4)?,
            saddr_v6: optional(fmt, "saddr_v6", 16)?,
            daddr_v6: optional(fmt, "daddr_v6", 16)?,
        };
        if l.saddr_v6.is_some() != l.daddr_v6.is_some() {
            bail!("{}: only one of saddr_v6 and daddr_v6 exists", fmt.name);
        }
        Ok(l)
    }

    /// How this layout tells IPv4 from IPv6 (for `--check`).
    pub fn describe(&self) -> String {
        let family = match (&self.family, &self.saddr_v6) {
            (Some(_), Some(_)) => "IPv4 and IPv6 by the family field",
            (None, Some(_)) => "IPv4 and IPv6 (no family field: IPv4 from v4-mapped addresses)",
            (_, None) => "IPv4 only (no saddr_v6/daddr_v6 fields)",
        };
        let state = if self.state.is_some() {
            "state"
        } else {
            "no state field (STATE shows -)"
        };
        format!("decoded by field name: sport, dport, saddr, daddr, {state}; {family}")
    }

    /// Decodes one record of this event (`None`: too short or an unknown family).
    pub fn decode(&self, p: &[u8]) -> Option<Retransmit> {
        let pid = self.pid.read_i64(p)? as i32;
        let state = match &self.state {
            Some(f) => Some(f.read_i64(p)? as i32),
            None => None,
        };
        let sport = self.sport.read_u64(p)? as u16;
        let dport = self.dport.read_u64(p)? as u16;
        let v6 = |f: &Option<Field>| -> Option<Option<Ipv6Addr>> {
            match f {
                None => Some(None),
                Some(f) => {
                    let b: [u8; 16] = p.get(f.offset..f.offset + 16)?.try_into().ok()?;
                    Some(Some(Ipv6Addr::from(b)))
                }
            }
        };
        let (s6, d6) = (v6(&self.saddr_v6)?, v6(&self.daddr_v6)?);
        let is_v6 = match (&self.family, s6, d6) {
            (Some(f), _, _) => match f.read_u64(p)? {
                AF_INET => false,
                AF_INET6 => true,
                _ => return None,
            },
            // Older kernels without `family` store IPv4 sockets' addresses v4-mapped.
            (None, Some(s), Some(d)) => {
                s.to_ipv4_mapped().is_none() || d.to_ipv4_mapped().is_none()
            }
            (None, _, _) => false,
        };
        let (local, remote) = match (is_v6, s6, d6) {
            (true, Some(s), Some(d)) => (IpAddr::V6(s), IpAddr::V6(d)),
            (true, _, _) => return None,
            (false, _, _) => {
                let v4 = |f: &Field| -> Option<Ipv4Addr> {
                    let b: [u8; 4] = p.get(f.offset..f.offset + 4)?.try_into().ok()?;
                    Some(Ipv4Addr::from(b))
                };
                (IpAddr::V4(v4(&self.saddr)?), IpAddr::V4(v4(&self.daddr)?))
            }
        };
        Some(Retransmit {
            pid,
            state,
            local: SocketAddr::new(local, sport),
            remote: SocketAddr::new(remote, dport),
            addrs_known: true,
        })
    }
}

/// The kernel functions the kprobe source probes, best first: `__tcp_retransmit_skb`
/// sends every retransmit, tail loss probes included (where the tracepoint fires);
/// `tcp_retransmit_skb` (the original's) misses the loss probes, which call the former
/// directly.
pub const KPROBE_FUNCTIONS: [&str; 2] = ["__tcp_retransmit_skb", "tcp_retransmit_skb"];

/// The fetch arguments of the kprobe source, with `sk` the fetch form of the function's
/// first argument (`$arg1`, or the architecture's register): the head of `struct
/// sock_common`, the same on every kernel since 3.x (`skc_daddr`, `skc_rcv_saddr`,
/// `skc_dport` (network order), `skc_num`, `skc_family`, `skc_state`). Whether the
/// running kernel really lays them out so is verified at start by a canary (a send on a
/// loopback connection of the tool's own, seen through the same fetches on
/// `tcp_sendmsg`). IPv6 addresses are further on, at offsets that depend on the
/// kernel's configuration: not fetched.
pub fn kprobe_fetchargs(sk: &str) -> String {
    format!(
        "daddr=+0({sk}):u32 saddr=+4({sk}):u32 dport=+12({sk}):u16 sport=+14({sk}):u16 family=+16({sk}):u16 state=+18({sk}):u8"
    )
}

/// Where the fields of the kprobe source's records are (from the probe's format file).
#[derive(Debug, Clone)]
pub struct ProbeLayout {
    /// The probe's event id.
    pub id: u16,
    pid: Field,
    daddr: Field,
    saddr: Field,
    dport: Field,
    sport: Field,
    family: Field,
    state: Field,
}

impl ProbeLayout {
    /// The layout from the probe's parsed format file.
    pub fn new(fmt: &EventFormat) -> Result<ProbeLayout> {
        Ok(ProbeLayout {
            id: fmt.id,
            pid: sized(fmt, "common_pid", 4)?,
            daddr: sized(fmt, "daddr", 4)?,
            saddr: sized(fmt, "saddr", 4)?,
            dport: sized(fmt, "dport", 2)?,
            sport: sized(fmt, "sport", 2)?,
            family: sized(fmt, "family", 2)?,
            state: sized(fmt, "state", 1)?,
        })
    }

    /// Decodes one record (`None`: too short, or a family other than IPv4 and IPv6).
    pub fn decode(&self, p: &[u8]) -> Option<Retransmit> {
        let pid = self.pid.read_i64(p)? as i32;
        let addr = |f: &Field| -> Option<Ipv4Addr> {
            let b: [u8; 4] = p.get(f.offset..f.offset + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(b))
        };
        // skc_dport is in network order, skc_num in host order.
        let dport = u16::from_be(self.dport.read_u64(p)? as u16);
        let sport = self.sport.read_u64(p)? as u16;
        let state = Some(self.state.read_u64(p)? as i32);
        let (local, remote, addrs_known) = match self.family.read_u64(p)? {
            AF_INET => (
                IpAddr::V4(addr(&self.saddr)?),
                IpAddr::V4(addr(&self.daddr)?),
                true,
            ),
            AF_INET6 => (
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                false,
            ),
            _ => return None,
        };
        Some(Retransmit {
            pid,
            state,
            local: SocketAddr::new(local, sport),
            remote: SocketAddr::new(remote, dport),
            addrs_known,
        })
    }
}

/// The decoder of the source in use.
#[derive(Debug, Clone)]
pub enum RetransDecoder {
    /// `tcp:tcp_retransmit_skb`.
    Tracepoint(RetransLayout),
    /// The kprobe fallback.
    Kprobe(ProbeLayout),
}

impl RetransDecoder {
    /// The event id of its records.
    pub fn id(&self) -> u16 {
        match self {
            RetransDecoder::Tracepoint(l) => l.id,
            RetransDecoder::Kprobe(l) => l.id,
        }
    }

    /// Decodes one record.
    pub fn decode(&self, p: &[u8]) -> Option<Retransmit> {
        match self {
            RetransDecoder::Tracepoint(l) => l.decode(p),
            RetransDecoder::Kprobe(l) => l.decode(p),
        }
    }
}

/// The layout of the kernel's stack records (`events/ftrace/kernel_stack/format`).
#[derive(Debug, Clone)]
pub struct StackLayout {
    /// The event id.
    pub id: u16,
    pid: Field,
    size: Option<Field>,
    caller: usize,
}

impl StackLayout {
    /// The layout from the parsed format file.
    pub fn new(fmt: &EventFormat) -> Result<StackLayout> {
        let caller = fmt.require("caller")?;
        if caller.array_len.is_none() || caller.size % 8 != 0 {
            bail!("kernel_stack: caller is not an array of 64-bit addresses");
        }
        Ok(StackLayout {
            id: fmt.id,
            pid: sized(fmt, "common_pid", 4)?,
            size: optional(fmt, "size", 4)?,
            caller: caller.offset,
        })
    }

    /// The PID of a stack record.
    pub fn pid(&self, p: &[u8]) -> Option<i32> {
        self.pid.read_i64(p).map(|v| v as i32)
    }

    /// The return addresses of a stack record, innermost first: `size` entries (or to
    /// the record's end), stopping at the first `ULONG_MAX`, as the kernel prints them.
    pub fn frames(&self, p: &[u8], out: &mut Vec<u64>) {
        let n = self
            .size
            .as_ref()
            .and_then(|f| f.read_i64(p))
            .map_or(usize::MAX, |n| n.max(0) as usize);
        let mut off = self.caller;
        for _ in 0..n {
            let Some(w) = p.get(off..off + 8) else { break };
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            let addr = u64::from_ne_bytes(a);
            if addr == u64::MAX {
                break;
            }
            out.push(addr);
            off += 8;
        }
    }
}

/// The name the original prints for a TCP state number (`include/net/tcp_states.h`),
/// without the `TCP_` prefix; a number this table does not know prints as itself.
pub fn state_name(state: i32) -> std::borrow::Cow<'static, str> {
    const NAMES: [&str; 13] = [
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
        "BOUND_INACTIVE",
    ];
    match usize::try_from(state).ok().and_then(|s| s.checked_sub(1)) {
        Some(i) if i < NAMES.len() => NAMES[i].into(),
        _ => state.to_string().into(),
    }
}

/// `addr:port` as the LADDR:LPORT and RADDR:RPORT columns show it: `1.2.3.4:80` for
/// IPv4, `[::1]:80` for IPv6 (the brackets keep the port apart from the address).
pub fn endpoint(a: &SocketAddr) -> String {
    a.to_string()
}

/// The column text of a retransmit's endpoint: [`endpoint`], or `-:PORT` when the
/// source could not give the address.
pub fn endpoint_of(r: &Retransmit, a: &SocketAddr) -> String {
    if r.addrs_known {
        endpoint(a)
    } else {
        format!("-:{}", a.port())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixture(kernel: &str, name: &str) -> EventFormat {
        let path = format!(
            "{}/../../tests/fixtures/formats/{kernel}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        EventFormat::parse(&text).unwrap()
    }

    /// A record of `fmt` with the given field values (by name, as the kernel lays them
    /// out on that kernel).
    fn record(fmt: &EventFormat, set: &[(&str, &[u8])]) -> Vec<u8> {
        let len = fmt.fields.iter().map(|f| f.offset + f.size).max().unwrap();
        let mut p = vec![0u8; len];
        p[..2].copy_from_slice(&fmt.id.to_ne_bytes());
        for (name, v) in set {
            // Kernels before 5.13 or so have no `family` (5.10 among them).
            if *name == "family" && fmt.field(name).is_none() {
                continue;
            }
            let f = fmt.field(name).unwrap();
            assert_eq!(f.size, v.len(), "{name}");
            p[f.offset..f.offset + v.len()].copy_from_slice(v);
        }
        p
    }

    const KERNELS: [&str; 4] = ["5.10", "6.1", "6.12", "6.18"];

    #[test]
    fn ipv4_and_ipv6_decode_by_name_on_every_captured_kernel() {
        for k in KERNELS {
            let fmt = fixture(k, "tcp_retransmit_skb");
            let l = RetransLayout::new(&fmt).unwrap();
            let mapped = |a: [u8; 4]| Ipv4Addr::from(a).to_ipv6_mapped().octets();
            let p = record(
                &fmt,
                &[
                    ("common_pid", &4242i32.to_ne_bytes()),
                    ("state", &1i32.to_ne_bytes()),
                    ("sport", &40000u16.to_ne_bytes()),
                    ("dport", &8080u16.to_ne_bytes()),
                    ("family", &2u16.to_ne_bytes()),
                    ("saddr", &[10, 1, 2, 3]),
                    ("daddr", &[192, 168, 0, 9]),
                    ("saddr_v6", &mapped([10, 1, 2, 3])),
                    ("daddr_v6", &mapped([192, 168, 0, 9])),
                ],
            );
            let r = l.decode(&p).unwrap();
            assert_eq!(r.pid, 4242, "{k}");
            assert_eq!(r.state, Some(1), "{k}");
            assert_eq!(endpoint(&r.local), "10.1.2.3:40000", "{k}");
            assert_eq!(endpoint(&r.remote), "192.168.0.9:8080", "{k}");

            let lo6 = Ipv6Addr::LOCALHOST.octets();
            let other: Ipv6Addr = "fd00::1:2".parse().unwrap();
            let p = record(
                &fmt,
                &[
                    ("common_pid", &0i32.to_ne_bytes()),
                    ("state", &2i32.to_ne_bytes()),
                    ("sport", &1u16.to_ne_bytes()),
                    ("dport", &65535u16.to_ne_bytes()),
                    ("family", &10u16.to_ne_bytes()),
                    ("saddr", &[127, 0, 0, 6]),
                    ("saddr_v6", &lo6),
                    ("daddr_v6", &other.octets()),
                ],
            );
            let r = l.decode(&p).unwrap();
            assert_eq!(endpoint(&r.local), "[::1]:1", "{k}");
            assert_eq!(endpoint(&r.remote), "[fd00::1:2]:65535", "{k}");
            assert_eq!(state_name(r.state.unwrap()), "SYN_SENT");
        }
    }

    #[test]
    fn the_layouts_differ_across_kernels_and_are_still_found() {
        // 5.10: no family and no err field, addresses from offset 32; 6.1/6.12: family
        // at 32, addresses from 34; 6.18: err after the addresses.
        let describe = |k| {
            RetransLayout::new(&fixture(k, "tcp_retransmit_skb"))
                .unwrap()
                .describe()
        };
        assert!(
            describe("5.10").contains("no family field"),
            "{}",
            describe("5.10")
        );
        for k in ["6.1", "6.12", "6.18"] {
            assert!(
                describe(k).contains("by the family field"),
                "{k}: {}",
                describe(k)
            );
        }
        let f510 = fixture("5.10", "tcp_retransmit_skb");
        let f618 = fixture("6.18", "tcp_retransmit_skb");
        assert!(f510.field("err").is_none() && f510.field("family").is_none());
        assert!(f618.field("err").is_some());
        assert_ne!(
            f510.field("saddr").unwrap().offset,
            f618.field("saddr").unwrap().offset
        );
    }

    #[test]
    fn a_kernel_without_family_tells_ipv4_by_mapped_addresses() {
        // The real 5.10 format (no family field).
        let fmt = fixture("5.10", "tcp_retransmit_skb");
        let l = RetransLayout::new(&fmt).unwrap();
        let m = |a: [u8; 4]| Ipv4Addr::from(a).to_ipv6_mapped().octets();
        let p = record(
            &fmt,
            &[
                ("sport", &22u16.to_ne_bytes()),
                ("dport", &50000u16.to_ne_bytes()),
                ("saddr", &[127, 0, 0, 1]),
                ("daddr", &[127, 0, 0, 2]),
                ("saddr_v6", &m([127, 0, 0, 1])),
                ("daddr_v6", &m([127, 0, 0, 2])),
            ],
        );
        let r = l.decode(&p).unwrap();
        assert_eq!(endpoint(&r.local), "127.0.0.1:22");
        assert_eq!(endpoint(&r.remote), "127.0.0.2:50000");
        let p = record(
            &fmt,
            &[
                ("saddr", &[127, 0, 0, 6]),
                ("saddr_v6", &Ipv6Addr::LOCALHOST.octets()),
                ("daddr_v6", &Ipv6Addr::LOCALHOST.octets()),
            ],
        );
        assert_eq!(endpoint(&l.decode(&p).unwrap().local), "[::1]:0");
    }

    #[test]
    fn a_missing_or_resized_field_is_named() {
        let text = std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/formats/6.18/tcp_retransmit_skb",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let e = RetransLayout::new(&EventFormat::parse(&text.replace(" sport;", " sp;")).unwrap())
            .unwrap_err();
        assert!(format!("{e:#}").contains("sport"), "{e:#}");
        let e = RetransLayout::new(
            &EventFormat::parse(&text.replace(
                "__u16 dport;\toffset:30;\tsize:2;",
                "__u32 dport;\toffset:30;\tsize:4;",
            ))
            .unwrap(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("dport is 4 bytes"), "{e:#}");
        // An unknown family is not printed as anything.
        let fmt = EventFormat::parse(&text).unwrap();
        let l = RetransLayout::new(&fmt).unwrap();
        assert!(l
            .decode(&record(&fmt, &[("family", &7u16.to_ne_bytes())]))
            .is_none());
        assert!(l.decode(&[0u8; 20]).is_none());
    }

    #[test]
    fn stack_records_stop_at_their_size_or_ulong_max() {
        for k in KERNELS {
            let fmt = fixture(k, "kernel_stack");
            let l = StackLayout::new(&fmt).unwrap();
            let mut p = vec![0u8; 16 + 8 * 8];
            p[4..8].copy_from_slice(&77i32.to_ne_bytes());
            let size = fmt.field("size").unwrap();
            p[size.offset..size.offset + 4].copy_from_slice(&3i32.to_ne_bytes());
            let c = fmt.field("caller").unwrap().offset;
            for i in 0..8u64 {
                p[c + 8 * i as usize..c + 8 * i as usize + 8]
                    .copy_from_slice(&(0xffff_ffff_8100_0000 + i).to_ne_bytes());
            }
            let mut v = Vec::new();
            l.frames(&p, &mut v);
            assert_eq!(v.len(), 3, "{k}");
            assert_eq!(l.pid(&p), Some(77));
            p[size.offset..size.offset + 4].copy_from_slice(&8i32.to_ne_bytes());
            p[c + 16..c + 24].copy_from_slice(&u64::MAX.to_ne_bytes());
            v.clear();
            l.frames(&p, &mut v);
            assert_eq!(v, [0xffff_ffff_8100_0000, 0xffff_ffff_8100_0001], "{k}");
        }
    }

    #[test]
    fn state_names_are_the_originals() {
        assert_eq!(state_name(1), "ESTABLISHED");
        assert_eq!(state_name(11), "CLOSING");
        assert_eq!(state_name(12), "NEW_SYN_RECV");
        assert_eq!(state_name(0), "0");
        assert_eq!(state_name(99), "99");
        assert_eq!(state_name(-1), "-1");
    }

    /// The format file the kernel writes for the kprobe source's probe (fields in the
    /// order of the definition, after `__probe_ip`).
    const KPROBE_FORMAT: &str = "name: tcpretrans_retransmit
ID: 1712
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;
\tfield:u32 daddr;\toffset:16;\tsize:4;\tsigned:0;
\tfield:u32 saddr;\toffset:20;\tsize:4;\tsigned:0;
\tfield:u16 dport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:u16 sport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:u8 state;\toffset:30;\tsize:1;\tsigned:0;

print fmt: \"(%lx) daddr=0x%x saddr=0x%x dport=%u sport=%u family=%u state=%u\", REC->__probe_ip, REC->daddr, REC->saddr, REC->dport, REC->sport, REC->family, REC->state
";

    #[test]
    fn kprobe_records_decode_by_name_v6_without_addresses() {
        assert_eq!(
            kprobe_fetchargs("$arg1"),
            "daddr=+0($arg1):u32 saddr=+4($arg1):u32 dport=+12($arg1):u16 sport=+14($arg1):u16 family=+16($arg1):u16 state=+18($arg1):u8"
        );
        let fmt = EventFormat::parse(KPROBE_FORMAT).unwrap();
        let l = ProbeLayout::new(&fmt).unwrap();
        let mut p = vec![0u8; 32];
        p[..2].copy_from_slice(&fmt.id.to_ne_bytes());
        p[4..8].copy_from_slice(&4321i32.to_ne_bytes());
        // As in struct sock_common: addresses and skc_dport in network order, skc_num
        // in host order.
        p[16..20].copy_from_slice(&[10, 99, 0, 1]);
        p[20..24].copy_from_slice(&[10, 98, 0, 1]);
        p[24..26].copy_from_slice(&8080u16.to_be_bytes());
        p[26..28].copy_from_slice(&40000u16.to_ne_bytes());
        p[28..30].copy_from_slice(&2u16.to_ne_bytes());
        p[30] = 2;
        let r = l.decode(&p).unwrap();
        assert_eq!(
            r,
            Retransmit {
                pid: 4321,
                state: Some(2),
                local: "10.98.0.1:40000".parse().unwrap(),
                remote: "10.99.0.1:8080".parse().unwrap(),
                addrs_known: true,
            }
        );
        assert_eq!(endpoint_of(&r, &r.remote), "10.99.0.1:8080");
        // IPv6: the ports and state, not the addresses (not at a known offset).
        p[28..30].copy_from_slice(&10u16.to_ne_bytes());
        let r = l.decode(&p).unwrap();
        assert!(!r.addrs_known);
        assert_eq!(endpoint_of(&r, &r.local), "-:40000");
        assert_eq!(endpoint_of(&r, &r.remote), "-:8080");
        assert_eq!(r.state, Some(2));
        // Another family: not a TCP socket of ours to show.
        p[28..30].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(l.decode(&p), None);
        // A probe without one of the fields is refused by name.
        let short = KPROBE_FORMAT.replace("field:u8 state;", "field:u8 st;");
        let e = ProbeLayout::new(&EventFormat::parse(&short).unwrap()).unwrap_err();
        assert!(format!("{e:#}").contains("state"), "{e:#}");
    }
}
