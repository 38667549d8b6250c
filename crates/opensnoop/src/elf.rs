//! The C library's open functions: where they are in the libc file the system uses, for
//! uprobes ([`crate::source::Source::Uprobe`]).
//!
//! The ELF dynamic symbol table is read directly (64-bit little-endian files only, the
//! layout of x86_64 and aarch64): each function's address is turned into a file offset
//! through the program header of the loadable segment that holds it, which is what a
//! uprobe definition (`PATH:0xOFFSET`) takes.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The open functions of the C library, and which argument holds the path (1 or 2).
/// Aliases (`open`/`open64`/`__open`, `openat`/`openat64`) share an address and get
/// one probe; the fortified (`__open_2`) and no-cancel (`__open_nocancel`, used inside
/// the library by `fopen`, `opendir`, ...) entry points have their own. (`creat` makes
/// the creat syscall where there is one, which opensnoop does not trace.)
pub const OPEN_FUNCTIONS: &[(&str, u8)] = &[
    ("open", 1),
    ("open64", 1),
    ("__open", 1),
    ("__open64", 1),
    ("__open_2", 1),
    ("__open64_2", 1),
    ("__open_nocancel", 1),
    ("__open64_nocancel", 1),
    ("openat", 2),
    ("openat64", 2),
    ("__openat_2", 2),
    ("__openat64_2", 2),
];

/// One place to probe: a function's file offset, which argument holds the path, and the
/// symbol names found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Offset of the function's first instruction in the file.
    pub offset: u64,
    /// The argument (1 or 2) that holds the path.
    pub path_arg: u8,
    /// The names of [`OPEN_FUNCTIONS`] at this address.
    pub names: Vec<String>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Defined functions of the dynamic symbol table: (name, file offset).
pub fn dynamic_functions(elf: &[u8]) -> Result<Vec<(String, u64)>> {
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
        let Some((11, off, size, link, entsize)) = section(i) else {
            continue; // SHT_DYNSYM only
        };
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
            if info & 0xf != 2 || shndx == 0 || value == 0 {
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
        bail!("no dynamic symbol table (.dynsym) with functions");
    }
    Ok(out)
}

/// The places to probe in the C library at `path`: one [`Target`] per address of the
/// [`OPEN_FUNCTIONS`] it exports.
pub fn open_targets(path: &Path) -> Result<Vec<Target>> {
    let elf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let funcs =
        dynamic_functions(&elf).with_context(|| format!("reading ELF file {}", path.display()))?;
    let mut targets: Vec<Target> = Vec::new();
    for (name, arg) in OPEN_FUNCTIONS {
        for (_, off) in funcs.iter().filter(|(n, _)| n == name) {
            match targets.iter_mut().find(|t| t.offset == *off) {
                Some(t) if t.path_arg == *arg => {
                    if !t.names.iter().any(|n| n == name) {
                        t.names.push(name.to_string());
                    }
                }
                // The same code taken for both kinds of argument: not to be trusted.
                Some(_) => bail!(
                    "{name} in {} shares an address with a function of other arguments",
                    path.display()
                ),
                None => targets.push(Target {
                    offset: *off,
                    path_arg: *arg,
                    names: vec![name.to_string()],
                }),
            }
        }
    }
    if !targets.iter().any(|t| t.path_arg == 1) || !targets.iter().any(|t| t.path_arg == 2) {
        bail!(
            "{} does not export open and openat: not a C library opensnoop knows",
            path.display()
        );
    }
    Ok(targets)
}

/// True if `name` is the file name of a GNU or musl C library (`libc.so.6`,
/// `libc-2.31.so`, `libc.musl-x86_64.so.1`).
fn is_libc_name(name: &str) -> bool {
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

/// The register that holds argument `n` (1 or 2) at a function's entry, in the kernel's
/// fetch-argument syntax, on this architecture.
pub fn arg_register(n: u8) -> Option<&'static str> {
    let regs: &[&str] = if cfg!(target_arch = "x86_64") {
        &["%di", "%si"]
    } else if cfg!(target_arch = "aarch64") {
        &["%x0", "%x1"]
    } else if cfg!(target_arch = "riscv64") {
        &["%a0", "%a1"]
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
    fn libc_names() {
        for n in ["libc.so.6", "libc-2.31.so", "libc.musl-x86_64.so.1"] {
            assert!(is_libc_name(n), "{n}");
        }
        for n in ["libcrypt.so.1", "libc.so", "libcap.so.2", "glibc.so.6"] {
            assert!(!is_libc_name(n), "{n}");
        }
    }

    /// Host test: on this system's C library the functions agree with its own symbol
    /// addresses (open and open64 one target, openat another, with the right argument).
    #[test]
    fn finds_the_open_functions_of_this_systems_libc() {
        let Some(libc) = system_libc() else {
            eprintln!("skipped: no C library found");
            return;
        };
        let t = open_targets(&libc).unwrap();
        let open = t
            .iter()
            .find(|t| t.names.iter().any(|n| n == "open"))
            .unwrap();
        assert_eq!(open.path_arg, 1);
        let openat = t
            .iter()
            .find(|t| t.names.iter().any(|n| n == "openat"))
            .unwrap();
        assert_eq!(openat.path_arg, 2);
        assert_ne!(open.offset, openat.offset);
        // The first bytes at open's offset are those of the function the dynamic linker
        // resolved in this process: compare with the mapped code.
        let addr = libc::open as *const () as usize as u64;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mapped = maps.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (lo, hi) = f[0].split_once('-')?;
            let (lo, hi) = (
                u64::from_str_radix(lo, 16).ok()?,
                u64::from_str_radix(hi, 16).ok()?,
            );
            (addr >= lo && addr < hi && f.get(5) == Some(&libc.to_str()?))
                .then(|| addr - lo + u64::from_str_radix(f[2], 16).unwrap())
        });
        if let Some(file_off) = mapped {
            assert_eq!(file_off, open.offset, "{t:?}");
        }
    }
}
