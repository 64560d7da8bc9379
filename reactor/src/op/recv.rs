//! `IORING_OP_RECV`: a stream socket's receive into an owned buffer, and [`Abandoned`],
//! what a receive whose future was dropped does with the bytes the kernel delivered anyway.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::buf::{BufResult, IoBufMut};
use crate::uring::lifecycle::CqeResult;

/// Where the bytes of an abandoned receive go. A socket's receive that completes after its
/// future was dropped has taken bytes out of the kernel: unless they go somewhere, they are
/// lost. `()` drops them (for a peek, or a caller that does not care).
pub trait Abandoned: Send + 'static {
    /// Runs once, on the reaping thread, at the completion of an abandoned receive, with
    /// the bytes it received (empty after an error, end of stream, or a `MSG_PEEK`, which
    /// took nothing from the socket).
    fn received(self, bytes: &[u8]);
}

impl Abandoned for () {
    fn received(self, _: &[u8]) {}
}

/// Receives into bytes `start..bytes_total()` of `buf` from `fd` with `recv(2)`'s `flags`
/// (at most `u32::MAX` bytes). The output is the byte count and the buffer, with
/// [`set_init(start + n)`](IoBufMut::set_init). Abandoned, it hands what it received to
/// its [`Abandoned`] hook.
///
/// The kernel arms its own readiness wait when the socket has nothing yet, even on a
/// non-blocking socket: the completion comes when data (or end of stream, or an error) does.
/// With [`poll_first`](Recv::poll_first) it arms that wait before trying.
#[derive(Debug)]
pub struct Recv<F, B, H = ()> {
    fd: F,
    buf: B,
    start: usize,
    flags: i32,
    poll_first: bool,
    hook: H,
}

/// `IORING_RECVSEND_POLL_FIRST`, in the entry's `ioprio`.
const POLL_FIRST: u16 = 1;

impl<F: AsRawFd + Send + 'static, B: IoBufMut> Recv<F, B> {
    /// A receive into `buf`'s bytes `start..bytes_total()` (`start` is clamped to
    /// `buf.bytes_init()`), whose bytes are dropped if it is abandoned.
    pub fn new(fd: F, buf: B, start: usize, flags: i32) -> Recv<F, B> {
        Recv::with_hook(fd, buf, start, flags, ())
    }
}

impl<F: AsRawFd + Send + 'static, B: IoBufMut, H: Abandoned> Recv<F, B, H> {
    /// As [`new`](Recv::new), handing an abandoned receive's bytes to `hook`.
    pub fn with_hook(fd: F, buf: B, start: usize, flags: i32, hook: H) -> Recv<F, B, H> {
        let start = start.min(buf.bytes_init());
        Recv {
            fd,
            buf,
            start,
            flags,
            poll_first: false,
            hook,
        }
    }

    /// Asks the kernel to wait for the socket to be readable before it tries the receive
    /// (`IORING_RECVSEND_POLL_FIRST`, Linux 5.19+; an older kernel may complete the op
    /// with `EINVAL`), instead of trying first and arming its wait only when nothing is
    /// there.
    /// It saves the failed try when the caller expects the socket to be empty (the last
    /// receive drained it: [`sock_nonempty`](io_uring::cqueue::sock_nonempty) of its
    /// completion's flags was false); it costs a deferred retry when data is there.
    pub fn poll_first(mut self, yes: bool) -> Recv<F, B, H> {
        self.poll_first = yes;
        self
    }

    /// The descriptor, the buffer and the hook, unchanged (for a receive that was not
    /// submitted).
    pub fn into_parts(self) -> (F, B, H) {
        (self.fd, self.buf, self.hook)
    }
}

// SAFETY: the entry points into `buf`'s storage, within `bytes_total` (`start <=
// bytes_init <= bytes_total`, and the length is what remains), which does not move when
// the operation does (the `IoBufMut` contract), and at `fd`, which the operation keeps open.
unsafe impl<F: AsRawFd + Send + 'static, B: IoBufMut, H: Abandoned> Operation for Recv<F, B, H> {
    type Output = BufResult<usize, B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = (self.buf.bytes_total() - self.start).min(u32::MAX as usize) as u32;
        // SAFETY: `start <= bytes_total`: the pointer stays within the buffer, or one past.
        let ptr = unsafe { self.buf.stable_mut_ptr().add(self.start) };
        opcode::Recv::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
            .flags(self.flags)
            .ioprio(if self.poll_first { POLL_FIRST } else { 0 })
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        let mut buf = self.buf;
        match cqe.result {
            Ok(n) => {
                // SAFETY: the kernel initialised `n` bytes from `start` (within
                // `bytes_total`), those before were initialised already, and the
                // completion is reaped, so it writes no more.
                unsafe { buf.set_init(self.start + n as usize) };
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    fn cleanup(self, cqe: CqeResult) {
        let got = match cqe.result {
            Ok(n) if self.flags & libc::MSG_PEEK == 0 => n as usize,
            _ => 0,
        };
        let bytes = if got == 0 {
            &[][..]
        } else {
            // SAFETY: the kernel initialised `got` bytes from `start`, within the buffer,
            // and is done with them; `buf` lives until the end of this function.
            unsafe { std::slice::from_raw_parts(self.buf.stable_ptr().add(self.start), got) }
        };
        self.hook.received(bytes);
    }
}
