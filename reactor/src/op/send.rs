//! `IORING_OP_SEND`: a socket's send from an owned buffer.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::buf::{BufResult, IoBuf};
use crate::uring::lifecycle::CqeResult;

/// Sends bytes `start..bytes_init()` of `buf` on `fd` with `send(2)`'s `flags` (at most
/// `u32::MAX` bytes; pass `libc::MSG_NOSIGNAL` so that a closed peer is `EPIPE`, not
/// `SIGPIPE`). The output is the byte count and the buffer, unchanged. Abandoned, what the
/// kernel sent is sent.
#[derive(Debug)]
pub struct Send<F, B> {
    fd: F,
    buf: B,
    start: usize,
    flags: i32,
}

impl<F: AsRawFd + std::marker::Send + 'static, B: IoBuf> Send<F, B> {
    /// A send of `buf`'s bytes `start..bytes_init()` (`start` is clamped to
    /// `buf.bytes_init()`).
    pub fn new(fd: F, buf: B, start: usize, flags: i32) -> Send<F, B> {
        let start = start.min(buf.bytes_init());
        Send {
            fd,
            buf,
            start,
            flags,
        }
    }

    /// The descriptor and the buffer (for a send that was not submitted).
    pub fn into_parts(self) -> (F, B) {
        (self.fd, self.buf)
    }
}

// SAFETY: the entry points into `buf`'s initialised bytes (`start <= bytes_init`), which
// do not move when the operation does (the `IoBuf` contract), and at `fd`, which the
// operation keeps open.
unsafe impl<F: AsRawFd + std::marker::Send + 'static, B: IoBuf> Operation for Send<F, B> {
    type Output = BufResult<usize, B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = (self.buf.bytes_init() - self.start).min(u32::MAX as usize) as u32;
        // SAFETY: `start <= bytes_init`: the pointer stays within the buffer, or one past.
        let ptr = unsafe { self.buf.stable_ptr().add(self.start) };
        opcode::Send::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        (cqe.result.map(|n| n as usize), self.buf)
    }
}
