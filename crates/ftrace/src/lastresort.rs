//! The cleanup of last resort: when the process aborts (an allocation that failed, a
//! panic while panicking, `abort()` anywhere, or a SIGABRT from outside), no destructor
//! runs, and a run once died that way with its instance still tracing. A SIGABRT
//! action, set up with the first instance, turns tracing off in every instance this
//! process still owns and removes them, then lets the process die of the signal.
//!
//! It runs in a signal handler, possibly after memory ran out: it allocates nothing and
//! makes only async-signal-safe system calls, on paths prepared when the instance was
//! created.

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// What the cleanup needs for one instance, prepared in advance.
struct Armed {
    dir: CString,
    tracing_on: CString,
    events_enable: CString,
}

const SLOTS: usize = 8;
static ARMED: [AtomicPtr<Armed>; SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
static INSTALL: Once = Once::new();

/// A registration made by [`arm`]; pass it to [`disarm`].
#[derive(Debug)]
pub struct Token(Option<usize>);

fn cstring(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).ok()
}

/// Prepares the last-resort cleanup of the instance at `dir` (and sets up the SIGABRT
/// action on first use). The cleanup is best effort: if every slot is taken or the
/// action cannot be set up, the run goes on without it.
pub fn arm(dir: &Path) -> Token {
    INSTALL.call_once(|| {
        // SAFETY: the action only makes async-signal-safe calls and allocates nothing.
        let _ = unsafe { signal_hook::low_level::register(libc::SIGABRT, on_abort) };
    });
    let (Some(d), Some(t), Some(e)) = (
        cstring(dir),
        cstring(&dir.join("tracing_on")),
        cstring(&dir.join("events/enable")),
    ) else {
        return Token(None);
    };
    let armed = Box::into_raw(Box::new(Armed {
        dir: d,
        tracing_on: t,
        events_enable: e,
    }));
    for (i, slot) in ARMED.iter().enumerate() {
        if slot
            .compare_exchange(
                std::ptr::null_mut(),
                armed,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
        {
            return Token(Some(i));
        }
    }
    // SAFETY: armed came from Box::into_raw above and was never shared.
    drop(unsafe { Box::from_raw(armed) });
    Token(None)
}

/// Forgets a registration: the instance is being removed the ordinary way.
pub fn disarm(token: &mut Token) {
    if let Some(i) = token.0.take() {
        // The prepared paths are left allocated: a signal handler may be reading them.
        ARMED[i].store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

/// Writes `value` to the file at `path`; errors are ignored (nothing else to do).
fn write_file(path: &CString, value: &[u8]) {
    // SAFETY: path is NUL-terminated; value is a valid buffer; the fd is closed after.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            let _ = libc::write(fd, value.as_ptr().cast(), value.len());
            libc::close(fd);
        }
    }
}

fn say(parts: &[&[u8]]) {
    for p in parts {
        // SAFETY: writing a valid buffer to standard error.
        let _ = unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
}

/// The SIGABRT action.
fn on_abort() {
    let mut any = false;
    for slot in &ARMED {
        if !slot.load(Ordering::SeqCst).is_null() {
            any = true;
        }
    }
    if any {
        // The process is ending: close every descriptor but standard input, output and
        // error, so open buffer readers cannot keep the instances busy (and the calls
        // below have descriptors to use even if the limit was reached).
        // SAFETY: close_range on a range of descriptors this process owns.
        let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        if r != 0 {
            for fd in 3..4096 {
                // SAFETY: closing descriptors; errors (not open) are ignored.
                unsafe { libc::close(fd) };
            }
        }
    }
    for slot in &ARMED {
        let p = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
        if p.is_null() {
            continue;
        }
        // SAFETY: armed pointers come from Box::into_raw and are never freed once
        // published (disarm leaves them allocated).
        let a = unsafe { &*p };
        write_file(&a.tracing_on, b"0");
        write_file(&a.events_enable, b"0");
        let mut removed = false;
        for _ in 0..200 {
            // SAFETY: rmdir on a NUL-terminated path.
            if unsafe { libc::rmdir(a.dir.as_ptr()) } == 0 {
                removed = true;
                break;
            }
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            };
            // SAFETY: nanosleep with a valid timespec.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        }
        let dir = a.dir.as_bytes();
        if removed {
            say(&[b"aborting: removed trace instance ", dir, b"\n"]);
        } else {
            say(&[
                b"aborting: tracing stopped, but trace instance ",
                dir,
                b" could not be removed (rmdir it, or run the tool with --cleanup)\n",
            ]);
        }
    }
    // Die of the signal now, as the default action would: another action registered
    // for SIGABRT must not carry on with the instance gone and descriptors closed.
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGABRT, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGABRT);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGABRT);
    }
}
