//! The std/loom shim. Under `cfg(loom)` the task state machine's atomics and cells come from
//! loom, so model tests explore every interleaving and flag unsynchronised cell access;
//! otherwise they are std's, behind the same small API (`with`/`with_mut` on cells).

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};

    /// An `UnsafeCell` with loom's closure-based API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
}
