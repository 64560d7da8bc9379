//! [`File`]: an open file, read and written at explicit offsets with owned buffers.

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{self, Fd};
use super::error::with_path;
use super::{Metadata, OpenOptions};
#[cfg(doc)]
use crate::buf::Slice;
use crate::buf::{BufResult, IoBuf, IoBufMut};

/// An open file.
///
/// There is no cursor: every read and write names its offset (`pread`/`pwrite`), so a
/// `File` is `Send + Sync` and any number of operations may run on it at once, from any
/// task (share it with an `Arc`).
///
/// Reads and writes take the buffer **by value** and give it back with the result, because
/// the buffer belongs to the operation while it is in flight (see the
/// [module docs](crate::fs#owned-buffers)). Any owned buffer of [`crate::buf`] will do: a
/// `Vec<u8>`, a `Box<[u8]>`, a `&'static str` to write, `bytes::BytesMut` (feature
/// `bytes`), or a [`Slice`](crate::buf::Slice) of one to read into part of it:
///
/// - [`read_at`](File::read_at) reads up to `buf.bytes_total()` bytes (a `Vec`'s capacity)
///   into the front of `buf` (its old contents are overwritten, not appended to) and
///   returns it with its initialised length set to the number of bytes read (a `Vec`'s
///   `len()`);
/// - [`write_at`](File::write_at) writes the first `buf.bytes_init()` bytes (a `Vec`'s
///   `buf[..buf.len()]`).
///
/// # Closing
///
/// [`close`](File::close) closes the file and reports `close(2)`'s error (a deferred write
/// error on NFS, say). Dropping a `File` closes it too, on the dropping thread and without
/// reporting errors; for a local file that is a short system call. A descriptor still used
/// by an operation whose future was dropped mid-flight stays open until that operation
/// ends; `close` waits for those operations first.
///
/// # Examples
///
/// ```
/// use weft_runtime::buf::IoBuf;
/// use weft_runtime::fs::File;
///
/// let path = std::env::temp_dir().join(format!("weft-doc-file-{}", std::process::id()));
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let file = File::create(&path).await?;
///     let (res, _buf) = file.write_all_at("hello, weft", 0).await;
///     res?;
///     file.sync_all().await?;
///     file.close().await?;
///
///     let file = File::open(&path).await?;
///     let (res, buf) = file.read_at(Vec::with_capacity(5), 7).await;
///     assert_eq!(res?, 4);
///     assert_eq!(buf, b"weft");
///
///     // Into part of a larger buffer, keeping what is before it.
///     let mut buf = Vec::with_capacity(9);
///     buf.extend_from_slice(b"hi, ");
///     let (res, slice) = file.read_exact_at(buf.slice(4..9), 0).await;
///     res?;
///     assert_eq!(slice.into_inner(), b"hi, hello");
///     assert_eq!(file.metadata().await?.len(), 11);
///     Ok::<(), std::io::Error>(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct File {
    fd: Fd,
    /// For error messages.
    /// Shared, so that callback reads can name it in an error without copying it per op.
    path: Arc<Path>,
}

impl File {
    pub(crate) fn from_parts(fd: Fd, path: PathBuf) -> File {
        File {
            fd,
            path: Arc::from(path),
        }
    }

    /// Wraps a file opened by `std` (or inherited), so that weft does its I/O. `path` is
    /// only used to name the file in errors.
    ///
    /// Needs no runtime: a `File` is not tied to one, and each operation runs on the
    /// runtime that polls it.
    ///
    /// # Examples
    ///
    /// ```
    /// let std_file = std::fs::File::open("/proc/self/stat")?;
    /// let file = weft_runtime::fs::File::from_std(std_file, "/proc/self/stat");
    /// assert_eq!(file.path(), std::path::Path::new("/proc/self/stat"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(file: std::fs::File, path: impl Into<PathBuf>) -> File {
        File::from_parts(Fd::new(file), path.into())
    }

    /// Opens `path` read-only.
    ///
    /// # Errors
    ///
    /// As [`OpenOptions::open`]: a missing file gives
    /// [`NotFound`](io::ErrorKind::NotFound), with the path in the message.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` write-only, creating it if needed and truncating it if it exists.
    ///
    /// # Errors
    ///
    /// As [`OpenOptions::open`].
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Reads up to `buf.bytes_total()` bytes (a `Vec`'s capacity, a [`Slice`]'s
    /// `end - begin`) at offset `pos` into the front of `buf`.
    ///
    /// Returns the number of bytes read and the buffer, with
    /// [`set_init`](IoBufMut::set_init) of that number: a `Vec`'s or `BytesMut`'s length is
    /// set to it (0 on error), a `Box<[u8]>` stays as long as it was, a [`Slice`]'s buffer
    /// grows to cover what was read. The old contents do not matter. `Ok(0)` means `pos` is at or past the
    /// end of the file (or the buffer has no capacity). A read may be short even before the
    /// end of the file; use [`read_exact_at`](File::read_exact_at) to fill the buffer.
    /// On a file that cannot seek (a FIFO, a pipe) `pos` is ignored and the read takes what
    /// the stream has, on either driver.
    ///
    /// `Vec::with_capacity(n)` guarantees *at least* `n` bytes; for `u8` the allocation is
    /// exactly `n` in practice, but check `buf.capacity()` where an exact bound matters.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if `pos` is above `i64::MAX` or the
    /// read would end past it (for every positioned call: the kernel cannot express such an
    /// offset). The operating system's error (say, `EISDIR` on a directory), naming the path. If the
    /// runtime shuts down before the read runs, an [`Other`](io::ErrorKind::Other) error
    /// and the buffer, as it was.
    ///
    /// # Cancellation
    ///
    /// Dropping the future before it completes does not stop a read that has started: the
    /// read finishes into the buffer (which it owns) and the buffer is then freed.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        let (res, buf) = backend::read_at(&self.fd, buf, pos).await;
        (res.map_err(|e| with_path("read_at", &self.path, e)), buf)
    }

    /// Reads exactly `buf.bytes_total()` bytes (a `Vec`'s capacity) at offset `pos` into
    /// `buf`.
    ///
    /// On return the buffer's initialised length covers the bytes read (a `Vec`'s `len()`
    /// is that number): its capacity on success, less on error (the bytes before the failure
    /// are valid).
    ///
    /// # Errors
    ///
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) if the file ends first; otherwise as
    /// [`read_at`](File::read_at). The message names the path.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let (res, buf) = backend::read_exact_at(&self.fd, buf, pos).await;
        (
            res.map_err(|e| with_path("read_exact_at", &self.path, e)),
            buf,
        )
    }

    /// Writes the first `buf.bytes_init()` bytes (a `Vec`'s `buf[..buf.len()]`, all of a
    /// `&'static str`) at offset `pos`, returning how many bytes were written (possibly
    /// fewer) and the buffer, unchanged.
    ///
    /// Writing past the end of the file extends it (the gap reads as zeros). On a file
    /// opened with [`append`](OpenOptions::append), Linux ignores `pos` and appends.
    ///
    /// # Errors
    ///
    /// As [`read_at`](File::read_at) (`EBADF` if the file was not opened for writing).
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        let (res, buf) = backend::write_at(&self.fd, buf, pos).await;
        (res.map_err(|e| with_path("write_at", &self.path, e)), buf)
    }

    /// Writes all of the first `buf.bytes_init()` bytes at offset `pos`, returning the
    /// buffer, unchanged.
    ///
    /// # Errors
    ///
    /// As [`write_at`](File::write_at); [`WriteZero`](io::ErrorKind::WriteZero) if the
    /// system accepts no more bytes. Part of the buffer may have been written.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let (res, buf) = backend::write_all_at(&self.fd, buf, pos).await;
        (
            res.map_err(|e| with_path("write_all_at", &self.path, e)),
            buf,
        )
    }

    /// The file's metadata (`statx` with `AT_EMPTY_PATH` on a ring, `fstat` on the pool).
    ///
    /// # Errors
    ///
    /// The operating system's error, naming the path.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        backend::metadata(&self.fd)
            .await
            .map_err(|e| with_path("metadata", &self.path, e))
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    ///
    /// # Errors
    ///
    /// The operating system's error, naming the path.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn sync_all(&self) -> io::Result<()> {
        backend::sync_all(&self.fd)
            .await
            .map_err(|e| with_path("sync_all", &self.path, e))
    }

    /// Flushes the file's data, and only the metadata needed to read it back, to the device
    /// (`fdatasync`).
    ///
    /// # Errors
    ///
    /// The operating system's error, naming the path.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn sync_data(&self) -> io::Result<()> {
        backend::sync_data(&self.fd)
            .await
            .map_err(|e| with_path("sync_data", &self.path, e))
    }

    /// Truncates or extends the file to `size` bytes (`ftruncate`); an extension reads as
    /// zeros and, on most file systems, takes no space (a sparse file).
    ///
    /// # Errors
    ///
    /// The operating system's error, naming the path (`EINVAL` if the file is not open for
    /// writing).
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        backend::set_len(&self.fd, size)
            .await
            .map_err(|e| with_path("set_len", &self.path, e))
    }

    /// Sets the file's permission bits (`fchmod`, on the blocking pool).
    ///
    /// # Errors
    ///
    /// The operating system's error, naming the path.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        backend::set_permissions(&self.fd, perm)
            .await
            .map_err(|e| with_path("set_permissions", &self.path, e))
    }

    /// A second `File` for the same open file (`dup` with `FD_CLOEXEC`): it shares the
    /// offset-free descriptor state (status flags, locks) with this one.
    ///
    /// # Errors
    ///
    /// The operating system's error (`EMFILE` when the process has no descriptor left),
    /// naming the path.
    pub async fn try_clone(&self) -> io::Result<File> {
        let file = self
            .fd
            .file
            .try_clone()
            .map_err(|e| with_path("try_clone", &self.path, e))?;
        Ok(File {
            fd: Fd::new(file),
            path: self.path.clone(),
        })
    }

    /// The `std::fs::File` for this file, after the operations whose futures were dropped
    /// mid-flight have let go of the descriptor (as [`close`](File::close) waits for them).
    ///
    /// # Panics
    ///
    /// If an operation's future was leaked (`mem::forget`) mid-flight, it keeps the
    /// descriptor for good; the `std::fs::File` is then a duplicate of it, and this panics
    /// if the process has no descriptor left for the duplicate.
    pub async fn into_std(self) -> std::fs::File {
        let File { fd, path } = self;
        match backend::release_shared(fd).await {
            Ok(file) => file,
            Err(shared) => shared
                .try_clone()
                .unwrap_or_else(|e| panic!("weft::fs: into_std {}: {e}", path.display())),
        }
    }

    pub(crate) fn fd(&self) -> &Fd {
        &self.fd
    }

    pub(crate) fn shared_path(&self) -> &Arc<Path> {
        &self.path
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file, reporting `close(2)`'s error.
    ///
    /// First waits for the operations on this file whose futures were dropped before they
    /// completed (they still use the descriptor), then closes it on the blocking pool. The
    /// descriptor is released whether or not an error is returned: do not retry. If this
    /// future is dropped before it completes, the file is still closed, without the error.
    ///
    /// # Errors
    ///
    /// The error of `close(2)`, naming the path: a write error the file system reports only
    /// at close (NFS, some FUSE file systems). Data may have been lost; [`sync_all`](File::sync_all)
    /// before closing is the way to learn of write errors reliably.
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn close(self) -> io::Result<()> {
        let File { fd, path } = self;
        backend::close(fd)
            .await
            .map_err(|e| with_path("close", &path, e))
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.file.as_fd()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd.raw())
            .field("path", &self.path)
            .finish()
    }
}
