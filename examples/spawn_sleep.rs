//! The shape of `benches/timers.rs` `timers_100k` without criterion, for profilers:
//! `block_on` spawns N tasks, each sleeping 1..=10 ms (or not at all with `nosleep`), then
//! awaits every handle in order; R rounds.
//!
//! ```text
//! cargo run --release --example spawn_sleep -- [N] [ROUNDS] [sleep|plain|nosleep|tokio]
//! ```
//!
//! `sleep` (the default) sleeps until a deadline it reads the clock for and reports the worst
//! lateness; `plain` is the bench's task exactly (the same future, so the same cell size:
//! `sleep(1 + i % 10 ms)`, no clock read of its own, so no lateness is reported); `tokio` is
//! `plain` on a tokio runtime with as many workers, for a weft/tokio ratio from interleaved
//! runs.
//!
//! Instruction counts per task: run under callgrind with `WEFT_IO_DRIVER=fallback` at N and
//! 2N and divide the difference of the totals by N.

use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Sleep,
        Plain,
        NoSleep,
    }
    let mode = match args.next().as_deref() {
        None | Some("sleep") => Mode::Sleep,
        Some("plain") => Mode::Plain,
        Some("nosleep") => Mode::NoSleep,
        Some("tokio") => return tokio_plain(n, rounds),
        Some(other) => panic!("unknown mode {other:?}: sleep, plain, nosleep or tokio"),
    };
    let workers = workers();
    let rt = weft::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    for round in 0..rounds {
        let start = Instant::now();
        let (spawned, worst) = rt.block_on(async move {
            if mode == Mode::Plain {
                // Its own future, so that the task cell is the bench's size.
                let hs: Vec<_> = (0..n)
                    .map(|i| {
                        weft::spawn(async move {
                            weft::time::sleep(Duration::from_millis(1 + i % 10)).await
                        })
                    })
                    .collect();
                let spawned = start.elapsed();
                for h in hs {
                    h.await.expect("task");
                }
                return (spawned, 0);
            }
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    weft::spawn(async move {
                        if mode == Mode::NoSleep {
                            return 0;
                        }
                        let deadline = Instant::now() + Duration::from_millis(1 + i % 10);
                        weft::time::sleep_until(deadline).await;
                        deadline.elapsed().as_micros() as u64
                    })
                })
                .collect();
            let spawned = start.elapsed();
            let mut worst = 0;
            for h in hs {
                worst = worst.max(h.await.expect("task"));
            }
            (spawned, worst)
        });
        println!(
            "round {round}: total {:.1} ms (spawns {:.1} ms), worst lateness {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3,
            spawned.as_secs_f64() * 1e3,
            worst as f64 / 1e3
        );
    }
}

fn workers() -> usize {
    std::env::var("WEFT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// `plain` on tokio, printed the same way.
fn tokio_plain(n: u64, rounds: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_time()
        .build()
        .expect("runtime");
    for round in 0..rounds {
        let start = Instant::now();
        let spawned = rt.block_on(async move {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(1 + i % 10)).await
                    })
                })
                .collect();
            let spawned = start.elapsed();
            for h in hs {
                h.await.expect("task");
            }
            spawned
        });
        println!(
            "round {round}: total {:.1} ms (spawns {:.1} ms), worst lateness 0.0 ms",
            start.elapsed().as_secs_f64() * 1e3,
            spawned.as_secs_f64() * 1e3,
        );
    }
}
