//! A child's piped stdin, stdout and stderr, with owned-buffer reads and writes.
//!
//! Each end is switched to `O_NONBLOCK` at spawn. A read or write is tried at once; on
//! `EAGAIN` it waits for readiness — a `POLL_ADD` on a ring worker's ring, the readiness
//! thread elsewhere — and tries again. No thread ever blocks in `read(2)` or `write(2)`
//! on a pipe, so a child that never writes holds no thread.
//!
//! Readiness and then a plain syscall, rather than `IORING_OP_READ`/`WRITE` on the ring:
//! io_uring honours `O_NONBLOCK` (it returns `EAGAIN` instead of arming its own poll), and
//! the fallback needs non-blocking descriptors, so one non-blocking descriptor serves both
//! drivers and a `Child` may move between runtimes of either kind. It also makes reads
//! cancel-safe: a ring `READ` dropped mid-flight could still take bytes from the pipe into
//! its abandoned buffer; a dropped readiness wait takes nothing.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::ring::ready;

/// One non-blocking end of a pipe.
struct Pipe {
    fd: Arc<OwnedFd>,
}

impl Pipe {
    fn new(fd: OwnedFd) -> io::Result<Pipe> {
        let raw = fd.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe { fd: Arc::new(fd) })
    }

    /// The descriptor, back in blocking mode, for another process's stdio. An abandoned
    /// ring op may still hold the `Arc` (until its completion): then a duplicate.
    fn into_stdio(self) -> io::Result<super::Stdio> {
        let fd = Arc::try_unwrap(self.fd).or_else(|fd| fd.try_clone())?;
        let raw = fd.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(super::Stdio::from(fd))
    }

    /// Reads into `buf[len..capacity]`, appending; `Ok(0)` at end of file or with no spare
    /// capacity.
    async fn read_append(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        let spare = buf.capacity() - len;
        if spare == 0 {
            return (Ok(0), buf);
        }
        loop {
            // SAFETY: reads at most `spare` bytes into the allocation's uninitialised tail,
            // which `buf` owns.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().add(len).cast(), spare) };
            if n >= 0 {
                // SAFETY: the kernel initialised `n <= spare` bytes after `len`.
                unsafe { buf.set_len(len + n as usize) };
                return (Ok(n as usize), buf);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready(&self.fd, libc::POLLIN).await {
                        return (Err(e), buf);
                    }
                }
                io::ErrorKind::Interrupted => {}
                _ => return (Err(e), buf),
            }
        }
    }

    async fn write_from(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: writes from `buf`'s initialised bytes.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => ready(&self.fd, libc::POLLOUT).await?,
                io::ErrorKind::Interrupted => {}
                _ => return Err(e),
            }
        }
    }
}

macro_rules! reader {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The child's ", $what, " (read end of a pipe), from [`Stdio::piped`](super::Stdio::piped).")]
        ///
        /// Reads take and give back an owned buffer, like [`fs::File`](crate::fs::File).
        pub struct $name {
            pipe: Pipe,
        }

        impl $name {
            pub(super) fn from_std(fd: impl Into<OwnedFd>) -> io::Result<$name> {
                Ok($name {
                    pipe: Pipe::new(fd.into())?,
                })
            }

            /// Reads up to `buf.capacity()` bytes into the front of `buf` (its old contents
            /// do not matter) and returns how many, with the buffer (length set to that
            /// number). `Ok(0)` means end of file — every writer closed its end — or a
            /// buffer with no capacity.
            ///
            /// # Errors
            ///
            /// The system's error for `read(2)`.
            ///
            /// # Cancellation
            ///
            /// Dropping the future loses no data: bytes are taken from the pipe only when
            /// the read completes.
            pub async fn read(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
                buf.clear();
                self.pipe.read_append(buf).await
            }

            /// Reads until end of file, appending to `buf` (growing it as needed); returns
            /// the number of bytes appended, with the buffer.
            ///
            /// # Errors
            ///
            /// The system's error for `read(2)`; the bytes read before it are in the
            /// returned buffer.
            pub async fn read_to_end(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
                let start = buf.len();
                loop {
                    if buf.capacity() - buf.len() < 4096 {
                        buf.reserve(8192);
                    }
                    let (r, b) = self.pipe.read_append(buf).await;
                    buf = b;
                    match r {
                        Ok(0) => return (Ok(buf.len() - start), buf),
                        Ok(_) => {}
                        Err(e) => return (Err(e), buf),
                    }
                }
            }
        }

        impl TryFrom<$name> for super::Stdio {
            type Error = io::Error;

            /// Hands the pipe to another child (`a | b`), in blocking mode as a child's
            /// stdio expects.
            fn try_from(pipe: $name) -> io::Result<super::Stdio> {
                pipe.pipe.into_stdio()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.fd.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.fd.as_raw_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.pipe.fd.as_raw_fd())
                    .finish()
            }
        }
    };
}

reader!(ChildStdout, "standard output");
reader!(ChildStderr, "standard error");

/// The child's standard input (write end of a pipe), from
/// [`Stdio::piped`](super::Stdio::piped). Dropping it closes the pipe: the child reads end
/// of file.
///
/// Writes take and give back an owned buffer, like [`fs::File`](crate::fs::File).
pub struct ChildStdin {
    pipe: Pipe,
}

impl ChildStdin {
    pub(super) fn from_std(fd: impl Into<OwnedFd>) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            pipe: Pipe::new(fd.into())?,
        })
    }

    /// Writes some of `buf` (at least one byte unless it is empty) and returns how many,
    /// with the buffer.
    ///
    /// # Errors
    ///
    /// The system's error for `write(2)`: [`BrokenPipe`](io::ErrorKind::BrokenPipe) once
    /// the child closed its stdin (or exited).
    pub async fn write(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let r = self.pipe.write_from(&buf).await;
        (r, buf)
    }

    /// Writes all of `buf` and gives it back.
    ///
    /// # Errors
    ///
    /// As [`write`](ChildStdin::write); [`WriteZero`](io::ErrorKind::WriteZero) if a write
    /// accepts nothing. How much was written before the error is not reported.
    pub async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut done = 0;
        while done < buf.len() {
            match self.pipe.write_from(&buf[done..]).await {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("a child's stdin accepted 0 bytes after {done}"),
                    );
                    return (Err(e), buf);
                }
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }
}

impl TryFrom<ChildStdin> for super::Stdio {
    type Error = io::Error;

    /// Hands the pipe to another child, in blocking mode as a child's stdio expects.
    fn try_from(pipe: ChildStdin) -> io::Result<super::Stdio> {
        pipe.pipe.into_stdio()
    }
}

impl AsFd for ChildStdin {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pipe.fd.as_fd()
    }
}

impl AsRawFd for ChildStdin {
    fn as_raw_fd(&self) -> RawFd {
        self.pipe.fd.as_raw_fd()
    }
}

impl fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStdin")
            .field("fd", &self.pipe.fd.as_raw_fd())
            .finish()
    }
}
