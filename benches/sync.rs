//! `weft::sync` beside `tokio::sync`: the same workload, written once, instantiated for each
//! (the APIs match, so the two instances differ only in the crate they name).
//!
//! Every bench is a criterion group `sync/<name>` with two functions, `weft` and `tokio`, so
//! the ratio is read from one run. Each runtime has `WEFT_BENCH_WORKERS` workers (default
//! 2), built once per group; each iteration spawns the workload as a task and waits for it,
//! so all of it runs on the workers. tokio's runtime has its timer and I/O drivers
//! (`enable_all()`), like weft's workers.
//!
//! ```text
//! cargo bench --bench sync                      # all of them
//! cargo bench --bench sync -- sync/mpsc_8p      # one family
//! ```
//!
//! - `mpsc_1p_{bounded,unbounded}`: one producer task, 1 000 000 messages (bounded:
//!   capacity 1 024), the receiver in another task: the send path, the receiver's drain and
//!   its sleep/wake when it catches up.
//! - `mpsc_8p_{bounded,unbounded}`: the same 1 000 000 messages from 8 producer tasks:
//!   contention on the queue (and on the capacity semaphore).
//! - `oneshot_ping_pong`: 10 000 rounds between two tasks, each round two fresh oneshot
//!   channels (the ping carries the pong's sender and the next ping's receiver): the
//!   allocation, the send and the cross-task wake.
//! - `mutex_contended`: 8 tasks x 10 000 `lock().await` on one `Mutex`.
//! - `semaphore`: 8 tasks x 10 000 acquires of a 2-permit `Semaphore`.
//! - `broadcast_16`: one sender, 16 receiver tasks, 10 000 values (capacity 16 384, so no
//!   receiver lags and both runtimes do the same work).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const MPSC_MESSAGES: usize = 1_000_000;
const MPSC_CAPACITY: usize = 1_024;
const PING_PONGS: usize = 10_000;
const LOCK_TASKS: usize = 8;
const LOCKS_PER_TASK: usize = 10_000;
const SEM_PERMITS: usize = 2;
const BROADCAST_RECEIVERS: usize = 16;
const BROADCAST_VALUES: usize = 10_000;

macro_rules! workloads {
    ($m:ident, $krate:ident) => {
        mod $m {
            use super::*;
            use std::sync::Arc;
            use $krate::sync::{Mutex, Semaphore, broadcast, mpsc, oneshot};

            pub async fn mpsc_bounded(producers: usize) {
                let (tx, mut rx) = mpsc::channel::<usize>(MPSC_CAPACITY);
                let per = MPSC_MESSAGES / producers;
                for _ in 0..producers {
                    let tx = tx.clone();
                    $krate::spawn(async move {
                        for i in 0..per {
                            tx.send(i).await.unwrap();
                        }
                    });
                }
                drop(tx);
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                assert_eq!(n, per * producers);
            }

            pub async fn mpsc_unbounded(producers: usize) {
                let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
                let per = MPSC_MESSAGES / producers;
                for _ in 0..producers {
                    let tx = tx.clone();
                    $krate::spawn(async move {
                        for i in 0..per {
                            tx.send(i).unwrap();
                        }
                    });
                }
                drop(tx);
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                assert_eq!(n, per * producers);
            }

            struct Ping(oneshot::Sender<()>, oneshot::Receiver<Ping>);

            pub async fn oneshot_ping_pong() {
                let (mut ping_tx, ping_rx) = oneshot::channel::<Ping>();
                let other = $krate::spawn(async move {
                    let mut rx = ping_rx;
                    for _ in 0..PING_PONGS {
                        let Ping(pong, next) = rx.await.unwrap();
                        pong.send(()).unwrap();
                        rx = next;
                    }
                });
                for _ in 0..PING_PONGS {
                    let (pong_tx, pong_rx) = oneshot::channel();
                    let (next_tx, next_rx) = oneshot::channel();
                    if ping_tx.send(Ping(pong_tx, next_rx)).is_err() {
                        panic!("ping receiver gone");
                    }
                    pong_rx.await.unwrap();
                    ping_tx = next_tx;
                }
                other.await.unwrap();
            }

            pub async fn mutex_contended() {
                let m = Arc::new(Mutex::new(0usize));
                let tasks: Vec<_> = (0..LOCK_TASKS)
                    .map(|_| {
                        let m = m.clone();
                        $krate::spawn(async move {
                            for _ in 0..LOCKS_PER_TASK {
                                *m.lock().await += 1;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                assert_eq!(*m.lock().await, LOCK_TASKS * LOCKS_PER_TASK);
            }

            pub async fn semaphore() {
                let sem = Arc::new(Semaphore::new(SEM_PERMITS));
                let tasks: Vec<_> = (0..LOCK_TASKS)
                    .map(|_| {
                        let sem = sem.clone();
                        $krate::spawn(async move {
                            for _ in 0..LOCKS_PER_TASK {
                                let _p = sem.acquire().await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }

            pub async fn broadcast_16() {
                let (tx, rx) = broadcast::channel::<usize>(BROADCAST_VALUES.next_power_of_two());
                let tasks: Vec<_> = (0..BROADCAST_RECEIVERS)
                    .map(|_| {
                        let mut rx = rx.resubscribe();
                        $krate::spawn(async move {
                            let mut n = 0;
                            while let Ok(_) = rx.recv().await {
                                n += 1;
                            }
                            n
                        })
                    })
                    .collect();
                drop(rx);
                for i in 0..BROADCAST_VALUES {
                    tx.send(i).unwrap();
                }
                drop(tx);
                for t in tasks {
                    assert_eq!(t.await.unwrap(), BROADCAST_VALUES);
                }
            }
        }
    };
}

workloads!(on_weft, weft);
workloads!(on_tokio, tokio);

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
        .expect("weft runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .expect("tokio runtime")
}

macro_rules! group {
    ($c:expr, $name:literal, $elements:expr, $work:ident $(, $arg:expr)?) => {{
        let mut g = $c.benchmark_group(concat!("sync/", $name));
        g.throughput(Throughput::Elements($elements as u64))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        {
            let rt = weft_rt();
            g.bench_function("weft", |b| {
                b.iter(|| {
                    rt.block_on(async {
                        weft::spawn(on_weft::$work($($arg)?)).await.unwrap();
                    })
                })
            });
        }
        {
            let rt = tokio_rt();
            g.bench_function("tokio", |b| {
                b.iter(|| {
                    rt.block_on(async {
                        tokio::spawn(on_tokio::$work($($arg)?)).await.unwrap();
                    })
                })
            });
        }
        g.finish();
    }};
}

fn sync(c: &mut Criterion) {
    group!(c, "mpsc_1p_bounded", MPSC_MESSAGES, mpsc_bounded, 1);
    group!(c, "mpsc_1p_unbounded", MPSC_MESSAGES, mpsc_unbounded, 1);
    group!(c, "mpsc_8p_bounded", MPSC_MESSAGES, mpsc_bounded, 8);
    group!(c, "mpsc_8p_unbounded", MPSC_MESSAGES, mpsc_unbounded, 8);
    group!(c, "oneshot_ping_pong", PING_PONGS, oneshot_ping_pong);
    group!(
        c,
        "mutex_contended",
        LOCK_TASKS * LOCKS_PER_TASK,
        mutex_contended
    );
    group!(c, "semaphore", LOCK_TASKS * LOCKS_PER_TASK, semaphore);
    group!(
        c,
        "broadcast_16",
        BROADCAST_VALUES * BROADCAST_RECEIVERS,
        broadcast_16
    );
}

criterion_group!(benches, sync);
criterion_main!(benches);
