//! A read-only view of a ring's completion-queue indices, readable from any thread.
//!
//! The `io-uring` crate reads the completion queue through a `CompletionQueue` view, of
//! which only one may exist at a time (the ring's `cq` mutex guarantees that). Whether the
//! kernel has posted completions nobody has reaped yet — head != tail — is a question
//! other threads ask without taking that lock, so the ring's header page is mapped a
//! second time, read-only, and its two indices are read as atomics: `tail` is written by
//! the kernel (with release semantics), `head` by whoever reaps under `cq` (the crate
//! stores it with `Release`). Nothing here ever writes the ring, and nothing here reads a
//! completion entry.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicU32,
    Ordering::{Acquire, Relaxed},
    fence,
};

/// The kernel's `struct io_uring_params` (UAPI, stable), mirrored to read the completion
/// queue's offsets, which the `io-uring` crate does not expose. Its `Parameters` is
/// documented as a transparent wrapper over this structure.
#[repr(C)]
struct RawParams {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_head: u32,
    sq_tail: u32,
    sq_ring_mask: u32,
    sq_ring_entries: u32,
    sq_flags: u32,
    sq_rest: [u32; 5],
    cq_head: u32,
    cq_tail: u32,
    cq_rest: [u32; 8],
}

/// `IORING_OFF_CQ_RING`: the mmap offset of the completion ring (the same pages as the
/// submission ring's header with `IORING_FEAT_SINGLE_MMAP`).
const IORING_OFF_CQ_RING: libc::off_t = 0x800_0000;

/// The second, read-only mapping of a ring's header and the addresses of its CQ indices
/// and SQ flags.
pub(super) struct CqIndex {
    base: NonNull<libc::c_void>,
    len: usize,
    head: *const AtomicU32,
    tail: *const AtomicU32,
    sq_flags: *const AtomicU32,
}

// SAFETY: the view only reads two atomics in a mapping it owns; any thread may do that,
// and the mapping is unmapped once, by `Drop`.
unsafe impl Send for CqIndex {}
// SAFETY: as above: shared access is atomic loads only.
unsafe impl Sync for CqIndex {}

impl CqIndex {
    /// Maps the header of the ring `fd`, set up with `params`.
    pub(super) fn new(fd: RawFd, params: &io_uring::Parameters) -> io::Result<CqIndex> {
        const _: () = assert!(
            std::mem::size_of::<io_uring::Parameters>() == std::mem::size_of::<RawParams>()
        );
        // SAFETY: `Parameters` is `repr(transparent)` over the kernel's `io_uring_params`,
        // whose layout `RawParams` repeats field for field (the sizes are checked above).
        let raw = unsafe { &*(params as *const io_uring::Parameters).cast::<RawParams>() };
        let (head_off, tail_off) = (raw.cq_head as usize, raw.cq_tail as usize);
        // `sq_flags` is an offset into the SQ ring. With `IORING_FEAT_SINGLE_MMAP` the two
        // rings are one mapping of one kernel structure, so the offset is valid here too;
        // without the feature the view is refused rather than guessed.
        if !params.is_feature_single_mmap() {
            return Err(io::Error::other("io_uring without IORING_FEAT_SINGLE_MMAP"));
        }
        let flags_off = raw.sq_flags as usize;
        if head_off % 4 != 0 || tail_off % 4 != 0 || flags_off % 4 != 0 {
            return Err(io::Error::other("misaligned io_uring CQ offsets"));
        }
        // SAFETY: `sysconf` has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let end = head_off.max(tail_off).max(flags_off) + 4;
        let len = end.div_ceil(page) * page;
        // SAFETY: a new shared, read-only mapping of the ring's own header; the kernel
        // validates the offset and length against the ring.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                IORING_OFF_CQ_RING,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let at = |off: usize| {
            // SAFETY: each offset plus 4 lies inside the `len` bytes just mapped (`end`).
            unsafe { base.as_ptr().cast::<u8>().add(off).cast::<AtomicU32>() }.cast_const()
        };
        Ok(CqIndex {
            base,
            len,
            head: at(head_off),
            tail: at(tail_off),
            sq_flags: at(flags_off),
        })
    }

    /// Completions posted and not yet reaped (a snapshot: it may change at once).
    #[inline]
    pub(super) fn pending(&self) -> u32 {
        // The head first: a reap between the two loads then makes the count smaller, never
        // a wrapped-around huge one. The loads are `Relaxed` (the atomic access std allows
        // on read-only memory) and the fence orders what the caller reads after them.
        // SAFETY: both pointers are aligned, inside the live mapping (`self` owns it), and
        // point to indices that are only ever accessed atomically (the kernel's stores, the
        // crate's `Release` store of the head); a `Relaxed` load needs no write permission.
        let (head, tail) = unsafe { ((*self.head).load(Relaxed), (*self.tail).load(Relaxed)) };
        fence(Acquire);
        tail.wrapping_sub(head)
    }

    /// The completion queue's head: it moves on every reap.
    #[inline]
    pub(super) fn head(&self) -> u32 {
        // SAFETY: as in `pending`.
        let head = unsafe { (*self.head).load(Relaxed) };
        fence(Acquire);
        head
    }
}

impl CqIndex {
    /// Whether the kernel flags task work pending for the ring (`IORING_SQ_TASKRUN`, with
    /// `IORING_SETUP_TASKRUN_FLAG`): completions that only the submitting thread can post,
    /// at its next pass through the kernel.
    #[inline]
    pub(super) fn taskrun(&self) -> bool {
        const IORING_SQ_TASKRUN: u32 = 1 << 2;
        // SAFETY: as in `pending`: an aligned index in the live mapping, written by the
        // kernel only.
        let flags = unsafe { (*self.sq_flags).load(Relaxed) };
        fence(Acquire);
        flags & IORING_SQ_TASKRUN != 0
    }
}

impl Drop for CqIndex {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no reference into it outlives
        // `self`.
        unsafe { libc::munmap(self.base.as_ptr(), self.len) };
    }
}
