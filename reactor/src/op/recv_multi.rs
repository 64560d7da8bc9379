//! `IORING_OP_RECV` with `IORING_RECV_MULTISHOT` and `IOSQE_BUFFER_SELECT` (Linux 6.0+):
//! one submission that receives again each time the stream socket has bytes, into buffers
//! the kernel picks from the ring's provided-buffer ring ([`BufRing`],
//! `IORING_REGISTER_PBUF_RING`), each completion's bytes handed to a [`RecvSink`] on the
//! reaping thread, until the kernel ends it (end of stream, an error, the provided buffers
//! ran out, or a cancel from dropping the [`Multishot`](super::multishot::Multishot)
//! handle).
//!
//! The kernel keeps its readiness wait on the socket armed between completions, so a
//! stream that receives over and over costs no submission and no poll arm per receive: one
//! completion each, where a one-shot `RECV` costs a submission, a completion and, when the
//! socket is empty, arming a poll.
//!
//! # Buffers
//!
//! Each ring that runs a multishot receive owns one [`BufRing`]: [`BUFFERS`] buffers of
//! [`BUFFER_SIZE`] bytes, registered (group [`GROUP`]) by the ring's owner at the first
//! such receive and kept for the ring's life. A completion names the buffer the kernel
//! filled; [`RecvMulti`] hands its bytes to the sink — which must copy what it keeps —
//! and gives the buffer back to the kernel right after, in the same call. So a buffer is
//! out of the kernel's hands only between its completion's posting and its reaping, and
//! the sink never sees bytes the kernel may overwrite. When every buffer is in completions
//! not yet reaped, the kernel ends the receive with `ENOBUFS`; the reaping gives the
//! buffers back, and the owner submits a new receive.
//!
//! The runtime's poll-based reads use it with `WEFT_RECV_MULTISHOT=always` only: measured
//! against the one-shot receive it saved no CPU (`weft-runtime`'s `net/poll_io.rs` has
//! the figures).
//!
//! [`supported`] says whether the kernel has the flag; where it does not, or the ring
//! cannot register its buffers, [`RecvMulti::new`] gives its arguments back and the caller
//! uses the one-shot [`Recv`](super::recv::Recv).

use std::alloc::{self, Layout};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU16, Ordering};

use io_uring::{IoUring, opcode, squeue, types};
use parking_lot::Mutex;

use super::CqeResult;
use super::multishot::MultishotOperation;

/// Buffers in a ring's provided-buffer ring (a power of two).
pub const BUFFERS: u16 = 128;
/// Bytes in each provided buffer: the most one completion delivers.
pub const BUFFER_SIZE: usize = 16 * 1024;
/// The buffer group id the rings register their buffers under.
pub const GROUP: u16 = 0x7765;

/// Receives what a multishot receive receives.
pub trait RecvSink: Send + Sync + 'static {
    /// One completion: the bytes received (empty at end of stream), or the error that
    /// ended the receive. `last` is `true` on the final completion (the receive is over).
    /// The bytes are the kernel's buffer, given back to it when this returns: copy what
    /// you keep.
    fn received(&self, bytes: io::Result<&[u8]>, last: bool);
}

/// One ring's provided buffers and the ring of buffer ids the kernel picks from; see the
/// module docs ("Buffers").
pub struct BufRing {
    /// `BUFFERS` entries of `io_uring_buf`, page-aligned; the kernel reads them, we write
    /// them and the tail (in entry 0's last 2 bytes).
    entries: *mut types::BufRingEntry,
    /// `count * size` bytes.
    data: *mut u8,
    /// Buffers (a power of two).
    count: u16,
    /// Bytes per buffer.
    size: usize,
    /// The buffer group id.
    group: u16,
    /// Our copy of the tail; held while an entry is written and the tail published.
    tail: Mutex<u16>,
}

// SAFETY: the raw pointers are the `BufRing`'s own allocations; entries and the tail are
// written only under `tail`'s mutex, and a buffer's bytes are read only by the one
// completion that names it, while the kernel does not own it.
unsafe impl Send for BufRing {}
// SAFETY: as for `Send`.
unsafe impl Sync for BufRing {}

fn entries_layout(count: u16) -> Layout {
    let size = count as usize * std::mem::size_of::<types::BufRingEntry>();
    Layout::from_size_align(size.max(4096), 4096).expect("a valid layout")
}

fn data_layout(count: u16, size: usize) -> Layout {
    Layout::from_size_align(count as usize * size, 4096).expect("a valid layout")
}

impl BufRing {
    /// Allocates [`BUFFERS`] buffers of [`BUFFER_SIZE`] bytes and registers them with
    /// `ring` as group [`GROUP`], every buffer in the kernel's hands.
    ///
    /// # Errors
    ///
    /// The kernel's refusal (`EINVAL` before 5.19), or `OutOfMemory`.
    ///
    /// # Safety
    ///
    /// `ring` must not free the registration's memory while the kernel may use it: the
    /// `BufRing` must outlive every receive in `ring` that selects from [`GROUP`] (the
    /// ring's owner keeps it until the ring is torn down, or leaks it).
    pub(crate) unsafe fn register(ring: &IoUring) -> io::Result<BufRing> {
        // SAFETY: our caller's contract.
        unsafe { BufRing::register_group(ring, BUFFERS, BUFFER_SIZE, GROUP) }
    }

    /// As [`register`](BufRing::register), `count` buffers (a power of two) of `size`
    /// bytes as group `group`.
    ///
    /// # Safety
    ///
    /// As [`register`](BufRing::register), for group `group`.
    unsafe fn register_group(
        ring: &IoUring,
        count: u16,
        size: usize,
        group: u16,
    ) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && size > 0 && size <= u32::MAX as usize);
        // SAFETY: a non-zero size.
        let entries =
            unsafe { alloc::alloc_zeroed(entries_layout(count)) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        // SAFETY: a non-zero size.
        let data = unsafe { alloc::alloc(data_layout(count, size)) };
        if data.is_null() {
            // SAFETY: allocated above with this layout.
            unsafe { alloc::dealloc(entries.cast(), entries_layout(count)) };
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let bufs = BufRing {
            entries,
            data,
            count,
            size,
            group,
            tail: Mutex::new(0),
        };
        // SAFETY: `entries` is a page-aligned array of `BUFFERS` entries that lives as
        // long as the `BufRing`, which our caller keeps for as long as the kernel may use
        // the group.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, group, 0)
        }?;
        for bid in 0..count {
            bufs.give_back(bid);
        }
        Ok(bufs)
    }

    /// Hands buffer `bid` back to the kernel.
    fn give_back(&self, bid: u16) {
        let mut tail = self.tail.lock();
        let slot = (*tail & (self.count - 1)) as usize;
        // SAFETY: `slot < count`, inside the entries array; the kernel reads entries only
        // up to the published tail, and this one is past it until the store below.
        let entry = unsafe { &mut *self.entries.add(slot) };
        // SAFETY: `bid < count`: the buffer lies inside `data`.
        entry.set_addr(unsafe { self.data.add(bid as usize * self.size) } as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        *tail = tail.wrapping_add(1);
        // SAFETY: the tail field lies in entry 0, inside the array, and is 2-byte aligned;
        // the kernel reads it with acquire ordering, so the entry written above is visible
        // before the new tail.
        let shared = unsafe { &*(types::BufRingEntry::tail(self.entries).cast::<AtomicU16>()) };
        shared.store(*tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`.
    ///
    /// # Safety
    ///
    /// The kernel has handed `bid` over (a completion named it) and it has not been given
    /// back.
    unsafe fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let len = len.min(self.size);
        // SAFETY: `bid < count` (the caller's completion named one of ours) and `len <=
        // size`; the kernel wrote these bytes and does not touch them again until the
        // buffer is given back (our caller's contract).
        unsafe { std::slice::from_raw_parts(self.data.add(bid as usize * self.size), len) }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both were allocated in `register` with these layouts; nothing in the
        // kernel uses them any more (`register`'s contract). The kernel pinned the entries'
        // pages at registration and releases its own reference when the ring goes.
        unsafe {
            alloc::dealloc(self.data, data_layout(self.count, self.size));
            alloc::dealloc(self.entries.cast(), entries_layout(self.count));
        }
    }
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("buffers", &self.count)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;
static SUPPORTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether the running kernel accepts `IORING_RECV_MULTISHOT`: its release is 6.0 or
/// later (the opcode probe cannot tell a flag), and no multishot receive has been refused
/// with `EINVAL`, nor a ring's buffer registration. Decided once per process.
pub fn supported() -> bool {
    match SUPPORTED.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => {
            let yes = super::accept_multi::release_at_least(6, 0);
            SUPPORTED.store(if yes { YES } else { NO }, Ordering::Relaxed);
            yes
        }
    }
}

/// Records that the kernel refused a multishot receive or its buffers: [`supported`] is
/// `false` from now on.
pub(crate) fn refused() {
    SUPPORTED.store(NO, Ordering::Relaxed);
}

/// A multishot `recv(fd, <a provided buffer>, flags)`; see the module docs.
pub struct RecvMulti<F, S> {
    fd: F,
    flags: i32,
    bufs: Arc<BufRing>,
    sink: S,
}

impl<F: AsRawFd + Send + Sync + 'static, S: RecvSink> RecvMulti<F, S> {
    /// A multishot receive on the stream socket `fd` (kept open while the kernel may
    /// receive) with `recv(2)`'s `flags`, each completion's bytes handed to `sink`, to be
    /// submitted on the calling thread's ring with
    /// [`Multishot::submit`](super::multishot::Multishot::submit). Gives `fd` and `sink`
    /// back where it cannot run: the thread owns no ring, the kernel lacks the flag
    /// ([`supported`]), or the ring could not register its buffers.
    pub fn new(fd: F, flags: i32, sink: S) -> Result<RecvMulti<F, S>, (F, S)> {
        if !supported() {
            return Err((fd, sink));
        }
        match crate::uring::current().and_then(|ring| ring.buf_ring()) {
            Some(bufs) => Ok(RecvMulti {
                fd,
                flags,
                bufs,
                sink,
            }),
            None => Err((fd, sink)),
        }
    }
}

impl<F, S> std::fmt::Debug for RecvMulti<F, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvMulti")
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

// SAFETY: the entry names no memory of its own (the kernel picks buffers from the ring's
// group, which the ring keeps registered for its life and `bufs` keeps allocated), and
// only `fd`, which the operation keeps open until its last completion. `each` reads a
// buffer only after the kernel handed it over, and gives it back after.
unsafe impl<F: AsRawFd + Send + Sync + 'static, S: RecvSink> MultishotOperation
    for RecvMulti<F, S>
{
    fn sqe(&mut self) -> squeue::Entry {
        opcode::RecvMulti::new(types::Fd(self.fd.as_raw_fd()), self.bufs.group)
            .flags(self.flags)
            .build()
    }

    fn each(&self, cqe: CqeResult, last: bool) {
        let bid = io_uring::cqueue::buffer_select(cqe.flags);
        match cqe.result {
            Ok(n) => {
                let bytes = match bid {
                    // SAFETY: the completion names the buffer the kernel filled with `n`
                    // bytes and handed over; it goes back only below.
                    Some(bid) => unsafe { self.bufs.bytes(bid, n as usize) },
                    None => &[],
                };
                self.sink.received(Ok(bytes), last);
            }
            Err(e) => {
                if e.raw_os_error() == Some(libc::EINVAL) {
                    // A kernel without the multishot flag refuses the entry.
                    refused();
                }
                self.sink.received(Err(e), last);
            }
        }
        if let Some(bid) = bid {
            self.bufs.give_back(bid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Driver;
    use crate::op::multishot::Multishot;
    use crate::uring::Uring;
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct Seen {
        bytes: Vec<u8>,
        completions: usize,
        errors: Vec<io::Error>,
        eof: bool,
        last: bool,
    }

    struct Sink(Arc<Mutex<Seen>>);
    impl RecvSink for Sink {
        fn received(&self, bytes: io::Result<&[u8]>, last: bool) {
            let mut s = self.0.lock();
            s.completions += 1;
            match bytes {
                Ok([]) => s.eof = true,
                Ok(b) => s.bytes.extend_from_slice(b),
                Err(e) => s.errors.push(e),
            }
            s.last |= last;
        }
    }

    fn park_until(ring: &mut Uring, mut done: impl FnMut() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < give_up, "the ring never delivered");
            ring.park(Some(Duration::from_millis(20))).unwrap();
        }
    }

    fn pair() -> (std::net::TcpStream, OwnedFd) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, OwnedFd::from(server))
    }

    #[test]
    fn receives_many_times_from_one_submission_then_ends_at_end_of_stream() {
        assert!(supported(), "this test needs Linux 6.0+");
        let mut ring = Uring::new(16).unwrap_or_else(|e| panic!("this test needs io_uring: {e}"));
        let (mut client, server) = pair();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let Ok(op) = RecvMulti::new(server, 0, Sink(seen.clone())) else {
            panic!("this thread owns a ring that registers its buffers")
        };
        let Ok(handle) = Multishot::submit(op) else {
            panic!("this thread owns a ring")
        };
        let mut sent = Vec::new();
        for round in 0..5u8 {
            let msg = vec![round; 1000 + round as usize];
            client.write_all(&msg).unwrap();
            sent.extend_from_slice(&msg);
            park_until(&mut ring, || seen.lock().bytes.len() == sent.len());
        }
        assert!(handle.is_live(), "one submission, still armed");
        assert_eq!(seen.lock().bytes, sent);
        drop(client);
        park_until(&mut ring, || seen.lock().last);
        let s = seen.lock();
        assert!(s.eof && s.errors.is_empty(), "ends at end of stream");
        assert_eq!(ring.in_flight(), 0);
    }

    #[test]
    fn more_bytes_than_the_buffers_hold_end_it_with_enobufs_and_a_new_one_resumes() {
        assert!(supported(), "this test needs Linux 6.0+");
        let mut ring = Uring::new(16).unwrap_or_else(|e| panic!("this test needs io_uring: {e}"));
        // Two buffers of 1 KiB in a group of the test's own, and 8 KiB waiting before the
        // receive starts: it fills both, finds none left for the rest, and ends.
        let (mut client, server) = pair();
        let server = Arc::new(server);
        // SAFETY: `bufs` outlives every receive that selects from group 1: the ring is
        // dropped (waiting for its ops) before `bufs` at the end of the test.
        let bufs =
            Arc::new(unsafe { BufRing::register_group(ring.io_uring(), 2, 1024, 1) }.unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sent: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&sent).unwrap();
        let op = |seen: &Arc<Mutex<Seen>>| RecvMulti {
            fd: server.clone(),
            flags: 0,
            bufs: bufs.clone(),
            sink: Sink(seen.clone()),
        };
        let mut handle = Multishot::submit(op(&seen)).unwrap_or_else(|_| panic!("a ring"));
        let mut ended = 0;
        while seen.lock().bytes.len() < sent.len() {
            park_until(&mut ring, || {
                let s = seen.lock();
                s.last || s.bytes.len() == sent.len()
            });
            let last = std::mem::take(&mut seen.lock().last);
            if last {
                ended += 1;
                let e = seen.lock().errors.pop();
                let e = e.expect("it ended with an error");
                assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "{e}");
                // The reaping gave the buffers back: a new receive takes the rest.
                handle = Multishot::submit(op(&seen)).unwrap_or_else(|_| panic!("a ring"));
            }
        }
        assert!(ended >= 1, "8 KiB never fit in 2 KiB of buffers");
        assert_eq!(seen.lock().bytes, sent, "no byte lost or reordered");
        drop(handle);
        park_until(&mut ring, || seen.lock().last);
        assert_eq!(ring.in_flight(), 0);
        drop(ring);
        drop(bufs);
    }
}
