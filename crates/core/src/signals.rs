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
use std::io::Read;
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

    /// A file descriptor that becomes readable when a signal arrives (for `poll`).
    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Sleeps up to `d`; returns true (early) if a shutdown was requested.
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
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is a valid pollfd array of length 1.
            unsafe { libc::poll(&mut pfd, 1, ms) };
            self.drain();
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
