//! [`ReadDir`] and [`DirEntry`]: a directory's entries, read on the blocking pool in
//! batches.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{self, Batch, RawEntry};
use super::error::with_path;
use super::{FileType, Metadata};
use crate::task::JoinHandle;

/// The entries of a directory, from [`read_dir`](crate::fs::read_dir).
///
/// The kernel has no io_uring opcode for `getdents`, so the entries are read on the
/// blocking pool, a batch of 64 entries per job: one pool round
/// trip serves many [`next_entry`](ReadDir::next_entry) calls. `.` and `..` are skipped;
/// the order is the file system's.
///
/// `next_entry` is cancellation safe: dropped while a batch is being read, its future
/// leaves the job to the `ReadDir`, and the next call picks up its entries, so none is
/// lost.
pub struct ReadDir {
    /// For errors and for the entries' paths.
    path: Arc<Path>,
    buf: VecDeque<io::Result<RawEntry>>,
    state: State,
}

enum State {
    /// The stream, between batches; `None` once it is exhausted.
    Idle(Option<std::fs::ReadDir>),
    /// A batch job on the pool.
    Reading(JoinHandle<Batch>),
}

impl ReadDir {
    pub(crate) fn new(path: PathBuf, (dir, buf): Batch) -> ReadDir {
        ReadDir {
            path: Arc::from(path),
            buf,
            state: State::Idle(dir),
        }
    }

    /// The next entry, or `None` after the last.
    ///
    /// # Errors
    ///
    /// The operating system's error reading the directory, naming it; the stream may go
    /// on after an error, as `std::fs::ReadDir` does.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        loop {
            if let Some(raw) = self.buf.pop_front() {
                return match raw {
                    Ok(raw) => Ok(Some(DirEntry { raw })),
                    Err(e) => Err(with_path("read_dir", &self.path, e)),
                };
            }
            match &mut self.state {
                State::Idle(dir) => match dir.take() {
                    None => return Ok(None),
                    Some(dir) => {
                        self.state =
                            State::Reading(backend::spawn(move || backend::read_dir_batch(dir)));
                    }
                },
                State::Reading(join) => {
                    let res = (&mut *join).await;
                    match res {
                        Ok((dir, buf)) => {
                            self.buf = buf;
                            self.state = State::Idle(dir);
                        }
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => {
                            self.state = State::Idle(None);
                            let e = io::Error::other(
                                "the weft runtime shut down before the operation ran",
                            );
                            return Err(with_path("read_dir", &self.path, e));
                        }
                    }
                }
            }
        }
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("path", &self.path)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// One entry of a [`ReadDir`].
pub struct DirEntry {
    raw: RawEntry,
}

impl DirEntry {
    /// The entry's full path: the directory's path joined with the file name.
    pub fn path(&self) -> PathBuf {
        self.raw.path.clone()
    }

    /// The file name alone.
    pub fn file_name(&self) -> OsString {
        self.raw.file_name.clone()
    }

    /// The entry's metadata, not following a symbolic link (as
    /// [`symlink_metadata`](crate::fs::symlink_metadata) of [`path`](DirEntry::path)).
    ///
    /// # Errors
    ///
    /// The operating system's error, naming the path (`NotFound` if the entry was removed
    /// since the directory was read).
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        super::symlink_metadata(&self.raw.path).await
    }

    /// The entry's type, not following a symbolic link. Usually known from reading the
    /// directory (`d_type`), with no further system call; otherwise as
    /// [`metadata`](DirEntry::metadata).
    ///
    /// # Errors
    ///
    /// As [`metadata`](DirEntry::metadata), when that is needed.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn file_type(&self) -> io::Result<FileType> {
        match self.raw.file_type {
            Some(ft) => Ok(FileType::from_std(ft)),
            None => Ok(self.metadata().await?.file_type()),
        }
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.raw.path).finish()
    }
}
