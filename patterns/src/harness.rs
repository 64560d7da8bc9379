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
//! Op `j` of lane `w` uses input `x = w * LANE_STRIDE + j`. Outputs go through
//! `std::hint::black_box`.

use std::future::Future;
use std::hint::black_box;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::case::{Case, Latch, Runner, Style};
use crate::env::Weft;
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
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build a tokio runtime with {workers} workers: {e}"))
}

fn lanes(inflight: usize, ops: u64) -> (u64, u64) {
    let inflight = inflight.max(1) as u64;
    let per = ops.div_ceil(inflight).max(1);
    (per, per * inflight)
}

/// Runs lanes of futures made by `make(x)` on weft.
fn weft_futures<F, Fut>(rt: &weft::Runtime, inflight: usize, ops: u64, make: F) -> (Duration, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (per, total) = lanes(inflight, ops);
    let elapsed = rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..inflight as u64)
            .map(|w| {
                let make = make.clone();
                weft::spawn(async move {
                    for j in 0..per {
                        black_box(make(w * LANE_STRIDE + j).await);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("a lane panicked");
        }
        start.elapsed()
    });
    (elapsed, total)
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
    let elapsed = rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..inflight as u64)
            .map(|w| {
                let make = make.clone();
                tokio::spawn(async move {
                    for j in 0..per {
                        black_box(make(w * LANE_STRIDE + j).await);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("a lane panicked");
        }
        start.elapsed()
    });
    (elapsed, total)
}

/// One lane of the callback style: runs op `next`, and from its `done` the one after.
struct Lane<C> {
    kind: Kind,
    w: u64,
    next: u64,
    end: u64,
    latch: Arc<Latch>,
    _case: PhantomData<fn() -> C>,
}

impl<C: Case> Lane<C> {
    fn go(self) {
        let x = self.w * LANE_STRIDE + self.next;
        C::callback(self.kind, x, move |out| {
            black_box(out);
            self.after()
        });
    }

    fn after(mut self) {
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
                Lane::<C> {
                    kind,
                    w,
                    next: 0,
                    end: per,
                    latch: l.clone(),
                    _case: PhantomData,
                }
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

/// Runs one op in a style and returns its outcome.
pub fn run_one<C: Case>(rt: &weft::Runtime, style: Style, kind: Kind, x: u64) -> C::Out {
    match style {
        Style::Callback => {
            let (tx, rx) = std::sync::mpsc::channel();
            rt.handle()
                .defer(move || C::callback(kind, x, move |out| tx.send(out).unwrap()));
            rx.recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{} callback op never completed: {e}", C::ID))
        }
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
        match style {
            Style::Callback => weft_callbacks::<C>(rt, kind, inflight, ops),
            Style::Combinator => weft_futures(rt, inflight, ops, move |x| C::combinator(kind, x)),
            Style::AsyncFn => weft_futures(rt, inflight, ops, move |x| C::async_fn(Weft, kind, x)),
            Style::TokioAsyncFn => panic!("run the tokio baseline with run_tokio"),
        }
    }

    #[cfg(feature = "tokio")]
    fn run_tokio(
        &self,
        rt: &tokio::runtime::Runtime,
        kind: Kind,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64) {
        tokio_futures(rt, inflight, ops, move |x| {
            C::async_fn(crate::env::Tokio, kind, x)
        })
    }

    fn outcomes(&self, rt: &weft::Runtime, kind: Kind, x: u64) -> [String; 3] {
        [Style::Callback, Style::Combinator, Style::AsyncFn]
            .map(|s| format!("{:?}", run_one::<C>(rt, s, kind, x)))
    }
}
