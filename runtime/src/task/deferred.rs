//! A deferred callback: a closure that rides the run queues like a task, with no future.
//!
//! `weft::callback::defer(f)` must put `f` on the same queues tasks use, so that a callback
//! and a woken task are ordered by one FIFO (the article's microtask queue), stolen by the
//! same thieves and dropped by the same shutdown. The queues hold `Notified` entries, which
//! are pointers to a task [`Header`]; a deferred callback is therefore a cell that starts
//! with a `Header` whose vtable runs the closure instead of polling a future.
//!
//! ```text
//! Deferred<F> (repr(C), one block):
//!   Header { state (one reference: the queue entry's), vtable, unused links, id 0 }
//!   F
//! ```
//!
//! # Invariants
//!
//! 1. A `Deferred` cell is referenced by exactly one queue entry, ever: it is never woken,
//!    never joined, never in the owned-task list. Its reference count is 1 until that entry
//!    is run (then the cell is freed by `poll` without touching the count) or dropped
//!    (`Task::drop` decrements the count to zero and calls `dealloc`).
//! 2. Only `poll`, `dealloc` and `shutdown` of its vtable are ever called; the others belong
//!    to futures and joins, which a deferred cell does not have.
//!
//! A panic in the closure is caught: the panic hook has already printed it, and the worker
//! goes on with its next entry (a callback has nobody to report to; the article's runtime
//! would crash the process, which a library runtime must not do to its embedder).
//!
//! # The cell cache
//!
//! Cells come from the small-block cache (`pool.rs`): a composite callback queues many
//! cells at once, more than the allocator's per-thread cache holds, and the thread that
//! runs a cell keeps its block for the next `defer`.
//!
//! While a cell's closure runs, its block (of a class) is the thread's *spare* (the thread
//! context's `deferred_spare`): a `defer` from the closure of a cell of the same class
//! takes it without touching the cache, and what is left of it when the closure returns
//! goes to the cache. A callback that defers the next (a lane of sequential ops) thus
//! reuses one block with two thread-local `Cell` accesses. A run that finds the slot
//! taken (a batch of callbacks run by one entry, each a nested run) frees its block as
//! before. So the slot is set only when empty, and emptied by the run that set it, or by
//! the `defer` that takes the block: a spare is owned by the slot alone.

use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::task::Waker;

use super::raw::{Header, Links, Vtable};
use super::state::State;
use super::{Notified, pool};
use crate::loom::sync::UnsafeCell;

#[repr(C)]
struct Deferred<F> {
    header: Header,
    f: ManuallyDrop<F>,
}

struct VtableFor<F>(std::marker::PhantomData<F>);

impl<F: FnOnce() + Send + 'static> VtableFor<F> {
    const VTABLE: Vtable = Vtable {
        poll: run::<F>,
        schedule: never,
        dealloc: dealloc::<F>,
        try_read_output: never_read,
        drop_output: never,
        shutdown: shutdown::<F>,
    };
}

/// A block for a `Deferred<F>`: the spare block of the cell this thread is running if it
/// is of the class, else one from the small-block cache (`pool.rs`).
#[inline]
fn alloc_cell<F>() -> NonNull<Deferred<F>> {
    if let Some(c) = pool::Class::<Deferred<F>>::CLASS {
        if let Some(block) = take_spare(c) {
            return block.cast();
        }
    }
    pool::alloc::<Deferred<F>>()
}

/// The thread's spare block (see `run`) if it is of class `c`, taken out.
#[inline]
fn take_spare(c: usize) -> Option<NonNull<u8>> {
    crate::context::with(|cx| {
        let spare = cx.deferred_spare();
        let (p, class) = spare.get();
        if class != c {
            return None;
        }
        let p = NonNull::new(p)?;
        spare.set((std::ptr::null_mut(), 0));
        Some(p)
    })
    .flatten()
}

/// Whether a deferred cell for an `F` comes from the block cache (`pool.rs`), not from
/// the allocator: for the assertions of callers that keep their closures that small.
pub(crate) const fn pooled<F>() -> bool {
    pool::Class::<Deferred<F>>::CLASS.is_some()
}

/// Whether the entry is a deferred callback's (a task's id is never 0).
#[inline]
pub(crate) fn is_deferred(entry: &Notified) -> bool {
    entry.0.header().id == 0
}

/// Wraps `f` as a run-queue entry.
///
/// Inlined, with the block taken first and the header and `f` written into it field by
/// field, so that a caller's closure is built in the cell itself. Built aside and copied
/// in, the closure was stored in words and loaded back in 16-byte halves before those
/// stores had retired: `perf` put more than half of `defer`'s time in `single/ready`
/// (callback) on that one load. `inline(always)`: left to itself the compiler kept it out of
/// line, with the closure passed by reference, which is that copy again.
#[inline(always)]
pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Notified {
    let block = alloc_cell::<F>();
    let cell = block.as_ptr();
    // SAFETY: the block is fresh or recycled (nothing else refers to it), and large and
    // aligned enough for a `Deferred<F>` (`pool::Class`); both fields are written before
    // the cell is used.
    unsafe {
        (&raw mut (*cell).header).write(Header {
            state: State::new(1),
            vtable: &VtableFor::<F>::VTABLE,
            links: UnsafeCell::new(Links::default()),
            id: 0,
        });
        (&raw mut (*cell).f).write(ManuallyDrop::new(f));
    }
    let ptr = block.cast::<Header>();
    // SAFETY: the cell is live with one reference, which the entry takes (invariant 1);
    // its state is NOTIFIED from `State::new`, as a queue entry's must be.
    unsafe { Notified::from_raw(ptr) }
}

/// Runs the closure and frees the cell; consumes the entry's (only) reference.
unsafe fn run<F: FnOnce() + Send + 'static>(ptr: NonNull<Header>) {
    let cell = ptr.cast::<Deferred<F>>();
    // `dealloc`, which would drop `f`, is not called for this cell.
    // SAFETY: the entry's reference was the only one (invariant 1) and is handed to us, so
    // we own the cell, written by `new` as a `Deferred<F>`; `f` is moved out exactly once,
    // here, and the header is dropped in place once.
    let f = unsafe {
        std::ptr::drop_in_place(&raw mut (*cell.as_ptr()).header);
        ManuallyDrop::into_inner(std::ptr::read(&raw const (*cell.as_ptr()).f))
    };
    let spare = match pool::Class::<Deferred<F>>::CLASS {
        Some(c) => crate::context::with(|cx| {
            let slot = cx.deferred_spare();
            let free = slot.get().0.is_null();
            if free {
                slot.set((cell.as_ptr().cast(), c));
            }
            free
        })
        .unwrap_or(false),
        None => false,
    };
    if !spare {
        // SAFETY: the block came from `alloc_cell::<F>` in `new` (a spare is a block of the
        // cell's class, so `pool::alloc`'s), and nothing in it is used again.
        unsafe { pool::free(cell) };
        let _ = panic::catch_unwind(AssertUnwindSafe(f));
        return;
    }
    // The block is this thread's spare while `f` runs: a callback that defers the next one
    // (a chain, a lane of ops) takes it back without a trip through the cache. What is
    // left of it goes to the cache when `f` returns (`f` cannot unwind past here).
    let _ = panic::catch_unwind(AssertUnwindSafe(f));
    let (left, class) =
        crate::context::with(|cx| cx.deferred_spare().replace((std::ptr::null_mut(), 0)))
            .unwrap_or((std::ptr::null_mut(), 0));
    if let Some(left) = NonNull::new(left) {
        // SAFETY: a spare is a free block of its class, owned by the slot alone (a `defer`
        // that takes it clears the slot), moved out of it here and freed once.
        unsafe { pool::free_block(left, class) };
    }
}

/// Frees a cell whose entry was dropped unrun (shutdown, a closed queue).
unsafe fn dealloc<F>(ptr: NonNull<Header>) {
    let cell = ptr.cast::<Deferred<F>>();
    // SAFETY: called once, when the only reference is dropped unrun (invariant 1), so the
    // cell written by `new` still holds its closure (only `run` takes it, and `run`
    // consumes the same reference that led here); the header is dropped in place once.
    let f = unsafe {
        std::ptr::drop_in_place(&raw mut (*cell.as_ptr()).header);
        ManuallyDrop::into_inner(std::ptr::read(&raw const (*cell.as_ptr()).f))
    };
    // SAFETY: the block came from `alloc_cell::<F>` in `new` (so from `pool::alloc`, or a
    // spare of the same class), and nothing in it is used again.
    unsafe { pool::free(cell) };
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(f)));
}

unsafe fn shutdown<F>(ptr: NonNull<Header>) {
    // SAFETY: our caller hands us the only reference; dropping it unrun frees the cell.
    unsafe { dealloc::<F>(ptr) }
}

unsafe fn never(_: NonNull<Header>) {
    unreachable!("a deferred callback is never woken, joined or listed (invariant 2)")
}

unsafe fn never_read(_: NonNull<Header>, _: *mut (), _: &Waker) {
    unreachable!("a deferred callback has no JoinHandle (invariant 2)")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use crate::task::pool::tests::CountDrop;

    #[test]
    fn run_calls_once_and_drops_captures_once() {
        let ran = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (r, d) = (ran.clone(), CountDrop(drops.clone()));
        let entry = super::new(move || {
            let _d = d;
            r.fetch_add(1, SeqCst);
        });
        entry.run();
        assert_eq!(ran.load(SeqCst), 1);
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn dropped_entry_drops_the_closure_without_running_it() {
        let ran = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (r, d) = (ran.clone(), CountDrop(drops.clone()));
        let entry = super::new(move || {
            let _d = d;
            r.fetch_add(1, SeqCst);
        });
        drop(entry);
        assert_eq!(ran.load(SeqCst), 0);
        assert_eq!(drops.load(SeqCst), 1);
        let d2 = CountDrop(drops.clone());
        super::new(move || drop(d2)).shutdown();
        assert_eq!(drops.load(SeqCst), 2);
    }

    /// Cells of every class, of no class (too big, over-aligned), recycled through the
    /// cache many times over: each closure runs or drops exactly once, with its captures
    /// intact.
    #[test]
    fn cells_of_every_size_are_recycled_and_dropped_once() {
        #[derive(Clone, Copy)]
        #[repr(align(64))]
        struct Aligned([u8; 64]);

        fn check<P: Copy + Send + 'static>(payload: P, read: fn(&P) -> u8, expect: u8) {
            let ran = Arc::new(AtomicUsize::new(0));
            let drops = Arc::new(AtomicUsize::new(0));
            for round in 0..3 {
                // More cells alive at once than the cache keeps, then all freed.
                let entries: Vec<_> = (0..300)
                    .map(|_| {
                        let (r, d) = (ran.clone(), CountDrop(drops.clone()));
                        super::new(move || {
                            let _d = d;
                            assert_eq!(read(&payload), expect);
                            r.fetch_add(1, SeqCst);
                        })
                    })
                    .collect();
                for (i, e) in entries.into_iter().enumerate() {
                    if i % 3 == round {
                        drop(e);
                    } else {
                        e.run();
                    }
                }
            }
            assert_eq!(ran.load(SeqCst), 600);
            assert_eq!(drops.load(SeqCst), 900);
        }
        check(7u8, |p| *p, 7);
        check([9u8; 80], |p| p[79], 9);
        check([5u8; 200], |p| p[199], 5);
        check([3u8; 1000], |p| p[999], 3);
        check(Aligned([4; 64]), |p| p.0[63], 4);
    }

    #[test]
    fn a_panicking_callback_is_contained() {
        let entry = super::new(|| panic!("callback panic (expected by this test)"));
        entry.run();
    }
}
