//! The canary: before the first interval (and for `--check`), the sources are verified
//! with cachestat's own file I/O, counted in a private instance filtered to this thread.
//!
//! A file of [`PAGES`] pages is written (dirties must move, and its own new pages must
//! not count as misses: at most [`WRITE_METADATA_PAGES`] of the file system's metadata
//! may), dropped from the page cache
//! with `POSIX_FADV_DONTNEED` and read (exactly [`PAGES`] pages must be added; accesses
//! must move where counted), then read again (nothing may be added; accesses must move).
//! The file lives in a directory on a disk-backed file system (`$TMPDIR`, `/var/tmp`,
//! `/tmp`, the first that is not tmpfs or ramfs, whose pages never pass the tracepoint)
//! and is removed at once.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use perf_tools_ftrace::cleanup;
use perf_tools_ftrace::session::Session;
use perf_tools_ftrace::tracefs::Tracefs;

use crate::calc::{Counts, Tally};
use crate::sources::Plan;

/// Pages of the canary file.
pub const PAGES: u64 = 16;
const PAGE: usize = 4096;
/// Misses the write of the canary file may cause by reading the file system's metadata.
pub const WRITE_METADATA_PAGES: u64 = 4;

/// The outcome of the canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every count moved as expected (what was seen).
    Passed(String),
    /// A count did not move as expected (what was seen).
    Failed(String),
    /// Not run (why).
    Skipped(String),
}

/// What each phase of the canary counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Writing the file.
    pub write: Counts,
    /// The first read, after dropping the file's pages.
    pub cold: Counts,
    /// The second read.
    pub warm: Counts,
}

/// Judges what the phases counted (`accesses`: whether accesses are counted).
pub fn judge(p: &Phases, accesses: bool) -> Verdict {
    let mut bad = Vec::new();
    if p.write.dirtied == 0 {
        bad.push("writing the file dirtied no page".to_string());
    }
    // Writing may read a few metadata blocks of the file system (a bitmap, an inode
    // table block) into the cache: real misses, but not the file's 16 pages.
    if p.write.miss_pages() > WRITE_METADATA_PAGES {
        bad.push(format!(
            "writing the new file counted {} misses, not at most {WRITE_METADATA_PAGES} (metadata): its own new pages were counted as misses",
            p.write.miss_pages()
        ));
    }
    if p.cold.miss_pages() != PAGES {
        bad.push(format!(
            "the cold read counted {} misses, not {PAGES}",
            p.cold.miss_pages()
        ));
    }
    if p.warm.added != 0 {
        bad.push(format!(
            "the warm read added {} folios to the cache, not 0",
            p.warm.added
        ));
    }
    if accesses && (p.cold.accessed == 0 || p.warm.accessed == 0) {
        bad.push(format!(
            "the reads counted {} and {} accesses (both must be > 0)",
            p.cold.accessed, p.warm.accessed
        ));
    }
    let seen = format!(
        "{PAGES}-page file of its own: write dirtied {} folios, {} misses; cold read {} misses ({} folios){}; warm read added {}{}",
        p.write.dirtied,
        p.write.miss_pages(),
        p.cold.miss_pages(),
        p.cold.added,
        if accesses { format!(", {} accesses", p.cold.accessed) } else { String::new() },
        p.warm.added,
        if accesses { format!(", {} accesses", p.warm.accessed) } else { String::new() },
    );
    if bad.is_empty() {
        Verdict::Passed(seen)
    } else {
        Verdict::Failed(format!("{} ({seen})", bad.join("; ")))
    }
}

/// True if `dir` is on a file system whose pages go through the page cache tracepoints
/// (not tmpfs or ramfs).
pub fn disk_backed(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is NUL-terminated and st a valid struct for the kernel to fill.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    let t = st.f_type as i64;
    t != TMPFS_MAGIC && t != RAMFS_MAGIC
}

/// The directory for the canary file, if there is one.
pub fn directory() -> Option<PathBuf> {
    let mut c: Vec<PathBuf> = Vec::new();
    if let Some(t) = std::env::var_os("TMPDIR") {
        c.push(t.into());
    }
    c.push("/var/tmp".into());
    c.push("/tmp".into());
    c.into_iter().find(|d| d.is_dir() && disk_backed(d))
}

/// Removes the canary file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the canary with the plan's sources.
pub fn run(tracefs: &Tracefs, plan: &Plan) -> Result<Verdict> {
    let Some(dir) = directory() else {
        return Ok(Verdict::Skipped(
            "no disk-backed directory for a test file ($TMPDIR, /var/tmp and /tmp are tmpfs or absent)".into(),
        ));
    };
    let path = dir.join(format!("cachestat-canary-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating the canary file {}", path.display()))?;
    let _guard = TempFile(path.clone());
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let inst = cleanup::start_instance(tracefs, "cachestat")?;
    inst.set_tracing_on(false)?;
    inst.ensure("buffer_size_kb", "64")?;
    let dec = plan.enable(&inst, Some(&format!("common_pid == {tid}")))?;
    let mut session = Session::start(inst)?;
    let phase = |session: &mut Session, act: &dyn Fn() -> Result<()>| -> Result<Counts> {
        session.instance.set_tracing_on(true)?;
        let r = act();
        session.instance.set_tracing_on(false)?;
        r?;
        let mut t = Tally::default();
        let stats = session.reader.drain(|_, _, p| {
            dec.count(p, &mut t);
        });
        let c = t.take();
        if stats.gaps > 0 || stats.missed > 0 {
            anyhow::bail!("the canary's events were lost (buffer overflow)");
        }
        Ok(c)
    };
    let write = phase(&mut session, &|| write_pages(&file))?;
    file.sync_all().context("fsync of the canary file")?;
    drop_pages(&file)?;
    let cold = phase(&mut session, &|| read_pages(&file))?;
    let warm = phase(&mut session, &|| read_pages(&file))?;
    session.finish()?;
    Ok(judge(&Phases { write, cold, warm }, plan.has_accesses()))
}

fn write_pages(f: &File) -> Result<()> {
    let buf = [0x5au8; PAGE];
    for i in 0..PAGES {
        f.write_all_at(&buf, i * PAGE as u64)
            .context("writing the canary file")?;
    }
    Ok(())
}

fn read_pages(f: &File) -> Result<()> {
    let mut buf = [0u8; PAGE];
    for i in 0..PAGES {
        f.read_exact_at(&mut buf, i * PAGE as u64)
            .context("reading the canary file")?;
    }
    Ok(())
}

/// Drops the file's pages from the page cache (they are clean after fsync).
pub fn drop_pages(f: &File) -> Result<()> {
    // SAFETY: a valid descriptor; the kernel only reads the arguments.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        anyhow::bail!(
            "posix_fadvise(DONTNEED): {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(added: u64, pages: u64, dirtied: u64, accessed: u64) -> Counts {
        Counts {
            accessed,
            added,
            added_pages: pages,
            dirtied,
            ..Counts::default()
        }
    }

    #[test]
    fn judges_the_expected_directions() {
        let good = Phases {
            write: Counts {
                written: 16,
                written_pages: 16,
                ..counts(16, 16, 16, 0)
            },
            cold: counts(4, 16, 0, 4),
            warm: counts(0, 0, 0, 16),
        };
        assert!(matches!(judge(&good, true), Verdict::Passed(_)));
        assert!(matches!(judge(&good, false), Verdict::Passed(_)));
        let mut warm_miss = good;
        warm_miss.warm = counts(1, 1, 0, 16);
        assert!(
            matches!(judge(&warm_miss, true), Verdict::Failed(ref w) if w.contains("warm read added 1 folios"))
        );
        let mut no_access = good;
        no_access.warm.accessed = 0;
        assert!(matches!(judge(&no_access, true), Verdict::Failed(_)));
        assert!(matches!(judge(&no_access, false), Verdict::Passed(_)));
        let mut short = good;
        short.cold.added_pages = 15;
        assert!(
            matches!(judge(&short, false), Verdict::Failed(ref w) if w.contains("counted 15 misses"))
        );
        // A metadata block read while writing is a real miss, allowed.
        let mut metadata = good;
        metadata.write.added += 1;
        metadata.write.added_pages += 1;
        assert!(matches!(judge(&metadata, false), Verdict::Passed(_)));
        let mut write_miss = good;
        write_miss.write.written_pages = 8;
        assert!(
            matches!(judge(&write_miss, false), Verdict::Failed(ref w) if w.contains("counted 8 misses, not at most 4"))
        );
        let mut no_dirty = good;
        no_dirty.write.dirtied = 0;
        assert!(matches!(judge(&no_dirty, false), Verdict::Failed(_)));
    }

    #[test]
    fn tmpfs_is_not_disk_backed() {
        if Path::new("/dev/shm").is_dir() {
            assert!(!disk_backed(Path::new("/dev/shm")));
        }
        assert!(!disk_backed(Path::new("/nonexistent-cachestat")));
    }
}
