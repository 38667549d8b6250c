//! Turning every catchable terminating signal into an orderly shutdown.
//!
//! The handlers only set a flag and write a byte to a socket pair; the tools' loops poll
//! that socket together with the trace buffers and then return normally, so every
//! destructor (instance removal, probe removal) runs.
//!
//! * Handled: every signal whose default action ends the process and that is sent to end
//!   it (see [`shutdown_signals`]): SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
//!   SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGPWR, SIGSTKFLT, SIGIO and the real-time
//!   signals.
//! * A SIGHUP that was ignored when the tool started stays ignored: `nohup iosnoop &`
//!   survives the hangup. Other ignored signals are handled all the same: a shell script
//!   starts its background jobs with SIGINT and SIGQUIT ignored, and `kill -INT` is how
//!   such a script (or a user) stops a tracer it started.
//! * SIGXFSZ (a write past `ulimit -f`) is ignored, so the write fails with `EFBIG` and
//!   the tool ends with an error (exit 1) through the same cleanup as any other error.
//! * SIGPIPE stays ignored (Rust's default), so a closed output pipe surfaces as an
//!   `EPIPE` write error instead.
//! * Not handled: the signals the kernel raises for a fault in the program itself
//!   (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT): returning from a handler
//!   would re-run the faulting instruction. SIGKILL and SIGSTOP cannot be caught; a later
//!   run or `--cleanup` removes what a killed run left.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The signals that end a run cleanly: every signal whose default action terminates the
/// process and that is not a fault of the program itself (see the module docs).
pub fn shutdown_signals() -> Vec<i32> {
    let mut sigs = vec![
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGIO,
    ];
    sigs.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    sigs
}

/// True if `sig` is ignored (`SIG_IGN`) in this process now.
pub fn is_ignored(sig: i32) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null new action only queries.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: old is a valid sigaction to write into.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    rc == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// Why [`Shutdown::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A descriptor is readable, or the timeout passed: time to read.
    Ready,
    /// A shutdown signal arrived.
    Shutdown,
    /// The reader of our standard output went away (`iosnoop | head` after head exited):
    /// the run should end now, even if no further output would have revealed it.
    OutputClosed,
}

/// Shutdown request state, installed once per run.
#[derive(Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
    rx: UnixStream,
    _tx: UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl Shutdown {
    /// Installs the handlers for [`shutdown_signals`] (SIGHUP only if it was not ignored
    /// at start, as under `nohup`) and ignores SIGXFSZ.
    pub fn install() -> Result<Shutdown> {
        let (rx, tx) = UnixStream::pair().context("creating the signal socket pair")?;
        rx.set_nonblocking(true).context("signal socket")?;
        tx.set_nonblocking(true).context("signal socket")?;
        let flag = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicI32::new(0));
        let tx_fd = tx.as_raw_fd();
        let mut ids = Vec::new();
        for sig in shutdown_signals() {
            if sig == libc::SIGHUP && is_ignored(sig) {
                continue;
            }
            let (flag, signal) = (Arc::clone(&flag), Arc::clone(&signal));
            let action = move || {
                signal.store(sig, Ordering::SeqCst);
                flag.store(true, Ordering::SeqCst);
                let byte = 1u8;
                // SAFETY: write(2) is async-signal-safe; tx_fd stays open as long as the
                // handler is registered (Shutdown owns both and unregisters on drop
                // before closing). A full socket already holds a wake-up.
                unsafe { libc::write(tx_fd, (&byte as *const u8).cast(), 1) };
            };
            // SAFETY: the action only does atomic stores and write(2), which are
            // async-signal-safe, and allocates nothing.
            let id = unsafe { signal_hook::low_level::register(sig, action) }
                .with_context(|| format!("installing a handler for signal {sig}"))?;
            ids.push(id);
        }
        // SAFETY: setting a disposition to SIG_IGN has no preconditions.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        Ok(Shutdown {
            flag,
            signal,
            rx,
            _tx: tx,
            ids,
        })
    }

    /// The signal that requested the shutdown (the last one, if several came).
    pub fn signal(&self) -> Option<i32> {
        Some(self.signal.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }

    /// True once a shutdown signal has arrived.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Requests the shutdown from the program itself (a stop condition was met, e.g.
    /// iosnoop's `--count`), as a signal would, but with no [`Shutdown::signal`].
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // A full socket already holds a wake-up.
        let _ = (&self._tx).write(&[1u8]);
    }

    /// A file descriptor that becomes readable when a signal arrives (for `poll`).
    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Sleeps up to `d`; returns true (early) if a shutdown was requested. Unlike
    /// [`Shutdown::wait`], a closed output pipe does not end the sleep (a buffered run
    /// finds out when it writes).
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            if self.requested() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.poll(&[], false, deadline - now, &mut []);
        }
    }

    /// The one poll-with-shutdown of the suite: waits until one of `fds` is readable, a
    /// shutdown signal arrives, the reader of standard output goes away (`tool | head`
    /// after head exited: the run should end even if it would print nothing more), or
    /// `timeout` passes. Returns at once if a shutdown was already requested.
    pub fn wait(&self, fds: &[RawFd], timeout: Duration) -> Wake {
        self.wait_ready(fds, timeout, &mut [])
    }

    /// Like [`Shutdown::wait`], and also says which of `fds` are readable (or hung up):
    /// `ready[i]` for `fds[i]` (`ready` may be shorter than `fds`).
    pub fn wait_ready(&self, fds: &[RawFd], timeout: Duration, ready: &mut [bool]) -> Wake {
        ready.iter_mut().for_each(|r| *r = false);
        if self.requested() {
            return Wake::Shutdown;
        }
        let out = self.poll(fds, true, timeout, ready);
        if self.requested() {
            Wake::Shutdown
        } else if crate::output::output_closed(out) {
            Wake::OutputClosed
        } else {
            Wake::Ready
        }
    }

    /// One poll(2) on `fds`, the wake-up socket and (if `watch_output`) standard output;
    /// returns standard output's `revents`.
    fn poll(
        &self,
        fds: &[RawFd],
        watch_output: bool,
        timeout: Duration,
        ready: &mut [bool],
    ) -> i16 {
        let mut pfds: Vec<libc::pollfd> = fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        pfds.push(libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        if watch_output {
            // With no events requested, poll reports only POLLERR/POLLHUP on stdout: for
            // a pipe, POLLERR means every reader has closed it.
            pfds.push(crate::output::stdout_pollfd());
        }
        // Round up: a timeout of 0.4 ms must not become a busy poll with timeout 0.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: pfds is a valid, initialised pollfd array of the given length.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        self.drain();
        for (r, p) in ready.iter_mut().zip(&pfds[..fds.len()]) {
            *r = p.revents != 0;
        }
        if watch_output {
            pfds[pfds.len() - 1].revents
        } else {
            0
        }
    }

    /// Empties the wake-up socket.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn wait_reports_readable_fds_timeouts_and_shutdown() {
        let sd = Shutdown::install().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        // Nothing to read: the timeout passes.
        let t = Instant::now();
        let mut ready = [true];
        assert_eq!(
            sd.wait_ready(&[a.as_raw_fd()], Duration::from_millis(30), &mut ready),
            Wake::Ready
        );
        assert!(t.elapsed() >= Duration::from_millis(29) && !ready[0]);
        // Data: at once, and the fd is marked.
        b.write_all(b"x").unwrap();
        let t = Instant::now();
        assert_eq!(
            sd.wait_ready(&[a.as_raw_fd()], Duration::from_secs(5), &mut ready),
            Wake::Ready
        );
        assert!(t.elapsed() < Duration::from_secs(1) && ready[0]);
        // A shutdown the program requests itself ends a wait at once, with no signal,
        // and concerns only its own Shutdown.
        let own = Shutdown::install().unwrap();
        own.request();
        let t = Instant::now();
        assert_eq!(own.wait(&[], Duration::from_secs(5)), Wake::Shutdown);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(own.signal(), None);
        assert!(own.requested() && !sd.requested());
        drop(own);
        // A shutdown signal ends a wait and every later one, and a sleep.
        // SAFETY: raising a signal whose handler was installed above.
        unsafe { libc::raise(libc::SIGUSR2) };
        assert_eq!(sd.wait(&[], Duration::from_secs(5)), Wake::Shutdown);
        assert_eq!(sd.signal(), Some(libc::SIGUSR2));
        assert!(sd.sleep(Duration::from_secs(5)));
    }
}
