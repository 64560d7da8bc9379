//! `IORING_OP_RECVMSG`: a vectored receive into several owned buffers, in order.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::Operation;
use super::recv::Abandoned;
use super::sendmsg::MsgHeader;
use crate::buf::{BufResult, IoBufMut};
use crate::uring::lifecycle::CqeResult;

/// Receives into `bufs` in order, each from its start to its `bytes_total()`, with
/// `recvmsg(2)`'s `flags`. The output is the byte count and the buffers: those the bytes
/// filled have [`set_init`](IoBufMut::set_init) to their size, the one they ended in to
/// what it got, the rest to 0. Abandoned, it hands what it received, in order, to its
/// [`Abandoned`] hook.
#[derive(Debug)]
pub struct RecvMsg<F, B, H = ()> {
    fd: F,
    bufs: Vec<B>,
    flags: u32,
    hook: H,
    msg: MsgHeader,
}

impl<F: AsRawFd + Send + 'static, B: IoBufMut, H: Abandoned> RecvMsg<F, B, H> {
    /// A receive into `bufs`, handing an abandoned receive's bytes to `hook`.
    pub fn new(fd: F, bufs: Vec<B>, flags: i32, hook: H) -> RecvMsg<F, B, H> {
        RecvMsg {
            fd,
            bufs,
            flags: flags as u32,
            hook,
            msg: MsgHeader::default(),
        }
    }

    /// The descriptor, the buffers and the hook (for a receive that was not submitted).
    pub fn into_parts(self) -> (F, Vec<B>, H) {
        (self.fd, self.bufs, self.hook)
    }
}

// SAFETY: the entry points at the heap `msghdr`, whose iovecs (on the heap too) point into
// each buffer's storage within its `bytes_total` (the `IoBufMut` contract: it does not
// move with the operation), and at `fd`, which the operation keeps open.
unsafe impl<F: AsRawFd + Send + 'static, B: IoBufMut, H: Abandoned> Operation for RecvMsg<F, B, H> {
    type Output = BufResult<usize, Vec<B>>;

    fn sqe(&mut self) -> squeue::Entry {
        let iov = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            })
            .collect();
        let msg = self.msg.set(iov);
        opcode::RecvMsg::new(types::Fd(self.fd.as_raw_fd()), msg)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        let mut bufs = self.bufs;
        match cqe.result {
            Ok(n) => {
                let mut left = n as usize;
                for b in &mut bufs {
                    let got = left.min(b.bytes_total());
                    // SAFETY: the kernel filled the iovecs in order, so `got` bytes from
                    // this buffer's start are initialised, within its `bytes_total`; the
                    // completion is reaped, so it writes no more.
                    unsafe { b.set_init(got) };
                    left -= got;
                }
                (Ok(n as usize), bufs)
            }
            Err(e) => (Err(e), bufs),
        }
    }

    fn cleanup(self, cqe: CqeResult) {
        let mut left = match cqe.result {
            Ok(n) if self.flags & libc::MSG_PEEK as u32 == 0 => n as usize,
            _ => 0,
        };
        let mut bytes = Vec::with_capacity(left);
        for b in &self.bufs {
            if left == 0 {
                break;
            }
            let got = left.min(b.bytes_total());
            // SAFETY: the kernel initialised `got` bytes from this buffer's start and is
            // done with them; the buffer lives until the end of this function.
            bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(b.stable_ptr(), got) });
            left -= got;
        }
        self.hook.received(&bytes);
    }
}
