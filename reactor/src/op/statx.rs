//! `IORING_OP_STATX`: a file's metadata, by path or by open descriptor.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// `statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_BTIME, buf)`: of `path` relative to
/// the working directory (following a final symbolic link or not), or of an open
/// descriptor (`AT_EMPTY_PATH`). The output is the kernel's `struct statx`.
///
/// The buffer the kernel fills is boxed, so it stays put when the operation moves.
pub struct Statx<F = OwnedFd> {
    /// `Some` for a descriptor's metadata; the path is then empty.
    fd: Option<F>,
    path: CString,
    flags: i32,
    buf: Box<MaybeUninit<libc::statx>>,
}

impl Statx {
    /// The metadata of `path`; of the link itself, not its target, unless `follow`.
    pub fn path(path: CString, follow: bool) -> Statx {
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        Statx {
            fd: None,
            path,
            flags,
            buf: Box::new(MaybeUninit::uninit()),
        }
    }
}

impl<F: AsRawFd + Send + 'static> Statx<F> {
    /// The metadata of the file open as `fd` (`AT_EMPTY_PATH`).
    pub fn fd(fd: F) -> Statx<F> {
        Statx {
            fd: Some(fd),
            path: CString::default(),
            flags: libc::AT_EMPTY_PATH,
            buf: Box::new(MaybeUninit::uninit()),
        }
    }
}

impl<F> std::fmt::Debug for Statx<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statx")
            .field("path", &self.path)
            .field("by_fd", &self.fd.is_some())
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

// SAFETY: the entry points at `path`'s heap bytes and at the boxed `statx` buffer, both
// owned by the operation and not moved by moving it, and at `fd`, which it keeps open.
unsafe impl<F: AsRawFd + Send + 'static> Operation for Statx<F> {
    type Output = io::Result<libc::statx>;

    fn sqe(&mut self) -> squeue::Entry {
        let dirfd = self.fd.as_ref().map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
        let buf = self.buf.as_mut_ptr().cast::<types::statx>();
        opcode::Statx::new(types::Fd(dirfd), self.path.as_ptr(), buf)
            .flags(self.flags)
            .mask(libc::STATX_BASIC_STATS | libc::STATX_BTIME)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<libc::statx> {
        cqe.result?;
        // SAFETY: a successful statx filled the whole buffer, and the completion is
        // reaped, so the kernel writes no more.
        Ok(unsafe { self.buf.assume_init_read() })
    }
}
