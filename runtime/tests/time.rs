//! weft::time: sleeps never fire early, timers follow tasks across threads, `timeout`
//! cancels its future, `interval` keeps its schedule after missed ticks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use weft_runtime::Runtime;
use weft_runtime::time::{self, MissedTickBehavior};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// Polls `fut` once, registering its timer on the current thread, and hands it back.
async fn poll_once<F: Future + Unpin>(mut fut: F) -> F {
    std::future::poll_fn(|cx: &mut Context<'_>| {
        let _ = Pin::new(&mut fut).poll(cx);
        Poll::Ready(())
    })
    .await;
    fut
}

#[test]
fn sleeps_on_every_worker_never_complete_early() {
    let rt = rt(2);
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    rt.block_on(async {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                weft_runtime::spawn(async move {
                    let d = Duration::from_micros(100 + (i * 7919 % 10_000) as u64);
                    let deadline = Instant::now() + d;
                    time::sleep_until(deadline).await;
                    assert!(Instant::now() >= deadline, "timer {i} fired early");
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
}

/// `sleep` of 1 ms or more files its timer on the first poll without reading the clock, and
/// completes on its wheel's word that a pass reached the deadline: never early either way.
#[test]
fn millisecond_sleeps_and_timeouts_never_complete_early() {
    let rt = rt(2);
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    rt.block_on(async {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                weft_runtime::spawn(async move {
                    let start = Instant::now();
                    let d = Duration::from_micros(1_000 + (i * 7919 % 5_000) as u64);
                    if i % 2 == 0 {
                        time::sleep(d).await;
                    } else {
                        let never = std::future::pending::<()>();
                        assert!(time::timeout(d, never).await.is_err());
                    }
                    assert!(start.elapsed() >= d, "timer {i} fired early");
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
}

/// A `sleep` first polled after its deadline (left unpolled for longer than its duration)
/// still completes, on either driver: at once if its wheel's time has passed the deadline,
/// else on the wheel's next pass.
#[test]
fn a_sleep_first_polled_after_its_deadline_completes() {
    // What fails here is a hang: a sleep whose first poll comes after its deadline, before
    // the wheel's next pass, is filed ahead of the wheel and must still be woken by a pass.
    common::watchdog("sleeps first polled after their deadlines", || {
        let rt = rt(2);
        rt.block_on(async {
            for _ in 0..50 {
                let s = time::sleep(Duration::from_millis(1));
                std::thread::sleep(Duration::from_millis(2));
                s.await;
            }
            weft_runtime::spawn(async {
                let s = time::sleep(Duration::from_millis(1));
                std::thread::sleep(Duration::from_millis(2));
                s.await;
            })
            .await
            .unwrap();
        });
    });
}

#[test]
fn zero_and_past_deadlines_complete_at_once() {
    let rt = rt(1);
    rt.block_on(async {
        time::sleep(Duration::ZERO).await;
        time::sleep_until(Instant::now() - Duration::from_millis(5)).await;
    });
}

#[test]
fn huge_duration_does_not_overflow() {
    let rt = rt(1);
    let r = rt.block_on(time::timeout(
        Duration::from_millis(2),
        time::sleep(Duration::MAX),
    ));
    assert!(r.is_err());
}

#[test]
fn a_sleep_registered_on_one_thread_completes_on_another() {
    let rt = rt(2);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_millis(5);
        // Registered in the block_on thread's wheel...
        let sleep = poll_once(time::sleep_until(deadline)).await;
        // ...awaited by a task on a worker, which must be woken by that wheel.
        weft_runtime::spawn(async move {
            sleep.await;
            assert!(Instant::now() >= deadline);
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_sleep_dropped_on_another_thread_is_cancelled() {
    let rt = rt(2);
    let fired = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let sleep = poll_once(time::sleep(Duration::from_millis(3))).await;
        weft_runtime::task::spawn_blocking(move || drop(sleep))
            .await
            .unwrap();
        // The wheel entry is gone: waiting past the deadline wakes nothing stale.
        time::sleep(Duration::from_millis(10)).await;
        fired.fetch_add(1, SeqCst);
    });
    assert_eq!(fired.load(SeqCst), 1);
}

#[test]
fn sleep_in_a_blocking_thread_uses_a_worker_wheel() {
    let rt = rt(2);
    let h = rt.handle().clone();
    let out = rt.block_on(async move {
        weft_runtime::task::spawn_blocking(move || {
            let start = Instant::now();
            // A nested block_on is fine on a blocking thread (it is not a worker).
            h.block_on(time::sleep(Duration::from_millis(3)));
            start.elapsed()
        })
        .await
        .unwrap()
    });
    assert!(out >= Duration::from_millis(3));
}

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn timeout_cancels_the_inner_future_and_reports_elapsed() {
    let rt = rt(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let r = rt.block_on(async move {
        let guard = DropCount(d);
        time::timeout(Duration::from_millis(2), async move {
            let _g = guard;
            time::sleep(Duration::from_secs(30)).await;
        })
        .await
    });
    assert_eq!(r, Err(time::Elapsed::clone(&r.unwrap_err())));
    assert_eq!(drops.load(SeqCst), 1);
    let e: std::io::Error = r.unwrap_err().into();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn timeout_gives_the_value_when_the_future_wins() {
    let rt = rt(1);
    let r = rt.block_on(time::timeout(Duration::from_secs(5), async {
        time::sleep(Duration::from_millis(1)).await;
        11
    }));
    assert_eq!(r, Ok(11));
}

#[test]
fn reset_moves_the_deadline() {
    let rt = rt(1);
    rt.block_on(async {
        let start = Instant::now();
        let mut s = time::sleep(Duration::from_secs(60));
        s = poll_once(s).await;
        Pin::new(&mut s).reset(start + Duration::from_millis(3));
        s.await;
        let e = start.elapsed();
        assert!(e >= Duration::from_millis(3));
    });
}

#[test]
fn interval_ticks_on_schedule() {
    let rt = rt(1);
    rt.block_on(async {
        let p = Duration::from_millis(3);
        let mut iv = time::interval(p);
        let t0 = iv.tick().await;
        for k in 1..4u32 {
            let t = iv.tick().await;
            assert_eq!(t, t0 + p * k);
            assert!(Instant::now() >= t);
        }
    });
}

#[test]
fn interval_keeps_its_period_without_drift_over_10_000_ticks() {
    let rt = rt(1);
    rt.block_on(async {
        let p = Duration::from_micros(50);
        let mut iv = time::interval(p);
        let t0 = iv.tick().await;
        for k in 1..=10_000u32 {
            let t = iv.tick().await;
            // The schedule is `start + k * period`, whatever the lateness of each tick.
            assert_eq!(t, t0 + p * k, "tick {k} drifted");
            assert!(Instant::now() >= t, "tick {k} early");
        }
    });
}

#[test]
fn sub_millisecond_sleeps_never_complete_early() {
    for workers in [1, 2] {
        let rt = rt(workers);
        rt.block_on(async {
            for us in [1u64, 10, 100, 250, 999, 1_001] {
                for _ in 0..20 {
                    let d = Duration::from_micros(us);
                    let start = Instant::now();
                    time::sleep(d).await;
                    assert!(start.elapsed() >= d, "sleep({us} us) completed early");
                }
            }
        });
    }
}

fn missed(behavior: MissedTickBehavior) -> (Instant, Vec<Instant>, Instant) {
    let rt = rt(1);
    rt.block_on(async move {
        let p = Duration::from_millis(5);
        let mut iv = time::interval(p);
        iv.set_missed_tick_behavior(behavior);
        let t0 = iv.tick().await;
        // Busy past three and a half periods.
        std::thread::sleep(Duration::from_millis(18));
        let woke = Instant::now();
        let mut ticks = Vec::new();
        for _ in 0..3 {
            ticks.push(iv.tick().await);
        }
        (t0, ticks, woke)
    })
}

#[test]
fn interval_burst_catches_up_back_to_back() {
    let (t0, ticks, _) = missed(MissedTickBehavior::Burst);
    let p = Duration::from_millis(5);
    assert_eq!(ticks, vec![t0 + p, t0 + p * 2, t0 + p * 3]);
}

#[test]
fn interval_delay_restarts_from_now() {
    let (t0, ticks, woke) = missed(MissedTickBehavior::Delay);
    let p = Duration::from_millis(5);
    assert_eq!(ticks[0], t0 + p);
    assert!(
        ticks[1] >= woke + p,
        "delay keeps a full period after the late tick"
    );
    // Exactly one period later, unless this thread was itself held up past it (a loaded
    // machine): never earlier.
    assert!(ticks[2] >= ticks[1] + p);
}

#[test]
fn interval_skip_stays_on_the_original_grid() {
    let (t0, ticks, woke) = missed(MissedTickBehavior::Skip);
    let p = Duration::from_millis(5);
    assert_eq!(ticks[0], t0 + p);
    let off = ticks[1] - t0;
    assert_eq!(off.as_nanos() % p.as_nanos(), 0, "skip keeps the grid");
    assert!(ticks[1] > woke);
    // Next grid point after the previous tick (later ones only if this thread was held up).
    assert!(ticks[2] >= ticks[1] + p);
    assert_eq!(
        (ticks[2] - t0).as_nanos() % p.as_nanos(),
        0,
        "skip keeps the grid"
    );
}

#[test]
#[should_panic(expected = "non-zero")]
fn interval_of_zero_panics() {
    let _ = time::interval(Duration::ZERO);
}

#[test]
fn sleep_outside_a_runtime_panics_clearly() {
    let err = std::panic::catch_unwind(|| {
        let mut s = time::sleep(Duration::from_secs(1));
        let waker = std::task::Waker::noop();
        let _ = Pin::new(&mut s).poll(&mut Context::from_waker(waker));
    })
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("block_on"), "{msg}");
}

#[test]
fn shutdown_drops_tasks_sleeping_forever() {
    let drops = Arc::new(AtomicUsize::new(0));
    let rt = rt(2);
    for _ in 0..1000 {
        let g = DropCount(drops.clone());
        rt.spawn(async move {
            let _g = g;
            time::sleep(Duration::from_secs(3600)).await;
        });
    }
    rt.block_on(time::sleep(Duration::from_millis(5)));
    drop(rt);
    assert_eq!(drops.load(SeqCst), 1000);
}

#[test]
fn a_sleep_is_32_bytes() {
    // With its 40-byte wheel entry, the memory per registered timer (timer_memory).
    if cfg!(target_pointer_width = "64") {
        assert_eq!(std::mem::size_of::<time::Sleep>(), 32);
    }
}

#[test]
fn sleeps_end_every_way_never_early() {
    // A completed sleep forgets its entry without the wheel's lock when a firing pass is
    // known to have fired it, and cancels it under the lock otherwise (reset earlier, or
    // dropped while pending): each way completes, and never before its deadline.
    let rt = rt(1);
    rt.block_on(async {
        for i in 0..200u64 {
            let start = Instant::now();
            let d = Duration::from_micros(50 + i * 13 % 400);
            let mut s = time::sleep(d);
            if i % 3 == 0 {
                s = poll_once(s).await;
                std::pin::Pin::new(&mut s).reset(start + d / 2);
            }
            if i % 5 == 0 {
                drop(poll_once(s).await);
                continue;
            }
            let deadline = s.deadline();
            s.await;
            assert!(Instant::now() >= deadline, "sleep {i} completed early");
        }
        let h = weft_runtime::spawn(time::sleep(Duration::from_millis(1)));
        h.await.unwrap();
    });
}
