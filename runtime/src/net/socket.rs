//! The descriptor under every socket type: non-blocking, shared through an `Arc` so that
//! a wait (or an abandoned ring op) keeps it open, with the loops that the public types
//! wrap. Stream reads and writes go through the ring ops of `ring.rs` on a thread that owns
//! a ring, and through readiness and a non-blocking syscall elsewhere; the rest always
//! takes the second way.

use std::io;
use std::mem::{self, ManuallyDrop};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::addr::SockAddr;
use super::poll_io::PollState;
use super::ring::{self, Stash};

/// One non-blocking socket. Clones share the descriptor and the stash (the halves of a
/// split stream).
#[derive(Clone)]
pub(crate) struct Socket {
    fd: Arc<OwnedFd>,
    /// Bytes that cancelled ring reads received, returned by the next reads.
    stash: Arc<Stash>,
    /// The state of poll-based reads and writes (`poll_io.rs`).
    poll: Arc<PollState>,
}

pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Whether a syscall that failed with `e` should be retried after readiness (`Some(true)`),
/// at once (`Some(false)`, `EINTR`), or not at all.
fn retry_kind(e: &io::Error) -> Option<bool> {
    match e.kind() {
        io::ErrorKind::WouldBlock => Some(true),
        io::ErrorKind::Interrupted => Some(false),
        _ => None,
    }
}

impl Socket {
    /// A new socket of `domain` and `ty`, non-blocking and close-on-exec.
    pub(crate) fn new(domain: libc::c_int, ty: libc::c_int) -> io::Result<Socket> {
        // SAFETY: socket(2) takes no memory; it returns a new descriptor or -1 (checked).
        let fd =
            cvt(unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Socket::from_nonblocking(unsafe {
            OwnedFd::from_raw_fd(fd)
        }))
    }

    fn from_nonblocking(fd: OwnedFd) -> Socket {
        Socket {
            fd: Arc::new(fd),
            stash: Arc::default(),
            poll: Arc::default(),
        }
    }

    /// Takes over `fd` (from a std socket), switching it to non-blocking mode.
    pub(crate) fn from_owned(fd: OwnedFd) -> io::Result<Socket> {
        set_nonblocking(fd.as_raw_fd(), true)?;
        Ok(Socket::from_nonblocking(fd))
    }

    /// The descriptor, back in blocking mode (as std's types expect). A wait whose future
    /// was dropped may still hold the `Arc` until its ring completion: then a duplicate.
    pub(crate) fn into_owned(self) -> io::Result<OwnedFd> {
        self.poll.release_read(&self.stash);
        if self.stash.has_bytes() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket holds bytes received for a cancelled read: read them first",
            ));
        }
        let fd = Arc::try_unwrap(self.fd).or_else(|fd| fd.try_clone())?;
        set_nonblocking(fd.as_raw_fd(), false)?;
        Ok(fd)
    }

    /// The poll-based state, with the descriptor and stash it works on.
    #[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
    pub(crate) fn poll_parts(&self) -> (&PollState, &Arc<OwnedFd>, &Arc<Stash>) {
        (&self.poll, &self.fd, &self.stash)
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The shared descriptor, for an op that must keep it open (`callback::net`).
    pub(crate) fn shared_fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// The bytes cancelled ring reads received, which a read returns first.
    pub(crate) fn stash(&self) -> &Arc<Stash> {
        &self.stash
    }

    /// Runs `f` on a std type that borrows the descriptor (for the options and addresses
    /// std already knows how to read), without ever closing it.
    pub(crate) fn with_std<T: FromRawFd + AsRawFd, R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: the descriptor is open for as long as `self` is borrowed, and the
        // `ManuallyDrop` keeps the borrowed std value from closing it.
        let v = ManuallyDrop::new(unsafe { T::from_raw_fd(self.raw()) });
        f(&v)
    }

    /// Waits until the socket reports one of `events`: a `POLL_ADD` on the ring of the
    /// thread polling now, or the process's readiness thread (see `process/ring.rs`).
    pub(crate) async fn ready(&self, events: i16) -> io::Result<()> {
        crate::process::ring::ready(&self.fd, events).await
    }

    /// Calls `f` (a syscall returning a count or -1) until it stops asking to wait,
    /// waiting for `events` between tries.
    pub(crate) async fn retry(
        &self,
        events: i16,
        mut f: impl FnMut(RawFd) -> isize,
    ) -> io::Result<usize> {
        loop {
            let n = f(self.raw());
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match retry_kind(&e) {
                Some(true) => self.ready(events).await?,
                Some(false) => {}
                None => return Err(e),
            }
        }
    }

    /// A datagram's `recv(2)` with `flags` into `buf[..capacity]`; the length is set to
    /// the count. Always readiness and a syscall: a stash would merge datagrams.
    pub(crate) async fn recv_dgram(
        &self,
        mut buf: Vec<u8>,
        flags: libc::c_int,
    ) -> (io::Result<usize>, Vec<u8>) {
        buf.clear();
        let cap = buf.capacity();
        if cap == 0 {
            return (Ok(0), buf);
        }
        let r = self
            .retry(libc::POLLIN, |fd| {
                // SAFETY: writes at most `cap` bytes into `buf`'s allocation, which it owns.
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), cap, flags) }
            })
            .await;
        if let Ok(n) = r {
            // SAFETY: the kernel initialised `n <= cap` bytes from the start.
            unsafe { buf.set_len(n) };
        }
        (r, buf)
    }

    /// A stream read into `buf[..capacity]` (`MSG_PEEK` in `flags` to peek); the length
    /// is set to the count.
    pub(crate) async fn recv(
        &self,
        mut buf: Vec<u8>,
        flags: libc::c_int,
    ) -> (io::Result<usize>, Vec<u8>) {
        buf.clear();
        self.recv_append(buf, flags).await
    }

    /// A stream read into `buf[len..capacity]`, appending: the stash first (after any
    /// cancelled ring read still in the kernel has settled), then a ring `RECV` on a
    /// thread with a ring, else readiness and `recv(2)`.
    async fn recv_append(
        &self,
        mut buf: Vec<u8>,
        flags: libc::c_int,
    ) -> (io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        let spare = buf.capacity() - len;
        if spare == 0 {
            return (Ok(0), buf);
        }
        self.poll.release_read(&self.stash);
        std::future::poll_fn(|cx| self.stash.poll_settled(cx)).await;
        if let Some(n) = self.stash.take(&mut buf, flags & libc::MSG_PEEK != 0) {
            return (Ok(n), buf);
        }
        loop {
            let submitted =
                ring::RecvFuture::submit(self.fd.clone(), buf, flags, self.stash.clone());
            let r = match submitted {
                Ok(op) => {
                    let (r, b) = op.await;
                    buf = b;
                    r
                }
                Err(b) => {
                    buf = b;
                    // SAFETY: writes at most `spare` bytes into the allocation's tail after
                    // the `len` initialised bytes, which `buf` owns.
                    let n = unsafe {
                        libc::recv(self.raw(), buf.as_mut_ptr().add(len).cast(), spare, flags)
                    };
                    if n >= 0 {
                        // SAFETY: the kernel initialised `n <= spare` bytes after `len`.
                        unsafe { buf.set_len(len + n as usize) };
                        Ok(n as usize)
                    } else {
                        Err(io::Error::last_os_error())
                    }
                }
            };
            match r {
                Err(e) => match retry_kind(&e) {
                    Some(true) => {
                        if let Err(e) = self.ready(libc::POLLIN).await {
                            return (Err(e), buf);
                        }
                    }
                    Some(false) => {}
                    None => return (Err(e), buf),
                },
                Ok(n) => return (Ok(n), buf),
            }
        }
    }

    /// Fills `buf` to its capacity, or fails with `UnexpectedEof` naming how far it got.
    pub(crate) async fn recv_exact(&self, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        buf.clear();
        let want = buf.capacity();
        while buf.len() < want {
            let have = buf.len();
            let (r, b) = self.recv_append(buf, 0).await;
            buf = b;
            match r {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("end of stream after {have} of {want} bytes"),
                    );
                    return (Err(e), buf);
                }
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Sends `buf[start..]` (never raising `SIGPIPE`): a ring `SEND` on a thread with a
    /// ring, else readiness and `send(2)`.
    pub(crate) async fn send(
        &self,
        mut buf: Vec<u8>,
        start: usize,
    ) -> (io::Result<usize>, Vec<u8>) {
        if start >= buf.len() {
            return (Ok(0), buf);
        }
        loop {
            let submitted = ring::SendFuture::submit(self.fd.clone(), buf, start);
            let r = match submitted {
                Ok(op) => {
                    let (r, b) = op.await;
                    buf = b;
                    r
                }
                Err(b) => {
                    buf = b;
                    let rest = &buf[start..];
                    // SAFETY: reads `rest.len()` initialised bytes from `buf`.
                    let n = unsafe {
                        libc::send(
                            self.raw(),
                            rest.as_ptr().cast(),
                            rest.len(),
                            libc::MSG_NOSIGNAL,
                        )
                    };
                    if n >= 0 {
                        Ok(n as usize)
                    } else {
                        Err(io::Error::last_os_error())
                    }
                }
            };
            match r {
                Err(e) => match retry_kind(&e) {
                    Some(true) => {
                        if let Err(e) = self.ready(libc::POLLOUT).await {
                            return (Err(e), buf);
                        }
                    }
                    Some(false) => {}
                    None => return (Err(e), buf),
                },
                Ok(n) => return (Ok(n), buf),
            }
        }
    }

    /// Sends all of `buf`.
    pub(crate) async fn send_all(&self, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut done = 0;
        while done < buf.len() {
            let (r, b) = self.send(buf, done).await;
            buf = b;
            match r {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("the socket accepted 0 bytes after {done} of {}", buf.len()),
                    );
                    return (Err(e), buf);
                }
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// `sendto(2)` of `buf` to `addr`.
    pub(crate) async fn send_to(&self, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
        self.retry(libc::POLLOUT, |fd| {
            // SAFETY: reads `buf.len()` bytes from `buf` and `addr.len` bytes of `addr`.
            unsafe {
                libc::sendto(
                    fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                    addr.as_ptr(),
                    addr.len,
                )
            }
        })
        .await
    }

    /// `recvfrom(2)` into `buf[..capacity]`, with the sender's address.
    pub(crate) async fn recv_from(
        &self,
        mut buf: Vec<u8>,
    ) -> (io::Result<(usize, SockAddr)>, Vec<u8>) {
        buf.clear();
        let cap = buf.capacity();
        let mut from = SockAddr::empty();
        let r = self
            .retry(libc::POLLIN, |fd| {
                from.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                // SAFETY: writes at most `cap` bytes into `buf`'s allocation and at most
                // `from.len` bytes into `from`'s storage.
                unsafe {
                    libc::recvfrom(
                        fd,
                        buf.as_mut_ptr().cast(),
                        cap,
                        0,
                        from.as_mut_ptr(),
                        &mut from.len,
                    )
                }
            })
            .await;
        match r {
            Ok(n) => {
                // SAFETY: the kernel initialised `n <= cap` bytes from the start.
                unsafe { buf.set_len(n) };
                (Ok((n, from)), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Connects to `addr`, waiting for a pending connect to finish.
    pub(crate) async fn connect(&self, addr: &SockAddr) -> io::Result<()> {
        loop {
            // SAFETY: reads `addr.len` bytes of `addr`'s storage.
            let r = unsafe { libc::connect(self.raw(), addr.as_ptr(), addr.len) };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // In progress (TCP; or interrupted, which goes on asynchronously).
                Some(libc::EINPROGRESS) | Some(libc::EINTR) => {
                    self.ready(libc::POLLOUT).await?;
                    let err: libc::c_int = self.getsockopt(libc::SOL_SOCKET, libc::SO_ERROR)?;
                    return if err == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(err))
                    };
                }
                // A Unix listener's backlog is full: try again once it has room.
                Some(libc::EAGAIN) => self.ready(libc::POLLOUT).await?,
                _ => return Err(e),
            }
        }
    }

    /// Accepts a connection: the new socket (non-blocking) and the peer's address.
    pub(crate) async fn accept(&self) -> io::Result<(Socket, SockAddr)> {
        let mut peer = SockAddr::empty();
        let fd = self
            .retry(libc::POLLIN, |fd| {
                peer.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                // SAFETY: the kernel writes at most `peer.len` bytes into `peer`'s storage.
                let r = unsafe {
                    libc::accept4(
                        fd,
                        peer.as_mut_ptr(),
                        &mut peer.len,
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    )
                };
                r as isize
            })
            .await?;
        // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok((Socket::from_nonblocking(fd), peer))
    }

    pub(crate) fn bind(&self, addr: &SockAddr) -> io::Result<()> {
        // SAFETY: reads `addr.len` bytes of `addr`'s storage.
        cvt(unsafe { libc::bind(self.raw(), addr.as_ptr(), addr.len) }).map(drop)
    }

    pub(crate) fn listen(&self, backlog: u32) -> io::Result<()> {
        let backlog = backlog.min(libc::c_int::MAX as u32) as libc::c_int;
        // SAFETY: listen(2) takes no memory.
        cvt(unsafe { libc::listen(self.raw(), backlog) }).map(drop)
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: shutdown(2) takes no memory.
        cvt(unsafe { libc::shutdown(self.raw(), how) }).map(drop)
    }

    pub(crate) fn setsockopt<T: Copy>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: T,
    ) -> io::Result<()> {
        // SAFETY: passes a pointer to a live `T` and its size.
        cvt(unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                (&value as *const T).cast(),
                mem::size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// Reads an option whose value is a `T` (`c_int` or `linger`).
    pub(crate) fn getsockopt<T: Copy>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
    ) -> io::Result<T> {
        let mut value = mem::MaybeUninit::<T>::zeroed();
        let mut len = mem::size_of::<T>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `value`.
        cvt(unsafe {
            libc::getsockopt(self.raw(), level, name, value.as_mut_ptr().cast(), &mut len)
        })?;
        // SAFETY: zero-initialised, then (partly) written by the kernel; `T` is a plain
        // C value (the callers use `c_int` and `linger`) for which any bytes are valid.
        Ok(unsafe { value.assume_init() })
    }
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL take no memory.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) }).map(drop)
}
