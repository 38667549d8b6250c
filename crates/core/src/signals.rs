//! Turning SIGINT, SIGTERM, SIGHUP and SIGQUIT into an orderly shutdown.
//!
//! The handlers only set a flag and write a byte to a socket pair; the tools' loops poll
//! that socket together with the trace buffers and then return normally, so every
//! destructor (instance removal, probe removal) runs. SIGPIPE stays ignored (Rust's
//! default), so a closed output pipe surfaces as an `EPIPE` write error instead.

use anyhow::{Context, Result};
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The signals that end a run cleanly.
pub const SHUTDOWN_SIGNALS: &[i32] = &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Shutdown request state, installed once per run.
#[derive(Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    rx: UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl Shutdown {
    /// Installs the handlers.
    pub fn install() -> Result<Shutdown> {
        let (rx, tx) = UnixStream::pair().context("creating the signal socket pair")?;
        rx.set_nonblocking(true).context("signal socket")?;
        tx.set_nonblocking(true).context("signal socket")?;
        let flag = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for &sig in SHUTDOWN_SIGNALS {
            ids.push(
                signal_hook::flag::register(sig, Arc::clone(&flag))
                    .context("installing a signal handler")?,
            );
            let tx = tx.try_clone().context("signal socket")?;
            ids.push(
                signal_hook::low_level::pipe::register(sig, tx)
                    .context("installing a signal handler")?,
            );
        }
        Ok(Shutdown { flag, rx, ids })
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
