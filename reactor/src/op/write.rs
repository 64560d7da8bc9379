//! `IORING_OP_WRITE`: a positioned write from an owned buffer.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// Writes `buf[start..buf.len()]` at offset `pos` of `fd` (at most `u32::MAX` bytes; the
/// kernel ignores `pos` on a file that cannot seek, and Linux on an `O_APPEND` one). The
/// output is the byte count and the buffer, unchanged.
#[derive(Debug)]
pub struct Write<F> {
    fd: F,
    buf: Vec<u8>,
    start: usize,
    pos: u64,
}

impl<F: AsRawFd + Send + 'static> Write<F> {
    /// A write of `buf[start..len]` (`start` is clamped to `buf.len()`).
    pub fn new(fd: F, buf: Vec<u8>, start: usize, pos: u64) -> Write<F> {
        let start = start.min(buf.len());
        Write {
            fd,
            buf,
            start,
            pos,
        }
    }

    /// The descriptor and the buffer (for an operation that was not submitted).
    pub fn into_parts(self) -> (F, Vec<u8>) {
        (self.fd, self.buf)
    }
}

// SAFETY: the entry points into `buf`'s initialised bytes (`start <= len`) and at `fd`,
// which the operation keeps open; neither moves when the operation does.
unsafe impl<F: AsRawFd + Send + 'static> Operation for Write<F> {
    type Output = (io::Result<usize>, Vec<u8>);

    fn sqe(&mut self) -> squeue::Entry {
        let len = (self.buf.len() - self.start).min(u32::MAX as usize) as u32;
        let ptr = self.buf[self.start..].as_ptr();
        opcode::Write::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
            .offset(self.pos)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        (cqe.result.map(|n| n as usize), self.buf)
    }
}
