//! Metrics: work spreads over both workers through stealing; spawn and alive counts are
//! exact.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{DropLog, Payload, scaled, watchdog};
use weft_runtime::Runtime;

/// A little work that cannot be optimised away.
fn work(i: usize) -> usize {
    let mut x = i;
    for _ in 0..200 {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
    x
}

#[test]
fn a_fan_out_is_stolen_by_the_other_worker() {
    common::hang_guard();
    let n = scaled(10_000, 1_000);
    // Stealing is a behaviour, not a certainty in one run: a few attempts, each with a
    // fresh runtime.
    let mut last = String::new();
    for attempt in 0..10 {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let total = watchdog("fan-out", {
            let h = rt.handle().clone();
            let done = done.clone();
            move || {
                h.block_on(async move {
                    weft_runtime::spawn(async move {
                        let hs: Vec<_> = (0..n)
                            .map(|i| {
                                let done = done.clone();
                                weft_runtime::spawn(async move {
                                    done.fetch_add(1, SeqCst);
                                    work(i)
                                })
                            })
                            .collect();
                        let mut t = 0usize;
                        for h in hs {
                            t = t.wrapping_add(h.await.unwrap());
                        }
                        t
                    })
                    .await
                    .unwrap()
                })
            }
        });
        assert_eq!(total, (0..n).map(work).fold(0usize, usize::wrapping_add));
        assert_eq!(done.load(SeqCst), n);
        let m = rt.metrics();
        let w = m.workers();
        let t = m.total();
        assert!(t.polls > n as u64, "{t:?}");
        if w.iter().all(|w| w.polls > 0) && t.steals > 0 {
            assert!(t.steal_operations >= 1);
            return;
        }
        last = format!("attempt {attempt}: {w:?}");
    }
    panic!("the other worker never stole from the fan-out: {last}");
}

#[test]
fn spawned_tasks_count_is_exact() {
    common::hang_guard();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    assert_eq!(rt.metrics().spawned_tasks_count(), 0);
    let n = 1_000u64;
    rt.block_on(async {
        let mut hs = Vec::new();
        for i in 0..n {
            if i % 2 == 0 {
                hs.push(weft_runtime::spawn(async {}));
            } else {
                // From a task: the task itself and its child.
                hs.push(weft_runtime::spawn(async {
                    weft_runtime::spawn(async {}).await.unwrap();
                }));
            }
        }
        for h in hs {
            h.await.unwrap();
        }
        // Blocking jobs are not tasks.
        weft_runtime::task::spawn_blocking(|| ()).await.unwrap();
    });
    assert_eq!(rt.metrics().spawned_tasks_count(), n + n / 2);
    // From a foreign thread, through the handle.
    let h = rt.handle().clone();
    let j = std::thread::spawn(move || h.spawn(async {}))
        .join()
        .unwrap();
    rt.block_on(j).unwrap();
    assert_eq!(rt.metrics().spawned_tasks_count(), n + n / 2 + 1);
}

#[test]
fn num_alive_tasks_returns_to_zero() {
    common::hang_guard();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let m = rt.metrics();
    assert_eq!(m.num_alive_tasks(), 0);
    let n = 500;
    let log = DropLog::new(n);
    let go = common::Signal::new();
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let p = Payload::new(&log, i);
            let go = go.clone();
            rt.spawn(async move {
                let _p = p;
                go.wait().await;
            })
        })
        .collect();
    // None can complete before the signal.
    assert_eq!(m.num_alive_tasks(), n);
    let detached = rt.spawn(std::future::pending::<()>());
    assert_eq!(m.num_alive_tasks(), n + 1);
    go.fire();
    watchdog("join all", {
        let h = rt.handle().clone();
        move || {
            h.block_on(async move {
                for j in hs {
                    j.await.unwrap();
                }
            })
        }
    });
    log.assert_each_once();
    detached.abort();
    assert!(rt.block_on(detached).unwrap_err().is_cancelled());
    common::wait_until("alive count back to 0", || m.num_alive_tasks() == 0);
}

#[test]
fn num_alive_tasks_is_zero_once_every_handle_has_returned() {
    common::hang_guard();
    // A task whose join handle has returned has completed; it should no longer count as
    // alive.
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let m = rt.metrics();
    let rounds = scaled(2_000, 100);
    let mut seen = Vec::new();
    for _ in 0..rounds {
        let alive = rt.block_on(async {
            let h = weft_runtime::spawn(async {});
            h.await.unwrap();
            weft_runtime::Handle::current().metrics().num_alive_tasks()
        });
        if alive != 0 {
            seen.push(alive);
        }
    }
    assert!(
        seen.is_empty(),
        "num_alive_tasks() was {:?} right after the only task's handle returned \
         ({} of {rounds} rounds)",
        &seen[..seen.len().min(5)],
        seen.len()
    );
    assert_eq!(m.num_alive_tasks(), 0);
}
