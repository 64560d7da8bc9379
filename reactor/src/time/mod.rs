//! Timers: a hierarchical hashed timing wheel with 1 µs resolution.
//!
//! This is scheme 7 ("hierarchical timing wheels") of George Varghese and Tony Lauck,
//! *Hashed and Hierarchical Timing Wheels: Data Structures for the Efficient Implementation
//! of a Timer Facility*, Proc. 11th ACM Symposium on Operating Systems Principles (SOSP '87),
//! pp. 25–38; extended in IEEE/ACM Transactions on Networking 5(6), 1997. Like their scheme, it
//! trades exact ordering for O(1) start and stop: a timer is filed under a slot of coarse
//! granularity when it is far off, and moved ("cascaded") to finer slots as time approaches
//! it.
//!
//! The reactor knows nothing of the scheduler: the wheel is generic over its payload `T`. The
//! runtime stores a [`std::task::Waker`] (or a boxed callback) and wakes it when the timer
//! fires; the tests store integers.
//!
//! # Time
//!
//! Time is a `u64` count of 1 µs *ticks* ([`TICK`]) since a [`Clock`]'s start `Instant`;
//! every [`TimeDriver`] counts from one process-wide start ([`base`], [`Clock::process`]), so
//! a deadline kept as nanoseconds since it ([`to_nanos`]) becomes a tick without [`Instant`]
//! arithmetic ([`nanos_to_tick`]). The current time in those nanoseconds comes from the raw
//! monotonic clock `Instant` itself reads, without building an `Instant`: as a bound that
//! is never early for a deadline ([`now_nanos_late`]) or never late for asking whether one
//! has passed ([`now_nanos_early`]); the two lie a few tens of nanoseconds apart.
//! Conversions round so that a timer never fires early: a deadline rounds **up**
//! ([`Clock::deadline_to_tick`]) and the current time rounds **down** ([`Clock::now_tick`]),
//! so `now_tick(now) >= deadline_to_tick(deadline)` implies `now >= deadline`; and since a
//! tick is a microsecond, rounding up never holds a timer back by more than that. A driver
//! parks until the exact instant its earliest tick begins ([`Clock::duration_until`]), so a
//! timer fires at its deadline plus the park's wake-up latency — not plus a coarse tick. The
//! wheel itself is pure: the caller passes "now" in ticks, which keeps it deterministic and
//! testable.
//!
//! # Layout
//!
//! [`LEVELS`] = 5 levels of [`SLOTS_PER_LEVEL`] = 256 slots each; a slot of level `l` spans
//! `256^l` ticks (1 µs, 256 µs, 65.5 ms, 16.8 s, 71.6 min), so the wheel spans
//! `256^5 = 2^40` ticks ([`RANGE`]), about 12.7 days at 1 µs. A timer due at `deadline` goes
//! to the level of the highest bit in which `deadline` differs from the wheel's current tick
//! (`elapsed`), in the slot given by that level's 8-bit digit of `deadline`. Hence every
//! occupied slot lies after `elapsed`, and the first occupied slot of the lowest non-empty
//! level (a `trailing_zeros` over a per-level 256-bit occupancy mask) holds the earliest
//! timer. Wide levels keep the moves few: a timer 1 to 65 ms away is filed in level 1
//! (level 2 if it crosses a 65.5 ms boundary) and moves once, to level 0, before it fires;
//! with 64-slot levels a 5 ms timer moved twice.
//!
//! Besides the 1 280 slots there are two lists: *pending* (deadline `<= elapsed`: inserted in
//! the past, or left by a `fire` callback that panicked; they fire on the next poll) and
//! *overflow* (beyond the current turn of the top level). The overflow list behaves as one
//! more, coarsest slot: when time reaches the turn of its earliest timer it is cascaded like
//! any other slot, its timers re-inserted into the levels (or back into overflow if they are
//! further still).
//!
//! Polling at `now` repeatedly takes the earliest non-empty slot whose start is `<= now`,
//! moves the wheel to that start, and empties the slot in one pass: each timer that is due
//! fires from there, the others are re-filed to a strictly finer level. Timers on the
//! pending list fire first. A jump of any length visits only non-empty slots, and each timer
//! is moved at most once per level over its life.
//!
//! # Storage and memory per timer
//!
//! Timers live in a slab (a `Vec` of entries plus a stack of the vacant ones' indices) and
//! are threaded into
//! intrusive doubly-linked lists, one per bucket, by `u32` index — no allocation per timer
//! once the slab has grown, O(1) insert and cancel, and no `unsafe`. A [`Key`] is an index and
//! a generation (8 bytes, `Copy`); the generation changes whenever a slot is freed, so
//! cancelling a fired or cancelled timer, even after its slot was reused, is a no-op returning
//! `None`.
//!
//! One slab entry is **40 bytes** on 64-bit targets for `T = usize`, `T = Waker` and
//! `T = Box<dyn FnOnce()>` alike: deadline 8, `Option<T>` 16, two links 8, generation 4,
//! bucket tag 2, padding 2 (the `size_of_entry` test asserts it). A wheel also has a fixed
//! ~20 KiB of list heads. The slab does not shrink; freed entries are reused, their
//! indices kept on the stack (4 bytes a vacant entry).
//!
//! # Examples
//!
//! Driving a wheel of wakers from a worker loop, roughly as the runtime does:
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//! use std::task::{Wake, Waker};
//! use std::time::{Duration, Instant};
//! use weft_reactor::time::Wheel;
//!
//! struct Flag(AtomicBool);
//! impl Wake for Flag {
//!     fn wake(self: Arc<Self>) {
//!         self.0.store(true, Ordering::SeqCst);
//!     }
//! }
//!
//! let mut wheel: Wheel<Waker> = Wheel::new();
//! let flag = Arc::new(Flag(AtomicBool::new(false)));
//! let deadline = Instant::now() + Duration::from_millis(3);
//! let key = wheel.insert(wheel.deadline_to_tick(deadline), Waker::from(flag.clone()));
//!
//! // The park timeout: time until the next deadline.
//! let timeout = wheel
//!     .next_deadline()
//!     .map(|tick| wheel.clock().duration_until(tick, Instant::now()));
//! // At most 3 ms away: rounding up to a whole tick adds under a microsecond.
//! assert!(timeout.unwrap() <= Duration::from_millis(3) + Duration::from_micros(1));
//!
//! std::thread::sleep(Duration::from_millis(5)); // stands in for park(timeout)
//! let now = wheel.now_tick(Instant::now());
//! let fired = wheel.poll_expired(now, |_key, waker| waker.wake());
//! assert_eq!(fired, 1);
//! assert!(flag.0.load(Ordering::SeqCst));
//! assert!(wheel.cancel(key).is_none()); // already fired: a no-op
//! ```

mod driver;
mod entry;
mod wheel;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use driver::{
    CANCEL_BATCH, Filed, LocalTimerHandle, STALL_TICKS, TimeDriver, TimerHandle, WeakTimerHandle,
};
pub use entry::Key;
pub use wheel::{LEVELS, RANGE, SLOTS_PER_LEVEL, Wheel};

/// The length of one wheel tick: a microsecond.
///
/// Fine enough that rounding a deadline up to a whole tick adds less than the wake-up
/// latency of any park (the kernel's hrtimers are in nanoseconds, but a thread takes tens
/// of microseconds to run again), coarse enough that the five levels span about 12.7 days
/// ([`RANGE`] ticks) before a timer waits on the overflow list.
pub const TICK: Duration = Duration::from_micros(1);

/// Nanoseconds per tick.
const TICK_NANOS: u32 = TICK.subsec_nanos();

// The conversions below work in whole seconds and sub-second ticks, in 64-bit arithmetic
// rather than on `Duration::as_nanos`'s 128 bits.
const _: () = assert!(TICK.as_secs() == 0 && 1_000_000_000 % TICK_NANOS == 0);

/// Ticks per second.
const TICKS_PER_SEC: u64 = (1_000_000_000 / TICK_NANOS) as u64;

/// `secs` seconds and `ticks` more ticks, in ticks, saturating at `u64::MAX`.
#[inline]
fn whole_ticks(secs: u64, ticks: u64) -> u64 {
    secs.checked_mul(TICKS_PER_SEC)
        .and_then(|t| t.checked_add(ticks))
        .unwrap_or(u64::MAX)
}

/// The instant every [`TimeDriver`]'s clock counts from ([`Clock::process`]): fixed the
/// first time anything asks for it, the same on every thread of the process (and in a
/// forked child, whose monotonic clock is its parent's).
///
/// A deadline kept as nanoseconds since this base ([`to_nanos`]) is one word rather than an
/// [`Instant`]'s two, and maps to a driver's tick with no clock read and no
/// [`Instant`] arithmetic ([`nanos_to_tick`]).
#[inline]
pub fn base() -> Instant {
    base_and_raw().instant
}

/// [`base`], and where it lies on the raw monotonic clock that [`Instant`] reads.
struct Base {
    instant: Instant,
    /// The raw clock's nanoseconds read just before `instant` was taken: at or before it.
    raw_before: i64,
    /// The raw clock's nanoseconds read just after: at or after it.
    raw_after: i64,
}

#[inline]
fn base_and_raw() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        // The narrowest of a few brackets `raw_before <= instant <= raw_after`, so that the
        // two bounds of `now_nanos_*` are tens of nanoseconds apart, not a preemption.
        let mut best: Option<Base> = None;
        for _ in 0..8 {
            let raw_before = raw_now();
            let instant = Instant::now();
            let raw_after = raw_now();
            let b = Base {
                instant,
                raw_before,
                raw_after,
            };
            if best
                .as_ref()
                .is_none_or(|p| b.raw_after - b.raw_before < p.raw_after - p.raw_before)
            {
                best = Some(b);
            }
        }
        best.expect("eight tries")
    })
}

/// The clock [`Instant::now`] reads, in nanoseconds: on Linux `CLOCK_MONOTONIC`, which is
/// the clock std documents for `Instant` there, read without building an `Instant`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
// `time_t` and `c_long` are `i32` on 32-bit targets.
#[allow(clippy::unnecessary_cast)]
fn raw_now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration, and
    // CLOCK_MONOTONIC is a clock every Linux kernel has (std's `Instant::now` reads it and
    // treats failure as impossible, as this does).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as i64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as i64)
}

/// Elsewhere the raw clock is not known to be `Instant`'s: nanoseconds through `Instant`
/// itself, since its first read (which `Base`'s bracket then locates like any other).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
fn raw_now() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    duration_nanos(Instant::now().saturating_duration_since(start))
}

/// The current instant as nanoseconds since [`base`] ([`to_nanos`]), **never earlier** than
/// `to_nanos(Instant::now())` read at the same moment, and later by at most a few tens of
/// nanoseconds (the bracket [`base`] was located in on the raw clock). For deadlines:
/// `now_nanos_late() + d` is at or after `Instant::now() + d`, so a timer at it never fires
/// early. Cheaper than `to_nanos(Instant::now())`: one clock read and a subtraction, no
/// [`Instant`] arithmetic.
#[inline]
pub fn now_nanos_late() -> i64 {
    let b = base_and_raw();
    raw_now() - b.raw_before
}

/// Like [`now_nanos_late`], but **never later** than `to_nanos(Instant::now())` read at the
/// same moment: for asking whether a deadline has passed (`now_nanos_early() >= deadline`
/// implies that it has).
#[inline]
pub fn now_nanos_early() -> i64 {
    let b = base_and_raw();
    raw_now() - b.raw_after
}

/// `t` as nanoseconds since [`base`], negative before it; exact within about 292 years
/// either side, saturating beyond. [`from_nanos`] maps it back.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use weft_reactor::time::{from_nanos, to_nanos};
///
/// let t = Instant::now() + Duration::from_nanos(1_234_567);
/// assert_eq!(from_nanos(to_nanos(t)), t);
/// let past = Instant::now() - Duration::from_millis(3); // possibly before the base
/// assert_eq!(from_nanos(to_nanos(past)), past);
/// ```
#[inline]
pub fn to_nanos(t: Instant) -> i64 {
    let base = base();
    match t.checked_duration_since(base) {
        Some(after) => duration_nanos(after),
        None => -duration_nanos(base.duration_since(t)),
    }
}

/// `d` in nanoseconds, saturating at `i64::MAX` (about 292 years); in 64-bit arithmetic,
/// not `Duration::as_nanos`'s 128 bits.
#[inline]
pub fn duration_nanos(d: Duration) -> i64 {
    const NANOS_PER_SEC: u64 = 1_000_000_000;
    let nanos = d
        .as_secs()
        .checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(u64::from(d.subsec_nanos())));
    nanos
        .and_then(|n| i64::try_from(n).ok())
        .unwrap_or(i64::MAX)
}

/// The instant [`to_nanos`] mapped to `nanos` (saturating at what [`Instant`] can hold).
pub fn from_nanos(nanos: i64) -> Instant {
    let base = base();
    let offset = Duration::from_nanos(nanos.unsigned_abs());
    let t = if nanos >= 0 {
        base.checked_add(offset)
    } else {
        base.checked_sub(offset)
    };
    t.unwrap_or(base)
}

/// The first tick of [`Clock::process`] at or after the instant `nanos` ([`to_nanos`]) names:
/// what [`Clock::deadline_to_tick`] gives for that instant, in a few integer operations.
/// An instant before the base is tick 0.
#[inline]
pub fn nanos_to_tick(nanos: i64) -> u64 {
    u64::try_from(nanos).map_or(0, |n| n.div_ceil(u64::from(TICK_NANOS)))
}

/// Maps [`Instant`]s to wheel ticks of one microsecond ([`TICK`]) counted from a fixed start.
///
/// Rounding never lets a timer fire early: deadlines round up, "now" rounds down. Instants
/// before the start map to tick 0; ticks beyond `u64::MAX` µs saturate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose tick 0 is the current instant.
    pub fn new() -> Self {
        Self::with_start(Instant::now())
    }

    /// The clock of every [`TimeDriver`]: tick 0 is [`base`], so that [`nanos_to_tick`]
    /// converts a deadline to its ticks.
    pub fn process() -> Self {
        Self::with_start(base())
    }

    /// A clock whose tick 0 is `start`.
    pub fn with_start(start: Instant) -> Self {
        Clock { start }
    }

    /// The instant of tick 0.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The first tick at or after `deadline` (whole microseconds since the start, rounded
    /// up), so a timer filed at this tick never fires before `deadline`, and fires less than
    /// a tick after it.
    pub fn deadline_to_tick(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.start);
        let micros = u64::from(since.subsec_nanos().div_ceil(TICK_NANOS));
        whole_ticks(since.as_secs(), micros)
    }

    /// The last tick at or before `now` (whole microseconds since the start, rounded down):
    /// the value to pass to [`Wheel::poll_expired`].
    pub fn now_tick(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        whole_ticks(
            since.as_secs(),
            u64::from(since.subsec_nanos() / TICK_NANOS),
        )
    }

    /// The instant at which `tick` begins, or `None` if it is not representable.
    pub fn tick_to_instant(&self, tick: u64) -> Option<Instant> {
        self.start.checked_add(Duration::from_micros(tick))
    }

    /// How long from `now` until `tick` begins: zero if it has passed, `Duration::MAX` if it
    /// is not representable. Suitable as a park timeout for [`Wheel::next_deadline`]: it is
    /// exact to the nanosecond, so a park with it ends at the tick, not a tick later.
    pub fn duration_until(&self, tick: u64, now: Instant) -> Duration {
        self.tick_to_instant(tick)
            .map_or(Duration::MAX, |at| at.saturating_duration_since(now))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_now_rounds_down() {
        let start = Instant::now();
        let clock = Clock::with_start(start);
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let ns = Duration::from_nanos;
        assert_eq!(clock.start(), start);
        assert_eq!(clock.deadline_to_tick(start), 0);
        assert_eq!(clock.deadline_to_tick(start + ms(5)), 5_000);
        assert_eq!(clock.deadline_to_tick(start + us(250)), 250);
        assert_eq!(clock.deadline_to_tick(start + ms(5) + ns(1)), 5_001);
        assert_eq!(clock.deadline_to_tick(start + ns(1)), 1);
        assert_eq!(clock.now_tick(start + ms(5)), 5_000);
        assert_eq!(clock.now_tick(start + us(6) - ns(1)), 5);
        assert_eq!(clock.tick_to_instant(7), Some(start + us(7)));
        assert_eq!(clock.duration_until(7_000, start + ms(2)), ms(5));
        assert_eq!(clock.duration_until(7, start + ms(9)), Duration::ZERO);
        // Sub-tick precision of the park timeout: it ends exactly where the tick begins.
        assert_eq!(clock.duration_until(3, start + ns(1_500)), ns(1_500));
        // Representable or saturated to `Duration::MAX`, depending on the platform.
        assert!(clock.duration_until(u64::MAX, start) >= Duration::from_secs(1 << 40));
    }

    #[test]
    fn rounding_up_adds_less_than_a_tick() {
        let start = Instant::now();
        let clock = Clock::with_start(start);
        for nanos in [
            1u64, 999, 1_000, 1_001, 250_000, 999_999, 1_000_000, 1_000_001,
        ] {
            let deadline = start + Duration::from_nanos(nanos);
            let at = clock
                .tick_to_instant(clock.deadline_to_tick(deadline))
                .unwrap();
            assert!(
                at >= deadline,
                "{nanos} ns: tick begins before the deadline"
            );
            assert!(at - deadline < TICK, "{nanos} ns: held back a whole tick");
        }
    }

    #[test]
    fn nanos_since_the_base_round_trip_and_give_the_process_clocks_ticks() {
        let clock = Clock::process();
        assert_eq!(clock.start(), base());
        let now = Instant::now();
        let ns = Duration::from_nanos;
        for t in [
            now,
            now + ns(1),
            now + ns(999),
            now + ns(1_000),
            now + ns(1_001),
            now + Duration::from_secs(86_400 * 365 * 30),
        ] {
            let n = to_nanos(t);
            assert_eq!(from_nanos(n), t);
            assert_eq!(nanos_to_tick(n), clock.deadline_to_tick(t), "{t:?}");
        }
        // Before the base: exact, negative, tick 0 (due).
        if let Some(past) = base().checked_sub(ns(2_500)) {
            assert_eq!(to_nanos(past), -2_500);
            assert_eq!(from_nanos(-2_500), past);
            assert_eq!(nanos_to_tick(-2_500), 0);
        }
        assert_eq!(to_nanos(base()), 0);
        assert_eq!(nanos_to_tick(1), 1);
        assert_eq!(nanos_to_tick(i64::MAX), (i64::MAX as u64).div_ceil(1_000));
    }

    #[test]
    fn the_raw_clock_brackets_instant_now() {
        // Read in this order, the early bound, the `Instant` and the late bound lie in
        // order: a raw clock other than `Instant`'s (or a mislocated base) breaks it.
        for _ in 0..1_000 {
            let early = now_nanos_early();
            let exact = to_nanos(Instant::now());
            let late = now_nanos_late();
            assert!(early <= exact && exact <= late, "{early} {exact} {late}");
        }
        let b = base_and_raw();
        assert!(b.raw_before <= b.raw_after);
        // A deadline from the late bound is never before the same from `Instant::now()`.
        let d = Duration::from_micros(250);
        let before = Instant::now();
        let deadline = now_nanos_late() + duration_nanos(d);
        assert!(from_nanos(deadline) >= before + d);
    }

    #[test]
    fn instants_before_start_are_tick_zero() {
        let clock = Clock::new();
        if let Some(earlier) = clock.start().checked_sub(Duration::from_secs(1)) {
            assert_eq!(clock.deadline_to_tick(earlier), 0);
            assert_eq!(clock.now_tick(earlier), 0);
        }
    }

    #[test]
    fn a_tick_reached_by_now_implies_the_deadline_passed() {
        let start = Instant::now();
        let clock = Clock::with_start(start);
        // Offsets in nanoseconds around microsecond and millisecond boundaries.
        let offsets = [
            0u64, 1, 999, 1000, 1001, 1999, 2000, 2001, 999_999, 1_000_001, 123_456,
        ];
        for &d in &offsets {
            for &n in &offsets {
                let deadline = start + Duration::from_nanos(d);
                let now = start + Duration::from_nanos(n);
                if clock.now_tick(now) >= clock.deadline_to_tick(deadline) {
                    assert!(now >= deadline, "deadline {d}ns fired at {n}ns");
                }
            }
        }
    }
}
