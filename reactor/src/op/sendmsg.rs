//! `IORING_OP_SENDMSG`: a vectored send from several owned buffers, in order; and the
//! `msghdr` that it and [`recvmsg`](super::recvmsg) hand the kernel.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::buf::{BufResult, IoBuf};
use crate::uring::lifecycle::CqeResult;

/// A `msghdr` and its iovecs, both on the heap so that moving the operation moves neither.
pub(crate) struct MsgHeader {
    iov: Box<[libc::iovec]>,
    msg: Box<libc::msghdr>,
}

// SAFETY: the raw pointers in the header point only at the iovecs beside it and into the
// buffers of the operation that owns it; nothing else reaches them, on any thread.
unsafe impl Send for MsgHeader {}

impl Default for MsgHeader {
    fn default() -> MsgHeader {
        MsgHeader {
            iov: Box::new([]),
            // SAFETY: all-zero bytes are a valid `msghdr` (null pointers, zero lengths).
            msg: Box::new(unsafe { std::mem::zeroed() }),
        }
    }
}

impl std::fmt::Debug for MsgHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgHeader")
            .field("iovecs", &self.iov.len())
            .finish()
    }
}

impl MsgHeader {
    /// Stores `iov` and points the header at it; returns the header's (stable) address.
    pub(crate) fn set(&mut self, iov: Box<[libc::iovec]>) -> *mut libc::msghdr {
        self.iov = iov;
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len() as _;
        &mut *self.msg
    }
}

/// Sends the initialised bytes of `bufs`, in order, with `sendmsg(2)`'s `flags` (pass
/// `libc::MSG_NOSIGNAL` so that a closed peer is `EPIPE`, not `SIGPIPE`). The output is the
/// byte count (possibly fewer than all) and the buffers, unchanged.
#[derive(Debug)]
pub struct SendMsg<F, B> {
    fd: F,
    bufs: Vec<B>,
    flags: u32,
    msg: MsgHeader,
}

impl<F: AsRawFd + std::marker::Send + 'static, B: IoBuf> SendMsg<F, B> {
    /// A send of `bufs`' initialised bytes.
    pub fn new(fd: F, bufs: Vec<B>, flags: i32) -> SendMsg<F, B> {
        SendMsg {
            fd,
            bufs,
            flags: flags as u32,
            msg: MsgHeader::default(),
        }
    }

    /// The descriptor and the buffers (for a send that was not submitted).
    pub fn into_parts(self) -> (F, Vec<B>) {
        (self.fd, self.bufs)
    }
}

// SAFETY: the entry points at the heap `msghdr`, whose iovecs (on the heap too) point at
// each buffer's initialised bytes (the `IoBuf` contract: they do not move with the
// operation), and at `fd`, which the operation keeps open.
unsafe impl<F: AsRawFd + std::marker::Send + 'static, B: IoBuf> Operation for SendMsg<F, B> {
    type Output = BufResult<usize, Vec<B>>;

    fn sqe(&mut self) -> squeue::Entry {
        let iov = self
            .bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.stable_ptr().cast_mut().cast(),
                iov_len: b.bytes_init(),
            })
            .collect();
        let msg = self.msg.set(iov);
        opcode::SendMsg::new(types::Fd(self.fd.as_raw_fd()), msg)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        (cqe.result.map(|n| n as usize), self.bufs)
    }
}
