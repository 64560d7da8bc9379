//! `IORING_OP_UNLINKAT`: remove a file (`unlink`) or an empty directory (`rmdir`).

use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// `unlinkat(AT_FDCWD, path, dir ? AT_REMOVEDIR : 0)`.
#[derive(Debug)]
pub struct UnlinkAt {
    path: CString,
    dir: bool,
}

impl UnlinkAt {
    /// Removes the file `path` or, if `dir`, the empty directory `path`.
    pub fn new(path: CString, dir: bool) -> UnlinkAt {
        UnlinkAt { path, dir }
    }
}

// SAFETY: the entry points at `path`'s heap bytes, which the operation owns.
unsafe impl Operation for UnlinkAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        let flags = if self.dir { libc::AT_REMOVEDIR } else { 0 };
        opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(flags)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
