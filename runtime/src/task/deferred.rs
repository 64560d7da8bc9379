//! A deferred callback: a closure that rides the run queues like a task, with no future.
//!
//! `weft::callback::defer(f)` must put `f` on the same queues tasks use, so that a callback
//! and a woken task are ordered by one FIFO (the article's microtask queue), stolen by the
//! same thieves and dropped by the same shutdown. The queues hold `Notified` entries, which
//! are pointers to a task [`Header`]; a deferred callback is therefore a cell that starts
//! with a `Header` whose vtable runs the closure instead of polling a future.
//!
//! ```text
//! Deferred<F> (repr(C), one Box):
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

use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::task::Waker;

use super::raw::{Header, Links, Vtable};
use super::state::State;
use super::Notified;
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

/// Wraps `f` as a run-queue entry.
pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Notified {
    let cell = Box::new(Deferred {
        header: Header {
            state: State::new(1),
            vtable: &VtableFor::<F>::VTABLE,
            links: UnsafeCell::new(Links::default()),
            id: 0,
        },
        f: ManuallyDrop::new(f),
    });
    let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
    // SAFETY: the cell is live with one reference, which the entry takes (invariant 1);
    // its state is NOTIFIED from `State::new`, as a queue entry's must be.
    unsafe { Notified::from_raw(ptr) }
}

/// Runs the closure and frees the cell; consumes the entry's (only) reference.
unsafe fn run<F: FnOnce() + Send + 'static>(ptr: NonNull<Header>) {
    // SAFETY: the entry's reference was the only one (invariant 1), and it is handed to us,
    // so we own the cell; it was made by `Box::new` in `new` with this exact type.
    let mut cell = unsafe { Box::from_raw(ptr.cast::<Deferred<F>>().as_ptr()) };
    // SAFETY: `f` is taken exactly once, here; `dealloc` (which would drop it) is not called
    // for this cell, since the `Box` below is freed without dropping `f` again.
    let f = unsafe { ManuallyDrop::take(&mut cell.f) };
    drop(cell);
    let _ = panic::catch_unwind(AssertUnwindSafe(f));
}

/// Frees a cell whose entry was dropped unrun (shutdown, a closed queue).
unsafe fn dealloc<F>(ptr: NonNull<Header>) {
    // SAFETY: called once, when the only reference is dropped unrun (invariant 1); the cell
    // was made by `Box::new` in `new` with this exact type.
    let mut cell = unsafe { Box::from_raw(ptr.cast::<Deferred<F>>().as_ptr()) };
    // SAFETY: the closure was never taken (it is taken only by `run`, which consumes the
    // same reference that led here).
    let f = unsafe { ManuallyDrop::take(&mut cell.f) };
    drop(cell);
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
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

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

    #[test]
    fn a_panicking_callback_is_contained() {
        let entry = super::new(|| panic!("callback panic (expected by this test)"));
        entry.run();
    }
}
