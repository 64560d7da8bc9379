//! The article's patterns in three styles, and the `async fn` style on tokio, with
//! criterion's statistics and HTML reports (the full mode of `examples/compare.rs`).
//!
//! Group `patterns/<id>/<kind>`; function `<style>`; parameter `w<workers>/i<inflight>`:
//! time per op with 1 and with 64 ops in flight, on a one-worker runtime and on one with a
//! worker per core. Every measurement runs the shared harness (`weft_patterns::harness`),
//! the same code the comparison command times.
//!
//! Guards against: a regression in the cost of any style (a slower `defer`, a combinator
//! that allocates, a callback helper that takes an extra lock), and against weft falling
//! behind tokio on the same `async fn` code.
//!
//! Run a subset with criterion's filter, e.g. `cargo bench --bench patterns -- chain/ready`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use weft_patterns::harness::{tokio_runtime, weft_runtime};
use weft_patterns::{Style, cases};

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn patterns(c: &mut Criterion) {
    let worker_counts: Vec<usize> = if cores() > 1 {
        vec![1, cores()]
    } else {
        vec![1]
    };
    let weft: Vec<_> = worker_counts.iter().map(|&w| weft_runtime(w)).collect();
    let tokio: Vec<_> = worker_counts.iter().map(|&w| tokio_runtime(w)).collect();
    // Create the data file before anything is timed.
    weft_patterns::data_file();

    for case in cases() {
        for &kind in case.kinds() {
            let mut group = c.benchmark_group(format!("patterns/{}/{}", case.id(), kind));
            group
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1))
                .sample_size(10);
            for (wi, &workers) in worker_counts.iter().enumerate() {
                if case.one_worker_only() && workers > 1 {
                    continue;
                }
                for inflight in [1usize, 64] {
                    let param = format!("w{workers}/i{inflight}");
                    for style in Style::ALL {
                        let id = BenchmarkId::new(style.name(), &param);
                        group.bench_function(id, |b| {
                            b.iter_custom(|iters| {
                                let (elapsed, ran) = match style {
                                    Style::TokioAsyncFn => {
                                        case.run_tokio(&tokio[wi], kind, inflight, iters)
                                    }
                                    _ => case.run_weft(&weft[wi], style, kind, inflight, iters),
                                };
                                // Scale to exactly `iters` ops (lanes round the count up).
                                elapsed.mul_f64(iters as f64 / ran as f64)
                            })
                        });
                    }
                }
            }
            group.finish();
            // The net pools of this group are not needed by the next one.
            weft_patterns::net::close_idle();
        }
    }
}

criterion_group!(benches, patterns);
criterion_main!(benches);
