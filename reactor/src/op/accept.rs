//! `IORING_OP_ACCEPT`: a connection from a listening socket, with the peer's address.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// A socket address as the kernel writes it: the storage and how many bytes are used.
#[derive(Clone, Copy)]
pub struct RawAddr {
    /// The address, of any family.
    pub storage: libc::sockaddr_storage,
    /// How many bytes of `storage` hold it.
    pub len: libc::socklen_t,
}

impl RawAddr {
    /// An all-zero address with the whole storage as its length (room for any family).
    pub fn empty() -> RawAddr {
        RawAddr {
            // SAFETY: all-zero bytes are a valid `sockaddr_storage` (plain integers).
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAddr")
            .field("family", &self.storage.ss_family)
            .field("len", &self.len)
            .finish()
    }
}

/// What an [`Accept`] whose future was dropped does with the connection the kernel
/// accepted for it anyway. `()` closes it (the peer sees the connection closed).
pub trait Unclaimed: Send + 'static {
    /// Runs once, on the reaping thread, at the completion of an abandoned accept: with
    /// the connection and its peer's address, or `None` if it accepted none (cancelled,
    /// or an error).
    fn accepted(self, conn: Option<(OwnedFd, RawAddr)>);
}

impl Unclaimed for () {
    fn accepted(self, conn: Option<(OwnedFd, RawAddr)>) {
        drop(conn);
    }
}

/// `accept4(fd, ..., flags)` (pass `SOCK_NONBLOCK | SOCK_CLOEXEC` as wanted); the output is
/// the new descriptor and the peer's address. Abandoned before its completion, it hands a
/// connection the kernel accepted anyway to its [`Unclaimed`] hook (which may queue it
/// for the next accept, or close it), so no descriptor leaks.
///
/// The kernel arms its own readiness wait while no connection is queued, on a
/// non-blocking listener too.
#[derive(Debug)]
pub struct Accept<F, H = ()> {
    fd: F,
    /// On the heap: the kernel writes here after the entry is submitted.
    addr: Box<RawAddr>,
    flags: i32,
    hook: H,
}

impl<F: AsRawFd + Send + 'static> Accept<F> {
    /// An accept on the listening socket `fd`, the new socket made with `flags`; a
    /// connection accepted after the future was dropped is closed.
    pub fn new(fd: F, flags: i32) -> Accept<F> {
        Accept::with_hook(fd, flags, ())
    }
}

impl<F: AsRawFd + Send + 'static, H: Unclaimed> Accept<F, H> {
    /// As [`new`](Accept::new), handing a connection accepted after the future was
    /// dropped to `hook`.
    pub fn with_hook(fd: F, flags: i32, hook: H) -> Accept<F, H> {
        Accept {
            fd,
            addr: Box::new(RawAddr::empty()),
            flags,
            hook,
        }
    }
}

/// The descriptor a successful accept returned.
fn owned(fd: u32) -> OwnedFd {
    // SAFETY: a successful accept returns a new descriptor that nothing else knows of;
    // this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

// SAFETY: the entry points at the heap `RawAddr` (its storage and length), which the
// operation owns and which does not move with it, and at `fd`, which it keeps open.
unsafe impl<F: AsRawFd + Send + 'static, H: Unclaimed> Operation for Accept<F, H> {
    type Output = io::Result<(OwnedFd, RawAddr)>;

    fn sqe(&mut self) -> squeue::Entry {
        let addr = &mut *self.addr;
        opcode::Accept::new(
            types::Fd(self.fd.as_raw_fd()),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
        )
        .flags(self.flags)
        .build()
    }

    fn complete(self, cqe: CqeResult) -> Self::Output {
        cqe.result.map(|fd| (owned(fd), *self.addr))
    }

    fn cleanup(self, cqe: CqeResult) {
        // Nobody waits for the connection any more: the hook decides what becomes of it.
        let conn = cqe.result.ok().map(|fd| (owned(fd), *self.addr));
        self.hook.accepted(conn);
    }
}
