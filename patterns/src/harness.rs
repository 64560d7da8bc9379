//! How one measurement runs — shared by `benches/patterns.rs` (criterion) and
//! `examples/compare.rs` (the table), so that both time exactly the same code.
//!
//! # What is timed
//!
//! `ops` ops of one case, style and kind, with `inflight` of them in flight: `inflight`
//! independent *lanes*, each running its share of the ops back to back (the next op of a
//! lane starts when the previous one finished). With `inflight == 1` that is the latency of
//! one op; with 64, throughput under concurrency.
//!
//! - **Future styles**: each lane is a spawned task looping over its ops; the clock runs
//!   from before the first spawn to after the last join, inside `block_on`.
//! - **Callback style**: each lane is a chain of callbacks — an op's `done` starts the
//!   lane's next op — started by one deferred callback; the last lane to finish opens a
//!   [`Latch`] that `block_on` awaits. No task runs per op.
//!
//! For the `net` kind, one untimed round (one op per lane) runs first, so that the
//! connection pool holds what the timed ops need before the clock starts.
//!
//! Op `j` of lane `w` uses input `x = w * LANE_STRIDE + j`. Outputs go through
//! `std::hint::black_box`.

use std::future::Future;
use std::hint::black_box;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::case::{Case, Latch, Runner, Style};
use crate::env::{Env, Weft};
use crate::service::Kind;

/// Inputs of different lanes are this far apart.
pub const LANE_STRIDE: u64 = 1_000_003;

/// A weft runtime with `workers` workers, as the benchmarks build it.
///
/// # Panics
///
/// If the runtime cannot be built (the error says why).
pub fn weft_runtime(workers: usize) -> weft::Runtime {
    weft::Runtime::builder()
        .worker_threads(workers)
        .thread_name("weft-bench")
        .build()
        .unwrap_or_else(|e| panic!("cannot build a weft runtime with {workers} workers: {e}"))
}

/// A tokio multi-thread runtime with `workers` workers and its timer and I/O enabled.
#[cfg(feature = "tokio")]
pub fn tokio_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .on_thread_start(crate::net::tag_tokio_thread())
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build a tokio runtime with {workers} workers: {e}"))
}

fn lanes(inflight: usize, ops: u64) -> (u64, u64) {
    let inflight = inflight.max(1) as u64;
    let per = ops.div_ceil(inflight).max(1);
    (per, per * inflight)
}

/// Runs `inflight` lanes of `per` futures each, made by `make(x)` and spawned through
/// `env`; the time from the first spawn to the last join. Awaited inside the runtime's
/// `block_on`.
async fn time_lanes<E, F, Fut>(env: E, inflight: usize, per: u64, make: F) -> Duration
where
    E: Env,
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let start = Instant::now();
    let lanes: Vec<_> = (0..inflight as u64)
        .map(|w| {
            let make = make.clone();
            env.spawn(async move {
                for j in 0..per {
                    black_box(make(w * LANE_STRIDE + j).await);
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await;
    }
    start.elapsed()
}

/// Runs lanes of futures made by `make(x)` on weft.
fn weft_futures<F, Fut>(rt: &weft::Runtime, inflight: usize, ops: u64, make: F) -> (Duration, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (per, total) = lanes(inflight, ops);
    (rt.block_on(time_lanes(Weft, inflight, per, make)), total)
}

/// Runs lanes of futures made by `make(x)` on tokio.
#[cfg(feature = "tokio")]
fn tokio_futures<F, Fut>(
    rt: &tokio::runtime::Runtime,
    inflight: usize,
    ops: u64,
    make: F,
) -> (Duration, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (per, total) = lanes(inflight, ops);
    (
        rt.block_on(time_lanes(crate::env::Tokio, inflight, per, make)),
        total,
    )
}

/// One lane of the callback style: runs op `next`, and from its `done` the one after.
///
/// The lane rides its callbacks boxed: each `done` closure then captures one pointer. Moved
/// by value, the lane's five words were stored into each closure (and each deferred cell)
/// in pieces and loaded back in 16-byte halves, and every such load waited for the stores
/// to retire: `perf` put 45% of `single/ready`'s callback time on two of them, which is
/// the harness's cost, not the pattern's.
struct Lane<C> {
    kind: Kind,
    w: u64,
    next: u64,
    end: u64,
    latch: Arc<Latch>,
    _case: PhantomData<fn() -> C>,
}

impl<C: Case> Lane<C> {
    fn go(self: Box<Self>) {
        let x = self.w * LANE_STRIDE + self.next;
        C::callback(self.kind, x, move |out| {
            black_box(out);
            self.after()
        });
    }

    fn after(mut self: Box<Self>) {
        self.next += 1;
        if self.next < self.end {
            self.go()
        } else {
            self.latch.count_down()
        }
    }
}

fn weft_callbacks<C: Case>(
    rt: &weft::Runtime,
    kind: Kind,
    inflight: usize,
    ops: u64,
) -> (Duration, u64) {
    let (per, total) = lanes(inflight, ops);
    let elapsed = rt.block_on(async move {
        let latch = Latch::new(inflight as u64);
        let start = Instant::now();
        let l = latch.clone();
        weft::callback::defer(move || {
            for w in 0..inflight as u64 {
                Box::new(Lane::<C> {
                    kind,
                    w,
                    next: 0,
                    end: per,
                    latch: l.clone(),
                    _case: PhantomData,
                })
                .go();
            }
        });
        latch.wait().await;
        start.elapsed()
    });
    (elapsed, total)
}

/// The type-erased view of a [`Case`].
pub(crate) struct Entry<C>(PhantomData<fn() -> C>);

impl<C> Entry<C> {
    pub(crate) const fn new() -> Self {
        Entry(PhantomData)
    }
}

/// Starts a callback-style op on one of `rt`'s workers, handing it `done`, and waits for
/// the outcome it delivers there (for examples and tests; nothing here is timed).
///
/// # Panics
///
/// If the op has not called `done` within a minute.
///
/// # Examples
///
/// ```
/// use weft_patterns::harness::await_callback;
/// use weft_patterns::{expected, svc_cb, Kind};
///
/// let rt = weft::Runtime::new().unwrap();
/// let v = await_callback(&rt, |done| {
///     svc_cb(Kind::Ready, 3, done);
/// });
/// assert_eq!(v, Ok(expected(Kind::Ready, 3)));
/// ```
pub fn await_callback<T, S>(rt: &weft::Runtime, start: S) -> T
where
    T: Send + 'static,
    S: FnOnce(Box<dyn FnOnce(T) + Send>) + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    rt.handle().defer(move || {
        start(Box::new(move |out| {
            // The receiver is gone only if the waiting thread gave up: nobody to tell.
            let _ = tx.send(out);
        }))
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("a callback op never completed: {e}"))
}

/// Runs one op in a style and returns its outcome.
pub fn run_one<C: Case>(rt: &weft::Runtime, style: Style, kind: Kind, x: u64) -> C::Out {
    match style {
        Style::Callback => await_callback(rt, move |done| C::callback(kind, x, done)),
        Style::Combinator => rt.block_on(rt.spawn(C::combinator(kind, x))).unwrap(),
        Style::AsyncFn => rt.block_on(rt.spawn(C::async_fn(Weft, kind, x))).unwrap(),
        Style::TokioAsyncFn => panic!("run_one runs weft styles only"),
    }
}

impl<C: Case> Runner for Entry<C> {
    fn id(&self) -> &'static str {
        C::ID
    }

    fn title(&self) -> &'static str {
        C::TITLE
    }

    fn kinds(&self) -> &'static [Kind] {
        C::KINDS
    }

    fn one_worker_only(&self) -> bool {
        C::ONE_WORKER_ONLY
    }

    fn run_weft(
        &self,
        rt: &weft::Runtime,
        style: Style,
        kind: Kind,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64) {
        let run = |ops| match style {
            Style::Callback => weft_callbacks::<C>(rt, kind, inflight, ops),
            Style::Combinator => weft_futures(rt, inflight, ops, move |x| C::combinator(kind, x)),
            Style::AsyncFn => weft_futures(rt, inflight, ops, move |x| C::async_fn(Weft, kind, x)),
            Style::TokioAsyncFn => panic!("run the tokio baseline with run_tokio"),
        };
        if kind == Kind::Net {
            // Untimed: fills the connection pool to what `inflight` lanes of this case use.
            run(inflight as u64);
        }
        run(ops)
    }

    #[cfg(feature = "tokio")]
    fn run_tokio(
        &self,
        rt: &tokio::runtime::Runtime,
        kind: Kind,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64) {
        let run = |ops| {
            tokio_futures(rt, inflight, ops, move |x| {
                C::async_fn(crate::env::Tokio, kind, x)
            })
        };
        if kind == Kind::Net {
            // Untimed: fills the connection pool, as on weft.
            run(inflight as u64);
        }
        run(ops)
    }

    fn outcomes(&self, rt: &weft::Runtime, kind: Kind, x: u64) -> [String; 3] {
        [Style::Callback, Style::Combinator, Style::AsyncFn]
            .map(|s| format!("{:?}", run_one::<C>(rt, s, kind, x)))
    }
}
