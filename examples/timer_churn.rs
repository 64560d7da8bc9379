//! The churn loop of `timers/timer_churn_1m` alone, on one worker, for instruction counts:
//! `N` 10 s sleeps created, each polled once (filing its timer), then all dropped.
//!
//! ```sh
//! cargo build --release --example timer_churn
//! WEFT_IO_DRIVER=fallback valgrind --tool=callgrind target/release/examples/timer_churn weft 100000
//! WEFT_IO_DRIVER=fallback valgrind --tool=callgrind target/release/examples/timer_churn weft 200000
//! ```
//!
//! The difference of the two totals divided by 100 000 is the cost of one churn op; the
//! three phases are functions of their own (`create_all`, `register_all`, `drop_all`), so
//! `callgrind_annotate --inclusive=yes` splits it. `tokio` in place of `weft` runs the same
//! loop on tokio's multi-thread runtime with one worker, as the bench does (with two). A
//! third argument repeats the loop that many rounds; each round prints its wall-clock
//! nanoseconds per timer and phase (rounds after the first find the wheel grown, as the
//! bench's iterations do).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

/// Runs the three phases, timing each, and prints nanoseconds per timer for each.
fn churn<F: Future>(which: &str, n: usize, make: impl FnMut() -> F) {
    let t0 = Instant::now();
    let mut v = create_all(n, make);
    let t1 = Instant::now();
    register_all(&mut v);
    let t2 = Instant::now();
    drop_all(v);
    let t3 = Instant::now();
    let per = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e9 / n as f64;
    println!(
        "{which}: {n} timers, ns per timer: create {:.1}, first poll {:.1}, drop {:.1}, \
         total {:.1}",
        per(t0, t1),
        per(t1, t2),
        per(t2, t3),
        per(t0, t3)
    );
}

#[inline(never)]
fn create_all<F>(n: usize, mut make: impl FnMut() -> F) -> Vec<F> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(make());
    }
    v
}

/// Polls every sleep once in place (tokio's `Sleep` is `!Unpin`: no box for either side).
#[inline(never)]
fn register_all<F: Future>(v: &mut [F]) {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    for f in v.iter_mut() {
        // SAFETY: the Vec was sized up front and is never grown, so the element never moves
        // again; dropping the Vec drops it in place.
        let pinned = unsafe { Pin::new_unchecked(f) };
        assert!(pinned.poll(&mut cx).is_pending());
    }
}

#[inline(never)]
fn drop_all<F>(v: Vec<F>) {
    drop(v);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "weft".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let ten_s = Duration::from_secs(10);
    match which.as_str() {
        "weft" => {
            let rt = weft::Runtime::builder().worker_threads(1).build().unwrap();
            rt.block_on(rt.spawn(async move {
                for _ in 0..rounds {
                    churn("weft", n, || weft::time::sleep(ten_s));
                }
            }))
            .unwrap();
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(rt.spawn(async move {
                for _ in 0..rounds {
                    churn("tokio", n, || tokio::time::sleep(ten_s));
                }
            }))
            .unwrap();
        }
        other => {
            eprintln!("usage: timer_churn weft|tokio [N [ROUNDS]] (got {other:?})");
            std::process::exit(2);
        }
    }
}
