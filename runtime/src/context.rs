//! Thread-local context: which runtime (if any) the current thread belongs to.

use std::cell::{Cell, RefCell};

use crate::scheduler::Handle;

thread_local! {
    /// The runtime `Handle::current()` and `spawn` use on this thread.
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
    /// Set while this thread runs `block_on`, or is a worker: blocking here would deadlock.
    static IN_RUNTIME: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the current handle, if any.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Handle) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(f))
}

/// Makes `handle` current until the guard is dropped.
pub(crate) fn set_current(handle: Handle) -> SetCurrentGuard {
    let prev = CURRENT.with(|c| c.borrow_mut().replace(handle));
    SetCurrentGuard { prev }
}

/// Restores the previous current handle on drop.
#[derive(Debug)]
pub(crate) struct SetCurrentGuard {
    prev: Option<Handle>,
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // Taken out first so the old handle is dropped outside the borrow.
        let old = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
        drop(old);
    }
}

/// Marks the thread as running a runtime (`block_on` or a worker) until the guard drops.
///
/// # Panics
///
/// If the thread already runs one: blocking a worker or nesting `block_on` would deadlock.
#[track_caller]
pub(crate) fn enter_runtime() -> EnterRuntimeGuard {
    if IN_RUNTIME.with(|c| c.replace(true)) {
        panic!(
            "cannot block on a weft runtime from inside a runtime (a task or block_on): \
             this would block the thread that drives it; use `.await` instead, or move \
             the blocking call into `weft::task::spawn_blocking`"
        );
    }
    EnterRuntimeGuard(())
}

/// Whether this thread is inside a runtime (`block_on` or a worker).
pub(crate) fn in_runtime() -> bool {
    IN_RUNTIME.with(|c| c.get())
}

/// See [`enter_runtime`].
#[derive(Debug)]
pub(crate) struct EnterRuntimeGuard(());

impl Drop for EnterRuntimeGuard {
    fn drop(&mut self) {
        IN_RUNTIME.with(|c| c.set(false));
    }
}
