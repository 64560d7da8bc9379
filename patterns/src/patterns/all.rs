//! `all`: `Promise.all`, the dashboard — N independent calls, results in input order.
//!
//! Two cases: `all_3` (the dashboard's user, notifications, activity) and `all_100`. Call
//! `i` of an op started with `x` uses `x + i`.
//!
//! ```js
//! const [user, notifications, activity] = await Promise.all([
//!   fetch("/api/user"), fetch("/api/notifications"), fetch("/api/activity")]);
//! ```
//!
//! `all` of futures polls them concurrently inside one task (concurrency, not
//! parallelism); the callback style starts every call at once with `parallel`.

use std::future::Future;

use weft::callback::{Callback, parallel};
use weft::promise::{PromiseExt, all};

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env};

/// Callback: `async.parallel` over `n` calls.
pub fn callback(kind: Kind, x: u64, n: usize, done: impl Callback<Vec<u64>, SvcError>) {
    parallel(
        n,
        move |i, part| {
            svc_cb(kind, x + i as u64, part);
        },
        done,
    );
}

/// Combinator: `Promise.all(calls)`; for three, an array (no allocation).
pub fn combinator_3(kind: Kind, x: u64) -> impl Future<Output = Result<Vec<u64>, SvcError>> {
    all([svc(kind, x), svc(kind, x + 1), svc(kind, x + 2)]).map_ok(Vec::from)
}

/// Combinator: `Promise.all(calls)` over a `Vec`.
pub fn combinator(
    kind: Kind,
    x: u64,
    n: usize,
) -> impl Future<Output = Result<Vec<u64>, SvcError>> {
    all((0..n as u64).map(|i| svc(kind, x + i)).collect::<Vec<_>>())
}

/// `async fn`: `await Promise.all(...)`, the dashboard.
pub async fn async_fn_3<E: Env>(env: E, kind: Kind, x: u64) -> Result<Vec<u64>, SvcError> {
    let [user, notifications, activity] =
        all([env.svc(kind, x), env.svc(kind, x + 1), env.svc(kind, x + 2)]).await?;
    Ok(vec![user, notifications, activity])
}

/// `async fn`: `await Promise.all(items.map(fetch))`.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64, n: usize) -> Result<Vec<u64>, SvcError> {
    all((0..n as u64)
        .map(|i| env.svc(kind, x + i))
        .collect::<Vec<_>>())
    .await
}

/// The `all_3` case.
#[derive(Debug)]
pub struct All3;

impl Case for All3 {
    const ID: &'static str = "all_3";
    const TITLE: &'static str = "Promise.all, the dashboard (N = 3)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::TIMER, Kind::Net];
    type Out = Result<Vec<u64>, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback(kind, x, 3, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator_3(kind, x)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn_3(env, kind, x)
    }
}

/// The `all_100` case.
#[derive(Debug)]
pub struct All100;

impl Case for All100 {
    const ID: &'static str = "all_100";
    const TITLE: &'static str = "Promise.all (N = 100)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::TIMER, Kind::Net];
    type Out = Result<Vec<u64>, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback(kind, x, 100, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator(kind, x, 100)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn(env, kind, x, 100)
    }
}

super::entries!(All3, All100);
