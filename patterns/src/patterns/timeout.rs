//! `timeout`: timeout via `Promise.race` — a call that may not wait forever.
//!
//! ```js
//! function timeout(ms) {
//!   return new Promise((_, reject) => {
//!     setTimeout(() => reject(new Error("Request timed out")), ms);
//!   });
//! }
//! async function fetchWithTimeout(url, ms = 5000) {
//!   return Promise.race([fetch(url), timeout(ms)]);
//! }
//! ```
//!
//! One op runs two timed calls, one after the other, both with input `x`; with `timer(d)`
//! (`d` = 1 ms):
//!
//! 1. a call of `d` under a limit of `5 d`: its value, [`Outcome::Value`]; the timer is
//!    cancelled (the callback helper clears it, the futures drop it);
//! 2. a call of `5 d` under a limit of `d`: [`Outcome::TimedOut`]; the call is cancelled — its
//!    timer is cleared through its [`SvcHandle`](crate::SvcHandle), or its future dropped —
//!    so it never completes.
//!
//! The styles' timeout errors differ (`weft::time::Elapsed`, [`TimedOut`](crate::TimedOut)),
//! so each maps its result to the shared [`Outcome`]. The `async fn` uses
//! [`Env::timeout`] rather than the article's race against a rejecting timer: the two
//! futures would have different types, and the race would need boxing.
//!
//! The margins are `4 d`: a worker held off the CPU for longer than that while a call and
//! its timer are both due could let the two styles see different winners. The delays scale
//! with `d`, so a test that needs certainty uses a longer `timer(d)`.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use weft::callback::timeout;
use weft::promise::PromiseExt;

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env};

/// How much longer the slow side is than the fast one.
pub const FACTOR: u32 = 5;

/// What one timed call produced, whatever the style's error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call finished in time with this value.
    Value(u64),
    /// The call finished in time with this error.
    Failed(SvcError),
    /// The limit passed first; the call was cancelled.
    TimedOut,
}

impl Outcome {
    /// Maps a timed call's result (`Err` = the limit passed) to an `Outcome`.
    pub fn of<T>(r: Result<Result<u64, SvcError>, T>) -> Outcome {
        match r {
            Ok(Ok(v)) => Outcome::Value(v),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::TimedOut,
        }
    }
}

/// The `d` of `timer(d)` (the contract's 1 ms for any other kind).
pub fn unit(kind: Kind) -> Duration {
    match kind {
        Kind::Timer(d) => d,
        _ => Duration::from_millis(1),
    }
}

/// The two variants as `(call's delay, limit)`: fast under a long limit, slow under a short.
pub fn variants(kind: Kind) -> [(Duration, Duration); 2] {
    let d = unit(kind);
    [(d, d * FACTOR), (d * FACTOR, d)]
}

/// Callback: `async.timeout` around one call of `delay`, with `limit`.
pub fn callback_timeout(
    delay: Duration,
    limit: Duration,
    x: u64,
    done: impl FnOnce(Outcome) + Send + 'static,
) {
    timeout(
        limit,
        move |part| svc_cb(Kind::Timer(delay), x, part),
        move |r: Result<Result<u64, SvcError>, _>| done(Outcome::of(r)),
    );
}

/// Callback: both variants, the second started from the first's callback.
pub fn callback(kind: Kind, x: u64, done: impl FnOnce((Outcome, Outcome)) + Send + 'static) {
    let [(fast, long), (slow, short)] = variants(kind);
    callback_timeout(fast, long, x, move |in_time| {
        callback_timeout(slow, short, x, move |too_slow| done((in_time, too_slow)))
    });
}

/// Combinator: `fetch(url).timeout(limit)` for one call of `delay`.
pub fn combinator_timeout(
    delay: Duration,
    limit: Duration,
    x: u64,
) -> impl Future<Output = Outcome> {
    svc(Kind::Timer(delay), x).timeout(limit).map(Outcome::of)
}

/// Combinator: both variants in sequence. `then` continues only after an `Ok`, so the
/// first variant's outcome is wrapped in an `Ok` that cannot fail.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = (Outcome, Outcome)> {
    let [(fast, long), (slow, short)] = variants(kind);
    combinator_timeout(fast, long, x)
        .map(Ok::<_, Infallible>)
        .then(move |in_time| {
            combinator_timeout(slow, short, x).map(move |too_slow| Ok((in_time, too_slow)))
        })
        .map(|r| r.unwrap_or_else(|never| match never {}))
}

/// `async fn`: `fetchWithTimeout(url, ms)` for one call of `delay`.
pub async fn fetch_with_timeout<E: Env>(
    env: &E,
    delay: Duration,
    limit: Duration,
    x: u64,
) -> Outcome {
    Outcome::of(env.timeout(limit, env.svc(Kind::Timer(delay), x)).await)
}

/// `async fn`: both variants, one `await` after the other.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> (Outcome, Outcome) {
    let [(fast, long), (slow, short)] = variants(kind);
    let in_time = fetch_with_timeout(&env, fast, long, x).await;
    let too_slow = fetch_with_timeout(&env, slow, short, x).await;
    (in_time, too_slow)
}

/// The `timeout` case.
#[derive(Debug)]
pub struct Timeout;

impl Case for Timeout {
    const ID: &'static str = "timeout";
    const TITLE: &'static str = "timeout via Promise.race (1 ms under 5 ms; 5 ms under 1 ms)";
    const KINDS: &'static [Kind] = &[Kind::TIMER];
    type Out = (Outcome, Outcome);

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback(kind, x, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator(kind, x)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn(env, kind, x)
    }
}

super::entries!(Timeout);
