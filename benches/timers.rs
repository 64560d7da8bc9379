//! Timer benchmarks, weft against tokio in the same criterion group.
//!
//! - `timers/timers_100k`: 100 000 tasks each sleeping 1..=10 ms; the total time. Guards
//!   the fire path (wheel cascade, wake, schedule) and the park timeout computation: a
//!   regression shows as time well past the 10 ms floor.
//! - `timers/timers_100k_lateness`: three interleaved rounds of the same per runtime, each
//!   printing the total and the p50/p99/max lateness of a timer; not a criterion
//!   measurement, it runs when the filter matches it or is absent.
//! - `timers/timer_churn_1m`: one task creates a million 10 s sleeps, registers each (one
//!   poll), holds them all, then drops them all. Guards insert and cancel cost and the
//!   memory per timer (see `examples/timer_memory.rs` for peak RSS).
//! - `timers/sleep_latency`: 300 sequential `sleep(1 ms)`, `sleep(250 µs)` and `sleep(5 ms)`
//!   in one task, for weft, tokio and `std::thread::sleep`, interleaved; prints the median
//!   and p99 lateness (elapsed minus requested) of each. Not a criterion measurement (the
//!   figure is a distribution's middle and tail, not a mean time), so it prints its own
//!   lines; it runs when the filter matches `sleep_latency` or is absent.
//!
//! Both runtimes use `WEFT_BENCH_WORKERS` workers (default 2).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn workers() -> usize {
    std::env::var("WEFT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn weft_rt() -> weft::Runtime {
    weft::Runtime::builder()
        .worker_threads(workers())
        .build()
        .unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_time()
        .build()
        .unwrap()
}

const TASKS: u64 = 100_000;
const CHURN: usize = 1_000_000;

/// Polls every sleep once, in place, registering its timer.
///
/// tokio's `Sleep` is `!Unpin`; rather than box each one (which would charge tokio an
/// allocation weft's `Unpin` sleep does not need), both are pinned where they lie: the `Vec`
/// was sized up front and is never grown, and its elements are dropped in place.
fn register_all<F: Future>(v: &mut [F]) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for f in v.iter_mut() {
        // SAFETY: the element is not moved again: the Vec is never grown, and dropping the
        // Vec drops its elements in place.
        let pinned = unsafe { Pin::new_unchecked(f) };
        assert!(pinned.poll(&mut cx).is_pending());
    }
}

fn timers_100k(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers/timers_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(TASKS));
    let rt = weft_rt();
    g.bench_function("weft", |b| {
        b.iter(|| {
            rt.block_on(async {
                let hs: Vec<_> = (0..TASKS)
                    .map(|i| {
                        weft::spawn(async move {
                            weft::time::sleep(Duration::from_millis(1 + i % 10)).await
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.block_on(async {
                let hs: Vec<_> = (0..TASKS)
                    .map(|i| {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(1 + i % 10)).await
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

/// Three more rounds of `timers_100k` for each runtime, interleaved, printing the total and
/// the median, p99 and worst lateness of a timer (its completion minus its deadline), which
/// the mean time criterion reports does not show. Each task returns its own lateness, so
/// the measurement shares nothing between tasks. Runs alone with the filter
/// `timers_100k_lateness`.
fn timers_100k_lateness() {
    fn summary(mut v: Vec<u64>) -> (f64, f64, f64) {
        v.sort_unstable();
        let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)] as f64 / 1e3;
        (at(50), at(99), *v.last().unwrap() as f64 / 1e3)
    }
    let weft = weft_rt();
    let tokio = tokio_rt();
    for round in 0..3 {
        let start = Instant::now();
        let late = weft.block_on(async move {
            let hs: Vec<_> = (0..TASKS)
                .map(|i| {
                    weft::spawn(async move {
                        let deadline = Instant::now() + Duration::from_millis(1 + i % 10);
                        weft::time::sleep_until(deadline).await;
                        deadline.elapsed().as_micros() as u64
                    })
                })
                .collect();
            let mut late = Vec::with_capacity(hs.len());
            for h in hs {
                late.push(h.await.unwrap());
            }
            late
        });
        let weft_total = start.elapsed();
        let w = summary(late);
        let start = Instant::now();
        let late = tokio.block_on(async move {
            let hs: Vec<_> = (0..TASKS)
                .map(|i| {
                    tokio::spawn(async move {
                        let deadline = Instant::now() + Duration::from_millis(1 + i % 10);
                        tokio::time::sleep_until(deadline.into()).await;
                        deadline.elapsed().as_micros() as u64
                    })
                })
                .collect();
            let mut late = Vec::with_capacity(hs.len());
            for h in hs {
                late.push(h.await.unwrap());
            }
            late
        });
        let tokio_total = start.elapsed();
        let t = summary(late);
        println!(
            "timers/timers_100k/round{round}: weft total {:6.1} ms, lateness p50/p99/max \
             {:5.1}/{:5.1}/{:5.1} ms; tokio total {:6.1} ms, lateness {:5.1}/{:5.1}/{:5.1} ms; \
             weft/tokio {:.2}x",
            weft_total.as_secs_f64() * 1e3,
            w.0,
            w.1,
            w.2,
            tokio_total.as_secs_f64() * 1e3,
            t.0,
            t.1,
            t.2,
            weft_total.as_secs_f64() / tokio_total.as_secs_f64()
        );
    }
}

fn timer_churn_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers/timer_churn_1m");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(CHURN as u64));
    let rt = weft_rt();
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            rt.block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut v = Vec::with_capacity(CHURN);
                    for _ in 0..CHURN {
                        v.push(weft::time::sleep(Duration::from_secs(10)));
                    }
                    register_all(&mut v);
                    drop(v);
                }
                start.elapsed()
            }))
            .unwrap()
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut v = Vec::with_capacity(CHURN);
                    for _ in 0..CHURN {
                        v.push(tokio::time::sleep(Duration::from_secs(10)));
                    }
                    register_all(&mut v);
                    drop(v);
                }
                start.elapsed()
            }))
            .unwrap()
        })
    });
    g.finish();
}

const LATENCY_SLEEPS: usize = 300;

/// The median and p99 of `v` (sorted in place).
fn median_p99(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    let p99 = ((v.len() * 99).div_ceil(100)).saturating_sub(1);
    (v[v.len() / 2], v[p99])
}

fn sleep_latency(_c: &mut Criterion) {
    if !filter_matches("timers/sleep_latency") {
        return;
    }
    let weft = weft_rt();
    let tokio = tokio_rt();
    for d in [
        Duration::from_millis(1),
        Duration::from_micros(250),
        Duration::from_millis(5),
    ] {
        let (mut w, mut t, mut s) = (Vec::new(), Vec::new(), Vec::new());
        // Interleaved in rounds of 10, so that a burst of load hits all three alike.
        for _ in 0..LATENCY_SLEEPS / 10 {
            w.extend(
                weft.block_on(weft.spawn(async move {
                    let mut late = Vec::with_capacity(10);
                    for _ in 0..10 {
                        let start = Instant::now();
                        weft::time::sleep(d).await;
                        late.push(start.elapsed() - d);
                    }
                    late
                }))
                .unwrap(),
            );
            t.extend(
                tokio
                    .block_on(tokio.spawn(async move {
                        let mut late = Vec::with_capacity(10);
                        for _ in 0..10 {
                            let start = Instant::now();
                            tokio::time::sleep(d).await;
                            late.push(start.elapsed() - d);
                        }
                        late
                    }))
                    .unwrap(),
            );
            for _ in 0..10 {
                let start = Instant::now();
                std::thread::sleep(d);
                s.push(start.elapsed() - d);
            }
        }
        for (name, v) in [
            ("weft", &mut w),
            ("tokio", &mut t),
            ("std_thread_sleep", &mut s),
        ] {
            let (median, p99) = median_p99(v);
            println!(
                "timers/sleep_latency/{}us/{name:<16} lateness median {:8.1} us, p99 {:8.1} us",
                d.as_micros(),
                median.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
    }
}

/// `timers_100k_lateness` when the filter matches it or is absent (like `sleep_latency`).
fn timers_100k_rounds(_c: &mut Criterion) {
    if filter_matches("timers/timers_100k_lateness") {
        timers_100k_lateness();
    }
}

/// Criterion's options that take a value as the next argument, which is then no filter.
const VALUED_OPTIONS: &[&str] = &[
    "--warm-up-time",
    "--measurement-time",
    "--sample-size",
    "--profile-time",
    "--save-baseline",
    "-s",
    "--baseline",
    "-b",
    "--baseline-lenient",
    "--load-baseline",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--nresamples",
    "--output-format",
    "--format",
    "--color",
    "-c",
    "--plotting-backend",
];

/// Whether the command line's filter (if any) matches `name`.
fn filter_matches(name: &str) -> bool {
    let filter = filters(std::env::args().skip(1));
    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}

/// The filter arguments of a command line: neither options nor an option's value
/// (`--measurement-time 3` filters nothing).
fn filters(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if a.starts_with('-') {
            skip_value = VALUED_OPTIONS.contains(&a.as_str());
        } else {
            out.push(a);
        }
    }
    out
}

criterion_group!(
    benches,
    timers_100k,
    timers_100k_rounds,
    timer_churn_1m,
    sleep_latency
);
criterion_main!(benches);
