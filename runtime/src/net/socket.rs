//! The descriptor under every socket type: non-blocking, shared through an `Arc` so that
//! a wait (or an abandoned ring op) keeps it open, with the loops that the public types
//! wrap. Stream reads and writes (plain and vectored), accept and connect go through the
//! reactor's socket ops (with the stash hooks of `ring.rs`) on a thread that owns a ring,
//! and through readiness and a non-blocking syscall elsewhere; datagrams always take the
//! second way. Readiness on the fallback is the socket's persistent registration with the
//! epoll of the worker that first waited on it (`weft_reactor::epoll::Registration`):
//! each loop reads its event count before the syscall and, on `EAGAIN`, waits for
//! readiness (`wait`), clearing only the readiness that syscall saw.

use std::io;
use std::mem::{self, ManuallyDrop};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};

use weft_reactor::buf::{BufResult, IoBuf, IoBufMut};
use weft_reactor::epoll::{self, Registration, Seen};
use weft_reactor::op::Op;
use weft_reactor::op::accept::Accept;
use weft_reactor::op::connect::Connect;
use weft_reactor::op::recvmsg::RecvMsg;
use weft_reactor::op::send::Send;
use weft_reactor::op::sendmsg::SendMsg;

use crate::process::ring::Budgeted as Coop;

use super::addr::SockAddr;
use super::poll_io::PollState;
use super::ring::{Budgeted, Stash, StashHook, StashRecv, Stashed};

/// One non-blocking socket. Clones share the descriptor and the stash (the halves of a
/// split stream).
#[derive(Clone)]
pub(crate) struct Socket {
    /// The persistent readiness registration on the epoll of the fallback worker that
    /// first waited on the socket (`None` inside: the kernel refused it). Declared before
    /// `fd`, so that the last clone's drop removes it from the epoll before the
    /// descriptor can close.
    reg: Arc<OnceLock<Option<Registration>>>,
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
    // The raw code first: every socket loop's `EAGAIN` comes here, and decoding an OS
    // error's kind is a table walk.
    match e.raw_os_error() {
        Some(libc::EAGAIN) => return Some(true),
        Some(libc::EINTR) => return Some(false),
        Some(_) => return None,
        None => {}
    }
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
            reg: Arc::default(),
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
        self.stash.cancel_accept_multi();
        if self.stash.holds_data() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket holds bytes (or connections) that a cancelled read (or accept) \
                 received: read (or accept) them first",
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

    /// The readiness events the socket's registration has seen, read before a syscall
    /// whose `WouldBlock` leads to [`wait`](Socket::wait); `None` while unregistered.
    fn seen(&self) -> Option<Seen> {
        self.reg.get()?.as_ref().map(Registration::seen)
    }

    /// Waits until the socket reports one of `events` after a syscall begun after `seen`
    /// failed with `WouldBlock`. Through the socket's registration while its epoll is
    /// alive, from any thread (made at the first wait on a fallback worker: `register_fd`
    /// on that worker's epoll); else a `POLL_ADD` on the ring of the thread polling now
    /// or the process's readiness thread (see `process/ring.rs`).
    async fn wait(&self, events: i16, seen: Option<Seen>) -> io::Result<()> {
        let reg = match self.reg.get() {
            Some(reg) => reg.as_ref(),
            None => match epoll::current() {
                Some(ep) => self
                    .reg
                    .get_or_init(|| ep.register_fd(&*self.fd).ok())
                    .as_ref(),
                None => None,
            },
        };
        match reg {
            Some(reg) if reg.is_alive() => Coop(reg.ready(events, seen)).await,
            _ => crate::process::ring::ready(&self.fd, events).await,
        }
    }

    /// The tail of the vectored loops and of `retry`, after a try (begun after `seen`)
    /// failed with `e`: `Ok` to try again, at once (`EINTR`) or once the socket reports
    /// one of `events` (`WouldBlock`); `Err` to give up with `e` (or the wait's error).
    /// The plain read and write loops, every fallback read's and write's path, match on
    /// `retry_kind` in place instead, without this future's layer around `wait`.
    async fn wait_retry(&self, e: io::Error, events: i16, seen: Option<Seen>) -> io::Result<()> {
        match retry_kind(&e) {
            Some(true) => self.wait(events, seen).await,
            Some(false) => Ok(()),
            None => Err(e),
        }
    }

    /// Calls `f` (a syscall returning a count or -1) until it stops asking to wait,
    /// waiting for `events` between tries.
    pub(crate) async fn retry(
        &self,
        events: i16,
        mut f: impl FnMut(RawFd) -> isize,
    ) -> io::Result<usize> {
        loop {
            let seen = self.seen();
            let n = f(self.raw());
            if n >= 0 {
                return Ok(n as usize);
            }
            self.wait_retry(io::Error::last_os_error(), events, seen)
                .await?;
        }
    }

    /// A datagram's `recv(2)` with `flags` into `buf` from its start to its
    /// `bytes_total()`; the initialised length is set to the count. Always readiness and a
    /// syscall: a stash would merge datagrams.
    pub(crate) async fn recv_dgram<B: IoBufMut>(
        &self,
        mut buf: B,
        flags: libc::c_int,
    ) -> BufResult<usize, B> {
        // SAFETY: no byte is declared initialised.
        unsafe { buf.set_init(0) };
        let cap = buf.bytes_total();
        let r = self
            .retry(libc::POLLIN, |fd| {
                // SAFETY: writes at most `cap` bytes into `buf`'s storage, which it owns.
                unsafe { libc::recv(fd, buf.stable_mut_ptr().cast(), cap, flags) }
            })
            .await;
        if let Ok(n) = r {
            // SAFETY: the kernel initialised `n <= cap` bytes from the start.
            unsafe { buf.set_init(n) };
        }
        (r, buf)
    }

    /// A stream read into `buf` from its start to its `bytes_total()` (`MSG_PEEK` in
    /// `flags` to peek); the initialised length is set to the count.
    pub(crate) async fn recv<B: IoBufMut>(
        &self,
        mut buf: B,
        flags: libc::c_int,
    ) -> BufResult<usize, B> {
        // SAFETY: no byte is declared initialised.
        unsafe { buf.set_init(0) };
        self.recv_at(buf, 0, flags).await
    }

    /// A stream read into `buf[start..bytes_total]` (`start <= bytes_init`), keeping the
    /// bytes before: the stash first (after any cancelled ring read still in the kernel
    /// has settled), then a ring `RECV` on a thread with a ring, else readiness and
    /// `recv(2)`.
    async fn recv_at<B: IoBufMut>(
        &self,
        mut buf: B,
        start: usize,
        flags: libc::c_int,
    ) -> BufResult<usize, B> {
        let spare = buf.bytes_total() - start;
        if spare == 0 {
            return (Ok(0), buf);
        }
        self.poll.release_read(&self.stash);
        let peek = flags & libc::MSG_PEEK != 0;
        let stashed =
            std::future::poll_fn(|cx| self.stash.poll_take(cx, &mut buf, start, peek)).await;
        if let Some(n) = stashed {
            return (Ok(n), buf);
        }
        loop {
            let seen = self.seen();
            let build = |buf| StashRecv::new(self.fd.clone(), buf, start, flags, &self.stash);
            let r = match Stashed::submit_with(buf, build, &self.stash) {
                Ok(op) => {
                    let ((r, b), again) = op.await;
                    buf = b;
                    if again {
                        continue;
                    }
                    r
                }
                Err(b) => {
                    buf = b;
                    // SAFETY: writes at most `spare` bytes into the storage after the
                    // first `start` bytes, within `bytes_total`; `buf` owns it.
                    let n = unsafe {
                        libc::recv(
                            self.raw(),
                            buf.stable_mut_ptr().add(start).cast(),
                            spare,
                            flags,
                        )
                    };
                    if n >= 0 {
                        // SAFETY: the kernel initialised `n <= spare` bytes after `start`.
                        unsafe { buf.set_init(start + n as usize) };
                        Ok(n as usize)
                    } else {
                        Err(io::Error::last_os_error())
                    }
                }
            };
            // As `wait_retry`, without its future: this is every read's loop.
            match r.map_err(|e| (retry_kind(&e), e)) {
                Ok(n) => return (Ok(n), buf),
                Err((Some(true), _)) => {
                    if let Err(e) = self.wait(libc::POLLIN, seen).await {
                        return (Err(e), buf);
                    }
                }
                Err((Some(false), _)) => {}
                Err((None, e)) => return (Err(e), buf),
            }
        }
    }

    /// Fills `buf` to its `bytes_total()`, or fails with `UnexpectedEof` naming how far
    /// it got.
    pub(crate) async fn recv_exact<B: IoBufMut>(&self, mut buf: B) -> BufResult<(), B> {
        // SAFETY: no byte is declared initialised.
        unsafe { buf.set_init(0) };
        let want = buf.bytes_total();
        let mut have = 0;
        while have < want {
            let (r, b) = self.recv_at(buf, have, 0).await;
            buf = b;
            match r {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("end of stream after {have} of {want} bytes"),
                    );
                    return (Err(e), buf);
                }
                Ok(n) => have += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// A vectored stream read into `bufs` in order, each from its start to its
    /// `bytes_total()`: the stash first, then a ring `RECVMSG`, else readiness and
    /// `recvmsg(2)`. Each buffer's initialised length is set to what it got.
    pub(crate) async fn recv_vectored<B: IoBufMut>(
        &self,
        mut bufs: Vec<B>,
    ) -> BufResult<usize, Vec<B>> {
        for b in &mut bufs {
            // SAFETY: no byte is declared initialised.
            unsafe { b.set_init(0) };
        }
        if bufs.iter().all(|b| b.bytes_total() == 0) {
            return (Ok(0), bufs);
        }
        self.poll.release_read(&self.stash);
        std::future::poll_fn(|cx| self.stash.poll_settled(cx)).await;
        let mut from_stash = 0;
        for b in &mut bufs {
            match self.stash.take(b, 0, false) {
                Some(n) => {
                    from_stash += n;
                    if n < b.bytes_total() {
                        break;
                    }
                }
                None => break,
            }
        }
        if from_stash > 0 {
            return (Ok(from_stash), bufs);
        }
        loop {
            let seen = self.seen();
            let build =
                |bufs| RecvMsg::new(self.fd.clone(), bufs, 0, StashHook(self.stash.clone()));
            let r = match Stashed::submit_with(bufs, build, &self.stash) {
                Ok(op) => {
                    let (r, b) = op.await;
                    bufs = b;
                    r
                }
                Err(b) => {
                    bufs = b;
                    let mut iov: Vec<libc::iovec> = bufs
                        .iter_mut()
                        .map(|b| libc::iovec {
                            iov_base: b.stable_mut_ptr().cast(),
                            iov_len: b.bytes_total(),
                        })
                        .collect();
                    // SAFETY: all-zero bytes are a valid `msghdr`.
                    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
                    msg.msg_iov = iov.as_mut_ptr();
                    msg.msg_iovlen = iov.len() as _;
                    // SAFETY: the iovecs point into the buffers' storage, each within its
                    // `bytes_total`, and live (with `msg`) across the call.
                    let n = unsafe { libc::recvmsg(self.raw(), &mut msg, 0) };
                    if n >= 0 {
                        let mut left = n as usize;
                        for b in &mut bufs {
                            let got = left.min(b.bytes_total());
                            // SAFETY: the kernel filled the iovecs in order.
                            unsafe { b.set_init(got) };
                            left -= got;
                        }
                        Ok(n as usize)
                    } else {
                        Err(io::Error::last_os_error())
                    }
                }
            };
            match r {
                Ok(n) => return (Ok(n), bufs),
                Err(e) => {
                    if let Err(e) = self.wait_retry(e, libc::POLLIN, seen).await {
                        return (Err(e), bufs);
                    }
                }
            }
        }
    }

    /// Sends `buf[start..bytes_init]` (never raising `SIGPIPE`): a ring `SEND` on a thread
    /// with a ring, else readiness and `send(2)`.
    pub(crate) async fn send<B: IoBuf>(&self, buf: B, start: usize) -> BufResult<usize, B> {
        if start >= buf.bytes_init() {
            return (Ok(0), buf);
        }
        self.send_from(buf, start).await
    }

    /// Sends `buf`'s initialised bytes as one datagram (an empty one too).
    pub(crate) async fn send_dgram<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.send_from(buf, 0).await
    }

    async fn send_from<B: IoBuf>(&self, mut buf: B, start: usize) -> BufResult<usize, B> {
        loop {
            let seen = self.seen();
            let build = |buf| Send::new(self.fd.clone(), buf, start, libc::MSG_NOSIGNAL);
            let r = match Op::submit_with(buf, build) {
                Ok(op) => {
                    let (r, b) = Budgeted(op).await;
                    buf = b;
                    r
                }
                Err(b) => {
                    buf = b;
                    // SAFETY: reads the `bytes_init - start` initialised bytes after
                    // `start` of `buf`'s storage.
                    let n = unsafe {
                        libc::send(
                            self.raw(),
                            buf.stable_ptr().add(start).cast(),
                            buf.bytes_init() - start,
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
            // As `wait_retry`, without its future: this is every write's loop.
            match r.map_err(|e| (retry_kind(&e), e)) {
                Ok(n) => return (Ok(n), buf),
                Err((Some(true), _)) => {
                    if let Err(e) = self.wait(libc::POLLOUT, seen).await {
                        return (Err(e), buf);
                    }
                }
                Err((Some(false), _)) => {}
                Err((None, e)) => return (Err(e), buf),
            }
        }
    }

    /// Sends all of `buf`'s initialised bytes.
    pub(crate) async fn send_all<B: IoBuf>(&self, mut buf: B) -> BufResult<(), B> {
        let mut done = 0;
        let total = buf.bytes_init();
        while done < total {
            let (r, b) = self.send(buf, done).await;
            buf = b;
            match r {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("the socket accepted 0 bytes after {done} of {total}"),
                    );
                    return (Err(e), buf);
                }
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// A vectored send of `bufs`' initialised bytes, in order (never raising `SIGPIPE`):
    /// a ring `SENDMSG`, else readiness and `sendmsg(2)`. May send fewer than all.
    pub(crate) async fn send_vectored<B: IoBuf>(
        &self,
        mut bufs: Vec<B>,
    ) -> BufResult<usize, Vec<B>> {
        if bufs.iter().all(|b| b.bytes_init() == 0) {
            return (Ok(0), bufs);
        }
        loop {
            let seen = self.seen();
            let build = |bufs| SendMsg::new(self.fd.clone(), bufs, libc::MSG_NOSIGNAL);
            let r = match Op::submit_with(bufs, build) {
                Ok(op) => {
                    let (r, b) = Budgeted(op).await;
                    bufs = b;
                    r
                }
                Err(b) => {
                    bufs = b;
                    let mut iov: Vec<libc::iovec> = bufs
                        .iter()
                        .map(|b| libc::iovec {
                            iov_base: b.stable_ptr().cast_mut().cast(),
                            iov_len: b.bytes_init(),
                        })
                        .collect();
                    // SAFETY: all-zero bytes are a valid `msghdr`.
                    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
                    msg.msg_iov = iov.as_mut_ptr();
                    msg.msg_iovlen = iov.len() as _;
                    // SAFETY: the iovecs point at the buffers' initialised bytes, which
                    // the kernel only reads, and live (with `msg`) across the call.
                    let n = unsafe { libc::sendmsg(self.raw(), &msg, libc::MSG_NOSIGNAL) };
                    if n >= 0 {
                        Ok(n as usize)
                    } else {
                        Err(io::Error::last_os_error())
                    }
                }
            };
            match r {
                Ok(n) => return (Ok(n), bufs),
                Err(e) => {
                    if let Err(e) = self.wait_retry(e, libc::POLLOUT, seen).await {
                        return (Err(e), bufs);
                    }
                }
            }
        }
    }

    /// `sendto(2)` of `buf`'s initialised bytes to `addr`.
    pub(crate) async fn send_to<B: IoBuf>(&self, buf: &B, addr: &SockAddr) -> io::Result<usize> {
        self.retry(libc::POLLOUT, |fd| {
            // SAFETY: reads `bytes_init` initialised bytes of `buf` and `addr.len` bytes
            // of `addr`.
            unsafe {
                libc::sendto(
                    fd,
                    buf.stable_ptr().cast(),
                    buf.bytes_init(),
                    libc::MSG_NOSIGNAL,
                    addr.as_ptr(),
                    addr.len,
                )
            }
        })
        .await
    }

    /// `recvfrom(2)` into `buf` from its start to its `bytes_total()`, with the sender's
    /// address; the initialised length is set to the count.
    pub(crate) async fn recv_from<B: IoBufMut>(
        &self,
        mut buf: B,
    ) -> BufResult<(usize, SockAddr), B> {
        // SAFETY: no byte is declared initialised.
        unsafe { buf.set_init(0) };
        let cap = buf.bytes_total();
        let mut from = SockAddr::empty();
        let r = self
            .retry(libc::POLLIN, |fd| {
                from.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                // SAFETY: writes at most `cap` bytes into `buf`'s storage and at most
                // `from.len` bytes into `from`'s storage.
                unsafe {
                    libc::recvfrom(
                        fd,
                        buf.stable_mut_ptr().cast(),
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
                unsafe { buf.set_init(n) };
                (Ok((n, from)), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Connects to `addr`: a ring `CONNECT` on a thread with a ring (the kernel waits for
    /// the handshake), else `connect(2)` and a wait for a pending connect to finish.
    pub(crate) async fn connect(&self, addr: &SockAddr) -> io::Result<()> {
        if let Ok(op) = Op::submit(Connect::new(self.fd.clone(), addr.raw())) {
            match Budgeted(op).await {
                Ok(()) => return Ok(()),
                // Still in progress, or a full Unix backlog: finish through readiness.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EALREADY)) => {
                    return self.finish_connect(None).await;
                }
                Err(e) if e.raw_os_error() != Some(libc::EAGAIN) => return Err(e),
                Err(_) => {}
            }
        }
        loop {
            let seen = self.seen();
            // SAFETY: reads `addr.len` bytes of `addr`'s storage.
            let r = unsafe { libc::connect(self.raw(), addr.as_ptr(), addr.len) };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // In progress (TCP; or interrupted, which goes on asynchronously).
                Some(libc::EINPROGRESS) | Some(libc::EINTR) => {
                    return self.finish_connect(seen).await;
                }
                // A Unix listener's backlog is full: try again once it has room.
                Some(libc::EAGAIN) => self.wait(libc::POLLOUT, seen).await?,
                _ => return Err(e),
            }
        }
    }

    /// Waits for a pending connect (`EINPROGRESS`, from a `connect` begun after `seen`)
    /// and returns its result (`SO_ERROR`).
    async fn finish_connect(&self, seen: Option<Seen>) -> io::Result<()> {
        self.wait(libc::POLLOUT, seen).await?;
        let err: libc::c_int = self.getsockopt(libc::SOL_SOCKET, libc::SO_ERROR)?;
        if err == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(err))
        }
    }

    /// Accepts a connection: the new socket (non-blocking) and the peer's address. First
    /// a connection that an abandoned ring accept took (once those have settled), then the
    /// listener's multishot `ACCEPT` queue (`ring.rs`, with `WEFT_ACCEPT=multishot`) on a
    /// thread with a ring and a kernel that has it, else a one-shot ring `ACCEPT`, else
    /// readiness and `accept4(2)`.
    pub(crate) async fn accept(&self) -> io::Result<(Socket, SockAddr)> {
        const FLAGS: libc::c_int = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        std::future::poll_fn(|cx| self.stash.poll_settled(cx)).await;
        if let Some((fd, peer)) = self.stash.pop_accepted() {
            return Ok((Socket::from_nonblocking(fd), SockAddr::from_raw(peer)));
        }
        if crate::net::ring::accept_multishot() {
            let multi =
                std::future::poll_fn(|cx| self.stash.poll_accept_multi(cx, &self.fd, FLAGS));
            match multi.await {
                Some(Ok((fd, peer))) => {
                    return Ok((Socket::from_nonblocking(fd), SockAddr::from_raw(peer)));
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        let op = Accept::with_hook(self.fd.clone(), FLAGS, StashHook(self.stash.clone()));
        if let Ok(op) = Stashed::submit(op, &self.stash) {
            match op.await {
                Ok((fd, peer)) => {
                    return Ok((Socket::from_nonblocking(fd), SockAddr::from_raw(peer)));
                }
                Err(e) if retry_kind(&e).is_none() => return Err(e),
                Err(_) => {}
            }
        }
        let mut peer = SockAddr::empty();
        let fd = self
            .retry(libc::POLLIN, |fd| {
                peer.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                // SAFETY: the kernel writes at most `peer.len` bytes into `peer`'s storage.
                let r = unsafe { libc::accept4(fd, peer.as_mut_ptr(), &mut peer.len, FLAGS) };
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
