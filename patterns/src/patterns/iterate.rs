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
//! | `iterate_seq` | `series` | [`in_series`] of the items' calls | a `for` loop of `await`s |
//! | `iterate_par` | `parallel` | `all` | `await all(items.map(..))` |
//! | `iterate_bounded` | [`parallel_limit`] | [`map_bounded`] | [`map_bounded_async`] |
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
//! # Deviations: helpers the runtime lacks
//!
//! - [`parallel_limit`] — `async.parallelLimit` / `async.mapLimit` — is written here on top
//!   of `weft::callback`'s [`Callback`] trait; it belongs next to `series` and `parallel` in
//!   `weft::callback`.
//! - [`in_series`] — a sequential loop as one combinator, JavaScript's
//!   `items.reduce((p, item) => p.then(..), Promise.resolve())` — is written here too:
//!   `weft::promise` has no sequential combinator, and a chain of 100 `then`s has no
//!   static type without boxing every step. It belongs in `weft::promise` beside `all`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use weft::callback::{parallel, resolve_later, series, Callback};
use weft::promise::{all, PromiseExt};

use crate::service::{svc, svc_cb, Kind, SvcError};
use crate::{Case, Env};

/// Items per op.
pub const ITEMS: usize = 100;
/// Calls in flight in `iterate_bounded`.
pub const LIMIT: usize = 8;

// --- parallel_limit: the callback helper -----------------------------------------------------

/// The callback [`parallel_limit`] hands to operation `index`: call it once with the
/// operation's outcome (as `weft::callback::Part`, which only the runtime can make).
pub struct LimitPart<T, E> {
    sink: Arc<dyn LimitSink<T, E>>,
    index: usize,
}

impl<T, E> LimitPart<T, E> {
    /// Which operation this is (counting from 0).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<T: 'static, E: 'static> Callback<T, E> for LimitPart<T, E> {
    fn call(self, result: Result<T, E>) {
        self.sink.settle(self.index, result)
    }
}

impl<T, E> fmt::Debug for LimitPart<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitPart")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

trait LimitSink<T, E>: Send + Sync {
    fn settle(self: Arc<Self>, index: usize, result: Result<T, E>);
}

struct Limit<T, E, Op, D> {
    st: Mutex<LimitState<T, Op, D>>,
    n: usize,
    _e: PhantomData<fn(E)>,
}

struct LimitState<T, Op, D> {
    results: Vec<Option<T>>,
    /// Operations not yet succeeded.
    remaining: usize,
    /// The next operation to start.
    next: usize,
    /// Free places in the window: operations that may start now, if any are left.
    wanted: usize,
    /// `None` while some thread is calling it.
    op: Option<Op>,
    done: Option<D>,
}

impl<T, E, Op, D> Limit<T, E, Op, D>
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, LimitPart<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    /// Starts operations while there are free places. The operation function is called
    /// outside the lock (it may settle at once, and completions may arrive on other
    /// workers meanwhile); whoever holds it serves every free place before giving it back,
    /// and a thread that finds it taken leaves its place to the holder.
    fn drive(self: &Arc<Self>) {
        let mut held: Option<Op> = None;
        loop {
            let (mut op, i) = {
                let mut st = self.st.lock();
                if let Some(op) = held.take() {
                    st.op = Some(op);
                }
                if st.done.is_none() || st.wanted == 0 || st.next == self.n {
                    return;
                }
                let Some(op) = st.op.take() else { return };
                st.wanted -= 1;
                let i = st.next;
                st.next += 1;
                (op, i)
            };
            op(
                i,
                LimitPart {
                    sink: self.clone(),
                    index: i,
                },
            );
            held = Some(op);
        }
    }
}

impl<T, E, Op, D> LimitSink<T, E> for Limit<T, E, Op, D>
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, LimitPart<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    fn settle(self: Arc<Self>, index: usize, result: Result<T, E>) {
        let mut st = self.st.lock();
        if st.done.is_none() {
            return;
        }
        match result {
            Err(e) => {
                let done = st.done.take();
                drop(st);
                if let Some(done) = done {
                    done.call(Err(e));
                }
            }
            Ok(v) => {
                st.results[index] = Some(v);
                st.remaining -= 1;
                if st.remaining == 0 {
                    let values = st.results.drain(..).map(|v| v.expect("settled")).collect();
                    let done = st.done.take();
                    drop(st);
                    if let Some(done) = done {
                        done.call(Ok(values));
                    }
                    return;
                }
                st.wanted += 1;
                drop(st);
                self.drive();
            }
        }
    }
}

/// Runs `op(0..n)` with at most `limit` operations in flight, starting the next one as soon
/// as one succeeds; `done` gets every value in input order, or the first error as soon as
/// it occurs (no operation starts after that; those in flight are ignored):
/// `async.mapLimit`, a bounded `Promise.all`.
///
/// Written here on top of [`Callback`]; it belongs in `weft::callback` beside
/// [`parallel`].
///
/// # Panics
///
/// If `limit` is 0; outside a runtime when `n == 0` (the empty result is deferred).
pub fn parallel_limit<T, E, Op, D>(n: usize, limit: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, LimitPart<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    assert!(limit > 0, "parallel_limit: the limit must be at least 1");
    if n == 0 {
        return resolve_later(Ok(Vec::new()), done);
    }
    let sink = Arc::new(Limit {
        st: Mutex::new(LimitState {
            results: (0..n).map(|_| None).collect(),
            remaining: n,
            next: 0,
            wanted: limit.min(n),
            op: Some(op),
            done: Some(done),
        }),
        n,
        _e: PhantomData,
    });
    sink.drive();
}

// --- in_series: the sequential combinator ------------------------------------------------------

/// The future of [`in_series`].
#[must_use = "futures do nothing unless awaited"]
pub struct InSeries<I: Iterator, T> {
    items: I,
    current: Option<I::Item>,
    values: Vec<T>,
    finished: bool,
}

// Only the current item's future is polled, and it is `Unpin`; nothing is pinned.
impl<I: Iterator, T> Unpin for InSeries<I, T> where I::Item: Unpin {}

impl<I, T, E> Future for InSeries<I, T>
where
    I: Iterator,
    I::Item: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.finished, "`in_series` polled after completion");
        loop {
            let current = match &mut this.current {
                Some(fut) => fut,
                None => match this.items.next() {
                    Some(fut) => this.current.insert(fut),
                    None => {
                        this.finished = true;
                        return Poll::Ready(Ok(std::mem::take(&mut this.values)));
                    }
                },
            };
            let out = std::task::ready!(Pin::new(current).poll(cx));
            this.current = None;
            match out {
                Ok(v) => this.values.push(v),
                Err(e) => {
                    this.finished = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl<I: Iterator, T> fmt::Debug for InSeries<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InSeries")
            .field("done", &self.values.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Awaits the futures of `items` one after the other — each is taken from the iterator
/// only when the previous one has succeeded — and yields their values in order, or the
/// first error (no later item is started): `for (const item of items) await f(item)` as
/// one combinator, the promise chain
/// `items.reduce((p, item) => p.then(() => f(item)), Promise.resolve())`.
///
/// Written here because `weft::promise` has none (see the module notes). The items'
/// futures must be `Unpin` (the service's are); no allocation beyond the values.
pub fn in_series<I, T, E>(items: I) -> InSeries<I::IntoIter, T>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>> + Unpin,
{
    let items = items.into_iter();
    InSeries {
        values: Vec::with_capacity(items.size_hint().0),
        items,
        current: None,
        finished: false,
    }
}

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
/// `limit` workers, each an [`in_series`] over the items it pulls from a shared counter,
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
            in_series(std::iter::from_fn(move || {
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
    series(
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

/// Callback, bounded: [`parallel_limit`] over the items.
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

/// Combinator, sequential: [`in_series`] of the items' calls.
pub fn combinator_seq(
    kind: Kind,
    x: u64,
    n: usize,
) -> impl Future<Output = Result<Vec<u64>, SvcError>> {
    in_series((0..n as u64).map(move |i| svc(kind, x + i)))
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
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File];
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
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File];
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
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File];
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
