//! Promises, Rust-shaped: the article's Promise API as zero-cost future combinators.
//!
//! A JavaScript promise is an eager, shared, heap-allocated result cell with a list of
//! reactions. A Rust future is already most of a promise — a value that completes later —
//! but lazy, owned by one awaiter, and free of allocation. This module gives futures the
//! promise vocabulary (`then`, `catch`, `finally`, `all`, `race`, …) without giving up any
//! of that: every combinator is a named struct that holds its children inline, polls them
//! in the awaiting task, and allocates nothing (the `Vec` forms of the set combinators
//! allocate one slice; [`promisify`] one shared slot).
//!
//! | JavaScript | weft |
//! |---|---|
//! | `Promise.resolve(v)` / `Promise.reject(e)` | [`resolve`] / [`reject`] |
//! | `new Promise((resolve, reject) => …)`, `util.promisify(f)` | [`promisify`], [`Resolver`] |
//! | `util.callbackify(f)` | [`callbackify`] |
//! | `p.then(x => q(x))` | [`p.then(\|x\| q(x))`](PromiseExt::then) |
//! | `p.then(x => v)` | [`p.map_ok(\|x\| v)`](PromiseExt::map_ok), [`p.map(…)`](PromiseExt::map) |
//! | `p.catch(e => …)` | [`p.catch(\|e\| …)`](PromiseExt::catch) |
//! | `p.finally(() => …)` | [`p.finally(\|\| …)`](PromiseExt::finally) |
//! | `await p` | `p.await` |
//! | `Promise.all([…])` | [`all`] |
//! | `Promise.allSettled([…])` | [`all_settled`] |
//! | `Promise.race([…])` | [`race`] |
//! | `Promise.any([…])`, `AggregateError` | [`any`], [`AggregateError`] |
//! | `new Promise(r => setTimeout(r, ms))` (`delay(ms)`) | [`delay`] |
//! | `Promise.race([p, delay(ms).then(() => { throw … })])` | [`p.timeout(d)`](PromiseExt::timeout) |
//! | a retry loop around `await` | [`retry`] |
//! | `for (const x of xs) await f(x)`, a `reduce` of `.then`s | [`series`] |
//!
//! Two differences run through the whole table. Futures are **lazy**: nothing starts until
//! the combinator is awaited (only [`promisify`] calls its start function at once, as a
//! promise executor runs at once). And results are **`Result`s**: a rejection is an `Err`,
//! so `then`/`map_ok` act on `Ok` and `catch` on `Err`, and the types say which futures
//! can fail.
//!
//! # Which to use when
//!
//! - **A chain of steps**: prefer plain `async`/`.await` with `?` — it is the same state
//!   machine the compiler would build from [`PromiseExt`] chains and reads top to bottom.
//!   The combinators earn their place where a named future type is wanted (a struct field,
//!   a return type without `impl Trait`) or where a one-line `.map_ok` / `.catch` /
//!   `.finally` / `.timeout` reads better than a block.
//! - **Several futures, concurrently**: [`all`] / [`all_settled`] / [`race`] / [`any`] of
//!   *futures* poll them all in **one task**, the one that awaits the combinator. That is
//!   concurrency, not parallelism: their waiting overlaps (timers, I/O, other tasks), but
//!   their CPU work runs on one worker, one child at a time. It costs no task and no
//!   allocation for an array.
//! - **Several jobs, in parallel**: [`spawn`](crate::spawn) each one first, then pass the
//!   [`JoinHandle`](crate::JoinHandle)s to the same combinators. The tasks run on every
//!   worker; the handles' `Err` is a [`JoinError`](crate::JoinError) (panic or abort).
//! - **A callback API**: [`promisify`] it; hand a future to callback-style code with
//!   [`callbackify`]. The callback style itself lives in [`crate::callback`].
//!
//! # Cancellation
//!
//! Dropping a future cancels it: its state, and everything it owns, is dropped where it
//! stands, and it is never polled again. The combinators use that directly:
//!
//! - dropping any combinator drops its children;
//! - [`all`] drops every other child as soon as one fails, [`race`] every loser as soon as
//!   one completes, [`any`] every other child as soon as one succeeds — in the same poll,
//!   before the result is returned;
//! - [`PromiseExt::timeout`] drops the inner future when time runs out;
//! - [`PromiseExt::finally`]'s closure runs only if the future *completes*; a cancelled
//!   future runs no more of its code, exactly as an `async fn` dropped at an `.await`.
//!   Use a `Drop` guard for clean-up that must also happen on cancellation;
//! - a dropped [`JoinHandle`](crate::JoinHandle) only **detaches** its task. A failed
//!   [`all`] of handles leaves the other tasks running; call
//!   [`abort`](crate::JoinHandle::abort) on them (or keep their
//!   [`AbortHandle`](crate::task::AbortHandle)s) to stop them.
//!
//! JavaScript cannot cancel a promise at all: the loser of `Promise.race` runs to the end
//! and its result is ignored.
//!
//! # Alternatives rejected
//!
//! - **Eager promises as tasks** (`spawn` per promise, a shared result cell per `then`):
//!   closest to JavaScript, but a task, an allocation and a cross-thread wake per step,
//!   and cancellation by dropping would be lost. Spawning stays available, explicitly, for
//!   parallelism.
//! - **Boxed chains** (`Pin<Box<dyn Future>>` per stage): simpler types, one allocation
//!   and one dynamic call per stage. The named structs cost nothing, and `Box::pin` is
//!   one call away where a uniform type is needed.
//! - **Per-child wakers for the set combinators** (a `FuturesUnordered`-style ready queue):
//!   O(1) per wake-up instead of O(n), but an `Arc` per child and atomics on every wake.
//!   The sets in the patterns are small (≤ 100), where polling every pending child once per
//!   wake-up is cheaper; see the notes on [`FutureSet`].
//! - **The `futures` crate** (`join_all`, `select_all`, `TryFutureExt`): equivalent pieces,
//!   but another dependency, `Vec`-only sets, and no promise names; weft adds no
//!   dependency for a few hundred lines.
//! - **`pin-project`**: the projections here are few and written by hand, each with the
//!   invariant that makes it sound.

mod bridge;
mod ext;
mod retry;
mod series;
mod set;

pub use bridge::{Promisified, Resolver, callbackify, promisify};
pub use ext::{Catch, Finally, Map, MapOk, PromiseExt, Then};
pub use retry::{Retry, retry};
pub use series::{Series, series};
pub use set::{AggregateError, All, AllSettled, Any, FutureSet, Race, all, all_settled, any, race};

use std::future::Ready;
use std::time::Duration;

use crate::time::Sleep;

/// A future that yields `Ok(value)` at once: `Promise.resolve(value)`.
///
/// The error type is free; name it where inference cannot, as in `resolve::<_, MyError>(v)`.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let v = rt.block_on(weft_runtime::promise::resolve::<_, ()>(5));
/// assert_eq!(v, Ok(5));
/// ```
pub fn resolve<T, E>(value: T) -> Ready<Result<T, E>> {
    std::future::ready(Ok(value))
}

/// A future that yields `Err(error)` at once: `Promise.reject(error)`.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let v = rt.block_on(weft_runtime::promise::reject::<(), _>("nope"));
/// assert_eq!(v, Err("nope"));
/// ```
pub fn reject<T, E>(error: E) -> Ready<Result<T, E>> {
    std::future::ready(Err(error))
}

/// A future that completes after `duration`: the article's `delay(ms)`, the same as
/// [`crate::time::sleep`].
///
/// It never completes early; see [`crate::time`]. Its output is `()`; for a value, map it:
/// `delay(d).map(|()| value)`.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use weft_runtime::promise::{delay, PromiseExt};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let start = Instant::now();
/// let v = rt.block_on(delay(Duration::from_millis(5)).map(|()| "later"));
/// assert_eq!(v, "later");
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// ```
pub fn delay(duration: Duration) -> Sleep {
    crate::time::sleep(duration)
}
