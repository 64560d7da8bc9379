//! The socket ops submitted to a worker's ring, each a small struct that builds its SQE and
//! owns what the kernel uses until the completion is reaped:
//!
//! - [`Recv`]: `IORING_OP_RECV` into the spare capacity of an owned `Vec<u8>`. Dropped
//!   before it completes, it hands its buffer to the ring's cleanup, which moves any bytes
//!   the kernel still delivered into the socket's [`Stash`], so the next read returns them
//!   first: no received byte is lost.
//! - [`Send`]: `IORING_OP_SEND` (with `MSG_NOSIGNAL`) from an owned `Vec<u8>`. Dropped
//!   before it completes, it hands the buffer to the cleanup; what the kernel sent is sent.
//!
//! Both are [`Operation`]s of the reactor's op layer, submitted with [`Op::submit`] on the
//! ring of the thread polling at that moment, never a cached one.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use weft_reactor::op::io_uring::{opcode, squeue, types};
use weft_reactor::op::{Op, Operation};
use weft_reactor::uring::lifecycle::CqeResult;

/// Bytes that abandoned `Recv`s took from the kernel, kept for the socket's next reads,
/// and how many abandoned `Recv`s are still in the kernel (a read waits for them, so that
/// bytes come out in the order they arrived).
#[derive(Default)]
pub(crate) struct Stash {
    inner: Mutex<StashInner>,
}

#[derive(Default)]
struct StashInner {
    bytes: Vec<u8>,
    in_flight: usize,
    waiters: Vec<Waker>,
}

impl Stash {
    /// Ready once no abandoned `Recv` is still in the kernel.
    pub(crate) fn poll_settled(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.inner.lock();
        if s.in_flight == 0 {
            Poll::Ready(())
        } else {
            s.waiters.push(cx.waker().clone());
            Poll::Pending
        }
    }

    /// Moves up to `buf`'s spare capacity of stashed bytes to its end (copies them, with
    /// `peek`); how many, or `None` if the stash is empty.
    pub(crate) fn take(&self, buf: &mut Vec<u8>, peek: bool) -> Option<usize> {
        let mut s = self.inner.lock();
        if s.bytes.is_empty() {
            return None;
        }
        let n = s.bytes.len().min(buf.capacity() - buf.len());
        buf.extend_from_slice(&s.bytes[..n]);
        if !peek {
            s.bytes.drain(..n);
        }
        Some(n)
    }

    /// Whether bytes are waiting for a read.
    pub(crate) fn has_bytes(&self) -> bool {
        !self.inner.lock().bytes.is_empty()
    }

    /// Appends bytes that poll reads received and did not return (`poll_io.rs`).
    pub(crate) fn put(&self, bytes: &[u8]) {
        self.inner.lock().bytes.extend_from_slice(bytes);
    }

    fn abandoned(&self) {
        self.inner.lock().in_flight += 1;
    }

    /// An abandoned `Recv` completed, having received `bytes` (maybe none).
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

/// `RECV` into `buf[len..capacity]` of `fd`; the output is the count and the buffer, its
/// length grown by the count.
pub(crate) struct Recv {
    fd: Arc<OwnedFd>,
    buf: Vec<u8>,
    flags: libc::c_int,
    stash: Arc<Stash>,
}

// SAFETY: the entry points into `buf`'s heap allocation, within its spare capacity, and at
// `fd`, which the operation keeps open; neither moves when the operation does.
unsafe impl Operation for Recv {
    type Output = (io::Result<usize>, Vec<u8>);

    fn sqe(&mut self) -> squeue::Entry {
        let len = self.buf.len();
        let spare = (self.buf.capacity() - len).min(u32::MAX as usize) as u32;
        // SAFETY: `len <= capacity`, so the pointer stays within the allocation.
        let ptr = unsafe { self.buf.as_mut_ptr().add(len) };
        opcode::Recv::new(types::Fd(self.fd.as_raw_fd()), ptr, spare)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        let mut buf = self.buf;
        match cqe.result {
            Ok(n) => {
                let len = buf.len();
                // SAFETY: the kernel initialised `n` bytes after the first `len`, and the
                // completion is reaped, so it writes no more.
                unsafe { buf.set_len(len + n as usize) };
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Moves what an abandoned `RECV` received to the stash (nothing for a peek).
    fn cleanup(self, cqe: CqeResult) {
        let mut buf = self.buf;
        let len = buf.len();
        let got = match cqe.result {
            Ok(n) if self.flags & libc::MSG_PEEK == 0 => n as usize,
            _ => 0,
        };
        // SAFETY: the kernel initialised `got` bytes after the first `len`.
        unsafe { buf.set_len(len + got) };
        self.stash.settle(&buf[len..]);
    }
}

/// A read as a ring `RECV`: the op, and on drop before its result, the stash told to
/// wait for the abandoned op's completion.
pub(crate) struct RecvFuture {
    op: Op<Recv>,
    stash: Arc<Stash>,
}

impl RecvFuture {
    /// Submits a `RECV` on the calling thread's ring; `Err` with the buffer back if the
    /// thread owns none.
    pub(crate) fn submit(
        fd: Arc<OwnedFd>,
        buf: Vec<u8>,
        flags: libc::c_int,
        stash: Arc<Stash>,
    ) -> Result<RecvFuture, Vec<u8>> {
        let recv = Recv {
            fd,
            buf,
            flags,
            stash: stash.clone(),
        };
        match Op::submit(recv) {
            Ok(op) => Ok(RecvFuture { op, stash }),
            Err(recv) => Err(recv.buf),
        }
    }
}

impl Future for RecvFuture {
    type Output = (io::Result<usize>, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let out = std::task::ready!(Pin::new(&mut self.op).poll(cx));
        coop.made_progress();
        Poll::Ready(out)
    }
}

impl Drop for RecvFuture {
    fn drop(&mut self) {
        if !self.op.is_done() {
            // The op's drop (right after this) hands the `Recv` to the ring, whose
            // `cleanup` settles this count, at once if the completion already came.
            self.stash.abandoned();
        }
    }
}

/// `SEND` of `buf[start..]` on `fd`, with `MSG_NOSIGNAL`; the output is the count and the
/// buffer.
pub(crate) struct Send {
    fd: Arc<OwnedFd>,
    buf: Vec<u8>,
    start: usize,
}

// SAFETY: the entry points at initialised bytes of `buf`'s heap allocation and at `fd`,
// which the operation keeps open; neither moves when the operation does.
unsafe impl Operation for Send {
    type Output = (io::Result<usize>, Vec<u8>);

    fn sqe(&mut self) -> squeue::Entry {
        let rest = &self.buf[self.start..];
        let len = rest.len().min(u32::MAX as usize) as u32;
        opcode::Send::new(types::Fd(self.fd.as_raw_fd()), rest.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        (cqe.result.map(|n| n as usize), self.buf)
    }
}

/// A write as a ring `SEND`, with the runtime's cooperative budget.
pub(crate) struct SendFuture(Op<Send>);

impl SendFuture {
    /// Submits a `SEND` on the calling thread's ring; `Err` with the buffer back if the
    /// thread owns none.
    pub(crate) fn submit(
        fd: Arc<OwnedFd>,
        buf: Vec<u8>,
        start: usize,
    ) -> Result<SendFuture, Vec<u8>> {
        match Op::submit(Send { fd, buf, start }) {
            Ok(op) => Ok(SendFuture(op)),
            Err(send) => Err(send.buf),
        }
    }
}

impl Future for SendFuture {
    type Output = (io::Result<usize>, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let out = std::task::ready!(Pin::new(&mut self.0).poll(cx));
        coop.made_progress();
        Poll::Ready(out)
    }
}
