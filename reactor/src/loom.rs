//! The std/loom shim: under `cfg(loom)` the synchronisation primitives come from loom so that
//! model tests explore every interleaving; otherwise from std and parking_lot.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};

    /// Blocks on `cv` until notified or `deadline` passes; returns `true` on time-out.
    pub(crate) fn wait_until(
        cv: &Condvar,
        guard: &mut MutexGuard<'_, ()>,
        deadline: std::time::Instant,
    ) -> bool {
        cv.wait_until(guard, deadline).timed_out()
    }

    /// Blocks on `cv` until notified (spurious wake-ups allowed).
    pub(crate) fn wait(cv: &Condvar, guard: &mut MutexGuard<'_, ()>) {
        cv.wait(guard)
    }

    /// Locks `m`.
    pub(crate) fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
        m.lock()
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

    /// loom does not model time: a timed wait is an untimed wait that may wake spuriously.
    pub(crate) fn wait_until(
        cv: &Condvar,
        guard: &mut MutexGuard<'_, ()>,
        _deadline: std::time::Instant,
    ) -> bool {
        wait(cv, guard);
        false
    }

    pub(crate) fn wait(cv: &Condvar, guard: &mut MutexGuard<'_, ()>) {
        // loom's Condvar consumes the guard; swap it through a temporary.
        replace_with(guard, |g| cv.wait(g).unwrap());
    }

    pub(crate) fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
        m.lock().unwrap()
    }

    fn replace_with<'a>(
        slot: &mut MutexGuard<'a, ()>,
        f: impl FnOnce(MutexGuard<'a, ()>) -> MutexGuard<'a, ()>,
    ) {
        // SAFETY: `slot` is read out and written back before anyone can observe it; `f`
        // (a condvar wait) aborts rather than unwinds under loom, so the slot is never
        // left holding a moved-from guard.
        unsafe {
            let old = std::ptr::read(slot);
            std::ptr::write(slot, f(old));
        }
    }
}
