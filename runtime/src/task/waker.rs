//! Wakers that point at the task cell: cloning adds a reference, nothing is allocated.

use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::raw::Header;
use super::state::ToNotified;

// Self-wakes.
//
// A task that wakes itself during its own poll (a yield, a future that is ready after one
// more pass) would set `NOTIFIED` with an atomic read-modify-write, and the poll's end
// would then read it back in `transition_to_idle`'s compare-and-swap. The worker records
// instead, in the thread context's `polling` field (`context.rs`), which task it is polling; `wake_by_ref` of that task on that
// thread only sets a flag there, and the poll's end folds `NOTIFIED` into the one
// compare-and-swap it makes anyway (`State::transition_to_idle(self_woken)`). The outcome is
// the same as if the wake had happened at the end of the poll, which is a valid order: no
// other thread can tell the two apart, since while `RUNNING` is set nobody but the poller
// acts on `NOTIFIED`. Under loom the fast path is off, so the models check the atomic one.

/// Runs `f` with the context's `polling` cell; `None` once the context is gone, when no
/// task is being polled on this thread.
#[cfg(not(loom))]
#[inline(always)]
fn with_polling<R>(f: impl FnOnce(&std::cell::Cell<(*const (), bool)>) -> R) -> Option<R> {
    crate::context::with(|cx| f(cx.polling()))
}

/// If `data` is the task this thread is polling, records the wake and returns `true`.
#[inline]
fn self_wake(data: *const ()) -> bool {
    #[cfg(not(loom))]
    {
        with_polling(|p| {
            let (current, _) = p.get();
            if current == data {
                p.set((current, true));
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }
    #[cfg(loom)]
    {
        let _ = data;
        false
    }
}

/// The id of the task this thread is polling, if any (`task::try_id`).
pub(super) fn current_task_id() -> Option<super::Id> {
    #[cfg(not(loom))]
    {
        let current = with_polling(|p| p.get().0).unwrap_or(std::ptr::null());
        if current.is_null() {
            return None;
        }
        // SAFETY: `polling` holds the header of the task this thread is polling right now
        // (set by `PollGuard::enter`, restored when that poll ends); the poll holds a
        // reference, so the header is live for the duration of this call.
        let header = unsafe { &*current.cast::<Header>() };
        super::Id::from_raw(header.id)
    }
    #[cfg(loom)]
    {
        None
    }
}

/// Marks `ptr` as the task this thread polls, with a fresh cooperative budget (`coop.rs`),
/// until the guard's `finish`: one context access to start a poll and one to end it.
pub(super) struct PollGuard {
    #[cfg(not(loom))]
    prev: (*const (), bool),
    prev_budget: Option<u8>,
}

impl PollGuard {
    #[inline]
    pub(super) fn enter(ptr: NonNull<Header>) -> PollGuard {
        let budget = Some(crate::coop::BUDGET);
        #[cfg(not(loom))]
        {
            let (prev, prev_budget) = crate::context::with(|cx| {
                let prev = cx.polling().replace((ptr.as_ptr().cast(), false));
                (prev, cx.budget().replace(budget))
            })
            .unwrap_or(((std::ptr::null(), false), None));
            PollGuard { prev, prev_budget }
        }
        #[cfg(loom)]
        {
            let _ = ptr;
            let prev_budget = crate::context::with(|cx| cx.budget().replace(budget)).flatten();
            PollGuard { prev_budget }
        }
    }

    /// Ends the poll: whether the task woke itself during it, and whether the thread's
    /// scheduler said the task was alone on its queue when this run began (the context's
    /// `repoll_hint`: only then may it be polled again in place, see `raw::poll`).
    #[inline]
    pub(super) fn finish(self) -> (bool, bool) {
        let me = std::mem::ManuallyDrop::new(self);
        crate::context::with(|cx| {
            cx.budget().set(me.prev_budget);
            #[cfg(not(loom))]
            {
                (cx.polling().replace(me.prev).1, cx.repoll_hint().get())
            }
            #[cfg(loom)]
            {
                (false, false)
            }
        })
        .unwrap_or((false, false))
    }
}

impl Drop for PollGuard {
    /// Restores the previous state if the poll unwound.
    fn drop(&mut self) {
        crate::context::with(|cx| {
            cx.budget().set(self.prev_budget);
            #[cfg(not(loom))]
            cx.polling().set(self.prev);
        });
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// A waker for the task that borrows the caller's reference (the caller must not drop it
/// through `Drop`: wrap it in `ManuallyDrop`).
///
/// # Safety
/// `ptr` must stay live while the waker is used; the waker must not be dropped normally.
pub(super) unsafe fn waker_ref(ptr: NonNull<Header>) -> Waker {
    // SAFETY: the vtable's functions uphold the RawWaker contract for task headers.
    unsafe { Waker::from_raw(RawWaker::new(ptr.as_ptr().cast(), &VTABLE)) }
}

/// # Safety
/// `data` is a task header with a live reference held by the waker being used.
unsafe fn header<'a>(data: *const ()) -> &'a Header {
    // SAFETY: wakers are only created from task headers (above and in `clone`).
    unsafe { &*data.cast::<Header>() }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned holds a reference.
    unsafe { header(data) }.state.ref_inc();
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: this waker's reference is live until the transition below consumes it.
    let h = unsafe { header(data) };
    let ptr = NonNull::from(h);
    match h.state.transition_to_notified_by_val() {
        ToNotified::DoNothing => {}
        // SAFETY: the waker's reference becomes the queue entry's.
        ToNotified::Submit => unsafe { (h.vtable.schedule)(ptr) },
        // SAFETY: the transition dropped the last reference.
        ToNotified::Dealloc => unsafe { (h.vtable.dealloc)(ptr) },
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    if self_wake(data) {
        return;
    }
    // SAFETY: the waker holds a reference for the duration of this call.
    let h = unsafe { header(data) };
    if h.state.transition_to_notified_by_ref() == ToNotified::Submit {
        // SAFETY: the transition added a reference for the queue entry.
        unsafe { (h.vtable.schedule)(NonNull::from(h)) };
    }
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: the dropped waker held a reference.
    let h = unsafe { header(data) };
    if h.state.ref_dec_by(1) {
        // SAFETY: that was the last reference.
        unsafe { (h.vtable.dealloc)(NonNull::from(h)) };
    }
}
