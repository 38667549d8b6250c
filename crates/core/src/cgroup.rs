//! Cgroups and containers as the host sees them: where the cgroup hierarchies are
//! mounted, a cgroup named by path (v2 or v1, absolute or relative), a container named by
//! its ID or a prefix of it (Docker, containerd, CRI-O, Podman, Kubernetes pods), the
//! threads in a cgroup and its descendants, and the cgroup and namespace PID of a task.
//!
//! Nothing here needs a container runtime: containers are found by the names runtimes
//! give their cgroups (`docker-<id>.scope`, `cri-containerd-<id>.scope`,
//! `crio-<id>.scope`, `libpod-<id>.scope`, `docker/<id>`, `kubepods*/pod<uid>`).

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The cgroup interface of a hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy (`cgroup2`).
    V2,
    /// A legacy hierarchy (`cgroup`), with the controllers it was mounted with.
    V1,
}

/// A mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (e.g. `/sys/fs/cgroup`, `/sys/fs/cgroup/pids`).
    pub dir: PathBuf,
    /// v2 or v1.
    pub version: Version,
    /// The v1 controllers and `name=` options (`pids`, `name=systemd`); empty for v2.
    pub options: Vec<String>,
    /// The cgroup of the mount's root inside its hierarchy (`/` unless a container
    /// bind-mounted a sub-tree).
    pub root: String,
}

/// The cgroup hierarchies mounted here, v2 first, from `/proc/self/mountinfo`.
pub fn mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("reading /proc/self/mountinfo failed (is /proc mounted?)")?;
    Ok(parse_mountinfo(&text))
}

/// Parses mountinfo text into the cgroup mounts (v2 first, then v1 in mount order).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        // id parent maj:min root mountpoint options [optional fields] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let version = match r[0] {
            "cgroup2" => Version::V2,
            "cgroup" => Version::V1,
            _ => continue,
        };
        let options = match version {
            Version::V2 => Vec::new(),
            Version::V1 => r[2]
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                .filter(|o| !o.contains('=') || o.starts_with("name="))
                .map(str::to_string)
                .collect(),
        };
        out.push(Mount {
            dir: PathBuf::from(unescape_mount(l[4])),
            version,
            options,
            root: unescape_mount(l[3]),
        });
    }
    out.sort_by_key(|m| m.version != Version::V2);
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
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
    String::from_utf8_lossy(&out).into_owned()
}

/// One cgroup: a directory of a mounted hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// Its directory (under the mount).
    pub dir: PathBuf,
    /// The hierarchy's interface.
    pub version: Version,
    /// Its path inside the hierarchy, as `/proc/PID/cgroup` shows it (`/` for the root).
    pub path: String,
}

impl Cgroup {
    /// The name to show for it: the container ID (12 characters, as `docker ps` shows
    /// it) or pod UID when its path names one, else its last path component.
    pub fn display_name(&self) -> String {
        display_name(&self.path)
    }

    /// Every thread (kernel task ID) in this cgroup and its descendants, read now.
    /// Threads that exit while the files are read are simply not there.
    pub fn threads(&self) -> Result<BTreeSet<u32>> {
        // v2 lists a cgroup's threads in cgroup.threads, v1 in tasks.
        self.list(match self.version {
            Version::V2 => "cgroup.threads",
            Version::V1 => "tasks",
        })
    }

    /// Every process (thread group ID) with a thread in this cgroup or its descendants,
    /// read now (`cgroup.procs`, in both versions).
    pub fn processes(&self) -> Result<BTreeSet<u32>> {
        self.list("cgroup.procs")
    }

    /// The IDs in `file` of this cgroup and of its descendants (each file excludes the
    /// descendants, so they are walked).
    fn list(&self, file: &str) -> Result<BTreeSet<u32>> {
        let mut tids = BTreeSet::new();
        let mut stack = vec![self.dir.clone()];
        let mut first = true;
        while let Some(dir) = stack.pop() {
            match std::fs::read_to_string(dir.join(file)) {
                Ok(text) => tids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
                Err(e) if first => {
                    return Err(e).with_context(|| {
                        format!(
                            "reading {} failed: the cgroup {} is gone or not readable",
                            dir.join(file).display(),
                            self.path
                        )
                    })
                }
                // A descendant removed meanwhile.
                Err(_) => continue,
            }
            first = false;
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push(e.path());
                    }
                }
            }
        }
        Ok(tids)
    }

    /// Whether the cgroup's directory still exists.
    pub fn exists(&self) -> bool {
        self.dir
            .join(match self.version {
                Version::V2 => "cgroup.procs",
                Version::V1 => "tasks",
            })
            .exists()
    }
}

/// The cgroup named by `spec`: a directory under a cgroup mount (`/sys/fs/cgroup/x`), or
/// a path inside a hierarchy (`/system.slice/x.service`, `mygroup`), looked up in the v2
/// hierarchy first and then in each v1 one.
pub fn resolve(spec: &str) -> Result<Cgroup> {
    resolve_in(&mounts()?, spec)
}

/// [`resolve`] against given mounts.
pub fn resolve_in(mounts: &[Mount], spec: &str) -> Result<Cgroup> {
    if mounts.is_empty() {
        bail!("no cgroup hierarchy is mounted here (mount -t cgroup2 none /sys/fs/cgroup)");
    }
    let p = Path::new(spec);
    // A directory under a mount point.
    if p.is_absolute() {
        for m in mounts {
            if let Ok(rel) = p.strip_prefix(&m.dir) {
                if let Some(c) = cgroup_at(m, rel) {
                    return Ok(c);
                }
            }
        }
    }
    // A path inside a hierarchy.
    let rel = spec.trim_start_matches('/');
    for m in mounts {
        if let Some(c) = cgroup_at(m, Path::new(rel)) {
            return Ok(c);
        }
    }
    let roots: Vec<String> = mounts.iter().map(|m| m.dir.display().to_string()).collect();
    bail!(
        "{spec} is not a cgroup: no directory of that name with cgroup.procs under the cgroup mounts ({}); give a path as /proc/PID/cgroup shows it, or the directory itself",
        roots.join(", ")
    )
}

fn cgroup_at(m: &Mount, rel: &Path) -> Option<Cgroup> {
    let dir = m.dir.join(rel);
    if !dir.join("cgroup.procs").is_file() {
        return None;
    }
    let inner = rel.to_string_lossy();
    let base = m.root.trim_end_matches('/');
    let path = if inner.is_empty() {
        if base.is_empty() {
            "/".to_string()
        } else {
            base.to_string()
        }
    } else {
        format!("{base}/{}", inner.trim_matches('/'))
    };
    Some(Cgroup {
        dir,
        version: m.version,
        path,
    })
}

/// What a cgroup directory's name says about a container, if anything: the runtime and
/// the ID (or pod UID, with `_` turned into `-`).
pub fn container_of_name(name: &str) -> Option<(&'static str, String)> {
    let hex_id = |s: &str| s.len() >= 12 && s.bytes().all(|b| b.is_ascii_hexdigit());
    for (prefix, runtime) in [
        ("docker-", "docker"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("libpod-", "podman"),
    ] {
        if let Some(id) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".scope"))
        {
            if hex_id(id) {
                return Some((runtime, id.to_string()));
            }
        }
    }
    if let Some(uid) = name.strip_prefix("pod") {
        let uid = uid.strip_suffix(".slice").unwrap_or(uid);
        let uid = uid
            .rsplit('-')
            .next()
            .filter(|_| uid.contains("kubepods"))
            .unwrap_or(uid);
        let norm = uid.replace('_', "-");
        if norm.len() == 36 && norm.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Some(("kubernetes-pod", norm));
        }
    }
    // kubepods-burstable-pod<uid>.slice (systemd driver)
    if let Some(at) = name.find("-pod") {
        if name.starts_with("kubepods") {
            return container_of_name(&name[at + 1..]);
        }
    }
    // cgroupfs drivers: docker/<64 hex>, kubepods/.../<64 hex>
    if name.len() == 64 && hex_id(name) {
        return Some(("container", name.to_string()));
    }
    None
}

/// The name to show for a cgroup path: a container ID's first 12 characters, a pod UID,
/// else the last component (`/` for the root).
pub fn display_name(path: &str) -> String {
    let last = path.rsplit('/').find(|c| !c.is_empty()).unwrap_or("/");
    match container_of_name(last) {
        Some(("kubernetes-pod", uid)) => format!("pod{uid}"),
        Some((_, id)) => id.chars().take(12).collect(),
        None => last.to_string(),
    }
}

/// A container found by [`find_container`].
#[derive(Clone, Debug)]
pub struct Found {
    /// Its cgroup.
    pub cgroup: Cgroup,
    /// The runtime its cgroup's name points at.
    pub runtime: &'static str,
    /// The full ID or pod UID.
    pub id: String,
}

/// The cgroup of the container whose ID (or pod UID) starts with `id` (at least 4
/// characters, like `docker ps`'s short IDs), or whose cgroup directory is called `id`.
/// Searches the v2 hierarchy, else the first v1 one. An error lists near matches when
/// nothing matches, and every match when several do.
pub fn find_container(id: &str) -> Result<Found> {
    find_container_in(&mounts()?, id)
}

/// [`find_container`] against given mounts.
pub fn find_container_in(mounts: &[Mount], id: &str) -> Result<Found> {
    let Some(m) = mounts.first() else {
        bail!("no cgroup hierarchy is mounted here, so no container can be found");
    };
    if id.len() < 4 {
        bail!("container ID '{id}' is too short: give at least 4 characters of it");
    }
    let want = id.to_ascii_lowercase().replace('_', "-");
    let mut all = Vec::new();
    walk(&m.dir, 0, &mut |dir| {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some((runtime, cid)) = container_of_name(name) {
            all.push((dir.to_path_buf(), runtime, cid));
        } else if name == id {
            all.push((dir.to_path_buf(), "cgroup", name.to_string()));
        }
    });
    // A container's cgroup can hold sub-cgroups of the same name pattern (init.scope
    // inside a pod): keep the outermost match of each ID.
    let mut hits: Vec<&(PathBuf, &str, String)> = all
        .iter()
        .filter(|(_, _, cid)| cid.starts_with(&want))
        .collect();
    hits.dedup_by(|a, b| a.2 == b.2);
    let to_found = |(dir, runtime, cid): &(PathBuf, &'static str, String)| -> Result<Found> {
        let rel = dir.strip_prefix(&m.dir).unwrap_or(Path::new(""));
        let cgroup =
            cgroup_at(m, rel).with_context(|| format!("{} has no cgroup.procs", dir.display()))?;
        Ok(Found {
            cgroup,
            runtime,
            id: cid.clone(),
        })
    };
    match hits.len() {
        1 => to_found(hits[0]),
        0 => {
            let mut near: Vec<String> = all
                .iter()
                .map(|(d, r, c)| format!("{} ({r}, {})", short(c), d.display()))
                .collect();
            near.sort();
            near.dedup();
            if near.is_empty() {
                bail!(
                    "no container matches '{id}': no cgroup under {} is named like a container's (docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, kubepods .../pod<uid>); use --cgroup PATH for another cgroup",
                    m.dir.display()
                );
            }
            near.truncate(10);
            bail!(
                "no container matches '{id}'; containers here: {}",
                near.join("; ")
            )
        }
        _ => {
            let list: Vec<String> = hits
                .iter()
                .map(|(d, r, c)| format!("{c} ({r}, {})", d.display()))
                .collect();
            bail!(
                "'{id}' matches {} containers; give more of the ID: {}",
                hits.len(),
                list.join("; ")
            )
        }
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Visits every directory under `dir` (not `dir` itself), depth-first, at most 16 deep.
fn walk(dir: &Path, depth: usize, f: &mut dyn FnMut(&Path)) {
    if depth > 16 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subs: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    subs.sort();
    for s in subs {
        f(&s);
        walk(&s, depth + 1, f);
    }
}

/// The v2 cgroup path of task `pid` (the `0::` line of `/proc/PID/cgroup`), else the
/// first v1 line's path; `None` when the task is gone.
pub fn of_task(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_proc_cgroup(&text)
}

/// The path [`of_task`] picks from `/proc/PID/cgroup` text. On a hybrid host whose
/// tasks all sit in the v2 root, a v1 path that says more (a `name=systemd` or
/// controller hierarchy) is used instead.
pub fn parse_proc_cgroup(text: &str) -> Option<String> {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if id == "0" && ctrl.is_empty() {
            v2 = Some(path.to_string());
        } else if path != "/" && v1.is_none() {
            v1 = Some(path.to_string());
        }
    }
    match (v2, v1) {
        (Some(p), Some(q)) if p == "/" => Some(q),
        (Some(p), _) => Some(p),
        (None, q) => q.or_else(|| Some("/".to_string())),
    }
}

/// The task's PID as its own (innermost) PID namespace sees it: the last `NSpid:` field
/// of `/proc/PID/status`; `None` when the task is gone or the kernel has no NSpid (<4.1).
pub fn ns_pid(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // From this CI machine (a hybrid host: v1 controllers + v2 at .../unified).
    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo_puts_v2_first_and_keeps_v1_names() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].dir, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m[0].version, Version::V2);
        assert_eq!(m[1].options, vec!["cpu"]);
        assert_eq!(m[3].options, vec!["xattr", "name=systemd"]);
    }

    #[test]
    fn container_names_of_the_runtimes() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            container_of_name(&format!("docker-{id}.scope")),
            Some(("docker", id.into()))
        );
        assert_eq!(
            container_of_name(&format!("cri-containerd-{id}.scope")),
            Some(("containerd", id.into()))
        );
        assert_eq!(
            container_of_name(&format!("crio-{id}.scope")),
            Some(("cri-o", id.into()))
        );
        assert_eq!(container_of_name(id), Some(("container", id.into())));
        let uid = "8d1b5f0c-3e4a-4b7e-9a51-2f6c0d9e7b12";
        assert_eq!(
            container_of_name(&format!("pod{uid}")),
            Some(("kubernetes-pod", uid.into()))
        );
        assert_eq!(
            container_of_name(&format!(
                "kubepods-burstable-pod{}.slice",
                uid.replace('-', "_")
            )),
            Some(("kubernetes-pod", uid.into()))
        );
        assert_eq!(container_of_name("system.slice"), None);
        assert_eq!(container_of_name("docker-xyz.scope"), None);
        assert_eq!(
            display_name(&format!("/system.slice/docker-{id}.scope")),
            "0123456789ab"
        );
        assert_eq!(
            display_name("/user.slice/session-2.scope"),
            "session-2.scope"
        );
        assert_eq!(display_name("/"), "/");
    }

    #[test]
    fn proc_cgroup_prefers_v2_unless_it_says_nothing() {
        assert_eq!(
            parse_proc_cgroup("0::/system.slice/a.service\n").as_deref(),
            Some("/system.slice/a.service")
        );
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/a41a\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(hybrid).as_deref(),
            Some("/process_api/a41a")
        );
        assert_eq!(parse_proc_cgroup("0::/\n").as_deref(), Some("/"));
    }

    #[test]
    fn octal_escapes_in_mount_points() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }
}
