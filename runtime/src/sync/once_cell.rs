//! [`OnceCell`]: a value set at most once, possibly by an async initialiser.
//!
//! A flag, the value slot, and a one-permit batch semaphore (`sync/batch.rs`): an initialiser
//! holds the permit while it runs, so concurrent `get_or_init` calls queue (FIFO) instead
//! of running twice. Success stores the value, sets the flag (release) and *closes* the
//! semaphore, which fails every queued acquire; those callers then find the flag set. An
//! initialiser that fails or is dropped gives the permit back, and the next one in line
//! tries.

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering::*};

use super::batch::{AcquireFuture, Sem};

/// A cell written once.
///
/// # Invariants (unsafe internals)
///
/// `value` is initialised exactly when `set` is `true`; it is written only by the holder of
/// the semaphore's permit while `set` is `false`, and never written again after `set`
/// becomes `true` (the semaphore is closed then, so nobody gets the permit).
///
/// # Examples
///
/// ```
/// use weft_runtime::sync::OnceCell;
///
/// static CONFIG: OnceCell<u32> = OnceCell::const_new();
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let v = CONFIG.get_or_init(|| async { 7 }).await;
///     assert_eq!(*v, 7);
///     assert_eq!(CONFIG.get(), Some(&7));
/// });
/// ```
pub struct OnceCell<T> {
    set: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
    sem: Sem,
}

// SAFETY: the value is written once, by one initialiser (the invariants); after that only
// `&T` is handed out, so sharing needs `T: Sync` and moving it in needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for OnceCell<T> {}
// SAFETY: the cell owns its `T`.
unsafe impl<T: Send> Send for OnceCell<T> {}

/// Why [`OnceCell::set`] failed; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum SetError<T> {
    /// The cell already holds a value.
    AlreadyInitializedError(T),
    /// Another initialiser is running.
    InitializingError(T),
}

impl<T> fmt::Display for SetError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::AlreadyInitializedError(_) => f.write_str("cell already initialized"),
            SetError::InitializingError(_) => f.write_str("cell is being initialized"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for SetError<T> {}

impl<T> SetError<T> {
    /// Whether the cell already held a value.
    pub fn is_already_init_err(&self) -> bool {
        matches!(self, SetError::AlreadyInitializedError(_))
    }

    /// Whether another initialiser was running.
    pub fn is_initializing_err(&self) -> bool {
        matches!(self, SetError::InitializingError(_))
    }
}

/// Gives the permit back unless the value was stored.
struct InitGuard<'a, T> {
    cell: &'a OnceCell<T>,
}

impl<T> Drop for InitGuard<'_, T> {
    fn drop(&mut self) {
        self.cell.sem.release(1);
    }
}

impl<T> OnceCell<T> {
    /// An empty cell.
    pub fn new() -> OnceCell<T> {
        OnceCell {
            set: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            sem: Sem::new(1),
        }
    }

    /// [`OnceCell::new`] usable in a `static`.
    #[cfg(not(loom))]
    pub const fn const_new() -> OnceCell<T> {
        OnceCell {
            set: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            sem: Sem::new(1),
        }
    }

    /// A cell holding `value` if it is `Some`.
    pub fn new_with(value: Option<T>) -> OnceCell<T> {
        let cell = OnceCell::new();
        if let Some(v) = value {
            cell.sem.close();
            // SAFETY: a fresh cell: nobody else can see it yet.
            unsafe { (*cell.value.get()).write(v) };
            cell.set.store(true, Release);
        }
        cell
    }

    /// Whether the cell holds a value.
    pub fn initialized(&self) -> bool {
        self.set.load(Acquire)
    }

    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        if self.initialized() {
            // SAFETY: `set` is true (acquire), so the value is initialised and never
            // written again (the invariants).
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value through `&mut`, if set.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if *self.set.get_mut() {
            // SAFETY: set, so initialised; `&mut self` excludes every other access.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Stores `value` if the cell is empty and nobody is initialising it.
    ///
    /// # Errors
    ///
    /// [`SetError`] with the value otherwise.
    pub fn set(&self, value: T) -> Result<(), SetError<T>> {
        if self.initialized() {
            return Err(SetError::AlreadyInitializedError(value));
        }
        match self.sem.try_acquire(1) {
            Ok(()) => {
                // SAFETY: we hold the permit and `set` is false (the invariants).
                unsafe { self.store(value) };
                Ok(())
            }
            Err(_) if self.initialized() => Err(SetError::AlreadyInitializedError(value)),
            Err(_) => Err(SetError::InitializingError(value)),
        }
    }

    /// Stores the value, publishes it and closes the semaphore.
    ///
    /// # Safety
    ///
    /// The caller holds the permit and `set` is false.
    unsafe fn store(&self, value: T) -> &T {
        // SAFETY: the caller holds the permit: the only writer (the invariants).
        unsafe { (*self.value.get()).write(value) };
        self.set.store(true, Release);
        self.sem.close();
        // SAFETY: just initialised; never written again.
        unsafe { (*self.value.get()).assume_init_ref() }
    }

    /// The value, running `f` to make it if the cell is empty. Concurrent callers wait for
    /// the first initialiser; if it is dropped, the next caller runs its own `f`.
    pub async fn get_or_init<F, Fut>(&self, f: F) -> &T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match self
            .get_or_try_init(|| async { Ok::<T, std::convert::Infallible>(f().await) })
            .await
        {
            Ok(v) => v,
            Err(e) => match e {},
        }
    }

    /// The value, running the fallible `f` if the cell is empty.
    ///
    /// # Errors
    ///
    /// `f`'s error, leaving the cell empty for the next caller.
    pub async fn get_or_try_init<E, F, Fut>(&self, f: F) -> Result<&T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.get() {
            return Ok(v);
        }
        if AcquireFuture::new(&self.sem, 1).await.is_err() {
            // Closed: another initialiser succeeded.
            return Ok(self.get().expect("closed only once set"));
        }
        let guard = InitGuard { cell: self };
        if let Some(v) = self.get() {
            return Ok(v);
        }
        let value = f().await?;
        std::mem::forget(guard);
        // SAFETY: we hold the permit (the guard was forgotten, not released) and the cell
        // is empty (checked above while holding it).
        Ok(unsafe { self.store(value) })
    }

    /// The value, consuming the cell.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if std::mem::replace(self.set.get_mut(), false) {
            self.sem = Sem::new(1);
            // SAFETY: it was set, hence initialised; `set` is now false so nothing reads or
            // drops it again.
            Some(unsafe { self.value.get_mut().assume_init_read() })
        } else {
            None
        }
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        OnceCell::new()
    }
}

impl<T> Drop for OnceCell<T> {
    fn drop(&mut self) {
        if *self.set.get_mut() {
            // SAFETY: set, so initialised; dropped once, here.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceCell")
            .field("value", &self.get())
            .finish()
    }
}

impl<T: Clone> Clone for OnceCell<T> {
    fn clone(&self) -> Self {
        OnceCell::new_with(self.get().cloned())
    }
}

impl<T> From<T> for OnceCell<T> {
    fn from(v: T) -> Self {
        OnceCell::new_with(Some(v))
    }
}
