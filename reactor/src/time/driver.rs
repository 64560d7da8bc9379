//! The time driver: a [`Wheel`] of wakers wrapped around any other [`Driver`].
//!
//! The wheel belongs to one thread (the driver's owner: a worker, or a thread in
//! `block_on`), which fires due timers whenever it parks — including the zero-timeout parks a
//! busy worker makes on a fixed cadence — and parks no longer than its earliest deadline. The
//! I/O layer underneath never knows about timers.
//!
//! Other threads reach the wheel through a [`TimerHandle`], under the wheel's mutex (one per
//! driver, never a global lock): a timer registered on worker A and then polled or dropped by
//! a task that moved to worker B updates or cancels its entry in A's wheel directly.
//!
//! # Protocol with the owner's park
//!
//! 1. Before parking, the owner (holding the lock) fires due timers, reads the earliest
//!    deadline and records it as `parked_until`, then parks with that timeout.
//! 2. After parking it fires due timers and sets `parked_until` to 0 ("awake").
//! 3. A timer inserted or moved earlier by a *non-owner* compares its deadline with
//!    `parked_until` under the same lock, and unparks the owner if the owner would otherwise
//!    sleep past it. An awake owner re-reads the wheel before its next park anyway.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Clock, Key, Wheel};
use crate::driver::{Driver, Unpark};

struct Locked {
    wheel: Wheel<Waker>,
    /// The tick the owner is parked until (`u64::MAX`: no timeout), or 0 while awake.
    parked_until: u64,
    /// Set by [`TimeDriver::close`]: the owner parks no more, so nothing is filed.
    closed: bool,
}

struct Shared {
    locked: Mutex<Locked>,
    clock: Clock,
    unpark: Box<dyn Unpark>,
}

/// A [`Driver`] that adds timers to `D`: it fires due timers on every park and never parks
/// past the earliest one.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use weft_reactor::time::TimeDriver;
/// use weft_reactor::{Driver, ThreadParker};
///
/// let mut driver = TimeDriver::new(ThreadParker::new());
/// let timers = driver.handle();
/// let deadline = Instant::now() + Duration::from_millis(2);
/// let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
/// let waker = std::task::Waker::from(std::sync::Arc::new(Flag(flag.clone())));
/// timers.register(deadline, waker);
/// while !flag.load(std::sync::atomic::Ordering::SeqCst) {
///     driver.park(None).unwrap(); // returns once the timer is due
/// }
/// assert!(Instant::now() >= deadline);
///
/// struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
/// impl std::task::Wake for Flag {
///     fn wake(self: std::sync::Arc<Self>) {
///         self.0.store(true, std::sync::atomic::Ordering::SeqCst);
///     }
/// }
/// ```
pub struct TimeDriver<D: Driver> {
    inner: D,
    shared: Arc<Shared>,
    /// Wakers of fired timers, woken outside the lock; kept to reuse its allocation.
    fired: Vec<Waker>,
}

/// Registers, updates and cancels timers in one [`TimeDriver`]'s wheel, from any thread.
/// Cheap to clone.
#[derive(Clone)]
pub struct TimerHandle {
    shared: Arc<Shared>,
    /// The thread that parks the driver; `None` for a handle given to other threads.
    owner: Option<std::thread::ThreadId>,
}

impl<D: Driver> TimeDriver<D> {
    /// Wraps `inner`; the thread that calls [`park`](Driver::park) must be the thread that
    /// created the driver (its owner).
    pub fn new(inner: D) -> Self {
        let unpark = Box::new(inner.unparker());
        TimeDriver {
            inner,
            shared: Arc::new(Shared {
                locked: Mutex::new(Locked {
                    wheel: Wheel::new(),
                    parked_until: 0,
                    closed: false,
                }),
                clock: Clock::new(),
                unpark,
            }),
            fired: Vec::new(),
        }
    }

    /// A handle to this driver's wheel for the thread that parks it: timers it registers
    /// never unpark the driver (the owner re-reads the wheel before it parks).
    pub fn handle(&self) -> TimerHandle {
        TimerHandle {
            shared: self.shared.clone(),
            owner: Some(std::thread::current().id()),
        }
    }

    /// A handle for other threads: a timer it registers (or moves) earlier than the owner's
    /// current park timeout unparks the owner.
    pub fn remote_handle(&self) -> TimerHandle {
        TimerHandle {
            shared: self.shared.clone(),
            owner: None,
        }
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped driver, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Closes the wheel, for an owner that will not park again (a worker leaving at
    /// shutdown): every pending timer's waker is woken now, before its deadline, and a
    /// timer registered afterwards is woken at once and not filed. Nothing then waits on a
    /// wheel that nobody fires; a woken timer finds its entry gone and must check the clock
    /// and register elsewhere (as `weft_runtime::time::Sleep` does), or give up.
    pub fn close(&mut self) {
        let mut locked = self.shared.locked.lock();
        locked.closed = true;
        let fired = &mut self.fired;
        locked.wheel.poll_expired(u64::MAX, |_, w| fired.push(w));
        drop(locked);
        for w in self.fired.drain(..) {
            crate::wake::wake(w);
        }
    }

    /// Fires due timers; when `parking`, also records how long the owner will sleep and
    /// returns that timeout (step 1), otherwise marks the owner awake (step 2). Also returns
    /// whether any timer fired.
    fn fire(&mut self, parking: bool) -> (Option<Duration>, bool) {
        let now = Instant::now();
        let mut locked = self.shared.locked.lock();
        let now_tick = self.shared.clock.now_tick(now);
        let fired = &mut self.fired;
        locked.wheel.poll_expired(now_tick, |_, w| fired.push(w));
        let timeout = if parking {
            match locked.wheel.next_deadline() {
                Some(tick) => {
                    locked.parked_until = tick.max(1);
                    Some(self.shared.clock.duration_until(tick, now))
                }
                None => {
                    locked.parked_until = u64::MAX;
                    None
                }
            }
        } else {
            locked.parked_until = 0;
            None
        };
        drop(locked);
        let fired_any = !self.fired.is_empty();
        for w in self.fired.drain(..) {
            crate::wake::wake(w);
        }
        (timeout, fired_any)
    }
}

impl<D: Driver> Driver for TimeDriver<D> {
    type Unpark = D::Unpark;

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            self.fire(false);
            return self.inner.park(timeout);
        }
        let (timer, fired_any) = self.fire(true);
        if fired_any {
            // What was woken may be the caller's to run (it may sit where no other thread
            // can take it): return without blocking so the caller looks at its queues.
            self.shared.locked.lock().parked_until = 0;
            return self.inner.park(Some(Duration::ZERO));
        }
        let t = match (timeout, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let res = self.inner.park(t);
        self.fire(false);
        res
    }

    fn unparker(&self) -> D::Unpark {
        self.inner.unparker()
    }
}

/// A [`TimerHandle`] that does not keep the wheel alive: for a timer's own bookkeeping,
/// which the wheel itself holds (through the timer's waker), so that a strong handle there
/// would be a reference cycle that outlives the driver.
#[derive(Clone)]
pub struct WeakTimerHandle {
    shared: std::sync::Weak<Shared>,
    owner: Option<std::thread::ThreadId>,
}

impl WeakTimerHandle {
    /// The handle, if the driver's wheel still exists.
    pub fn upgrade(&self) -> Option<TimerHandle> {
        Some(TimerHandle {
            shared: self.shared.upgrade()?,
            owner: self.owner,
        })
    }
}

impl fmt::Debug for WeakTimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakTimerHandle").finish_non_exhaustive()
    }
}

impl TimerHandle {
    /// A handle that does not keep the wheel alive; see [`WeakTimerHandle`].
    pub fn downgrade(&self) -> WeakTimerHandle {
        WeakTimerHandle {
            shared: Arc::downgrade(&self.shared),
            owner: self.owner,
        }
    }

    fn is_owner(&self) -> bool {
        self.owner == Some(std::thread::current().id())
    }

    /// After a non-owner made `tick` a deadline: wake the owner if it sleeps past it.
    fn wake_owner_if_needed(&self, locked: &Locked, tick: u64) {
        if !self.is_owner() && tick < locked.parked_until {
            self.shared.unpark.unpark();
        }
    }

    /// Registers a timer that wakes `waker` at (never before) `deadline`; on a closed wheel
    /// (see [`TimeDriver::close`]), wakes it at once and returns a key that names no timer.
    pub fn register(&self, deadline: Instant, waker: Waker) -> Key {
        let tick = self.shared.clock.deadline_to_tick(deadline);
        let mut locked = self.shared.locked.lock();
        let key = locked.wheel.insert(tick, waker);
        if locked.closed {
            let waker = locked.wheel.cancel(key);
            drop(locked);
            if let Some(w) = waker {
                crate::wake::wake(w);
            }
            return key;
        }
        self.wake_owner_if_needed(&locked, tick);
        key
    }

    /// Makes `waker` the one woken when `key` fires, unless it already is. Returns `false`
    /// if the timer has fired or been cancelled.
    pub fn update_waker(&self, key: Key, waker: &Waker) -> bool {
        let mut locked = self.shared.locked.lock();
        match locked.wheel.get_mut(key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    /// Moves a pending timer to `deadline`. Returns `false` if it has fired or been cancelled.
    pub fn reset(&self, key: Key, deadline: Instant) -> bool {
        let tick = self.shared.clock.deadline_to_tick(deadline);
        let mut locked = self.shared.locked.lock();
        let moved = locked.wheel.reset(key, tick);
        if moved {
            self.wake_owner_if_needed(&locked, tick);
        }
        moved
    }

    /// Cancels a timer (a no-op if it has fired or was cancelled already).
    pub fn cancel(&self, key: Key) {
        let waker = self.shared.locked.lock().wheel.cancel(key);
        // Dropped outside the lock: dropping a waker may run arbitrary code.
        drop(waker);
    }

    /// Timers pending in this wheel.
    pub fn len(&self) -> usize {
        self.shared.locked.lock().wheel.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<D: Driver> fmt::Debug for TimeDriver<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeDriver").finish_non_exhaustive()
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ThreadParker;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn fires_in_deadline_order_never_early() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let start = Instant::now();
        let (c1, w1) = counter();
        let (c2, w2) = counter();
        let d1 = start + Duration::from_millis(3);
        let d2 = start + Duration::from_millis(6);
        h.register(d2, w2);
        h.register(d1, w1);
        while c1.0.load(SeqCst) == 0 {
            d.park(None).unwrap();
        }
        assert!(Instant::now() >= d1);
        if c2.0.load(SeqCst) == 1 {
            assert!(Instant::now() >= d2);
        }
        while c2.0.load(SeqCst) == 0 {
            d.park(None).unwrap();
        }
        assert!(Instant::now() >= d2);
        assert!(h.is_empty());
    }

    #[test]
    fn cancelled_timer_never_fires_and_stale_key_is_harmless() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let (c, w) = counter();
        let key = h.register(Instant::now() + Duration::from_millis(1), w);
        h.cancel(key);
        h.cancel(key);
        assert!(!h.update_waker(key, &Waker::noop().clone()));
        std::thread::sleep(Duration::from_millis(3));
        d.park(Some(Duration::ZERO)).unwrap();
        assert_eq!(c.0.load(SeqCst), 0);
    }

    #[test]
    fn timer_registered_from_another_thread_wakes_a_parked_owner() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let (c, w) = counter();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            h.register(Instant::now() + Duration::from_millis(2), w);
        });
        // Parked with no timeout: only the registering thread's unpark ends this park.
        while c.0.load(SeqCst) == 0 {
            d.park(None).unwrap();
        }
        t.join().unwrap();
    }
}
