//! The io_uring backend: positioned reads and writes submitted to the ring of the thread
//! that polls them when they are submitted, batched with that ring's other submissions and
//! reaped by it. Any worker may poll the op afterwards (a stolen task still completes: the
//! ring's owner reaps and the waker reschedules the task).
//!
//! `read_exact_at` and `write_all_at` submit one op per short transfer, each to the ring of
//! the thread polling at that moment (the task may have moved to another worker since the
//! last one), or to the blocking pool if that thread has no ring.
//!
//! # Ownership while in flight
//!
//! The kernel writes into (or reads from) the buffer's heap allocation and uses the
//! descriptor until the completion is reaped. An op holds both — the `Vec` and a clone of
//! the descriptor's `Arc` — and gives them back at completion. Dropped earlier, it hands
//! them to the ring as the op's cleanup (freed at the CQE, after the kernel is done), asks
//! the kernel to cancel, and leaves an orphan in the [`Fd`] so that `close` waits for it.
//!
//! `open` (`openat`), `close` and the `sync` calls are here too. An `open` future dropped
//! mid-flight hands the path to the ring and, if the kernel opens the file anyway, the
//! cleanup closes the new descriptor at the CQE. `metadata` stays on the blocking pool: it
//! returns `std::fs::Metadata`, which only std can build.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types};
use parking_lot::Mutex;
use weft_reactor::uring::UringHandle;

use super::blocking::{Fd, Orphan};

/// One submitted op on `fd`, holding what the kernel uses until it completes.
struct RingOp<'a> {
    fd: &'a Fd,
    ring: UringHandle,
    user_data: u64,
    buf: Option<Vec<u8>>,
    file: Option<Arc<std::fs::File>>,
}

impl Future for RingOp<'_> {
    type Output = (io::Result<u32>, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let r = std::task::ready!(self.ring.poll(self.user_data, cx.waker()));
        coop.made_progress();
        self.file = None;
        let buf = self.buf.take().expect("a ring op polled after completion");
        Poll::Ready((r.result, buf))
    }
}

impl Drop for RingOp<'_> {
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else { return };
        let file = self.file.take();
        let orphan = Arc::new(RingOrphan {
            done: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let o = orphan.clone();
        self.ring.abandon(
            self.user_data,
            Box::new(move |_| {
                drop((buf, file));
                o.finish();
            }),
        );
        self.fd.adopt(Box::new(orphan));
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

/// Submits `entry`, which points into `buf`'s heap allocation and at `fd`, and waits.
///
/// # Safety
///
/// `entry` may point only into `buf`'s allocation (within its capacity) and at `fd`'s
/// descriptor: the op keeps both alive until the completion is reaped.
async unsafe fn run(
    ring: UringHandle,
    fd: &Fd,
    entry: squeue::Entry,
    buf: Vec<u8>,
) -> (io::Result<u32>, Vec<u8>) {
    // SAFETY: `buf` (whose heap allocation does not move when the Vec does) and a clone of
    // the descriptor's Arc go into the op, which holds them until the completion or hands
    // them to the ring's cleanup (see the module docs).
    let Some(user_data) = (unsafe { ring.submit(entry) }) else {
        unreachable!("current_ring() hands out only rings this thread owns")
    };
    RingOp {
        fd,
        ring,
        user_data,
        buf: Some(buf),
        file: Some(fd.file.clone()),
    }
    .await
}

/// Reads into `buf[start..capacity]` at `pos` on the calling thread's ring (or the blocking
/// pool if it has none); returns the bytes read and the buffer with its length set to
/// `start + n`.
async fn read_into(fd: &Fd, buf: Vec<u8>, start: usize, pos: u64) -> (io::Result<usize>, Vec<u8>) {
    match crate::io::current_ring() {
        Some(ring) => read_into_ring(ring, fd, buf, start, pos).await,
        None => super::blocking::read_into(fd, buf, start, pos).await,
    }
}

/// [`read_into`] on `ring`, which the calling thread owns.
async fn read_into_ring(
    ring: UringHandle,
    fd: &Fd,
    mut buf: Vec<u8>,
    start: usize,
    pos: u64,
) -> (io::Result<usize>, Vec<u8>) {
    let len = (buf.capacity() - start).min(u32::MAX as usize) as u32;
    // SAFETY: `start <= capacity`, so the pointer stays within the allocation.
    let ptr = unsafe { buf.as_mut_ptr().add(start) };
    let entry = opcode::Read::new(types::Fd(fd.raw()), ptr, len)
        .offset(pos)
        .build();
    // SAFETY: the entry points into `buf` (within capacity) and at `fd`.
    let (res, mut buf) = unsafe { run(ring, fd, entry, buf) }.await;
    match res {
        Ok(n) => {
            // SAFETY: the kernel initialised `n <= len` bytes from `start`, and the bytes
            // before `start` were initialised by the caller (see `read_exact_at`).
            unsafe { buf.set_len(start + n as usize) };
            (Ok(n as usize), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

pub(crate) async fn read_at(
    ring: UringHandle,
    fd: &Fd,
    mut buf: Vec<u8>,
    pos: u64,
) -> (io::Result<usize>, Vec<u8>) {
    buf.clear();
    read_into_ring(ring, fd, buf, 0, pos).await
}

/// Fills `buf` to its capacity, one read per short transfer, each submitted where
/// [`read_into`] says.
pub(crate) async fn read_exact_at(
    fd: &Fd,
    mut buf: Vec<u8>,
    pos: u64,
) -> (io::Result<()>, Vec<u8>) {
    buf.clear();
    let want = buf.capacity();
    while buf.len() < want {
        let filled = buf.len();
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
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Writes `buf[start..len]` at `pos` on the calling thread's ring (or the blocking pool if
/// it has none).
async fn write_from(fd: &Fd, buf: Vec<u8>, start: usize, pos: u64) -> (io::Result<usize>, Vec<u8>) {
    match crate::io::current_ring() {
        Some(ring) => write_from_ring(ring, fd, buf, start, pos).await,
        None => super::blocking::write_from(fd, buf, start, pos).await,
    }
}

/// [`write_from`] on `ring`, which the calling thread owns.
async fn write_from_ring(
    ring: UringHandle,
    fd: &Fd,
    buf: Vec<u8>,
    start: usize,
    pos: u64,
) -> (io::Result<usize>, Vec<u8>) {
    let len = (buf.len() - start).min(u32::MAX as usize) as u32;
    // SAFETY: `start <= len`, so the pointer stays within the initialised bytes.
    let ptr = unsafe { buf.as_ptr().add(start) };
    let entry = opcode::Write::new(types::Fd(fd.raw()), ptr, len)
        .offset(pos)
        .build();
    // SAFETY: the entry points into `buf`'s initialised bytes and at `fd`.
    let (res, buf) = unsafe { run(ring, fd, entry, buf) }.await;
    (res.map(|n| n as usize), buf)
}

pub(crate) async fn write_at(
    ring: UringHandle,
    fd: &Fd,
    buf: Vec<u8>,
    pos: u64,
) -> (io::Result<usize>, Vec<u8>) {
    write_from_ring(ring, fd, buf, 0, pos).await
}

/// Writes all of `buf`, one write per short transfer, each submitted where [`write_from`]
/// says.
pub(crate) async fn write_all_at(fd: &Fd, mut buf: Vec<u8>, pos: u64) -> (io::Result<()>, Vec<u8>) {
    let mut done = 0;
    while done < buf.len() {
        let (res, b) = write_from(fd, buf, done, pos + done as u64).await;
        buf = b;
        match res {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!(
                        "wrote 0 bytes after {done} of {} at offset {pos}",
                        buf.len()
                    ),
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
/// reaps it — no future, no task. The op's closure owns `buf` and a clone of the
/// descriptor until the completion, so the kernel never writes into freed memory and the
/// descriptor stays open while the read is in flight.
pub(crate) fn read_at_callback<F>(ring: &UringHandle, fd: &Fd, mut buf: Vec<u8>, pos: u64, cb: F)
where
    F: FnOnce((io::Result<usize>, Vec<u8>)) + Send + 'static,
{
    buf.clear();
    let len = buf.capacity().min(u32::MAX as usize) as u32;
    let entry = opcode::Read::new(types::Fd(fd.raw()), buf.as_mut_ptr(), len)
        .offset(pos)
        .build();
    let file = fd.file.clone();
    let complete = Box::new(move |r: weft_reactor::uring::lifecycle::CqeResult| {
        drop(file);
        let out = match r.result {
            Ok(n) => {
                // SAFETY: the kernel initialised `n <= len <= capacity` bytes from the start
                // of the buffer, and the completion has been reaped: it writes no more.
                unsafe { buf.set_len(n as usize) };
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        };
        cb(out)
    });
    // SAFETY: the entry points into `buf`'s heap allocation (within its capacity), which the
    // completion closure owns and does not touch until the CQE is reaped; the closure also
    // holds a clone of the descriptor, so it stays open until then.
    let submitted = unsafe { ring.submit_with_callback(entry, complete) };
    assert!(
        submitted.is_some(),
        "current_ring() hands out only rings this thread owns"
    );
}

/// An op whose result is all its caller wants (`openat`, `close`): it owns `keep`, what the
/// kernel reads until the completion, and if dropped before the completion hands `keep` to
/// the ring with `on_late`, which runs at the CQE (and may undo a late success).
struct SimpleOp<K: Send + 'static> {
    ring: UringHandle,
    user_data: u64,
    keep: Option<K>,
    on_late: fn(K, io::Result<u32>),
}

impl<K: Send + 'static> Future for SimpleOp<K> {
    type Output = io::Result<u32>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u32>> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let r = std::task::ready!(self.ring.poll(self.user_data, cx.waker()));
        coop.made_progress();
        self.keep = None;
        Poll::Ready(r.result)
    }
}

// `keep` is moved out only by `Option::take`; nothing in the op is pinned.
impl<K: Send + 'static> Unpin for SimpleOp<K> {}

impl<K: Send + 'static> Drop for SimpleOp<K> {
    fn drop(&mut self) {
        let Some(keep) = self.keep.take() else { return };
        let on_late = self.on_late;
        self.ring
            .abandon(self.user_data, Box::new(move |r| on_late(keep, r.result)));
    }
}

/// The late completion of an abandoned `openat`: frees the path and closes the descriptor
/// the kernel opened after all.
fn close_late_open(path: std::ffi::CString, res: io::Result<u32>) {
    drop(path);
    if let Ok(fd) = res {
        // SAFETY: the abandoned openat succeeded after its future was dropped: `fd` is a
        // new descriptor that nothing else knows of, so closing it here is its only use.
        unsafe { libc::close(fd as i32) };
    }
}

/// Opens `path` with `opts` through the ring.
pub(crate) async fn open(
    ring: UringHandle,
    path: &std::path::Path,
    opts: &crate::fs::OpenOptions,
) -> io::Result<Fd> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;
    let (flags, mode) = opts.open_flags()?;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    })?;
    let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(flags)
        .mode(mode)
        .build();
    // SAFETY: the entry points at `path`'s heap bytes, which the op owns until the
    // completion is reaped (or hands to the ring's cleanup if it is dropped first).
    let Some(user_data) = (unsafe { ring.submit(entry) }) else {
        unreachable!("current_ring() hands out only rings this thread owns")
    };
    let fd = SimpleOp {
        ring,
        user_data,
        keep: Some(path),
        on_late: close_late_open,
    }
    .await?;
    // SAFETY: a successful openat returned a new descriptor that only this call knows of.
    let file = unsafe { std::fs::File::from_raw_fd(fd as i32) };
    Ok(Fd::new(file))
}

/// `fsync` (or `fdatasync`) of `fd` through the ring; the op holds the descriptor.
pub(crate) async fn fsync(ring: UringHandle, fd: &Fd, data_only: bool) -> io::Result<()> {
    let mut entry = opcode::Fsync::new(types::Fd(fd.raw()));
    if data_only {
        entry = entry.flags(types::FsyncFlags::DATASYNC);
    }
    // SAFETY: the entry points at no memory, only at `fd`, which the op keeps open.
    let (res, _) = unsafe { run(ring, fd, entry.build(), Vec::new()) }.await;
    res.map(drop)
}

/// `IORING_OP_CLOSE` of the last holder's file, reporting the error.
pub(crate) async fn close(ring: UringHandle, file: std::fs::File) -> io::Result<()> {
    use std::os::unix::io::IntoRawFd;
    let fd = file.into_raw_fd();
    let entry = opcode::Close::new(types::Fd(fd)).build();
    // SAFETY: the entry points at no memory; `fd` is ours alone (from `into_raw_fd`) and is
    // released by the kernel whatever happens to this future.
    let Some(user_data) = (unsafe { ring.submit(entry) }) else {
        unreachable!("current_ring() hands out only rings this thread owns")
    };
    // Nothing to keep alive (the kernel releases the descriptor either way): `keep` is
    // only the marker that the op has not completed.
    SimpleOp {
        ring,
        user_data,
        keep: Some(()),
        on_late: |(), _| {},
    }
    .await
    .map(drop)
}
