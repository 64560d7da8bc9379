//! `IORING_OP_MKDIRAT`: create a directory.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// `mkdirat(AT_FDCWD, path, mode)`.
#[derive(Debug)]
pub struct MkDirAt {
    path: CString,
    mode: u32,
}

impl MkDirAt {
    /// Creates the directory `path` with permission bits `mode` (before the umask).
    pub fn new(path: CString, mode: u32) -> MkDirAt {
        MkDirAt { path, mode }
    }
}

// SAFETY: the entry points at `path`'s heap bytes, which the operation owns.
unsafe impl Operation for MkDirAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .mode(self.mode)
            .build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
