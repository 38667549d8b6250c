//! Container scope of tcpretrans: the retransmits of the TCP sockets that a cgroup's
//! processes hold open.
//!
//! A retransmit mostly happens in a timer (softirq), in whatever task is on the CPU, so
//! neither a PID filter in the kernel (`set_event_pid`) nor the event's PID tells whose
//! socket it was. The event carries the socket's addresses and ports instead, so the
//! scope is a set of connections: every [`REFRESH`], the socket inodes of the cgroup's
//! processes (`/proc/PID/fd` links `socket:[INODE]`) are matched with the TCP tables of
//! their network namespaces (`/proc/PID/net/tcp` and `tcp6`, read once per namespace),
//! and a retransmit is in scope when its local and remote endpoints are one of those
//! connections. What this cannot see: a connection opened and closed within one
//! refresh, and a socket the process has closed while the kernel still retransmits its
//! last data (an orphan); a connection with the same four endpoints in another network
//! namespace would match too.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::decode::Retransmit;
use perf_tools_ftrace::scope::Scope;

/// Connections as (local, remote) endpoints.
type Conns = HashSet<(SocketAddr, SocketAddr)>;

/// How often the cgroup's sockets are read again.
pub const REFRESH: Duration = Duration::from_millis(200);

/// The connections (local, remote) of a cgroup's processes.
#[derive(Debug)]
pub struct Sockets {
    scope: Scope,
    conns: Conns,
    /// (local port, remote port) of the same, for retransmits whose addresses the
    /// source could not give.
    ports: HashSet<(u16, u16)>,
    last: Option<Instant>,
}

impl Sockets {
    /// The scope's connections, read now.
    pub fn new(scope: Scope) -> Sockets {
        let mut s = Sockets {
            scope,
            conns: HashSet::new(),
            ports: HashSet::new(),
            last: None,
        };
        let _ = s.refresh();
        s
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Reads the connections again if [`REFRESH`] has passed. False when the cgroup is
    /// gone.
    pub fn refresh(&mut self) -> bool {
        if self.last.is_some_and(|t| t.elapsed() < REFRESH) {
            return true;
        }
        self.last = Some(Instant::now());
        if !self.scope.cgroup().exists() {
            return false;
        }
        let Ok(procs) = self.scope.cgroup().processes() else {
            return false;
        };
        let (conns, ports) = connections(&procs);
        self.conns = conns;
        self.ports = ports;
        true
    }

    /// Whether a retransmit was of one of the cgroup's connections.
    pub fn holds(&self, r: &Retransmit) -> bool {
        if r.addrs_known {
            self.conns.contains(&(r.local, r.remote))
        } else {
            self.ports.contains(&(r.local.port(), r.remote.port()))
        }
    }
}

/// The TCP connections whose sockets the processes `procs` hold.
fn connections(procs: &BTreeSet<u32>) -> (Conns, HashSet<(u16, u16)>) {
    // Socket inodes, and one process per network namespace to read its tables through.
    let mut inodes: HashSet<u64> = HashSet::new();
    let mut netns: HashMap<String, u32> = HashMap::new();
    for &pid in procs {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let before = inodes.len();
        for e in rd.flatten() {
            if let Some(i) = std::fs::read_link(e.path())
                .ok()
                .and_then(|l| socket_inode(&l.to_string_lossy()))
            {
                inodes.insert(i);
            }
        }
        if inodes.len() > before {
            if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
                netns
                    .entry(ns.to_string_lossy().into_owned())
                    .or_insert(pid);
            }
        }
    }
    let mut conns = HashSet::new();
    let mut ports = HashSet::new();
    for pid in netns.values() {
        for table in ["tcp", "tcp6"] {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for (l, r, inode) in parse_table(&text) {
                if inodes.contains(&inode) {
                    conns.insert((l, r));
                    ports.insert((l.port(), r.port()));
                }
            }
        }
    }
    (conns, ports)
}

/// The inode of a `/proc/PID/fd` link to a socket (`socket:[12345]`).
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The connections of a `/proc/net/tcp` or `tcp6` table: (local, remote, inode).
pub fn parse_table(text: &str) -> Vec<(SocketAddr, SocketAddr, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = endpoint(f.get(1)?)?;
            let remote = endpoint(f.get(2)?)?;
            let inode = f.get(9)?.parse().ok()?;
            Some((local, remote, inode))
        })
        .collect()
}

/// An address:port of the tables: the address as the kernel's 32-bit words in this
/// machine's byte order, in hex (8 digits for IPv4, 32 for IPv6); the port in hex.
fn endpoint(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tables_parse_ipv4_and_ipv6_in_host_order() {
        // Lines as a little-endian machine's kernel writes them (x86-64).
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 20 4 30 10 -1\n";
        let t = parse_table(v4);
        assert_eq!(
            t,
            vec![(
                "127.0.0.1:8080".parse().unwrap(),
                "127.0.0.1:50000".parse().unwrap(),
                424242
            )]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 20 4 30 10 -1\n";
        let t = parse_table(v6);
        assert_eq!(t[0].0, "[::1]:8080".parse().unwrap());
        assert_eq!(t[0].1, "[::1]:50000".parse().unwrap());
        assert_eq!(t[0].2, 7);
    }

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }
}
