//! The shape of `benches/timers.rs` `timers_100k` without criterion, for profilers:
//! `block_on` spawns N tasks, each sleeping 1..=10 ms (or not at all with `nosleep`), then
//! awaits every handle in order; R rounds.
//!
//! ```text
//! cargo run --release --example spawn_sleep -- [N] [ROUNDS] [sleep|nosleep]
//! ```
//!
//! Instruction counts per task: run under callgrind with `WEFT_IO_DRIVER=fallback` at N and
//! 2N and divide the difference of the totals by N.

use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let sleep = args.next().is_none_or(|m| m != "nosleep");
    let workers = std::env::var("WEFT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = weft::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    for round in 0..rounds {
        let start = Instant::now();
        let (spawned, worst) = rt.block_on(async move {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    weft::spawn(async move {
                        if !sleep {
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
