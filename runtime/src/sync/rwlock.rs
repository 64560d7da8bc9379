//! [`RwLock`]: readers take one permit of a batch semaphore (`sync/batch.rs`) of
//! `MAX_READS`, a writer takes all of them. The semaphore's FIFO order makes the lock
//! fair: a queued writer is not starved by a stream of readers, and readers behind it wait.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::batch::{AcquireFuture, Sem};
use super::mutex::TryLockError;

const MAX_READS: u32 = u32::MAX >> 3;

/// An async reader-writer lock, fair in arrival order.
///
/// # Invariants (unsafe internals)
///
/// A [`RwLockReadGuard`] holds one permit and gives `&T`; a [`RwLockWriteGuard`] holds all
/// `max_readers` permits and gives `&mut T`; so a writer excludes every other guard.
///
/// # Examples
///
/// ```
/// use weft_runtime::sync::RwLock;
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let lock = RwLock::new(5);
///     {
///         let a = lock.read().await;
///         let b = lock.read().await;
///         assert_eq!(*a + *b, 10);
///     }
///     *lock.write().await += 1;
///     assert_eq!(*lock.read().await, 6);
/// });
/// ```
pub struct RwLock<T: ?Sized> {
    max_readers: u32,
    sem: Sem,
    value: UnsafeCell<T>,
}

// SAFETY: guards give `&mut T` to one writer or `&T` to many readers (the invariants), so
// the lock needs `T: Send` to move values between threads and `T: Sync` to share them.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access; dropping it releases its permit.
#[must_use = "dropping the guard unlocks at once"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

/// Exclusive access; dropping it releases every permit.
#[must_use = "dropping the guard unlocks at once"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

// SAFETY: a read guard hands out `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: `&RwLockWriteGuard` hands out `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub fn new(value: T) -> RwLock<T> {
        RwLock::with_max_readers(value, MAX_READS)
    }

    /// A lock that lets at most `max_readers` readers in at once.
    ///
    /// # Panics
    ///
    /// If `max_readers` is 0 or above `u32::MAX >> 3`.
    pub fn with_max_readers(value: T, max_readers: u32) -> RwLock<T> {
        assert!(
            max_readers > 0 && max_readers <= MAX_READS,
            "max_readers must be in 1..={MAX_READS}, not {max_readers}"
        );
        RwLock {
            max_readers,
            sem: Sem::new(max_readers as usize),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Waits for shared access.
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        if AcquireFuture::new(&self.sem, 1).await.is_err() {
            unreachable!("a lock's semaphore is never closed");
        }
        RwLockReadGuard { lock: self }
    }

    /// Waits for exclusive access.
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        if AcquireFuture::new(&self.sem, self.max_readers as usize)
            .await
            .is_err()
        {
            unreachable!("a lock's semaphore is never closed");
        }
        RwLockWriteGuard { lock: self }
    }

    /// [`RwLock::read`] from synchronous code, parking the thread. Not from a task.
    pub fn blocking_read(&self) -> RwLockReadGuard<'_, T> {
        super::block_on_thread(self.read())
    }

    /// [`RwLock::write`] from synchronous code, parking the thread. Not from a task.
    pub fn blocking_write(&self) -> RwLockWriteGuard<'_, T> {
        super::block_on_thread(self.write())
    }

    /// Shared access if it is available now.
    ///
    /// # Errors
    ///
    /// [`TryLockError`] if a writer holds or waits for the lock.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        match self.sem.try_acquire(1) {
            Ok(()) => Ok(RwLockReadGuard { lock: self }),
            Err(_) => Err(TryLockError(())),
        }
    }

    /// Exclusive access if it is available now.
    ///
    /// # Errors
    ///
    /// [`TryLockError`] if any guard exists or anyone waits.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        match self.sem.try_acquire(self.max_readers as usize) {
            Ok(()) => Ok(RwLockWriteGuard { lock: self }),
            Err(_) => Err(TryLockError(())),
        }
    }

    /// The value, through `&mut` (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read permit is held, so no write guard exists (the invariants).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: every permit is held by this guard (the invariants).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: every permit is held by this guard, and `&mut self` excludes other
        // borrows through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(self.lock.max_readers as usize);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
