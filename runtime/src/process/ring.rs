//! The process module's one ring op: a one-shot `IORING_OP_POLL_ADD`, which waits for a
//! pidfd to become readable (the child exited) or a pipe to become readable or writable.
//!
//! Kept as one small struct so that it moves onto the reactor's op layer in one step.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use io_uring::{opcode, types};
use weft_reactor::uring::UringHandle;

/// A submitted `POLL_ADD` on `fd` for `events`; completes when one of them (or an error or
/// hang-up) is reported.
pub(super) struct PollAdd {
    ring: UringHandle,
    user_data: u64,
    /// Kept open until the completion is reaped (handed to the cleanup if dropped first).
    fd: Option<Arc<OwnedFd>>,
}

impl PollAdd {
    /// Submits the op on `ring`, which the calling thread must own (as
    /// `crate::io::current_ring` guarantees).
    pub(super) fn submit(ring: UringHandle, fd: Arc<OwnedFd>, events: i16) -> PollAdd {
        let entry = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), events as u16 as u32).build();
        // SAFETY: a poll SQE points to no memory; the descriptor it names is held open by
        // `fd`, which the op keeps until the completion is reaped or hands to the ring's
        // cleanup (see `Drop`).
        let Some(user_data) = (unsafe { ring.submit(entry) }) else {
            unreachable!("current_ring() hands out only rings this thread owns")
        };
        PollAdd {
            ring,
            user_data,
            fd: Some(fd),
        }
    }
}

impl Future for PollAdd {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let r = std::task::ready!(self.ring.poll(self.user_data, cx.waker()));
        coop.made_progress();
        self.fd = None;
        Poll::Ready(r.result.map(|_| ()))
    }
}

impl Drop for PollAdd {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            self.ring
                .abandon(self.user_data, Box::new(move |_| drop(fd)));
        }
    }
}

/// Waits until `fd` reports one of `events`: on the calling thread's ring if it owns one
/// (a ring worker), else through the process's readiness thread (`poller.rs`).
pub(super) async fn ready(fd: &Arc<OwnedFd>, events: i16) -> io::Result<()> {
    match crate::io::current_ring() {
        Some(ring) => PollAdd::submit(ring, fd.clone(), events).await,
        None => crate::poller::ready(fd.clone(), events).await,
    }
}
