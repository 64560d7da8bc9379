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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use parking_lot::Mutex;
use weft_reactor::buf::IoBufMut;
use weft_reactor::op::accept::{RawAddr, Unclaimed};
use weft_reactor::op::recv::Abandoned;
use weft_reactor::op::{Op, Operation};

/// Bytes that abandoned receives took from the kernel, kept for the socket's next reads
/// (and, on a listener, connections that abandoned accepts took), and how many abandoned
/// ops are still in the kernel (a read waits for them, so that bytes come out in the order
/// they arrived; an accept, so that it sees a connection they took).
#[derive(Default)]
pub(crate) struct Stash {
    inner: Mutex<StashInner>,
}

#[derive(Default)]
struct StashInner {
    bytes: Vec<u8>,
    accepted: VecDeque<(OwnedFd, RawAddr)>,
    in_flight: usize,
    waiters: Vec<Waker>,
}

impl Stash {
    /// Ready once no abandoned receive is still in the kernel.
    pub(crate) fn poll_settled(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.inner.lock();
        if s.in_flight == 0 {
            Poll::Ready(())
        } else {
            s.waiters.push(cx.waker().clone());
            Poll::Pending
        }
    }

    /// Copies stashed bytes into `buf` from byte `start` up to its `bytes_total()` and
    /// records them initialised (removing them from the stash unless `peek`); how many, or
    /// `None` if the stash is empty.
    pub(crate) fn take<B: IoBufMut>(&self, buf: &mut B, start: usize, peek: bool) -> Option<usize> {
        let mut s = self.inner.lock();
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
        self.inner.lock().bytes.extend_from_slice(bytes);
    }

    /// The oldest connection an abandoned accept took, if any.
    pub(crate) fn pop_accepted(&self) -> Option<(OwnedFd, RawAddr)> {
        self.inner.lock().accepted.pop_front()
    }

    /// An op was abandoned while still in the kernel.
    fn abandoned(&self) {
        self.inner.lock().in_flight += 1;
    }

    /// An abandoned receive completed, having received `bytes` (maybe none).
    fn settle(&self, bytes: &[u8]) {
        let waiters = {
            let mut s = self.inner.lock();
            s.bytes.extend_from_slice(bytes);
            s.in_flight -= 1;
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
