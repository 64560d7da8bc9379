//! `IORING_OP_READ`: a positioned read into an owned buffer.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::buf::{BufResult, IoBufMut};
use crate::uring::lifecycle::CqeResult;

/// Reads into bytes `start..bytes_total()` of `buf` at offset `pos` of `fd` (at most
/// `u32::MAX` bytes; the kernel ignores `pos` on a file that cannot seek). The output is
/// the byte count and the buffer, with [`set_init(start + n)`](IoBufMut::set_init).
#[derive(Debug)]
pub struct Read<F, B> {
    fd: F,
    buf: B,
    start: usize,
    pos: u64,
}

impl<F: AsRawFd + Send + 'static, B: IoBufMut> Read<F, B> {
    /// A read of `buf`'s bytes `start..bytes_total()`; the bytes before `start` must be
    /// initialised (`start` is clamped to `buf.bytes_init()`).
    pub fn new(fd: F, buf: B, start: usize, pos: u64) -> Read<F, B> {
        let start = start.min(buf.bytes_init());
        Read {
            fd,
            buf,
            start,
            pos,
        }
    }

    /// The descriptor and the buffer, unchanged (for an operation that was not submitted).
    pub fn into_parts(self) -> (F, B) {
        (self.fd, self.buf)
    }
}

// SAFETY: the entry points into `buf`'s storage, within `bytes_total` (`start <=
// bytes_init <= bytes_total`, and the length is what remains), which does not move when
// the operation does (the `IoBufMut` contract), and at `fd`, which the operation keeps open.
unsafe impl<F: AsRawFd + Send + 'static, B: IoBufMut> Operation for Read<F, B> {
    type Output = BufResult<usize, B>;

    fn sqe(&mut self) -> squeue::Entry {
        let len = (self.buf.bytes_total() - self.start).min(u32::MAX as usize) as u32;
        // SAFETY: `start <= bytes_total`: the pointer stays within the buffer, or one past.
        let ptr = unsafe { self.buf.stable_mut_ptr().add(self.start) };
        opcode::Read::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
            .offset(self.pos)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        let mut buf = self.buf;
        match cqe.result {
            Ok(n) => {
                // The kernel initialised `n` bytes (at most what the entry asked for, within
                // `bytes_total`) from `start`; those before `start` were initialised already.
                // SAFETY: so `start + n` bytes are initialised, and the completion is reaped,
                // so the kernel writes no more.
                unsafe { buf.set_init(self.start + n as usize) };
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }
}
