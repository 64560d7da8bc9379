//! `setTimeout` and `setInterval`: timers whose expiry queues a callback, with no task.
//!
//! The reactor's wheel stores a `std::task::Waker` per timer and knows nothing else. A
//! `set_timeout` timer's waker is a raw waker that owns one strong count of the timer's
//! shared state (so the timer is one allocation); a `set_interval` timer's is an `Arc`
//! implementing `Wake`. When the wheel fires it, the wake takes the callback out of its
//! slot and [`defer`](super::defer)s it, so timer callbacks
//! run from the run queue like every other callback (never inside the timer driver, where a
//! slow or panicking callback would stall the wheel).
//!
//! Cancelling empties the slot and removes the wheel entry; whichever of fire and cancel
//! takes the slot first decides, so a cancelled timer's callback never runs and a fired
//! one's is never cancelled halfway.
//!
//! # No reference cycles through the wheel
//!
//! The wheel holds each pending timer's waker, and the runtime holds the wheels (a handle
//! per worker), so nothing a waker reaches may hold the runtime or a wheel strongly: that
//! would be a cycle that outlives the runtime, keeping it and the callback alive forever.
//! So a timer reaches its runtime and its wheel through weak handles, and the waker the
//! wheel holds owns a count of the timer's own state, whose drop without firing (the wheel dropped with the
//! runtime, or the entry cancelled) empties the callback slot — which also breaks the cycles
//! user code makes by keeping a timer's handle in its own callback.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::{
    AtomicBool,
    Ordering::{AcqRel, Relaxed},
};
use std::sync::{Arc, Weak};
use std::task::{RawWaker, RawWakerVTable, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use weft_reactor::time::{Key, WeakTimerHandle};

use crate::scheduler::{Handle, Shared};

/// Queues `f` on the runtime behind `rt`, or drops it if the runtime is gone or shutting
/// down (its wheels are closed then, and wake every timer early: see `time.rs`).
fn defer_on<F: FnOnce() + Send + 'static>(rt: &Weak<Shared>, f: F) {
    match rt.upgrade() {
        Some(shared) if !shared.is_shutdown() => Handle { shared }.defer(f),
        _ => drop(f),
    }
}

/// Whether the runtime behind `rt` still runs callbacks.
fn is_running(rt: &Weak<Shared>) -> bool {
    rt.upgrade().is_some_and(|s| !s.is_shutdown())
}

/// A [`set_timeout`] timer: its callback and its runtime, in one allocation shared by the
/// wheel's waker and the [`TimeoutHandle`].
struct OneShot<F> {
    /// Set by whoever takes the callback out: the firing, the cancel, or the wheel dropping
    /// its waker unfired.
    taken: AtomicBool,
    /// Written at creation; moved out once, by whoever set `taken`.
    f: UnsafeCell<ManuallyDrop<F>>,
    rt: Weak<Shared>,
}

// SAFETY: `f` is reached only by the one party that sets `taken` (an atomic swap), which
// moves it out; `F: Send` may be moved (and dropped) on any thread.
unsafe impl<F: Send> Sync for OneShot<F> {}

impl<F> OneShot<F> {
    /// Takes the callback out, if nobody has.
    fn take_f(&self) -> Option<F> {
        if self.taken.swap(true, AcqRel) {
            return None;
        }
        // SAFETY: we set `taken`, so the callback is ours alone, moved out once, here; it
        // was written before the `Arc` was shared (or our swap acquired that write).
        Some(unsafe { ManuallyDrop::take(&mut *self.f.get()) })
    }
}

impl<F> Drop for OneShot<F> {
    fn drop(&mut self) {
        if !*self.taken.get_mut() {
            // SAFETY: nobody took it, and nobody else can reach it now.
            unsafe { ManuallyDrop::drop(self.f.get_mut()) }
        }
    }
}

/// The waker the wheel holds for a [`set_timeout`] timer: one strong count of the timer's
/// `OneShot`, with a vtable whose `wake` defers the callback and whose `drop` (the timer
/// cancelled, or the wheel gone with its runtime, without firing) drops it unrun. The wheel
/// takes its waker out to fire or cancel it and never clones it; a clone would act the
/// same (its drop, too, empties the slot).
struct ShotWaker<F>(PhantomData<F>);

impl<F: FnOnce() + Send + 'static> ShotWaker<F> {
    const VTABLE: RawWakerVTable =
        RawWakerVTable::new(Self::clone, Self::wake, Self::wake_by_ref, Self::drop);

    /// The wheel's waker for `shot`, owning one new strong count of it.
    fn waker(shot: &Arc<OneShot<F>>) -> Waker {
        let data = Arc::into_raw(shot.clone()).cast::<()>();
        // SAFETY: `data` is a strong count of an `Arc<OneShot<F>>`, which the vtable's
        // functions treat as such (and `OneShot<F>` is `Send + Sync`).
        unsafe { Waker::from_raw(RawWaker::new(data, &Self::VTABLE)) }
    }

    /// # Safety
    ///
    /// `data` is a strong count of an `Arc<OneShot<F>>` (a waker's).
    unsafe fn clone(data: *const ()) -> RawWaker {
        // SAFETY: the caller's count keeps the `Arc` alive; the new waker owns the new one.
        unsafe { Arc::increment_strong_count(data.cast::<OneShot<F>>()) };
        RawWaker::new(data, &Self::VTABLE)
    }

    /// # Safety
    ///
    /// As for `clone`; this gives the count up.
    unsafe fn wake(data: *const ()) {
        // SAFETY: the waker's count, given up here.
        let shot = unsafe { Arc::from_raw(data.cast::<OneShot<F>>()) };
        if let Some(f) = shot.take_f() {
            defer_on(&shot.rt, f);
        }
    }

    /// # Safety
    ///
    /// As for `clone`.
    unsafe fn wake_by_ref(data: *const ()) {
        // SAFETY: the waker's count keeps the `Arc` alive while we borrow it.
        let shot = unsafe { &*data.cast::<OneShot<F>>() };
        if let Some(f) = shot.take_f() {
            defer_on(&shot.rt, f);
        }
    }

    /// # Safety
    ///
    /// As for `wake`.
    unsafe fn drop(data: *const ()) {
        // SAFETY: the waker's count, given up here.
        let shot = unsafe { Arc::from_raw(data.cast::<OneShot<F>>()) };
        // Unfired: the callback is dropped unrun (here, not when the handle goes, so that a
        // handle kept in the callback is no cycle).
        drop(shot.take_f());
    }
}

trait Slot: Send + Sync {
    /// Empties the slot; `true` if it still held the callback.
    fn take(&self) -> bool;
}

impl<F: Send> Slot for OneShot<F> {
    fn take(&self) -> bool {
        self.take_f().is_some()
    }
}

/// The handle [`set_timeout`] returns: `clearTimeout`. Dropping it does **not** cancel the
/// timer (as in JavaScript, the id is not the timer).
pub struct TimeoutHandle {
    slot: Arc<dyn Slot>,
    /// Weak, so that a handle kept in the timer's own callback (or anything it reaches) is
    /// no cycle through the wheel.
    timer: WeakTimerHandle,
    key: Key,
}

impl TimeoutHandle {
    /// Cancels the timer. Returns `true` if this stopped the callback from running,
    /// `false` if it had already been queued (or run) or cancelled.
    pub fn cancel(self) -> bool {
        let stopped = self.slot.take();
        if let Some(timer) = self.timer.upgrade() {
            timer.cancel(self.key);
        }
        stopped
    }
}

impl super::Cancel for TimeoutHandle {
    fn cancel(self) {
        TimeoutHandle::cancel(self);
    }
}

impl fmt::Debug for TimeoutHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutHandle")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Runs `f` once, after `delay` (never earlier): `setTimeout`.
///
/// The timer goes to the calling worker's wheel (or, off the workers, to one of theirs);
/// when it fires, `f` is [`defer`](super::defer)red onto the firing worker's queue. A zero
/// delay fires at the wheel's next firing pass at the earliest, and its callback is queued
/// behind the callbacks deferred before it, so they run first — the article's
/// `setTimeout(..., 0)`.
///
/// # Panics
///
/// Outside a runtime.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let start = Instant::now();
/// rt.block_on(async move {
///     weft_runtime::callback::set_timeout(Duration::from_millis(5), move || {
///         tx.send(start.elapsed()).unwrap();
///     });
/// });
/// assert!(rx.recv().unwrap() >= Duration::from_millis(5));
///
/// // Cancelled before it fires: the callback never runs.
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// rt.block_on(async move {
///     let t = weft_runtime::callback::set_timeout(Duration::from_millis(5), move || {
///         tx.send(()).unwrap();
///     });
///     assert!(t.cancel());
/// });
/// assert!(rx.recv().is_err());
/// ```
#[track_caller]
pub fn set_timeout<F>(delay: Duration, f: F) -> TimeoutHandle
where
    F: FnOnce() + Send + 'static,
{
    let rt = crate::context::with_current(|h| Arc::downgrade(&h.shared));
    let Some(rt) = rt else {
        drop(f);
        panic!(
            "weft::callback::set_timeout: {}",
            crate::scheduler::NO_RUNTIME
        )
    };
    let shot = Arc::new(OneShot {
        taken: AtomicBool::new(false),
        f: UnsafeCell::new(ManuallyDrop::new(f)),
        rt,
    });
    let (timer, key) = crate::time::file_after(delay, ShotWaker::waker(&shot));
    TimeoutHandle {
        slot: shot,
        timer,
        key,
    }
}

struct Repeat<F> {
    inner: Mutex<RepeatState<F>>,
    period: Duration,
    rt: Weak<Shared>,
}

struct RepeatState<F> {
    /// `None` while a tick runs it (or once cancelled).
    f: Option<F>,
    cancelled: bool,
    /// The pending wheel entry.
    entry: Option<(WeakTimerHandle, Key)>,
    /// When the pending tick is due.
    next: Instant,
}

/// What the wheel holds for one tick of a [`set_interval`] timer (a new one per tick).
/// Dropped unfired — the entry cancelled, or the wheel gone with its runtime — it stops the
/// interval, so that a callback that keeps its own handle is not kept alive forever.
struct TickWaker<F> {
    repeat: Arc<Repeat<F>>,
    fired: AtomicBool,
}

impl<F: FnMut() + Send + 'static> Repeat<F> {
    /// Files the next tick in `timer`'s wheel; called with the state locked.
    fn arm(self: &Arc<Self>, st: &mut RepeatState<F>, timer: &weft_reactor::TimerHandle) {
        let waker = Waker::from(Arc::new(TickWaker {
            repeat: self.clone(),
            fired: AtomicBool::new(false),
        }));
        let key = timer.register(st.next, waker);
        st.entry = Some((timer.downgrade(), key));
    }

    /// One tick, from the run queue.
    fn tick(&self) {
        // Taken out while it runs, so that the callback may cancel its own interval.
        let f = self.inner.lock().f.take();
        let Some(mut f) = f else { return };
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut f)) {
            // The callback is in an unknown state: stop rather than tick on with it (or tick
            // on without it, forever).
            self.stop();
            drop(f);
            std::panic::resume_unwind(panic);
        }
        let mut st = self.inner.lock();
        if !st.cancelled {
            st.f = Some(f);
            return;
        }
        drop(st);
        drop(f);
    }
}

impl<F: FnMut() + Send + 'static> Wake for TickWaker<F> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.fired.swap(true, Relaxed) {
            return;
        }
        let repeat = &self.repeat;
        if !is_running(&repeat.rt) {
            // Shut down: no tick would run, so none is armed (it would tick on forever).
            repeat.stop();
            return;
        }
        // Re-arm first (on this thread's wheel: the one that fired), then queue the tick.
        let now = Instant::now();
        {
            let mut st = repeat.inner.lock();
            if st.cancelled {
                return;
            }
            // Ticks missed while the worker was busy are skipped, not burst: the next one
            // is the first multiple of the period after now (JavaScript's behaviour).
            let mut next = st.next + repeat.period;
            if next <= now {
                let period = repeat.period.as_nanos().max(1);
                let periods = now.duration_since(st.next).as_nanos() / period + 1;
                next = u64::try_from(periods * period)
                    .ok()
                    .and_then(|nanos| st.next.checked_add(Duration::from_nanos(nanos)))
                    .unwrap_or_else(|| crate::time::deadline_after(Duration::MAX));
            }
            st.next = next;
            repeat.arm(&mut st, &crate::time::current_timer());
        }
        let me = repeat.clone();
        defer_on(&repeat.rt, move || me.tick());
    }
}

impl<F> Drop for TickWaker<F> {
    fn drop(&mut self) {
        if !*self.fired.get_mut() {
            self.repeat.stop();
        }
    }
}

trait Stop: Send + Sync {
    fn stop(&self) -> bool;
}

impl<F: Send> Stop for Repeat<F> {
    fn stop(&self) -> bool {
        Repeat::stop(self)
    }
}

impl<F> Repeat<F> {
    /// Cancels the interval; `true` if it was live.
    fn stop(&self) -> bool {
        let (was_live, f, entry) = {
            let mut st = self.inner.lock();
            let was_live = !std::mem::replace(&mut st.cancelled, true);
            (was_live, st.f.take(), st.entry.take())
        };
        if let Some((timer, key)) = entry {
            if let Some(timer) = timer.upgrade() {
                timer.cancel(key);
            }
        }
        drop(f);
        was_live
    }
}

/// The handle [`set_interval`] returns: `clearInterval`. Dropping it does not stop the
/// interval.
pub struct IntervalHandle {
    repeat: Arc<dyn Stop>,
}

impl IntervalHandle {
    /// Stops the interval: no tick starts after this returns (one already running
    /// finishes). Returns `false` if it was stopped already.
    ///
    /// Takes `&self`, so that the interval's own callback can stop it through a shared
    /// handle. Note that on an owned handle with [`Cancel`](super::Cancel) in scope,
    /// `handle.cancel()` resolves to `Cancel::cancel` (which consumes the handle and
    /// returns nothing); write `IntervalHandle::cancel(&handle)` there to get the `bool`.
    pub fn cancel(&self) -> bool {
        self.repeat.stop()
    }
}

impl super::Cancel for IntervalHandle {
    fn cancel(self) {
        IntervalHandle::cancel(&self);
    }
}

impl fmt::Debug for IntervalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntervalHandle").finish_non_exhaustive()
    }
}

/// Runs `f` every `period` until cancelled: `setInterval`.
///
/// The first tick is one period from now. Ticks are never early; ticks missed because the
/// runtime was busy are skipped (the next one keeps the original phase), so a slow
/// callback never causes a burst. `f` may cancel its own interval. If `f` panics, the
/// interval stops (the panic is reported like any callback's), and `cancel` then returns
/// `false`.
///
/// # Panics
///
/// Outside a runtime, or if `period` is zero.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let ticks = Arc::new(AtomicU32::new(0));
/// rt.block_on(async move {
///     let t = ticks.clone();
///     let handle = Arc::new(std::sync::OnceLock::new());
///     let h = handle.clone();
///     let iv = weft_runtime::callback::set_interval(Duration::from_millis(1), move || {
///         if t.fetch_add(1, SeqCst) + 1 == 3 {
///             h.get().map(|h: &weft_runtime::callback::IntervalHandle| h.cancel());
///             tx.send(()).unwrap();
///         }
///     });
///     handle.set(iv).unwrap();
/// });
/// rx.recv().unwrap();
/// ```
#[track_caller]
pub fn set_interval<F>(period: Duration, f: F) -> IntervalHandle
where
    F: FnMut() + Send + 'static,
{
    assert!(
        !period.is_zero(),
        "set_interval: the period must be non-zero"
    );
    let rt = Arc::downgrade(&Handle::current().shared);
    let timer = crate::time::current_timer();
    let repeat = Arc::new(Repeat {
        inner: Mutex::new(RepeatState {
            f: Some(f),
            cancelled: false,
            entry: None,
            next: crate::time::deadline_after(period),
        }),
        period,
        rt,
    });
    {
        // Registered under the state lock, so that a tick firing at once finds its entry.
        let mut st = repeat.inner.lock();
        repeat.arm(&mut st, &timer);
    }
    IntervalHandle { repeat }
}
