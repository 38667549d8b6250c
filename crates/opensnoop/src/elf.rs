//! The C library's open functions: where they are in the libc file the system uses, for
//! uprobes ([`crate::source::Source::Uprobe`]). The ELF reading is
//! [`perf_tools_ftrace::elf`]'s.

use anyhow::{bail, Context, Result};
use std::path::Path;

use perf_tools_ftrace::elf::dynamic_functions;
pub use perf_tools_ftrace::elf::{arg_register, system_libc};

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
