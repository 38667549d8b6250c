//! Functions of ELF files (programs and shared libraries) as uprobes take them: file
//! offsets of their first instruction, and where a library named like `libc` is.
//!
//! The symbol tables (`.symtab` and `.dynsym`) are read directly (64-bit little-endian
//! files only, the layout of x86_64 and aarch64): each function's address is turned into
//! a file offset through the program header of the loadable segment that holds it, which
//! is what a uprobe definition (`PATH:0xOFFSET`) takes, for executables and shared
//! objects alike.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Which symbol tables [`functions`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// `.dynsym` only (what a shared library exports).
    Dynamic,
    /// `.symtab` (when not stripped) and `.dynsym`.
    All,
}

/// Defined functions of the dynamic symbol table: (name, file offset).
pub fn dynamic_functions(elf: &[u8]) -> Result<Vec<(String, u64)>> {
    functions(elf, Tables::Dynamic)
}

/// Defined functions of the chosen symbol tables: (name, file offset), sorted by name,
/// each (name, offset) once.
pub fn functions(elf: &[u8], tables: Tables) -> Result<Vec<(String, u64)>> {
    symbols(elf, tables, 2)
}

/// Indirect functions (`STT_GNU_IFUNC`: `strlen`, `memcpy` in glibc) of the chosen tables:
/// their address is that of a resolver run once by the dynamic linker, which picks the
/// implementation the program calls; probing it shows nothing of the calls.
pub fn indirect_functions(elf: &[u8], tables: Tables) -> Result<Vec<(String, u64)>> {
    symbols(elf, tables, 10)
}

/// Defined symbols of type `sym_type` (2 `STT_FUNC`, 10 `STT_GNU_IFUNC`).
fn symbols(elf: &[u8], tables: Tables, sym_type: u8) -> Result<Vec<(String, u64)>> {
    if elf.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF file");
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let bad = || anyhow::anyhow!("truncated or malformed ELF header");
    let phoff = u64_at(elf, 0x20).ok_or_else(bad)? as usize;
    let shoff = u64_at(elf, 0x28).ok_or_else(bad)? as usize;
    let phentsize = u16_at(elf, 0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(elf, 0x38).ok_or_else(bad)? as usize;
    let shentsize = u16_at(elf, 0x3a).ok_or_else(bad)? as usize;
    let shnum = u16_at(elf, 0x3c).ok_or_else(bad)? as usize;
    // Loadable segments: (vaddr, file offset, file size).
    let mut loads = Vec::new();
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        if u32_at(elf, p) == Some(1) {
            let off = u64_at(elf, p + 8).ok_or_else(bad)?;
            let vaddr = u64_at(elf, p + 16).ok_or_else(bad)?;
            let filesz = u64_at(elf, p + 32).ok_or_else(bad)?;
            loads.push((vaddr, off, filesz));
        }
    }
    let section = |i: usize| -> Option<(u32, u64, u64, u32, u64)> {
        let s = shoff + i * shentsize;
        Some((
            u32_at(elf, s + 4)?,  // type
            u64_at(elf, s + 24)?, // offset
            u64_at(elf, s + 32)?, // size
            u32_at(elf, s + 40)?, // link
            u64_at(elf, s + 56)?, // entsize
        ))
    };
    let mut out = Vec::new();
    for i in 0..shnum {
        let Some((ty, off, size, link, entsize)) = section(i) else {
            continue;
        };
        // SHT_DYNSYM, and SHT_SYMTAB when asked.
        if !(ty == 11 || (ty == 2 && tables == Tables::All)) {
            continue;
        }
        let (_, stroff, strsize, _, _) = section(link as usize).ok_or_else(bad)?;
        let strtab = elf
            .get(stroff as usize..(stroff + strsize) as usize)
            .ok_or_else(bad)?;
        let entsize = if entsize == 0 { 24 } else { entsize as usize };
        let syms = elf
            .get(off as usize..(off + size) as usize)
            .ok_or_else(bad)?;
        for sym in syms.chunks_exact(entsize) {
            let name_off = u32_at(sym, 0).ok_or_else(bad)? as usize;
            let info = sym[4];
            let shndx = u16_at(sym, 6).ok_or_else(bad)?;
            let value = u64_at(sym, 8).ok_or_else(bad)?;
            // STT_FUNC, defined here (an IFUNC's address is its resolver's: skipped).
            if info & 0xf != sym_type || shndx == 0 || value == 0 {
                continue;
            }
            let Some(name) = strtab.get(name_off..).and_then(|s| {
                let end = s.iter().position(|&b| b == 0)?;
                std::str::from_utf8(&s[..end]).ok()
            }) else {
                continue;
            };
            let Some(&(vaddr, foff, _)) = loads
                .iter()
                .find(|(va, _, sz)| value >= *va && value < va + sz)
            else {
                continue;
            };
            out.push((name.to_string(), value - vaddr + foff));
        }
    }
    if out.is_empty() {
        bail!(match tables {
            Tables::Dynamic => "no dynamic symbol table (.dynsym) with functions",
            Tables::All => "no symbol table (.symtab or .dynsym) with functions (stripped?)",
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The functions of the ELF file at `path` ([`functions`] with both tables).
pub fn file_functions(path: &Path) -> Result<Vec<(String, u64)>> {
    let elf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    functions(&elf, Tables::All).with_context(|| format!("reading ELF file {}", path.display()))
}

/// The usual directories of shared libraries, searched by [`find_library`].
pub const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// The library directories `ldconfig` walks: those listed in `conf` (`/etc/ld.so.conf`),
/// following its `include` lines (a file, or a directory's `*.conf` files).
pub fn ld_so_conf_dirs(conf: &Path, depth: u32) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let Ok(text) = std::fs::read_to_string(conf) else {
        return dirs;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pat) = line.strip_prefix("include").map(str::trim) {
            if depth > 4 || pat.is_empty() {
                continue;
            }
            let pat = Path::new(pat);
            let files: Vec<PathBuf> = match pat.file_name().and_then(|n| n.to_str()) {
                Some(n) if n.contains('*') => {
                    let (pre, suf) = n.split_once('*').unwrap_or((n, ""));
                    let dir = pat.parent().unwrap_or(Path::new("/"));
                    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                        .map(|rd| {
                            rd.filter_map(|e| e.ok())
                                .map(|e| e.path())
                                .filter(|p| {
                                    p.file_name()
                                        .and_then(|f| f.to_str())
                                        .is_some_and(|f| f.starts_with(pre) && f.ends_with(suf))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    v.sort();
                    v
                }
                _ => vec![pat.to_path_buf()],
            };
            for f in files {
                dirs.extend(ld_so_conf_dirs(&f, depth + 1));
            }
        } else if line.starts_with('/') {
            dirs.push(PathBuf::from(line));
        }
    }
    dirs
}

/// True if the file name `file` is a shared library called `name`: the part before the
/// first `.` is `name` and it is a `.so` (`libc.so.6`, `libc-2.31.so` for `libc`).
pub fn is_library_named(file: &str, name: &str) -> bool {
    let stem = file.split('.').next().unwrap_or(file);
    let stem_ok = stem == name
        || stem.strip_prefix(name).is_some_and(|r| {
            r.starts_with('-') && r[1..].starts_with(|c: char| c.is_ascii_digit())
        });
    stem_ok && (file.contains(".so.") || file.ends_with(".so"))
}

/// Where the shared library called `name` (`libc`, `libpthread`) is: `libc` is the C
/// library the system's programs use ([`system_libc`]); others are looked up in this
/// process's mappings, then in the directories of `/etc/ld.so.conf` (as `ldconfig` finds
/// them) and [`LIBRARY_DIRS`] (a versioned `libX.so.N` before a bare `libX.so`, the
/// development link).
pub fn find_library(name: &str) -> Option<PathBuf> {
    if name == "libc" {
        return system_libc();
    }
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5) else {
                continue;
            };
            let p = Path::new(path);
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|f| is_library_named(f, name))
                && p.is_file()
            {
                return Some(p.to_path_buf());
            }
        }
    }
    let mut dirs = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"), 0);
    for d in LIBRARY_DIRS {
        if !dirs.iter().any(|x| x == Path::new(d)) {
            dirs.push(PathBuf::from(d));
        }
    }
    for dir in &dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|f| is_library_named(f, name))
                    && p.is_file()
            })
            .collect();
        // libX.so.6 before libX.so (a link for the linker, maybe to a script).
        found.sort_by_key(|p| (p.to_string_lossy().ends_with(".so"), p.clone()));
        if let Some(p) = found.into_iter().next() {
            return Some(p);
        }
    }
    None
}

/// An executable called `name` in `$PATH` (as `which` finds it).
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// True if `name` is the file name of a GNU or musl C library (`libc.so.6`,
/// `libc-2.31.so`, `libc.musl-x86_64.so.1`).
pub fn is_libc_name(name: &str) -> bool {
    name == "libc.so.6"
        || (name.starts_with("libc-") && name.ends_with(".so"))
        || name.starts_with("libc.musl-")
}

/// The C library the system's programs use: the one this (dynamically linked) process
/// has mapped, else the first of the usual places that exists.
pub fn system_libc() -> Option<PathBuf> {
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5) else {
                continue;
            };
            let p = Path::new(path);
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_libc_name)
                && p.is_file()
            {
                return Some(p.to_path_buf());
            }
        }
    }
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/usr/lib/libc.so.6",
        "/lib/libc.so.6",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The register that holds integer argument `n` (1-based) at a function's entry, in the
/// kernel's fetch-argument syntax, on this architecture (the C calling convention).
pub fn arg_register(n: u8) -> Option<&'static str> {
    let regs: &[&str] = if cfg!(target_arch = "x86_64") {
        &["%di", "%si", "%dx", "%cx", "%r8", "%r9"]
    } else if cfg!(target_arch = "aarch64") {
        &["%x0", "%x1", "%x2", "%x3", "%x4", "%x5", "%x6", "%x7"]
    } else if cfg!(target_arch = "riscv64") {
        &["%a0", "%a1", "%a2", "%a3", "%a4", "%a5", "%a6", "%a7"]
    } else {
        &[]
    };
    regs.get(usize::from(n).checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rejects_what_is_not_a_64_bit_little_endian_elf_file() {
        assert!(dynamic_functions(b"#!/bin/sh\n").is_err());
        let mut h = b"\x7fELF".to_vec();
        h.extend([1, 1, 1, 0]); // 32-bit
        h.resize(64, 0);
        assert!(dynamic_functions(&h).is_err());
        h[4] = 2;
        // A 64-bit header with no sections at all.
        assert!(dynamic_functions(&h).is_err());
    }

    #[test]
    fn ld_so_conf_includes_are_followed() {
        let dir = std::env::temp_dir().join(format!("ptrs-ldconf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(
            dir.join("ld.so.conf"),
            format!("/opt/a # comment\ninclude {}/d/*.conf\n", dir.display()),
        )
        .unwrap();
        std::fs::write(dir.join("d/x.conf"), "# none\n/opt/b\n").unwrap();
        std::fs::write(dir.join("d/y.txt"), "/opt/not\n").unwrap();
        let d = ld_so_conf_dirs(&dir.join("ld.so.conf"), 0);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(d, [PathBuf::from("/opt/a"), PathBuf::from("/opt/b")]);
    }

    #[test]
    fn library_names() {
        assert!(is_library_named("libc.so.6", "libc"));
        assert!(is_library_named("libc-2.31.so", "libc"));
        assert!(is_library_named("libpthread.so.0", "libpthread"));
        assert!(!is_library_named("libcrypt.so.1", "libc"));
        assert!(!is_library_named("libc.a", "libc"));
        assert!(!is_library_named("libc-client.so.2007e", "libc"));
    }

    /// Host test: this process's C library, found by name, has its symbols.
    #[test]
    fn finds_libc_by_name_and_its_functions() {
        let Some(p) = find_library("libc") else {
            eprintln!("skipped: no C library found");
            return;
        };
        let f = file_functions(&p).unwrap();
        assert!(f.iter().any(|(n, _)| n == "getpid"), "{}", p.display());
        assert!(find_program("sh").is_some());
    }

    #[test]
    fn libc_names() {
        for n in ["libc.so.6", "libc-2.31.so", "libc.musl-x86_64.so.1"] {
            assert!(is_libc_name(n), "{n}");
        }
        for n in ["libcrypt.so.1", "libc.so", "libcap.so.2", "glibc.so.6"] {
            assert!(!is_libc_name(n), "{n}");
        }
    }
}
