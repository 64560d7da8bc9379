//! `IORING_OP_LINKAT`: make a hard link.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue, types};

use super::Operation;
use crate::uring::lifecycle::CqeResult;

/// `linkat(AT_FDCWD, original, AT_FDCWD, link, 0)`: `link` becomes another name of
/// `original` (a symbolic link `original` is linked itself, not followed, as `link(2)`
/// does on Linux).
#[derive(Debug)]
pub struct LinkAt {
    original: CString,
    link: CString,
}

impl LinkAt {
    /// Makes `link` a hard link to `original`.
    pub fn new(original: CString, link: CString) -> LinkAt {
        LinkAt { original, link }
    }
}

// SAFETY: the entry points at the heap bytes of both paths, which the operation owns.
unsafe impl Operation for LinkAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> squeue::Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::LinkAt::new(cwd, self.original.as_ptr(), cwd, self.link.as_ptr()).build()
    }

    fn complete(self, cqe: CqeResult) -> io::Result<()> {
        cqe.result.map(drop)
    }
}
