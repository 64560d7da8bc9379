//! The time driver: a [`Wheel`] of wakers wrapped around any other [`Driver`].
//!
//! The wheel belongs to one thread (the driver's owner: a worker, or a thread in
//! `block_on`), which fires due timers whenever it parks — including the zero-timeout parks a
//! busy worker makes on a fixed cadence — and parks no longer than its earliest deadline. The
//! I/O layer underneath never knows about timers.
//!
//! Other threads reach the wheel through a [`TimerHandle`], under the wheel's mutex (one per
//! driver, not a global lock): a timer registered on worker A and then polled or dropped by
//! a task that moved to worker B updates or cancels its entry in A's wheel directly. The
//! one process-wide lock guards the list of live wheels that [`TimerHandle::find`] searches
//! (taken when a driver is created or dropped, and by a `find`).
//!
//! # Registration by the owner
//!
//! The owner registers without the lock and without touching a reference count
//! ([`TimerHandle::register_owned`], `unsafe`: owner thread only): the wheel keeps an
//! owner-only side, reached without a lock, holding keys the owner reserved in the wheel
//! ([`Wheel::reserve_key`]) and a queue of registrations made with them, and a queue of
//! cancels ([`TimerHandle::cancel_owned`]). The owner files both queues under one lock at
//! every firing pass (before it fires anything), when a queue reaches 256 entries or the
//! reserve runs out (then it reserves 256 more), and — in the runtime — after every task it
//! polls that queued a registration ([`TimerHandle::flush_owned`]; queued cancels alone
//! wait, since they only release wakers: a take-over by another thread meanwhile may fire
//! such a timer, a spurious wake). A key is valid from the moment it is handed out: another thread that polls
//! the timer before it is filed files it itself with its own waker
//! ([`TimerHandle::update_or_file`]; the owner's fill then finds the key filed and drops
//! its copy), one that moves it records the new deadline for the fill
//! ([`Wheel::reset_reserved`]), and one that cancels it frees the reservation, so the
//! fill files nothing. Until it is filed, a timer is not counted by
//! [`TimerHandle::len`] and a take-over does not see it.
//!
//! # Protocol with the owner's park
//!
//! 1. Before parking, the owner files its queues (above), then (holding the lock) fires due timers, reads the earliest
//!    deadline and records it as `parked_until`, then parks with that timeout.
//! 2. After parking it fires due timers and sets `parked_until` to 0 ("awake").
//! 3. A timer inserted or moved earlier by a *non-owner* compares its deadline with
//!    `parked_until` under the same lock, and unparks the owner if the owner would otherwise
//!    sleep past it. An awake owner re-reads the wheel before its next park anyway.
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

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
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

/// How many keys the owner reserves at a time, and how many registrations or cancels it
/// queues before it files them (see "Registration by the owner").
const OWNER_BATCH: usize = 256;

/// What a flush of the owner's queues is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// After a poll: file registrations, so that a take-over sees them; queued cancels wait
    /// (they only release wakers, and every firing pass applies them before it fires).
    Registrations,
    /// A firing pass, a close, a full queue: everything queued.
    All,
    /// The owner is out of reserved keys, or its queue is full: everything, and reserve more.
    Refill,
}

/// The owner's side of a wheel: touched only by the owner thread, without a lock.
#[derive(Default)]
struct Local {
    /// Keys reserved in the wheel for the owner's next registrations.
    reserve: Vec<Key>,
    /// Registrations not yet filed: key, tick, waker.
    staged: Vec<(Key, u64, Waker)>,
    /// Cancels not yet applied.
    cancels: Vec<Key>,
    /// Set by [`TimeDriver::close`]: the owner registers through the lock from then on.
    closed: bool,
}

struct Shared {
    /// Unique among the drivers of this process, never reused: names the wheel in a
    /// [`Key`]'s owner (see [`TimerHandle::id`]).
    id: u64,
    /// The owner's unlocked side (see "Registration by the owner").
    local: UnsafeCell<Local>,
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
}

// SAFETY: every field but `local` is `Sync`; `local` is reached only through the `unsafe`
// owner-only methods of `TimerHandle` (`register_owned`, `cancel_owned`, `flush_owned`) and
// through `TimeDriver`'s `&mut self` methods, whose callers guarantee (or, for the driver, are)
// the owner thread, so it is never touched from two threads.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        registry().lock().retain(|(id, _)| *id != self.id);
    }
}

/// Every live wheel by id, so that a handle can be found from the id a timer recorded (on
/// the rare path where the timer is touched on a thread that knows no handle to its wheel).
fn registry() -> &'static Mutex<Vec<(u64, Weak<Shared>)>> {
    static REGISTRY: Mutex<Vec<(u64, Weak<Shared>)>> = Mutex::new(Vec::new());
    &REGISTRY
}

impl Shared {
    /// After a timer was filed at `tick` (under the lock).
    fn lower_earliest(&self, tick: u64) {
        if tick < self.earliest.load(Relaxed) {
            self.earliest.store(tick, Relaxed);
        }
    }

    /// Runs `f` on the owner's side.
    ///
    /// # Safety
    ///
    /// Only on the owner thread, and `f` must not run code it does not control (wake, clone
    /// or drop a waker): such code may reach this wheel again, and the borrow of `local` is
    /// exclusive.
    unsafe fn with_local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        // SAFETY: the caller is the owner thread, the only one that touches `local`, and `f`
        // calls nothing that could borrow it again.
        f(unsafe { &mut *self.local.get() })
    }

    /// Files the owner's staged registrations and applies its queued cancels, under one
    /// lock, if `mode` calls for it; with [`Flush::Refill`], also tops up its reserve of keys.
    ///
    /// # Safety
    ///
    /// Only on the owner thread.
    unsafe fn flush_owned(&self, mode: Flush) {
        let refill = mode == Flush::Refill;
        // The queues are taken out of `local` while the lock is held and put back before any
        // waker is dropped or woken (arbitrary code, which may register or cancel on this
        // wheel again); the wheel's own operations in between run no user code.
        // SAFETY: owner thread (the caller's contract); moving vectors runs no user code.
        let taken = unsafe {
            self.with_local(|l| {
                let needed = match mode {
                    Flush::Registrations => !l.staged.is_empty(),
                    Flush::All => !l.staged.is_empty() || !l.cancels.is_empty(),
                    Flush::Refill => true,
                };
                needed.then(|| {
                    (
                        std::mem::take(&mut l.staged),
                        std::mem::take(&mut l.cancels),
                        std::mem::take(&mut l.reserve),
                        l.closed,
                    )
                })
            })
        };
        let Some((mut staged, mut cancels, mut reserve, closed)) = taken else {
            return;
        };
        let mut dead: Vec<Waker> = Vec::new();
        let mut woken: Vec<Waker> = Vec::new();
        {
            let mut locked = self.locked.lock();
            for (key, tick, waker) in staged.drain(..) {
                if locked.closed {
                    locked.wheel.unreserve(key);
                    woken.push(waker);
                    continue;
                }
                match locked.wheel.fill(key, tick, waker) {
                    Ok(tick) => self.lower_earliest(tick),
                    // Cancelled, or filed already by another thread that polled the timer.
                    Err(waker) => dead.push(waker),
                }
            }
            for key in cancels.drain(..) {
                match locked.wheel.cancel(key) {
                    Some(waker) => dead.push(waker),
                    None => drop(locked.wheel.unreserve(key)),
                }
            }
            if refill && !closed && !locked.closed {
                while reserve.len() < OWNER_BATCH {
                    reserve.push(locked.wheel.reserve_key());
                }
            }
        }
        // SAFETY: owner thread; only vectors move (the ones in `local` are still the empty
        // ones `take` left, since no user code ran).
        unsafe {
            self.with_local(|l| {
                l.staged = staged;
                l.cancels = cancels;
                l.reserve = reserve;
            })
        };
        drop(dead);
        for w in woken {
            crate::wake::wake(w);
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
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let unpark = Box::new(inner.unparker());
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let shared = Arc::new(Shared {
            id,
            local: UnsafeCell::new(Local::default()),
            locked: Mutex::new(Locked {
                wheel: Wheel::new(),
                parked_until: 0,
                closed: false,
            }),
            clock: Clock::new(),
            unpark,
            heartbeat: AtomicU64::new(0),
            owner_parked: AtomicBool::new(false),
            earliest: AtomicU64::new(u64::MAX),
        });
        registry().lock().push((id, Arc::downgrade(&shared)));
        TimeDriver {
            inner,
            shared,
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
        // SAFETY: the driver's `&mut self` methods run on its owner thread.
        unsafe { self.shared.flush_owned(Flush::All) };
        // SAFETY: as above; no other borrow of `local` is live (the flush returned).
        unsafe { (*self.shared.local.get()).closed = true };
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
        // SAFETY: the driver's `&mut self` methods run on its owner thread.
        unsafe { self.shared.flush_owned(Flush::All) };
        let now = Instant::now();
        let mut locked = self.shared.locked.lock();
        let now_tick = self.shared.clock.now_tick(now);
        let fired = &mut self.fired;
        locked.wheel.poll_expired(now_tick, |_, w| fired.push(w));
        let shared = &*self.shared;
        shared.heartbeat.store(now_tick, Relaxed);
        let earliest = locked.wheel.next_deadline();
        shared.earliest.store(earliest.unwrap_or(u64::MAX), Relaxed);
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
        self.shared.lower_earliest(tick);
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

    /// For a timer polled again while pending, on any thread: makes `waker` the one woken
    /// when `key` fires, as [`update_waker`](TimerHandle::update_waker); and if `key` was
    /// registered by the owner ([`register_owned`](TimerHandle::register_owned)) but not yet
    /// filed, files it now at `deadline` (the timer's current deadline) with `waker`, so
    /// that it fires even if the owner stalls before filing it. Returns `false` if the timer
    /// has fired or been cancelled, or the wheel is closed: then it must be registered
    /// again.
    pub fn update_or_file(&self, key: Key, deadline: Instant, waker: &Waker) -> bool {
        let tick = self.shared.clock.deadline_to_tick(deadline);
        let mut locked = self.shared.locked.lock();
        if let Some(w) = locked.wheel.get_mut(key) {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
            return true;
        }
        if locked.closed || !locked.wheel.is_reserved(key) {
            locked.wheel.unreserve(key);
            return false;
        }
        // Cloned under the lock: a waker's clone runs no code of this wheel's (the runtime's
        // wakers are reference counts).
        match locked.wheel.fill(key, tick, waker.clone()) {
            Ok(tick) => {
                self.shared.lower_earliest(tick);
                self.wake_owner_if_needed(&locked, tick);
                true
            }
            Err(_) => false,
        }
    }

    /// Moves a pending timer to `deadline`. Returns `false` if it has fired or been cancelled.
    pub fn reset(&self, key: Key, deadline: Instant) -> bool {
        let tick = self.shared.clock.deadline_to_tick(deadline);
        let mut locked = self.shared.locked.lock();
        let moved = locked.wheel.reset(key, tick);
        if moved {
            self.shared.lower_earliest(tick);
            self.wake_owner_if_needed(&locked, tick);
        }
        // Registered by the owner and not filed yet: the fill files it at `tick`.
        moved || (!locked.closed && locked.wheel.reset_reserved(key, tick))
    }

    /// Cancels a timer (a no-op if it has fired or was cancelled already), from any thread.
    pub fn cancel(&self, key: Key) {
        let waker = {
            let mut locked = self.shared.locked.lock();
            let waker = locked.wheel.cancel(key);
            if waker.is_none() {
                // Registered by the owner and not filed yet: the fill then files nothing.
                locked.wheel.unreserve(key);
            }
            waker
        };
        // Dropped outside the lock: dropping a waker may run arbitrary code.
        drop(waker);
    }

    /// This wheel's id: unique among the drivers of the process, never reused.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// A handle to the live wheel whose [`id`](TimerHandle::id) is `id`, if any, for a
    /// thread that knows no handle to it (a slow path: it looks through every wheel under a
    /// process-wide lock).
    pub fn find(id: u64) -> Option<TimerHandle> {
        let shared = registry()
            .lock()
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, w)| w.upgrade())?;
        Some(TimerHandle {
            shared,
            owner: None,
        })
    }

    /// Whether this is the handle of the thread that parks the driver (from
    /// [`TimeDriver::handle`] on that thread), the one the owner-only calls need.
    pub fn is_owner_thread(&self) -> bool {
        self.is_owner()
    }

    /// Registers a timer for the owner thread without a lock or a reference count: it takes
    /// a key reserved earlier and queues the registration, filed at the owner's next
    /// [`flush_owned`](TimerHandle::flush_owned) or firing pass (in batches, one lock each).
    /// Until then the timer is in the owner's queue, not the wheel: [`len`](TimerHandle::len)
    /// does not count it and a stalled owner's [`take_over`](TimerHandle::take_over) does not
    /// see it, unless another thread files it by polling it
    /// ([`update_or_file`](TimerHandle::update_or_file)). Every other operation on the key
    /// works from any thread as for [`register`](TimerHandle::register)'s keys. On a closed
    /// wheel it is [`register`](TimerHandle::register).
    ///
    /// # Safety
    ///
    /// Only on the thread that parks this wheel's driver (its owner).
    pub unsafe fn register_owned(&self, deadline: Instant, waker: &Waker) -> Key {
        // Cloned before `local` is borrowed: a clone may run arbitrary code.
        let waker = waker.clone();
        let tick = self.shared.clock.deadline_to_tick(deadline);
        loop {
            // SAFETY: owner thread (the caller's contract); pushing a waker moves it, runs no
            // user code.
            let done = unsafe {
                self.shared.with_local(|l| {
                    if l.closed {
                        return Some(None);
                    }
                    if l.staged.len() >= OWNER_BATCH {
                        return None;
                    }
                    let key = l.reserve.pop()?;
                    Some(Some(key))
                })
            };
            match done {
                Some(Some(key)) => {
                    // SAFETY: as above.
                    unsafe {
                        self.shared
                            .with_local(|l| l.staged.push((key, tick, waker)))
                    };
                    return key;
                }
                Some(None) => return self.register(deadline, waker),
                // Out of keys, or the queue is full: file the queue, reserve more.
                // SAFETY: owner thread (the caller's contract).
                None => unsafe { self.shared.flush_owned(Flush::Refill) },
            }
        }
    }

    /// Cancels a timer on the owner thread without a lock: the cancel is queued and applied
    /// before the owner's next firing pass fires anything, or at the next
    /// [`flush_owned`](TimerHandle::flush_owned) that files a registration (the waker is
    /// dropped then). A no-op if it has fired or was cancelled already.
    ///
    /// # Safety
    ///
    /// Only on the thread that parks this wheel's driver (its owner).
    pub unsafe fn cancel_owned(&self, key: Key) {
        // SAFETY: owner thread (the caller's contract); pushing a key runs no user code.
        let full = unsafe {
            self.shared.with_local(|l| {
                l.cancels.push(key);
                l.cancels.len() >= OWNER_BATCH
            })
        };
        if full {
            // SAFETY: as above.
            unsafe { self.shared.flush_owned(Flush::All) };
        }
    }

    /// Files the owner's queued registrations, under one lock, with any queued cancels; a
    /// no-op when no registration is queued (queued cancels alone wait for the next firing
    /// pass, which applies them before it fires anything, or for their queue to fill). A
    /// worker calls it after each task it polls, so that a timer a task registered is in the
    /// wheel (and seen by a take-over) by the time the next task runs.
    ///
    /// # Safety
    ///
    /// Only on the thread that parks this wheel's driver (its owner).
    pub unsafe fn flush_owned(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.shared.flush_owned(Flush::Registrations) }
    }

    /// The earliest pending deadline's tick, read without the lock: never later than the
    /// true one (`None`: no timer pending, as far as the owner last knew).
    pub fn earliest_tick(&self) -> Option<u64> {
        Some(self.shared.earliest.load(Relaxed)).filter(|&t| t != u64::MAX)
    }

    /// The wheel's clock (ticks are its microseconds).
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
    /// let timers = driver.remote_handle();
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
    fn owned_registrations_file_in_batches_and_fire_never_early() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        assert!(h.is_owner_thread());
        let start = Instant::now();
        let (c, w) = counter();
        // More than a batch, so that some are filed while registering.
        let n = OWNER_BATCH * 2 + 3;
        let keys: Vec<Key> = (0..n)
            // SAFETY: this thread owns `d`.
            .map(|i| unsafe { h.register_owned(start + Duration::from_micros(500 + i as u64), &w) })
            .collect();
        assert!(
            h.len() < n,
            "the last registrations wait in the owner's queue"
        );
        // SAFETY: as above.
        unsafe { h.flush_owned() };
        assert_eq!(h.len(), n);
        // Half cancelled without the lock, applied at the next pass.
        for k in keys.iter().step_by(2) {
            // SAFETY: as above.
            unsafe { h.cancel_owned(*k) };
        }
        while c.0.load(SeqCst) < n / 2 {
            d.park(None).unwrap();
        }
        let last = start + Duration::from_micros(500 + n as u64 - 1);
        assert!(Instant::now() >= last, "a timer fired early");
        assert_eq!(c.0.load(SeqCst), n / 2);
        assert!(h.is_empty());
    }

    #[test]
    fn an_owned_registration_polled_elsewhere_before_filing_is_filed_there_once() {
        let d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let remote = d.remote_handle();
        let deadline = Instant::now() + Duration::from_millis(1);
        let (owner_c, owner_w) = counter();
        let (c, w) = counter();
        // SAFETY: this thread owns `d`.
        let key = unsafe { h.register_owned(deadline, &owner_w) };
        // SAFETY: as above.
        let key2 = unsafe { h.register_owned(deadline, &owner_w) };
        let later = Instant::now() + Duration::from_secs(60);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Another thread polls the first (filing it with its waker) and moves the
                // second, both before the owner files them.
                assert!(remote.update_or_file(key, deadline, &w));
                assert!(remote.reset(key2, later));
                assert_eq!(remote.len(), 1);
            });
        });
        // The owner's flush files the second at its new deadline, not the first again.
        // SAFETY: as above.
        unsafe { h.flush_owned() };
        assert_eq!(h.len(), 2);
        // The owner never parks: a take-over fires the first, with the other thread's waker.
        let rescuer = std::thread::spawn(move || {
            while remote.take_over() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(Instant::now() >= deadline);
            remote
        });
        let remote = rescuer.join().unwrap();
        assert_eq!(c.0.load(SeqCst), 1);
        assert_eq!(owner_c.0.load(SeqCst), 0, "filed twice, or not moved");
        assert_eq!(remote.len(), 1);
        remote.cancel(key2);
        assert!(remote.is_empty());
        drop(d);
    }

    #[test]
    fn an_owned_registration_cancelled_elsewhere_before_filing_never_fires() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let remote = d.remote_handle();
        let (c, w) = counter();
        // SAFETY: this thread owns `d`.
        let key = unsafe { h.register_owned(Instant::now() + Duration::from_millis(1), &w) };
        std::thread::scope(|s| {
            s.spawn(|| remote.cancel(key));
        });
        std::thread::sleep(Duration::from_millis(2));
        d.park(Some(Duration::ZERO)).unwrap();
        assert_eq!(c.0.load(SeqCst), 0);
        assert!(h.is_empty());
        assert!(!remote.update_or_file(key, Instant::now(), &w));
    }

    #[test]
    fn close_wakes_owned_registrations_not_yet_filed() {
        let mut d = TimeDriver::new(ThreadParker::new());
        let h = d.handle();
        let (c, w) = counter();
        // SAFETY: this thread owns `d`.
        let key = unsafe { h.register_owned(Instant::now() + Duration::from_secs(60), &w) };
        d.close();
        assert_eq!(c.0.load(SeqCst), 1);
        assert!(!h.update_or_file(key, Instant::now() + Duration::from_secs(60), &w));
        // After the close, an owned registration is woken at once.
        // SAFETY: as above.
        unsafe { h.register_owned(Instant::now() + Duration::from_secs(60), &w) };
        assert_eq!(c.0.load(SeqCst), 2);
        assert!(h.is_empty());
    }

    #[test]
    fn a_handle_is_found_by_id_while_its_wheel_lives() {
        let d = TimeDriver::new(ThreadParker::new());
        let h = d.remote_handle();
        let id = h.id();
        assert_ne!(id, TimeDriver::new(ThreadParker::new()).handle().id());
        assert_eq!(TimerHandle::find(id).map(|f| f.id()), Some(id));
        drop((d, h));
        assert!(TimerHandle::find(id).is_none());
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
