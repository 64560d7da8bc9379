//! Child processes: [`Command`] spawns a [`Child`], whose exit is awaited without a
//! `SIGCHLD` handler and without a thread per child.
//!
//! # Mechanism
//!
//! 1. [`Command::spawn`] runs `std::process::Command::spawn` (which does the `fork`/`exec`,
//!    the environment, the working directory and the stdio plumbing), then opens a pidfd
//!    for the child with `pidfd_open(2)`. The child is not reaped yet, so its pid cannot
//!    have been reused: the pidfd names this child.
//! 2. [`Child::wait`] tries `waitpid(WNOHANG)`; while the child runs, it waits for its
//!    exit through the pidfd — on a ring worker with `IORING_OP_WAITID` (`WEXITED |
//!    WNOWAIT`: the kernel reports the exit and leaves the reaping to us; Linux 6.7+) or,
//!    on older kernels, an `IORING_OP_POLL_ADD` (the kernel makes a pidfd readable at
//!    exit); on a fallback worker, through its epoll; on a `block_on` thread, through
//!    the process's readiness thread (`poller.rs`) — then reaps.
//! 3. Piped stdin, stdout and stderr ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`])
//!    are non-blocking pipe ends that wait for readiness (`POLL_ADD` on a ring worker's
//!    ring, a fallback worker's epoll, the readiness thread elsewhere); their reads and
//!    writes take and give back
//!    owned buffers, like [`fs::File`](crate::fs::File).
//! 4. A [`Child`] dropped before it was reaped (killed first if
//!    [`kill_on_drop`](Command::kill_on_drop) was set) is handed to the readiness thread,
//!    which reaps it when its pidfd becomes readable: no zombie is left behind.
//!
//! The reap itself stays with `std::process::Child` (`waitpid`), which builds the
//! [`ExitStatus`]; `WNOWAIT` is what lets the ring wait without taking that over.
//! Rejected: a `SIGCHLD` handler (it would take over a process-wide signal the user may
//! want, and a handler cannot tell whose child exited without reaping), and a thread
//! blocked in `waitpid` per child (a thread for each of a thousand children).
//!
//! # Examples
//!
//! ```
//! use weft_runtime::process::{Command, Stdio};
//!
//! let rt = weft_runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let out = Command::new("echo").arg("hello").output().await?;
//!     assert!(out.status.success());
//!     assert_eq!(out.stdout, b"hello\n");
//!
//!     let mut cat = Command::new("cat")
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let mut stdin = cat.stdin.take().unwrap();
//!     let (r, _) = stdin.write_all(b"meow".to_vec()).await;
//!     r?;
//!     drop(stdin); // cat sees end of file
//!     let out = cat.wait_with_output().await?;
//!     assert_eq!(out.stdout, b"meow");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod pipe;
pub(crate) mod ring;

use std::ffi::OsStr;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

use crate::poller::Poller;

/// A process to spawn: program, arguments, environment, working directory and stdio.
/// The same builder as `std::process::Command`, with asynchronous waiting.
///
/// By default the child inherits stdin, stdout and stderr ([`output`](Command::output)
/// pipes stdout and stderr), the environment and the working directory.
///
/// # Examples
///
/// ```
/// use weft_runtime::process::Command;
///
/// let rt = weft_runtime::Runtime::new()?;
/// let status = rt.block_on(Command::new("sh").args(["-c", "exit 3"]).status())?;
/// assert_eq!(status.code(), Some(3));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    stdin_set: bool,
}

impl Command {
    /// A command that runs `program` (looked up in `PATH` unless it contains a `/`).
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds one argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets one environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes one variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Command::env) adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Runs the child in `dir`.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's stdin: [`Stdio::piped`] gives a [`ChildStdin`] in [`Child::stdin`].
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's stdout: [`Stdio::piped`] gives a [`ChildStdout`] in [`Child::stdout`].
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// The child's stderr: [`Stdio::piped`] gives a [`ChildStderr`] in [`Child::stderr`].
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// Whether a [`Child`] dropped before it exited is killed (`SIGKILL`). Either way a
    /// dropped child is reaped in the background when it exits, so no zombie is left.
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// The underlying `std` command, for options this type does not mirror.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The underlying `std` command, mutably (`std::os::unix::process::CommandExt` adds
    /// `uid`, `gid`, `process_group`, ...).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the child. Works inside or outside a runtime; waiting for it needs neither a
    /// particular runtime nor driver.
    ///
    /// # Errors
    ///
    /// The system's error, naming the program (and the working directory if one was set):
    /// [`NotFound`](io::ErrorKind::NotFound) for a program (or directory) that does not
    /// exist, [`PermissionDenied`](io::ErrorKind::PermissionDenied)
    /// for one that is not executable; or `pidfd_open`'s (Linux older than 5.3).
    pub fn spawn(&mut self) -> io::Result<Child> {
        let program = self.std.get_program().to_owned();
        let dir = self.std.get_current_dir().map(Path::to_owned);
        let named = |e: io::Error| {
            let program = Path::new(&program).display();
            let msg = match &dir {
                Some(dir) => format!("cannot spawn {program} in {}: {e}", dir.display()),
                None => format!("cannot spawn {program}: {e}"),
            };
            io::Error::new(e.kind(), msg)
        };
        let mut child = self.std.spawn().map_err(named)?;
        let pid = child.id();
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                // No way to watch it: do not leave it running unwatched.
                let _ = child.kill();
                let _ = child.wait();
                return Err(named(e));
            }
        };
        let stdin = child.stdin.take().map(ChildStdin::from_std).transpose();
        let stdout = child.stdout.take().map(ChildStdout::from_std).transpose();
        let stderr = child.stderr.take().map(ChildStderr::from_std).transpose();
        let mut c = Child {
            stdin: None,
            stdout: None,
            stderr: None,
            inner: Some(Inner { child, pidfd }),
            status: None,
            pid,
            kill_on_drop: self.kill_on_drop,
        };
        c.stdin = stdin?;
        c.stdout = stdout?;
        c.stderr = stderr?;
        Ok(c)
    }

    /// Spawns the child and waits for it to exit; its stdio is inherited unless set.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn) and [`Child::wait`].
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        child.wait().await
    }

    /// Spawns the child with stdout and stderr piped (and stdin null unless set), and
    /// collects both and its exit status. Like tokio's, it leaves this command's stdout
    /// and stderr set to piped.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn) and [`Child::wait_with_output`].
    pub async fn output(&mut self) -> io::Result<Output> {
        if !self.stdin_set {
            self.std.stdin(Stdio::null());
        }
        self.std.stdout(Stdio::piped());
        self.std.stderr(Stdio::piped());
        self.spawn()?.wait_with_output().await
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            stdin_set: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("std", &self.std)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let why = if e.raw_os_error() == Some(libc::ENOSYS) {
            " (pidfd_open needs Linux 5.3+)"
        } else {
            ""
        };
        return Err(io::Error::new(
            e.kind(),
            format!("pidfd_open({pid}) failed{why}: {e}"),
        ));
    }
    // SAFETY: a fresh descriptor (close-on-exec, as pidfd_open always sets) owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// A child not yet reaped.
struct Inner {
    child: std::process::Child,
    pidfd: Arc<OwnedFd>,
}

/// A spawned child process; see [`Command::spawn`].
///
/// Dropping a `Child` does not wait for it; it is reaped in the background when it exits
/// (and killed first if the command set [`kill_on_drop`](Command::kill_on_drop)).
pub struct Child {
    /// The child's stdin, if it was [piped](Stdio::piped) and not taken.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was [piped](Stdio::piped) and not taken.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was [piped](Stdio::piped) and not taken.
    pub stderr: Option<ChildStderr>,
    inner: Option<Inner>,
    status: Option<ExitStatus>,
    pid: u32,
    kill_on_drop: bool,
}

impl Child {
    /// The child's pid, until it has been reaped (then `None`: the number may already
    /// belong to another process).
    pub fn id(&self) -> Option<u32> {
        self.inner.as_ref().map(|_| self.pid)
    }

    /// The exit status if the child has exited (reaping it), without waiting.
    ///
    /// # Errors
    ///
    /// `waitpid`'s error.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let inner = self
            .inner
            .as_mut()
            .expect("unreaped child without a status");
        match inner.child.try_wait()? {
            Some(s) => {
                self.status = Some(s);
                self.inner = None;
                Ok(Some(s))
            }
            None => Ok(None),
        }
    }

    /// Waits for the child to exit and reaps it. Closes [`stdin`](Child::stdin) first, so a
    /// child that reads to end of file is not left waiting for more.
    ///
    /// Cancel-safe: dropping the future leaves the child running and still waitable.
    ///
    /// # Errors
    ///
    /// `waitpid`'s error, or the readiness wait's.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            let pidfd = self.inner.as_ref().expect("running child").pidfd.clone();
            ring::exited(&pidfd).await?;
        }
    }

    /// Sends `SIGKILL` to the child without waiting for it to exit.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if the child has already been
    /// reaped; `kill`'s error otherwise.
    pub fn start_kill(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(inner) => inner.child.kill(),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot kill process {}: it has exited and been reaped",
                    self.pid
                ),
            )),
        }
    }

    /// Kills the child (`SIGKILL`) and waits for it to exit.
    ///
    /// # Errors
    ///
    /// As [`start_kill`](Child::start_kill) and [`wait`](Child::wait).
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Closes stdin, reads stdout and stderr to their ends (whichever were piped)
    /// concurrently, and waits for the child.
    ///
    /// # Errors
    ///
    /// A read's error or [`wait`](Child::wait)'s.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let out = read_all(self.stdout.take().map(Pipe2::Out));
        let err = read_all(self.stderr.take().map(Pipe2::Err));
        let (out, err) = join(out, err).await;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout: out?,
            stderr: err?,
        })
    }
}

enum Pipe2 {
    Out(ChildStdout),
    Err(ChildStderr),
}

async fn read_all(pipe: Option<Pipe2>) -> io::Result<Vec<u8>> {
    let (r, buf) = match pipe {
        None => return Ok(Vec::new()),
        Some(Pipe2::Out(mut p)) => p.read_to_end(Vec::new()).await,
        Some(Pipe2::Err(mut p)) => p.read_to_end(Vec::new()).await,
    };
    r.map(|_| buf)
}

/// Both futures' outputs, polling each until it is done.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

impl Drop for Child {
    /// Step 4 of the module docs: kill if asked, then leave the reaping to the readiness
    /// thread.
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        if self.kill_on_drop {
            let _ = inner.child.kill();
        }
        if let Ok(Some(_)) = inner.child.try_wait() {
            return;
        }
        match Poller::get() {
            Ok(p) => p.adopt(inner.pidfd, inner.child),
            // No readiness thread (descriptor or thread limits): a killed child exits at
            // once, so reap it here rather than leave a zombie; a running one is left to
            // `init` when this process exits.
            Err(_) if self.kill_on_drop => {
                let _ = inner.child.wait();
            }
            Err(_) => {}
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}
