//! A soak: a mixed load run for a fixed time, checked for lost tasks and leaks at the end.
//!
//! ```sh
//! cargo run --release --example soak -- --seconds 60
//! WEFT_IO_DRIVER=fallback cargo run --release --example soak -- --seconds 60
//! ```
//!
//! The load comes in waves. Each wave spawns a few thousand tasks of every kind below, awaits
//! every `JoinHandle`, and checks each outcome:
//!
//! | kind | what the task does | expected outcome |
//! |---|---|---|
//! | `ready` | yields three times | its value |
//! | `timer` | sleeps 0..3 ms | its value, never early |
//! | `file` | reads a random 4 KiB block of a data file | the block's bytes |
//! | `panic` | panics after a yield | a panic `JoinError` |
//! | `abort` | sleeps 10 s, aborted by its spawner | a cancelled `JoinError` |
//! | `dropped` | a 50 ms sleep or a read under a short timeout | the timeout, or the value |
//! | `foreign` | waits for a plain thread to wake it | its value |
//! | `blocking` | a closure on the blocking pool | its value |
//! | `nested` | spawns a child and awaits it | the child's value |
//!
//! Every future carries a drop-counting guard. At the end (after the runtime is dropped) the
//! program asserts that every spawned task gave an outcome (none lost), that every guard was
//! dropped exactly once, and that open descriptors and resident memory are flat: the last
//! sample is compared with one taken after the warm-up. A wave that does not finish within
//! a minute is a lost wake-up: the watchdog aborts the process. It prints a progress line every
//! ten seconds and a summary; it exits non-zero on any failure.

use std::fs;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use weft::fs::File;
use weft::time::{sleep, timeout};
use weft::{JoinHandle, Runtime};

/// Tasks spawned per wave.
const WAVE: u64 = 3_000;
/// 4 KiB blocks in the data file.
const BLOCKS: u64 = 256;
const PANIC_MSG: &str = "soak: deliberate panic";

static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Counts its creation and its drop; every future of the soak holds one.
struct Guard;

impl Guard {
    fn new() -> Guard {
        CREATED.fetch_add(1, SeqCst);
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
    }
}

/// What block `b`'s 4 KiB hold: each u64 word `w` of the file holds `w`.
fn block_bytes(b: u64) -> Vec<u8> {
    (b * 512..(b + 1) * 512)
        .flat_map(u64::to_le_bytes)
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A future completed by a plain thread: the "foreign wake".
struct Foreign {
    slot: Arc<ForeignSlot>,
    sent: Option<mpsc::Sender<Arc<ForeignSlot>>>,
}

struct ForeignSlot {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Future for Foreign {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.slot.waker.lock().unwrap() = Some(cx.waker().clone());
        if let Some(tx) = self.sent.take() {
            tx.send(self.slot.clone())
                .expect("the waking thread outlives the runtime");
        }
        if self.slot.done.load(SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[derive(Default)]
struct Outcomes {
    spawned: AtomicU64,
    ok: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
}

fn rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn main() {
    let mut seconds = 10u64;
    let mut workers = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--workers N")
            }
            other => panic!("unknown argument {other:?}; use --seconds N --workers N"),
        }
    }

    // Quiet for the deliberate panics, loud for any other.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or_default();
        if msg != PANIC_MSG {
            default_hook(info);
        }
    }));

    let dir = std::env::temp_dir().join(format!("weft-soak-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data");
    let mut f = fs::File::create(&path).unwrap();
    for b in 0..BLOCKS {
        f.write_all(&block_bytes(b)).unwrap();
    }
    drop(f);

    let (foreign_tx, foreign_rx) = mpsc::channel::<Arc<ForeignSlot>>();
    let waking = std::thread::spawn(move || {
        for slot in foreign_rx {
            slot.done.store(true, SeqCst);
            if let Some(w) = slot.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    });

    let outcomes = Arc::new(Outcomes::default());
    let wave_done = Arc::new(AtomicU64::new(0));
    let watchdog_wave = wave_done.clone();
    std::thread::spawn(move || {
        let mut last = (0, Instant::now());
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let w = watchdog_wave.load(SeqCst);
            if w != last.0 {
                last = (w, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(60) {
                eprintln!(
                    "soak: FAILED: wave {} has not finished in 60 s (a lost wake-up)",
                    w + 1
                );
                std::process::abort();
            }
        }
    });

    let rt = Runtime::builder().worker_threads(workers).build().unwrap();
    let file = Arc::new(rt.block_on(File::open(&path)).unwrap());
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let warm_at = start + Duration::from_secs(seconds / 10).max(Duration::from_secs(1));
    let mut warm: Option<(u64, usize)> = None;
    let mut next_report = start + Duration::from_secs(10);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut waves = 0u64;

    println!(
        "soak: {seconds} s, {workers} workers, {WAVE} tasks a wave; rss {} KiB, {} fds",
        rss_kib(),
        open_fds()
    );
    while Instant::now() < end {
        let seed = rng.next();
        let (file, wave_outcomes, tx) = (file.clone(), outcomes.clone(), foreign_tx.clone());
        rt.block_on(async move { wave(seed, file, &wave_outcomes, tx).await });
        waves += 1;
        wave_done.store(waves, SeqCst);
        let now = Instant::now();
        if warm.is_none() && now >= warm_at {
            warm = Some((rss_kib(), open_fds()));
        }
        if now >= next_report {
            next_report += Duration::from_secs(10);
            println!(
                "soak: {:>5} s  waves {waves}  tasks {}  rss {} KiB  fds {}",
                start.elapsed().as_secs(),
                outcomes.spawned.load(SeqCst),
                rss_kib(),
                open_fds()
            );
        }
    }
    let warm = warm.unwrap_or((rss_kib(), open_fds()));
    let last = (rss_kib(), open_fds());
    drop(file);
    drop(rt);
    drop(foreign_tx);
    waking.join().unwrap();
    let _ = fs::remove_dir_all(&dir);

    let o = &*outcomes;
    let (spawned, ok, panicked, cancelled, timed_out) = (
        o.spawned.load(SeqCst),
        o.ok.load(SeqCst),
        o.panicked.load(SeqCst),
        o.cancelled.load(SeqCst),
        o.timed_out.load(SeqCst),
    );
    let (created, dropped) = (CREATED.load(SeqCst), DROPPED.load(SeqCst));
    println!(
        "soak: {waves} waves, {spawned} tasks: {ok} ok, {panicked} panicked, {cancelled} \
         aborted, {timed_out} timed out; guards {created} made, {dropped} dropped; rss {} -> {} \
         KiB, fds {} -> {}",
        warm.0, last.0, warm.1, last.1
    );
    let mut failures = Vec::new();
    if ok + panicked + cancelled != spawned {
        failures.push(format!(
            "{} tasks lost",
            spawned as i64 - (ok + panicked + cancelled) as i64
        ));
    }
    if created != dropped {
        failures.push(format!("{created} guards made but {dropped} dropped"));
    }
    if last.1 > warm.1 + 4 {
        failures.push(format!("fds grew from {} to {}", warm.1, last.1));
    }
    // Flat: allocator caches and the blocking pool's threads settle during the warm-up.
    if last.0 > warm.0 + warm.0 / 4 + 16 * 1024 {
        failures.push(format!("rss grew from {} to {} KiB", warm.0, last.0));
    }
    if failures.is_empty() {
        println!("soak: passed");
    } else {
        eprintln!("soak: FAILED: {}", failures.join("; "));
        std::process::exit(1);
    }
}

async fn wave(seed: u64, file: Arc<File>, o: &Outcomes, foreign: mpsc::Sender<Arc<ForeignSlot>>) {
    let mut rng = Rng(seed | 1);
    let mut handles: Vec<(u64, u64, JoinHandle<u64>)> = Vec::with_capacity(WAVE as usize);
    for i in 0..WAVE {
        let kind = i % 9;
        let r = rng.next();
        let h = match kind {
            0 => weft::spawn(async move {
                let _g = Guard::new();
                for _ in 0..3 {
                    weft::task::yield_now().await;
                }
                r
            }),
            1 => weft::spawn(async move {
                let _g = Guard::new();
                let d = Duration::from_micros(r % 3_000);
                let t = Instant::now();
                sleep(d).await;
                assert!(t.elapsed() >= d, "a sleep of {d:?} woke early");
                r
            }),
            2 => {
                let file = file.clone();
                weft::spawn(async move {
                    let _g = Guard::new();
                    let b = r % BLOCKS;
                    let (res, buf) = file.read_at(Vec::with_capacity(4096), b * 4096).await;
                    assert_eq!(res.expect("read"), 4096);
                    assert!(buf == block_bytes(b), "block {b} read back wrong");
                    r
                })
            }
            3 => weft::spawn(async move {
                let _g = Guard::new();
                weft::task::yield_now().await;
                if r != u64::MAX {
                    std::panic::panic_any(PANIC_MSG);
                }
                r
            }),
            4 => {
                let h = weft::spawn(async move {
                    let _g = Guard::new();
                    sleep(Duration::from_secs(10)).await;
                    r
                });
                if r % 2 == 0 {
                    weft::task::yield_now().await;
                }
                h.abort();
                h
            }
            5 => {
                let file = file.clone();
                weft::spawn(async move {
                    let _g = Guard::new();
                    let short = Duration::from_micros(r % 500);
                    let res = if r % 2 == 0 {
                        timeout(short, async {
                            let _g = Guard::new();
                            sleep(Duration::from_millis(50)).await;
                        })
                        .await
                        .ok()
                    } else {
                        timeout(short, async {
                            let _g = Guard::new();
                            let (res, _buf) = file.read_at(Vec::with_capacity(4096), 0).await;
                            res.expect("read");
                        })
                        .await
                        .ok()
                    };
                    match res {
                        Some(()) => r,
                        None => u64::MAX,
                    }
                })
            }
            6 => {
                let tx = foreign.clone();
                weft::spawn(async move {
                    let _g = Guard::new();
                    Foreign {
                        slot: Arc::new(ForeignSlot {
                            done: AtomicBool::new(false),
                            waker: Mutex::new(None),
                        }),
                        sent: Some(tx),
                    }
                    .await;
                    r
                })
            }
            7 => weft::spawn(async move {
                let _g = Guard::new();
                weft::task::spawn_blocking(move || r)
                    .await
                    .expect("blocking job")
            }),
            _ => weft::spawn(async move {
                let _g = Guard::new();
                weft::spawn(async move {
                    let _g = Guard::new();
                    weft::task::yield_now().await;
                    r
                })
                .await
                .expect("child")
            }),
        };
        o.spawned.fetch_add(1, SeqCst);
        handles.push((kind, r, h));
    }
    for (kind, r, h) in handles {
        match (kind, h.await) {
            (3, Err(e)) if e.is_panic() => o.panicked.fetch_add(1, SeqCst),
            (4, Err(e)) if e.is_cancelled() => o.cancelled.fetch_add(1, SeqCst),
            (5, Ok(u64::MAX)) => {
                o.timed_out.fetch_add(1, SeqCst);
                o.ok.fetch_add(1, SeqCst)
            }
            (k, Ok(v)) if k != 3 && k != 4 && v == r => o.ok.fetch_add(1, SeqCst),
            (k, other) => panic!("soak: task of kind {k} ended wrongly: {other:?}"),
        };
    }
}
