//! The io_uring backend: each call is one of the reactor's [`Op`]s (`weft_reactor::op`),
//! submitted on the ring of the thread that polls it at that moment, batched with that
//! ring's other submissions and reaped by it. Any worker may poll the op afterwards (a
//! stolen task still completes: the ring's owner reaps and the waker reschedules the task).
//!
//! `read_exact_at` and `write_all_at` submit one op per short transfer, each where it is
//! polled (the task may have moved to another worker since the last one), or run that
//! step on the blocking pool if the thread has no ring.
//!
//! # Ownership while in flight
//!
//! The op owns the buffer, the path, and a clone of the descriptor's `Arc` (inside an
//! [`FdGuard`]) until the completion; dropped earlier, it leaves them to the ring, which
//! frees them at the CQE (see `weft_reactor::op`). The [`Fd`] then gets an orphan that the
//! guard's drop completes, so that `close` waits for the kernel to let go. An `open`
//! abandoned mid-flight closes the descriptor the kernel opens anyway.
//!
//! The path operations (`statx`, `mkdirat`, `unlinkat`, `renameat`, `linkat`,
//! `symlinkat`) own their paths as C strings; abandoned, they still complete (a directory
//! made or a file removed after its future was dropped stays made or removed, as with a
//! blocking call the caller stopped waiting for).

use std::ffi::CString;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use weft_reactor::op::close::Close;
use weft_reactor::op::fsync::Fsync;
use weft_reactor::op::linkat::LinkAt;
use weft_reactor::op::mkdirat::MkDirAt;
use weft_reactor::op::open::OpenAt;
use weft_reactor::op::read::Read;
use weft_reactor::op::renameat::RenameAt;
use weft_reactor::op::statx::Statx;
use weft_reactor::op::symlinkat::SymlinkAt;
use weft_reactor::op::unlinkat::UnlinkAt;
use weft_reactor::op::write::Write;
use weft_reactor::op::{Op, Operation};

use super::blocking::{Fd, Orphan};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fs::Metadata;

/// What a ring op holds of its file: a clone of the descriptor, and the orphan that tells
/// `close` when the op (and so the kernel) has let go of it.
struct FdGuard {
    file: Arc<std::fs::File>,
    orphan: Arc<RingOrphan>,
}

impl FdGuard {
    fn new(fd: &Fd) -> FdGuard {
        FdGuard {
            file: fd.file.clone(),
            orphan: Arc::new(RingOrphan {
                done: AtomicBool::new(false),
                waker: Mutex::new(None),
            }),
        }
    }
}

impl AsRawFd for FdGuard {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for FdGuard {
    fn drop(&mut self) {
        self.orphan.finish();
    }
}

/// An [`Op`] with the runtime's cooperative budget, that leaves an orphan in its [`Fd`]
/// if dropped before its completion.
struct RingOp<'a, T: Operation> {
    fd: Option<(&'a Fd, Arc<RingOrphan>)>,
    op: Op<T>,
}

impl<T: Operation> Future for RingOp<'_, T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let out = std::task::ready!(Pin::new(&mut self.op).poll(cx));
        coop.made_progress();
        self.fd = None;
        Poll::Ready(out)
    }
}

impl<T: Operation> Drop for RingOp<'_, T> {
    fn drop(&mut self) {
        if let Some((fd, orphan)) = self.fd.take() {
            if !self.op.is_done() {
                fd.adopt(Box::new(orphan));
            }
        }
    }
}

/// Lets `close` wait for an abandoned op's completion.
struct RingOrphan {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl RingOrphan {
    fn finish(&self) {
        self.done.store(true, SeqCst);
        if let Some(w) = self.waker.lock().take() {
            w.wake();
        }
    }
}

impl Orphan for Arc<RingOrphan> {
    fn is_finished(&self) -> bool {
        self.done.load(SeqCst)
    }

    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done.load(SeqCst) {
            return Poll::Ready(());
        }
        *self.waker.lock() = Some(cx.waker().clone());
        if self.done.load(SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Submits `op` (which holds `guard`'s clone of `fd`) on this thread's ring and waits;
/// `Err(op)` if the thread has no ring.
fn submit_on<T: Operation>(fd: &Fd, orphan: Arc<RingOrphan>, op: T) -> Result<RingOp<'_, T>, T> {
    Op::submit(op).map(|op| RingOp {
        fd: Some((fd, orphan)),
        op,
    })
}

/// Reads into bytes `start..bytes_total()` of `buf` at `pos` on the calling thread's ring,
/// or on the blocking pool if it has none; returns the bytes read and the buffer with
/// `set_init(start + n)`.
async fn read_into<B: IoBufMut>(fd: &Fd, buf: B, start: usize, pos: u64) -> BufResult<usize, B> {
    let guard = FdGuard::new(fd);
    let orphan = guard.orphan.clone();
    match submit_on(fd, orphan, Read::new(guard, buf, start, pos)) {
        Ok(op) => op.await,
        Err(read) => {
            let (_, buf) = read.into_parts();
            super::blocking::read_into(fd, buf, start, pos).await
        }
    }
}

/// Writes bytes `start..bytes_init()` of `buf` at `pos` on the calling thread's ring, or on
/// the blocking pool.
async fn write_from<B: IoBuf>(fd: &Fd, buf: B, start: usize, pos: u64) -> BufResult<usize, B> {
    let guard = FdGuard::new(fd);
    let orphan = guard.orphan.clone();
    match submit_on(fd, orphan, Write::new(guard, buf, start, pos)) {
        Ok(op) => op.await,
        Err(write) => {
            let (_, buf) = write.into_parts();
            super::blocking::write_from(fd, buf, start, pos).await
        }
    }
}

pub(crate) async fn read_at<B: IoBufMut>(fd: &Fd, mut buf: B, pos: u64) -> BufResult<usize, B> {
    // SAFETY: no byte is declared initialised (a `Vec` is cleared; the read overwrites).
    unsafe { buf.set_init(0) };
    read_into(fd, buf, 0, pos).await
}

/// Fills `buf` to its `bytes_total()`, one read per short transfer, each submitted where
/// [`read_into`] says.
///
/// On a thread without a ring the whole loop is one blocking-pool job.
pub(crate) async fn read_exact_at<B: IoBufMut>(fd: &Fd, mut buf: B, pos: u64) -> BufResult<(), B> {
    if !weft_reactor::op::can_submit() {
        return super::blocking::read_exact_at(fd, buf, pos).await;
    }
    // SAFETY: no byte is declared initialised (a `Vec` is cleared; the reads overwrite).
    unsafe { buf.set_init(0) };
    let want = buf.bytes_total();
    // Counted here, not read from `bytes_init`: a view's initialised length may start
    // above zero (its buffer had bytes there), and those bytes must be read over too.
    let mut filled = 0;
    while filled < want {
        let (res, b) = read_into(fd, buf, filled, pos + filled as u64).await;
        buf = b;
        match res {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("end of file after {filled} of {want} bytes read from offset {pos}"),
                );
                return (Err(e), buf);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

pub(crate) async fn write_at<B: IoBuf>(fd: &Fd, buf: B, pos: u64) -> BufResult<usize, B> {
    write_from(fd, buf, 0, pos).await
}

/// Writes all of `buf`'s initialised bytes, one write per short transfer, each submitted
/// where [`write_from`] says.
///
/// On a thread without a ring the whole loop is one blocking-pool job.
pub(crate) async fn write_all_at<B: IoBuf>(fd: &Fd, mut buf: B, pos: u64) -> BufResult<(), B> {
    if !weft_reactor::op::can_submit() {
        return super::blocking::write_all_at(fd, buf, pos).await;
    }
    let len = buf.bytes_init();
    let mut done = 0;
    while done < len {
        let (res, b) = write_from(fd, buf, done, pos + done as u64).await;
        buf = b;
        match res {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("wrote 0 bytes after {done} of {len} at offset {pos}"),
                );
                return (Err(e), buf);
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Submits one positioned read whose completion calls `cb` on this thread when the ring
/// reaps it — no future, no task; on a thread without a ring, the read goes to the
/// blocking pool and `cb` is deferred. The op owns `buf` and a clone of the descriptor
/// until the completion.
pub(crate) fn read_at_callback<B, F>(fd: &Fd, mut buf: B, pos: u64, cb: F)
where
    B: IoBufMut,
    F: FnOnce(BufResult<usize, B>) + Send + 'static,
{
    // SAFETY: no byte is declared initialised (a `Vec` is cleared; the read overwrites).
    unsafe { buf.set_init(0) };
    let read = Read::new(fd.file.clone(), buf, 0, pos);
    if let Err((read, cb)) = weft_reactor::op::submit_with_callback(read, cb) {
        let (_, buf) = read.into_parts();
        super::blocking::read_at_callback(fd, buf, pos, cb);
    }
}

/// Opens `path` with `opts` through the calling thread's ring, or on the blocking pool.
pub(crate) async fn open(path: PathBuf, opts: crate::fs::OpenOptions) -> io::Result<Fd> {
    let (flags, mode) = opts.open_flags()?;
    let cpath = c_path(&path)?;
    match Op::submit(OpenAt::new(cpath, flags, mode)) {
        Ok(op) => {
            let fd: OwnedFd = RingOp { fd: None, op }.await?;
            Ok(Fd::new(std::fs::File::from(fd)))
        }
        Err(_) => super::blocking::open(path, opts).await,
    }
}

/// `fsync` (or `fdatasync`) of `fd` through the calling thread's ring, or on the pool.
pub(crate) async fn fsync(fd: &Fd, data_only: bool) -> io::Result<()> {
    let guard = FdGuard::new(fd);
    let orphan = guard.orphan.clone();
    match submit_on(fd, orphan, Fsync::new(guard, data_only)) {
        Ok(op) => op.await,
        Err(_) if data_only => super::blocking::sync_data(fd).await,
        Err(_) => super::blocking::sync_all(fd).await,
    }
}

/// `IORING_OP_CLOSE` of the last holder's file, reporting the error; `close(2)` on the
/// pool on a thread without a ring.
pub(crate) async fn close(file: std::fs::File) -> io::Result<()> {
    match Op::submit(Close::new(OwnedFd::from(file))) {
        Ok(op) => RingOp { fd: None, op }.await,
        Err(close) => match close.into_inner() {
            Some(fd) => super::blocking::close_file(fd.into()).await,
            None => Ok(()),
        },
    }
}

/// `path` as the C string a ring op hands the kernel; a NUL byte inside is
/// `InvalidInput`, as std reports it.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL byte, which no file name may",
        )
    })
}

/// Runs a path operation (one that holds no descriptor of ours) on the calling thread's
/// ring, or `fallback` on the blocking pool if the thread owns none.
async fn path_op<T, R, F>(op: T, fallback: F) -> io::Result<R>
where
    T: Operation<Output = io::Result<R>>,
    F: FnOnce() -> io::Result<R> + Send + 'static,
    R: Send + 'static,
{
    match Op::submit(op) {
        Ok(op) => RingOp { fd: None, op }.await,
        Err(_) => super::blocking::run(fallback).await,
    }
}

/// `statx` of `path` (following a final symbolic link if `follow`) on the ring, or
/// `std::fs::metadata`/`symlink_metadata` on the pool.
pub(crate) async fn path_metadata(path: PathBuf, follow: bool) -> io::Result<Metadata> {
    let op = Statx::path(c_path(&path)?, follow);
    match Op::submit(op) {
        Ok(op) => {
            let stx = RingOp { fd: None, op }.await?;
            Ok(Metadata::from_statx(&stx))
        }
        Err(_) => super::blocking::path_metadata(path, follow)
            .await
            .map(|m| Metadata::from_std(&m)),
    }
}

/// `statx(fd, "", AT_EMPTY_PATH)` on the ring, or `fstat` on the pool.
pub(crate) async fn metadata(fd: &Fd) -> io::Result<Metadata> {
    let guard = FdGuard::new(fd);
    let orphan = guard.orphan.clone();
    match submit_on(fd, orphan, Statx::fd(guard)) {
        Ok(op) => op.await.map(|stx| Metadata::from_statx(&stx)),
        Err(_) => super::blocking::metadata(fd)
            .await
            .map(|m| Metadata::from_std(&m)),
    }
}

/// `mkdirat(path, mode)`, or `std::fs::DirBuilder` with that mode on the pool.
pub(crate) async fn create_dir(path: PathBuf, mode: u32) -> io::Result<()> {
    let op = MkDirAt::new(c_path(&path)?, mode);
    path_op(op, move || {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(mode).create(path)
    })
    .await
}

/// `unlinkat(path)`, or `std::fs::remove_file`.
pub(crate) async fn remove_file(path: PathBuf) -> io::Result<()> {
    let op = UnlinkAt::new(c_path(&path)?, false);
    path_op(op, move || std::fs::remove_file(path)).await
}

/// `unlinkat(path, AT_REMOVEDIR)`, or `std::fs::remove_dir`.
pub(crate) async fn remove_dir(path: PathBuf) -> io::Result<()> {
    let op = UnlinkAt::new(c_path(&path)?, true);
    path_op(op, move || std::fs::remove_dir(path)).await
}

/// `renameat(from, to)`, or `std::fs::rename`.
pub(crate) async fn rename(from: PathBuf, to: PathBuf) -> io::Result<()> {
    let op = RenameAt::new(c_path(&from)?, c_path(&to)?);
    path_op(op, move || std::fs::rename(from, to)).await
}

/// `linkat(original, link)`, or `std::fs::hard_link`.
pub(crate) async fn hard_link(original: PathBuf, link: PathBuf) -> io::Result<()> {
    let op = LinkAt::new(c_path(&original)?, c_path(&link)?);
    path_op(op, move || std::fs::hard_link(original, link)).await
}

/// `symlinkat(target, link)`, or `std::os::unix::fs::symlink`.
pub(crate) async fn symlink(target: PathBuf, link: PathBuf) -> io::Result<()> {
    let op = SymlinkAt::new(c_path(&target)?, c_path(&link)?);
    path_op(op, move || std::os::unix::fs::symlink(target, link)).await
}
