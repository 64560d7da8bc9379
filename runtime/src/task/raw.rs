//! The task cell: one allocation per task, and the type-erased functions that drive it.
//!
//! # Layout
//!
//! ```text
//! Cell<F, S> (repr(C), one block):
//!   Header  { state, vtable, owned-list links, id } <- every handle points here
//!   S                                              the scheduler (an Arc, or a ZST)
//!   Stage<F> { Running(F) | Finished(Result<F::Output, JoinError>) | Consumed }
//!   join waker: Option<Waker>
//! ```
//!
//! The block is the thread's small-block cache's when the cell fits one of its classes
//! (`pool.rs`), else the global allocator's.
//!
//! `Header` is first and the struct is `repr(C)`, so a `NonNull<Header>` is also a pointer to
//! the whole cell; the vtable's functions, monomorphised for `(F, S)`, cast it back.
//!
//! # Invariants (the safety argument of this module)
//!
//! 1. The cell lives until the reference count in the state word reaches zero; whoever
//!    drops the last reference calls `dealloc`, exactly once.
//! 2. The stage is touched only by the thread that holds `RUNNING` (poll, cancel, store the
//!    output), or after `COMPLETE` by the single party that owns the output: the `JoinHandle`
//!    if `JOIN_INTEREST` was set at completion, else the completer.
//! 3. The join-waker slot is written only by the `JoinHandle` while `JOIN_WAKER` and
//!    `COMPLETE` are clear, and read only by the completer after `COMPLETE` with
//!    `JOIN_WAKER` set (see `state.rs`).
//! 4. The owned-list links are touched only under the lock of the list shard the task is in.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

use super::state::{JOIN_INTEREST, JOIN_WAKER, State, ToIdle, ToRunning};
use super::{JoinError, Schedule, Task, pool, waker};
use crate::loom::sync::UnsafeCell;

/// The part of the cell every reference points to.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    pub(crate) vtable: &'static Vtable,
    /// Links of the owned-task list; guarded by the list shard's lock (invariant 4).
    pub(crate) links: UnsafeCell<Links>,
    /// The task's [`Id`](super::Id) (0 for a deferred callback, which has none); immutable.
    pub(crate) id: u64,
}

/// Intrusive doubly-linked list links.
#[derive(Default)]
pub(crate) struct Links {
    pub(crate) prev: Option<NonNull<Header>>,
    pub(crate) next: Option<NonNull<Header>>,
}

// SAFETY: the header is shared between threads by design: `state` is atomic, `vtable` and
// `id` are immutable, and `links` are only accessed under the owned-list shard lock (invariant 4).
unsafe impl Send for Header {}
// SAFETY: as for `Send`.
unsafe impl Sync for Header {}

pub(crate) enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

#[repr(C)]
pub(crate) struct Cell<F: Future, S> {
    pub(crate) header: Header,
    pub(crate) scheduler: S,
    pub(crate) stage: UnsafeCell<Stage<F>>,
    pub(crate) join_waker: UnsafeCell<Option<Waker>>,
}

/// The type-erased operations on a cell.
pub(crate) struct Vtable {
    /// Polls (or cancels) the task; consumes the queue entry's reference.
    pub(crate) poll: unsafe fn(NonNull<Header>),
    /// Hands a queue entry (with its reference) to the task's scheduler.
    pub(crate) schedule: unsafe fn(NonNull<Header>),
    /// Frees the cell.
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
    /// `JoinHandle::poll`: writes `Poll<Result<T, JoinError>>` to the `*mut ()` if complete.
    pub(crate) try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// Drops the output when a handle is dropped after completion.
    pub(crate) drop_output: unsafe fn(NonNull<Header>),
    /// Runtime shutdown; consumes one reference.
    pub(crate) shutdown: unsafe fn(NonNull<Header>),
}

impl<F, S> Cell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    const VTABLE: Vtable = Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_output: drop_output::<F, S>,
        shutdown: shutdown::<F, S>,
    };

    /// Allocates a cell with `refs` references and returns its header.
    ///
    /// The block comes from the thread's small-block cache when the cell fits a class of
    /// it (`pool.rs`): a burst of spawns from one thread (`block_on` spawning 100 000
    /// tasks) otherwise takes `malloc`'s slow path for nearly every cell, and the joins
    /// that free them feed its fast bins, which the next large allocation consolidates.
    pub(crate) fn allocate(future: F, scheduler: S, refs: usize) -> NonNull<Header> {
        let id = super::Id::next().as_u64();
        let cell = pool::Owned::new_with(|| Cell {
            header: Header {
                state: State::new(refs),
                vtable: &Self::VTABLE,
                links: UnsafeCell::new(Links::default()),
                id,
            },
            scheduler,
            stage: UnsafeCell::new(Stage::Running(future)),
            join_waker: UnsafeCell::new(None),
        });
        pool::Owned::into_raw(cell).cast()
    }
}

/// # Safety
/// `ptr` must point to a live `Cell<F, S>` (invariant 1).
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: the caller guarantees the cell is live and of this type; `Header` is its first
    // field in a `repr(C)` struct, so the cast is exact.
    unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
}

unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: called once, by whoever dropped the last reference (invariant 1); the cell
    // was made by `pool::Owned::new_with` in `allocate` with this exact type, and its
    // block is taken back once, here (the drop frees it even if a field's drop unwinds).
    drop(unsafe { pool::Owned::from_raw(ptr.cast::<Cell<F, S>>()) });
}

unsafe fn schedule<S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the caller holds a reference, so the cell is live and of type `Cell<_, S>`.
    let scheduler = unsafe { scheduler_of::<S>(ptr) };
    // SAFETY: the caller transfers its reference to the new queue entry.
    scheduler.schedule(unsafe { super::Notified::from_raw(ptr) });
}

/// The scheduler stored in a cell, found without knowing `F`.
///
/// # Safety
/// `ptr` must point to a live `Cell<F, S>` for some `F`.
unsafe fn scheduler_of<'a, S>(ptr: NonNull<Header>) -> &'a S {
    // The offset of `scheduler` in `Cell<F, S>` does not depend on `F`: in a `repr(C)`
    // struct each field's offset is computed from the fields before it only.
    let offset = std::mem::offset_of!(Cell<std::future::Ready<()>, S>, scheduler);
    // SAFETY: see above; the cell is live (caller) and the offset is in bounds of it.
    unsafe { &*ptr.as_ptr().cast::<u8>().add(offset).cast::<S>() }
}

unsafe fn poll<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    S: Schedule,
{
    // SAFETY: the queue entry we consume holds a reference, so the cell is live.
    let cell = unsafe { cell::<F, S>(ptr) };
    match cell.header.state.transition_to_running() {
        ToRunning::Success => {}
        ToRunning::Cancelled => {
            cancel_in_place(cell);
            complete(ptr, cell);
            return;
        }
        ToRunning::Failed(last) => {
            if last {
                // SAFETY: we dropped the last reference.
                unsafe { dealloc::<F, S>(ptr) };
            }
            return;
        }
    }

    // The waker borrows the poll's reference: no refcount traffic for it.
    // SAFETY: the poll's reference keeps the cell alive for as long as `waker` is used.
    let waker = ManuallyDrop::new(unsafe { waker::waker_ref(ptr) });
    let mut cx = Context::from_waker(&waker);
    let mut polling = waker::PollGuard::enter(ptr);
    let (res, self_woken) = loop {
        let res = poll_future(cell, &mut cx);
        let (self_woken, alone) = polling.finish();
        // Woken by itself, alone on its worker, and nothing else touched the state word
        // meanwhile: if the scheduler would run this task next anyway, poll it again now,
        // still `RUNNING` (see "Re-polls" in `state.rs`).
        if self_woken
            && alone
            && matches!(res, Ok(Poll::Pending))
            && cell.header.state.load().is_running_alone()
            && cell.scheduler.repoll()
        {
            polling = waker::PollGuard::enter(ptr);
            continue;
        }
        break (res, self_woken);
    };
    match res {
        Ok(Poll::Pending) => match cell.header.state.transition_to_idle(self_woken) {
            ToIdle::Ok(last) => {
                if last {
                    // SAFETY: we dropped the last reference.
                    unsafe { dealloc::<F, S>(ptr) };
                }
            }
            ToIdle::OkNotified => {
                // SAFETY: the poll's reference is handed to the new queue entry.
                let task = unsafe { super::Notified::from_raw(ptr) };
                cell.scheduler.yield_now(task);
            }
            ToIdle::Cancelled => {
                cancel_in_place(cell);
                complete(ptr, cell);
            }
        },
        Ok(Poll::Ready(out)) => {
            set_stage(cell, Stage::Finished(Ok(out)));
            complete(ptr, cell);
        }
        Err(payload) => {
            let err = JoinError::panic(cell.header.id, payload);
            set_stage(cell, Stage::Finished(Err(err)));
            complete(ptr, cell);
        }
    }
}

/// One poll of the future, with its panic caught.
#[inline]
fn poll_future<F: Future, S>(
    cell: &Cell<F, S>,
    cx: &mut Context<'_>,
) -> std::thread::Result<Poll<F::Output>> {
    cell.stage.with_mut(|stage| {
        // SAFETY: the caller holds RUNNING, so the stage is ours (invariant 2).
        let stage = unsafe { &mut *stage };
        let Stage::Running(fut) = stage else {
            unreachable!("a running task has no future")
        };
        // SAFETY: the future is never moved out of the cell while it is `Running`; it is
        // dropped in place by assigning the stage.
        let fut = unsafe { std::pin::Pin::new_unchecked(fut) };
        panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
    })
}

/// Drops the stage where it lies and stores `new`, returning the panic of the old value's
/// destructor, if any, so that it cannot unwind through the worker.
///
/// In place, never moved out first: a `Running` future is pinned, and a self-referential
/// one (an async block holding a value and a future that borrows it) would be dropped with
/// its borrows pointing at the slot it was moved from.
fn replace_stage<F: Future, S>(cell: &Cell<F, S>, new: Stage<F>) -> std::thread::Result<()> {
    cell.stage.with_mut(|stage| {
        // After `drop_in_place` returns or unwinds (which drops the rest of the value) the
        // slot holds nothing live, and `write` fills it without dropping.
        // SAFETY: the caller owns the stage (invariant 2), which holds a live value; it is
        // dropped once, in place.
        let res = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
            std::ptr::drop_in_place(stage)
        }));
        // SAFETY: as above; `stage` is valid for writes and nobody else reads it.
        unsafe { std::ptr::write(stage, new) };
        res
    })
}

/// Replaces the stage; a panic while dropping the old one (a future's or output's
/// destructor) is caught and discarded so it cannot unwind through the worker.
fn set_stage<F: Future, S>(cell: &Cell<F, S>, new: Stage<F>) {
    let _ = replace_stage(cell, new);
}

/// Drops the future and stores `Cancelled` (or the panic of the future's destructor).
fn cancel_in_place<F: Future, S>(cell: &Cell<F, S>) {
    let err = match replace_stage(cell, Stage::Consumed) {
        Ok(()) => JoinError::cancelled(cell.header.id),
        Err(payload) => JoinError::panic(cell.header.id, payload),
    };
    set_stage(cell, Stage::Finished(Err(err)));
}

/// Leave the owned list, then RUNNING → COMPLETE; then hand the output to the handle
/// (waking it) or drop it, and drop the poll's reference (and the list's).
///
/// The list is left *before* completion is published, so that once a `JoinHandle` has seen
/// the output the task no longer counts as alive (`RuntimeMetrics::num_alive_tasks`). A
/// task out of the list while still `RUNNING` is safe from shutdown: shutdown only cancels
/// tasks it finds in the list, and this one is finishing anyway.
fn complete<F, S>(ptr: NonNull<Header>, cell: &Cell<F, S>)
where
    F: Future + Send + 'static,
    S: Schedule,
{
    // SAFETY: we hold a reference (the poll's), so borrowing the task is sound.
    let me = ManuallyDrop::new(unsafe { Task::from_raw(ptr) });
    let refs = match cell.scheduler.release(&me) {
        Some(list_ref) => {
            std::mem::forget(list_ref);
            2
        }
        None => 1,
    };
    let snapshot = cell.header.state.transition_to_complete();
    if !snapshot.is(JOIN_INTEREST) {
        // Nobody will read the output: drop it here (invariant 2).
        set_stage(cell, Stage::Consumed);
    } else if snapshot.is(JOIN_WAKER) {
        cell.join_waker.with(|w| {
            // SAFETY: COMPLETE and JOIN_WAKER are set, so the handle no longer writes the
            // slot (invariant 3).
            if let Some(w) = unsafe { &*w } {
                // The handle's waker may be anyone's (a hand-written future polls with what
                // it likes): its panic must not unwind out of the worker.
                weft_reactor::wake::wake_by_ref(w);
            }
        });
    }
    if cell.header.state.ref_dec_by(refs) {
        // SAFETY: those were the last references.
        unsafe { dealloc::<F, S>(ptr) };
    }
}

unsafe fn try_read_output<F, S>(ptr: NonNull<Header>, dst: *mut (), waker: &Waker)
where
    F: Future + Send + 'static,
    S: Schedule,
{
    // SAFETY: the JoinHandle holds a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    if !can_read_output(cell, waker) {
        return;
    }
    let out = cell.stage.with_mut(|stage| {
        // SAFETY: COMPLETE is set and JOIN_INTEREST was set at completion (the handle is
        // alive), so the output is the handle's (invariant 2).
        match std::mem::replace(unsafe { &mut *stage }, Stage::Consumed) {
            Stage::Finished(out) => out,
            _ => panic!("JoinHandle polled after it returned Ready"),
        }
    });
    // SAFETY: the caller passes a `*mut Poll<Result<F::Output, JoinError>>`.
    unsafe { *dst.cast::<Poll<Result<F::Output, JoinError>>>() = Poll::Ready(out) };
}

/// `true` if complete; otherwise makes sure `waker` is the stored join waker.
fn can_read_output<F: Future, S>(cell: &Cell<F, S>, waker: &Waker) -> bool {
    let state = &cell.header.state;
    let snapshot = state.load();
    if snapshot.is(super::state::COMPLETE) {
        return true;
    }
    if snapshot.is(JOIN_WAKER) {
        // SAFETY: JOIN_WAKER is set, so nobody writes the slot; reading it is shared.
        let same = cell
            .join_waker
            .with(|w| unsafe { &*w }.as_ref().is_some_and(|w| w.will_wake(waker)));
        if same {
            return false;
        }
        if state.unset_join_waker().is_err() {
            return true;
        }
    }
    cell.join_waker.with_mut(|w| {
        // SAFETY: JOIN_WAKER is clear and COMPLETE was clear when we cleared it (or never
        // set), so only the handle (us) may touch the slot (invariant 3).
        unsafe { *w = Some(waker.clone()) };
    });
    state.set_join_waker().is_err()
}

unsafe fn drop_output<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the JoinHandle holds a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    // The handle owns the completed output (invariant 2). A handle that returned it (the
    // common end of an await) left nothing to drop: no write, no unwind guard.
    let consumed = cell.stage.with(|stage| {
        // SAFETY: as above, the stage is the handle's alone.
        matches!(unsafe { &*stage }, Stage::Consumed)
    });
    if consumed {
        return;
    }
    set_stage(cell, Stage::Consumed);
}

unsafe fn shutdown<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller hands us one reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    if cell.header.state.transition_to_shutdown() {
        cancel_in_place(cell);
        complete(ptr, cell);
    } else if cell.header.state.ref_dec_by(1) {
        // SAFETY: last reference.
        unsafe { dealloc::<F, S>(ptr) };
    }
}
