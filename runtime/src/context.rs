//! Thread-local context: which runtime (if any) the current thread belongs to.

use std::cell::{Cell, RefCell};

use crate::scheduler::Handle;

thread_local! {
    /// The runtimes made current on this thread, each with the id of the guard that made
    /// it so, most recent last: the last is the one `Handle::current()` and `spawn` use.
    /// A guard removes its own entry, wherever it is, so guards may drop in any order.
    static CURRENT: RefCell<Vec<(u64, Handle)>> = const { RefCell::new(Vec::new()) };
    /// The id the next guard takes.
    static NEXT_GUARD: Cell<u64> = const { Cell::new(0) };
    /// Set while this thread runs `block_on`, or is a worker: blocking here would deadlock.
    static IN_RUNTIME: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the current handle, if any.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Handle) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().last().map(|(_, h)| f(h)))
}

/// Makes `handle` current until the guard is dropped (or a later guard takes over).
pub(crate) fn set_current(handle: Handle) -> SetCurrentGuard {
    let id = NEXT_GUARD.with(|n| n.replace(n.get().wrapping_add(1)));
    CURRENT.with(|c| c.borrow_mut().push((id, handle)));
    SetCurrentGuard {
        id,
        _not_send: std::marker::PhantomData,
    }
}

/// Removes its handle from the thread's current runtimes on drop; the most recent one left
/// becomes current. Not `Send`: it belongs to the thread whose context it changed.
#[derive(Debug)]
pub(crate) struct SetCurrentGuard {
    id: u64,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        // Taken out first so the handle is dropped outside the borrow.
        let old = CURRENT.with(|c| {
            let mut stack = c.borrow_mut();
            let at = stack.iter().rposition(|(id, _)| *id == self.id);
            at.map(|i| stack.remove(i))
        });
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
