//! `IORING_OP_RENAMEAT`: rename a file or directory.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, 0)`: replaces `to` if it exists (as
/// `rename(2)` does).
#[derive(Debug)]
pub struct RenameAt {
    from: CString,
    to: CString,
}

impl RenameAt {
    /// Renames `from` to `to`.
    pub fn new(from: CString, to: CString) -> RenameAt {
        RenameAt { from, to }
    }
}

// SAFETY: the entry points at the heap bytes of `from` and `to`, which the operation owns.
unsafe impl Operation for RenameAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::RenameAt::new(cwd, self.from.as_ptr(), cwd, self.to.as_ptr()).build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
