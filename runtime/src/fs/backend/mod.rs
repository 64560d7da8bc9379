//! The seam between `weft::fs`'s public API and the code that does the I/O.
//!
//! Every file system operation is one function here, `async`, taking and returning owned
//! values (paths, buffers, the descriptor type [`Fd`]) and returning the *raw* `io::Error`
//! (the public layer names the path, once). `open`, the data path (`read_at`,
//! `read_exact_at`, `write_at`, `write_all_at`), `sync_all`, `sync_data` and `close` go to
//! [`uring`], whose one dispatch point is the reactor's `Op::submit`: it submits on the ring
//! of the calling thread (a worker, when the runtime uses io_uring) or gives the operation
//! back, and the call then runs on the [`blocking`] fallback. So do `metadata` (`statx`,
//! built into a weft `Metadata`) and the path operations with an opcode (`create_dir`,
//! `remove_file`, `remove_dir`, `rename`, `hard_link`, `symlink`). `set_len`, `read_dir`
//! (a batch of entries per job), the whole-file helpers and the other path functions stay
//! on the blocking pool. The public types hold
//! nothing but an [`Fd`] and a path, so they do not change with the backend.
//!
//! The operations:
//!
//! | function | what it does | blocking fallback |
//! |---|---|---|
//! | `open(path, opts) -> io::Result<Fd>` | open or create | `std::fs::OpenOptions::open` |
//! | `read_at(&Fd, B: IoBufMut, u64) -> BufResult<usize, B>` | one positioned read | `pread` |
//! | `read_exact_at(&Fd, B: IoBufMut, u64) -> BufResult<(), B>` | fill the buffer | `pread` loop |
//! | `write_at(&Fd, B: IoBuf, u64) -> BufResult<usize, B>` | one positioned write | `pwrite` |
//! | `write_all_at(&Fd, B: IoBuf, u64) -> BufResult<(), B>` | write it all | `pwrite` loop |
//! | `metadata(&Fd) -> io::Result<Metadata>` | `statx`, `AT_EMPTY_PATH` | `File::metadata` |
//! | `path_metadata(path, follow)` | `statx` | `std::fs::metadata`, `symlink_metadata` |
//! | `create_dir`, `remove_file`, `remove_dir`, `rename`, `hard_link`, `symlink` | `mkdirat`, `unlinkat`, `renameat`, `linkat`, `symlinkat` | `std::fs` |
//! | `read_dir(path) -> Batch`, `read_dir_batch` | opendir and a batch of entries | `std::fs::read_dir` |
//! | `sync_all(&Fd)`, `sync_data(&Fd)` | `fsync`, `fdatasync` | the same |
//! | `set_len(&Fd, u64)` | `ftruncate` | the same |
//! | `close(Fd)` | close, reporting the error | `close(2)` on the pool |
//! | `read`, `read_to_string`, `write`, `copy`, `create_dir_all`, `remove_dir_all`, `read_link`, `canonicalize`, `set_path_permissions`, `set_permissions(&Fd)` | pool only | `std::fs` |
//!
//! Rules every backend keeps:
//!
//! - **A buffer or fd handed to an operation belongs to it until the operation completes**,
//!   whether or not its future is still alive. (The reactor's rule for the kernel; here the
//!   "kernel" is a blocking-pool thread.) Dropping a future therefore never frees a buffer
//!   or closes a descriptor that is still in use.
//! - An offset above `i64::MAX`, or a transfer ending past it, is `InvalidInput` before
//!   any backend sees it (`check_range`).
//! - `read_at` reads up to `buf.bytes_total()` bytes into the front of `buf` and calls
//!   `set_init(n)` with the number read (a `Vec`'s length becomes `n`); `write_at` writes
//!   the first `buf.bytes_init()` bytes (see `crate::buf`).
//! - A buffer comes back from every call, also when the runtime shut down before the job
//!   ran (the blocking backend keeps it in a slot the caller can take it back from).
//! - `close` waits until no in-flight operation holds the descriptor, then closes it and
//!   reports `close(2)`'s error.
//! - A path with a NUL byte is `InvalidInput` on both (std's check, and the ring's before
//!   it builds a C string).

mod blocking;
mod uring;

pub(crate) use blocking::{
    Batch, Fd, RawEntry, canonicalize, copy, create_dir_all, read, read_dir, read_dir_batch,
    read_link, read_to_string, release_shared, remove_dir_all, set_len, set_path_permissions,
    set_permissions, spawn, write,
};
pub(crate) use uring::{
    create_dir, hard_link, metadata, path_metadata, remove_dir, remove_file, rename, symlink,
};

use std::io;

use crate::buf::{BufResult, IoBuf, IoBufMut};

/// Opens `path` (`openat` on a ring; a future dropped mid-flight leaves the path to the
/// ring, and a descriptor the kernel opens anyway is closed at the CQE).
///
/// The options are validated here, for both backends, so that a bad combination is the
/// same error (`EINVAL`) on either.
pub(crate) async fn open(path: std::path::PathBuf, opts: crate::fs::OpenOptions) -> io::Result<Fd> {
    opts.open_flags()?;
    uring::open(path, opts).await
}

/// `fsync`.
pub(crate) async fn sync_all(fd: &Fd) -> io::Result<()> {
    uring::fsync(fd, false).await
}

/// `fdatasync`.
pub(crate) async fn sync_data(fd: &Fd) -> io::Result<()> {
    uring::fsync(fd, true).await
}

/// Waits until no in-flight operation holds the descriptor, then closes it
/// (`IORING_OP_CLOSE` or `close(2)`), reporting the error.
pub(crate) async fn close(fd: Fd) -> io::Result<()> {
    let Some(file) = blocking::release(fd).await else {
        return Ok(());
    };
    uring::close(file).await
}

/// Refuses a transfer of `len` bytes at `pos` that the kernel cannot express: an offset
/// above `i64::MAX` (io_uring would read `u64::MAX`, which is -1, as "the file's cursor"),
/// or one whose end passes it. Every positioned call checks here, before any backend.
fn check_range(pos: u64, len: usize) -> io::Result<()> {
    const MAX: u64 = i64::MAX as u64;
    if pos > MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("offset {pos} is past the largest file offset, {MAX}"),
        ));
    }
    if pos.checked_add(len as u64).is_none_or(|end| end > MAX) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{len} bytes at offset {pos} end past the largest file offset, {MAX}"),
        ));
    }
    Ok(())
}

/// One positioned read.
pub(crate) async fn read_at<B: IoBufMut>(fd: &Fd, buf: B, pos: u64) -> BufResult<usize, B> {
    if let Err(e) = check_range(pos, buf.bytes_total()) {
        return (Err(e), buf);
    }
    uring::read_at(fd, buf, pos).await
}

/// Fills the buffer: one op per short read, each where it is polled.
pub(crate) async fn read_exact_at<B: IoBufMut>(fd: &Fd, buf: B, pos: u64) -> BufResult<(), B> {
    if let Err(e) = check_range(pos, buf.bytes_total()) {
        return (Err(e), buf);
    }
    uring::read_exact_at(fd, buf, pos).await
}

/// One positioned write.
pub(crate) async fn write_at<B: IoBuf>(fd: &Fd, buf: B, pos: u64) -> BufResult<usize, B> {
    if let Err(e) = check_range(pos, buf.bytes_init()) {
        return (Err(e), buf);
    }
    uring::write_at(fd, buf, pos).await
}

/// Writes it all: one op per short write, each where it is polled.
pub(crate) async fn write_all_at<B: IoBuf>(fd: &Fd, buf: B, pos: u64) -> BufResult<(), B> {
    if let Err(e) = check_range(pos, buf.bytes_init()) {
        return (Err(e), buf);
    }
    uring::write_all_at(fd, buf, pos).await
}

/// `read_at` for the callback API: on a thread that owns a ring, the reactor runs `cb` at
/// the completion on this thread; otherwise the read runs on the blocking pool and `cb` is
/// deferred onto the runtime's queues with its result. Either way no task is made.
pub(crate) fn read_at_callback<B, F>(fd: &Fd, buf: B, pos: u64, cb: F)
where
    B: IoBufMut,
    F: FnOnce(BufResult<usize, B>) + Send + 'static,
{
    if let Err(e) = check_range(pos, buf.bytes_total()) {
        crate::scheduler::Handle::current().defer(move || cb((Err(e), buf)));
        return;
    }
    uring::read_at_callback(fd, buf, pos, cb)
}

pub(crate) use blocking::open_callback;
