//! `any`: `Promise.any` — the first success; if all fail, one error holding every error.
//!
//! ```js
//! Promise.any([api1(), api2(), api3()])
//!   .then((result) => console.log("First success:", result))
//!   .catch((error) => console.error("All failed"));
//! ```
//!
//! One op runs two `any`s of three calls (call `i` with `x + i`), one after the other:
//!
//! 1. calls 0 and 1 fail, call 2 succeeds: `Ok(expected(x + 2))`;
//! 2. all three fail: `Err([SvcError(x), SvcError(x + 1), SvcError(x + 2)])` — every error,
//!    in input order, whatever order they failed in.
//!
//! The futures' error is an [`AggregateError`] and the
//! callbacks' a `Vec`; both become a `Vec<SvcError>` in the [`Outcome`], so that the styles
//! compare equal.

use std::convert::Infallible;
use std::future::Future;

use weft::callback::any as any_cb;
use weft::promise::{AggregateError, PromiseExt, any};

use crate::service::{Kind, SvcError, call, call_cb};
use crate::{Case, Env};

/// Calls in one `any`.
pub const N: usize = 3;

/// One `any`'s result: the first success, or every error in input order.
pub type AnyResult = Result<u64, Vec<SvcError>>;

/// What one op produces: both variants' results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Calls 0 and 1 fail: call 2's value.
    pub one_succeeds: AnyResult,
    /// All three fail: their three errors.
    pub all_fail: AnyResult,
}

/// Whether call `i` fails in the variant where the first `failing` calls fail.
fn fails(i: usize, failing: usize) -> bool {
    i < failing
}

/// Callback: one `any` over three calls of which the first `failing` fail.
pub fn callback_any(
    kind: Kind,
    x: u64,
    failing: usize,
    done: impl FnOnce(AnyResult) + Send + 'static,
) {
    any_cb(
        N,
        move |i, part| {
            call_cb(kind, x + i as u64, fails(i, failing), part);
        },
        done,
    );
}

/// Callback: both variants, the second started from the first's callback.
pub fn callback(kind: Kind, x: u64, done: impl FnOnce(Outcome) + Send + 'static) {
    callback_any(kind, x, 2, move |one_succeeds| {
        callback_any(kind, x, N, move |all_fail| {
            done(Outcome {
                one_succeeds,
                all_fail,
            })
        })
    });
}

/// Combinator: `Promise.any([...])` over three calls of which the first `failing` fail.
pub fn combinator_any(kind: Kind, x: u64, failing: usize) -> impl Future<Output = AnyResult> {
    any([
        call(kind, x, fails(0, failing)),
        call(kind, x + 1, fails(1, failing)),
        call(kind, x + 2, fails(2, failing)),
    ])
    .map(|r| r.map_err(AggregateError::into_errors))
}

/// Combinator: both variants in sequence. `then` continues only after an `Ok`, so the
/// first variant's result, success or failure, is wrapped in an `Ok` that cannot fail.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Outcome> {
    combinator_any(kind, x, 2)
        .map(Ok::<_, Infallible>)
        .then(move |one_succeeds| {
            combinator_any(kind, x, N).map(move |all_fail| {
                Ok(Outcome {
                    one_succeeds,
                    all_fail,
                })
            })
        })
        .map(|r| r.unwrap_or_else(|never| match never {}))
}

/// `async fn`: `try { await Promise.any([...]) } catch (error) { error.errors }`.
pub async fn async_fn_any<E: Env>(env: &E, kind: Kind, x: u64, failing: usize) -> AnyResult {
    let result = any([
        env.call(kind, x, fails(0, failing)),
        env.call(kind, x + 1, fails(1, failing)),
        env.call(kind, x + 2, fails(2, failing)),
    ])
    .await;
    match result {
        Ok(first) => Ok(first),
        Err(error) => Err(error.into_errors()),
    }
}

/// `async fn`: both variants, one `await` after the other.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Outcome {
    let one_succeeds = async_fn_any(&env, kind, x, 2).await;
    let all_fail = async_fn_any(&env, kind, x, N).await;
    Outcome {
        one_succeeds,
        all_fail,
    }
}

/// The `any` case.
#[derive(Debug)]
pub struct Any;

impl Case for Any {
    const ID: &'static str = "any";
    const TITLE: &'static str = "Promise.any (3 calls: two fail; then all fail)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::TIMER];
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

super::entries!(Any);
