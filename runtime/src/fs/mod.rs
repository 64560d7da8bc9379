//! Files and directories: [`File`] and [`OpenOptions`] for positioned reads and writes with
//! owned buffers, the whole-file helpers [`read`], [`read_to_string`] and [`write()`], and
//! the rest of `tokio::fs`'s functions under its names: [`metadata`] (a weft [`Metadata`]),
//! directories ([`create_dir`], [`read_dir`], ...), links, renames, copies and permissions.
//!
//! The names follow tokio-uring and monoio for the buffer calls (`read_at`, `write_at`,
//! `read_exact_at`, `write_all_at`, `close`) and `tokio::fs` for the rest. Every function is
//! `async`, works inside `block_on` and on any worker, and panics when polled outside a
//! runtime.
//!
//! # Owned buffers
//!
//! A read or write takes its buffer by value and returns it with the result:
//!
//! ```text
//! let (res, buf) = file.read_at(buf, offset).await;
//! ```
//!
//! While the operation is in flight the buffer belongs to whatever performs it — the
//! kernel with io_uring, a blocking-pool thread here — and the future that started it may
//! be dropped at any time (a timeout, a `select`, a task cancelled). A borrowed `&mut [u8]`
//! would be freed or reused under the kernel's (or thread's) feet; owning the buffer is what
//! makes cancellation safe without copying. This is the model of tokio-uring and monoio, and
//! the runtime's rule for the reactor: *a buffer or fd handed to the kernel belongs to the
//! in-flight operation until its completion is reaped.* The descriptor obeys it too: it is
//! shared with in-flight operations, so dropping a future never closes, or lets the system
//! reuse, a descriptor a read is still using.
//!
//! The buffer is any [`IoBufMut`](crate::buf::IoBufMut) for a read and any
//! [`IoBuf`](crate::buf::IoBuf) for a write (see [`crate::buf`]): a `Vec<u8>`, a
//! `Box<[u8]>`, a `&'static str`, `bytes::Bytes`/`BytesMut` with the `bytes` feature, or a
//! [`Slice`](crate::buf::Slice) of one.
//!
//! Buffer length: `read_at` reads up to `buf.bytes_total()` bytes (a `Vec`'s capacity) into
//! the front of the buffer and sets its initialised length to the number read (a `Vec`'s
//! `len()`), as tokio-uring does; `write_at` writes the initialised bytes
//! (`buf[..buf.len()]`). So `Vec::with_capacity(4096)` is a 4 KiB read, and the buffer that
//! comes back can be written out as is; `buf.slice(n..)` reads into the rest of a buffer
//! that already holds `n` bytes.
//!
//! # Backends
//!
//! The public types are backend-agnostic; the I/O sits behind an internal seam (the
//! `backend` module: one `async` function per operation, owned values in and out, raw
//! errors). On a worker of a runtime that uses io_uring, every function the kernel has an
//! opcode for is an io_uring operation on that worker's ring, batched with its other
//! submissions. Elsewhere (the fallback driver, a `block_on` thread), and for what has no
//! opcode, each operation is one job on the runtime's blocking pool
//! ([`spawn_blocking`](crate::task::spawn_blocking)), using positioned I/O (`pread` and
//! `pwrite` through [`std::os::unix::fs::FileExt`]) and `std::fs`. Either way no file has a
//! cursor and one `File` serves concurrent operations; on a file that cannot seek (a FIFO)
//! the offset is ignored, on both.
//!
//! | function | on a ring worker | on the blocking pool |
//! |---|---|---|
//! | [`OpenOptions::open`], [`File::open`], [`File::create`] | `openat` | `std::fs::OpenOptions` |
//! | [`File::read_at`], [`read_exact_at`](File::read_exact_at) | `read` | `pread` |
//! | [`File::write_at`], [`write_all_at`](File::write_all_at) | `write` | `pwrite` |
//! | [`File::sync_all`], [`sync_data`](File::sync_data) | `fsync` | `fsync`, `fdatasync` |
//! | [`File::close`] | `close` | `close(2)` |
//! | [`File::metadata`] | `statx` (`AT_EMPTY_PATH`) | `fstat` |
//! | [`metadata`], [`try_exists`] | `statx` | `std::fs::metadata` |
//! | [`symlink_metadata`], [`DirEntry::metadata`] | `statx` (`AT_SYMLINK_NOFOLLOW`) | `std::fs::symlink_metadata` |
//! | [`create_dir`] | `mkdirat` | `std::fs::DirBuilder` |
//! | [`remove_file`], [`remove_dir`] | `unlinkat` | `std::fs::remove_file`, `remove_dir` |
//! | [`rename`] | `renameat` | `std::fs::rename` |
//! | [`hard_link`] | `linkat` | `std::fs::hard_link` |
//! | [`symlink`] | `symlinkat` | `std::os::unix::fs::symlink` |
//! | [`read_dir`], [`ReadDir::next_entry`] | — | `std::fs::read_dir`, 64 entries per job |
//! | [`read`], [`read_to_string`], [`write()`], [`copy`], [`create_dir_all`], [`remove_dir_all`], [`read_link`], [`canonicalize`], [`set_permissions`], [`File::set_len`], [`File::set_permissions`] | — | `std::fs` |
//!
//! [`File::try_clone`] (`dup`) runs inline on the calling thread.
//!
//! A read or write on the blocking pool costs a trip through it (a queue push, maybe a
//! thread wake-up) on top of the system call, so prefer large buffers to many small ones.
//!
//! The kernel never issues `statx` inline from the ring: every one runs on an io-wq kernel
//! thread, so a [`metadata`] costs a hand-off to that thread and back (about ten times the
//! system call alone when one is in flight; many in flight overlap). It is not an inline
//! `statx` on the worker because a stat may block for as long as the file system takes (a
//! network or FUSE mount), and the worker's other tasks would wait with it.
//!
//! # Errors
//!
//! Every error names the operation and the path — `open /etc/nope: No such file or
//! directory (os error 2)`; `rename a to b: ...` for the functions of two paths — and keeps the original's [`ErrorKind`](std::io::ErrorKind),
//! so a missing file is still `NotFound`. The wrapped error is a custom `io::Error`, so its
//! own `raw_os_error()` is `None`; the original `io::Error` is its inner error's
//! [`source`](std::error::Error::source):
//!
//! ```
//! use std::error::Error;
//!
//! let rt = weft_runtime::Runtime::new().unwrap();
//! let err = rt
//!     .block_on(weft_runtime::fs::File::open("/weft/no/such/file"))
//!     .unwrap_err();
//! assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
//! assert!(err.to_string().contains("/weft/no/such/file"));
//! let raw = err
//!     .get_ref()
//!     .and_then(|inner| inner.source())
//!     .and_then(|source| source.downcast_ref::<std::io::Error>())
//!     .and_then(std::io::Error::raw_os_error);
//! assert_eq!(raw, Some(2)); // ENOENT
//! ```
//!
//! If the runtime shuts down before a queued operation runs, the operation fails with an
//! [`Other`](std::io::ErrorKind::Other) error (a buffer operation gives its buffer back).
//!
//! # Closing
//!
//! [`File::close`] waits for operations whose futures were dropped mid-flight, then closes
//! (the `close` opcode on a ring worker, `close(2)` on the blocking pool elsewhere) and
//! reports the error. Dropping a `File` closes
//! the descriptor inline on the dropping thread (a short system call for a local file) and
//! ignores errors, like `std::fs::File`; if a detached operation still uses it, the last of
//! them closes it when it ends.
//!
//! # Alternatives rejected
//!
//! - **`AsyncRead`/`AsyncWrite` with borrowed buffers and a cursor** (tokio's `File`): the
//!   buffer cannot be lent to the kernel across a cancellable await, so tokio copies
//!   through an internal buffer and allows one operation at a time per file. Owned buffers
//!   and positioned I/O need neither.
//! - **Returning `std::fs::Metadata`**: only std can build one, so `metadata` would have to
//!   stay on the blocking pool; a weft [`Metadata`] with the same accessors is built from
//!   either `statx` or std's.
//! - **`Vec<u8>` only**: simpler signatures, but a `Bytes` or a `&'static str` had to be
//!   copied into a `Vec` to be written, and a read could not fill part of a buffer; the
//!   [`crate::buf`] traits cost nothing at run time (the calls are generic) and a `Vec`
//!   call reads the same.
//! - **Closing on drop on the blocking pool or the ring**: a round trip per file to save a
//!   system call that, for regular files, is fast; `close` is there for callers that want
//!   the error.
//! - **Closing the descriptor when the `File` drops, even with operations in flight**: the
//!   number could be reused by another `open` while a pool thread still reads from it.

pub(crate) mod backend;
pub(crate) mod error;
mod file;
mod metadata;
mod open_options;
mod read_dir;

pub use file::File;
pub use metadata::{FileType, Metadata};
pub use open_options::OpenOptions;
pub use read_dir::{DirEntry, ReadDir};

use std::fs::Permissions;
use std::io;
use std::path::{Path, PathBuf};

use error::{with_path, with_paths};

/// Reads the whole file at `path`.
///
/// # Errors
///
/// The operating system's error, naming the path: `NotFound` for a missing file, `EISDIR`
/// for a directory.
///
/// # Panics
///
/// When polled outside a weft runtime.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-doc-read-{}", std::process::id()));
/// std::fs::write(&path, [1, 2, 3])?;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let bytes = rt.block_on(weft_runtime::fs::read(&path))?;
/// assert_eq!(bytes, [1, 2, 3]);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref().to_path_buf();
    backend::read(path.clone())
        .await
        .map_err(|e| with_path("read", &path, e))
}

/// Reads the whole file at `path` as UTF-8.
///
/// # Errors
///
/// As [`read`], and [`InvalidData`](io::ErrorKind::InvalidData) if the contents are not
/// UTF-8; the message names the path.
///
/// # Panics
///
/// When polled outside a weft runtime.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-doc-read-string-{}", std::process::id()));
/// std::fs::write(&path, "weft")?;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// assert_eq!(rt.block_on(weft_runtime::fs::read_to_string(&path))?, "weft");
/// std::fs::write(&path, [0xff, 0xfe])?;
/// let err = rt.block_on(weft_runtime::fs::read_to_string(&path)).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref().to_path_buf();
    backend::read_to_string(path.clone())
        .await
        .map_err(|e| with_path("read_to_string", &path, e))
}

/// Writes `contents` to the file at `path`, creating it or replacing its contents.
///
/// The contents are copied into an owned buffer first (the write happens elsewhere while
/// the caller's borrow may end).
///
/// # Errors
///
/// The operating system's error, naming the path.
///
/// # Panics
///
/// When polled outside a weft runtime.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-doc-write-{}", std::process::id()));
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(weft_runtime::fs::write(&path, "hello"))?;
/// assert_eq!(std::fs::read_to_string(&path)?, "hello");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    let contents = contents.as_ref().to_vec();
    backend::write(path.clone(), contents)
        .await
        .map_err(|e| with_path("write", &path, e))
}

/// The metadata of the file at `path`, following symbolic links (`statx` on a ring,
/// `std::fs::metadata` on the pool).
///
/// # Errors
///
/// The operating system's error, naming the path: `NotFound` for a missing file,
/// `NotADirectory` when a component of the path is a file, `InvalidInput` for a path with a
/// NUL byte.
///
/// # Panics
///
/// When polled outside a weft runtime.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-doc-metadata-{}", std::process::id()));
/// std::fs::write(&path, [0u8; 10])?;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let meta = rt.block_on(weft_runtime::fs::metadata(&path))?;
/// assert_eq!(meta.len(), 10);
/// assert!(meta.is_file());
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref().to_path_buf();
    backend::path_metadata(path.clone(), true)
        .await
        .map_err(|e| with_path("metadata", &path, e))
}

/// The metadata of `path` itself, not following a final symbolic link (`lstat`).
///
/// # Errors
///
/// As [`metadata`].
///
/// # Panics
///
/// When polled outside a weft runtime.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("weft-doc-lmeta-{}", std::process::id()));
/// std::fs::create_dir(&dir)?;
/// std::os::unix::fs::symlink("nowhere", dir.join("link"))?;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let meta = rt.block_on(weft_runtime::fs::symlink_metadata(dir.join("link")))?;
/// assert!(meta.is_symlink());
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref().to_path_buf();
    backend::path_metadata(path.clone(), false)
        .await
        .map_err(|e| with_path("symlink_metadata", &path, e))
}

/// Whether `path` exists, following symbolic links: `Ok(false)` for `NotFound`, an error
/// for anything else that stops the answer (permission denied on a parent, say).
///
/// # Errors
///
/// As [`metadata`], except `NotFound`.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    let path = path.as_ref().to_path_buf();
    match backend::path_metadata(path.clone(), true).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(with_path("try_exists", &path, e)),
    }
}

/// Creates the directory `path` (mode `0o777` before the umask; `mkdirat`).
///
/// # Errors
///
/// The operating system's error, naming the path: `AlreadyExists` if it exists,
/// `NotFound` if its parent does not.
///
/// # Panics
///
/// When polled outside a weft runtime.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("weft-doc-mkdir-{}", std::process::id()));
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     weft_runtime::fs::create_dir(&dir).await?;
///     assert!(weft_runtime::fs::metadata(&dir).await?.is_dir());
///     let err = weft_runtime::fs::create_dir(&dir).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
///     weft_runtime::fs::remove_dir(&dir).await
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    backend::create_dir(path.clone(), 0o777)
        .await
        .map_err(|e| with_path("create_dir", &path, e))
}

/// Creates the directory `path` and any missing parents; an existing directory is not an
/// error.
///
/// # Errors
///
/// The operating system's error, naming the path (`AlreadyExists` if a component is a
/// file).
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    backend::create_dir_all(path.clone())
        .await
        .map_err(|e| with_path("create_dir_all", &path, e))
}

/// Removes the file (or symbolic link) `path` (`unlinkat`).
///
/// # Errors
///
/// The operating system's error, naming the path: `NotFound`, or `IsADirectory` for a
/// directory.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    backend::remove_file(path.clone())
        .await
        .map_err(|e| with_path("remove_file", &path, e))
}

/// Removes the empty directory `path` (`unlinkat` with `AT_REMOVEDIR`).
///
/// # Errors
///
/// The operating system's error, naming the path: `NotFound`, `NotADirectory` for a
/// file, `DirectoryNotEmpty`.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    backend::remove_dir(path.clone())
        .await
        .map_err(|e| with_path("remove_dir", &path, e))
}

/// Removes the directory `path` and everything under it, not following symbolic links
/// (`std::fs::remove_dir_all`, on the blocking pool).
///
/// # Errors
///
/// The operating system's error, naming the path.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    backend::remove_dir_all(path.clone())
        .await
        .map_err(|e| with_path("remove_dir_all", &path, e))
}

/// Renames `from` to `to`, replacing `to` if it is a file (or an empty directory, when
/// `from` is a directory) (`renameat`).
///
/// # Errors
///
/// The operating system's error, naming both paths: `NotFound`, and
/// [`CrossesDevices`](io::ErrorKind::CrossesDevices) (`EXDEV`) when the two are on
/// different file systems ([`copy`] then [`remove_file`] instead).
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref().to_path_buf(), to.as_ref().to_path_buf());
    backend::rename(from.clone(), to.clone())
        .await
        .map_err(|e| with_paths("rename", &from, &to, e))
}

/// Makes `link` a new name (a hard link) of the file `original` (`linkat`).
///
/// # Errors
///
/// The operating system's error, naming both paths: `AlreadyExists` if `link` exists,
/// `NotFound` if `original` does not.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref().to_path_buf(), link.as_ref().to_path_buf());
    backend::hard_link(original.clone(), link.clone())
        .await
        .map_err(|e| with_paths("hard_link", &original, &link, e))
}

/// Makes `link` a symbolic link to `original` (`symlinkat`); `original` need not exist
/// and, if relative, is read from `link`'s directory.
///
/// # Errors
///
/// The operating system's error, naming both paths: `AlreadyExists` if `link` exists.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref().to_path_buf(), link.as_ref().to_path_buf());
    backend::symlink(original.clone(), link.clone())
        .await
        .map_err(|e| with_paths("symlink", &original, &link, e))
}

/// The contents of the symbolic link `path` (on the blocking pool).
///
/// # Errors
///
/// The operating system's error, naming the path: `InvalidInput` (`EINVAL`) if it is not
/// a symbolic link.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_path_buf();
    backend::read_link(path.clone())
        .await
        .map_err(|e| with_path("read_link", &path, e))
}

/// The absolute path of `path` with every symbolic link, `.` and `..` resolved (on the
/// blocking pool).
///
/// # Errors
///
/// The operating system's error, naming the path: `NotFound` if it does not exist.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_path_buf();
    backend::canonicalize(path.clone())
        .await
        .map_err(|e| with_path("canonicalize", &path, e))
}

/// Copies the contents and permissions of the file `from` to `to`, creating or
/// truncating `to`; returns the number of bytes copied (`std::fs::copy`, on the blocking
/// pool, which lets the kernel copy where it can).
///
/// # Errors
///
/// The operating system's error, naming both paths: `NotFound` for a missing `from`,
/// `InvalidInput` if `from` is not a regular file.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (from.as_ref().to_path_buf(), to.as_ref().to_path_buf());
    backend::copy(from.clone(), to.clone())
        .await
        .map_err(|e| with_paths("copy", &from, &to, e))
}

/// Sets the permissions of `path`, following symbolic links (`chmod`, on the blocking
/// pool).
///
/// # Errors
///
/// The operating system's error, naming the path.
///
/// # Panics
///
/// When polled outside a weft runtime.
pub async fn set_permissions(path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    backend::set_path_permissions(path.clone(), perm)
        .await
        .map_err(|e| with_path("set_permissions", &path, e))
}

/// The entries of the directory `path`, as a stream: call
/// [`next_entry`](ReadDir::next_entry) until it gives `None`.
///
/// # Errors
///
/// The operating system's error, naming the path: `NotFound`, `NotADirectory` for a
/// file.
///
/// # Panics
///
/// When polled outside a weft runtime.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("weft-doc-readdir-{}", std::process::id()));
/// std::fs::create_dir(&dir)?;
/// std::fs::write(dir.join("a"), "")?;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let names = rt.block_on(async {
///     let mut names = Vec::new();
///     let mut entries = weft_runtime::fs::read_dir(&dir).await?;
///     while let Some(entry) = entries.next_entry().await? {
///         assert!(entry.file_type().await?.is_file());
///         names.push(entry.file_name());
///     }
///     Ok::<_, std::io::Error>(names)
/// })?;
/// assert_eq!(names, ["a"]);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_path_buf();
    match backend::read_dir(path.clone()).await {
        Ok(batch) => Ok(ReadDir::new(path, batch)),
        Err(e) => Err(with_path("read_dir", &path, e)),
    }
}
