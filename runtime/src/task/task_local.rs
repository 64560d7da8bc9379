//! Task-local values: [`task_local!`](crate::task_local) and [`LocalKey`].
//!
//! # Design
//!
//! A task-local is a thread-local `RefCell<Option<T>>` that holds the value only while the
//! code that set it runs. [`LocalKey::scope`] wraps a future; around each poll of the inner
//! future it swaps the value into the thread-local and, when the poll returns (or unwinds),
//! swaps it back out into the wrapper. The value thus travels with the future from worker
//! to worker, and tasks polled on the same thread never see each other's values.
//! [`LocalKey::sync_scope`] does the same around one closure call.
//!
//! Scopes nest: the inner scope's swap saves the outer value and the swap back restores it.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Declares task-local keys: `static NAME: Type;`, each a [`LocalKey`].
///
/// # Examples
///
/// ```
/// weft_runtime::task_local! {
///     static REQUEST_ID: u64;
///     pub static USER: String;
/// }
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(REQUEST_ID.scope(7, async {
///     assert_eq!(REQUEST_ID.get(), 7);
///     weft_runtime::task::yield_now().await;
///     assert_eq!(REQUEST_ID.get(), 7);
/// }));
/// assert!(REQUEST_ID.try_with(|_| ()).is_err());
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_inner!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_inner!($(#[$attr])* $vis $name, $t);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_inner {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static __KEY: ::std::cell::RefCell<::core::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::core::option::Option::None) };
            }
            $crate::task::LocalKey { inner: __KEY }
        };
    };
}

/// A key for a task-local value, declared with [`task_local!`](crate::task_local).
pub struct LocalKey<T: 'static> {
    #[doc(hidden)]
    pub inner: std::thread::LocalKey<RefCell<Option<T>>>,
}

/// The error of [`LocalKey::try_with`]: the value is not set here (no enclosing
/// [`scope`](LocalKey::scope) or [`sync_scope`](LocalKey::sync_scope)).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessError {
    _private: (),
}

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessError").finish()
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value not set")
    }
}

impl std::error::Error for AccessError {}

impl<T: 'static> LocalKey<T> {
    /// Wraps `future` so that the key holds `value` whenever it is polled (and when it is
    /// dropped). The value is dropped with the wrapper.
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            slot: Some(value),
            future: Some(future),
        }
    }

    /// Calls `f` with the key holding `value`, and returns what `f` returns.
    ///
    /// # Panics
    ///
    /// If the key is borrowed by [`with`](LocalKey::with) around this call.
    ///
    /// # Examples
    ///
    /// ```
    /// weft_runtime::task_local! { static DEPTH: u32; }
    /// let n = DEPTH.sync_scope(1, || DEPTH.sync_scope(2, || DEPTH.get()) + DEPTH.get());
    /// assert_eq!(n, 3);
    /// ```
    #[track_caller]
    pub fn sync_scope<F: FnOnce() -> R, R>(&'static self, value: T, f: F) -> R {
        let mut slot = Some(value);
        let _guard = self.enter(&mut slot);
        f()
    }

    /// Swaps `slot` into the thread-local; the guard swaps it back.
    #[track_caller]
    fn enter<'a>(&'static self, slot: &'a mut Option<T>) -> Guard<'a, T> {
        self.swap(slot);
        Guard { key: self, slot }
    }

    #[track_caller]
    fn swap(&'static self, slot: &mut Option<T>) {
        let swapped = self.inner.try_with(|cell| {
            cell.try_borrow_mut()
                .map(|mut current| std::mem::swap(&mut *current, slot))
        });
        match swapped {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                panic!("task-local scope entered or left while its value is borrowed by `with`")
            }
            Err(_) => panic!("task-local scope used while the thread's locals are destroyed"),
        }
    }

    /// Calls `f` with a reference to the value.
    ///
    /// # Panics
    ///
    /// If the value is not set; see [`try_with`](LocalKey::try_with).
    #[track_caller]
    pub fn with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(_) => panic!(
                "cannot access a task-local value outside its scope: set it with \
                 `LocalKey::scope` or `sync_scope` first"
            ),
        }
    }

    /// Calls `f` with a reference to the value, or returns [`AccessError`] if it is not set.
    pub fn try_with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> Result<R, AccessError> {
        let err = AccessError { _private: () };
        self.inner
            .try_with(|cell| {
                let borrow = cell.borrow();
                borrow.as_ref().map(f).ok_or(err)
            })
            .unwrap_or(Err(err))
    }

    /// A clone of the value.
    ///
    /// # Panics
    ///
    /// If the value is not set.
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        self.with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("LocalKey { .. }")
    }
}

/// Swaps the value back out of the thread-local on drop (also when unwinding).
struct Guard<'a, T: 'static> {
    key: &'static LocalKey<T>,
    slot: &'a mut Option<T>,
}

impl<T: 'static> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.key.swap(self.slot);
    }
}

/// The future of [`LocalKey::scope`]: polls the inner future with the key set.
pub struct TaskLocalFuture<T: 'static, F> {
    key: &'static LocalKey<T>,
    slot: Option<T>,
    /// `None` once the inner future has been dropped (by `Drop`).
    future: Option<F>,
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self` (only
        // polled here through a pinned reference, and dropped in place by `Drop`); `key`
        // and `slot` are not pinned and may be used by `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        let _guard = this.key.enter(&mut this.slot);
        let future = this
            .future
            .as_mut()
            .expect("TaskLocalFuture polled after its future was dropped");
        // SAFETY: see above: the future stays where it is until it is dropped in place.
        unsafe { Pin::new_unchecked(future) }.poll(cx)
    }
}

impl<T: 'static, F> Drop for TaskLocalFuture<T, F> {
    /// Drops the inner future with the key set, so its destructors can read the value.
    fn drop(&mut self) {
        if self.future.is_some() {
            let slot = &mut self.slot;
            let future = &mut self.future;
            if self.key.inner.try_with(|_| ()).is_ok() {
                let _guard = self.key.enter(slot);
                // Dropped in place: assigning `None` runs the destructor where it lies.
                *future = None;
            }
        }
    }
}

impl<T: 'static + fmt::Debug, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.slot)
            .finish_non_exhaustive()
    }
}
