//! `IORING_OP_OPENAT`: open a path relative to the working directory.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// `openat(AT_FDCWD, path, flags, mode)`; the output is the new descriptor. Abandoned
/// before its completion, it closes the descriptor the kernel opens anyway.
#[derive(Debug)]
pub struct OpenAt {
    path: CString,
    flags: i32,
    mode: u32,
}

impl OpenAt {
    /// An open of `path` with `open(2)`'s `flags` and `mode`.
    pub fn new(path: CString, flags: i32, mode: u32) -> OpenAt {
        OpenAt { path, flags, mode }
    }
}

/// The descriptor a successful `openat` returned.
fn owned(fd: u32) -> OwnedFd {
    // SAFETY: a successful openat returns a new descriptor that nothing else knows of;
    // this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

// SAFETY: the entry points at `path`'s heap bytes, which the operation owns.
unsafe impl Operation for OpenAt {
    type Output = io::Result<OwnedFd>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<OwnedFd> {
        cqe.result.map(owned)
    }

    fn cleanup(self, cqe: CqeResult) {
        // Nobody wants the file any more: close what the kernel opened.
        if let Ok(fd) = cqe.result {
            drop(owned(fd));
        }
    }
}
