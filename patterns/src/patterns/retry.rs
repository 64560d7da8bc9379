//! `retry`: the article's `fetchWithRetry` — try again until it works or the attempts run
//! out.
//!
//! ```js
//! async function fetchWithRetry(url, retries = 3) {
//!   for (let attempt = 1; attempt <= retries; attempt++) {
//!     try {
//!       const response = await fetch(url);
//!       if (!response.ok) throw new Error(`HTTP error: ${response.status}`);
//!       return await response.json();
//!     } catch (error) {
//!       if (attempt === retries) throw error;
//!     }
//!   }
//! }
//! ```
//!
//! Attempt `a` (from 1) calls the service with `x + a`, with no delay between attempts. One
//! op runs two retries of up to [`RETRIES`] attempts, one after the other:
//!
//! 1. attempts 1 and 2 fail, attempt 3 succeeds: `Ok(expected(x + 3))`;
//! 2. all three fail: the last error, `Err(SvcError(x + 3))`.
//!
//! The [`Outcome`] also counts the service calls made: 6.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use weft::callback::retry as retry_cb;
use weft::promise::{PromiseExt, retry};

use crate::service::{Kind, SvcError, call, call_cb};
use crate::{Case, Env};

/// Attempts per retry.
pub const RETRIES: u32 = 3;

/// What one op produces: both variants' results and the calls made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Attempts 1 and 2 fail, attempt 3 succeeds: `Ok(expected(x + 3))`.
    pub third_succeeds: Result<u64, SvcError>,
    /// All three attempts fail: `Err(SvcError(x + 3))`.
    pub all_fail: Result<u64, SvcError>,
    /// Service calls made by both (3 + 3).
    pub calls: u32,
}

/// Callback: `async.retry` of up to three attempts, of which the first `failing` fail;
/// `calls` counts the attempts made.
pub fn callback_retry(
    kind: Kind,
    x: u64,
    failing: u32,
    calls: Arc<AtomicU32>,
    done: impl FnOnce(Result<u64, SvcError>) + Send + 'static,
) {
    retry_cb(
        RETRIES,
        move |attempt, part| {
            calls.fetch_add(1, Relaxed);
            call_cb(kind, x + attempt as u64, attempt <= failing, part);
        },
        done,
    );
}

/// Callback: both variants, the second started from the first's callback.
pub fn callback(kind: Kind, x: u64, done: impl FnOnce(Outcome) + Send + 'static) {
    let calls = Arc::new(AtomicU32::new(0));
    let (c1, c2) = (calls.clone(), calls.clone());
    callback_retry(kind, x, 2, c1, move |third_succeeds| {
        callback_retry(kind, x, RETRIES, c2, move |all_fail| {
            done(Outcome {
                third_succeeds,
                all_fail,
                calls: calls.load(Relaxed),
            })
        })
    });
}

/// Combinator: `retry(3, attempt => fetch(...))`, the first `failing` attempts failing.
pub fn combinator_retry(
    kind: Kind,
    x: u64,
    failing: u32,
    calls: Arc<AtomicU32>,
) -> impl Future<Output = Result<u64, SvcError>> {
    retry(RETRIES, move |attempt| {
        calls.fetch_add(1, Relaxed);
        call(kind, x + attempt as u64, attempt <= failing)
    })
}

/// Combinator: both variants in sequence. `then` continues only after an `Ok`, so the
/// first variant's result, success or failure, is wrapped in an `Ok` that cannot fail.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Outcome> {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    combinator_retry(kind, x, 2, calls.clone())
        .map(Ok::<_, Infallible>)
        .then(move |third_succeeds| {
            combinator_retry(kind, x, RETRIES, c)
                .map(move |all_fail| Ok((third_succeeds, all_fail)))
        })
        .map(move |r| {
            let (third_succeeds, all_fail) = r.unwrap_or_else(|never| match never {});
            Outcome {
                third_succeeds,
                all_fail,
                calls: calls.load(Relaxed),
            }
        })
}

/// `async fn`: `fetchWithRetry`, a loop around `await`; the first `failing` attempts fail.
pub async fn fetch_with_retry<E: Env>(
    env: &E,
    kind: Kind,
    x: u64,
    failing: u32,
    calls: &mut u32,
) -> Result<u64, SvcError> {
    let mut attempt = 1;
    loop {
        *calls += 1;
        match env.call(kind, x + attempt as u64, attempt <= failing).await {
            Err(_) if attempt < RETRIES => attempt += 1,
            result => return result,
        }
    }
}

/// `async fn`: both variants, one `await` after the other.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Outcome {
    let mut calls = 0;
    let third_succeeds = fetch_with_retry(&env, kind, x, 2, &mut calls).await;
    let all_fail = fetch_with_retry(&env, kind, x, RETRIES, &mut calls).await;
    Outcome {
        third_succeeds,
        all_fail,
        calls,
    }
}

/// The `retry` case.
#[derive(Debug)]
pub struct Retry;

impl Case for Retry {
    const ID: &'static str = "retry";
    const TITLE: &'static str = "fetchWithRetry (3 attempts: third succeeds; all fail)";
    const KINDS: &'static [Kind] = &[Kind::Ready];
    type Out = Outcome;

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

super::entries!(Retry);
