//! The process module's ring ops, each a small struct so that they move onto the
//! reactor's op layer in one step:
//!
//! - [`WaitId`]: `IORING_OP_WAITID` (Linux 6.7+) with `WEXITED | WNOWAIT` on the child's
//!   pidfd: completes when the child exits, leaving it for `waitpid` to reap (so
//!   `std::process::Child` keeps building the exit status).
//! - [`PollAdd`]: a one-shot `IORING_OP_POLL_ADD`: a pipe becoming readable or writable,
//!   and a pidfd becoming readable (the child exited) on kernels without `WAITID`.
//!
//! A kernel that rejects `WAITID` (`EINVAL`, an opcode it does not know) switches the
//! process to `POLL_ADD` for good; `WEFT_PIDFD_WAIT=poll` does so from the start, so the
//! tests can cover both paths.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
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

/// A submitted `WAITID` for the child behind `pidfd`; see the module docs.
pub(super) struct WaitId {
    ring: UringHandle,
    user_data: u64,
    /// What the kernel uses until the completion is reaped: the `siginfo_t` it writes and
    /// the pidfd it names (handed to the cleanup if dropped first).
    held: Option<(Box<SigInfo>, Arc<OwnedFd>)>,
}

/// Room for a `siginfo_t` (plain bytes, so the op stays `Send`).
type SigInfo = [u64; 16];
const _: () = assert!(std::mem::size_of::<libc::siginfo_t>() <= std::mem::size_of::<SigInfo>());

impl WaitId {
    /// Submits the op on `ring`, which the calling thread must own.
    pub(super) fn submit(ring: UringHandle, pidfd: Arc<OwnedFd>) -> WaitId {
        let info: Box<SigInfo> = Box::new([0; 16]);
        let entry = opcode::WaitId::new(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            libc::WEXITED | libc::WNOWAIT,
        )
        .infop(info.as_ptr().cast())
        .build();
        // SAFETY: the entry points at `info`'s heap allocation (which does not move when
        // the Box does) and names `pidfd`; the op holds both until the completion is
        // reaped or hands them to the ring's cleanup (see `Drop`).
        let Some(user_data) = (unsafe { ring.submit(entry) }) else {
            unreachable!("current_ring() hands out only rings this thread owns")
        };
        WaitId {
            ring,
            user_data,
            held: Some((info, pidfd)),
        }
    }
}

impl Future for WaitId {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let r = std::task::ready!(self.ring.poll(self.user_data, cx.waker()));
        coop.made_progress();
        self.held = None;
        Poll::Ready(r.result.map(|_| ()))
    }
}

impl Drop for WaitId {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            self.ring
                .abandon(self.user_data, Box::new(move |_| drop(held)));
        }
    }
}

/// Whether `WAITID` is still worth trying (see the module docs).
fn waitid_enabled() -> &'static AtomicBool {
    static ON: OnceLock<AtomicBool> = OnceLock::new();
    ON.get_or_init(|| AtomicBool::new(std::env::var("WEFT_PIDFD_WAIT").as_deref() != Ok("poll")))
}

/// Waits until the child behind `pidfd` has exited (not reaping it): `WAITID`, or
/// `POLL_ADD` on kernels without it, on a ring worker's ring; the readiness thread
/// elsewhere.
pub(super) async fn exited(pidfd: &Arc<OwnedFd>) -> io::Result<()> {
    if let Some(ring) = crate::io::current_ring() {
        let on = waitid_enabled();
        if on.load(Relaxed) {
            match WaitId::submit(ring.clone(), pidfd.clone()).await {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => on.store(false, Relaxed),
                r => return r,
            }
        }
        return PollAdd::submit(ring, pidfd.clone(), libc::POLLIN).await;
    }
    crate::poller::ready(pidfd.clone(), libc::POLLIN).await
}

/// Waits until `fd` reports one of `events`: on the calling thread's ring if it owns one
/// (a ring worker), else through the process's readiness thread (`poller.rs`).
pub(crate) async fn ready(fd: &Arc<OwnedFd>, events: i16) -> io::Result<()> {
    match crate::io::current_ring() {
        Some(ring) => PollAdd::submit(ring, fd.clone(), events).await,
        None => crate::poller::ready(fd.clone(), events).await,
    }
}
