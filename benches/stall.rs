//! A worker stalled in a long computation, and what it does to the other tasks' latency.
//!
//! - `stall/timer`: tasks each loop on `sleep(1 ms)`, recording how late every sleep
//!   completes; meanwhile one task spins for 1 s without yielding, stalling its worker.
//! - `stall/read`: the same with 4 KiB `read_at`s of a 1 MiB file in place of the sleeps,
//!   recording each read's latency.
//!
//! Each reports, for weft and tokio in the same run (interleaved rounds), the worst and the
//! median latency of the operations that started during the stall. The target for
//! `stall/timer` is a worst lateness of a few milliseconds (not the length of the stall).
//! A custom harness (criterion times a closure; this reports a distribution's tail).
//!
//! `WEFT_BENCH_WORKERS` sets both runtimes' workers (default 2); `WEFT_STALL_ROUNDS` the
//! rounds per runtime (default 3).

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

const STALL: Duration = Duration::from_secs(1);
const SLEEP: Duration = Duration::from_millis(1);
const LOOPERS: usize = 8;
const FILE_LEN: u64 = 1 << 20;
const READ: usize = 4096;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// One looper's samples: (start, latency) of each operation.
type Samples = Vec<(Instant, Duration)>;

/// The worst and the median latency of the operations started during `[from, to)`.
fn summarize(all: Vec<Samples>, from: Instant, to: Instant) -> (Duration, Duration, usize) {
    let mut v: Vec<Duration> = all
        .into_iter()
        .flatten()
        .filter(|(s, _)| *s >= from && *s < to)
        .map(|(_, d)| d)
        .collect();
    v.sort();
    let worst = v.last().copied().unwrap_or_default();
    let median = v.get(v.len() / 2).copied().unwrap_or_default();
    (worst, median, v.len())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Timer,
    Read,
}

fn data_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("weft-bench-stall-{}", std::process::id()));
    let bytes: Vec<u8> = (0..FILE_LEN).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, bytes).expect("writing the bench's data file");
    path
}

fn offset(i: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (FILE_LEN / READ as u64)) * READ as u64
}

fn weft_round(kind: Kind, path: &PathBuf) -> (Duration, Duration, usize) {
    let rt = weft::Runtime::builder()
        .worker_threads(env("WEFT_BENCH_WORKERS", 2))
        .build()
        .unwrap();
    let file = Arc::new(rt.block_on(weft::fs::File::open(path)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let loopers: Vec<_> = (0..LOOPERS)
        .map(|t| {
            let (stop, file) = (stop.clone(), file.clone());
            rt.spawn(async move {
                let mut samples = Samples::new();
                let mut buf = vec![0u8; READ];
                let mut i = t as u64;
                while !stop.load(SeqCst) {
                    let start = Instant::now();
                    match kind {
                        Kind::Timer => {
                            weft::time::sleep(SLEEP).await;
                            samples.push((start, start.elapsed() - SLEEP));
                        }
                        Kind::Read => {
                            let (res, b) = file.read_at(buf, offset(i)).await;
                            assert_eq!(res.unwrap(), READ);
                            buf = b;
                            i += LOOPERS as u64;
                            samples.push((start, start.elapsed()));
                        }
                    }
                }
                samples
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let from = Instant::now();
    rt.block_on(rt.spawn(async { spin(STALL) })).unwrap();
    let to = Instant::now();
    stop.store(true, SeqCst);
    let all = loopers
        .into_iter()
        .map(|h| rt.block_on(h).unwrap())
        .collect();
    summarize(all, from, to)
}

fn tokio_round(kind: Kind, path: &PathBuf) -> (Duration, Duration, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env("WEFT_BENCH_WORKERS", 2))
        .enable_time()
        .build()
        .unwrap();
    let file = Arc::new(std::fs::File::open(path).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let loopers: Vec<_> = (0..LOOPERS)
        .map(|t| {
            let (stop, file) = (stop.clone(), file.clone());
            rt.spawn(async move {
                let mut samples = Samples::new();
                let mut i = t as u64;
                while !stop.load(SeqCst) {
                    let start = Instant::now();
                    match kind {
                        Kind::Timer => {
                            tokio::time::sleep(SLEEP).await;
                            samples.push((start, start.elapsed() - SLEEP));
                        }
                        Kind::Read => {
                            // What tokio::fs does for a positioned read: the blocking pool.
                            let f = file.clone();
                            let off = offset(i);
                            let n = tokio::task::spawn_blocking(move || {
                                let mut buf = vec![0u8; READ];
                                f.read_at(&mut buf, off)
                            })
                            .await
                            .unwrap()
                            .unwrap();
                            assert_eq!(n, READ);
                            i += LOOPERS as u64;
                            samples.push((start, start.elapsed()));
                        }
                    }
                }
                samples
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let from = Instant::now();
    rt.block_on(rt.spawn(async { spin(STALL) })).unwrap();
    let to = Instant::now();
    stop.store(true, SeqCst);
    let all = loopers
        .into_iter()
        .map(|h| rt.block_on(h).unwrap())
        .collect();
    summarize(all, from, to)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects `timer` or `read`.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds = env("WEFT_STALL_ROUNDS", 3);
    let path = data_file();
    for (name, kind) in [("stall/timer", Kind::Timer), ("stall/read", Kind::Read)] {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let what = if kind == Kind::Timer {
            "lateness"
        } else {
            "latency"
        };
        for round in 0..rounds {
            for (rt, f) in [
                ("weft", weft_round as fn(Kind, &PathBuf) -> _),
                ("tokio", tokio_round),
            ] {
                let (worst, median, n) = f(kind, &path);
                println!(
                    "{name:<12} {rt:<5} round {round}: worst {what} {:8.3} ms, median \
                     {:7.3} ms ({n} ops during a {} s stall)",
                    ms(worst),
                    ms(median),
                    STALL.as_secs()
                );
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}
