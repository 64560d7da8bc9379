//! `IORING_OP_READ`: a positioned read into an owned buffer.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// Reads into `buf[start..buf.capacity()]` at offset `pos` of `fd` (at most `u32::MAX`
/// bytes; the kernel ignores `pos` on a file that cannot seek). The output is the byte
/// count and the buffer, its length set to `start + n`.
#[derive(Debug)]
pub struct Read<F> {
    fd: F,
    buf: Vec<u8>,
    start: usize,
    pos: u64,
}

impl<F: AsRawFd + Send + 'static> Read<F> {
    /// A read of `buf[start..capacity]`; the bytes before `start` must be initialised
    /// (`start` is clamped to `buf.len()`).
    pub fn new(fd: F, buf: Vec<u8>, start: usize, pos: u64) -> Read<F> {
        let start = start.min(buf.len());
        Read {
            fd,
            buf,
            start,
            pos,
        }
    }

    /// The descriptor and the buffer, unchanged (for an operation that was not submitted).
    pub fn into_parts(self) -> (F, Vec<u8>) {
        (self.fd, self.buf)
    }
}

// SAFETY: the entry points into `buf`'s heap allocation, within its capacity (`start <=
// len <= capacity`, and the length is what remains), and at `fd`, which the operation
// keeps open; neither moves when the operation does.
unsafe impl<F: AsRawFd + Send + 'static> Operation for Read<F> {
    type Output = (io::Result<usize>, Vec<u8>);

    fn sqe(&mut self) -> squeue::Entry {
        let len = (self.buf.capacity() - self.start).min(u32::MAX as usize) as u32;
        // SAFETY: `start <= len <= capacity`: the pointer stays within the allocation.
        let ptr = unsafe { self.buf.as_mut_ptr().add(self.start) };
        opcode::Read::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
            .offset(self.pos)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        let mut buf = self.buf;
        match cqe.result {
            Ok(n) => {
                // SAFETY: the kernel initialised `n` bytes (at most what the entry asked
                // for, within the capacity) from `start`; those before `start` were
                // initialised already (`new`); the completion is reaped, so it writes no
                // more.
                unsafe { buf.set_len(self.start + n as usize) };
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }
}
