//! `IORING_OP_CONNECT`: connecting a socket to an address.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use super::accept::RawAddr;
use crate::uring::lifecycle::CqeResult;

/// `connect(fd, addr)`; the output is the connect's result. The kernel waits for a TCP
/// handshake itself, on a non-blocking socket too. Abandoned, the attempt goes on in the
/// kernel until it completes or the socket is closed.
#[derive(Debug)]
pub struct Connect<F> {
    fd: F,
    /// On the heap: the kernel may read it after the entry is submitted.
    addr: Box<RawAddr>,
}

impl<F: AsRawFd + Send + 'static> Connect<F> {
    /// A connect of `fd` to `addr` (`addr.len` bytes of its storage).
    pub fn new(fd: F, addr: RawAddr) -> Connect<F> {
        Connect {
            fd,
            addr: Box::new(addr),
        }
    }

    /// The descriptor (for a connect that was not submitted).
    pub fn into_inner(self) -> F {
        self.fd
    }
}

// SAFETY: the entry points at the heap `RawAddr`, which the operation owns and which does
// not move with it, and at `fd`, which it keeps open.
unsafe impl<F: AsRawFd + Send + 'static> Operation for Connect<F> {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::Connect::new(
            types::Fd(self.fd.as_raw_fd()),
            (&self.addr.storage as *const libc::sockaddr_storage).cast(),
            self.addr.len,
        )
        .build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
