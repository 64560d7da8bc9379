//! Waking a waker that is not ours, without letting its panic cross the thread that wakes.
//!
//! A `Waker` handed to the reactor (a timer's, an op's) or to a task's `JoinHandle` may be
//! user code: a hand-written future can poll with any waker it likes. The threads that fire
//! those wakers are workers in the middle of their loop (firing the wheel, reaping the ring,
//! completing a task); a panic unwinding out of a `wake` there would kill the worker and
//! leave its queues, wheel and ring with nobody to run them.
//!
//! So every such call goes through [`wake`], [`wake_by_ref`] or [`guarded`], which run it
//! under `catch_unwind`. The panic hook has already reported the panic when it began (as for
//! any panic), so the report is that one line; the payload is then dropped, itself under
//! `catch_unwind` (a payload whose destructor panics is dropped with nothing more said).
//! The waker's owner loses the wake-up it asked for: that is the consequence of a waker that
//! does not wake.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::task::{Wake, Waker};
//!
//! struct Broken;
//! impl Wake for Broken {
//!     fn wake(self: Arc<Self>) {
//!         panic!("a waker that panics");
//!     }
//! }
//! # std::panic::set_hook(Box::new(|_| {}));
//! // The panic stops here; the caller carries on.
//! weft_reactor::wake::wake(Waker::from(Arc::new(Broken)));
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Waker;

/// Wakes (and drops) `waker`, catching a panic in its `wake` or its destructor.
pub fn wake(waker: Waker) {
    guarded(move || waker.wake());
}

/// Wakes `waker` without consuming it, catching a panic in its `wake_by_ref`.
pub fn wake_by_ref(waker: &Waker) {
    guarded(|| waker.wake_by_ref());
}

/// Runs `f` (a callback that may wake or drop user wakers), catching a panic in it.
/// Returns whether `f` returned normally.
pub fn guarded(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            false
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Wake, Waker};

    struct Panicky(AtomicUsize);
    impl Wake for Panicky {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
            panic!("[expected] panicking waker");
        }
    }

    #[test]
    fn a_panicking_wake_is_contained() {
        let p = Arc::new(Panicky(AtomicUsize::new(0)));
        let w = Waker::from(p.clone());
        super::wake_by_ref(&w);
        super::wake(w);
        assert_eq!(p.0.load(SeqCst), 2);
        assert_eq!(Arc::strong_count(&p), 1, "the consumed waker was dropped");
        assert!(super::guarded(|| {}));
        assert!(!super::guarded(|| panic!("[expected] in a callback")));
    }
}
