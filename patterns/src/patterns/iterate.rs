//! `iterate`: async iteration — one call per item of a list, one at a time, all at once, or
//! a few at a time.
//!
//! ```js
//! users.forEach(async (user) => { await saveUser(user); });   // the bug: nobody waits
//!
//! for (const user of users) { await saveUser(user); }         // sequential loop
//! await Promise.all(users.map((user) => saveUser(user)));     // parallel
//! ```
//!
//! Three cases over [`ITEMS`] = 100 items (item `i` of an op started with `x` is `x + i`),
//! each giving every value in input order:
//!
//! | case | callback | combinator | `async fn` |
//! |---|---|---|---|
//! | `iterate_seq` | `series` | `promise::series` of the items' calls | a `for` loop of `await`s |
//! | `iterate_par` | `parallel` | `all` | `await all(items.map(..))` |
//! | `iterate_bounded` | `parallel_limit` | [`map_bounded`] | [`map_bounded_async`] |
//!
//! `iterate_bounded` keeps [`LIMIT`] = 8 calls in flight — what users reach for next, when
//! "all at once" is too many. All three styles run a true sliding window: a new call starts
//! as soon as one finishes (not batches of 8), and the results come back in input order.
//! The future styles run 8 *workers* that pull the next item from a shared counter, joined
//! with `all`; the callback style starts a new call from each completion.
//!
//! The `forEach` bug (fire and forget: the loop returns before the saves have happened) is
//! shown in `examples/iterate.rs`; it is not a benchmark case.
//!
//! The helpers both bounded and sequential styles lean on live in the runtime:
//! `weft::callback::parallel_limit` (`async.mapLimit`) and `weft::promise::series` (a
//! sequential loop as one combinator: JavaScript's
//! `items.reduce((p, item) => p.then(..), Promise.resolve())`, which as a chain of 100
//! `then`s would have no static type without boxing every step).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use weft::callback::{Callback, parallel, parallel_limit, series as callback_series};
use weft::promise::{PromiseExt, all, series};

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env};

/// Items per op.
pub const ITEMS: usize = 100;
/// Calls in flight in `iterate_bounded`.
pub const LIMIT: usize = 8;

/// Puts the `(index, value)` lists of the bounded workers back in input order.
fn in_input_order<T>(n: usize, lists: Vec<Vec<(usize, T)>>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, v) in lists.into_iter().flatten() {
        slots[i] = Some(v);
    }
    slots
        .into_iter()
        .map(|v| v.expect("every item was handled by a worker"))
        .collect()
}

/// Combinator: calls `f(0..n)` with at most `limit` in flight, results in input order, or
/// the first error (the other workers are dropped with their calls).
///
/// `limit` workers, each a `promise::series` over the items it pulls from a shared counter,
/// joined with `all`.
pub fn map_bounded<T, E, F, Fut>(
    n: usize,
    limit: usize,
    f: F,
) -> impl Future<Output = Result<Vec<T>, E>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, E>> + Unpin,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..limit.min(n))
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
            series(std::iter::from_fn(move || {
                let i = next.fetch_add(1, Relaxed);
                (i < n).then(|| f(i).map_ok(move |v| (i, v)))
            }))
        })
        .collect();
    all(workers).map_ok(move |lists| in_input_order(n, lists))
}

/// `async fn`: calls `f(0..n)` with at most `limit` in flight, results in input order, or
/// the first error: `limit` worker loops pulling items from a shared counter, joined with
/// `await all(workers)` — the pool users write in JavaScript.
pub async fn map_bounded_async<T, E, F, Fut>(n: usize, limit: usize, f: F) -> Result<Vec<T>, E>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let next = AtomicUsize::new(0);
    let workers: Vec<_> = (0..limit.min(n)).map(|_| worker(&f, &next, n)).collect();
    let lists = all(workers).await?;
    Ok(in_input_order(n, lists))
}

/// One worker of [`map_bounded_async`]: takes the next item until there are none.
async fn worker<T, E, F, Fut>(f: &F, next: &AtomicUsize, n: usize) -> Result<Vec<(usize, T)>, E>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut handled = Vec::new();
    loop {
        let i = next.fetch_add(1, Relaxed);
        if i >= n {
            return Ok(handled);
        }
        handled.push((i, f(i).await?));
    }
}

// --- the three cases ---------------------------------------------------------------------------

/// Callback, sequential: `async.series` over the items.
pub fn callback_seq(kind: Kind, x: u64, n: usize, done: impl Callback<Vec<u64>, SvcError>) {
    callback_series(
        n,
        move |i, part| {
            svc_cb(kind, x + i as u64, part);
        },
        done,
    );
}

/// Callback, parallel: `async.parallel` over the items.
pub fn callback_par(kind: Kind, x: u64, n: usize, done: impl Callback<Vec<u64>, SvcError>) {
    parallel(
        n,
        move |i, part| {
            svc_cb(kind, x + i as u64, part);
        },
        done,
    );
}

/// Callback, bounded: `parallel_limit` over the items.
pub fn callback_bounded(
    kind: Kind,
    x: u64,
    n: usize,
    limit: usize,
    done: impl Callback<Vec<u64>, SvcError>,
) {
    parallel_limit(
        n,
        limit,
        move |i, part| {
            svc_cb(kind, x + i as u64, part);
        },
        done,
    );
}

/// Combinator, sequential: `promise::series` of the items' calls.
pub fn combinator_seq(
    kind: Kind,
    x: u64,
    n: usize,
) -> impl Future<Output = Result<Vec<u64>, SvcError>> {
    series((0..n as u64).map(move |i| svc(kind, x + i)))
}

/// Combinator, parallel: `Promise.all(items.map(save))`.
pub fn combinator_par(
    kind: Kind,
    x: u64,
    n: usize,
) -> impl Future<Output = Result<Vec<u64>, SvcError>> {
    all((0..n as u64).map(|i| svc(kind, x + i)).collect::<Vec<_>>())
}

/// Combinator, bounded: [`map_bounded`] over the items.
pub fn combinator_bounded(
    kind: Kind,
    x: u64,
    n: usize,
    limit: usize,
) -> impl Future<Output = Result<Vec<u64>, SvcError>> {
    map_bounded(n, limit, move |i| svc(kind, x + i as u64))
}

/// `async fn`, sequential: `for (const user of users) await saveUser(user)`.
pub async fn async_fn_seq<E: Env>(
    env: E,
    kind: Kind,
    x: u64,
    n: usize,
) -> Result<Vec<u64>, SvcError> {
    let mut saved = Vec::with_capacity(n);
    for i in 0..n as u64 {
        saved.push(env.svc(kind, x + i).await?);
    }
    Ok(saved)
}

/// `async fn`, parallel: `await Promise.all(users.map(saveUser))`.
pub async fn async_fn_par<E: Env>(
    env: E,
    kind: Kind,
    x: u64,
    n: usize,
) -> Result<Vec<u64>, SvcError> {
    all((0..n as u64)
        .map(|i| env.svc(kind, x + i))
        .collect::<Vec<_>>())
    .await
}

/// `async fn`, bounded: [`map_bounded_async`] over the items.
pub async fn async_fn_bounded<E: Env>(
    env: E,
    kind: Kind,
    x: u64,
    n: usize,
    limit: usize,
) -> Result<Vec<u64>, SvcError> {
    map_bounded_async(n, limit, |i| env.svc(kind, x + i as u64)).await
}

/// The `iterate_seq` case: a sequential loop over 100 items.
#[derive(Debug)]
pub struct IterateSeq;

impl Case for IterateSeq {
    const ID: &'static str = "iterate_seq";
    const TITLE: &'static str = "async iteration: a sequential loop";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::Net];
    type Out = Result<Vec<u64>, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback_seq(kind, x, ITEMS, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator_seq(kind, x, ITEMS)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn_seq(env, kind, x, ITEMS)
    }
}

/// The `iterate_par` case: 100 items, all at once.
#[derive(Debug)]
pub struct IteratePar;

impl Case for IteratePar {
    const ID: &'static str = "iterate_par";
    const TITLE: &'static str = "async iteration: parallel map + all";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::Net];
    type Out = Result<Vec<u64>, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback_par(kind, x, ITEMS, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator_par(kind, x, ITEMS)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn_par(env, kind, x, ITEMS)
    }
}

/// The `iterate_bounded` case: 100 items, 8 in flight.
#[derive(Debug)]
pub struct IterateBounded;

impl Case for IterateBounded {
    const ID: &'static str = "iterate_bounded";
    const TITLE: &'static str = "async iteration: bounded to 8 in flight";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::Net];
    type Out = Result<Vec<u64>, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback_bounded(kind, x, ITEMS, LIMIT, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator_bounded(kind, x, ITEMS, LIMIT)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn_bounded(env, kind, x, ITEMS, LIMIT)
    }
}

super::entries!(IterateSeq, IteratePar, IterateBounded);
