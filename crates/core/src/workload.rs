//! A command to measure: forked, held before exec until the tool is ready to watch it
//! (pmcstat's counters are attached, with `enable_on_exec` starting them exactly at
//! exec; syscount's trace filtered on its pid is on), the program found in PATH before
//! the fork (so no failed `execve` of a PATH search is traced), executed as the
//! argument vector given (callers that want a shell pass `sh -c CMD`), waited for, and
//! never left behind.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{access, pipe2, AccessFlags, Pid};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    /// Decodes a `waitpid` status.
    pub fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "was killed by signal {s} ({})", signal_name(*s)),
        }
    }
}

/// The usual name of a signal number.
pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.as_str().into())
}

/// kill(2), ignoring failure (the process may be gone already).
fn kill(pid: i32, sig: Signal) {
    let _ = signal::kill(Pid::from_raw(pid), sig);
}

/// waitpid(2) with WNOHANG: `Ok(None)` while `pid` runs.
fn wait_nohang(pid: i32) -> nix::Result<Option<Exit>> {
    Ok(
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
            WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
            _ => None,
        },
    )
}

/// Finds a program like execvp: names with a `/` are used as given, others are searched
/// in `path` (the `PATH` value; empty entries mean the current directory).
pub fn find_program(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let cand = dir.join(name);
        if is_executable(&cand) {
            return Some(cand);
        }
    }
    None
}

fn is_executable(p: &Path) -> bool {
    p.is_file() && access(p, AccessFlags::X_OK).is_ok()
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(pipe2(OFlag::O_CLOEXEC)?)
}

/// `pidfd_open(2)` (Linux 5.3+): a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: a plain system call with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel returned a new descriptor we own.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// True while `/proc/PID` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // The state follows the parenthesised comm, which may itself hold ")".
            let state = s
                .rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | Some("x"))
        }
        Err(_) => false,
    }
}

/// The environment variable that marks a command's processes (`PID.N` of the process that
/// started it), so the ones it leaves behind can be told from others and ended.
pub const MARKER: &str = "PERF_TOOLS_WORKLOAD";

/// The parent PID from the text of `/proc/PID/stat` (the field after the state, which
/// follows the parenthesised comm, itself possibly holding ")" or spaces).
pub fn stat_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `pid` (children, grandchildren, ...), from the parent links
/// in `/proc/*/stat`. A shell running `-c 'a; b'` forks its commands: ending only the
/// shell would leave them running.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut links: Vec<(i32, i32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(pp) = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| stat_ppid(&s))
            {
                links.push((p, pp));
            }
        }
    }
    tree_below(pid, &links)
}

/// The PIDs below `root` given (pid, parent) links.
pub fn tree_below(root: i32, links: &[(i32, i32)]) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &(c, pp) in links {
            if pp == p && c != root && !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// A forked command waiting to exec.
#[derive(Debug)]
pub struct Workload {
    pid: i32,
    /// `MARKER=token`, in the command's environment and so in its descendants'.
    mark: Vec<u8>,
    go: Option<OwnedFd>,
    exec_err: Option<OwnedFd>,
    pidfd: Option<OwnedFd>,
    exit: Option<Exit>,
    /// The command as given, for messages.
    pub display: String,
}

impl Workload {
    /// Forks a child that waits until [`Workload::start`] and then execs `argv` (PATH
    /// searched as execvp does, environment inherited plus [`MARKER`], SIGPIPE back to
    /// default).
    pub fn prepare(argv: &[String]) -> Result<Workload, String> {
        let display = argv.join(" ");
        let Some(name) = argv.first() else {
            return Err("empty command".into());
        };
        let path_env = std::env::var_os("PATH");
        let prog = find_program(name, path_env.as_deref())
            .ok_or_else(|| format!("cannot run {name:?}: command not found in PATH"))?;
        let c_prog = CString::new(prog.as_os_str().as_bytes())
            .map_err(|_| format!("cannot run {name:?}: NUL byte in the name"))?;
        let c_args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("cannot run {name:?}: NUL byte in an argument"))?;
        let mut ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mark = format!(
            "{MARKER}={}.{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut c_env: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| k != MARKER)
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect();
        c_env.push(CString::new(mark.clone()).map_err(|_| "NUL in the marker".to_string())?);
        let mut envp: Vec<*const libc::c_char> = c_env.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        // Processes the command leaves behind when its parent (a shell) ends are
        // re-parented to us rather than to init, so terminate() can still end them.
        // SAFETY: prctl with integer arguments; it only changes this process's attribute.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let (go_r, go_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: fork; the child only calls async-signal-safe functions (close, signal,
        // sigprocmask, read, execve, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; every pointer refers to data that outlives the exec.
            unsafe { child(go_r.as_raw_fd(), err_w.as_raw_fd(), &c_prog, &ptrs, &envp) }
        }
        drop(go_r);
        drop(err_w);
        Ok(Workload {
            pid,
            mark: mark.into_bytes(),
            go: Some(go_w),
            exec_err: Some(err_r),
            pidfd: pidfd_open(pid),
            exit: None,
            display,
        })
    }

    /// The child's PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the child exec. Fails with the reason if exec failed.
    pub fn start(&mut self) -> Result<(), String> {
        if let Some(go) = self.go.take() {
            let b = [1u8];
            // SAFETY: writing one byte from a valid buffer to our pipe.
            unsafe { libc::write(go.as_raw_fd(), b.as_ptr().cast(), 1) };
        }
        let Some(err) = self.exec_err.take() else {
            return Ok(());
        };
        let mut buf = [0u8; 4];
        let n = loop {
            // SAFETY: reading into a valid 4-byte buffer from our pipe.
            let n = unsafe { libc::read(err.as_raw_fd(), buf.as_mut_ptr().cast(), 4) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        if n == 4 {
            let errno = i32::from_ne_bytes(buf);
            let _ = self.wait_timeout(Duration::from_secs(5));
            return Err(format!(
                "cannot run {:?}: {}",
                self.display,
                io::Error::from_raw_os_error(errno)
            ));
        }
        Ok(())
    }

    /// A descriptor that becomes readable when the child exits (Linux 5.3+).
    pub fn exit_fd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Reaps the child if it has exited.
    pub fn try_wait(&mut self) -> Option<Exit> {
        if self.exit.is_some() {
            return self.exit;
        }
        match wait_nohang(self.pid) {
            Ok(e) => self.exit = e,
            // Reaped elsewhere: the status is unknown, but it is gone.
            Err(Errno::ECHILD) => self.exit = Some(Exit::Code(-1)),
            Err(_) => {}
        }
        self.exit
    }

    /// Waits up to `d` for the child to exit.
    pub fn wait_timeout(&mut self, d: Duration) -> Option<Exit> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(e) = self.try_wait() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a signal to the child (if it has not been reaped).
    pub fn signal(&self, sig: Signal) {
        if self.exit.is_none() {
            kill(self.pid, sig);
        }
    }

    /// Sends `sig` to the child and to each of `others` (its descendants, found earlier).
    fn signal_tree(&self, sig: Signal, others: &[i32]) {
        self.signal(sig);
        for &p in others {
            kill(p, sig);
        }
    }

    /// Ends the child and everything it started: SIGTERM, up to `grace` to exit, then
    /// SIGKILL. Returns how the child ended.
    pub fn terminate(&mut self, grace: Duration) -> Exit {
        if let Some(e) = self.try_wait() {
            return e;
        }
        // A child still held before exec just exits when its pipe closes.
        self.go = None;
        // Found before signalling: once the shell is gone its children are re-parented
        // (to us: see prepare), and [`Workload::end_orphans`] finds them there.
        let tree = descendants(self.pid);
        self.signal_tree(Signal::SIGTERM, &tree);
        let exit = match self.wait_timeout(grace) {
            Some(e) => e,
            None => {
                self.signal_tree(Signal::SIGKILL, &descendants(self.pid));
                self.wait_timeout(Duration::from_secs(5))
                    .unwrap_or(Exit::Signal(libc::SIGKILL))
            }
        };
        self.end_orphans(Signal::SIGTERM, grace.min(Duration::from_secs(1)));
        reap(&tree);
        exit
    }

    /// The command's processes that outlived their parent and were re-parented to this
    /// process (the child subreaper), live ones only: those below us that carry this
    /// command's [`MARKER`] in their environment.
    fn orphans(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        descendants(me)
            .into_iter()
            .filter(|&p| p != self.pid && process_alive(p) && self.marks(p))
            .collect()
    }

    fn marks(&self, pid: i32) -> bool {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == self.mark.as_slice()))
    }

    /// Ends the orphans: `sig`, up to `grace` to exit, then SIGKILL; reaps them.
    fn end_orphans(&self, sig: Signal, grace: Duration) {
        let first = self.orphans();
        if first.is_empty() {
            return;
        }
        for &p in &first {
            kill(p, sig);
        }
        let deadline = Instant::now() + grace;
        loop {
            std::thread::sleep(Duration::from_millis(10));
            reap(&first);
            let left = self.orphans();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                for &p in &left {
                    kill(p, Signal::SIGKILL);
                }
                reap(&left);
                return;
            }
        }
    }
}

/// Reaps those of `pids` that are (or become, once re-parented to us as their parent
/// ends) our exited children, waiting up to 200 ms for them, so none stays a zombie.
fn reap(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() {
        left.retain(|&p| {
            // Ok(None): our child, still running. Otherwise reaped, or not ours (ECHILD:
            // its own parent reaps it) unless it is still dying under a parent that is
            // itself dying.
            match wait_nohang(p) {
                Ok(None) => true,
                Ok(Some(_)) => false,
                Err(_) => process_alive(p),
            }
        });
        if Instant::now() >= deadline {
            return;
        }
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.go = None;
            let tree = descendants(self.pid);
            self.signal_tree(Signal::SIGKILL, &tree);
            let _ = self.wait_timeout(Duration::from_secs(5));
            self.end_orphans(Signal::SIGKILL, Duration::ZERO);
            reap(&tree);
        }
    }
}

/// The child side of [`Workload::prepare`]: wait for the go byte, exec, or report errno.
///
/// # Safety
/// Must only be called in the child right after fork; `prog` and `argv` (NULL-terminated)
/// must be valid.
unsafe fn child(
    go: RawFd,
    err: RawFd,
    prog: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    // SAFETY: only async-signal-safe calls, on memory prepared before the fork (the
    // caller's contract above), for the whole block.
    unsafe {
        // Rust ignores SIGPIPE; the command must get the default back. Handlers installed
        // by the parent are reset by exec; the signal mask is inherited, so clear it.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        let mut b = 0u8;
        loop {
            let n = libc::read(go, (&mut b as *mut u8).cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            // The parent gave up (its end closed): never run the command.
            libc::_exit(127);
        }
        libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let e = *libc::__errno_location();
        let bytes = e.to_ne_bytes();
        libc::write(err, bytes.as_ptr().cast(), 4);
        libc::_exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_like_execvp() {
        let p = find_program("sh", Some(OsStr::new("/nonexistent:/bin:/usr/bin"))).unwrap();
        assert!(p.ends_with("sh"));
        assert_eq!(find_program("./x", None).unwrap(), PathBuf::from("./x"));
        assert!(find_program("no-such-program-pmc", Some(OsStr::new("/bin"))).is_none());
    }

    #[test]
    fn runs_held_command_and_reports_status() {
        let mut w = Workload::prepare(&["sh".into(), "-c".into(), "exit 3".into()]).unwrap();
        // Held: it has not exec'd, so it is still alive after a while.
        std::thread::sleep(Duration::from_millis(50));
        assert!(w.try_wait().is_none());
        w.start().unwrap();
        assert_eq!(w.wait_timeout(Duration::from_secs(10)), Some(Exit::Code(3)));
    }

    #[test]
    fn exec_failure_is_reported() {
        let dir = std::env::temp_dir().join(format!("pmc-noexec-{}", std::process::id()));
        std::fs::write(&dir, "not a program").unwrap();
        let mut w = Workload::prepare(&[dir.display().to_string()]).unwrap();
        let err = w.start().unwrap_err();
        assert!(err.contains("Permission denied"), "{err}");
        std::fs::remove_file(&dir).unwrap();
        assert!(Workload::prepare(&["no-such-program-pmc".into()])
            .unwrap_err()
            .contains("command not found"));
    }

    #[test]
    fn terminate_and_drop_leave_nothing_behind() {
        let mut w = Workload::prepare(&["sleep".into(), "30".into()]).unwrap();
        w.start().unwrap();
        let pid = w.pid();
        assert!(process_alive(pid));
        assert_eq!(
            w.terminate(Duration::from_secs(5)),
            Exit::Signal(libc::SIGTERM)
        );
        assert!(!process_alive(pid));
        // Dropped while held: the child is killed and reaped.
        let w = Workload::prepare(&["sleep".into(), "30".into()]).unwrap();
        let pid = w.pid();
        drop(w);
        assert!(!process_alive(pid));
    }

    #[test]
    fn the_whole_tree_is_ended() {
        // sh forks sleep (dash does not exec the last command of -c): both must go.
        let mut w =
            Workload::prepare(&["sh".into(), "-c".into(), "sleep 30; true".into()]).unwrap();
        w.start().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut below = Vec::new();
        while below.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            below = descendants(w.pid());
        }
        assert_eq!(below.len(), 1, "sleep under the shell");
        assert_eq!(
            w.terminate(Duration::from_secs(5)),
            Exit::Signal(libc::SIGTERM)
        );
        std::thread::sleep(Duration::from_millis(100));
        assert!(!process_alive(below[0]), "sleep left behind");
        // Ended before the shell has forked its command, or while it does: the
        // orphans come to us and are ended as well.
        for _ in 0..5 {
            let mut w =
                Workload::prepare(&["sh".into(), "-c".into(), "sleep 30; true".into()]).unwrap();
            w.start().unwrap();
            let me = std::process::id() as i32;
            w.terminate(Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(50));
            // Only this command's processes: other tests run commands at the same time.
            let left: Vec<i32> = descendants(me)
                .into_iter()
                .filter(|p| process_alive(*p) && w.marks(*p))
                .collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        }
    }

    #[test]
    fn parent_links() {
        assert_eq!(stat_ppid("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(stat_ppid("42 (sh) S 1 42"), Some(1));
        assert_eq!(stat_ppid("garbage"), None);
        let links = [(2, 1), (3, 2), (4, 3), (5, 1), (6, 2)];
        let mut t = tree_below(2, &links);
        t.sort_unstable();
        assert_eq!(t, [3, 4, 6]);
        assert!(tree_below(9, &links).is_empty());
    }

    #[test]
    fn exit_texts() {
        assert_eq!(Exit::Code(0).to_string(), "exited with status 0");
        assert_eq!(
            Exit::Signal(15).to_string(),
            "was killed by signal 15 (SIGTERM)"
        );
    }
}
