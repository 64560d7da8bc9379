//! `IORING_OP_FSYNC`: `fsync` or `fdatasync`.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// Flushes `fd`'s data (and, unless `data_only`, its metadata) to the device.
#[derive(Debug)]
pub struct Fsync<F> {
    fd: F,
    data_only: bool,
}

impl<F: AsRawFd + Send + 'static> Fsync<F> {
    /// `fsync(fd)`, or `fdatasync(fd)` if `data_only`.
    pub fn new(fd: F, data_only: bool) -> Fsync<F> {
        Fsync { fd, data_only }
    }

    /// The descriptor (for an operation that was not submitted).
    pub fn into_inner(self) -> F {
        self.fd
    }
}

// SAFETY: the entry points at no memory, only at `fd`, which the operation keeps open.
unsafe impl<F: AsRawFd + Send + 'static> Operation for Fsync<F> {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        let mut entry = opcode::Fsync::new(types::Fd(self.fd.as_raw_fd()));
        if self.data_only {
            entry = entry.flags(types::FsyncFlags::DATASYNC);
        }
        entry.build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
