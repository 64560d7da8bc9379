//! The socket side of the reactor's socket ops (`weft_reactor::op::{recv, send, recvmsg,
//! sendmsg, accept, connect}`): the [`Stash`] that an abandoned receive's bytes go to, and
//! the futures that submit each op on the ring of the thread polling at that moment (never
//! a cached one), with the runtime's cooperative budget.
//!
//! A receive dropped before it completes is abandoned to the ring, which keeps its buffer
//! and a clone of the descriptor until the completion; the op's
//! [`Abandoned`](weft_reactor::op::recv::Abandoned) hook ([`StashHook`]) then moves any
//! bytes the kernel still delivered into the socket's stash, so the next read returns them
//! first: no received byte is lost. A dropped send has sent what the kernel sent. A dropped
//! accept that the kernel completed anyway queues its connection in the listener's stash
//! ([`Stash::pop_accepted`]), for the next accept: no connection is lost either.
//!
//! With `WEFT_ACCEPT=multishot` ([`accept_multishot`]; one-shot `ACCEPT`s are the
//! default), a listener's accepts on a worker share one multishot `ACCEPT`
//! ([`Stash::poll_accept_multi`]): the first accept that finds the queue empty arms it on
//! its worker's ring, and every connection it accepts is queued in the stash, where any
//! accept on any worker takes it. It stays armed while accepts take what it queues; once
//! [`ACCEPT_QUEUE_CAP`] connections wait unclaimed it is cancelled (the kernel's backlog
//! holds the rest, as without it), and the next accept that finds the queue empty arms a
//! new one, as it does after the kernel ends one. Dropping the listener drops the stash,
//! which cancels the multishot and closes the queued connections; one accepted after that
//! finds no stash and is closed. A connection its peer reset before anyone took it is
//! queued too, as `accept4(2)` returns it: `getpeername(2)` refuses its address, so it is
//! read with `SO_PEERNAME` (dropping such connections left the accepts that waited for
//! them hanging).
//!
//! A stream's `RECV` ([`StashRecv`]) asks the kernel to wait for readiness before it tries
//! (`IORING_RECVSEND_POLL_FIRST`) when the socket's last ring receive left it empty (its
//! completion lacked `IORING_CQE_F_SOCK_NONEMPTY`): in a request-response exchange the next
//! bytes are not there yet, and the kernel's first try would only fail and arm the same
//! wait. Counted on `tcp_echo`: half the `recvmsg` calls in the kernel (2.0 per round
//! trip, from 3.8); its effect on CPU time and round trips per second was below the
//! noise of the loaded machine it was measured on. `WEFT_RECV_POLL_FIRST=never` turns it
//! off and `always` uses it on every receive, for measurement.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Weak;

use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use parking_lot::Mutex;
use weft_reactor::buf::{BufResult, IoBufMut};
use weft_reactor::op::accept::{RawAddr, Unclaimed};
use weft_reactor::op::accept_multi::{self, AcceptMulti, AcceptSink};
use weft_reactor::op::multishot::Multishot;
use weft_reactor::op::recv::{Abandoned, Recv};
use weft_reactor::op::{CqeResult, Op, Operation, io_uring};

/// Bytes that abandoned receives took from the kernel, kept for the socket's next reads
/// (and, on a listener, connections that abandoned accepts took), and how many abandoned
/// ops are still in the kernel (a read waits for them, so that bytes come out in the order
/// they arrived; an accept, so that it sees a connection they took).
#[derive(Default)]
pub(crate) struct Stash {
    inner: Mutex<StashInner>,
    /// Whether the last ring receive left the socket empty (its completion lacked
    /// `IORING_CQE_F_SOCK_NONEMPTY`), so that the next one waits for readiness first.
    drained: AtomicBool,
    /// Whether the stash holds bytes or counts an abandoned op (receive or accept) in
    /// flight: written (`Release`) under `inner`'s lock by every change to either, so that
    /// a read that finds it clear (`Acquire`) has nothing to take or wait for and skips
    /// the lock.
    /// Accepted connections are not counted: accepts always lock.
    busy: AtomicBool,
}

#[derive(Default)]
struct StashInner {
    bytes: Vec<u8>,
    accepted: VecDeque<(OwnedFd, RawAddr)>,
    in_flight: usize,
    waiters: Vec<Waker>,
    /// Whether a multishot accept may still queue connections here.
    multi_armed: bool,
    /// Its handle (dropping it cancels it); `None` while it is being submitted.
    multi: Option<Multishot>,
    /// The error that ended it, for the next accept.
    multi_error: Option<io::Error>,
    /// Accepts waiting for it to queue a connection.
    accept_waiters: Vec<Waker>,
}

/// Whether accepts on a ring use the listener's multishot accept (`WEFT_ACCEPT=multishot`,
/// read once) rather than one one-shot `ACCEPT` each (the default). One-shot is the
/// default because it measured faster on `net/accept_connect`: a multishot accept returns
/// no peer address, so each connection costs a `getpeername(2)` syscall, more than the
/// submission it saves (the ring batches those).
pub(crate) fn accept_multishot() -> bool {
    static MULTI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MULTI.get_or_init(|| std::env::var_os("WEFT_ACCEPT").is_some_and(|v| v == "multishot"))
}

/// Connections a multishot accept may queue unclaimed before it is cancelled.
pub(crate) const ACCEPT_QUEUE_CAP: usize = 64;

impl Stash {
    /// Ready once no abandoned receive is still in the kernel.
    pub(crate) fn poll_settled(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.busy.load(Acquire) {
            return Poll::Ready(());
        }
        let mut s = self.inner.lock();
        if s.in_flight == 0 {
            Poll::Ready(())
        } else {
            s.waiters.push(cx.waker().clone());
            Poll::Pending
        }
    }

    /// [`poll_settled`](Stash::poll_settled), then [`take`](Stash::take), under one lock:
    /// what a read does first.
    pub(crate) fn poll_take<B: IoBufMut>(
        &self,
        cx: &mut Context<'_>,
        buf: &mut B,
        start: usize,
        peek: bool,
    ) -> Poll<Option<usize>> {
        if !self.busy.load(Acquire) {
            return Poll::Ready(None);
        }
        let mut s = self.inner.lock();
        if s.in_flight != 0 {
            s.waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        let n = Self::take_locked(&mut s, buf, start, peek);
        self.publish(&s);
        Poll::Ready(n)
    }

    /// Records in `busy` whether `s` (this stash's locked state) holds bytes or counts
    /// an abandoned receive; called under the lock after each change to either.
    fn publish(&self, s: &StashInner) {
        self.busy
            .store(!s.bytes.is_empty() || s.in_flight != 0, Release);
    }

    /// Copies stashed bytes into `buf` from byte `start` up to its `bytes_total()` and
    /// records them initialised (removing them from the stash unless `peek`); how many, or
    /// `None` if the stash is empty.
    pub(crate) fn take<B: IoBufMut>(&self, buf: &mut B, start: usize, peek: bool) -> Option<usize> {
        let mut s = self.inner.lock();
        let n = Self::take_locked(&mut s, buf, start, peek);
        self.publish(&s);
        n
    }

    fn take_locked<B: IoBufMut>(
        s: &mut StashInner,
        buf: &mut B,
        start: usize,
        peek: bool,
    ) -> Option<usize> {
        if s.bytes.is_empty() {
            return None;
        }
        let n = s.bytes.len().min(buf.bytes_total() - start);
        // SAFETY: `start + n <= bytes_total`, so the copy stays inside the buffer's
        // storage, which nothing else touches while `buf` is borrowed mutably; the stash
        // is a separate allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(s.bytes.as_ptr(), buf.stable_mut_ptr().add(start), n)
        };
        // SAFETY: the first `start` bytes were initialised (the caller's `start <=
        // bytes_init`) and the next `n` were just written.
        unsafe { buf.set_init(start + n) };
        if !peek {
            s.bytes.drain(..n);
        }
        Some(n)
    }

    /// Whether bytes are waiting for a read, or connections for an accept.
    pub(crate) fn holds_data(&self) -> bool {
        let s = self.inner.lock();
        !s.bytes.is_empty() || !s.accepted.is_empty()
    }

    /// Appends bytes that poll reads received and did not return (`poll_io.rs`).
    pub(crate) fn put(&self, bytes: &[u8]) {
        let mut s = self.inner.lock();
        s.bytes.extend_from_slice(bytes);
        self.publish(&s);
    }

    /// Puts back, ahead of the stashed bytes, bytes that a poll read took from the stash
    /// and did not return (`poll_io.rs`): they came before what the stash still holds.
    pub(crate) fn put_front(&self, bytes: &[u8]) {
        let mut s = self.inner.lock();
        s.bytes.splice(0..0, bytes.iter().copied());
        self.publish(&s);
    }

    /// The oldest connection an abandoned accept took, if any.
    pub(crate) fn pop_accepted(&self) -> Option<(OwnedFd, RawAddr)> {
        self.inner.lock().accepted.pop_front()
    }

    /// The listener's next connection from its multishot accept (armed on the calling
    /// thread's ring if none is), or the error that ended the last one; `Ready(None)` where
    /// a multishot accept cannot run (no ring on this thread, or a kernel without it), so
    /// the caller accepts another way. `listener` is the listening socket; `flags` those
    /// of the new sockets.
    pub(crate) fn poll_accept_multi(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        listener: &Arc<OwnedFd>,
        flags: i32,
    ) -> Poll<Option<io::Result<(OwnedFd, RawAddr)>>> {
        {
            let mut s = self.inner.lock();
            if let Some(conn) = s.accepted.pop_front() {
                return Poll::Ready(Some(Ok(conn)));
            }
            if let Some(e) = s.multi_error.take() {
                return Poll::Ready(Some(Err(e)));
            }
            if s.multi_armed {
                if !s.accept_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    s.accept_waiters.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if !weft_reactor::op::can_submit() || !accept_multi::supported() {
                return Poll::Ready(None);
            }
            s.multi_armed = true;
            s.accept_waiters.push(cx.waker().clone());
        }
        // Submitted outside the lock: a full submission queue makes the ring reap, and a
        // completion of this listener's accept locks the stash.
        let op = AcceptMulti::new(listener.clone(), flags, StashSink(Arc::downgrade(self)));
        let armed = Multishot::submit(op).ok();
        let mut s = self.inner.lock();
        match armed {
            Some(handle) if s.multi_armed => {
                s.multi = Some(handle);
                Poll::Pending
            }
            // It ended already (its sink saw the last completion): poll again.
            Some(_) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => {
                s.multi_armed = false;
                Poll::Ready(None)
            }
        }
    }

    /// Cancels the multishot accept, if one is armed (the listener leaves the runtime).
    pub(crate) fn cancel_accept_multi(&self) {
        let handle = self.inner.lock().multi.take();
        drop(handle);
    }

    /// An op was abandoned while still in the kernel (or a multishot receive released
    /// to the stash, `poll_io.rs`).
    pub(crate) fn abandoned(&self) {
        let mut s = self.inner.lock();
        s.in_flight += 1;
        self.publish(&s);
    }

    /// An abandoned receive completed, having received `bytes` (maybe none).
    pub(crate) fn settle(&self, bytes: &[u8]) {
        let waiters = {
            let mut s = self.inner.lock();
            s.bytes.extend_from_slice(bytes);
            s.in_flight -= 1;
            self.publish(&s);
            std::mem::take(&mut s.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

/// The receive ops' [`Abandoned`] hook (the bytes go to the socket's stash) and the
/// accept op's [`Unclaimed`] hook (the connection is queued in the listener's stash).
pub(crate) struct StashHook(pub(crate) Arc<Stash>);

impl Abandoned for StashHook {
    fn received(self, bytes: &[u8]) {
        self.0.settle(bytes);
    }
}

impl Unclaimed for StashHook {
    fn accepted(self, conn: Option<(OwnedFd, RawAddr)>) {
        if let Some(conn) = conn {
            self.0.inner.lock().accepted.push_back(conn);
        }
        self.0.settle(&[]);
    }
}

/// The multishot accept's sink: each connection is queued in the listener's stash (closed
/// if the listener is gone), and waiting accepts are woken.
struct StashSink(Weak<Stash>);

impl AcceptSink for StashSink {
    fn accepted(&self, conn: io::Result<OwnedFd>, last: bool) {
        let Some(stash) = self.0.upgrade() else {
            return; // The listener is gone: `conn` is closed here.
        };
        let (waiters, cancel) = {
            let mut s = stash.inner.lock();
            match conn {
                // Queued even if its peer has reset it already: `accept4(2)` returns
                // such a connection too, and an accept waits for it.
                Ok(fd) => {
                    let peer = peer_addr(&fd);
                    s.accepted.push_back((fd, peer));
                }
                // Our own cancel, or a kernel without the flag (the next accept falls back).
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECANCELED | libc::EINVAL)) => {}
                Err(e) => s.multi_error = Some(e),
            }
            let cancel = if last {
                s.multi_armed = false;
                s.multi.take()
            } else if s.accepted.len() >= ACCEPT_QUEUE_CAP {
                s.multi.take()
            } else {
                None
            };
            (std::mem::take(&mut s.accept_waiters), cancel)
        };
        // Outside the lock: a live handle's drop asks the ring to cancel.
        drop(cancel);
        drop(stash);
        for w in waiters {
            w.wake();
        }
    }
}

/// The peer of an accepted socket (a multishot accept returns none), as `accept4(2)`
/// would have written it. `getpeername(2)` refuses (`ENOTCONN`) once the peer has reset
/// the connection, but `SO_PEERNAME` reads the same address the way accept does, from the
/// handshake, given a buffer exactly the size of the family's address. Where neither
/// answers, an all-zero address (family 0), which a TCP accept reports as an error.
fn peer_addr(fd: &OwnedFd) -> RawAddr {
    if let Some(peer) = sockaddr_of(fd, libc::getpeername) {
        return peer;
    }
    let len = match sockaddr_of(fd, libc::getsockname)
        .map(|local| local.storage.ss_family as libc::c_int)
    {
        Some(libc::AF_INET) => std::mem::size_of::<libc::sockaddr_in>(),
        Some(libc::AF_INET6) => std::mem::size_of::<libc::sockaddr_in6>(),
        _ => return RawAddr::empty(),
    };
    let mut peer = RawAddr::empty();
    peer.len = len as libc::socklen_t;
    // SAFETY: the kernel writes at most `peer.len` bytes (no more than the storage holds)
    // into `peer`'s storage.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERNAME,
            (&mut peer.storage as *mut libc::sockaddr_storage).cast(),
            &mut peer.len,
        )
    };
    if r == 0 { peer } else { RawAddr::empty() }
}

/// The address `call` (`getpeername(2)` or `getsockname(2)`) writes for `fd`, or `None`
/// if it fails.
fn sockaddr_of(
    fd: &OwnedFd,
    call: unsafe extern "C" fn(
        libc::c_int,
        *mut libc::sockaddr,
        *mut libc::socklen_t,
    ) -> libc::c_int,
) -> Option<RawAddr> {
    let mut addr = RawAddr::empty();
    // SAFETY: `call` is `getpeername` or `getsockname` (its callers pass no other), which
    // write at most `addr.len` bytes (the storage's size) into `addr`'s storage.
    let r = unsafe {
        call(
            fd.as_raw_fd(),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
        )
    };
    (r == 0).then_some(addr)
}

/// When a stream's ring `RECV` asks the kernel to wait for readiness before trying
/// (`IORING_RECVSEND_POLL_FIRST`), from `WEFT_RECV_POLL_FIRST=never|drained|always`
/// (read once; `drained`, after a receive that left the socket empty, by default).
#[derive(Clone, Copy, PartialEq, Eq)]
enum PollFirst {
    Never,
    Drained,
    Always,
}

fn poll_first_mode() -> PollFirst {
    static MODE: std::sync::OnceLock<PollFirst> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("WEFT_RECV_POLL_FIRST").as_deref() {
        Ok("never") => PollFirst::Never,
        Ok("always") => PollFirst::Always,
        _ => PollFirst::Drained,
    })
}

/// Cleared for good when the kernel refuses a poll-first receive (`EINVAL`: older than
/// 5.19).
static POLL_FIRST_OK: AtomicBool = AtomicBool::new(true);

/// A stream's ring `RECV` with the stash's hook, which asks the kernel to wait for
/// readiness first when the socket's last receive drained it, and records whether this
/// one did. A kernel that refuses the flag gets the plain receive again.
pub(crate) struct StashRecv<B: IoBufMut> {
    recv: Recv<Arc<OwnedFd>, B, StashHook>,
    stash: Arc<Stash>,
    poll_first: bool,
}

impl<B: IoBufMut> StashRecv<B> {
    /// A receive on `fd` into `buf[start..bytes_total]` with `flags`, whose abandoned
    /// bytes go to `stash`.
    pub(crate) fn new(
        fd: Arc<OwnedFd>,
        buf: B,
        start: usize,
        flags: i32,
        stash: &Arc<Stash>,
    ) -> StashRecv<B> {
        let poll_first = POLL_FIRST_OK.load(Relaxed)
            && match poll_first_mode() {
                PollFirst::Never => false,
                PollFirst::Drained => stash.drained.load(Relaxed),
                PollFirst::Always => true,
            };
        let hook = StashHook(stash.clone());
        StashRecv {
            recv: Recv::with_hook(fd, buf, start, flags, hook).poll_first(poll_first),
            stash: stash.clone(),
            poll_first,
        }
    }
}

// SAFETY: the entry is `Recv`'s, which points only at what `recv` owns; `StashRecv` keeps
// `recv` until its completion.
unsafe impl<B: IoBufMut> Operation for StashRecv<B> {
    /// The receive's output, and whether to submit it again (a refused poll-first).
    type Output = (BufResult<usize, B>, bool);

    fn sqe(&mut self) -> io_uring::squeue::Entry {
        self.recv.sqe()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        let nonempty = io_uring::cqueue::sock_nonempty(cqe.flags);
        let refused = self.poll_first
            && matches!(&cqe.result, Err(e) if e.raw_os_error() == Some(libc::EINVAL));
        if refused {
            POLL_FIRST_OK.store(false, Relaxed);
        }
        if cqe.result.is_ok() {
            self.stash.drained.store(!nonempty, Relaxed);
        }
        (self.recv.complete(cqe), refused)
    }

    fn cleanup(self, cqe: CqeResult) {
        self.recv.cleanup(cqe);
    }
}

/// An [`Op`] with the runtime's cooperative budget.
pub(crate) struct Budgeted<T: Operation>(pub(crate) Op<T>);

impl<T: Operation> Future for Budgeted<T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let out = std::task::ready!(Pin::new(&mut self.0).poll(cx));
        coop.made_progress();
        Poll::Ready(out)
    }
}

/// An op whose hook settles the socket's stash (`RECV`, `RECVMSG`, `ACCEPT`): on drop
/// before its result, the stash is told to wait for the abandoned op's completion.
pub(crate) struct Stashed<T: Operation> {
    op: Budgeted<T>,
    stash: Arc<Stash>,
}

impl<T: Operation> Stashed<T> {
    /// Submits `op` (whose hook settles `stash`) on the calling thread's ring; `Err` with
    /// the op back if the thread owns none.
    pub(crate) fn submit(op: T, stash: &Arc<Stash>) -> Result<Stashed<T>, T> {
        Op::submit(op).map(|op| Stashed {
            op: Budgeted(op),
            stash: stash.clone(),
        })
    }

    /// As [`submit`](Stashed::submit), building the op from `arg` only if the calling
    /// thread owns a ring (`Op::submit_with`); `Err` with `arg` back if it owns none.
    pub(crate) fn submit_with<A>(
        arg: A,
        build: impl FnOnce(A) -> T,
        stash: &Arc<Stash>,
    ) -> Result<Stashed<T>, A> {
        Op::submit_with(arg, build).map(|op| Stashed {
            op: Budgeted(op),
            stash: stash.clone(),
        })
    }
}

impl<T: Operation> Future for Stashed<T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        Pin::new(&mut self.op).poll(cx)
    }
}

impl<T: Operation> Drop for Stashed<T> {
    fn drop(&mut self) {
        if !self.op.0.is_done() {
            // The op's drop (right after this) hands it to the ring, whose cleanup calls
            // the hook, which settles this count, at once if the completion already came.
            self.stash.abandoned();
        }
    }
}
