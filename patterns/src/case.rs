//! What every pattern provides ([`Case`]), and the type-erased view the harness, the tests
//! and the comparison command iterate over ([`Runner`], [`cases`]).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use crate::env::Env;
use crate::service::Kind;

/// One pattern (or one variant of a pattern, such as `all_3` and `all_100`) in the three
/// styles. Each style does the same calls with the same inputs and produces the same
/// [`Out`](Case::Out); one call of a style is one *op*.
pub trait Case: Send + Sync + 'static {
    /// The benchmark id: `patterns/<ID>/<kind>`.
    const ID: &'static str;
    /// The article section it comes from.
    const TITLE: &'static str;
    /// The kinds the contract lists for it.
    const KINDS: &'static [Kind];
    /// Only meaningful on a one-worker runtime (`event_order`).
    const ONE_WORKER_ONLY: bool = false;

    /// What one op produces: values, errors, and counts of effects (cleanups, handler
    /// calls), compared across the styles by the tests.
    type Out: PartialEq + Debug + Send + 'static;

    /// The callback style: starts the op and calls `done` once with its outcome.
    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static);

    /// The combinator style: the op as a future built from `weft::promise` combinators.
    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static;

    /// The `async fn` style, on any [`Env`] (weft, or tokio as the baseline).
    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static;
}

/// The styles of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Style {
    /// Error-first callbacks on `weft::callback`.
    Callback,
    /// `weft::promise` combinators.
    Combinator,
    /// `async fn` on weft.
    AsyncFn,
    /// The same `async fn` on tokio (the baseline).
    TokioAsyncFn,
}

impl Style {
    /// Every style, in table order.
    pub const ALL: [Style; 4] = [
        Style::Callback,
        Style::Combinator,
        Style::AsyncFn,
        Style::TokioAsyncFn,
    ];

    /// The style's name in tables, JSON and bench ids.
    pub fn name(self) -> &'static str {
        match self {
            Style::Callback => "callback",
            Style::Combinator => "combinator",
            Style::AsyncFn => "async_fn",
            Style::TokioAsyncFn => "tokio_async_fn",
        }
    }
}

/// A [`Case`] with its types erased, for iterating over all of them.
pub trait Runner: Send + Sync {
    /// [`Case::ID`].
    fn id(&self) -> &'static str;
    /// [`Case::TITLE`].
    fn title(&self) -> &'static str;
    /// [`Case::KINDS`].
    fn kinds(&self) -> &'static [Kind];
    /// [`Case::ONE_WORKER_ONLY`].
    fn one_worker_only(&self) -> bool;
    /// Runs `ops` ops (rounded up to a multiple of `inflight`) with `inflight` in flight on
    /// `rt`, and returns the wall time and the number of ops run.
    fn run_weft(
        &self,
        rt: &weft::Runtime,
        style: Style,
        kind: Kind,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64);
    /// The `async fn` style on tokio, as [`run_weft`](Runner::run_weft).
    #[cfg(feature = "tokio")]
    fn run_tokio(
        &self,
        rt: &tokio::runtime::Runtime,
        kind: Kind,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64);
    /// Runs one op with input `x` in every weft style and returns the outcomes' `Debug`
    /// forms, in [`Style::ALL`] order (without tokio), for the equality tests.
    fn outcomes(&self, rt: &weft::Runtime, kind: Kind, x: u64) -> [String; 3];
}

/// Counts down to zero, then wakes whoever waits: how a batch of callbacks (or of tasks
/// that nobody joins) tells the harness — or a pattern's op — that it is done.
#[derive(Debug)]
pub struct Latch {
    st: Mutex<(u64, Option<Waker>)>,
}

impl Latch {
    /// A latch that opens after `n` calls to [`count_down`](Latch::count_down).
    pub fn new(n: u64) -> Arc<Latch> {
        Arc::new(Latch {
            st: Mutex::new((n, None)),
        })
    }

    /// Counts one down; the last one wakes the waiter.
    pub fn count_down(&self) {
        let w = {
            let mut st = self.st.lock();
            st.0 -= 1;
            if st.0 > 0 {
                return;
            }
            st.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Completes once the count is zero.
    pub fn wait(self: &Arc<Self>) -> LatchWait {
        LatchWait(self.clone())
    }
}

/// The future of [`Latch::wait`].
#[derive(Debug)]
pub struct LatchWait(Arc<Latch>);

impl Future for LatchWait {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.0.st.lock();
        if st.0 == 0 {
            return Poll::Ready(());
        }
        st.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}
