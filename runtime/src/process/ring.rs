//! How the process module waits on the ring, through the reactor's ops:
//!
//! - [`WaitId`]: `IORING_OP_WAITID` (Linux 6.7+) with `WEXITED | WNOWAIT` on the child's
//!   pidfd: completes when the child exits, leaving it for `waitpid` to reap (so
//!   `std::process::Child` keeps building the exit status).
//! - [`PollAdd`]: a one-shot `IORING_OP_POLL_ADD`: a pipe becoming readable or writable,
//!   and a pidfd becoming readable (the child exited) on kernels without `WAITID`.
//!
//! A fallback worker (no ring) waits for the same readiness with a one-shot registration
//! on its own epoll (`weft_reactor::epoll`); a thread with neither, on the poller thread.
//!
//! A kernel that rejects `WAITID` (`EINVAL`, an opcode it does not know) switches the
//! process to `POLL_ADD` for good; `WEFT_PIDFD_WAIT=poll` does so from the start, so the
//! tests can cover both paths.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use weft_reactor::op::Op;
use weft_reactor::op::poll_add::PollAdd;
use weft_reactor::op::waitid::WaitId;

/// A descriptor kept open by the op that names it (shared with the pipe or child).
struct SharedFd(Arc<OwnedFd>);

impl std::os::fd::AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// A wait (an [`Op`], an epoll readiness wait) with the runtime's cooperative budget.
pub(crate) struct Budgeted<F>(pub(crate) F);

impl<F: Future + Unpin> Future for Budgeted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let out = std::task::ready!(Pin::new(&mut self.0).poll(cx));
        coop.made_progress();
        Poll::Ready(out)
    }
}

/// Whether `WAITID` is still worth trying (see the module docs).
fn waitid_enabled() -> &'static AtomicBool {
    static ON: OnceLock<AtomicBool> = OnceLock::new();
    ON.get_or_init(|| AtomicBool::new(std::env::var("WEFT_PIDFD_WAIT").as_deref() != Ok("poll")))
}

/// Waits until the child behind `pidfd` has exited (not reaping it): `WAITID`, or
/// `POLL_ADD` on kernels without it, on the calling thread's ring if it owns one (a ring
/// worker); readiness elsewhere (see [`ready`]).
pub(super) async fn exited(pidfd: &Arc<OwnedFd>) -> io::Result<()> {
    let on = waitid_enabled();
    if on.load(Relaxed) {
        if let Ok(op) = Op::submit(WaitId::new(SharedFd(pidfd.clone()))) {
            match Budgeted(op).await {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => on.store(false, Relaxed),
                r => return r,
            }
        }
    }
    ready(pidfd, libc::POLLIN).await
}

/// Waits until `fd` reports one of `events`: a `POLL_ADD` on the calling thread's ring if
/// it owns one (a ring worker), a one-shot registration on its epoll if it owns one (a
/// fallback worker), else through the process's readiness thread (`poller.rs`).
pub(crate) async fn ready(fd: &Arc<OwnedFd>, events: i16) -> io::Result<()> {
    match Op::submit(PollAdd::new(SharedFd(fd.clone()), events)) {
        Ok(op) => Budgeted(op).await.map(drop),
        Err(_) => match weft_reactor::epoll::current() {
            Some(epoll) => Budgeted(weft_reactor::epoll::ready(epoll, fd.clone(), events)).await,
            None => crate::poller::ready(fd.clone(), events).await,
        },
    }
}
