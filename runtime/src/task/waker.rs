//! Wakers that point at the task cell: cloning adds a reference, nothing is allocated.

use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::raw::Header;
use super::state::ToNotified;

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
