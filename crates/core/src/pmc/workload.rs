//! A command to measure: forked, held before exec until its counters are attached
//! (`enable_on_exec` then starts them exactly at exec), executed without a shell, waited
//! for, and never left behind.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    match sig {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        libc::SIGALRM => "SIGALRM".into(),
        libc::SIGTERM => "SIGTERM".into(),
        _ => format!("signal {sig}"),
    }
}

/// Splits a command line into words like a shell would, without running one: whitespace
/// separates words; single quotes, double quotes and backslashes quote. No globbing,
/// variables or redirection.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("unterminated ' quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(format!("unterminated \" quote in {s:?}")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("unterminated \" quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(x) => cur.push(x),
                    None => return Err(format!("trailing backslash in {s:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
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
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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

/// A forked command waiting to exec.
#[derive(Debug)]
pub struct Workload {
    pid: i32,
    go: Option<OwnedFd>,
    exec_err: Option<OwnedFd>,
    pidfd: Option<OwnedFd>,
    exit: Option<Exit>,
    /// The command as given, for messages.
    pub display: String,
}

impl Workload {
    /// Forks a child that waits until [`Workload::start`] and then execs `argv` (PATH
    /// searched as execvp does, environment inherited, SIGPIPE back to default).
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
        let (go_r, go_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: fork; the child only calls async-signal-safe functions (close, signal,
        // sigprocmask, read, execv, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; every pointer refers to data that outlives the exec.
            unsafe { child(go_r.as_raw_fd(), err_w.as_raw_fd(), &c_prog, &ptrs) }
        }
        drop(go_r);
        drop(err_w);
        Ok(Workload {
            pid,
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
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == self.pid {
            self.exit = Some(Exit::from_wait_status(status));
        } else if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            // Reaped elsewhere: the status is unknown, but it is gone.
            self.exit = Some(Exit::Code(-1));
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
    pub fn signal(&self, sig: i32) {
        if self.exit.is_none() {
            // SAFETY: kill on our own unreaped child.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Ends the child: SIGTERM, up to `grace` to exit, then SIGKILL. Returns how it ended.
    pub fn terminate(&mut self, grace: Duration) -> Exit {
        if let Some(e) = self.try_wait() {
            return e;
        }
        // A child still held before exec just exits when its pipe closes.
        self.go = None;
        self.signal(libc::SIGTERM);
        if let Some(e) = self.wait_timeout(grace) {
            return e;
        }
        self.signal(libc::SIGKILL);
        self.wait_timeout(Duration::from_secs(5))
            .unwrap_or(Exit::Signal(libc::SIGKILL))
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.go = None;
            self.signal(libc::SIGKILL);
            let _ = self.wait_timeout(Duration::from_secs(5));
        }
    }
}

/// The child side of [`Workload::prepare`]: wait for the go byte, exec, or report errno.
///
/// # Safety
/// Must only be called in the child right after fork; `prog` and `argv` (NULL-terminated)
/// must be valid.
unsafe fn child(go: RawFd, err: RawFd, prog: &CString, argv: &[*const libc::c_char]) -> ! {
    // SAFETY (whole body): only async-signal-safe calls on pre-fork memory.
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
        libc::execv(prog.as_ptr(), argv.as_ptr());
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
    fn splits_like_a_shell_without_one() {
        assert_eq!(split_command("sleep 0.2").unwrap(), ["sleep", "0.2"]);
        assert_eq!(
            split_command("  sh -c 'echo a  b; exit 3'  ").unwrap(),
            ["sh", "-c", "echo a  b; exit 3"]
        );
        assert_eq!(
            split_command(r#"printf "%s\n" x\ y "a\"b""#).unwrap(),
            ["printf", "%s\\n", "x y", "a\"b"]
        );
        assert_eq!(split_command("echo ''").unwrap(), ["echo", ""]);
        assert_eq!(
            split_command("ls *.rs $HOME").unwrap(),
            ["ls", "*.rs", "$HOME"]
        );
        assert!(split_command("").is_err());
        assert!(split_command("   ").is_err());
        assert!(split_command("echo 'x").is_err());
        assert!(split_command("echo \"x").is_err());
        assert!(split_command("echo x\\").is_err());
    }

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
    fn exit_texts() {
        assert_eq!(Exit::Code(0).to_string(), "exited with status 0");
        assert_eq!(
            Exit::Signal(15).to_string(),
            "was killed by signal 15 (SIGTERM)"
        );
    }
}
