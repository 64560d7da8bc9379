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
//! 3. A timer inserted or moved compares its deadline with `parked_until` under the same
//!    lock, and unparks the owner if the owner would otherwise sleep past it. The owner
//!    files its own timers while awake (`parked_until` is 0), so only other threads'
//!    timers ever unpark it: an awake owner re-reads the wheel before its next park anyway.
//!    No handle needs to know which thread it is on.
//!
//! # The owner's own timers
//!
//! On the owner's thread a [`LocalTimerHandle`] hands out handles from a stock of spare
//! references (kept without atomics) and queues the cancels of timers dropped there, to
//! carry them out in batches under one lock (its user flushes the batch before the owner
//! parks: weft's workers do, in `park_driver`).
//!
//! # Take-over of a stalled wheel
//!
//! An owner that runs one task for a long time without yielding fires nothing meanwhile.
//! So that its timers are not hostage to it, the wheel publishes, outside the lock, the tick
//! of the owner's last firing pass (its *heartbeat*), whether the owner is blocked in a park,
//! and its earliest deadline (never later than the true one). Another thread — a scheduler's
//! idle worker — asks [`TimerHandle::takeover_deadline`] when it must look at the wheel, and
//! at that time calls [`TimerHandle::take_over`], which fires the due timers itself if the
//! owner is awake, has not fired for [`STALL_TICKS`] ticks, and the lock is free (it
//! `try_lock`s: it never waits on a busy owner). The wakers it fires run on the calling
//! thread. The owner's own protocol is unchanged: it takes the same lock, and whichever of
//! the two polls the wheel first fires a due timer; a timer fires once either way.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
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

/// How many ticks without a firing pass by an awake owner make its wheel *stalled*, so that
/// [`TimerHandle::take_over`] may fire its due timers from another thread.
///
/// 2 000 ticks (2 ms): long enough that a worker running ordinary short tasks, which fires
/// its wheel between them, is never raced for it, short enough that a stalled worker's 1 ms
/// sleeps are late by a few milliseconds rather than by the length of the stall.
pub const STALL_TICKS: u64 = 2_000;

struct Shared {
    locked: Mutex<Locked>,
    clock: Clock,
    unpark: Box<dyn Unpark>,
    /// The tick of the owner's last firing pass.
    heartbeat: AtomicU64,
    /// Whether the owner is blocked in a park with a non-zero timeout (it fires its own
    /// timers when it returns).
    owner_parked: AtomicBool,
    /// The earliest pending deadline's tick (`u64::MAX`: none). Written under the lock;
    /// never later than the wheel's true earliest (a cancel leaves it early).
    earliest: AtomicU64,
    /// The wheel's time after its last firing pass (`Wheel::elapsed`), stored with
    /// `Release` when the pass has unlinked its timers: every timer filed *ahead* of the
    /// wheel's time (see [`Filed`]) whose tick is at or before it has fired, and its entry
    /// is gone. `u64::MAX` once closed: every timer has fired, and none is filed again.
    fired_through: AtomicU64,
}

impl Shared {
    /// After a timer was filed at `tick` (under the lock).
    fn lower_earliest(&self, tick: u64) {
        if tick < self.earliest.load(Relaxed) {
            self.earliest.store(tick, Relaxed);
        }
    }
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
/// Cheap to clone: one pointer.
#[derive(Clone)]
pub struct TimerHandle {
    shared: Arc<Shared>,
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
                clock: Clock::process(),
                unpark,
                heartbeat: AtomicU64::new(0),
                owner_parked: AtomicBool::new(false),
                earliest: AtomicU64::new(u64::MAX),
                fired_through: AtomicU64::new(0),
            }),
            fired: Vec::new(),
        }
    }

    /// A handle to this driver's wheel, for any thread. A timer filed (or moved) through
    /// it earlier than the owner's current park timeout unparks the owner; the owner
    /// itself is never parked when it files one (it re-reads the wheel before it parks),
    /// so its own timers cost no unpark.
    pub fn handle(&self) -> TimerHandle {
        TimerHandle {
            shared: self.shared.clone(),
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
        self.shared.fired_through.store(u64::MAX, Release);
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
        // Each waker's target (a task's header, for weft's tasks, and the line after it,
        // where the task's future begins) is asked for as it is collected, so that the
        // wakes below, each a locked read-modify-write that orders its miss after the
        // previous one's, and the polls they lead to, find it in the cache.
        locked.wheel.poll_expired(now_tick, |_, w| {
            crate::hint::prefetch(w.data());
            crate::hint::prefetch(w.data().wrapping_byte_add(64));
            fired.push(w)
        });
        let shared = &*self.shared;
        shared.fired_through.store(locked.wheel.elapsed(), Release);
        shared.heartbeat.store(now_tick, Relaxed);
        let earliest = locked.wheel.next_deadline();
        shared.earliest.store(earliest.unwrap_or(u64::MAX), Relaxed);
        let timeout = if parking {
            match earliest {
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
        shared.owner_parked.store(parking, Relaxed);
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
            self.shared.owner_parked.store(false, Relaxed);
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

/// One thread's own [`TimerHandle`] (a worker's to the wheel it parks on), with a stock of
/// spare strong references to the wheel and a batch of cancels, so that handing out a
/// handle, taking one back and cancelling a timer on this thread cost no atomic operation.
///
/// [`get`](LocalTimerHandle::get) hands out a handle for a timer to keep (from the stock,
/// or by an ordinary clone when it is empty); [`recycle`](LocalTimerHandle::recycle) takes
/// a handle to the same wheel back into the stock instead of dropping it, and queues the
/// cancel of its timer if it has one. The stock only ever holds references that handles
/// gave back, so it is as large as the most timers this thread has held at once; dropping
/// the `LocalTimerHandle` releases them. A handle from `get` is an ordinary
/// [`TimerHandle`]: it may be dropped on any thread.
///
/// Queued cancels are carried out under one lock of the wheel per [`CANCEL_BATCH`], by
/// [`flush_cancels`](LocalTimerHandle::flush_cancels) (which the owner calls before it
/// parks, so that no cancelled timer sets its park timeout), and on drop. Until then a
/// cancelled timer is still in the wheel: if it comes due first, it fires, waking its
/// waker once for nothing.
///
/// Neither `Send` nor `Sync`: the stock and the batch are kept without atomics.
pub struct LocalTimerHandle {
    handle: TimerHandle,
    /// From `Arc::into_raw` of a clone of `handle`'s `Arc`, whose reference this owns too.
    raw: *const Shared,
    /// Strong references to `raw` owned by this stock, besides its own one.
    spare: std::cell::Cell<usize>,
    /// Timers to cancel at the next flush.
    cancels: std::cell::RefCell<Vec<Key>>,
    /// The wakers the last flush took out, kept to reuse the allocation.
    dropped: std::cell::RefCell<Vec<Waker>>,
}

/// How many cancels a [`LocalTimerHandle`] queues before it carries them out.
pub const CANCEL_BATCH: usize = 32;

impl LocalTimerHandle {
    /// A local handle to `handle`'s wheel, with an empty stock.
    pub fn new(handle: TimerHandle) -> Self {
        let raw = Arc::into_raw(handle.shared.clone());
        LocalTimerHandle {
            handle,
            raw,
            spare: std::cell::Cell::new(0),
            cancels: std::cell::RefCell::new(Vec::new()),
            dropped: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The handle, borrowed.
    #[inline]
    pub fn handle(&self) -> &TimerHandle {
        &self.handle
    }

    /// A handle to the wheel for a timer to keep: from the stock if it has one (no atomic
    /// operation), else a clone.
    #[inline]
    pub fn get(&self) -> TimerHandle {
        let spare = self.spare.get();
        if spare == 0 {
            return self.handle.clone();
        }
        self.spare.set(spare - 1);
        // SAFETY: the stock owned `spare` (> 0) strong references to `raw`, which came from
        // `Arc::into_raw`; one of them now passes to the returned handle, and `spare` was
        // lowered by one to match, so every reference is still owned exactly once.
        let shared = unsafe { Arc::from_raw(self.raw) };
        TimerHandle { shared }
    }

    /// Takes `handle` into the stock if it is a handle to this wheel (leaving `None`), so
    /// that its reference is kept rather than released, and queues the cancel of its timer
    /// `cancel` if given; returns whether it did. Any other handle is left in place, and
    /// `cancel` is then the caller's to carry out.
    #[inline]
    pub fn recycle(&self, handle: &mut Option<TimerHandle>, cancel: Option<Key>) -> bool {
        let Some(h) = handle.take_if(|h| std::ptr::eq(Arc::as_ptr(&h.shared), self.raw)) else {
            return false;
        };
        // The reference passes to the stock: `spare` is raised by one to match.
        let _ = Arc::into_raw(h.shared);
        self.spare.set(self.spare.get() + 1);
        if let Some(key) = cancel {
            let full = match self.cancels.try_borrow_mut() {
                Ok(mut cancels) => {
                    cancels.push(key);
                    cancels.len() >= CANCEL_BATCH
                }
                // Only reachable from a waker's drop inside a flush: cancel at once.
                Err(_) => {
                    self.handle.cancel(key);
                    false
                }
            };
            if full {
                self.flush_cancels();
            }
        }
        true
    }

    /// Carries out the queued cancels, under one lock of the wheel; the wakers they take
    /// out are dropped after it is released.
    pub fn flush_cancels(&self) {
        let Ok(mut cancels) = self.cancels.try_borrow_mut() else {
            return;
        };
        if cancels.is_empty() {
            return;
        }
        let mut dropped = self
            .dropped
            .try_borrow_mut()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        let mut locked = self.handle.shared.locked.lock();
        for key in cancels.drain(..) {
            if let Some(w) = locked.wheel.cancel(key) {
                dropped.push(w);
            }
        }
        drop(locked);
        drop(cancels);
        // Dropping a waker may run arbitrary code, which may cancel more: no borrow is held.
        dropped.clear();
        if let Ok(mut d) = self.dropped.try_borrow_mut() {
            if d.capacity() == 0 {
                *d = dropped;
            }
        }
    }
}

impl Drop for LocalTimerHandle {
    fn drop(&mut self) {
        self.flush_cancels();
        for _ in 0..=self.spare.get() {
            // SAFETY: the stock owns `spare` strong references to `raw` and one more of its
            // own, all from `Arc::into_raw` of this `Arc`; each is released once, here, and
            // `raw` is not used again.
            unsafe { Arc::decrement_strong_count(self.raw) };
        }
    }
}

impl fmt::Debug for LocalTimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTimerHandle")
            .field("spare", &self.spare.get())
            .finish_non_exhaustive()
    }
}

/// A timer filed by [`TimerHandle::file`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filed {
    /// Its key.
    pub key: Key,
    /// The wheel time by which it has certainly fired ([`TimerHandle::has_fired`]): its
    /// tick if that was after the wheel's time when it was filed, since every firing pass
    /// that moves the wheel's time to a tick fires what was filed ahead of it. A timer
    /// filed at or before the wheel's time waits for the next pass instead, which no tick
    /// tells apart: `u64::MAX`, reached only when the wheel closes (firing everything).
    pub fired_by: u64,
}

/// A [`TimerHandle`] that does not keep the wheel alive: for a timer's own bookkeeping,
/// which the wheel itself holds (through the timer's waker), so that a strong handle there
/// would be a reference cycle that outlives the driver.
#[derive(Clone)]
pub struct WeakTimerHandle {
    shared: std::sync::Weak<Shared>,
}

impl WeakTimerHandle {
    /// The handle, if the driver's wheel still exists.
    pub fn upgrade(&self) -> Option<TimerHandle> {
        Some(TimerHandle {
            shared: self.shared.upgrade()?,
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
        }
    }

    /// After `tick` became a deadline (under the lock): wake the owner if it sleeps past
    /// it. An owner filing its own timer is awake (`parked_until` 0), so it never pays
    /// for this.
    fn wake_owner_if_needed(&self, locked: &Locked, tick: u64) {
        if tick < locked.parked_until {
            self.shared.unpark.unpark();
        }
    }

    /// Registers a timer that wakes `waker` at (never before) `deadline`; on a closed wheel
    /// (see [`TimeDriver::close`]), wakes it at once and returns a key that names no timer.
    pub fn register(&self, deadline: Instant, waker: Waker) -> Key {
        self.file(deadline, waker).key
    }

    /// [`register`](TimerHandle::register), also saying whether the timer was filed ahead
    /// of the wheel's time, so that [`has_fired`](TimerHandle::has_fired) can later tell,
    /// without the lock, that it fired.
    pub fn file(&self, deadline: Instant, waker: Waker) -> Filed {
        self.file_at(self.shared.clock.deadline_to_tick(deadline), waker)
    }

    /// [`file`](TimerHandle::file) for a deadline given as a tick of this wheel's clock,
    /// [`Clock::process`] (from [`nanos_to_tick`](super::nanos_to_tick)).
    pub fn file_at(&self, tick: u64, waker: Waker) -> Filed {
        let mut locked = self.shared.locked.lock();
        let ahead = tick > locked.wheel.elapsed();
        let key = locked.wheel.insert(tick, waker);
        if locked.closed {
            // Inserted and taken out again, so that the key names no timer.
            let waker = locked.wheel.cancel(key);
            drop(locked);
            if let Some(w) = waker {
                crate::wake::wake(w);
            }
            return Filed {
                key,
                fired_by: u64::MAX,
            };
        }
        self.shared.lower_earliest(tick);
        self.wake_owner_if_needed(&locked, tick);
        Filed {
            key,
            fired_by: if ahead { tick } else { u64::MAX },
        }
    }

    /// [`file`](TimerHandle::file), unless the wheel's time has already reached `deadline`
    /// (a firing pass ran at or after it): then nothing is filed, `waker` is not cloned, and
    /// the answer is `None` — the deadline has certainly passed, which the caller learns
    /// without reading the clock. A closed wheel files nothing either, but answers as
    /// [`file`](TimerHandle::file) does (it wakes `waker` at once), since its time says
    /// nothing about the clock.
    pub fn file_unless_due(&self, deadline: Instant, waker: &Waker) -> Option<Filed> {
        self.file_unless_due_at(self.shared.clock.deadline_to_tick(deadline), waker)
    }

    /// [`file_unless_due`](TimerHandle::file_unless_due) for a deadline given as a tick of
    /// this wheel's clock, [`Clock::process`] (from
    /// [`nanos_to_tick`](super::nanos_to_tick)).
    pub fn file_unless_due_at(&self, tick: u64, waker: &Waker) -> Option<Filed> {
        let mut locked = self.shared.locked.lock();
        if locked.closed {
            drop(locked);
            waker.wake_by_ref();
            return Some(Filed {
                key: Key::NONE,
                fired_by: u64::MAX,
            });
        }
        let elapsed = locked.wheel.elapsed();
        if tick <= elapsed {
            return None;
        }
        let key = locked.wheel.insert(tick, waker.clone());
        self.shared.lower_earliest(tick);
        self.wake_owner_if_needed(&locked, tick);
        Some(Filed {
            key,
            fired_by: tick,
        })
    }

    /// Whether the deadline of the timer whose [`Filed::fired_by`] is `fired_by` has
    /// certainly passed: a firing pass at or after its tick has run (and unlinked it), so
    /// the clock read then was at or past the deadline. Like
    /// [`has_fired`](TimerHandle::has_fired), one atomic load; unlike it, `false` once the
    /// wheel has closed (closing fires timers early, before their deadlines).
    #[inline]
    pub fn has_passed(&self, fired_by: u64) -> bool {
        let through = self.shared.fired_through.load(Acquire);
        fired_by <= through && through != u64::MAX
    }

    /// Whether the timer whose [`Filed::fired_by`] is `fired_by` has certainly fired: the
    /// wheel's firing passes have reached that tick (or the wheel closed), so its entry is
    /// gone and its key names nothing (cancelling it would be a no-op). One atomic load,
    /// no lock. `false` does not mean that it has not fired.
    #[inline]
    pub fn has_fired(&self, fired_by: u64) -> bool {
        fired_by <= self.shared.fired_through.load(Acquire)
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
        self.refile(key, deadline).is_some()
    }

    /// [`reset`](TimerHandle::reset), returning (when the timer was pending) its new
    /// [`Filed::fired_by`].
    pub fn refile(&self, key: Key, deadline: Instant) -> Option<u64> {
        self.refile_at(key, self.shared.clock.deadline_to_tick(deadline))
    }

    /// [`refile`](TimerHandle::refile) for a deadline given as a tick of this wheel's clock,
    /// [`Clock::process`] (from [`nanos_to_tick`](super::nanos_to_tick)).
    pub fn refile_at(&self, key: Key, tick: u64) -> Option<u64> {
        let mut locked = self.shared.locked.lock();
        let ahead = tick > locked.wheel.elapsed();
        if !locked.wheel.reset(key, tick) {
            return None;
        }
        self.shared.lower_earliest(tick);
        self.wake_owner_if_needed(&locked, tick);
        Some(if ahead { tick } else { u64::MAX })
    }

    /// Cancels a timer (a no-op if it has fired or was cancelled already).
    pub fn cancel(&self, key: Key) {
        let waker = self.shared.locked.lock().wheel.cancel(key);
        // Dropped outside the lock: dropping a waker may run arbitrary code.
        drop(waker);
    }

    /// The word [`earliest_tick`](Self::earliest_tick) reads (`u64::MAX`: none), for a
    /// caller that watches it after every poll and keeps the reference: it lives as long as
    /// the wheel.
    pub fn earliest_word(&self) -> &std::sync::atomic::AtomicU64 {
        &self.shared.earliest
    }

    /// The earliest pending deadline's tick, read without the lock: never later than the
    /// true one (`None`: no timer pending, as far as the owner last knew).
    pub fn earliest_tick(&self) -> Option<u64> {
        Some(self.shared.earliest.load(Relaxed)).filter(|&t| t != u64::MAX)
    }

    /// The wheel's clock (ticks are its microseconds): [`Clock::process`].
    pub fn clock(&self) -> Clock {
        self.shared.clock
    }

    /// When another thread should next look at this wheel in case its owner stalls: the
    /// later of its earliest deadline and its owner's last firing pass, plus
    /// [`STALL_TICKS`]. `None` when no timer is pending. Read without the lock.
    ///
    /// It is given whether or not the owner is parked: an owner that wakes for its deadline
    /// may stall in the very task the timer woke, leaving its other timers behind.
    pub fn takeover_deadline(&self) -> Option<Instant> {
        let earliest = self.earliest_tick()?;
        let heartbeat = self.shared.heartbeat.load(Relaxed);
        let tick = earliest.max(heartbeat).saturating_add(STALL_TICKS);
        Some(
            self.shared
                .clock
                .tick_to_instant(tick)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400)),
        )
    }

    /// Fires this wheel's due timers on the calling thread if its owner is stalled: awake
    /// (not parked) and without a firing pass for [`STALL_TICKS`] ticks. Never waits: if
    /// the wheel's lock is held, nothing happens. Returns how many timers fired.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use weft_reactor::time::TimeDriver;
    /// use weft_reactor::ThreadParker;
    ///
    /// // The owner never parks (it is "stalled"); another thread fires its timer.
    /// let driver = TimeDriver::new(ThreadParker::new());
    /// let timers = driver.handle();
    /// timers.register(Instant::now() + Duration::from_millis(1), std::task::Waker::noop().clone());
    /// let rescuer = std::thread::spawn(move || {
    ///     while timers.take_over() == 0 {
    ///         std::thread::sleep(Duration::from_millis(1));
    ///     }
    ///     timers.is_empty()
    /// });
    /// assert!(rescuer.join().unwrap());
    /// drop(driver);
    /// ```
    pub fn take_over(&self) -> usize {
        let shared = &*self.shared;
        if shared.earliest.load(Relaxed) == u64::MAX || shared.owner_parked.load(Relaxed) {
            return 0;
        }
        let now_tick = shared.clock.now_tick(Instant::now());
        if now_tick < shared.heartbeat.load(Relaxed).saturating_add(STALL_TICKS)
            || now_tick < shared.earliest.load(Relaxed)
        {
            return 0;
        }
        let Some(mut locked) = shared.locked.try_lock() else {
            return 0;
        };
        // Re-checked under the lock: the owner may have fired or parked meanwhile.
        if shared.owner_parked.load(Relaxed)
            || now_tick < shared.heartbeat.load(Relaxed).saturating_add(STALL_TICKS)
        {
            return 0;
        }
        let mut fired = Vec::new();
        locked.wheel.poll_expired(now_tick, |_, w| fired.push(w));
        shared.fired_through.store(locked.wheel.elapsed(), Release);
        let earliest = locked.wheel.next_deadline();
        shared.earliest.store(earliest.unwrap_or(u64::MAX), Relaxed);
        drop(locked);
        let n = fired.len();
        for w in fired {
            crate::wake::wake(w);
        }
        n
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
        f.debug_struct("TimerHandle").finish_non_exhaustive()
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

    /// A driver that records each non-zero park timeout with the instant it saw it, and
    /// returns at once.
    struct Recording {
        inner: ThreadParker,
        parks: Vec<(Instant, Duration)>,
    }

    impl Driver for Recording {
        type Unpark = <ThreadParker as Driver>::Unpark;

        fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
            if let Some(t) = timeout.filter(|t| !t.is_zero()) {
                self.parks.push((Instant::now(), t));
            }
            Ok(())
        }

        fn unparker(&self) -> Self::Unpark {
            self.inner.unparker()
        }
    }

    #[test]
    fn parks_until_the_exact_deadline_not_a_whole_tick_later() {
        let mut d = TimeDriver::new(Recording {
            inner: ThreadParker::new(),
            parks: Vec::new(),
        });
        let h = d.handle();
        for us in [250u64, 1_000, 1_337, 5_000] {
            let deadline = Instant::now() + Duration::from_micros(us);
            let (_c, w) = counter();
            let key = h.register(deadline, w);
            let before = Instant::now();
            d.park(None).unwrap();
            let (seen, timeout) = *d.inner().parks.last().expect("parked with a timeout");
            // The driver computed `timeout` from a "now" between `before` and `seen`, so the
            // park ends between `before + timeout` and `seen + timeout`.
            assert!(seen + timeout >= deadline, "{us} us: the park ends early");
            // Rounded up to a microsecond tick, no more (1 ms ticks held a timer back until
            // the next whole millisecond).
            let slack = (before + timeout).saturating_duration_since(deadline);
            assert!(
                slack <= Duration::from_micros(1),
                "{us} us: the park ends {slack:?} after the deadline"
            );
            h.cancel(key);
        }
    }

    #[test]
    fn has_fired_only_once_a_pass_reached_a_timer_filed_ahead() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let (c, w) = counter();
        let ahead = h.file(Instant::now() + Duration::from_millis(2), w);
        assert_ne!(ahead.fired_by, u64::MAX);
        assert!(!h.has_fired(ahead.fired_by), "nothing has fired yet");
        // A timer filed behind the wheel's time (already due) waits for the next pass: no
        // tick says that it fired.
        d.park(Some(Duration::ZERO)).unwrap();
        let (_c2, w2) = counter();
        let behind = h.file(Instant::now() - Duration::from_millis(1), w2);
        assert_eq!(behind.fired_by, u64::MAX);
        assert!(!h.has_fired(behind.fired_by));
        while c.0.load(SeqCst) == 0 {
            d.park(None).unwrap();
        }
        assert!(h.has_fired(ahead.fired_by), "fired, and the pass says so");
        assert!(
            !h.update_waker(ahead.key, &Waker::noop().clone()),
            "its entry is gone"
        );
        // Moved timers get a new bound.
        let (_c3, w3) = counter();
        let moved = h.file(Instant::now() + Duration::from_secs(60), w3);
        let fired_by = h
            .refile(moved.key, Instant::now() + Duration::from_secs(120))
            .expect("pending");
        assert!(fired_by > moved.fired_by && !h.has_fired(fired_by));
        assert_eq!(
            h.refile(ahead.key, Instant::now()),
            None,
            "fired: not pending"
        );
        // Closing fires everything: every bound is reached.
        d.close();
        assert!(h.has_fired(fired_by) && h.has_fired(u64::MAX));
        assert!(h.is_empty());
    }

    #[test]
    fn file_unless_due_files_nothing_once_a_pass_reached_the_deadline() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let deadline = Instant::now() + Duration::from_millis(1);
        let (c, w) = counter();
        let filed = h
            .file_unless_due(deadline, &w)
            .expect("the deadline is ahead");
        assert!(!h.has_passed(filed.fired_by), "no pass has run");
        while c.0.load(SeqCst) == 0 {
            d.park(None).unwrap();
        }
        assert!(Instant::now() >= deadline);
        assert!(
            h.has_passed(filed.fired_by),
            "a pass fired it at its deadline"
        );
        // The wheel's time is past the deadline now: nothing is filed, nothing woken.
        let (c2, w2) = counter();
        assert_eq!(h.file_unless_due(deadline, &w2), None);
        assert!(h.is_empty());
        d.park(Some(Duration::ZERO)).unwrap();
        assert_eq!(c2.0.load(SeqCst), 0);
        // A deadline the wheel has not reached is filed, even if the clock has passed it.
        let late = h
            .file_unless_due(Instant::now() + Duration::from_secs(60), &w2)
            .expect("ahead");
        assert!(!h.has_passed(late.fired_by));
        // Closing fires timers early: `has_passed` then says nothing, and a closed wheel
        // files nothing but wakes at once (the caller must look elsewhere).
        d.close();
        assert!(h.has_fired(late.fired_by));
        assert!(!h.has_passed(late.fired_by), "fired early by close");
        assert!(!h.has_passed(filed.fired_by));
        let (c3, w3) = counter();
        let closed = h
            .file_unless_due(Instant::now() + Duration::from_secs(1), &w3)
            .expect("a closed wheel answers like file");
        assert_eq!(closed.fired_by, u64::MAX);
        assert_eq!(c3.0.load(SeqCst), 1, "woken at once");
        assert!(h.is_empty());
    }

    #[test]
    fn a_local_handle_stocks_references_and_batches_cancels() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let local = LocalTimerHandle::new(d.handle());
        let strong = || Arc::strong_count(&h.shared);
        let base = strong();
        // An empty stock clones; a handle given back is kept, not released.
        let a = local.get();
        assert_eq!(strong(), base + 1);
        let (c, w) = counter();
        let filed = a.file(Instant::now() + Duration::from_secs(60), w);
        let mut a = Some(a);
        assert!(local.recycle(&mut a, Some(filed.key)));
        assert!(a.is_none());
        assert_eq!(strong(), base + 1, "the reference went to the stock");
        // The cancel is queued, not yet carried out.
        assert_eq!(h.len(), 1);
        local.flush_cancels();
        assert!(h.is_empty());
        // The stock hands its reference out again, without a clone.
        let b = local.get();
        assert_eq!(strong(), base + 1);
        // A handle to another wheel is left to the caller.
        let other = TimeDriver::new(ThreadParker::new());
        let mut o = Some(other.handle());
        assert!(!local.recycle(&mut o, None));
        assert!(o.is_some());
        // A full batch is carried out at once.
        let mut keys = Vec::new();
        for _ in 0..CANCEL_BATCH {
            let (_c, w) = counter();
            keys.push(b.register(Instant::now() + Duration::from_secs(60), w));
        }
        assert_eq!(h.len(), CANCEL_BATCH);
        for key in keys {
            let mut one = Some(local.get());
            assert!(local.recycle(&mut one, Some(key)));
        }
        assert!(h.is_empty(), "the batch filled and was carried out");
        drop(b);
        // Dropping the local handle flushes and releases its whole stock.
        let (_c, w) = counter();
        let last = h.register(Instant::now() + Duration::from_secs(60), w);
        let mut one = Some(local.get());
        assert!(local.recycle(&mut one, Some(last)));
        assert_eq!(h.len(), 1);
        drop(local);
        assert!(h.is_empty());
        assert_eq!(strong(), base - 2, "its own two references too");
        d.park(Some(Duration::ZERO)).unwrap();
        assert_eq!(c.0.load(SeqCst), 0, "a cancelled timer never fired");
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
