//! Scheduler benchmarks: weft beside tokio, on the same number of worker threads.
//!
//! Every bench is a criterion group `scheduler/<name>` with two functions, `weft` and
//! `tokio`, so the ratio between the runtimes is read from one run. Each runtime is built
//! once per group (outside `b.iter`) with `WEFT_BENCH_WORKERS` worker threads (default 2).
//! tokio's is a multi-thread runtime with the drivers weft's workers have, like for like:
//! timers and an I/O reactor (`enable_all()`), so weft's workers park in `io_uring_enter`
//! and tokio's in `epoll_wait`. `WEFT_BENCH_TOKIO_ENABLE_ALL=0` gives tokio only its timer
//! (its workers then park on a condvar), to compare with weft's fallback driver
//! (`WEFT_IO_DRIVER=fallback`). Run them with
//!
//! ```text
//! cargo bench --bench scheduler                         # all of them
//! cargo bench --bench scheduler -- scheduler/ping_pong  # one group
//! WEFT_BENCH_WORKERS=16 cargo bench --bench scheduler
//! ```
//!
//! What each bench guards:
//!
//! - `spawn_many_local`: the cost of spawning from a worker (task allocation, binding to the
//!   owned-task list, the LIFO slot and local-queue push, overflow to the global queue) and
//!   of completing and freeing a task. A regression here is a regression of every `spawn`.
//! - `spawn_many_remote`: spawning from a thread outside the runtime: the global (inject)
//!   queue, the wake-a-parked-worker rule, and workers draining the global queue in batches.
//! - `yield_many`: the poll loop itself: `yield_now` re-queues behind the local queue, so
//!   this is pure wake-by-ref + local queue push/pop + poll, with stealing between workers.
//! - `ping_pong`: the message-passing wake path: a task woken by another task (LIFO slot,
//!   cross-worker wake, unparking an idle worker), with a spawn per half-round.
//! - `chained_spawn`: latency of a spawn that is the only runnable work: each task spawns the
//!   next and exits, so the LIFO slot hand-off (and not throughput of a full queue) is timed.
//! - `join_all`: `JoinHandle` completion: storing the output, waking the joiner, and the
//!   joiner reading 1 000 outputs in order.
//!
//! How completion is detected is the same for both runtimes: the bench thread blocks on a
//! `std::sync::mpsc` channel; the task that brings a shared countdown to zero (or the last
//! task of the chain, or the joiner) sends on it. `ping_pong` uses `tokio::sync::oneshot`
//! on both runtimes (it is runtime-agnostic), so only the scheduler differs. Spawned tasks'
//! `JoinHandle`s are dropped (detached) except in `join_all`.
//!
//! The spawn-heavy ratios depend on the allocator: with glibc malloc, tokio's 128-byte-aligned
//! task cells take the `memalign` path, which contends on the arena lock where weft's 8-aligned
//! cells hit the thread cache. Compare with another allocator through `LD_PRELOAD`.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

/// Tasks in `spawn_many_local` and `spawn_many_remote`.
const NUM_SPAWN: usize = 10_000;
/// Tasks in `yield_many`, and yields per task.
const YIELD_TASKS: usize = 200;
const NUM_YIELD: usize = 1_000;
/// Rounds in `ping_pong`.
const NUM_PINGS: usize = 1_000;
/// Depth of `chained_spawn`.
const CHAIN_DEPTH: usize = 1_000;
/// Handles awaited by `join_all`.
const NUM_JOIN: usize = 1_000;

/// The two runtimes under one interface. Only what the benches need; no boxing, so each
/// runtime's own `JoinHandle` and `spawn` are what is timed.
trait Rt: Sized {
    const NAME: &'static str;
    type JoinError: Debug;
    type JoinHandle<T: Send + 'static>: Future<Output = Result<T, Self::JoinError>>
        + Send
        + Unpin
        + 'static;

    fn build(workers: usize) -> Self;

    /// Spawns from a thread outside the runtime (the bench thread).
    fn spawn_remote<F>(&self, f: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Spawns from inside a task of the runtime.
    fn spawn<F>(f: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    fn yield_now() -> impl Future<Output = ()> + Send;
}

struct Weft(weft::Runtime);

impl Rt for Weft {
    const NAME: &'static str = "weft";
    type JoinError = weft::JoinError;
    type JoinHandle<T: Send + 'static> = weft::JoinHandle<T>;

    fn build(workers: usize) -> Self {
        Weft(
            weft::Runtime::builder()
                .worker_threads(workers)
                .build()
                .expect("build the weft runtime"),
        )
    }

    fn spawn_remote<F>(&self, f: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.handle().spawn(f)
    }

    fn spawn<F>(f: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        weft::spawn(f)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        weft::task::yield_now()
    }
}

struct Tokio(tokio::runtime::Runtime);

impl Rt for Tokio {
    const NAME: &'static str = "tokio";
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: Send + 'static> = tokio::task::JoinHandle<T>;

    fn build(workers: usize) -> Self {
        Tokio({
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(workers);
            if std::env::var_os("WEFT_BENCH_TOKIO_ENABLE_ALL").is_none_or(|v| v != "0") {
                b.enable_all();
            } else {
                b.enable_time();
            }
            b.build().expect("build the tokio runtime")
        })
    }

    fn spawn_remote<F>(&self, f: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.handle().spawn(f)
    }

    fn spawn<F>(f: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(f)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

/// `WEFT_BENCH_WORKERS`, default 2.
fn workers() -> usize {
    match std::env::var("WEFT_BENCH_WORKERS") {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| panic!("WEFT_BENCH_WORKERS={v:?}: expected a positive integer")),
        Err(_) => 2,
    }
}

/// A countdown shared by the tasks of one iteration: the task that brings it to zero tells
/// the bench thread. One `Arc` clone per task, the same on both runtimes.
struct Countdown {
    rem: AtomicUsize,
    tx: SyncSender<()>,
}

impl Countdown {
    fn new() -> (Arc<Countdown>, Receiver<()>) {
        let (tx, rx) = sync_channel(1);
        let c = Countdown {
            rem: AtomicUsize::new(0),
            tx,
        };
        (Arc::new(c), rx)
    }

    /// Before each iteration (the previous one is over: its last `hit` has happened).
    fn reset(&self, n: usize) {
        self.rem.store(n, Ordering::Relaxed);
    }

    fn hit(&self) {
        if self.rem.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tx.send(()).expect("the bench thread waits");
        }
    }
}

fn spawn_many_local<R: Rt>(b: &mut Bencher<'_>, rt: &R) {
    let (done, rx) = Countdown::new();
    b.iter(|| {
        done.reset(NUM_SPAWN);
        let done = done.clone();
        drop(rt.spawn_remote(async move {
            for _ in 0..NUM_SPAWN {
                let done = done.clone();
                drop(R::spawn(async move { done.hit() }));
            }
        }));
        rx.recv().unwrap();
    });
}

fn spawn_many_remote<R: Rt>(b: &mut Bencher<'_>, rt: &R) {
    let (done, rx) = Countdown::new();
    b.iter(|| {
        done.reset(NUM_SPAWN);
        for _ in 0..NUM_SPAWN {
            let done = done.clone();
            drop(rt.spawn_remote(async move { done.hit() }));
        }
        rx.recv().unwrap();
    });
}

fn yield_many<R: Rt>(b: &mut Bencher<'_>, rt: &R) {
    let (done, rx) = Countdown::new();
    b.iter(|| {
        done.reset(YIELD_TASKS);
        for _ in 0..YIELD_TASKS {
            let done = done.clone();
            drop(rt.spawn_remote(async move {
                for _ in 0..NUM_YIELD {
                    R::yield_now().await;
                }
                done.hit();
            }));
        }
        rx.recv().unwrap();
    });
}

fn ping_pong<R: Rt>(b: &mut Bencher<'_>, rt: &R) {
    use tokio::sync::oneshot;
    let (done, rx) = Countdown::new();
    b.iter(|| {
        done.reset(NUM_PINGS);
        let done = done.clone();
        drop(rt.spawn_remote(async move {
            for _ in 0..NUM_PINGS {
                let done = done.clone();
                drop(R::spawn(async move {
                    let (ping_tx, ping_rx) = oneshot::channel::<()>();
                    let (pong_tx, pong_rx) = oneshot::channel::<()>();
                    drop(R::spawn(async move {
                        ping_rx.await.unwrap();
                        pong_tx.send(()).unwrap();
                    }));
                    ping_tx.send(()).unwrap();
                    pong_rx.await.unwrap();
                    done.hit();
                }));
            }
        }));
        rx.recv().unwrap();
    });
}

/// One link of `chained_spawn`: spawns the next, or signals at the end.
fn chain<R: Rt>(tx: SyncSender<()>, n: usize) {
    if n == 0 {
        tx.send(()).unwrap();
    } else {
        drop(R::spawn(async move { chain::<R>(tx, n - 1) }));
    }
}

fn chained_spawn<R: Rt>(b: &mut Bencher<'_>, rt: &R) {
    let (tx, rx) = sync_channel(1);
    b.iter(|| {
        let tx = tx.clone();
        drop(rt.spawn_remote(async move { chain::<R>(tx, CHAIN_DEPTH) }));
        rx.recv().unwrap();
    });
}

fn join_all<R: Rt>(b: &mut Bencher<'_>, rt: &R) {
    let (tx, rx) = sync_channel(1);
    b.iter(|| {
        let tx = tx.clone();
        drop(rt.spawn_remote(async move {
            let handles: Vec<_> = (0..NUM_JOIN).map(|i| R::spawn(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            tx.send(sum).unwrap();
        }));
        assert_eq!(rx.recv().unwrap(), NUM_JOIN * (NUM_JOIN - 1) / 2);
    });
}

type BenchFn<R> = fn(&mut Bencher<'_>, &R);

/// Builds `R` once and times `f` on it as the function `R::NAME` of the group.
fn run_on<R: Rt>(g: &mut BenchmarkGroup<'_, WallTime>, f: BenchFn<R>) {
    let rt = R::build(workers());
    g.bench_function(R::NAME, |b| f(b, &rt));
}

/// One group `scheduler/<name>`: weft, then tokio.
fn compare(
    c: &mut Criterion,
    name: &str,
    elements: u64,
    on_weft: BenchFn<Weft>,
    on_tokio: BenchFn<Tokio>,
) {
    let mut g = c.benchmark_group(format!("scheduler/{name}"));
    g.throughput(Throughput::Elements(elements))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    run_on(&mut g, on_weft);
    run_on(&mut g, on_tokio);
    g.finish();
}

fn scheduler(c: &mut Criterion) {
    let n = NUM_SPAWN as u64;
    compare(c, "spawn_many_local", n, spawn_many_local, spawn_many_local);
    compare(
        c,
        "spawn_many_remote",
        n,
        spawn_many_remote,
        spawn_many_remote,
    );
    let n = (YIELD_TASKS * NUM_YIELD) as u64;
    compare(c, "yield_many", n, yield_many, yield_many);
    let n = NUM_PINGS as u64;
    compare(c, "ping_pong", n, ping_pong, ping_pong);
    let n = CHAIN_DEPTH as u64;
    compare(c, "chained_spawn", n, chained_spawn, chained_spawn);
    let n = NUM_JOIN as u64;
    compare(c, "join_all", n, join_all, join_all);
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
