//! `IORING_OP_WAITID` (Linux 6.7+) on a pidfd: a child's exit, without reaping it.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// Room for a `siginfo_t`, as plain words (so the operation stays `Send`).
type SigInfo = [u64; 16];
const _: () = assert!(std::mem::size_of::<libc::siginfo_t>() <= std::mem::size_of::<SigInfo>());

/// Completes when the child behind the pidfd `fd` has exited. It waits with
/// `WEXITED | WNOWAIT`, so the child stays for `waitpid` to reap (and for
/// `std::process::Child` to build its exit status). A kernel without the opcode answers
/// `EINVAL`.
#[derive(Debug)]
pub struct WaitId<F> {
    pidfd: F,
    /// The `siginfo_t` the kernel writes: a heap allocation, so it does not move.
    info: Box<SigInfo>,
}

impl<F: AsRawFd + Send + 'static> WaitId<F> {
    /// Waits for the exit of the child behind `pidfd`.
    pub fn new(pidfd: F) -> WaitId<F> {
        WaitId {
            pidfd,
            info: Box::new([0; 16]),
        }
    }
}

// SAFETY: the entry points at `info`'s heap allocation, which the operation owns and which
// does not move when the operation does, and names `pidfd`, which the operation keeps open.
unsafe impl<F: AsRawFd + Send + 'static> Operation for WaitId<F> {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::WaitId::new(
            libc::P_PIDFD,
            self.pidfd.as_raw_fd() as libc::id_t,
            libc::WEXITED | libc::WNOWAIT,
        )
        .infop(self.info.as_ptr().cast())
        .build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
