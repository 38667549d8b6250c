//! The command syscount runs and traces: started stopped, so that tracing (filtered on
//! its pid) is on before it executes anything of its own.

use anyhow::{bail, Result};
use std::ffi::CString;

/// A forked child waiting to execute the command.
#[derive(Debug)]
pub struct Workload {
    pid: libc::pid_t,
    /// Write end of the pipe the child waits on (a byte: go; closed: give up).
    go: libc::c_int,
    /// Read end of the pipe the child reports a failed exec on (`errno`).
    exec_err: libc::c_int,
    status: Option<libc::c_int>,
    argv0: String,
}

fn pipe_cloexec() -> Result<[libc::c_int; 2]> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("creating a pipe: {}", std::io::Error::last_os_error());
    }
    Ok(fds)
}

impl Workload {
    /// Forks a child that will execute `argv` once [`Workload::start`] is called.
    pub fn prepare(argv: &[String]) -> Result<Workload> {
        let Some(first) = argv.first() else {
            bail!("no command given");
        };
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("the command contains a NUL byte"))?;
        let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let go = pipe_cloexec()?;
        let err = match pipe_cloexec() {
            Ok(e) => e,
            Err(e) => {
                // SAFETY: closing the descriptors we just created.
                unsafe {
                    libc::close(go[0]);
                    libc::close(go[1]);
                }
                return Err(e);
            }
        };
        // SAFETY: fork; the child only makes async-signal-safe calls (close, read,
        // signal, execvp on prepared arguments, write, _exit).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the child, async-signal-safe calls on our own descriptors and
            // the argument vector prepared before fork.
            unsafe {
                libc::close(go[1]);
                libc::close(err[0]);
                let mut b = 0u8;
                if libc::read(go[0], (&mut b as *mut u8).cast(), 1) != 1 {
                    libc::_exit(127);
                }
                // Rust ignores SIGPIPE and the tool SIGXFSZ: the command gets the defaults.
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
                libc::execvp(ptrs[0], ptrs.as_ptr());
                let e = *libc::__errno_location();
                libc::write(err[1], (&e as *const libc::c_int).cast(), 4);
                libc::_exit(127);
            }
        }
        // SAFETY: the parent closes the child's ends.
        unsafe {
            libc::close(go[0]);
            libc::close(err[1]);
        }
        Ok(Workload {
            pid,
            go: go[1],
            exec_err: err[0],
            status: None,
            argv0: first.clone(),
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the child execute the command; fails if it could not.
    pub fn start(&mut self) -> Result<()> {
        let b = 1u8;
        // SAFETY: writing one byte to our pipe, then closing it.
        unsafe {
            libc::write(self.go, (&b as *const u8).cast(), 1);
            libc::close(self.go);
        }
        self.go = -1;
        let mut e: libc::c_int = 0;
        // SAFETY: reading up to 4 bytes into `e`; EOF means the exec succeeded.
        let n = unsafe { libc::read(self.exec_err, (&mut e as *mut libc::c_int).cast(), 4) };
        if n == 4 {
            let _ = self.wait();
            bail!(
                "cannot run {:?}: {}",
                self.argv0,
                std::io::Error::from_raw_os_error(e)
            );
        }
        Ok(())
    }

    /// True once the command has exited (reaped).
    pub fn exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let mut st = 0;
        // SAFETY: waitpid on our own child, without blocking.
        let r = unsafe { libc::waitpid(self.pid, &mut st, libc::WNOHANG) };
        if r == self.pid || r < 0 {
            self.status = Some(st);
            return true;
        }
        false
    }

    /// Waits for the command to exit.
    fn wait(&mut self) -> Option<libc::c_int> {
        if self.status.is_none() {
            let mut st = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut st, 0) };
            self.status = Some(if r == self.pid { st } else { 0 });
        }
        self.status
    }

    /// How the command ended, for a note on stderr.
    pub fn describe_exit(&self) -> Option<String> {
        let st = self.status?;
        if libc::WIFEXITED(st) {
            let c = libc::WEXITSTATUS(st);
            (c != 0).then(|| format!("the command exited with status {c}"))
        } else if libc::WIFSIGNALED(st) {
            Some(format!(
                "the command was killed by signal {}",
                libc::WTERMSIG(st)
            ))
        } else {
            None
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if self.go >= 0 {
            // Never started: closing the pipe makes the child exit without executing.
            // SAFETY: closing our descriptor.
            unsafe { libc::close(self.go) };
            self.go = -1;
            let _ = self.wait();
        }
        // SAFETY: closing our descriptor.
        unsafe { libc::close(self.exec_err) };
    }
}
