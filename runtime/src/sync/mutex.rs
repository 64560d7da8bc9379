//! [`Mutex`]: an async mutex, a one-permit batch semaphore (`sync/batch.rs`) beside the value.
//!
//! Locking an unlocked mutex is one compare-and-swap; unlocking with nobody waiting is one
//! more. With waiters, unlocking hands the lock straight to the oldest (FIFO): the permit
//! never returns to the word, so a newcomer cannot barge in.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::batch::{AcquireFuture, Sem};

/// An async mutual-exclusion lock whose guard may be held across `.await`.
///
/// Waiters get the lock in the order they asked for it. A `lock()` future dropped while
/// waiting leaves the queue (passing the lock on if it had just been handed to it).
///
/// # Invariants (unsafe internals)
///
/// `value` is only accessed through a [`MutexGuard`] or [`OwnedMutexGuard`], and one exists
/// only while its holder owns the semaphore's single permit; `&mut self` methods need no
/// permit because they exclude every guard.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::Mutex;
///
/// let rt = weft_runtime::Runtime::builder().worker_threads(2).build().unwrap();
/// let total = rt.block_on(async {
///     let m = Arc::new(Mutex::new(0u32));
///     let tasks: Vec<_> = (0..4)
///         .map(|_| {
///             let m = m.clone();
///             weft_runtime::spawn(async move { *m.lock().await += 1 })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
///     let v = *m.lock().await;
///     v
/// });
/// assert_eq!(total, 4);
/// ```
pub struct Mutex<T: ?Sized> {
    sem: Sem,
    value: UnsafeCell<T>,
}

// SAFETY: the permit gives one guard at a time exclusive access (see the invariants), so
// sharing the mutex between threads moves `T` between them but never shares it.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above; `&Mutex` hands out `&mut T` to one holder at a time, which needs only
// `T: Send`.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// The lock, held; dropping it unlocks.
#[must_use = "dropping the guard unlocks at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
}

/// The lock, held through an `Arc<Mutex<T>>` (no borrow); dropping it unlocks.
#[must_use = "dropping the guard unlocks at once"]
pub struct OwnedMutexGuard<T: ?Sized> {
    lock: Arc<Mutex<T>>,
}

// SAFETY: a guard gives `&T` to whoever holds `&guard`; sharing it needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}
// SAFETY: as for `MutexGuard`.
unsafe impl<T: ?Sized + Sync> Sync for OwnedMutexGuard<T> {}

/// [`Mutex::try_lock`] found the lock held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryLockError(pub(crate) ());

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation would block")
    }
}

impl std::error::Error for TryLockError {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            sem: Sem::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// [`Mutex::new`] usable in a `static`.
    #[cfg(not(loom))]
    pub const fn const_new(value: T) -> Mutex<T> {
        Mutex {
            sem: Sem::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits for the lock.
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        if AcquireFuture::new(&self.sem, 1).await.is_err() {
            unreachable!("a mutex's semaphore is never closed");
        }
        MutexGuard { lock: self }
    }

    /// Locks from synchronous code, parking the thread until the lock is free.
    ///
    /// Do not call it from a task: it blocks the worker.
    pub fn blocking_lock(&self) -> MutexGuard<'_, T> {
        super::block_on_thread(self.lock())
    }

    /// Waits for the lock through the `Arc`, for a guard with no lifetime.
    pub async fn lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        if AcquireFuture::new(&self.sem, 1).await.is_err() {
            unreachable!("a mutex's semaphore is never closed");
        }
        OwnedMutexGuard { lock: self }
    }

    /// [`Mutex::blocking_lock`] for an owned guard.
    pub fn blocking_lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        super::block_on_thread(self.lock_owned())
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`TryLockError`] if it is held (or others are queued for it).
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        match self.sem.try_acquire(1) {
            Ok(()) => Ok(MutexGuard { lock: self }),
            Err(_) => Err(TryLockError(())),
        }
    }

    /// [`Mutex::try_lock`] for an owned guard.
    ///
    /// # Errors
    ///
    /// [`TryLockError`] if it is held.
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        match self.sem.try_acquire(1) {
            Ok(()) => Ok(OwnedMutexGuard { lock: self }),
            Err(_) => Err(TryLockError(())),
        }
    }

    /// The value, through `&mut` (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(v: T) -> Self {
        Mutex::new(v)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the only permit (the type's invariant).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the only permit, and `&mut self` excludes other borrows
        // through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.lock
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized> Deref for OwnedMutexGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the only permit (the type's invariant).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for OwnedMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the only permit, and `&mut self` excludes other borrows
        // through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for OwnedMutexGuard<T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.lock
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
