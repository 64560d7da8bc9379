//! Poll-based reads and writes over the completion ring: the state machine under the
//! `tokio-io`, `futures-io` and `hyper` trait impls (`compat.rs`).
//!
//! A poll-based reader hands its buffer in for one call only, while a ring `RECV` owns its
//! buffer until the kernel completes it, so the two meet through a buffer of the socket's
//! own, held with the in-flight operation in a [`PollState`] that every clone of the
//! socket (both halves of a split stream) shares.
//!
//! # Reads
//!
//! `poll_read` returns, in this order: bytes an earlier `RECV` received that no caller
//! has taken yet; bytes the socket's stash holds for cancelled owned-buffer reads (after
//! every such `RECV` still in the kernel has completed); and else the result of a new
//! `RECV`, of the caller's buffer's size (at least [`MIN_RECV`], at most [`MAX_RECV`]),
//! into the state's buffer, copied out as far as the caller's buffer reaches and the rest
//! kept. The in-flight `RECV` belongs to the state, not to the caller's future: a caller
//! that stops polling (a dropped `read` future, a lost `select!`) leaves it there, and the
//! next `poll_read` from any task picks up its bytes. No received byte is lost.
//!
//! With `WEFT_RECV_MULTISHOT=always`, on a ring whose kernel has it (6.0+,
//! `op::recv_multi`), the `RECV` is multishot: the first `poll_read` that finds nothing
//! arms one ([`MultiRecv`]) on its thread's ring, and it stays armed, each completion's
//! bytes copied (by the reaping thread, before the provided buffer goes back to the
//! kernel) into the socket's queue, which `poll_read` returns from and which wakes the
//! reader. It stays on the ring it was armed on: a reader stolen by another worker waits
//! on the same queue, and the completions are reaped wherever that ring's are. It ends at
//! end of stream or an error (each returned once, then the next `poll_read` arms a new
//! one), when the ring runs out of provided buffers (`ENOBUFS`: the next receive is
//! one-shot, then multishot again), or when [`MULTI_QUEUE_CAP`] bytes wait unread
//! (cancelled; the reader re-arms once it has read them, and the kernel's socket buffer
//! pushes back on the peer meanwhile). Dropping the socket cancels it.
//!
//! One-shot is the default because the multishot receive measured no cheaper: on the
//! hyper example (`wrk -t1 -c64`, 2 workers, 6 interleaved same-binary rounds of 4 s on a
//! machine at load average 8 to 14 from other builds) the server's CPU per request was
//! 1.01, 1.04 and 1.19 times the one-shot figure (median 1.04; an earlier build, with an
//! allocation per completion since removed, 1.03 to 1.16), though it halves the ring
//! submissions (`--stats`, one 3 s round each: 1.00 per request, the `SEND`, against 2.00)
//! and cuts the parks (0.46 per request against 0.71). The kernel's poll arm per
//! `RECV` that multishot saves is paid back by the copy out of the provided buffer, the
//! queue's lock and the handler, and a poll-first one-shot `RECV` arms its poll once per
//! request anyway. Owned-buffer reads copying from the same queue (tried for `tcp_echo`)
//! cost more: `net` bench count mode, 3 interleaved rounds, CPU time (user + system)
//! against one-shot 0.96 to 1.05 at 64 bytes and 1.08 to 1.27 at 4 KiB (two copies per
//! message instead of the kernel's one), so owned reads stay one-shot.
//!
//! An owned-buffer read (`TcpStream::read` and the others in `socket.rs`) first calls
//! [`PollState::release_read`]: the bytes the state holds go to the stash, and an
//! in-flight `RECV` is abandoned to the ring, which moves what it receives to the stash
//! too (a multishot one is cancelled, and what it still receives goes to the stash), so
//! the owned read returns them first. Mixing the two kinds of reads on one stream
//! keeps the byte order (a `RECV` released that way reports no end of stream or error; the
//! owned read's own `RECV` sees those again).
//!
//! # Writes: copy, report accepted, send on the ring
//!
//! A `SEND` needs bytes that outlive the caller's `&[u8]`, and a poll-based writer may
//! pass different bytes when it retries after `Pending`, so reporting a write only once
//! its `SEND` completed would count bytes of a buffer the caller no longer offers. So
//! `poll_write` waits until the previous write is fully sent, copies up to [`MAX_SEND`]
//! bytes into the state's buffer, submits the `SEND` and reports them accepted at once;
//! `poll_flush` waits for that `SEND` (and resubmits what a short `SEND` left). An error
//! of a `SEND` whose bytes were already reported is returned by the next `poll_write` or
//! `poll_flush`. `poll_shutdown` is a flush, then `shutdown(Write)`. Each accepted write
//! spends a unit of the cooperative budget, as a `SEND` does.
//!
//! The other way, `WEFT_POLL_SEND=first`, sends with a non-blocking `sendmsg(2)` first
//! and takes the ring's way only when the socket's buffer is full (`EAGAIN`): no copy, no
//! completion to wait for, the response in the kernel when `poll_write` returns rather
//! than at the worker's next park or maintenance pass. On the hyper example
//! (`ci/http_bench.sh`) it halves the task polls and ring ops per request (one each, the
//! `SEND`'s completion no longer wakes the task to finish its flush) but adds a syscall
//! per request (the ring way makes 0.2, the `io_uring_enter`s of the parks), and measured
//! in interleaved same-run rounds (12, on a loaded 2-core machine) it cost 17% more server
//! CPU per request and 5 to 8% of the requests per second, with p99 better in one set of
//! rounds and worse in the other. So the ring way is the default, and the variable stays
//! to measure the two in one build. A dropped `OwnedWriteHalf` shuts its side only after
//! the accepted bytes are sent (`Socket::shutdown_write_when_sent`).
//!
//! The ring way costs the hyper example 1.97 task polls, 2.00 ring submissions (a `RECV`
//! and a `SEND`) and 0.4 to 0.5 parks per request (`ci/http_bench.sh` counts them): the
//! second poll is the `SEND`'s completion finishing hyper's flush. A flush that returns as
//! soon as its `SEND` is queued, without waiting for the completion, was tried: one poll
//! per request, and in 12 interleaved rounds on a loaded 2-core machine 4% less server CPU
//! per request than the ring way (median of the paired ratios), inside the rounds' noise.
//! It would let the inherent `shutdown(Write)` overtake a flushed but still queued `SEND`
//! and fail it, so `poll_flush` waits for the completion.
//!
//! `WEFT_SPAN_TRACE=1` prints, once a second, the percentiles of how long a poll write's
//! `SEND` took from being queued to its completion being seen by the writer ([`span`]).
//! On the hyper example under `wrk -c64` (2 workers, 2-core machine at load average 10
//! from other builds) its median was 127 to 1 023 µs and its p99 2 to 16 ms, and handing
//! the queued `SEND`s to the kernel right after the poll that queued them (an
//! `io_uring_enter` per such poll, tried as a scheduler option) left that p99 where it
//! was while it cost 20 to 30% more server CPU per request than the default in the same
//! rounds: the slow spans are the wait for the worker's thread to get a CPU back, not the
//! wait for its next submission.
//!
//! # Without a ring
//!
//! On the fallback driver and on threads that own no ring, reads and writes are
//! non-blocking `recv(2)`/`send(2)` straight from and into the caller's buffer, and on
//! `EAGAIN` a readiness wait (the one `socket.rs` uses), kept in the state like a `RECV`.
//! A stream may move between threads of either kind: each call looks at the thread it
//! runs on.

// Without one of the trait features nothing polls; `release_read` still runs for every
// owned read.
#![cfg_attr(
    not(any(feature = "tokio-io", feature = "futures-io", feature = "hyper")),
    allow(dead_code)
)]

use std::future::Future;
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use parking_lot::Mutex;

use weft_reactor::op::Op;
use weft_reactor::op::multishot::Multishot;
use weft_reactor::op::recv::Recv;
use weft_reactor::op::recv_multi::{RecvMulti, RecvSink};
use weft_reactor::op::send::Send as SendOp;

use super::ring::{Budgeted, Stash, StashHook, Stashed};

/// A poll read's `RECV`: into the state's buffer, its bytes to the stash if abandoned.
type RecvFuture = Stashed<Recv<Arc<OwnedFd>, Vec<u8>, StashHook>>;
/// A poll write's `SEND`, from the state's buffer.
type SendFuture = Budgeted<SendOp<Arc<OwnedFd>, Vec<u8>>>;

/// Submits a `SEND` of `buf[start..]` on the calling thread's ring; `Err` with the buffer
/// back if the thread owns none.
fn submit_send(fd: &Arc<OwnedFd>, buf: Vec<u8>, start: usize) -> Result<SendFuture, Vec<u8>> {
    Op::submit(SendOp::new(fd.clone(), buf, start, libc::MSG_NOSIGNAL))
        .map(Budgeted)
        .map_err(|op| op.into_parts().1)
}
use super::socket::Socket;

/// The smallest `RECV` a poll read submits, whatever the caller's buffer (a caller that
/// reads a few bytes at a time gets the rest from the state's buffer).
pub(crate) const MIN_RECV: usize = 8 * 1024;
/// The largest `RECV` a poll read submits.
pub(crate) const MAX_RECV: usize = 256 * 1024;
/// The most bytes one `poll_write` copies and accepts.
pub(crate) const MAX_SEND: usize = 256 * 1024;

type ReadyFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

fn ready_future(fd: &Arc<OwnedFd>, events: i16) -> ReadyFuture {
    let fd = fd.clone();
    Box::pin(async move { crate::process::ring::ready(&fd, events).await })
}

/// The poll-based read and write state of one socket, shared by its clones.
#[derive(Default)]
pub(crate) struct PollState {
    read: Mutex<ReadState>,
    write: Mutex<WriteState>,
}

#[derive(Default)]
struct ReadState {
    /// Received bytes not yet returned are `buf[pos..]`; empty (moved out) while a `RECV`
    /// owns it.
    buf: Vec<u8>,
    pos: usize,
    recv: Option<RecvFuture>,
    ready: Option<ReadyFuture>,
    /// The multishot `RECV` armed for this socket, and what it received.
    multi: Option<Arc<MultiRecv>>,
}

impl Drop for ReadState {
    fn drop(&mut self) {
        // The socket is gone: cancel its multishot receive (the ring drops what still
        // comes, with the descriptor clone that kept the socket open for it).
        if let Some(m) = self.multi.take() {
            let handle = m.inner.lock().handle.take();
            drop(handle);
        }
    }
}

/// Whether poll reads on a ring use a multishot `RECV` (`op::recv_multi`):
/// `WEFT_RECV_MULTISHOT=always` (read once); by default (`never`) one-shot `RECV`s, which
/// measured no slower (module docs).
pub(crate) fn multishot_reads() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("WEFT_RECV_MULTISHOT").as_deref() == Ok("always"))
}

/// Unread bytes a multishot receive may queue before it is cancelled (the reader takes
/// them, then arms a new one; until then the kernel's socket buffer holds the rest and
/// pushes back on the peer, as with one-shot receives).
pub(crate) const MULTI_QUEUE_CAP: usize = 256 * 1024;

/// A socket's multishot receive: what it received that no read has taken, how it ended,
/// and the reader to wake. Shared by the read state and the receive's sink.
pub(crate) struct MultiRecv {
    inner: Mutex<MultiInner>,
    stash: Arc<Stash>,
}

#[derive(Default)]
struct MultiInner {
    /// Received bytes not yet returned are `bytes[pos..]`.
    bytes: Vec<u8>,
    pos: usize,
    /// It ended at end of stream (its last completion received nothing).
    eof: bool,
    /// The error that ended it.
    error: Option<io::Error>,
    /// Whether the kernel may still complete it.
    armed: bool,
    /// It ended because the ring's provided buffers ran out.
    nobufs: bool,
    /// An owned-buffer read took over the socket: what still comes goes to the stash,
    /// whose count of receives in the kernel includes this one until its last completion.
    released: bool,
    waker: Option<Waker>,
    /// Its handle (dropping it cancels it); `None` while it is being submitted, once it is
    /// cancelled, or ended.
    handle: Option<Multishot>,
}

impl MultiRecv {
    /// Arms a multishot receive on `fd` on the calling thread's ring; `None` where none
    /// can run (no ring on this thread, a kernel without it, no provided buffers).
    fn arm(fd: &Arc<OwnedFd>, stash: &Arc<Stash>) -> Option<Arc<MultiRecv>> {
        let m = Arc::new(MultiRecv {
            inner: Mutex::new(MultiInner {
                armed: true,
                ..MultiInner::default()
            }),
            stash: stash.clone(),
        });
        let op = RecvMulti::new(fd.clone(), 0, MultiSink(m.clone())).ok()?;
        // Submitted with no lock of `m` held: a full submission queue makes the ring reap,
        // and a completion of this receive locks it.
        let handle = Multishot::submit(op).ok()?;
        let mut q = m.inner.lock();
        if q.armed {
            q.handle = Some(handle);
        }
        // Else it ended already; the handle's drop (after the lock) cancels nothing.
        drop(q);
        Some(m)
    }

    /// Hands what it holds to the stash and cancels it; what it still receives goes to
    /// the stash too (`PollState::release_read`).
    fn release(&self, stash: &Stash) {
        let handle = {
            let mut q = self.inner.lock();
            if q.pos < q.bytes.len() {
                stash.put(&q.bytes[q.pos..]);
            }
            q.bytes = Vec::new();
            q.pos = 0;
            q.released = true;
            if q.armed {
                stash.abandoned();
            }
            q.handle.take()
        };
        drop(handle);
    }
}

/// The multishot receive's sink: bytes are copied into the [`MultiRecv`] (or, once
/// released, the stash) before `recv_multi` gives their buffer back to the kernel.
struct MultiSink(Arc<MultiRecv>);

impl RecvSink for MultiSink {
    fn received(&self, bytes: io::Result<&[u8]>, last: bool) {
        let m = &*self.0;
        let (waker, cancel) = {
            let mut q = m.inner.lock();
            match bytes {
                Ok([]) => q.eof |= last && !q.released,
                Ok(b) if q.released => m.stash.put(b),
                Ok(b) => q.bytes.extend_from_slice(b),
                // Our cancel; the buffers ran out (the reader arms a new one); a kernel
                // without the flag (the reader falls back to one-shot receives).
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => q.nobufs = true,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECANCELED | libc::EINVAL)) => {}
                Err(e) => {
                    if !q.released {
                        q.error = Some(e);
                    }
                }
            }
            let cancel = if last {
                q.armed = false;
                if q.released {
                    m.stash.settle(&[]);
                }
                q.handle.take()
            } else if !q.released && q.bytes.len() - q.pos >= MULTI_QUEUE_CAP {
                q.handle.take()
            } else {
                None
            };
            (q.waker.take(), cancel)
        };
        // Outside the lock: a live handle's drop asks the ring to cancel.
        drop(cancel);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[derive(Default)]
struct WriteState {
    /// Accepted bytes not yet sent are `buf[sent..]`; empty (moved out) while a `SEND`
    /// owns it.
    buf: Vec<u8>,
    sent: usize,
    send: Option<SendFuture>,
    ready: Option<ReadyFuture>,
    /// The error of a `SEND` whose bytes were already reported accepted.
    error: Option<io::Error>,
    /// When the in-flight `SEND` was queued, with `WEFT_SPAN_TRACE` (see [`span`]).
    queued_at: Option<std::time::Instant>,
}

/// `WEFT_SPAN_TRACE=1`: a diagnostic of how long a poll write's `SEND` takes from being
/// queued (in `poll_write`) to its completion being seen by the writer's next poll: the
/// wait for the worker's next submission, the kernel's send, the wait to be reaped and the
/// task's wait to be polled. Once a second a thread prints the spans of that second to
/// stderr as `span send: n N p50 P p90 P p99 P p999 P max M` (microseconds, rounded up to
/// a power-of-two bucket's top).
mod span {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Instant;

    const BUCKETS: usize = 32;
    static HIST: [AtomicU64; BUCKETS] = [const { AtomicU64::new(0) }; BUCKETS];
    static MAX: AtomicU64 = AtomicU64::new(0);

    /// Whether the trace is on (read once; the first call starts the printer).
    pub(super) fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| {
            let on = std::env::var_os("WEFT_SPAN_TRACE").is_some_and(|v| v != "0");
            if on {
                let _ = std::thread::Builder::new()
                    .name("weft-span".into())
                    .spawn(print);
            }
            on
        })
    }

    /// Records a span that began at `since`.
    pub(super) fn record(since: Instant) {
        let us = since.elapsed().as_micros() as u64;
        let b = (64 - us.leading_zeros() as usize).min(BUCKETS - 1);
        HIST[b].fetch_add(1, Relaxed);
        MAX.fetch_max(us, Relaxed);
    }

    fn print() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let counts: Vec<u64> = HIST.iter().map(|h| h.swap(0, Relaxed)).collect();
            let max = MAX.swap(0, Relaxed);
            let n: u64 = counts.iter().sum();
            if n == 0 {
                continue;
            }
            // The top of the bucket holding quantile `q`.
            let at = |q: f64| {
                let want = (n as f64 * q).ceil() as u64;
                let mut seen = 0;
                for (b, c) in counts.iter().enumerate() {
                    seen += c;
                    if seen >= want {
                        return (1u64 << b) - 1;
                    }
                }
                max
            };
            eprintln!(
                "span send: n {n} p50 {} p90 {} p99 {} p999 {} max {max}",
                at(0.5),
                at(0.9),
                at(0.99),
                at(0.999)
            );
        }
    }
}

/// Whether poll writes on a ring thread try `send(2)` before a `SEND`:
/// `WEFT_POLL_SEND=first`, for measurement; by default every write takes the ring (module
/// docs, "Writes").
fn send_first() -> bool {
    static FIRST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FIRST.get_or_init(|| std::env::var("WEFT_POLL_SEND").as_deref() == Ok("first"))
}

/// What a syscall's failure means for a poll loop.
enum Failed {
    /// `EAGAIN`: wait for readiness, then try again.
    Wait,
    /// `EINTR`: try again now.
    Again,
    /// Anything else: give it to the caller.
    Fatal(io::Error),
}

fn classify(e: io::Error) -> Failed {
    match e.kind() {
        io::ErrorKind::WouldBlock => Failed::Wait,
        io::ErrorKind::Interrupted => Failed::Again,
        _ => Failed::Fatal(e),
    }
}

/// Copies `src` into the front of `dst` as far as it reaches; how many bytes.
fn copy_out(src: &[u8], dst: &mut [MaybeUninit<u8>]) -> usize {
    let n = src.len().min(dst.len());
    // SAFETY: both ranges are `n` bytes long and valid; `src` is borrowed shared and `dst`
    // exclusively, so they do not overlap; writing initialised bytes into `MaybeUninit`
    // storage is always allowed.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), n) };
    n
}

impl PollState {
    /// Reads into the front of `dst`: how many bytes it initialised there (0 at end of
    /// stream, or if `dst` is empty).
    pub(crate) fn poll_read(
        &self,
        fd: &Arc<OwnedFd>,
        stash: &Arc<Stash>,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut guard = self.read.lock();
        let st = &mut *guard;
        // After a multishot receive ran out of provided buffers, one one-shot `RECV`.
        let mut one_shot = false;
        loop {
            if st.pos < st.buf.len() {
                let n = copy_out(&st.buf[st.pos..], dst);
                st.pos += n;
                return Poll::Ready(Ok(n));
            }
            if let Some(m) = st.multi.as_ref() {
                let mut q = m.inner.lock();
                if q.pos < q.bytes.len() {
                    let coop = ready!(crate::coop::poll_proceed(cx));
                    let n = copy_out(&q.bytes[q.pos..], dst);
                    q.pos += n;
                    if q.pos == q.bytes.len() {
                        q.bytes.clear();
                        q.pos = 0;
                    }
                    coop.made_progress();
                    return Poll::Ready(Ok(n));
                }
                if let Some(e) = q.error.take() {
                    drop(q);
                    st.multi = None;
                    return Poll::Ready(Err(e));
                }
                if q.eof {
                    drop(q);
                    st.multi = None;
                    return Poll::Ready(Ok(0));
                }
                if q.armed {
                    match &mut q.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        w => *w = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
                // It ended (out of buffers, or cancelled with its queue full): arm anew; or,
                // where the ring's buffers ran out, receive one-shot this time (a one-shot
                // `RECV` needs none of them).
                one_shot = q.nobufs;
                drop(q);
                st.multi = None;
            }
            if let Some(recv) = st.recv.as_mut() {
                let (r, buf) = ready!(Pin::new(recv).poll(cx));
                st.recv = None;
                st.buf = buf;
                st.pos = 0;
                match r {
                    Ok(0) => return Poll::Ready(Ok(0)),
                    Ok(_) => continue,
                    Err(e) => match classify(e) {
                        Failed::Wait => st.ready = Some(ready_future(fd, libc::POLLIN)),
                        Failed::Again => {}
                        Failed::Fatal(e) => return Poll::Ready(Err(e)),
                    },
                }
            }
            if let Some(wait) = st.ready.as_mut() {
                let r = ready!(wait.as_mut().poll(cx));
                st.ready = None;
                r?;
            }
            // Bytes of cancelled owned reads come first, once none is still in the kernel.
            ready!(stash.poll_settled(cx));
            let want = dst.len().clamp(MIN_RECV, MAX_RECV);
            st.buf.clear();
            st.pos = 0;
            st.buf.reserve(want);
            if stash.take(&mut st.buf, 0, false).is_some() {
                continue;
            }
            if multishot_reads() && !std::mem::take(&mut one_shot) {
                if let Some(m) = MultiRecv::arm(fd, stash) {
                    // Polled at the top of the loop, which registers the waker.
                    st.multi = Some(m);
                    continue;
                }
            }
            let op = Recv::with_hook(
                fd.clone(),
                mem::take(&mut st.buf),
                0,
                0,
                StashHook(stash.clone()),
            );
            match Stashed::submit(op, stash).map_err(|op| op.into_parts().1) {
                // Polled at the top of the loop, which registers the waker.
                Ok(recv) => st.recv = Some(recv),
                Err(buf) => {
                    st.buf = buf;
                    // No ring on this thread: the syscall, straight into `dst`.
                    // SAFETY: writes at most `dst.len()` bytes into `dst`, which is
                    // borrowed exclusively for the call.
                    let n = unsafe {
                        libc::recv(fd.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len(), 0)
                    };
                    if n >= 0 {
                        return Poll::Ready(Ok(n as usize));
                    }
                    match classify(io::Error::last_os_error()) {
                        Failed::Wait => st.ready = Some(ready_future(fd, libc::POLLIN)),
                        Failed::Again => {}
                        Failed::Fatal(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
        }
    }

    /// Hands everything the poll reads hold to the stash, for an owned-buffer read that
    /// starts now: the bytes received and not returned, and an in-flight `RECV` (abandoned
    /// to the ring, which moves what it receives to the stash).
    pub(crate) fn release_read(&self, stash: &Stash) {
        let mut st = self.read.lock();
        if st.pos < st.buf.len() {
            // They came before anything the stash still holds (they may be its front, or
            // a `RECV`'s, which ran only with the stash empty).
            stash.put_front(&st.buf[st.pos..]);
        }
        st.buf.clear();
        st.pos = 0;
        // Its drop counts it in the stash's in-flight reads, which the owned read waits for.
        st.recv = None;
        st.ready = None;
        if let Some(m) = st.multi.take() {
            m.release(stash);
        }
    }

    /// Writes up to [`MAX_SEND`] bytes of `bufs` (concatenated): how many it accepted.
    pub(crate) fn poll_write(
        &self,
        fd: &Arc<OwnedFd>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut guard = self.write.lock();
        let st = &mut *guard;
        loop {
            ready!(st.drive(fd, cx))?;
            // Nothing accepted is unsent. Without a ring (or with `send_first`), the
            // syscall, straight from the caller's bytes.
            let coop = ready!(crate::coop::poll_proceed(cx));
            let ring = weft_reactor::op::can_submit();
            if !ring || send_first() {
                let n = writev(fd, bufs);
                if n >= 0 {
                    coop.made_progress();
                    return Poll::Ready(Ok(n as usize));
                }
                match classify(io::Error::last_os_error()) {
                    // The socket's buffer is full: on a ring, a `SEND` that waits for room
                    // in the kernel (below); else a readiness wait.
                    Failed::Wait if ring => {}
                    Failed::Wait => {
                        st.ready = Some(ready_future(fd, libc::POLLOUT));
                        continue;
                    }
                    Failed::Again => continue,
                    Failed::Fatal(e) => return Poll::Ready(Err(e)),
                }
            }
            let mut room = MAX_SEND;
            st.buf.clear();
            st.sent = 0;
            st.buf.reserve(total.min(room));
            for b in bufs {
                let n = b.len().min(room);
                st.buf.extend_from_slice(&b[..n]);
                room -= n;
                if room == 0 {
                    break;
                }
            }
            let n = st.buf.len();
            match submit_send(fd, mem::take(&mut st.buf), 0) {
                Ok(send) => {
                    st.send = Some(send);
                    if span::enabled() {
                        st.queued_at = Some(std::time::Instant::now());
                    }
                }
                // The ring refused the entry: `drive` sends it by syscall at the next call.
                Err(buf) => st.buf = buf,
            }
            coop.made_progress();
            return Poll::Ready(Ok(n));
        }
    }

    /// Whether bytes that poll writes accepted are not yet sent.
    fn has_unsent(&self) -> bool {
        let st = self.write.lock();
        st.send.is_some() || st.sent < st.buf.len()
    }

    /// Waits until every accepted byte is sent.
    pub(crate) fn poll_flush(
        &self,
        fd: &Arc<OwnedFd>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.write.lock().drive(fd, cx)
    }
}

impl WriteState {
    /// Sends what is accepted and not yet sent; `Ready(Ok)` once nothing is left.
    fn drive(&mut self, fd: &Arc<OwnedFd>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(send) = self.send.as_mut() {
                let (r, buf) = ready!(Pin::new(send).poll(cx));
                self.send = None;
                self.buf = buf;
                if let Some(t) = self.queued_at.take() {
                    span::record(t);
                }
                match r {
                    Ok(0) => {
                        self.error = Some(io::Error::new(
                            io::ErrorKind::WriteZero,
                            format!(
                                "the socket accepted 0 of {} bytes",
                                self.buf.len() - self.sent
                            ),
                        ))
                    }
                    Ok(n) => self.sent += n,
                    Err(e) => match classify(e) {
                        Failed::Wait => self.ready = Some(ready_future(fd, libc::POLLOUT)),
                        Failed::Again => {}
                        Failed::Fatal(e) => self.error = Some(e),
                    },
                }
            }
            if let Some(e) = self.error.take() {
                self.buf.clear();
                self.sent = 0;
                self.ready = None;
                return Poll::Ready(Err(e));
            }
            if let Some(wait) = self.ready.as_mut() {
                let r = ready!(wait.as_mut().poll(cx));
                self.ready = None;
                r?;
            }
            if self.sent >= self.buf.len() {
                self.buf.clear();
                self.sent = 0;
                return Poll::Ready(Ok(()));
            }
            let start = self.sent;
            match submit_send(fd, mem::take(&mut self.buf), start) {
                Ok(send) => self.send = Some(send),
                Err(buf) => {
                    self.buf = buf;
                    let rest = &self.buf[start..];
                    // SAFETY: reads `rest.len()` initialised bytes of `self.buf`.
                    let n = unsafe {
                        libc::send(
                            fd.as_raw_fd(),
                            rest.as_ptr().cast(),
                            rest.len(),
                            libc::MSG_NOSIGNAL,
                        )
                    };
                    if n >= 0 {
                        self.sent += n as usize;
                    } else {
                        match classify(io::Error::last_os_error()) {
                            Failed::Wait => self.ready = Some(ready_future(fd, libc::POLLOUT)),
                            Failed::Again => {}
                            Failed::Fatal(e) => self.error = Some(e),
                        }
                    }
                }
            }
        }
    }
}

/// `sendmsg(2)` of `bufs` with `MSG_NOSIGNAL` (a `writev` that never raises `SIGPIPE`).
fn writev(fd: &Arc<OwnedFd>, bufs: &[io::IoSlice<'_>]) -> isize {
    let count = bufs.len().min(libc::UIO_MAXIOV as usize);
    // SAFETY: an all-zero `msghdr` is valid (no address, no control data).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (std documents it).
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = count as _;
    // SAFETY: the `iovec`s point at `count` live, initialised slices, which the kernel
    // only reads.
    unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) }
}

impl Socket {
    /// `shutdown(Write)` once every byte that poll writes accepted is sent: at once if
    /// none is waiting, else from a task on the current runtime that flushes first (for
    /// the drop of an `OwnedWriteHalf`, which cannot wait; a `SEND` still queued when the
    /// writing side shuts would fail and lose the bytes). Outside a runtime, at once.
    pub(crate) fn shutdown_write_when_sent(&self) {
        #[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
        if self.poll_parts().0.has_unsent() {
            if let Ok(handle) = crate::Handle::try_current() {
                let sock = self.clone();
                drop(handle.spawn(async move {
                    let (state, fd, _) = sock.poll_parts();
                    // An error means the bytes are gone either way; shut down regardless.
                    let _ = std::future::poll_fn(|cx| state.poll_flush(fd, cx)).await;
                    let _ = sock.shutdown(std::net::Shutdown::Write);
                }));
                return;
            }
        }
        // NotConnected (the peer is gone) is fine: there is nothing left to shut.
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}
