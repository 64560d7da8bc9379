//! Tasks: spawning, joining, aborting, yielding, and the blocking pool's handles.
//!
//! # Design
//!
//! A spawned task is one heap allocation (`raw::Cell`): a header with the state word
//! (`state.rs`, the specification of the state machine), the scheduler that owns it, the
//! future or its output, and the join handle's waker. Every handle to a task — the
//! [`JoinHandle`], each [`Waker`](std::task::Waker), a run-queue entry, the runtime's list of
//! owned tasks — is a counted pointer to that header; there is no other allocation per task,
//! and cloning a waker is one atomic increment.
//!
//! The internal handle types are:
//! - `Task`: a counted reference (used by the owned-task list);
//! - `Notified`: a run-queue entry; the worker that pops it polls with its reference;
//! - [`JoinHandle<T>`]: the user's handle, the only one that reads the output.
//!
//! A panic in a task's `poll`, or in its future's or output's destructor, is caught and
//! stored as [`JoinError::is_panic`]; it never unwinds into the worker.
//!
//! Alternatives rejected: a `Mutex` per task (a lock per wake); `Arc<Task>` with a separate
//! waker allocation (two allocations per spawn, one more indirection per wake).
//!
//! # Examples
//!
//! ```
//! let rt = weft_runtime::Runtime::new().unwrap();
//! let out = rt.block_on(async {
//!     let h = weft_runtime::spawn(async { 6 * 7 });
//!     weft_runtime::task::yield_now().await;
//!     h.await.unwrap()
//! });
//! assert_eq!(out, 42);
//! ```

pub(crate) mod deferred;
mod id;
mod join;
mod join_set;
pub(crate) mod list;
pub(crate) mod pool;
pub(crate) mod raw;
pub(crate) mod state;
mod task_local;
mod waker;

pub use crate::blocking::spawn_blocking;
pub use crate::coop::consume_budget;
pub use id::{Id, id, try_id};
pub(crate) use join::panic_message;
pub use join::{AbortHandle, JoinError, JoinHandle};
pub use join_set::JoinSet;
pub use task_local::{AccessError, LocalKey, TaskLocalFuture};
pub use yield_now::yield_now;

use std::fmt;
use std::future::Future;
use std::ptr::NonNull;

use raw::{Cell, Header};

mod yield_now;

#[cfg(all(test, loom))]
mod loom_tests;

/// What a task needs from whoever runs it.
pub(crate) trait Schedule: Send + Sync + 'static + Sized {
    /// The task was woken while idle: queue it (the entry carries one reference).
    fn schedule(&self, task: Notified);

    /// The task was woken during its own poll: queue it behind the others (no LIFO slot).
    fn yield_now(&self, task: Notified) {
        self.schedule(task)
    }

    /// The task woke itself during the poll that just ended and is still `RUNNING`: `true`
    /// if it may be polled again at once, because it is what this thread would run next
    /// anyway (the scheduler then counts the poll as if the task had been queued and
    /// popped). `false` (the default): it is queued through
    /// [`yield_now`](Schedule::yield_now).
    fn repoll(&self) -> bool {
        false
    }

    /// The task completed: remove it from the owned list, returning the list's reference if
    /// it was there.
    fn release(&self, task: &Task) -> Option<Task>;
}

/// A counted reference to a task.
pub(crate) struct Task {
    ptr: NonNull<Header>,
}

// SAFETY: the cell's shared parts are synchronised by the state word (see `raw.rs`), and
// only `Send` futures and outputs are stored in it.
unsafe impl Send for Task {}
// SAFETY: as for `Send`: `&Task` only reads the header.
unsafe impl Sync for Task {}

impl Task {
    /// # Safety
    /// `ptr` is a live task header and the caller transfers one reference to the result.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> Task {
        Task { ptr }
    }

    pub(crate) fn into_raw(self) -> NonNull<Header> {
        let ptr = self.ptr;
        std::mem::forget(self);
        ptr
    }

    pub(crate) fn header_ptr(&self) -> NonNull<Header> {
        self.ptr
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: we hold a reference, so the header is live.
        unsafe { self.ptr.as_ref() }
    }

    /// Cancels the task for runtime shutdown, consuming this reference.
    pub(crate) fn shutdown(self) {
        let ptr = self.into_raw();
        // SAFETY: our reference is handed to `shutdown`, which consumes it.
        unsafe { (ptr.as_ref().vtable.shutdown)(ptr) }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if self.header().state.ref_dec_by(1) {
            // SAFETY: we dropped the last reference.
            unsafe { (self.header().vtable.dealloc)(self.ptr) }
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("ptr", &self.ptr)
            .field("state", &self.header().state)
            .finish()
    }
}

/// A run-queue entry: a task that is `NOTIFIED` and waits to be polled.
#[derive(Debug)]
pub(crate) struct Notified(Task);

impl Notified {
    /// # Safety
    /// As `Task::from_raw`, and the task must be `NOTIFIED` with this reference as its entry.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> Notified {
        // SAFETY: forwarded to the caller.
        Notified(unsafe { Task::from_raw(ptr) })
    }

    /// Polls the task (or drops it, if it was aborted), consuming the entry.
    #[inline]
    pub(crate) fn run(self) {
        let ptr = self.0.into_raw();
        // SAFETY: the entry's reference is handed to `poll`, which consumes it.
        unsafe { (ptr.as_ref().vtable.poll)(ptr) }
    }

    /// Cancels the task in place (used when nothing will ever run it), consuming the entry.
    pub(crate) fn shutdown(self) {
        self.0.shutdown()
    }
}

/// Allocates a task. Returns the list's reference, the first queue entry and the handle;
/// `owned == false` makes a task that is never in a list (two references, not three).
pub(crate) fn new_task<F, S>(
    future: F,
    scheduler: S,
    owned: bool,
) -> (Option<Task>, Notified, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let refs = if owned { 3 } else { 2 };
    let ptr = Cell::allocate(future, scheduler, refs);
    // SAFETY: `allocate` made `refs` references; we hand out exactly that many below.
    unsafe {
        let task = owned.then(|| Task::from_raw(ptr));
        (task, Notified::from_raw(ptr), JoinHandle::from_raw(ptr))
    }
}

/// The size of the one cell a task with future `F` takes on a multi-thread runtime.
///
/// The scheduler stored in each cell is one `Arc` (8 bytes). A cell that fits a class of
/// the per-thread block cache (up to 248 bytes) takes a block of that class, usually one
/// a finished task gave back, and no call to the allocator; a larger one is one
/// allocation of this size.
///
/// ```
/// let size = weft_runtime::task::allocation_size::<std::future::Ready<()>>();
/// assert!(size <= 128, "{size}");
/// ```
pub fn allocation_size<F: Future>() -> usize {
    std::mem::size_of::<Cell<F, crate::scheduler::Handle>>()
}
