//! Files with callbacks: `fs.open`, `fs.read` and `fs.readFile`, error-first.
//!
//! [`read_at`] is the callback twin of [`File::read_at`](crate::fs::File::read_at): on a
//! worker whose runtime uses io_uring, the read is submitted to that worker's ring and the
//! reactor calls `cb` when it reaps the completion — one boxed closure per read, no task, no
//! future, no queue pass. Elsewhere (the fallback driver, or a thread outside the workers)
//! the read runs on the blocking pool and `cb` is deferred onto the runtime's queues.
//!
//! Opening (and [`read`], the whole-file helper) runs on the blocking pool, where
//! [`weft::fs`](crate::fs) opens with `openat` on a ring worker; `cb` then runs on a worker.
//!
//! Every error names the path, as in [`weft::fs`](crate::fs#errors).
//!
//! **Closing.** A callback read holds the descriptor until its completion runs. If the
//! [`File`] is closed (or dropped) while one is in flight, the descriptor is closed when the
//! last such read completes, and `File::close` cannot report `close(2)`'s error for it.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use super::Callback;
use crate::buf::{BufResult, IoBufMut};
use crate::fs::error::with_path;
use crate::fs::{File, OpenOptions, backend};

/// Opens `path` read-only and calls `cb` with the [`File`]: `fs.open(path, 'r', cb)`.
///
/// # Errors
///
/// As [`File::open`]: `NotFound` (and the others), naming the path.
///
/// # Panics
///
/// Outside a runtime.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     weft_runtime::callback::fs::open("/no/such/file", move |r: std::io::Result<_>| {
///         tx.send(r.map(|_| ()).unwrap_err()).unwrap()
///     });
/// });
/// let e = rx.recv().unwrap();
/// assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
/// assert!(e.to_string().contains("/no/such/file"));
/// ```
#[track_caller]
pub fn open(path: impl AsRef<Path>, cb: impl Callback<File, io::Error>) {
    open_with(path, OpenOptions::new().read(true), cb)
}

/// Opens `path` with `opts` and calls `cb` with the [`File`].
///
/// # Panics
///
/// Outside a runtime.
#[track_caller]
pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions, cb: impl Callback<File, io::Error>) {
    let path = path.as_ref().to_path_buf();
    let named = path.clone();
    backend::open_callback(path, opts.clone(), move |res| {
        cb.call(match res {
            Ok(fd) => Ok(File::from_parts(fd, named)),
            Err(e) => Err(with_path("open", &named, e)),
        })
    });
}

/// Reads up to `buf.bytes_total()` bytes (a `Vec`'s capacity) of `file` at offset `pos`
/// and calls `cb` with the count and the buffer (its initialised length set to the count):
/// the callback form of [`File::read_at`], with the same owned-buffer contract and any
/// [`IoBufMut`] buffer.
///
/// The buffer is returned on error too, so the callback is
/// `FnOnce(BufResult<usize, B>)` rather than error-first.
///
/// A panic in `cb` is caught (the panic hook reports it) so that it cannot unwind through
/// the reactor.
///
/// # Panics
///
/// Outside a runtime.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("weft-cb-read-{}", std::process::id()));
/// std::fs::write(&path, b"hello, callbacks")?;
/// let rt = weft_runtime::Runtime::new()?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let p = path.clone();
/// rt.block_on(async move {
///     let file = weft_runtime::fs::File::open(&p).await.unwrap();
///     weft_runtime::callback::fs::read_at(&file, Vec::with_capacity(5), 7, move |(r, buf)| {
///         tx.send((r.unwrap(), buf)).unwrap()
///     });
/// });
/// assert_eq!(rx.recv().unwrap(), (5, b"callb".to_vec()));
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn read_at<B, F>(file: &File, buf: B, pos: u64, cb: F)
where
    B: IoBufMut,
    F: FnOnce(BufResult<usize, B>) + Send + 'static,
{
    let path = file.shared_path().clone();
    backend::read_at_callback(file.fd(), buf, pos, move |(res, buf)| {
        let res = res.map_err(|e| with_path("read_at", &path, e));
        let _ = panic::catch_unwind(AssertUnwindSafe(move || cb((res, buf))));
    });
}

/// Reads the whole file at `path` and calls `cb` with its contents: `fs.readFile(path, cb)`.
///
/// # Panics
///
/// Outside a runtime.
#[track_caller]
pub fn read(path: impl AsRef<Path>, cb: impl Callback<Vec<u8>, io::Error>) {
    let path = path.as_ref().to_path_buf();
    let rt = crate::scheduler::Handle::current();
    let defer_to = rt.clone();
    drop(rt.shared.blocking().spawn_io(&rt, move || {
        let res = std::fs::read(&path).map_err(|e| with_path("read", &path, e));
        defer_to.defer(move || cb.call(res));
    }));
}
