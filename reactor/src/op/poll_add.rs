//! `IORING_OP_POLL_ADD`, one-shot: a descriptor reporting one of a set of `poll(2)` events.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// Completes when `fd` reports one of `events` (`libc::POLLIN`, `POLLOUT`, ...), or an
/// error or hang-up; the output is the events the kernel reported.
#[derive(Debug)]
pub struct PollAdd<F> {
    fd: F,
    events: u32,
}

impl<F: AsRawFd + Send + 'static> PollAdd<F> {
    /// Waits for `events` (a `poll(2)` event mask) on `fd`.
    pub fn new(fd: F, events: i16) -> PollAdd<F> {
        PollAdd {
            fd,
            events: events as u16 as u32,
        }
    }
}

// SAFETY: a poll entry points at no memory, only at `fd`, which the operation keeps open.
unsafe impl<F: AsRawFd + Send + 'static> Operation for PollAdd<F> {
    type Output = io::Result<u32>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.fd.as_raw_fd()), self.events).build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<u32> {
        cqe.result
    }
}
