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
//! Both are submitted on the ring of the thread polling at that moment
//! (`crate::io::current_ring`), never a cached one.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, types};
use parking_lot::Mutex;
use weft_reactor::uring::UringHandle;

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

/// A submitted `RECV` into `buf[len..capacity]`.
pub(crate) struct Recv {
    ring: UringHandle,
    user_data: u64,
    held: Option<RecvHeld>,
}

struct RecvHeld {
    buf: Vec<u8>,
    fd: Arc<OwnedFd>,
    stash: Arc<Stash>,
    peek: bool,
}

impl Recv {
    /// Submits the op on `ring`, which the calling thread must own (as
    /// `crate::io::current_ring` guarantees). `buf` must have spare capacity.
    pub(crate) fn submit(
        ring: UringHandle,
        fd: Arc<OwnedFd>,
        mut buf: Vec<u8>,
        flags: libc::c_int,
        stash: Arc<Stash>,
    ) -> Recv {
        let len = buf.len();
        let spare = (buf.capacity() - len).min(u32::MAX as usize) as u32;
        // SAFETY: `len <= capacity`, so the pointer stays within the allocation.
        let ptr = unsafe { buf.as_mut_ptr().add(len) };
        let entry = opcode::Recv::new(types::Fd(fd.as_raw_fd()), ptr, spare)
            .flags(flags)
            .build();
        // SAFETY: the entry points at `spare` bytes of `buf`'s heap allocation (which does
        // not move when the Vec does) and names `fd`; the op holds both until the
        // completion is reaped, or hands them to the ring's cleanup (see `Drop`).
        let Some(user_data) = (unsafe { ring.submit(entry) }) else {
            unreachable!("current_ring() hands out only rings this thread owns")
        };
        Recv {
            ring,
            user_data,
            held: Some(RecvHeld {
                buf,
                fd,
                stash,
                peek: flags & libc::MSG_PEEK != 0,
            }),
        }
    }
}

impl Future for Recv {
    type Output = (io::Result<usize>, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let r = std::task::ready!(self.ring.poll(self.user_data, cx.waker()));
        coop.made_progress();
        let mut held = self.held.take().expect("a Recv polled after completion");
        match r.result {
            Ok(n) => {
                let len = held.buf.len();
                // SAFETY: the kernel initialised `n` bytes after the first `len`.
                unsafe { held.buf.set_len(len + n as usize) };
                Poll::Ready((Ok(n as usize), held.buf))
            }
            Err(e) => Poll::Ready((Err(e), held.buf)),
        }
    }
}

impl Drop for Recv {
    fn drop(&mut self) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        held.stash.abandoned();
        self.ring.abandon(
            self.user_data,
            Box::new(move |cqe| {
                let len = held.buf.len();
                let got = match cqe.result {
                    Ok(n) if !held.peek => n as usize,
                    _ => 0,
                };
                // SAFETY: the kernel initialised `got` bytes after the first `len`.
                unsafe { held.buf.set_len(len + got) };
                held.stash.settle(&held.buf[len..]);
                drop(held.fd);
            }),
        );
    }
}

/// A submitted `SEND` of `buf[start..]`.
pub(crate) struct Send {
    ring: UringHandle,
    user_data: u64,
    held: Option<(Vec<u8>, Arc<OwnedFd>)>,
}

impl Send {
    /// Submits the op on `ring`, which the calling thread must own.
    pub(crate) fn submit(ring: UringHandle, fd: Arc<OwnedFd>, buf: Vec<u8>, start: usize) -> Send {
        let len = (buf.len() - start).min(u32::MAX as usize) as u32;
        let entry = opcode::Send::new(types::Fd(fd.as_raw_fd()), buf[start..].as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        // SAFETY: the entry points at `len` initialised bytes of `buf`'s heap allocation
        // and names `fd`; the op holds both until the completion is reaped, or hands them
        // to the ring's cleanup (see `Drop`).
        let Some(user_data) = (unsafe { ring.submit(entry) }) else {
            unreachable!("current_ring() hands out only rings this thread owns")
        };
        Send {
            ring,
            user_data,
            held: Some((buf, fd)),
        }
    }
}

impl Future for Send {
    type Output = (io::Result<usize>, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let r = std::task::ready!(self.ring.poll(self.user_data, cx.waker()));
        coop.made_progress();
        let (buf, _fd) = self.held.take().expect("a Send polled after completion");
        Poll::Ready((r.result.map(|n| n as usize), buf))
    }
}

impl Drop for Send {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            self.ring
                .abandon(self.user_data, Box::new(move |_| drop(held)));
        }
    }
}
