//! Timers: [`sleep`], [`timeout`] and [`interval`], with tokio's names and semantics.
//!
//! Each worker owns a hierarchical timing wheel with 1 µs resolution (`weft_reactor::time`);
//! a thread with no wheel (in `block_on`, on the blocking pool) uses a worker's. A timer is filed in the wheel of the thread that first
//! polls it; if its task later moves to another worker, polling or dropping it updates or
//! cancels the entry in the original wheel under that wheel's own lock — there is no global
//! timer lock. A worker fires its due timers whenever it parks, and a busy worker also on a
//! fixed cadence between tasks; it never parks past its earliest deadline. If a worker is
//! stuck in one long poll, an idle worker fires the stuck wheel's due timers instead, about
//! 2 ms after they are due (`scheduler/worker.rs`, "Stalled workers").
//!
//! **After shutdown time still passes.** A worker leaving at shutdown closes its wheel: the
//! timers in it are woken (early; each checks the clock, finds its entry gone and registers
//! again), and a timer polled on a runtime that has shut down (`handle.block_on(sleep(..))`
//! on a handle that outlived its `Runtime`) goes to one process-wide wheel fired by a thread
//! of its own, started the first time it is needed. So `sleep`, `timeout` and `interval`
//! complete on time rather than hang. A callback timer (`callback::set_timeout`) whose
//! runtime has shut down is dropped unrun, like any callback deferred then.
//!
//! # Precision
//!
//! **A timer never fires early, and is late only by what the machine adds.** A deadline
//! rounds up to the wheel's next microsecond tick (so rounding adds under 1 µs, never a
//! millisecond), an idle worker parks until exactly that instant, fires every timer whose
//! tick has come, and `Sleep` reports completion only once the clock, or a firing pass of
//! its wheel that ran at or after the deadline, says that the deadline passed. The park
//! is as precise as the kernel: with io_uring it is `io_uring_enter`'s `EXT_ARG` timeout, a
//! nanosecond timespec served by an hrtimer; on the fallback driver (`WEFT_IO_DRIVER=fallback`)
//! `epoll_pwait2`'s nanosecond timespec, also an hrtimer (on kernels before 5.11,
//! `epoll_wait`'s milliseconds, rounded up); both are subject to the thread's timer slack
//! (50 µs by default on Linux). So `sleep(d)` completes after `d` plus the time the
//! thread takes to run again — tens of microseconds on an idle machine, as for
//! `std::thread::sleep` — plus whatever runs on that worker before the woken task. A busy
//! worker fires its wheel between tasks, on its maintenance cadence, so its timers wait
//! for the task it is running; a worker stuck in one long poll has its timers fired by an
//! idle worker about 2 ms after they are due. `interval` ticks at `start + n * period`
//! exactly (each deadline is the previous one plus the period, not "now" plus it), so it
//! does not drift however long it runs.
//!
//! [`Sleep`] is `Unpin` (no intrusive list node lives in it), so it can be polled without
//! pinning. Its 32 bytes and the 40 of its wheel entry are the memory per timer. Filing
//! a timer takes its wheel's lock once. Dropping one that is still pending takes it once
//! too, except on the worker that owns its wheel, where the cancel joins a batch carried
//! out under one lock per `weft_reactor::time::CANCEL_BATCH` cancels, and before the worker
//! next parks or fires its wheel (a cancelled timer that comes due first fires, waking its
//! task once for nothing). On that worker a timer's handle to the wheel also comes from,
//! and goes back to, a stock of references kept without atomics (`LocalTimerHandle`). A
//! sleep that ran its course completes without the lock or a clock read (its wheel's last
//! firing pass is known to have fired it at or after its deadline:
//! `TimerHandle::has_passed`). The clock is read once when a `sleep` or `timeout` is
//! created, and its first poll reads it again only for durations under 1 ms: a longer one
//! asks its wheel whether a pass has already reached the deadline. A poll that comes before
//! the firing pass and after the first (a `Timeout` whose inner future wakes it) reads the
//! clock and takes the lock to update the waker.

use std::cell::RefCell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use std::time::Instant;

use weft_reactor::TimerHandle;
use weft_reactor::time::{
    Key, duration_nanos, from_nanos, nanos_to_tick, now_nanos_early, now_nanos_late, to_nanos,
};
use weft_reactor::time::{LocalTimerHandle, WeakTimerHandle};

/// Runs `f` with the wheel of the driver this thread parks on (the thread context's
/// `timer`; none once the context is gone).
fn with_timer<R>(f: impl FnOnce(&RefCell<Option<LocalTimerHandle>>) -> R) -> Option<R> {
    crate::context::with_resources(|r| f(r.timer()))
}

/// Makes `handle` this thread's wheel until the guard drops.
pub(crate) fn set_thread_timer(handle: TimerHandle) -> ThreadTimerGuard {
    let local = LocalTimerHandle::new(handle);
    ThreadTimerGuard(with_timer(|t| t.borrow_mut().replace(local)).flatten())
}

pub(crate) struct ThreadTimerGuard(Option<LocalTimerHandle>);

impl Drop for ThreadTimerGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        let old = with_timer(|t| std::mem::replace(&mut *t.borrow_mut(), prev));
        drop(old);
    }
}

/// The wheel a timer first polled on this thread goes to: the thread's own, or (on a thread
/// that parks on no driver of ours, such as a blocking-pool thread) one of the runtime's
/// workers, reached through a handle that unparks it if needed.
#[track_caller]
pub(crate) fn current_timer() -> TimerHandle {
    // The thread's own wheel: a handle from its stock, with no atomic operation when a
    // timer dropped on this thread gave one back.
    if let Some(h) = with_timer(|t| t.borrow().as_ref().map(LocalTimerHandle::get)).flatten() {
        return h;
    }
    let remote =
        |h: &crate::scheduler::Handle| (!h.shared.is_shutdown()).then(|| h.shared.remote_timer());
    match crate::context::with_current(remote) {
        Some(Some(h)) => h,
        Some(None) => after_shutdown_timer(),
        None => panic!(
            "a weft timer was polled outside a weft runtime: {}",
            crate::scheduler::NO_RUNTIME
        ),
    }
}

/// Drops a timer's handle `h`, cancelling its timer `cancel` first if given: on the thread
/// that owns the wheel, through its `LocalTimerHandle` (the handle back to the stock, the
/// cancel into the batch: no atomic operation), elsewhere directly.
#[inline]
fn release(h: TimerHandle, cancel: Option<Key>) {
    let mut h = Some(h);
    let kept = with_timer(|t| match t.try_borrow() {
        Ok(t) => t
            .as_ref()
            .is_some_and(|local| local.recycle(&mut h, cancel)),
        Err(_) => false,
    });
    if kept != Some(true) {
        if let (Some(h), Some(key)) = (&h, cancel) {
            h.cancel(key);
        }
    }
}

/// Files `waker` at `delay` from now (never early) in the wheel [`current_timer`] picks, and
/// returns that wheel's weak handle and the timer's key: `callback::set_timeout`'s filing.
/// The deadline is read as a `Sleep`'s is (raw clock nanoseconds, no [`Instant`]
/// arithmetic), and the strong handle goes back to this thread's stock: about 130 of the
/// instructions each callback timer cost (`race/ready` sets and cancels two per op).
pub(crate) fn file_after(delay: Duration, waker: std::task::Waker) -> (WeakTimerHandle, Key) {
    let h = current_timer();
    let deadline = now_nanos_late().saturating_add(duration_nanos(delay));
    let key = h.file_at(nanos_to_tick(deadline), waker).key;
    let weak = h.downgrade();
    release(h, None);
    (weak, key)
}

/// Carries out the cancels this thread's `LocalTimerHandle` has queued (a worker, before
/// it parks or fires its wheel).
pub(crate) fn flush_thread_cancels() {
    with_timer(|t| {
        if let Ok(t) = t.try_borrow() {
            if let Some(local) = &*t {
                local.flush_cancels();
            }
        }
    });
}

/// The wheel for timers polled after their runtime shut down: one per process, fired by a
/// thread of its own, started on first use, so that time still passes for them. (Started
/// again in a forked child, which does not have the parent's thread.)
#[track_caller]
fn after_shutdown_timer() -> TimerHandle {
    static TIMER: parking_lot::Mutex<Option<(u64, TimerHandle)>> = parking_lot::Mutex::new(None);
    let mut timer = TIMER.lock();
    let generation = crate::fork::generation();
    if let Some((g, h)) = &*timer {
        if *g == generation {
            return h.clone();
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("weft-timer-after-shutdown".into())
        .spawn(move || {
            use weft_reactor::Driver;
            let mut driver = weft_reactor::TimeDriver::new(weft_reactor::ThreadParker::new());
            let _ = tx.send(driver.handle());
            loop {
                // A parker's park cannot fail; its wakes are caught (`wake.rs`).
                let _ = driver.park(None);
            }
        });
    let h = match spawned.map(|_| rx.recv()) {
        Ok(Ok(h)) => h,
        Ok(Err(_)) | Err(_) => panic!(
            "a weft timer was polled after its runtime shut down, and the thread that fires \
             such timers could not be started"
        ),
    };
    *timer = Some((generation, h.clone()));
    h
}

/// A far-off instant for durations too large to add (about 30 years ahead).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

pub(crate) fn deadline_after(d: Duration) -> Instant {
    Instant::now().checked_add(d).unwrap_or_else(far_future)
}

/// `t + d`, or the far-off instant if that is not representable.
fn add_or_far(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or_else(far_future)
}

/// `t + d * n`, or the far-off instant if that is not representable (`n` may exceed
/// `u32::MAX`: a short period missed for a long time).
fn add_periods(t: Instant, d: Duration, n: u128) -> Instant {
    let nanos = d.as_nanos().saturating_mul(n);
    let secs = u64::try_from(nanos / 1_000_000_000);
    match secs {
        Ok(secs) => add_or_far(t, Duration::new(secs, (nanos % 1_000_000_000) as u32)),
        Err(_) => far_future(),
    }
}

/// Waits until `duration` has elapsed.
///
/// Equivalent to `sleep_until(Instant::now() + duration)`. A zero duration completes on its
/// first poll; an enormous one sleeps (about) forever rather than overflowing.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let start = Instant::now();
///     weft_runtime::time::sleep(Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_for(duration)
}

/// A [`Sleep`] of `duration` from now whose first poll skips the clock when the duration is
/// long enough that the poll almost always comes before the deadline (see
/// [`UNCHECKED_FIRST_POLL`]).
fn sleep_for(duration: Duration) -> Sleep {
    Sleep {
        // Never before `Instant::now() + duration` (a few tens of nanoseconds after it at
        // most), so the sleep never completes early.
        deadline: now_nanos_late().saturating_add(duration_nanos(duration)),
        entry: None,
        mark: if duration >= UNCHECKED_FIRST_POLL {
            UNCHECKED
        } else {
            0
        },
    }
}

/// The shortest `sleep` (or `timeout`) duration whose first poll files its timer without
/// reading the clock: its wheel answers instead whether a firing pass has already passed
/// the deadline (then the sleep completes at once). A first poll that comes after the
/// deadline but before the wheel's next pass (a sleep created, then left unpolled for
/// longer than its duration) files a timer that fires on that pass, so the sleep completes
/// then rather than on that poll. Shorter sleeps, and every [`sleep_until`], read the clock.
const UNCHECKED_FIRST_POLL: Duration = Duration::from_millis(1);

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: to_nanos(deadline),
        entry: None,
        mark: 0,
    }
}

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    /// The deadline, in nanoseconds since the wheels' time base (`weft_reactor::time::
    /// to_nanos`): one word, and a wheel tick in a division (`nanos_to_tick`).
    deadline: i64,
    /// The wheel the timer is filed in and its key; `None` until a poll files it.
    entry: Option<(TimerHandle, Key)>,
    /// With an `entry`: its `Filed::fired_by`, the wheel time by which it has certainly
    /// fired, so that a sleep that ran its course completes and drops without the wheel's
    /// lock or a clock read. Without: [`ELAPSED`] once a poll saw the deadline pass,
    /// [`UNCHECKED`] before the first poll of a long enough `sleep`, else 0. (One word for
    /// both keeps a `Sleep` at 32 bytes.)
    mark: u64,
}

/// [`Sleep::mark`] of a sleep that completed.
const ELAPSED: u64 = 1;

/// [`Sleep::mark`] of a sleep whose first poll asks its wheel rather than the clock
/// ([`UNCHECKED_FIRST_POLL`]).
const UNCHECKED: u64 = 2;

impl Sleep {
    /// When it completes: the instant it was given (a deadline more than about 292 years
    /// from the process's start reads as that far off); for [`sleep`] and [`timeout`],
    /// `duration` after the clock read at creation, or up to a few tens of nanoseconds
    /// later (the deadline is rounded toward late, never early: see
    /// `weft_reactor::time::now_nanos_late`).
    pub fn deadline(&self) -> Instant {
        from_nanos(self.deadline)
    }

    /// Whether the deadline has been seen to pass (by a poll).
    pub fn is_elapsed(&self) -> bool {
        self.entry.is_none() && self.mark == ELAPSED
    }

    /// Moves the deadline (earlier or later), re-arming a sleep that has completed.
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.deadline = to_nanos(deadline);
        this.mark = 0;
        if let Some((h, key)) = &this.entry {
            match h.refile_at(*key, nanos_to_tick(this.deadline)) {
                Some(fired_by) => this.mark = fired_by,
                None => this.entry = None,
            }
        }
    }

    fn cancel(&mut self) {
        if let Some((h, key)) = self.entry.take() {
            // A timer that has certainly fired is no longer in the wheel: nothing to take
            // out, and no lock to take (the common end of a sleep that ran its course).
            // A timer that has certainly fired is no longer in the wheel: nothing to take
            // out. Otherwise, on the thread that owns the wheel, the cancel joins a batch
            // carried out under one lock (see `LocalTimerHandle`).
            let cancel = (!h.has_fired(self.mark)).then_some(key);
            release(h, cancel);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        // Whether the deadline is still ahead, and then whether the timer must be filed.
        let (pending, file) = match &this.entry {
            // Fired by a pass of its wheel at or after the deadline (the common wake-up):
            // done, with neither the lock nor the clock.
            Some((h, _)) if h.has_passed(this.mark) => (false, false),
            Some((h, key)) => {
                if now_nanos_early() < this.deadline {
                    (true, !h.update_waker(*key, cx.waker()))
                } else {
                    (false, false)
                }
            }
            None if this.mark == UNCHECKED => {
                let h = current_timer();
                match h.file_unless_due_at(nanos_to_tick(this.deadline), cx.waker()) {
                    Some(filed) => {
                        this.entry = Some((h, filed.key));
                        this.mark = filed.fired_by;
                        (true, false)
                    }
                    // A pass of the wheel has reached the deadline.
                    None => (false, false),
                }
            }
            None => {
                let pending = !this.is_elapsed() && now_nanos_early() < this.deadline;
                (pending, pending)
            }
        };
        if file {
            let h = current_timer();
            let filed = h.file_at(nanos_to_tick(this.deadline), cx.waker().clone());
            this.entry = Some((h, filed.key));
            this.mark = filed.fired_by;
        }
        if pending {
            return Poll::Pending;
        }
        this.cancel();
        this.mark = ELAPSED;
        coop.made_progress();
        Poll::Ready(())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline())
            .field("elapsed", &self.is_elapsed())
            .finish()
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    pub(crate) fn new() -> Elapsed {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `future` for at most `duration`: its output, or [`Elapsed`] if time ran out first —
/// in which case `future` is dropped (cancelled) when the `Timeout` is.
///
/// The inner future is polled before the clock is checked, so a future that is ready in
/// time is never reported as timed out.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_runtime::time::{sleep, timeout};
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     assert_eq!(timeout(Duration::from_millis(50), async { 5 }).await, Ok(5));
///     let slow = sleep(Duration::from_secs(60));
///     assert!(timeout(Duration::from_millis(1), slow).await.is_err());
/// });
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep_for(duration),
    }
}

/// Like [`timeout`], with a deadline.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep_until(deadline),
    }
}

/// The future of [`timeout`].
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F> Timeout<F> {
    /// The inner future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The inner future, mutably.
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.future
    }

    /// The inner future, dropping the timer.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of a pinned
        // `Timeout` (only `into_inner`, which takes `self` by value and so requires `Unpin`
        // or an unpinned value), and `Timeout` has no `Drop` impl that could move it.
        let (future, sleep) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.future), &mut this.sleep)
        };
        if let Poll::Ready(v) = future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        // The budget must not keep the timer from being seen: check it unconstrained.
        match crate::coop::unconstrained(|| Pin::new(sleep).poll(cx)) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: fmt::Debug> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("future", &self.future)
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}

/// What an [`Interval`] does when ticks were missed (the task was busy past them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back, then keep the original schedule (the default).
    #[default]
    Burst,
    /// Fire once now, then schedule the next tick a full period after now.
    Delay,
    /// Fire once now, then continue on the original schedule's next multiple of the period
    /// after now.
    Skip,
}

/// A stream of ticks every `period`; the first tick completes at once. A period too long to
/// add to the clock (`Duration::MAX`) ticks once and then (about) never.
///
/// # Panics
///
/// If `period` is zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut iv = weft_runtime::time::interval(Duration::from_millis(2));
///     let t0 = iv.tick().await;
///     let t1 = iv.tick().await;
///     assert_eq!(t1 - t0, Duration::from_millis(2));
/// });
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// A stream of ticks every `period`, the first at `start`.
///
/// # Panics
///
/// If `period` is zero.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "interval period must be non-zero");
    Interval {
        sleep: sleep_until(start),
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// The stream of [`interval`]; call [`tick`](Interval::tick).
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Completes at the next tick and returns the instant it was scheduled for.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (for use in hand-written futures).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.sleep).poll(cx));
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        // Sums saturate at a far-off instant, so a period too long to add (`Duration::MAX`)
        // means "not again", not an overflow.
        let on_time = add_or_far(scheduled, self.period);
        let next = if now > on_time {
            match self.missed {
                MissedTickBehavior::Burst => on_time,
                MissedTickBehavior::Delay => add_or_far(now, self.period),
                MissedTickBehavior::Skip => {
                    let behind = (now - scheduled).as_nanos();
                    let periods = behind / self.period.as_nanos() + 1;
                    add_periods(scheduled, self.period, periods)
                }
            }
        } else {
            on_time
        };
        Pin::new(&mut self.sleep).reset(next);
        Poll::Ready(scheduled)
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        Pin::new(&mut self.sleep).reset(deadline_after(self.period));
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The current missed-tick behaviour.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets the missed-tick behaviour.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}
