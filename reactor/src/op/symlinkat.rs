//! `IORING_OP_SYMLINKAT`: make a symbolic link.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// `symlinkat(target, AT_FDCWD, link)`: `link` becomes a symbolic link whose contents are
/// `target` (which need not exist).
#[derive(Debug)]
pub struct SymlinkAt {
    target: CString,
    link: CString,
}

impl SymlinkAt {
    /// Makes `link` a symbolic link to `target`.
    pub fn new(target: CString, link: CString) -> SymlinkAt {
        SymlinkAt { target, link }
    }
}

// SAFETY: the entry points at the heap bytes of both paths, which the operation owns.
unsafe impl Operation for SymlinkAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::SymlinkAt::new(
            types::Fd(libc::AT_FDCWD),
            self.target.as_ptr(),
            self.link.as_ptr(),
        )
        .build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
