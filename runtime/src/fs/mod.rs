//! Files: [`File`] and [`OpenOptions`] for positioned reads and writes with owned buffers,
//! and the whole-file helpers [`read`], [`read_to_string`], [`write()`] and [`metadata`].
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
//! errors). On a worker of a runtime that uses io_uring, `open`, the reads and writes,
//! `sync_all`, `sync_data` and `close` are io_uring operations on that worker's ring,
//! batched with its other submissions. Elsewhere (the fallback driver, a `block_on`
//! thread), and for `metadata`, `set_len` and the whole-file helpers, each operation is one
//! job on the runtime's blocking pool ([`spawn_blocking`](crate::task::spawn_blocking)),
//! using positioned I/O (`pread` and `pwrite` through [`std::os::unix::fs::FileExt`]). Either
//! way no file has a cursor and one `File` serves concurrent operations; on a file that
//! cannot seek (a FIFO) the offset is ignored, on both.
//!
//! A read or write on the blocking pool costs a trip through it (a queue push, maybe a
//! thread wake-up) on top of the system call, so prefer large buffers to many small ones.
//!
//! # Errors
//!
//! Every error names the operation and the path — `open /etc/nope: No such file or
//! directory (os error 2)` — and keeps the original's [`ErrorKind`](std::io::ErrorKind),
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
//! [`File::close`] closes on the blocking pool and reports `close(2)`'s error, after
//! waiting for operations whose futures were dropped mid-flight. Dropping a `File` closes
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
//! - **`Vec<u8>` only**: simpler signatures, but a `Bytes` or a `&'static str` had to be
//!   copied into a `Vec` to be written, and a read could not fill part of a buffer; the
//!   [`crate::buf`] traits cost nothing at run time (the calls are generic) and a `Vec`
//!   call reads the same.
//! - **Closing on drop on the blocking pool**: a pool round trip per file to save a system
//!   call that, for regular files, is fast; `close` is there for callers that need the pool
//!   or the error.
//! - **Closing the descriptor when the `File` drops, even with operations in flight**: the
//!   number could be reused by another `open` while a pool thread still reads from it.

pub(crate) mod backend;
pub(crate) mod error;
mod file;
mod open_options;

pub use file::File;
pub use open_options::OpenOptions;

use std::fs::Metadata;
use std::io;
use std::path::Path;

use error::with_path;

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

/// The metadata of the file at `path`, following symbolic links (`stat`).
///
/// # Errors
///
/// The operating system's error, naming the path: `NotFound` for a missing file.
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
    backend::path_metadata(path.clone())
        .await
        .map_err(|e| with_path("metadata", &path, e))
}
