//! Peak memory of a million registered 10 s sleeps, on weft or on tokio:
//!
//! ```sh
//! cargo run --release --example timer_memory -- weft
//! cargo run --release --example timer_memory -- tokio
//! ```
//!
//! Prints the process's peak resident set (VmHWM) after registering the timers and after
//! dropping them. Run each in its own process so the figures do not mix.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

const N: usize = 1_000_000;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Polls every sleep once in place (tokio's `Sleep` is `!Unpin`: no box for either side).
fn register_all<F: Future>(v: &mut [F]) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for f in v.iter_mut() {
        // SAFETY: the Vec was sized up front and is never grown, so the element never moves
        // again; dropping the Vec drops it in place.
        let pinned = unsafe { Pin::new_unchecked(f) };
        assert!(pinned.poll(&mut cx).is_pending());
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "weft".into());
    let before = peak_rss_kib();
    match which.as_str() {
        "weft" => {
            let rt = weft::Runtime::builder().worker_threads(2).build().unwrap();
            rt.block_on(rt.spawn(async {
                let mut v = Vec::with_capacity(N);
                for _ in 0..N {
                    v.push(weft::time::sleep(Duration::from_secs(10)));
                }
                register_all(&mut v);
                println!("weft: {} timers registered", v.len());
            }))
            .unwrap();
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(rt.spawn(async {
                let mut v = Vec::with_capacity(N);
                for _ in 0..N {
                    v.push(tokio::time::sleep(Duration::from_secs(10)));
                }
                register_all(&mut v);
                println!("tokio: {} timers registered", v.len());
            }))
            .unwrap();
        }
        other => {
            eprintln!("usage: timer_memory weft|tokio (got {other:?})");
            std::process::exit(2);
        }
    }
    let peak = peak_rss_kib();
    println!(
        "{which}: peak RSS {peak} KiB, {:.1} bytes per timer above the {before} KiB baseline",
        (peak - before) as f64 * 1024.0 / N as f64
    );
}
