//! `IORING_OP_WRITE`: a positioned write from an owned buffer.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::buf::{BufResult, IoBuf};
use crate::uring::lifecycle::CqeResult;

/// Writes bytes `start..bytes_init()` of `buf` at offset `pos` of `fd` (at most
/// `u32::MAX` bytes; the kernel ignores `pos` on a file that cannot seek, and Linux on an
/// `O_APPEND` one). The output is the byte count and the buffer, unchanged.
#[derive(Debug)]
pub struct Write<F, B> {
    fd: F,
    buf: B,
    start: usize,
    pos: u64,
}

impl<F: AsRawFd + Send + 'static, B: IoBuf> Write<F, B> {
    /// A write of `buf`'s bytes `start..bytes_init()` (`start` is clamped to
    /// `buf.bytes_init()`).
    pub fn new(fd: F, buf: B, start: usize, pos: u64) -> Write<F, B> {
        let start = start.min(buf.bytes_init());
        Write {
            fd,
            buf,
            start,
            pos,
        }
    }

    /// The descriptor and the buffer (for an operation that was not submitted).
    pub fn into_parts(self) -> (F, B) {
        (self.fd, self.buf)
    }
}

// SAFETY: the entry points into `buf`'s initialised bytes (`start <= bytes_init`), which do
// not move when the operation does (the `IoBuf` contract), and at `fd`, which the
// operation keeps open.
unsafe impl<F: AsRawFd + Send + 'static, B: IoBuf> Operation for Write<F, B> {
    type Output = BufResult<usize, B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = (self.buf.bytes_init() - self.start).min(u32::MAX as usize) as u32;
        // SAFETY: `start <= bytes_init`: the pointer stays within the buffer, or one past.
        let ptr = unsafe { self.buf.stable_ptr().add(self.start) };
        opcode::Write::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
            .offset(self.pos)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        (cqe.result.map(|n| n as usize), self.buf)
    }
}
