//! `IORING_OP_CLOSE`, and [`close_reporting`] for threads without a ring: closing a
//! descriptor with its error (std's `File` ignores close errors on drop).

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// Closes a descriptor and reports the error. The kernel releases the descriptor once the
/// entry is submitted, whatever the result and whether or not its future is dropped.
#[derive(Debug)]
pub struct Close {
    /// `Some` until submitted.
    fd: Option<OwnedFd>,
    raw: RawFd,
}

impl Close {
    /// A close of `fd`.
    pub fn new(fd: OwnedFd) -> Close {
        use std::os::fd::AsRawFd;
        let raw = fd.as_raw_fd();
        Close { fd: Some(fd), raw }
    }

    /// The descriptor, if the close was not submitted.
    pub fn into_inner(self) -> Option<OwnedFd> {
        self.fd
    }
}

// SAFETY: the entry points at no memory; the descriptor is handed to the kernel, which
// owns it from the submission on.
unsafe impl Operation for Close {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        // From here the kernel owns the descriptor: it must not be closed again.
        let raw = self.fd.take().map_or(self.raw, IntoRawFd::into_raw_fd);
        opcode::Close::new(types::Fd(raw)).build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}

/// `close(2)` of `fd` on the calling thread, with its error. The descriptor is released
/// whatever the result (Linux never leaves it open, even on `EINTR`): do not retry.
pub fn close_reporting(fd: OwnedFd) -> io::Result<()> {
    let fd = fd.into_raw_fd();
    // SAFETY: `into_raw_fd` gave this function sole ownership of `fd`: nothing else will
    // use or close it.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
