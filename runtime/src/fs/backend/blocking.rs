//! The fallback backend: every operation is one job on the runtime's blocking pool, using
//! positioned I/O (`pread`/`pwrite` through `std::os::unix::fs::FileExt`), so no file has a
//! cursor and one [`Fd`] serves any number of concurrent operations. A file that cannot
//! seek (a FIFO, a pipe) is read and written as a stream, the offset ignored, as io_uring
//! does.
//!
//! # Ownership while in flight
//!
//! A job owns everything it touches: the buffer moves into the closure and comes back in
//! its output, and the descriptor is an `Arc<std::fs::File>` the closure holds a clone of.
//! So a future dropped mid-flight (a `timeout`, a `select`, a task aborted or dropped at
//! shutdown) only detaches the job: the pool thread finishes the system call on a buffer
//! and a descriptor that are still alive, then drops its clone. The descriptor is closed
//! by whoever drops the last clone — never while a job still uses it, and never early
//! enough for its number to be reused under a running `pread`.
//!
//! A detached job's `JoinHandle` is kept in its `Fd` (the "orphans"), so that
//! [`close`] can wait for those jobs and then be the one that closes, and so report the
//! error of `close(2)`. Finished orphans are pruned whenever a new one is added.
//!
//! A buffer job takes its buffer from a slot it shares with the caller, so a job the
//! runtime drops unrun (it shut down with the job still queued) leaves the buffer there:
//! the caller then gets a "runtime shut down" error and its buffer back.
//!
//! Reads go through `pread(2)` on the buffer's raw pointer, into its uninitialised
//! capacity, and then `IoBufMut::set_init`: no zero-filling, and no `&mut [u8]` over
//! uninitialised bytes.

use std::fs::Metadata;
use std::future::Future;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use parking_lot::Mutex;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fs::OpenOptions;
use crate::task::{JoinError, JoinHandle};

/// An open file as the backend sees it: the descriptor, shared with the jobs using it, and
/// the jobs whose futures were dropped before they completed.
pub(crate) struct Fd {
    pub(crate) file: Arc<std::fs::File>,
    orphans: Mutex<Vec<Box<dyn Orphan>>>,
}

impl Fd {
    pub(crate) fn new(file: std::fs::File) -> Fd {
        Fd {
            file: Arc::new(file),
            orphans: Mutex::new(Vec::new()),
        }
    }

    /// The descriptor's number, for `Debug`.
    pub(crate) fn raw(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on the pool with a clone of the descriptor.
    fn run<R, F>(&self, f: F) -> InFlight<'_, R>
    where
        F: FnOnce(&std::fs::File) -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.file.clone();
        InFlight {
            fd: self,
            join: Some(spawn(move || f(&file))),
        }
    }

    pub(super) fn adopt(&self, orphan: Box<dyn Orphan>) {
        let mut orphans = self.orphans.lock();
        orphans.retain(|o| !o.is_finished());
        orphans.push(orphan);
    }
}

/// A detached job (or ring op) that may still hold the descriptor.
pub(super) trait Orphan: Send {
    fn is_finished(&self) -> bool;
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

impl<R: Send + 'static> Orphan for JoinHandle<R> {
    fn is_finished(&self) -> bool {
        JoinHandle::is_finished(self)
    }

    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // The output (a buffer, a result) is dropped: nobody asked for it any more.
        Pin::new(self).poll(cx).map(drop)
    }
}

/// A job on an [`Fd`]: `Some(output)`, or `None` if the runtime dropped it unrun. Dropped
/// before it completes, it hands its handle to the `Fd` (see the module docs).
struct InFlight<'a, R: Send + 'static> {
    fd: &'a Fd,
    join: Option<JoinHandle<R>>,
}

impl<R: Send + 'static> Future for InFlight<'_, R> {
    type Output = Option<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<R>> {
        let join = self
            .join
            .as_mut()
            .expect("InFlight polled after completion");
        let res = ready!(Pin::new(join).poll(cx));
        self.join = None;
        Poll::Ready(finish(res))
    }
}

impl<R: Send + 'static> Drop for InFlight<'_, R> {
    fn drop(&mut self) {
        if let Some(join) = self.join.take() {
            if !join.is_finished() {
                self.fd.adopt(Box::new(join));
            }
        }
    }
}

/// Queues `f` on the current runtime's blocking pool, as a file system job (shutdown
/// waits for it only up to a bound: see `crate::blocking`).
pub(crate) fn spawn<R, F>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match crate::context::with_current(|h| h.shared.blocking().spawn_io(h, f)) {
        Some(j) => j,
        None => panic!("weft::fs: {}", crate::scheduler::NO_RUNTIME),
    }
}

/// A job's output; `None` if it was dropped unrun at shutdown. A panic in the job (none of
/// ours panics) is resumed in the caller, as a panic in the caller's own code would be.
fn finish<R>(res: Result<R, JoinError>) -> Option<R> {
    match res {
        Ok(r) => Some(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

fn shut_down() -> io::Error {
    io::Error::other("the weft runtime shut down before the operation ran")
}

/// Runs `f` on the pool with the descriptor and `buf`. The buffer waits in a slot until
/// the job runs, so that a job the runtime drops unrun gives it back with the
/// "shut down" error.
async fn run_with_buf<B, T, F>(fd: &Fd, buf: B, f: F) -> BufResult<T, B>
where
    B: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&std::fs::File, B) -> BufResult<T, B> + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Some(buf)));
    let job_slot = slot.clone();
    let out = fd
        .run(move |file| {
            let buf = job_slot.lock().take().expect("a job takes its buffer once");
            f(file, buf)
        })
        .await;
    out.unwrap_or_else(|| {
        // A job is dropped only before it starts (`crate::blocking`), so the buffer is
        // still in the slot.
        let buf = slot
            .lock()
            .take()
            .expect("a job dropped unrun left its buffer");
        (Err(shut_down()), buf)
    })
}

/// Runs a job that needs no descriptor.
pub(super) async fn run<R, F>(f: F) -> io::Result<R>
where
    F: FnOnce() -> io::Result<R> + Send + 'static,
    R: Send + 'static,
{
    finish(spawn(f).await).unwrap_or_else(|| Err(shut_down()))
}

/// Retries `f` while it fails with `Interrupted` (nothing was transferred).
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            res => return res,
        }
    }
}

/// `pread(2)` of up to `len` bytes into `ptr`, or `read(2)` on a file that cannot seek
/// (`ESPIPE`: a FIFO, a pipe, a terminal, some `/proc` files), where the offset means
/// nothing: what io_uring's `IORING_OP_READ` does, so both backends give the same answer
/// for the same file.
///
/// # Safety
///
/// `ptr` is valid for writes of `len` bytes (they need not be initialised) for the call.
unsafe fn pread_once(
    file: &std::fs::File,
    ptr: *mut u8,
    len: usize,
    pos: u64,
) -> io::Result<usize> {
    let fd = file.as_raw_fd();
    // Linux transfers at most 0x7fff_f000 bytes a call anyway.
    let len = len.min(isize::MAX as usize);
    let off = libc::off_t::try_from(pos).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("offset {pos} is past the largest file offset"),
        )
    })?;
    // SAFETY: `ptr` is valid for writes of `len` bytes (the caller's promise); `pread`
    // writes at most `len`.
    let n = unsafe { libc::pread(fd, ptr.cast(), len, off) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ESPIPE) {
        return Err(e);
    }
    // SAFETY: as above, for `read`.
    let n = unsafe { libc::read(fd, ptr.cast(), len) };
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One read (retried while interrupted) into bytes `start..bytes_total()` of `buf`, which
/// then has `set_init(start + n)`; `start` must not pass `buf.bytes_init()`.
fn pread_into<B: IoBufMut>(
    file: &std::fs::File,
    buf: &mut B,
    start: usize,
    pos: u64,
) -> io::Result<usize> {
    let start = start.min(buf.bytes_init());
    let len = buf.bytes_total() - start;
    // SAFETY: `start <= bytes_init <= bytes_total`: within the buffer, or one past.
    let ptr = unsafe { buf.stable_mut_ptr().add(start) };
    // SAFETY: `ptr` is valid for writes of `len` bytes (the `IoBufMut` contract), and this
    // job owns the buffer.
    let res = retry(|| unsafe { pread_once(file, ptr, len, pos) });
    if let Ok(n) = res {
        // SAFETY: `pread` initialised `n <= len` bytes from `start`; those before `start`
        // were initialised already.
        unsafe { buf.set_init(start + n) };
    }
    res
}

/// The initialised bytes of `buf`: what a write sends.
fn init_bytes<B: IoBuf>(buf: &B) -> &[u8] {
    // SAFETY: the first `bytes_init` bytes at `stable_ptr` are initialised and nobody
    // writes them while `buf` is borrowed (the `IoBuf` contract).
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) }
}

/// `pwrite`, or `write(2)` on a file that cannot seek (as [`pread_once`]).
fn pwrite_once(file: &std::fs::File, buf: &[u8], pos: u64) -> io::Result<usize> {
    match file.write_at(buf, pos) {
        Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => (&mut &*file).write(buf),
        res => res,
    }
}

/// [`pwrite_once`], retried while interrupted.
fn pwrite(file: &std::fs::File, buf: &[u8], pos: u64) -> io::Result<usize> {
    retry(|| pwrite_once(file, buf, pos))
}

pub(crate) async fn open(path: PathBuf, opts: OpenOptions) -> io::Result<Fd> {
    run(move || opts.to_std().open(path)).await.map(Fd::new)
}

/// One `pread` into bytes `start..bytes_total()` of `buf` (a read on a thread without a
/// ring); the buffer comes back with `set_init(start + n)`.
pub(super) async fn read_into<B: IoBufMut>(
    fd: &Fd,
    buf: B,
    start: usize,
    pos: u64,
) -> BufResult<usize, B> {
    run_with_buf(fd, buf, move |file, mut buf| {
        let res = pread_into(file, &mut buf, start, pos);
        (res, buf)
    })
    .await
}

/// One `pwrite` of bytes `start..bytes_init()` of `buf` (as [`read_into`], for writes).
pub(super) async fn write_from<B: IoBuf>(
    fd: &Fd,
    buf: B,
    start: usize,
    pos: u64,
) -> BufResult<usize, B> {
    run_with_buf(fd, buf, move |file, buf| {
        let bytes = init_bytes(&buf);
        let res = pwrite(file, &bytes[start.min(bytes.len())..], pos);
        (res, buf)
    })
    .await
}

pub(crate) async fn read_exact_at<B: IoBufMut>(fd: &Fd, mut buf: B, pos: u64) -> BufResult<(), B> {
    // SAFETY: no byte is declared initialised (a `Vec` is cleared; the reads overwrite).
    unsafe { buf.set_init(0) };
    run_with_buf(fd, buf, move |file, mut buf| {
        let want = buf.bytes_total();
        // Counted here, not read from `bytes_init`: see `uring::read_exact_at`.
        let mut filled = 0;
        let res = loop {
            if filled == want {
                break Ok(());
            }
            let at = pos.saturating_add(filled as u64);
            match pread_into(file, &mut buf, filled, at) {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "end of file after {filled} of {want} bytes read from offset {pos}"
                        ),
                    ));
                }
                Ok(n) => filled += n,
                Err(e) => break Err(e),
            }
        };
        (res, buf)
    })
    .await
}

pub(crate) async fn write_all_at<B: IoBuf>(fd: &Fd, buf: B, pos: u64) -> BufResult<(), B> {
    run_with_buf(fd, buf, move |file, buf| {
        let bytes = init_bytes(&buf);
        let mut done = 0;
        let res = loop {
            if done == bytes.len() {
                break Ok(());
            }
            let at = pos.saturating_add(done as u64);
            match pwrite_once(file, &bytes[done..], at) {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!(
                            "wrote nothing after {done} of {} bytes at offset {pos}",
                            bytes.len()
                        ),
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        (res, buf)
    })
    .await
}

pub(super) async fn metadata(fd: &Fd) -> io::Result<Metadata> {
    fd.run(|file| file.metadata())
        .await
        .unwrap_or_else(|| Err(shut_down()))
}

pub(crate) async fn sync_all(fd: &Fd) -> io::Result<()> {
    fd.run(|file| file.sync_all())
        .await
        .unwrap_or_else(|| Err(shut_down()))
}

pub(crate) async fn sync_data(fd: &Fd) -> io::Result<()> {
    fd.run(|file| file.sync_data())
        .await
        .unwrap_or_else(|| Err(shut_down()))
}

pub(crate) async fn set_len(fd: &Fd, size: u64) -> io::Result<()> {
    fd.run(move |file| file.set_len(size))
        .await
        .unwrap_or_else(|| Err(shut_down()))
}

/// Waits for the orphans (so that the caller is the last holder of the descriptor) and
/// returns the file, or `None` if something still holds it: only a job whose future was
/// leaked (`mem::forget`) mid-flight can, and it closes the descriptor when it ends, with no
/// error to report.
pub(crate) async fn release(fd: Fd) -> Option<std::fs::File> {
    release_shared(fd).await.ok()
}

/// [`release`], giving back the shared descriptor when something still holds it.
pub(crate) async fn release_shared(fd: Fd) -> Result<std::fs::File, Arc<std::fs::File>> {
    let Fd { file, orphans } = fd;
    for mut orphan in orphans.into_inner() {
        std::future::poll_fn(|cx| orphan.poll_done(cx)).await;
    }
    Arc::try_unwrap(file)
}

/// Closes `file` on the pool and reports `close(2)`'s error (std's `File` ignores close
/// errors on drop; the reactor's `close_reporting` does not).
pub(crate) async fn close_file(file: std::fs::File) -> io::Result<()> {
    run(move || weft_reactor::op::close::close_reporting(file.into())).await
}

pub(crate) async fn read(path: PathBuf) -> io::Result<Vec<u8>> {
    run(move || std::fs::read(path)).await
}

pub(crate) async fn read_to_string(path: PathBuf) -> io::Result<String> {
    run(move || {
        let bytes = std::fs::read(path)?;
        String::from_utf8(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))
    })
    .await
}

pub(crate) async fn write(path: PathBuf, contents: Vec<u8>) -> io::Result<()> {
    run(move || std::fs::write(path, contents)).await
}

/// `std::fs::metadata`, or `symlink_metadata` unless `follow`.
pub(super) async fn path_metadata(path: PathBuf, follow: bool) -> io::Result<Metadata> {
    run(move || {
        if follow {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        }
    })
    .await
}

/// `fchmod`.
pub(crate) async fn set_permissions(fd: &Fd, perm: std::fs::Permissions) -> io::Result<()> {
    fd.run(move |file| file.set_permissions(perm))
        .await
        .unwrap_or_else(|| Err(shut_down()))
}

/// `pread` on the blocking pool, then `cb` deferred onto the runtime's queues (callbacks
/// run on workers, never on pool threads). The job holds a clone of the descriptor.
pub(crate) fn read_at_callback<B, F>(fd: &Fd, buf: B, pos: u64, cb: F)
where
    B: IoBufMut,
    F: FnOnce(BufResult<usize, B>) + Send + 'static,
{
    let file = fd.file.clone();
    let handle = crate::scheduler::Handle::current();
    let rt = handle.clone();
    // Detached: the job delivers through `cb`; its JoinHandle is not needed.
    drop(handle.shared.blocking().spawn_io(&handle, move || {
        let mut buf = buf;
        // SAFETY: no byte is declared initialised (a `Vec` is cleared; the read
        // overwrites).
        unsafe { buf.set_init(0) };
        let res = pread_into(&file, &mut buf, 0, pos);
        drop(file);
        rt.defer(move || cb((res, buf)));
    }));
}

/// Opens `path` on the blocking pool, then defers `cb` with the result.
pub(crate) fn open_callback<F>(path: PathBuf, opts: OpenOptions, cb: F)
where
    F: FnOnce(io::Result<Fd>) + Send + 'static,
{
    let handle = crate::scheduler::Handle::current();
    let rt = handle.clone();
    drop(handle.shared.blocking().spawn_io(&handle, move || {
        let res = opts.to_std().open(path).map(Fd::new);
        rt.defer(move || cb(res));
    }));
}

/// How many directory entries one `read_dir` job reads: one pool round trip per batch,
/// not per entry.
pub(crate) const READ_DIR_BATCH: usize = 64;

/// What a `read_dir` job learns of one entry.
pub(crate) struct RawEntry {
    pub(crate) path: PathBuf,
    pub(crate) file_name: std::ffi::OsString,
    /// `None` if the type could not be read (the entry vanished, say).
    pub(crate) file_type: Option<std::fs::FileType>,
}

/// A batch of entries and the directory stream to read the next one from (`None` at the
/// end).
pub(crate) type Batch = (
    Option<std::fs::ReadDir>,
    std::collections::VecDeque<io::Result<RawEntry>>,
);

/// Reads up to [`READ_DIR_BATCH`] entries of `dir` on the calling (pool) thread.
pub(crate) fn read_dir_batch(mut dir: std::fs::ReadDir) -> Batch {
    let mut out = std::collections::VecDeque::with_capacity(READ_DIR_BATCH);
    for _ in 0..READ_DIR_BATCH {
        match dir.next() {
            None => return (None, out),
            Some(entry) => out.push_back(entry.map(|e| RawEntry {
                path: e.path(),
                file_name: e.file_name(),
                file_type: e.file_type().ok(),
            })),
        }
    }
    (Some(dir), out)
}

/// Opens the directory `path` and reads its first batch, in one pool job.
pub(crate) async fn read_dir(path: PathBuf) -> io::Result<Batch> {
    run(move || std::fs::read_dir(path).map(read_dir_batch)).await
}

pub(crate) async fn create_dir_all(path: PathBuf) -> io::Result<()> {
    run(move || std::fs::create_dir_all(path)).await
}

pub(crate) async fn remove_dir_all(path: PathBuf) -> io::Result<()> {
    run(move || std::fs::remove_dir_all(path)).await
}

pub(crate) async fn read_link(path: PathBuf) -> io::Result<PathBuf> {
    run(move || std::fs::read_link(path)).await
}

pub(crate) async fn canonicalize(path: PathBuf) -> io::Result<PathBuf> {
    run(move || std::fs::canonicalize(path)).await
}

pub(crate) async fn copy(from: PathBuf, to: PathBuf) -> io::Result<u64> {
    run(move || std::fs::copy(from, to)).await
}

pub(crate) async fn set_path_permissions(
    path: PathBuf,
    perm: std::fs::Permissions,
) -> io::Result<()> {
    run(move || std::fs::set_permissions(path, perm)).await
}
