//! The io_uring backend: positioned reads and writes submitted to the ring of the thread
//! that first polls them (a worker's, or a `block_on` thread's), batched with that ring's
//! other submissions and reaped by it. Any worker may poll the op afterwards (a stolen task
//! still completes: the ring's owner reaps and the waker reschedules the task).
//!
//! # Ownership while in flight
//!
//! The kernel writes into (or reads from) the buffer's heap allocation and uses the
//! descriptor until the completion is reaped. An op holds both — the `Vec` and a clone of
//! the descriptor's `Arc` — and gives them back at completion. Dropped earlier, it hands
//! them to the ring as the op's cleanup (freed at the CQE, after the kernel is done), asks
//! the kernel to cancel, and leaves an orphan in the [`Fd`] so that `close` waits for it.
//!
//! Only the data path is here; `open`, `close`, `metadata` and the `sync` calls stay on the
//! blocking pool for now (`metadata` must: it returns `std::fs::Metadata`, which only std
//! can build).

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

/// Reads into `buf[start..capacity]` at `pos`; returns the bytes read and the buffer with
/// its length set to `start + n`.
async fn read_into(
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
    read_into(ring, fd, buf, 0, pos).await
}

pub(crate) async fn read_exact_at(
    ring: UringHandle,
    fd: &Fd,
    mut buf: Vec<u8>,
    pos: u64,
) -> (io::Result<()>, Vec<u8>) {
    buf.clear();
    let want = buf.capacity();
    while buf.len() < want {
        let filled = buf.len();
        let (res, b) = read_into(ring.clone(), fd, buf, filled, pos + filled as u64).await;
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

async fn write_from(
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
    write_from(ring, fd, buf, 0, pos).await
}

pub(crate) async fn write_all_at(
    ring: UringHandle,
    fd: &Fd,
    mut buf: Vec<u8>,
    pos: u64,
) -> (io::Result<()>, Vec<u8>) {
    let mut done = 0;
    while done < buf.len() {
        let (res, b) = write_from(ring.clone(), fd, buf, done, pos + done as u64).await;
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
