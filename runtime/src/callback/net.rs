//! TCP with callbacks: `net.connect`, `socket.write` and `socket.on('data')`, error-first.
//!
//! [`connect`], [`read`], [`read_exact`] and [`write_all`] are the callback twins of
//! [`TcpStream::connect`], [`TcpStream::read`], [`TcpStream::read_exact`] and
//! [`TcpStream::write_all`], on the same [`TcpStream`] (a stream may be used by both APIs,
//! one operation at a time):
//!
//! - **On a worker whose runtime uses io_uring**, a read is an `IORING_OP_READ` and a write
//!   an `IORING_OP_SEND` (`MSG_NOSIGNAL`) submitted to that worker's ring, and the reactor
//!   calls the callback when it reaps the completion: one boxed closure per operation, no
//!   task, no future, no queue pass. A connect (and a read or write the kernel answers with
//!   `EAGAIN`) waits with a one-shot `POLL_ADD` on the ring, whose completion is a callback
//!   too.
//! - **Elsewhere** (the fallback driver, or a thread outside the workers) the syscall runs
//!   at once on the non-blocking socket; when it would block, the process's readiness
//!   thread reports the socket ready and the syscall is retried from a callback deferred
//!   onto the runtime's queues. A result known at once is delivered the same way, never
//!   inline.
//!
//! A read returns the bytes that cancelled future reads of the stream left behind first
//! (see [`weft::net`](crate::net#cancellation-and-no-received-byte-is-lost)), so the two
//! APIs never reorder a stream's bytes. A callback operation cannot be cancelled: it runs
//! to its completion, and its buffer and a clone of the descriptor live until then.
//!
//! A panic in a callback is caught (the panic hook reports it) so that it cannot unwind
//! through the reactor.
//!
//! # Examples
//!
//! An echo round trip, callbacks only on the client side:
//!
//! ```
//! use weft_runtime::callback::net;
//! use weft_runtime::net::TcpListener;
//!
//! let rt = weft_runtime::Runtime::new()?;
//! let (tx, rx) = std::sync::mpsc::channel();
//! rt.block_on(async move {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     weft_runtime::spawn(async move {
//!         let (s, _) = listener.accept().await.unwrap();
//!         let (r, buf) = s.read_exact(Vec::with_capacity(5)).await;
//!         r.unwrap();
//!         let (r, _) = s.write_all(buf).await;
//!         r.unwrap();
//!     });
//!     net::connect(addr, move |s: std::io::Result<weft_runtime::net::TcpStream>| {
//!         let s = std::sync::Arc::new(s.unwrap());
//!         let s2 = s.clone();
//!         net::write_all(&s, b"hello".to_vec(), move |(r, _)| {
//!             r.unwrap();
//!             net::read_exact(&s2, Vec::with_capacity(5), move |(r, buf)| {
//!                 r.unwrap();
//!                 tx.send(buf).unwrap();
//!             });
//!         });
//!     });
//!     Ok::<(), std::io::Error>(())
//! })?;
//! assert_eq!(rx.recv().unwrap(), b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;
use weft_reactor::op::poll_add::PollAdd;
use weft_reactor::op::read::Read;
use weft_reactor::op::{can_submit, submit_with_callback};

use super::Callback;
use crate::buf::BufResult;
use crate::net::{SockAddr, Socket, Stash, TcpStream};
use crate::scheduler::Handle;

/// Connects to `addr` and calls `cb` with the stream: `net.connect(port, host, cb)`.
///
/// The socket is non-blocking from the start; the connect completes through readiness
/// (a ring `POLL_ADD`, or the readiness thread on the fallback driver).
///
/// # Errors
///
/// The system's error, naming the address:
/// [`ConnectionRefused`](io::ErrorKind::ConnectionRefused) when nothing listens there.
///
/// # Panics
///
/// Outside a runtime.
#[track_caller]
pub fn connect(addr: SocketAddr, cb: impl Callback<TcpStream, io::Error>) {
    let handle = Handle::current();
    let named = move |e: io::Error| io::Error::new(e.kind(), format!("connect to {addr}: {e}"));
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let sock = match Socket::new(domain, libc::SOCK_STREAM) {
        Ok(s) => s,
        Err(e) => return handle.defer(move || deliver(cb, Err(named(e)))),
    };
    let sa = SockAddr::from_inet(&addr);
    // SAFETY: reads `sa.len` bytes of `sa`'s storage, which lives across the call.
    let r = unsafe { libc::connect(sock.raw(), sa.as_ptr(), sa.len) };
    let e = io::Error::last_os_error();
    if r == 0 {
        return handle.defer(move || deliver(cb, Ok(TcpStream::from_socket(sock))));
    }
    if !matches!(
        e.raw_os_error(),
        Some(libc::EINPROGRESS) | Some(libc::EINTR)
    ) {
        return handle.defer(move || deliver(cb, Err(named(e))));
    }
    let fd = sock.shared_fd().clone();
    when_ready(&handle, &fd, libc::POLLOUT, move |r| {
        let r = r.and_then(|()| {
            let err: libc::c_int = sock.getsockopt(libc::SOL_SOCKET, libc::SO_ERROR)?;
            if err == 0 {
                Ok(TcpStream::from_socket(sock))
            } else {
                Err(io::Error::from_raw_os_error(err))
            }
        });
        deliver(cb, r.map_err(named))
    });
}

/// Reads up to `buf.capacity()` bytes into the front of `buf` (its old contents do not
/// matter) and calls `cb` with the count and the buffer, its length set to the count: the
/// callback form of [`TcpStream::read`]. `Ok(0)` means the peer shut down its writing side
/// (or `buf` has no capacity).
///
/// # Errors
///
/// As [`TcpStream::read`].
///
/// # Panics
///
/// Outside a runtime.
#[track_caller]
pub fn read<F>(stream: &TcpStream, mut buf: Vec<u8>, cb: F)
where
    F: FnOnce(BufResult<usize, Vec<u8>>) + Send + 'static,
{
    buf.clear();
    let io = SockIo::of(stream);
    io.recv_append(buf, guarded(cb));
}

/// Reads exactly `buf.capacity()` bytes into `buf` and calls `cb` with the buffer: the
/// callback form of [`TcpStream::read_exact`].
///
/// # Errors
///
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) if the stream ends first (the bytes
/// read are in the buffer), or as [`read`].
///
/// # Panics
///
/// Outside a runtime.
#[track_caller]
pub fn read_exact<F>(stream: &TcpStream, mut buf: Vec<u8>, cb: F)
where
    F: FnOnce(BufResult<(), Vec<u8>>) + Send + 'static,
{
    buf.clear();
    SockIo::of(stream).recv_exact(buf, guarded(cb));
}

/// Writes all of `buf` and calls `cb` with the buffer: the callback form of
/// [`TcpStream::write_all`]. Never raises `SIGPIPE`.
///
/// # Errors
///
/// As [`TcpStream::write_all`]: [`BrokenPipe`](io::ErrorKind::BrokenPipe) once the
/// connection is shut down for writing, `ConnectionReset` after a reset.
///
/// # Panics
///
/// Outside a runtime.
#[track_caller]
pub fn write_all<F>(stream: &TcpStream, buf: Vec<u8>, cb: F)
where
    F: FnOnce(BufResult<(), Vec<u8>>) + Send + 'static,
{
    SockIo::of(stream).send_all(buf, 0, guarded(cb));
}

/// Calls an error-first callback, catching its panic.
fn deliver<T, E>(cb: impl Callback<T, E>, r: Result<T, E>) {
    let _ = panic::catch_unwind(AssertUnwindSafe(move || cb.call(r)));
}

/// `cb`, with its panic caught.
fn guarded<T, F: FnOnce(T) + Send + 'static>(cb: F) -> impl FnOnce(T) + Send + 'static {
    move |out| {
        let _ = panic::catch_unwind(AssertUnwindSafe(move || cb(out)));
    }
}

/// A descriptor kept open by the op that names it (shared with the stream).
struct SharedFd(Arc<OwnedFd>);

impl AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What one stream operation carries from step to step: the descriptor, the stream's
/// stash, and the runtime that deferred steps run on.
struct SockIo {
    fd: Arc<OwnedFd>,
    stash: Arc<Stash>,
    handle: Handle,
}

/// Whether a failed syscall should wait for readiness (`Some(true)`), be retried at once
/// (`Some(false)`, `EINTR`), or fail.
fn retry_kind(e: &io::Error) -> Option<bool> {
    match e.kind() {
        io::ErrorKind::WouldBlock => Some(true),
        io::ErrorKind::Interrupted => Some(false),
        _ => None,
    }
}

impl SockIo {
    #[track_caller]
    fn of(stream: &TcpStream) -> SockIo {
        let sock = stream.socket();
        SockIo {
            fd: sock.shared_fd().clone(),
            stash: sock.stash().clone(),
            handle: Handle::current(),
        }
    }

    /// Reads into `buf[len..capacity]`: the stash first (once no cancelled ring read of
    /// the stream is still in the kernel), then a ring `READ`, else `recv(2)`.
    fn recv_append<F>(self, mut buf: Vec<u8>, cb: F)
    where
        F: FnOnce(BufResult<usize, Vec<u8>>) + Send + 'static,
    {
        if buf.capacity() == buf.len() {
            return self.handle.clone().defer(move || cb((Ok(0), buf)));
        }
        let stash = self.stash.clone();
        let handle = self.handle.clone();
        let settled = move |cx: &mut Context<'_>| stash.poll_settled(cx).map(Ok);
        if settled(&mut Context::from_waker(Waker::noop())).is_pending() {
            return wait(&handle, Box::new(settled), move |_| {
                self.recv_append(buf, cb)
            });
        }
        let start = buf.len();
        if let Some(n) = self.stash.take(&mut buf, start, false) {
            return self.handle.clone().defer(move || cb((Ok(n), buf)));
        }
        // The kernel ignores the offset of a socket read.
        let op = Read::new(SharedFd(self.fd.clone()), buf, start, u64::MAX);
        if can_submit() {
            let again = SockIo {
                fd: self.fd.clone(),
                stash: self.stash.clone(),
                handle: self.handle.clone(),
            };
            let done = move |(r, buf): BufResult<usize, Vec<u8>>| match r {
                Err(e) if retry_kind(&e).is_some() => again.after_would_block(e, buf, cb),
                r => cb((r, buf)),
            };
            if let Err((op, done)) = submit_with_callback(op, done) {
                let (_, buf) = op.into_parts();
                done((Err(io::Error::from(io::ErrorKind::Interrupted)), buf));
            }
            return;
        }
        let (_, buf) = op.into_parts();
        self.recv_now(buf, cb);
    }

    /// After a ring read answered `EAGAIN` or `EINTR`: readiness, then the read again.
    fn after_would_block<F>(self, e: io::Error, buf: Vec<u8>, cb: F)
    where
        F: FnOnce(BufResult<usize, Vec<u8>>) + Send + 'static,
    {
        if retry_kind(&e) == Some(false) {
            return self.recv_append(buf, cb);
        }
        let (handle, fd) = (self.handle.clone(), self.fd.clone());
        when_ready(&handle, &fd, libc::POLLIN, move |r| match r {
            Ok(()) => self.recv_append(buf, cb),
            Err(e) => cb((Err(e), buf)),
        });
    }

    /// `recv(2)` at once; on `EAGAIN`, readiness and again. The result is deferred.
    fn recv_now<F>(self, mut buf: Vec<u8>, cb: F)
    where
        F: FnOnce(BufResult<usize, Vec<u8>>) + Send + 'static,
    {
        let len = buf.len();
        let spare = buf.capacity() - len;
        // SAFETY: writes at most `spare` bytes into the allocation's tail after the `len`
        // initialised bytes, which `buf` owns.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().add(len).cast(),
                spare,
                0,
            )
        };
        if n >= 0 {
            // SAFETY: the kernel initialised `n <= spare` bytes after `len`.
            unsafe { buf.set_len(len + n as usize) };
            return self.handle.clone().defer(move || cb((Ok(n as usize), buf)));
        }
        let e = io::Error::last_os_error();
        match retry_kind(&e) {
            Some(false) => self.recv_now(buf, cb),
            Some(true) => {
                let (handle, fd) = (self.handle.clone(), self.fd.clone());
                when_ready(&handle, &fd, libc::POLLIN, move |r| match r {
                    Ok(()) => self.recv_now(buf, cb),
                    Err(e) => cb((Err(e), buf)),
                });
            }
            None => self.handle.clone().defer(move || cb((Err(e), buf))),
        }
    }

    /// Reads until `buf` is full.
    fn recv_exact<F>(self, buf: Vec<u8>, cb: F)
    where
        F: FnOnce(BufResult<(), Vec<u8>>) + Send + 'static,
    {
        let have = buf.len();
        let want = buf.capacity();
        if have == want {
            return cb((Ok(()), buf));
        }
        let next = SockIo {
            fd: self.fd.clone(),
            stash: self.stash.clone(),
            handle: self.handle.clone(),
        };
        self.recv_append(buf, move |(r, buf)| match r {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("end of stream after {have} of {want} bytes"),
                );
                cb((Err(e), buf))
            }
            Ok(_) => next.recv_exact(buf, cb),
            Err(e) => cb((Err(e), buf)),
        });
    }

    /// Sends `buf[done..]`, then the rest, until all of it is sent.
    fn send_all<F>(self, buf: Vec<u8>, done: usize, cb: F)
    where
        F: FnOnce(BufResult<(), Vec<u8>>) + Send + 'static,
    {
        if done >= buf.len() {
            return self.handle.clone().defer(move || cb((Ok(()), buf)));
        }
        let op = weft_reactor::op::send::Send::new(
            SharedFd(self.fd.clone()),
            buf,
            done,
            libc::MSG_NOSIGNAL,
        );
        let after = move |this: SockIo, r: io::Result<usize>, buf: Vec<u8>, cb: F| match r {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("the socket accepted 0 bytes after {done} of {}", buf.len()),
                );
                cb((Err(e), buf))
            }
            Ok(n) => this.send_all(buf, done + n, cb),
            Err(e) => match retry_kind(&e) {
                Some(false) => this.send_all(buf, done, cb),
                Some(true) => {
                    let (handle, fd) = (this.handle.clone(), this.fd.clone());
                    when_ready(&handle, &fd, libc::POLLOUT, move |r| match r {
                        Ok(()) => this.send_all(buf, done, cb),
                        Err(e) => cb((Err(e), buf)),
                    });
                }
                None => cb((Err(e), buf)),
            },
        };
        if can_submit() {
            let r = submit_with_callback(op, move |(r, buf): (io::Result<usize>, Vec<u8>)| {
                after(self, r, buf, cb)
            });
            if let Err((op, done_cb)) = r {
                done_cb((
                    Err(io::Error::from(io::ErrorKind::Interrupted)),
                    op.into_parts().1,
                ));
            }
            return;
        }
        let buf = op.into_parts().1;
        let rest = &buf[done..];
        // SAFETY: reads `rest.len()` initialised bytes of `buf`.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        let r = if n >= 0 {
            Ok(n as usize)
        } else {
            Err(io::Error::last_os_error())
        };
        // Deferred so that `cb` never runs inside the call that started the write.
        let handle = self.handle.clone();
        handle.defer(move || after(self, r, buf, cb));
    }
}

/// Calls `then` once `fd` reports one of `events` (errors and hang-ups count): a ring
/// `POLL_ADD` whose completion calls it, or the readiness thread and a deferred call.
fn when_ready(
    handle: &Handle,
    fd: &Arc<OwnedFd>,
    events: i16,
    then: impl FnOnce(io::Result<()>) + Send + 'static,
) {
    let on_ring = move |r: io::Result<u32>| then(r.map(drop));
    if can_submit() {
        match submit_with_callback(PollAdd::new(SharedFd(fd.clone()), events), on_ring) {
            Ok(()) => {}
            Err((_, on_ring)) => on_ring(Ok(0)),
        }
        return;
    }
    let mut ready = Box::pin(crate::poller::ready(fd.clone(), events));
    wait(
        handle,
        Box::new(move |cx| ready.as_mut().poll(cx)),
        move |r| on_ring(r.map(|()| 0)),
    );
}

type PollFn = Box<dyn FnMut(&mut Context<'_>) -> Poll<io::Result<()>> + Send>;
type Then = Box<dyn FnOnce(io::Result<()>) + Send>;

/// Polls `poll` with a waker that polls it again; when it is ready, `then` runs from the
/// runtime's queues (never inline). How the callbacks wait on something that only offers
/// a waker (the readiness thread, the stash) without a task.
fn wait(handle: &Handle, poll: PollFn, then: impl FnOnce(io::Result<()>) + Send + 'static) {
    let waiter = Arc::new(Waiter {
        state: Mutex::new(Some((poll, Box::new(then)))),
        handle: handle.clone(),
    });
    waiter.poll();
}

/// A pending wait: what to poll and what to run after.
struct Waiter {
    state: Mutex<Option<(PollFn, Then)>>,
    handle: Handle,
}

impl Waiter {
    fn poll(self: &Arc<Self>) {
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        // Held while polling, so that a wake that lands meanwhile polls again after this.
        let mut st = self.state.lock();
        let Some((poll, _)) = st.as_mut() else {
            return;
        };
        if let Poll::Ready(r) = poll(&mut cx) {
            let (_, then) = st.take().expect("checked above");
            drop(st);
            self.handle.defer(move || then(r));
        }
    }
}

impl Wake for Waiter {
    fn wake(self: Arc<Self>) {
        self.poll();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.poll();
    }
}
