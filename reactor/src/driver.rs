//! The park/unpark surface: how an idle worker waits, and how another thread wakes it.
//!
//! A worker with nothing to run calls [`Driver::park`] with the time until its next timer
//! (or `None`). Any thread holding the matching [`Unpark`] handle may end that wait. The
//! scheduler sees only these two traits; what "park" means is the driver's business: a
//! condition variable in [`ThreadParker`] (the runtime's `block_on` threads),
//! `io_uring_enter` on the worker's ring in the io_uring driver, `epoll_pwait2` in the
//! fallback's [`Epoll`](crate::epoll::Epoll). So the reactor can change how a worker waits
//! without the scheduler's logic changing.
//!
//! # The handshake (one [`ThreadParker`])
//!
//! The state word is `EMPTY`, `PARKED` or `NOTIFIED`.
//!
//! 1. `unpark` swaps in `NOTIFIED`. If the old value was `EMPTY` or `NOTIFIED` it returns: the
//!    next `park` will consume the token without blocking. If it was `PARKED`, it takes the
//!    mutex (so the parker is inside `wait`, not between its check and its wait), releases it
//!    and signals the condition variable.
//! 2. `park` first tries `NOTIFIED → EMPTY`: a pending token returns at once, no syscall.
//! 3. Otherwise it takes the mutex and tries `EMPTY → PARKED`; failing that, a token arrived
//!    in between, which it consumes and returns.
//! 4. It waits on the condition variable; on each wake it tries `NOTIFIED → EMPTY` and returns
//!    on success, treats anything else as spurious and waits again, and on time-out swaps
//!    `EMPTY` back in (consuming a token that raced the time-out, which is harmless: the caller
//!    re-checks its queues after every park).
//!
//! A token is never lost: it is either seen by step 2 or 3, or the unparker observes `PARKED`
//! and signals while the parker is waiting under the mutex. The loom model in this file checks
//! exactly this.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crate::loom::sync::{self, Arc, AtomicUsize, Condvar, Mutex, Ordering::SeqCst};

/// What a worker thread waits on when it has nothing to run.
///
/// One driver belongs to one worker thread (`&mut self`); its [`Unpark`] handle may be
/// cloned to any thread.
pub trait Driver: Send + 'static {
    /// The handle other threads use to end a [`park`](Driver::park).
    type Unpark: Unpark + Clone;

    /// Blocks until unparked or until `timeout` passes (`None`: no time limit).
    ///
    /// `Some(Duration::ZERO)` never blocks: it only processes whatever the driver has ready
    /// (for an I/O driver, completions), which is how a busy worker keeps I/O moving.
    /// Returning early (spuriously) is allowed; the caller re-checks its queues.
    ///
    /// A driver may run wakers during `park` (fired timers, I/O completions), so the caller
    /// must not hold anything those wakers need — for a worker, its own run queue.
    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle that wakes this driver from any thread.
    fn unparker(&self) -> Self::Unpark;
}

/// Wakes a parked [`Driver`] from any thread.
pub trait Unpark: Send + Sync + 'static {
    /// Ends the driver's current [`park`](Driver::park), or makes its next one return at once.
    fn unpark(&self);
}

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

struct Inner {
    state: AtomicUsize,
    mutex: Mutex<()>,
    condvar: Condvar,
}

/// A [`Driver`] that parks the thread on a mutex and condition variable.
///
/// What a thread with no I/O driver of its own parks on (a `block_on` thread); workers
/// park on their ring or, on the fallback, their [`Epoll`](crate::epoll::Epoll).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_reactor::{Driver, ThreadParker, Unpark};
///
/// let mut parker = ThreadParker::new();
/// parker.unparker().unpark();           // a token before parking...
/// parker.park(None).unwrap();           // ...makes this return at once
/// parker.park(Some(Duration::from_millis(1))).unwrap(); // times out
/// ```
pub struct ThreadParker {
    inner: Arc<Inner>,
}

/// The [`Unpark`] handle of a [`ThreadParker`]. Cheap to clone.
#[derive(Clone)]
pub struct ThreadUnparker {
    inner: Arc<Inner>,
}

impl ThreadParker {
    /// A parker with no pending token.
    pub fn new() -> Self {
        ThreadParker {
            inner: Arc::new(Inner {
                state: AtomicUsize::new(EMPTY),
                mutex: Mutex::new(()),
                condvar: Condvar::new(),
            }),
        }
    }
}

impl Default for ThreadParker {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver for ThreadParker {
    type Unpark = ThreadUnparker;

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let inner = &*self.inner;
        // Step 2: a pending token returns at once.
        if inner
            .state
            .compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst)
            .is_ok()
        {
            return Ok(());
        }
        if timeout == Some(Duration::ZERO) {
            return Ok(());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        // Step 3.
        let mut guard = sync::lock(&inner.mutex);
        if let Err(actual) = inner.state.compare_exchange(EMPTY, PARKED, SeqCst, SeqCst) {
            debug_assert_eq!(actual, NOTIFIED, "two threads parked on one parker");
            inner.state.store(EMPTY, SeqCst);
            return Ok(());
        }
        // Step 4.
        loop {
            let timed_out = match deadline {
                None => {
                    sync::wait(&inner.condvar, &mut guard);
                    false
                }
                Some(d) => sync::wait_until(&inner.condvar, &mut guard, d),
            };
            if inner
                .state
                .compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst)
                .is_ok()
            {
                return Ok(());
            }
            if timed_out {
                inner.state.swap(EMPTY, SeqCst);
                return Ok(());
            }
        }
    }

    fn unparker(&self) -> ThreadUnparker {
        ThreadUnparker {
            inner: self.inner.clone(),
        }
    }
}

impl Unpark for ThreadUnparker {
    fn unpark(&self) {
        let inner = &*self.inner;
        // Step 1.
        match inner.state.swap(NOTIFIED, SeqCst) {
            EMPTY | NOTIFIED => {}
            PARKED => {
                drop(sync::lock(&inner.mutex));
                inner.condvar.notify_one();
            }
            other => unreachable!("invalid parker state {other}"),
        }
    }
}

impl fmt::Debug for ThreadParker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadParker").finish_non_exhaustive()
    }
}

impl fmt::Debug for ThreadUnparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadUnparker").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn token_before_park_is_consumed_once() {
        let mut p = ThreadParker::new();
        p.unparker().unpark();
        p.unparker().unpark();
        p.park(None).unwrap();
        // The second unpark merged into the first: this park must time out, not return a
        // second token. We can only observe that it returned; the state must be EMPTY.
        p.park(Some(Duration::from_millis(1))).unwrap();
        assert_eq!(p.inner.state.load(SeqCst), EMPTY);
    }

    #[test]
    fn unpark_from_another_thread_ends_an_untimed_park() {
        for _ in 0..200 {
            let mut p = ThreadParker::new();
            let u = p.unparker();
            let t = std::thread::spawn(move || u.unpark());
            p.park(None).unwrap();
            t.join().unwrap();
        }
    }

    #[test]
    fn zero_timeout_never_blocks_and_keeps_no_state() {
        let mut p = ThreadParker::new();
        p.park(Some(Duration::ZERO)).unwrap();
        assert_eq!(p.inner.state.load(SeqCst), EMPTY);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// No lost wake-up: whatever the interleaving, an unpark sent to a thread that parks
    /// without a timeout lets it return.
    #[test]
    fn park_unpark_no_lost_wakeup() {
        loom::model(|| {
            let mut p = ThreadParker::new();
            let u = p.unparker();
            let t = loom::thread::spawn(move || u.unpark());
            p.park(None).unwrap();
            t.join().unwrap();
        });
    }

    /// Two unparks and two parks: the second park returns only if a token is left, so the
    /// model has the second unpark come after the first park has returned.
    #[test]
    fn park_twice_two_unparks_in_sequence() {
        loom::model(|| {
            let mut p = ThreadParker::new();
            let u = p.unparker();
            let flag = Arc::new(AtomicUsize::new(0));
            let f2 = flag.clone();
            let t = loom::thread::spawn(move || {
                u.unpark();
                while f2.load(SeqCst) == 0 {
                    loom::thread::yield_now();
                }
                u.unpark();
            });
            p.park(None).unwrap();
            flag.store(1, SeqCst);
            p.park(None).unwrap();
            t.join().unwrap();
        });
    }
}
