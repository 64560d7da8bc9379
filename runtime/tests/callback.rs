//! weft::callback: `defer` ordering and shutdown, timers, the composition helpers' "exactly
//! once" guarantees (including operations that complete synchronously), `Once`, and file
//! callbacks on both I/O drivers.
//!
//! Every check is on behaviour. Durations appear only as lower bounds ("not before its
//! delay") or as "wait until past a deadline, then check that nothing else happened".

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Counted, DropLog, Flag, Payload, hang_guard, watchdog_limit};
use weft_runtime::callback::{
    self, Callback, Cancel, IntervalHandle, Once, Part, any, defer, parallel, parallel_limit,
    parallel_settled, race, resolve_later, retry, series, set_interval, set_timeout, timeout,
    waterfall,
};
use weft_runtime::time::Elapsed;
use weft_runtime::{Runtime, UringMode};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// Receives one value, failing the test (instead of hanging) if none comes.
#[track_caller]
fn recv<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(watchdog_limit())
        .expect("no value within the watchdog limit: a callback was lost or the runtime hung")
}

/// Waits until `d` has passed, then until a timer set after that on a worker has fired and
/// its callback has run: every timer due before then has fired too, and (on a one-worker
/// runtime, whose single FIFO queue every callback goes through) every callback queued by
/// then has run.
fn wait_past(rt: &Runtime, d: Duration) {
    std::thread::sleep(d + Duration::from_millis(10));
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || {
        set_timeout(Duration::from_millis(2), move || {
            defer(move || tx.send(()).unwrap());
        });
    });
    recv(&rx);
}

/// A final callback that counts its calls and forwards each result.
fn counted<R: Send + 'static>() -> (
    Arc<AtomicUsize>,
    Receiver<R>,
    impl FnOnce(R) + Send + 'static,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let c = calls.clone();
    (calls, rx, move |r: R| {
        c.fetch_add(1, SeqCst);
        tx.send(r).unwrap();
    })
}

/// A `Cancel` that only counts its calls.
struct CountCancel(Arc<AtomicUsize>);

impl Cancel for CountCancel {
    fn cancel(self) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn worker_name(rt_name: &str) -> impl Fn() -> bool + use<> {
    let prefix = format!("{rt_name}-");
    move || {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(&prefix) && !n.contains("blocking"))
    }
}

// --- defer ---------------------------------------------------------------------------------

thread_local! {
    /// Set while a test's code that calls `defer` runs: a callback run inline would see it.
    static DEFERRING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Calls `f` with [`DEFERRING`] set on this thread.
fn deferring(f: impl FnOnce()) {
    DEFERRING.with(|d| d.set(true));
    f();
    DEFERRING.with(|d| d.set(false));
}

#[test]
fn defer_runs_on_a_worker_never_inline() {
    hang_guard();
    for workers in [1, 2] {
        let rt = Runtime::builder()
            .worker_threads(workers)
            .thread_name("cbdefer")
            .build()
            .unwrap();
        // From a worker, through `Handle::defer` and `defer`.
        let (tx, rx) = mpsc::channel();
        rt.handle().defer(move || {
            let outer = (worker_name("cbdefer")(), !DEFERRING.with(|d| d.get()));
            // Set after `defer` returns: a callback run inline would see it clear. (Only
            // meaningful with one worker: with two, the other may steal and run it at once.)
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            deferring(|| {
                defer(move || {
                    let inner = (worker_name("cbdefer")(), !DEFERRING.with(|d| d.get()));
                    tx.send((outer, inner, f.load(SeqCst))).unwrap()
                })
            });
            flag.store(true, SeqCst);
        });
        let (outer, inner, flag) = recv(&rx);
        assert_eq!(
            outer,
            (true, true),
            "Handle::defer: (on a worker, not inline)"
        );
        assert_eq!(inner, (true, true), "defer: (on a worker, not inline)");
        if workers == 1 {
            assert!(flag, "defer ran its callback before returning");
        }

        // From `block_on` (not a worker): run on a worker, so not inline.
        let (tx, rx) = mpsc::channel();
        rt.block_on(async move {
            deferring(|| {
                defer(move || {
                    let inner = (worker_name("cbdefer")(), !DEFERRING.with(|d| d.get()));
                    tx.send(inner).unwrap()
                })
            });
        });
        assert_eq!(recv(&rx), (true, true), "defer from block_on");
    }
}

#[test]
fn deferred_callbacks_from_one_worker_run_in_fifo_order() {
    hang_guard();
    let rt = rt(1);
    let n = 1000;
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || {
        for i in 0..n {
            let tx = tx.clone();
            defer(move || tx.send(i).unwrap());
        }
    });
    let order: Vec<usize> = (0..n).map(|_| recv(&rx)).collect();
    assert_eq!(order, (0..n).collect::<Vec<_>>());
}

#[test]
fn handle_defer_from_a_non_worker_thread() {
    hang_guard();
    for workers in [1, 2] {
        let rt = Runtime::builder()
            .worker_threads(workers)
            .thread_name("cbremote")
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for i in 0..100 {
                let tx = tx.clone();
                let on_worker = worker_name("cbremote");
                handle.defer(move || tx.send((i, on_worker())).unwrap());
            }
        })
        .join()
        .unwrap();
        let mut got: Vec<(usize, bool)> = (0..100).map(|_| recv(&rx)).collect();
        got.sort();
        assert_eq!(got, (0..100).map(|i| (i, true)).collect::<Vec<_>>());
    }
}

#[test]
#[should_panic(expected = "there is no weft runtime on this thread")]
fn defer_outside_a_runtime_panics() {
    defer(|| {});
}

#[test]
fn callbacks_queued_at_shutdown_are_dropped_once_and_never_run_after() {
    hang_guard();
    // The only worker is blocked in a callback while 1000 more (each owning a payload)
    // wait in the global queue and 200 in its local queue; then the runtime is dropped.
    let rt = rt(1);
    let handle = rt.handle().clone();
    let log = DropLog::new(1200);
    let ran = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (blocked_tx, blocked_rx) = mpsc::channel();
    {
        let (log, ran) = (log.clone(), ran.clone());
        rt.handle().defer(move || {
            for id in 1000..1200 {
                let (p, ran) = (Payload::new(&log, id), ran.clone());
                defer(move || {
                    let _p = p;
                    ran.fetch_add(1, SeqCst);
                });
            }
            blocked_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
    }
    recv(&blocked_rx);
    for id in 0..1000 {
        let (p, ran) = (Payload::new(&log, id), ran.clone());
        rt.handle().defer(move || {
            let _p = p;
            ran.fetch_add(1, SeqCst);
        });
    }
    log.assert_none();
    let dropper = std::thread::spawn(move || drop(rt));
    // Give the drop a moment to start (only so that some callbacks are dropped unrun; the
    // assertions below hold either way), then let the worker go.
    std::thread::sleep(Duration::from_millis(50));
    release_tx.send(()).unwrap();
    dropper.join().unwrap();

    // Every payload was dropped exactly once by the time the drop returned, whether its
    // callback ran (and dropped it) or was dropped unrun.
    log.assert_each_once();
    let ran_at_drop = ran.load(SeqCst);
    assert!(ran_at_drop <= 1200);

    // After the drop nothing runs: neither what was queued, nor what is queued now.
    let late = Arc::new(AtomicUsize::new(0));
    let late_drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let (late, d) = (late.clone(), Counted(late_drops.clone()));
        handle.defer(move || {
            let _d = d;
            late.fetch_add(1, SeqCst);
        });
    }
    assert_eq!(
        late_drops.load(SeqCst),
        10,
        "a callback queued after drop was kept"
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        late.load(SeqCst),
        0,
        "a callback ran after the runtime was dropped"
    );
    assert_eq!(ran.load(SeqCst), ran_at_drop);
}

#[test]
fn shutdown_background_drops_globally_queued_callbacks_unrun() {
    hang_guard();
    let rt = rt(1);
    let log = DropLog::new(100);
    let ran = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (blocked_tx, blocked_rx) = mpsc::channel();
    let (exited_tx, exited_rx) = mpsc::channel();
    rt.handle().defer(move || {
        blocked_tx.send(()).unwrap();
        let _ = release_rx.recv();
        exited_tx.send(()).unwrap();
    });
    recv(&blocked_rx);
    for id in 0..100 {
        let (p, ran) = (Payload::new(&log, id), ran.clone());
        rt.handle().defer(move || {
            let _p = p;
            ran.fetch_add(1, SeqCst);
        });
    }
    // The worker is busy, so the queued callbacks are dropped by the shutdown itself.
    rt.shutdown_background();
    log.assert_each_once();
    release_tx.send(()).unwrap();
    recv(&exited_rx);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn a_panicking_deferred_callback_does_not_kill_the_worker() {
    hang_guard();
    let rt = rt(1);
    for _ in 0..3 {
        rt.handle()
            .defer(|| panic!("deferred callback panic (expected by this test)"));
    }
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || {
        // Also from inside a worker, behind another panicking callback.
        defer(|| panic!("nested deferred callback panic (expected by this test)"));
        defer(move || tx.send(7).unwrap());
    });
    assert_eq!(recv(&rx), 7);
}

/// A callback that defers the next, over and over, until `stop` says so (or `max` ran):
/// how many ran.
fn chain_until(
    n: Arc<AtomicUsize>,
    max: usize,
    stop: impl Fn() -> bool + Send + Sync + 'static,
    done: mpsc::Sender<usize>,
) {
    fn step(
        n: Arc<AtomicUsize>,
        max: usize,
        stop: Arc<dyn Fn() -> bool + Send + Sync>,
        done: mpsc::Sender<usize>,
    ) {
        let i = n.fetch_add(1, SeqCst) + 1;
        if stop() || i >= max {
            done.send(i).unwrap();
            return;
        }
        defer(move || step(n, max, stop, done));
    }
    let stop: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(stop);
    defer(move || step(n, max, stop, done));
}

/// A chain of callbacks, each deferring the next, and a task that yields after each step
/// take turns on one worker: the callback deferred while the task waits in the queue runs
/// after it, however cheaply a lone chain runs.
#[test]
fn a_chain_of_callbacks_and_a_yielding_task_take_turns() {
    hang_guard();
    let rt = rt(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let l = log.clone();
    rt.handle().defer(move || {
        let lt = l.clone();
        weft_runtime::spawn(async move {
            for i in 0..10 {
                lt.lock().unwrap().push(format!("t{i}"));
                weft_runtime::task::yield_now().await;
            }
        });
        fn step(i: usize, l: Arc<Mutex<Vec<String>>>, tx: mpsc::Sender<()>) {
            l.lock().unwrap().push(format!("k{i}"));
            if i == 9 {
                return tx.send(()).unwrap();
            }
            defer(move || step(i + 1, l, tx));
        }
        defer(move || step(0, l, tx));
    });
    recv(&rx);
    let want: Vec<String> = (0..10)
        .flat_map(|i| [format!("t{i}"), format!("k{i}")])
        .collect();
    assert_eq!(*log.lock().unwrap(), want);
}

/// A chain of callbacks that never ends by itself still lets its worker fire timers, take
/// work from the global queue and shut down.
#[test]
fn an_endless_chain_of_callbacks_starves_nothing() {
    hang_guard();
    const MAX: usize = 50_000_000;
    let rt = rt(1);
    // A timer set before the chain starts fires while it runs.
    let (fired, n, (tx, rx)) = (Flag::new(), Arc::new(AtomicUsize::new(0)), mpsc::channel());
    let (f, n2) = (fired.clone(), n.clone());
    rt.handle().defer(move || {
        set_timeout(Duration::from_millis(1), move || f.set());
        chain_until(n2, MAX, move || fired.get(), tx);
    });
    assert!(recv(&rx) < MAX, "the timer never fired during the chain");
    // A task spawned from outside (the global queue) runs while it runs.
    let (ran, n, (tx, rx)) = (Flag::new(), Arc::new(AtomicUsize::new(0)), mpsc::channel());
    let r = ran.clone();
    let (started_tx, started) = mpsc::channel();
    rt.handle().defer(move || {
        let n3 = n.clone();
        chain_until(n, MAX, move || r.get(), tx);
        // Once the chain has begun.
        chain_until(n3, MAX, move || true, started_tx);
    });
    recv(&started);
    let r = ran.clone();
    drop(rt.spawn(async move { r.set() }));
    assert!(
        recv(&rx) < MAX,
        "the spawned task never ran during the chain"
    );
    // Shutdown stops a chain that never ends: each closure is run or dropped, once.
    let drops = Arc::new(AtomicUsize::new(0));
    let (runs, (tx, rx)) = (Arc::new(AtomicUsize::new(0)), mpsc::channel());
    fn forever(d: Arc<AtomicUsize>, runs: Arc<AtomicUsize>, tx: mpsc::Sender<()>) {
        let payload = Counted(d.clone());
        if runs.fetch_add(1, SeqCst) == 100 {
            tx.send(()).unwrap();
        }
        defer(move || {
            let _p = payload;
            forever(d, runs, tx)
        });
    }
    let (d, ru) = (drops.clone(), runs.clone());
    rt.handle().defer(move || forever(d, ru, tx));
    recv(&rx);
    drop(rt);
    let made = runs.load(SeqCst);
    assert_eq!(drops.load(SeqCst), made, "a payload was not dropped once");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        runs.load(SeqCst),
        made,
        "a callback ran after the runtime was dropped"
    );
}

/// A chain of callbacks in which every other one panics after deferring the next runs to
/// its end, each closure's captures dropped once.
#[test]
fn a_chain_of_callbacks_survives_panics_in_it() {
    hang_guard();
    common::quiet_expected_panics();
    let rt = rt(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    fn step(i: usize, d: Arc<AtomicUsize>, tx: mpsc::Sender<usize>) {
        if i == 100 {
            return tx.send(i).unwrap();
        }
        let payload = Counted(d.clone());
        defer(move || {
            let _p = payload;
            step(i + 1, d, tx)
        });
        if i % 2 == 1 {
            panic!("[expected] a callback in a chain panics");
        }
    }
    let d = drops.clone();
    rt.handle().defer(move || step(0, d, tx));
    assert_eq!(recv(&rx), 100);
    drop(rt);
    assert_eq!(drops.load(SeqCst), 100);
}

#[test]
fn event_order_is_a_d_c_b() {
    hang_guard();
    let rt = rt(1);
    for _ in 0..20 {
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let l = log.clone();
        rt.handle().defer(move || {
            l.lock().unwrap().push('A');
            let (l2, l3) = (l.clone(), l.clone());
            set_timeout(Duration::ZERO, move || {
                l2.lock().unwrap().push('B');
                tx.send(()).unwrap();
            });
            defer(move || l3.lock().unwrap().push('C'));
            l.lock().unwrap().push('D');
        });
        recv(&rx);
        assert_eq!(*log.lock().unwrap(), "ADCB");
    }
}

// --- set_timeout ---------------------------------------------------------------------------

#[test]
fn set_timeout_never_fires_before_its_delay() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let (tx, rx) = mpsc::channel();
        // From a worker and from `block_on` (the latter files the timer in a worker's
        // wheel from outside).
        for (i, delay) in [0u64, 1, 5, 20].into_iter().enumerate() {
            let delay = Duration::from_millis(delay);
            let tx1 = tx.clone();
            rt.handle().defer(move || {
                let start = Instant::now();
                set_timeout(delay, move || {
                    tx1.send((i, start.elapsed(), delay)).unwrap()
                });
            });
            let tx = tx.clone();
            rt.block_on(async move {
                let start = Instant::now();
                set_timeout(delay, move || tx.send((i, start.elapsed(), delay)).unwrap());
            });
        }
        for _ in 0..8 {
            let (i, elapsed, delay) = recv(&rx);
            assert!(
                elapsed >= delay,
                "timer {i} fired after {elapsed:?} < {delay:?}"
            );
        }
    }
}

#[test]
fn set_timeout_cancelled_before_firing_never_runs() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let (r, d) = (ran.clone(), Counted(dropped.clone()));
        rt.handle().defer(move || {
            let t = set_timeout(Duration::from_millis(20), move || {
                let _d = d;
                r.fetch_add(1, SeqCst);
            });
            tx.send(t.cancel()).unwrap();
        });
        assert!(recv(&rx), "cancel before the deadline returned false");
        assert_eq!(
            dropped.load(SeqCst),
            1,
            "the cancelled callback was not dropped"
        );
        wait_past(&rt, Duration::from_millis(20));
        assert_eq!(ran.load(SeqCst), 0);

        // Cancelled from another thread than the one that set it.
        let (tx, rx) = mpsc::channel();
        let r = ran.clone();
        rt.handle().defer(move || {
            let t = set_timeout(Duration::from_millis(20), move || {
                r.fetch_add(1, SeqCst);
            });
            tx.send(t).unwrap();
        });
        let t = recv(&rx);
        assert!(t.cancel());
        wait_past(&rt, Duration::from_millis(20));
        assert_eq!(ran.load(SeqCst), 0);
    }
}

#[test]
fn set_timeout_cancel_after_firing_returns_false() {
    hang_guard();
    let rt = rt(2);
    let (tx, rx) = mpsc::channel();
    let (fired_tx, fired_rx) = mpsc::channel();
    rt.block_on(async move {
        let t = set_timeout(Duration::from_millis(1), move || fired_tx.send(()).unwrap());
        tx.send(t).unwrap();
    });
    let t = recv(&rx);
    recv(&fired_rx);
    assert!(!t.cancel());
}

#[test]
fn dropping_a_timeout_handle_does_not_cancel() {
    hang_guard();
    let rt = rt(1);
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || {
        let start = Instant::now();
        drop(set_timeout(Duration::from_millis(5), move || {
            tx.send(start.elapsed()).unwrap()
        }));
    });
    assert!(recv(&rx) >= Duration::from_millis(5));
}

#[test]
fn a_pending_timer_is_dropped_unrun_with_the_runtime() {
    hang_guard();
    // Neither the callback nor the runtime may be kept alive by a timer that never fires.
    let rt = rt(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let (d1, d2, r1, r2) = (
        Counted(drops.clone()),
        Counted(drops.clone()),
        ran.clone(),
        ran.clone(),
    );
    rt.handle().defer(move || {
        drop(set_timeout(Duration::from_secs(3600), move || {
            let _d = d1;
            r1.fetch_add(1, SeqCst);
        }));
        drop(set_interval(Duration::from_secs(3600), move || {
            let _ = &d2;
            r2.fetch_add(1, SeqCst);
        }));
        tx.send(()).unwrap();
    });
    recv(&rx);
    drop(rt);
    assert_eq!(ran.load(SeqCst), 0);
    assert_eq!(
        drops.load(SeqCst),
        2,
        "a pending timer's callback outlived the runtime"
    );
}

#[test]
fn a_pending_timer_whose_callback_keeps_its_own_handle_is_freed_with_the_runtime() {
    hang_guard();
    // The callback holds the timer's handle, which holds the callback's slot: the wheel
    // dropping its waker unfired must empty the slot, or the two keep each other alive.
    let rt = rt(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let d = Counted(drops.clone());
    rt.handle().defer(move || {
        let (htx, hrx) = mpsc::channel::<callback::TimeoutHandle>();
        let h = set_timeout(Duration::from_secs(3600), move || {
            let _d = &d;
            let _own = hrx.try_recv();
        });
        htx.send(h).unwrap();
        tx.send(()).unwrap();
    });
    recv(&rx);
    drop(rt);
    assert_eq!(drops.load(SeqCst), 1, "a timer and its own handle leaked");
}

// --- set_interval --------------------------------------------------------------------------

#[test]
fn set_interval_ticks_on_schedule_and_cancels_from_inside() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let period = Duration::from_millis(5);
        let ticks = Arc::new(Mutex::new(Vec::new()));
        let handle: Arc<OnceLock<IntervalHandle>> = Arc::new(OnceLock::new());
        let (tx, rx) = mpsc::channel();
        let (t, h) = (ticks.clone(), handle.clone());
        rt.handle().defer(move || {
            let start = Instant::now();
            let h2 = h.clone();
            let iv = set_interval(period, move || {
                let mut t = t.lock().unwrap();
                t.push(start.elapsed());
                if t.len() == 3 {
                    let cancelled = h2.get().expect("handle set before the first tick").cancel();
                    tx.send(cancelled).unwrap();
                }
            });
            h.set(iv).unwrap();
        });
        assert!(recv(&rx), "the first cancel returned false");
        wait_past(&rt, period * 5);
        let ticks = ticks.lock().unwrap().clone();
        assert_eq!(ticks.len(), 3, "ticks after cancel: {ticks:?}");
        for (k, at) in ticks.iter().enumerate() {
            let due = period * (k as u32 + 1);
            assert!(*at >= due, "tick {} at {at:?}, before {due:?}", k + 1);
        }
        assert!(
            !handle.get().unwrap().cancel(),
            "the second cancel returned true"
        );
    }
}

#[test]
fn set_interval_cancelled_from_outside_stops_ticking() {
    hang_guard();
    let rt = rt(2);
    let count = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let c = count.clone();
    let iv = rt.block_on(async move {
        set_interval(Duration::from_millis(2), move || {
            if c.fetch_add(1, SeqCst) == 1 {
                let _ = tx.send(());
            }
        })
    });
    recv(&rx);
    // (With `Cancel` in scope, `iv.cancel()` on an owned handle would be `Cancel::cancel`.)
    assert!(IntervalHandle::cancel(&iv));
    let after = count.load(SeqCst);
    wait_past(&rt, Duration::from_millis(20));
    // At most a tick that had already started when `cancel` ran.
    assert!(count.load(SeqCst) <= after + 1);
    let settled = count.load(SeqCst);
    wait_past(&rt, Duration::from_millis(20));
    assert_eq!(count.load(SeqCst), settled);
    assert!(!IntervalHandle::cancel(&iv));
}

#[test]
fn a_panicking_interval_stops_instead_of_ticking_on_empty() {
    hang_guard();
    let rt = rt(1);
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || {
        tx.send(set_interval(Duration::from_millis(2), move || {
            t.fetch_add(1, SeqCst);
            panic!("interval callback panic (expected by this test)");
        }))
        .unwrap();
    });
    let iv = recv(&rx);
    wait_past(&rt, Duration::from_millis(20));
    assert_eq!(ticks.load(SeqCst), 1);
    // The panic stopped it; the handle says so.
    assert!(!IntervalHandle::cancel(&iv));
}

// --- Once semantics of the helpers ---------------------------------------------------------

/// Runs `f` on a worker of `rt` and returns at once.
fn on_worker(rt: &Runtime, f: impl FnOnce() + Send + 'static) {
    rt.handle().defer(f);
}

#[test]
fn parallel_first_error_is_reported_once() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let (calls, rx, done) = counted::<Result<Vec<u32>, String>>();
        on_worker(&rt, move || {
            parallel(
                3,
                |i, part: Part<u32, String>| {
                    if i == 1 {
                        resolve_later(Err("op 1 failed".to_string()), part);
                    } else {
                        set_timeout(Duration::from_millis(10), move || part.call(Ok(i as u32)));
                    }
                },
                done,
            );
        });
        assert_eq!(recv(&rx), Err("op 1 failed".to_string()));
        wait_past(&rt, Duration::from_millis(10));
        assert_eq!(calls.load(SeqCst), 1);
        assert!(rx.try_recv().is_err());
    }
}

#[test]
fn parallel_collects_in_input_order() {
    hang_guard();
    let rt = rt(2);
    let (calls, rx, done) = counted::<Result<Vec<u64>, ()>>();
    rt.block_on(async move {
        parallel(
            5,
            |i, part: Part<u64, ()>| {
                set_timeout(Duration::from_millis(10 - 2 * i as u64), move || {
                    part.call(Ok(i as u64 * 10))
                });
            },
            done,
        );
    });
    assert_eq!(recv(&rx), Ok(vec![0, 10, 20, 30, 40]));
    assert_eq!(calls.load(SeqCst), 1);
}

/// The callbacks a `parallel` start defers run in the order deferred, after what was queued
/// before it, with a nested helper's batch in its place, and a panicking one does not stop
/// the rest of its batch.
#[test]
fn callbacks_deferred_by_a_helper_start_keep_their_order() {
    hang_guard();
    common::quiet_expected_panics();
    let rt = rt(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let l = log.clone();
    on_worker(&rt, move || {
        let push = |l: &Arc<Mutex<Vec<String>>>, s: String| l.lock().unwrap().push(s);
        let l0 = l.clone();
        defer(move || push(&l0, "before".into()));
        parallel(
            4,
            |i, part: Part<(), ()>| {
                let l = l.clone();
                if i == 2 {
                    // A nested helper: its batch goes into this one, at this place.
                    parallel(
                        2,
                        |j, inner: Part<(), ()>| {
                            let l = l.clone();
                            defer(move || {
                                push(&l, format!("2.{j}"));
                                inner.call(Ok(()))
                            })
                        },
                        |_: Result<Vec<()>, ()>| {},
                    );
                }
                defer(move || {
                    push(&l, format!("{i}"));
                    if i == 1 {
                        panic!("[expected] callback 1 panics");
                    }
                    part.call(Ok(()))
                });
            },
            |_: Result<Vec<()>, ()>| {},
        );
        let l2 = l.clone();
        defer(move || {
            push(&l2, "after".into());
            tx.send(()).unwrap()
        });
    });
    recv(&rx);
    assert_eq!(
        *log.lock().unwrap(),
        ["before", "0", "1", "2.0", "2.1", "2", "3", "after"]
    );
}

/// A gather keeps the slots of up to four parts in its block and larger sets in a slice:
/// on either side of that boundary the batched callbacks run in the order deferred and
/// every value arrives in its slot.
#[test]
fn batches_of_every_size_keep_their_order_and_values() {
    hang_guard();
    let rt = rt(1);
    for n in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let l = log.clone();
        on_worker(&rt, move || {
            parallel(
                n,
                |i, part: Part<usize, ()>| {
                    let l = l.clone();
                    defer(move || {
                        l.lock().unwrap().push(i);
                        part.call(Ok(i * 3))
                    })
                },
                move |r: Result<Vec<usize>, ()>| tx.send(r).unwrap(),
            );
        });
        assert_eq!(recv(&rx), Ok((0..n).map(|i| i * 3).collect()), "n = {n}");
        assert_eq!(*log.lock().unwrap(), (0..n).collect::<Vec<_>>(), "n = {n}");
    }
}

/// An operation function that panics midway: the callbacks the earlier ones deferred are
/// queued still (they hold parts, whose claims free the composite) and run.
#[test]
fn callbacks_deferred_before_an_op_panics_still_run() {
    hang_guard();
    common::quiet_expected_panics();
    let rt = rt(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let r = ran.clone();
    on_worker(&rt, move || {
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parallel_settled(
                3,
                |i, part: Part<(), ()>| {
                    if i == 2 {
                        panic!("[expected] op 2 panics");
                    }
                    let r = r.clone();
                    defer(move || {
                        r.fetch_add(1, SeqCst);
                        part.call(Ok(()))
                    });
                },
                |_| {},
            )
        }));
        assert!(res.is_err());
        defer(move || tx.send(()).unwrap());
    });
    recv(&rx);
    assert_eq!(ran.load(SeqCst), 2);
}

/// A `parallel` of 100 deferred callbacks started on a worker of a two-worker runtime whose
/// other worker is parked: the 100 callbacks are one queue entry, which the running worker
/// takes next, so the idle worker is not woken to steal half of them (when they were 100
/// entries it was, nearly every round: `all_100/ready` in the callback style ran 1.8x
/// slower on two workers than on one).
#[test]
fn a_parallel_of_deferred_callbacks_wakes_no_idle_worker() {
    hang_guard();
    const ROUNDS: usize = 200;
    let rt = rt(2);
    common::wait_until("both workers to park", || {
        rt.metrics().num_parked_workers() == 2
    });
    let before = rt.metrics().total().parks;

    struct Round {
        left: usize,
        tx: mpsc::Sender<()>,
    }
    fn round(r: Round) {
        // Long enough for a worker woken by the previous round to park again, so that each
        // needless wake-up shows as one park.
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(100) {
            std::hint::spin_loop();
        }
        if r.left == 0 {
            return r.tx.send(()).unwrap();
        }
        parallel(
            100,
            |i, part: Part<usize, ()>| resolve_later(Ok(i), part),
            move |v: Result<Vec<usize>, ()>| {
                assert_eq!(v.map(|v| v.len()), Ok(100));
                round(Round {
                    left: r.left - 1,
                    tx: r.tx,
                })
            },
        );
    }
    let (tx, rx) = mpsc::channel();
    on_worker(&rt, move || round(Round { left: ROUNDS, tx }));
    recv(&rx);
    let parks = rt.metrics().total().parks - before;
    assert!(
        parks <= (ROUNDS / 20) as u64,
        "the idle worker was woken and parked again {parks} times in {ROUNDS} rounds"
    );
}

#[test]
fn race_where_all_complete_calls_final_once() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        // All three complete (on the next pass, or at the same deadline).
        for timers in [false, true] {
            let (calls, rx, done) = counted::<Result<usize, ()>>();
            on_worker(&rt, move || {
                race(
                    3,
                    move |i, part: Part<usize, ()>| {
                        if timers {
                            drop(set_timeout(Duration::from_millis(5), move || {
                                part.call(Ok(i))
                            }));
                        } else {
                            resolve_later(Ok(i), part);
                        }
                    },
                    done,
                );
            });
            let winner = recv(&rx).unwrap();
            assert!(winner < 3);
            wait_past(&rt, Duration::from_millis(5));
            assert_eq!(calls.load(SeqCst), 1);
            assert!(rx.try_recv().is_err());
        }
    }
}

#[test]
fn race_cancels_losers_that_returned_a_timeout_handle() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let losers_ran = Arc::new(AtomicUsize::new(0));
        let (calls, rx, done) = counted::<Result<usize, String>>();
        let lr = losers_ran.clone();
        on_worker(&rt, move || {
            race(
                3,
                move |i, part: Part<usize, String>| {
                    let lr = lr.clone();
                    let delay = if i == 1 { 1 } else { 40 };
                    set_timeout(Duration::from_millis(delay), move || {
                        if i != 1 {
                            lr.fetch_add(1, SeqCst);
                        }
                        part.call(Ok(i))
                    })
                },
                done,
            );
        });
        assert_eq!(recv(&rx), Ok(1));
        wait_past(&rt, Duration::from_millis(40));
        assert_eq!(losers_ran.load(SeqCst), 0, "a cancelled loser's timer ran");
        assert_eq!(calls.load(SeqCst), 1);
    }
}

#[test]
fn race_won_synchronously_cancels_the_others_only() {
    hang_guard();
    let rt = rt(1);
    let cancels: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let started = Arc::new(AtomicUsize::new(0));
    let (calls, rx, done) = counted::<Result<usize, ()>>();
    let (c, s) = (cancels.clone(), started.clone());
    on_worker(&rt, move || {
        race(
            3,
            move |i, part: Part<usize, ()>| {
                s.fetch_add(1, SeqCst);
                if i == 0 {
                    part.call(Ok(0));
                }
                let c = c.clone();
                move_cancel(move || {
                    c[i].fetch_add(1, SeqCst);
                })
            },
            done,
        );
    });
    assert_eq!(recv(&rx), Ok(0));
    wait_past(&rt, Duration::ZERO);
    assert_eq!(calls.load(SeqCst), 1);
    // Every operation is started (as `Promise.race` does); all but the winner cancelled.
    assert_eq!(started.load(SeqCst), 3);
    let counts: Vec<usize> = cancels.iter().map(|c| c.load(SeqCst)).collect();
    assert_eq!(counts, vec![0, 1, 1]);
}

#[test]
fn race_error_wins_too_and_custom_cancels_run_for_losers_only() {
    hang_guard();
    let rt = rt(1);
    let cancels: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let (calls, rx, done) = counted::<Result<(), String>>();
    let c = cancels.clone();
    on_worker(&rt, move || {
        race(
            3,
            move |i, part: Part<(), String>| {
                if i == 2 {
                    resolve_later(Err("op 2".to_string()), part);
                } else {
                    // Never completes: only cancellation ends it.
                    drop(part);
                }
                let c = c.clone();
                move_cancel(move || {
                    c[i].fetch_add(1, SeqCst);
                })
            },
            done,
        );
    });
    assert_eq!(recv(&rx), Err("op 2".to_string()));
    wait_past(&rt, Duration::ZERO);
    assert_eq!(calls.load(SeqCst), 1);
    let counts: Vec<usize> = cancels.iter().map(|c| c.load(SeqCst)).collect();
    assert_eq!(counts, vec![1, 1, 0]);
}

/// A `Cancel` from a closure.
fn move_cancel(f: impl FnOnce() + Send + 'static) -> impl Cancel {
    struct C<F>(F);
    impl<F: FnOnce() + Send + 'static> Cancel for C<F> {
        fn cancel(self) {
            (self.0)()
        }
    }
    C(f)
}

#[test]
fn race_of_zero_never_settles_and_drops_its_callback() {
    hang_guard();
    let rt = rt(1);
    let dropped = Arc::new(AtomicUsize::new(0));
    let called = Arc::new(AtomicUsize::new(0));
    let (d, c) = (Counted(dropped.clone()), called.clone());
    rt.block_on(async move {
        race(
            0,
            |_, _: Part<(), ()>| (),
            move |_: Result<(), ()>| {
                let _d = d;
                c.fetch_add(1, SeqCst);
            },
        );
    });
    wait_past(&rt, Duration::ZERO);
    assert_eq!(called.load(SeqCst), 0);
    assert_eq!(dropped.load(SeqCst), 1);
}

#[test]
fn any_where_all_fail_reports_every_error_in_input_order_once() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let (calls, rx, done) = counted::<Result<u8, Vec<String>>>();
        on_worker(&rt, move || {
            any(
                3,
                |i, part: Part<u8, String>| {
                    // Fail in reverse order of index.
                    set_timeout(Duration::from_millis(9 - 3 * i as u64), move || {
                        part.call(Err(format!("e{i}")))
                    });
                },
                done,
            );
        });
        assert_eq!(
            recv(&rx),
            Err(vec!["e0".to_string(), "e1".to_string(), "e2".to_string()])
        );
        wait_past(&rt, Duration::from_millis(10));
        assert_eq!(calls.load(SeqCst), 1);
    }
}

#[test]
fn any_where_a_success_follows_failures_reports_the_value_once() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let (calls, rx, done) = counted::<Result<usize, Vec<()>>>();
        on_worker(&rt, move || {
            any(
                4,
                |i, part: Part<usize, ()>| {
                    if i == 2 {
                        set_timeout(Duration::from_millis(10), move || part.call(Ok(i)));
                    } else if i == 3 {
                        // Far enough after call 2 that a slow machine (or valgrind) cannot
                        // see both due in one pass of the wheel.
                        set_timeout(Duration::from_millis(200), move || part.call(Ok(i)));
                    } else {
                        resolve_later(Err(()), part);
                    }
                },
                done,
            );
        });
        assert_eq!(recv(&rx), Ok(2));
        wait_past(&rt, Duration::from_millis(200));
        assert_eq!(calls.load(SeqCst), 1);
    }
}

#[test]
fn timeout_elapsing_reports_once_and_cancels_the_operation() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let cancels = Arc::new(AtomicUsize::new(0));
        let (calls, rx, done) = counted::<Result<Result<u32, ()>, Elapsed>>();
        let c = cancels.clone();
        on_worker(&rt, move || {
            timeout(
                Duration::from_millis(5),
                move |part: Part<u32, ()>| {
                    // Completes after the deadline; its "cancel" does not stop it.
                    set_timeout(Duration::from_millis(30), move || part.call(Ok(1)));
                    CountCancel(c)
                },
                done,
            );
        });
        assert!(matches!(recv(&rx), Err(Elapsed { .. })), "expected Elapsed");
        assert_eq!(cancels.load(SeqCst), 1);
        wait_past(&rt, Duration::from_millis(30));
        assert_eq!(calls.load(SeqCst), 1);
        assert_eq!(cancels.load(SeqCst), 1);
    }
}

#[test]
fn timeout_with_a_faster_operation_reports_its_outcome_and_disarms() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        // The operation's 1 ms timer decides the outcome only if it is serviced before the
        // 20 ms timeout: a worker held off the CPU past 20 ms finds both due in one pass,
        // and then either may settle first. Such a run judges nothing and is run again; a
        // run whose operation finished in time must report its outcome.
        let mut judged = false;
        for _ in 0..20 {
            let cancels = Arc::new(AtomicUsize::new(0));
            let (calls, rx, done) = counted::<Result<Result<u32, String>, Elapsed>>();
            let c = cancels.clone();
            let (op_tx, op_rx) = mpsc::channel();
            let start = Instant::now();
            on_worker(&rt, move || {
                timeout(
                    Duration::from_millis(20),
                    move |part: Part<u32, String>| {
                        set_timeout(Duration::from_millis(1), move || {
                            op_tx.send(Instant::now()).unwrap();
                            part.call(Ok(42));
                        });
                        CountCancel(c)
                    },
                    done,
                );
            });
            let outcome = recv(&rx);
            let op_done = recv(&op_rx);
            if op_done.duration_since(start) >= Duration::from_millis(20) {
                continue;
            }
            assert_eq!(outcome, Ok(Ok(42)));
            wait_past(
                &rt,
                Duration::from_millis(20).saturating_sub(start.elapsed()),
            );
            assert_eq!(calls.load(SeqCst), 1, "the timer fired after the outcome");
            assert_eq!(
                cancels.load(SeqCst),
                0,
                "a completed operation was cancelled"
            );
            judged = true;
            break;
        }
        assert!(
            judged,
            "20 runs in a row were 20 ms late: the machine is too busy to judge"
        );

        // From `block_on`, with an operation that fails: the error is the outcome.
        let (calls, rx, done) = counted::<Result<Result<u32, String>, Elapsed>>();
        rt.block_on(async move {
            timeout(
                Duration::from_millis(20),
                |part: Part<u32, String>| resolve_later(Err("no".to_string()), part),
                done,
            );
        });
        assert_eq!(recv(&rx), Ok(Err("no".to_string())));
        wait_past(&rt, Duration::from_millis(20));
        assert_eq!(calls.load(SeqCst), 1);
    }
}

#[test]
fn timeout_settled_synchronously_disarms_and_does_not_cancel() {
    hang_guard();
    let rt = rt(1);
    let cancels = Arc::new(AtomicUsize::new(0));
    let (calls, rx, done) = counted::<Result<Result<u8, ()>, Elapsed>>();
    let c = cancels.clone();
    on_worker(&rt, move || {
        timeout(
            Duration::from_millis(5),
            move |part: Part<u8, ()>| {
                part.call(Ok(3));
                CountCancel(c)
            },
            done,
        );
    });
    assert_eq!(recv(&rx), Ok(Ok(3)));
    wait_past(&rt, Duration::from_millis(5));
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(cancels.load(SeqCst), 0);
}

#[test]
fn a_pending_composite_timeout_is_dropped_with_the_runtime() {
    hang_guard();
    // The composite's state holds its timer, whose callback holds the state: that cycle
    // must not outlive the runtime.
    let rt = rt(1);
    let dropped = Arc::new(AtomicUsize::new(0));
    let (d, dp) = (Counted(dropped.clone()), Counted(dropped.clone()));
    let (tx, rx) = mpsc::channel();
    on_worker(&rt, move || {
        timeout(
            Duration::from_secs(3600),
            move |part: Part<(), ()>| {
                // The operation keeps its part forever (in a timer that never fires).
                drop(set_timeout(Duration::from_secs(7200), move || {
                    let _dp = dp;
                    part.call(Ok(()))
                }));
            },
            move |_: Result<Result<(), ()>, Elapsed>| drop(d),
        );
        tx.send(()).unwrap();
    });
    recv(&rx);
    drop(rt);
    assert_eq!(dropped.load(SeqCst), 2, "the composite leaked");
}

#[test]
fn series_stops_at_the_first_error() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let invoked = Arc::new(Mutex::new(Vec::new()));
        let (calls, rx, done) = counted::<Result<Vec<usize>, String>>();
        let inv = invoked.clone();
        on_worker(&rt, move || {
            series(
                5,
                move |i, part: Part<usize, String>| {
                    inv.lock().unwrap().push(i);
                    if i == 2 {
                        resolve_later(Err(format!("step {i}")), part)
                    } else {
                        set_timeout(Duration::from_millis(1), move || part.call(Ok(i)));
                    }
                },
                done,
            );
        });
        assert_eq!(recv(&rx), Err("step 2".to_string()));
        wait_past(&rt, Duration::from_millis(5));
        assert_eq!(*invoked.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(calls.load(SeqCst), 1);

        let (_, rx, done) = counted::<Result<Vec<usize>, String>>();
        on_worker(&rt, move || {
            series(
                4,
                |i, part: Part<usize, String>| resolve_later(Ok(i * i), part),
                done,
            )
        });
        assert_eq!(recv(&rx), Ok(vec![0, 1, 4, 9]));
    }
}

#[test]
fn waterfall_feeds_values_through_and_stops_at_the_first_error() {
    hang_guard();
    let rt = rt(2);
    let (_, rx, done) = counted::<Result<String, String>>();
    rt.block_on(async move {
        waterfall(
            String::from("x"),
            4,
            |i, v: String, part: Part<String, String>| {
                set_timeout(Duration::from_millis(1), move || {
                    part.call(Ok(format!("{v}{i}")))
                });
            },
            done,
        );
    });
    assert_eq!(recv(&rx), Ok("x0123".to_string()));

    let invoked = Arc::new(Mutex::new(Vec::new()));
    let (calls, rx, done) = counted::<Result<u64, String>>();
    let inv = invoked.clone();
    rt.block_on(async move {
        waterfall(
            1u64,
            5,
            move |i, v, part: Part<u64, String>| {
                inv.lock().unwrap().push((i, v));
                if i == 3 {
                    resolve_later(Err(format!("step {i} got {v}")), part)
                } else {
                    resolve_later(Ok(v * 2), part)
                }
            },
            done,
        );
    });
    assert_eq!(recv(&rx), Err("step 3 got 8".to_string()));
    wait_past(&rt, Duration::ZERO);
    assert_eq!(
        *invoked.lock().unwrap(),
        vec![(0, 1), (1, 2), (2, 4), (3, 8)]
    );
    assert_eq!(calls.load(SeqCst), 1);
}

#[test]
fn retry_calls_again_until_success_with_attempt_numbers() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let (calls, rx, done) = counted::<Result<&'static str, String>>();
        let a = attempts.clone();
        on_worker(&rt, move || {
            retry(
                5,
                move |attempt, part: Part<&'static str, String>| {
                    a.lock().unwrap().push(attempt);
                    assert_eq!(part.index(), attempt as usize);
                    let r = if attempt < 3 {
                        Err(format!("attempt {attempt}"))
                    } else {
                        Ok("ok")
                    };
                    set_timeout(Duration::from_millis(1), move || part.call(r));
                },
                done,
            );
        });
        assert_eq!(recv(&rx), Ok("ok"));
        wait_past(&rt, Duration::from_millis(2));
        assert_eq!(*attempts.lock().unwrap(), vec![1, 2, 3]);
        assert_eq!(calls.load(SeqCst), 1);
    }
}

#[test]
fn retry_reports_the_last_error() {
    hang_guard();
    let rt = rt(1);
    for attempts in [1u32, 3] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (calls, rx, done) = counted::<Result<(), String>>();
        let s = seen.clone();
        on_worker(&rt, move || {
            retry(
                attempts,
                move |attempt, part: Part<(), String>| {
                    s.lock().unwrap().push(attempt);
                    resolve_later(Err(format!("attempt {attempt}")), part)
                },
                done,
            );
        });
        assert_eq!(recv(&rx), Err(format!("attempt {attempts}")));
        wait_past(&rt, Duration::ZERO);
        assert_eq!(*seen.lock().unwrap(), (1..=attempts).collect::<Vec<_>>());
        assert_eq!(calls.load(SeqCst), 1);
    }
}

#[test]
#[should_panic(expected = "at least one attempt")]
fn retry_with_zero_attempts_panics() {
    retry(0, |_, _: Part<(), ()>| {}, |_: Result<(), ()>| {});
}

#[test]
fn parallel_settled_returns_every_outcome_in_input_order() {
    hang_guard();
    let rt = rt(2);
    let (tx, rx) = mpsc::channel();
    rt.block_on(async move {
        parallel_settled(
            4,
            |i, part: Part<usize, String>| {
                let r = if i % 2 == 1 {
                    Err(format!("e{i}"))
                } else {
                    Ok(i)
                };
                set_timeout(Duration::from_millis(8 - 2 * i as u64), move || {
                    part.call(r)
                });
            },
            move |all: Vec<Result<usize, String>>| tx.send(all).unwrap(),
        );
    });
    assert_eq!(
        recv(&rx),
        vec![Ok(0), Err("e1".to_string()), Ok(2), Err("e3".to_string())]
    );
}

#[test]
fn empty_composites_complete_later_with_their_empty_result() {
    hang_guard();
    let rt = rt(1);
    let (tx, rx) = mpsc::channel();
    on_worker(&rt, move || {
        let started = Arc::new(AtomicBool::new(false));
        let ok = |s: &Arc<AtomicBool>| {
            let s = s.clone();
            move || s.load(SeqCst)
        };
        let (t1, t2, t3, t4, t5) = (tx.clone(), tx.clone(), tx.clone(), tx.clone(), tx);
        let (s1, s2, s3, s4, s5) = (
            ok(&started),
            ok(&started),
            ok(&started),
            ok(&started),
            ok(&started),
        );
        parallel(
            0,
            |_, _: Part<u8, ()>| unreachable!(),
            move |r: Result<Vec<u8>, ()>| t1.send(format!("parallel {r:?} {}", s1())).unwrap(),
        );
        series(
            0,
            |_, _: Part<u8, ()>| unreachable!(),
            move |r: Result<Vec<u8>, ()>| t2.send(format!("series {r:?} {}", s2())).unwrap(),
        );
        waterfall(
            7u8,
            0,
            |_, _, _: Part<u8, ()>| unreachable!(),
            move |r: Result<u8, ()>| t3.send(format!("waterfall {r:?} {}", s3())).unwrap(),
        );
        any(
            0,
            |_, _: Part<u8, ()>| unreachable!(),
            move |r: Result<u8, Vec<()>>| t4.send(format!("any {r:?} {}", s4())).unwrap(),
        );
        parallel_settled(
            0,
            |_, _: Part<u8, ()>| unreachable!(),
            move |r: Vec<Result<u8, ()>>| t5.send(format!("settled {r:?} {}", s5())).unwrap(),
        );
        // Set after the helpers returned: each result must come later.
        started.store(true, SeqCst);
    });
    let mut got: Vec<String> = (0..5).map(|_| recv(&rx)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            "any Err([]) true",
            "parallel Ok([]) true",
            "series Ok([]) true",
            "settled [] true",
            "waterfall Ok(7) true",
        ]
    );
}

// --- operations that complete synchronously ------------------------------------------------

/// Runs `start` (which must complete its composite exactly once through `done`) on a
/// worker, from `block_on`, and on a plain thread outside any runtime.
fn everywhere<R: Send + std::fmt::Debug + PartialEq + 'static>(
    what: &str,
    expected: R,
    start: impl Fn(Box<dyn FnOnce(R) + Send>) + Send + Sync + 'static,
) {
    let start = Arc::new(start);
    for workers in [1, 2] {
        let rt = rt(workers);
        // On a worker.
        let (calls, rx, done) = counted::<R>();
        let s = start.clone();
        on_worker(&rt, move || s(Box::new(done)));
        assert_eq!(recv(&rx), expected, "{what} on a worker");
        wait_past(&rt, Duration::ZERO);
        assert_eq!(calls.load(SeqCst), 1, "{what} on a worker");
        // From block_on.
        let (calls, rx, done) = counted::<R>();
        let s = start.clone();
        rt.block_on(async move { s(Box::new(done)) });
        assert_eq!(recv(&rx), expected, "{what} in block_on");
        wait_past(&rt, Duration::ZERO);
        assert_eq!(calls.load(SeqCst), 1, "{what} in block_on");
    }
    // Outside any runtime: nothing here needs one.
    let (calls, rx, done) = counted::<R>();
    let s = start.clone();
    std::thread::spawn(move || s(Box::new(done)))
        .join()
        .unwrap();
    assert_eq!(recv(&rx), expected, "{what} outside a runtime");
    assert_eq!(calls.load(SeqCst), 1, "{what} outside a runtime");
}

#[test]
fn synchronous_series() {
    hang_guard();
    everywhere(
        "series",
        Ok::<_, String>((0..100).collect::<Vec<usize>>()),
        |done| series(100, |i, part: Part<usize, String>| part.call(Ok(i)), done),
    );
    everywhere(
        "series error",
        Err::<Vec<usize>, _>("at 3".to_string()),
        |done| {
            series(
                10,
                |i, part: Part<usize, String>| {
                    assert!(i <= 3, "series went on after an error");
                    part.call(if i == 3 { Err("at 3".into()) } else { Ok(i) })
                },
                done,
            )
        },
    );
    // Long enough that recursion per step would overflow a worker's stack.
    everywhere("long series", Ok::<_, ()>(100_000), |done| {
        series(
            100_000,
            |_, part: Part<(), ()>| part.call(Ok(())),
            move |r: Result<Vec<()>, ()>| done(r.map(|v| v.len())),
        )
    });
}

#[test]
fn synchronous_waterfall() {
    hang_guard();
    everywhere("waterfall", Ok::<u64, ()>(1 << 20), |done| {
        waterfall(
            1u64,
            20,
            |_, v, part: Part<u64, ()>| part.call(Ok(v * 2)),
            done,
        )
    });
    everywhere("waterfall error", Err::<u64, _>(8u64), |done| {
        waterfall(
            1u64,
            20,
            |i, v, part: Part<u64, u64>| part.call(if i == 3 { Err(v) } else { Ok(v * 2) }),
            done,
        )
    });
}

#[test]
fn synchronous_retry() {
    hang_guard();
    everywhere("retry", Ok::<u32, String>(3), |done| {
        retry(
            5,
            |attempt, part: Part<u32, String>| {
                part.call(if attempt < 3 {
                    Err(format!("attempt {attempt}"))
                } else {
                    Ok(attempt)
                })
            },
            done,
        )
    });
    everywhere(
        "retry all fail",
        Err::<u32, _>("attempt 4".to_string()),
        |done| {
            retry(
                4,
                |attempt, part: Part<u32, String>| part.call(Err(format!("attempt {attempt}"))),
                done,
            )
        },
    );
}

#[test]
fn synchronous_parallel_race_any_settled() {
    hang_guard();
    everywhere("parallel", Ok::<_, ()>(vec![0usize, 1, 2, 3]), |done| {
        parallel(4, |i, part: Part<usize, ()>| part.call(Ok(i)), done)
    });
    everywhere("parallel error", Err::<Vec<usize>, _>(1usize), |done| {
        parallel(
            4,
            |i, part: Part<usize, usize>| part.call(if i >= 1 { Err(i) } else { Ok(i) }),
            done,
        )
    });
    everywhere("race", Ok::<usize, ()>(0), |done| {
        race(3, |i, part: Part<usize, ()>| part.call(Ok(i)), done)
    });
    everywhere("any", Ok::<usize, Vec<()>>(2), |done| {
        any(
            4,
            |i, part: Part<usize, ()>| part.call(if i >= 2 { Ok(i) } else { Err(()) }),
            done,
        )
    });
    everywhere(
        "settled",
        vec![Ok::<usize, ()>(0), Err(()), Ok(2)],
        |done| {
            parallel_settled(
                3,
                |i, part: Part<usize, ()>| part.call(if i == 1 { Err(()) } else { Ok(i) }),
                done,
            )
        },
    );
    everywhere("timeout", Ok::<_, Elapsed>(Ok::<u8, ()>(9)), |done| {
        // `timeout` arms a timer, so it needs a runtime; outside one, run it in one.
        match weft_runtime::Handle::try_current() {
            Ok(_) => timeout(
                Duration::from_secs(3600),
                |part: Part<u8, ()>| part.call(Ok(9)),
                done,
            ),
            Err(_) => {
                let rt = rt(1);
                rt.block_on(async move {
                    timeout(
                        Duration::from_secs(3600),
                        |part: Part<u8, ()>| part.call(Ok(9)),
                        done,
                    )
                })
            }
        }
    });
}

#[test]
fn a_part_called_from_another_thread_while_its_operation_runs() {
    hang_guard();
    // The outcome arrives before the operation function has returned, on another thread.
    let rt = rt(2);
    let (calls, rx, done) = counted::<Result<Vec<usize>, ()>>();
    let (wcalls, wrx, wdone) = counted::<Result<usize, ()>>();
    let (rcalls, rrx, rdone) = counted::<Result<u32, ()>>();
    rt.block_on(async move {
        series(
            20,
            |i, part: Part<usize, ()>| {
                let t = std::thread::spawn(move || part.call(Ok(i)));
                t.join().unwrap();
                std::thread::sleep(Duration::from_micros(50));
            },
            done,
        );
        waterfall(
            0usize,
            20,
            |_, v, part: Part<usize, ()>| {
                std::thread::spawn(move || part.call(Ok(v + 1)))
                    .join()
                    .unwrap();
            },
            wdone,
        );
        retry(
            10,
            |attempt, part: Part<u32, ()>| {
                std::thread::spawn(move || {
                    part.call(if attempt < 10 { Err(()) } else { Ok(attempt) })
                })
                .join()
                .unwrap();
            },
            rdone,
        );
    });
    assert_eq!(recv(&rx), Ok((0..20).collect::<Vec<_>>()));
    assert_eq!(recv(&wrx), Ok(20));
    assert_eq!(recv(&rrx), Ok(10));
    wait_past(&rt, Duration::ZERO);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(wcalls.load(SeqCst), 1);
    assert_eq!(rcalls.load(SeqCst), 1);
}

// --- Once ----------------------------------------------------------------------------------

#[test]
fn once_runs_exactly_once_across_threads() {
    hang_guard();
    for _ in 0..50 {
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let r = ran.clone();
        let once = Once::new(move |res: Result<usize, ()>| {
            r.fetch_add(1, SeqCst);
            tx.send(res).unwrap();
        });
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (once, barrier) = (once.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Once::call(&once, Ok(i))
                })
            })
            .collect();
        let won: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(won.iter().filter(|w| **w).count(), 1);
        assert_eq!(ran.load(SeqCst), 1);
        let winner = won.iter().position(|w| *w).unwrap();
        assert_eq!(rx.try_recv().unwrap(), Ok(winner));
        assert!(once.is_called());
        // Through the `Callback` impl, after the fact: dropped, not run.
        Callback::call(once, Ok(99));
        assert_eq!(ran.load(SeqCst), 1);
    }
}

// --- fs ------------------------------------------------------------------------------------

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 8) % 251) as u8
}

/// A temporary file of `len` pattern bytes, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, len: usize) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "weft-cb-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        std::fs::write(&path, (0..len).map(pattern).collect::<Vec<u8>>()).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn runtimes() -> Vec<(&'static str, Runtime)> {
    vec![
        ("default", rt(2)),
        (
            "fallback",
            Runtime::builder()
                .worker_threads(2)
                .io_uring(UringMode::Disabled)
                .build()
                .unwrap(),
        ),
    ]
}

/// Opens `path` through `callback::fs::open`, on a worker.
fn open_cb(rt: &Runtime, path: &std::path::Path) -> std::io::Result<weft_runtime::fs::File> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    rt.handle()
        .defer(move || callback::fs::open(path, move |r| tx.send(r).unwrap()));
    recv(&rx)
}

#[test]
fn fs_open_of_a_missing_path_is_not_found_naming_it() {
    hang_guard();
    for (name, rt) in runtimes() {
        let missing = std::env::temp_dir().join(format!("weft-cb-missing-{}", std::process::id()));
        let e = open_cb(&rt, &missing).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{name}");
        assert!(
            e.to_string().contains(&*missing.to_string_lossy()),
            "{name}: {e}"
        );
    }
}

#[test]
fn fs_read_at_returns_the_right_bytes_at_each_offset() {
    hang_guard();
    let len = 8192 + 100;
    let file = TempFile::new("read-at", len);
    for (name, rt) in runtimes() {
        let f = Arc::new(open_cb(&rt, &file.0).unwrap());
        assert_eq!(f.path(), file.0.as_path());
        let cases: [(u64, usize); 5] = [
            (0, 16),
            (4095, 16),
            (len as u64 - 5, 16),
            (len as u64, 16),
            (len as u64 + 10, 16),
        ];
        // On a worker (the ring, if the runtime has them) and from `block_on` (the pool).
        for on_worker_thread in [true, false] {
            for (pos, cap) in cases {
                let (tx, rx) = mpsc::channel();
                let f2 = f.clone();
                let read = move || {
                    callback::fs::read_at(&f2, Vec::with_capacity(cap), pos, move |(r, buf)| {
                        tx.send((r.unwrap(), buf)).unwrap()
                    })
                };
                if on_worker_thread {
                    rt.handle().defer(read);
                } else {
                    rt.block_on(async move { read() });
                }
                let (n, buf) = recv(&rx);
                let expect: Vec<u8> = (pos as usize..len.min(pos as usize + cap))
                    .map(pattern)
                    .collect();
                assert_eq!(n, expect.len(), "{name} at {pos}");
                assert_eq!(buf, expect, "{name} at {pos}");
            }
        }
    }
}

#[test]
fn fs_read_at_errors_name_the_path() {
    hang_guard();
    let file = TempFile::new("read-at-err", 10);
    for (name, rt) in runtimes() {
        // A write-only file cannot be read.
        let (tx, rx) = mpsc::channel();
        let p = file.0.clone();
        rt.handle().defer(move || {
            let mut opts = weft_runtime::fs::OpenOptions::new();
            opts.write(true);
            callback::fs::open_with(
                p,
                &opts,
                move |r: std::io::Result<weft_runtime::fs::File>| {
                    let f = r.unwrap();
                    callback::fs::read_at(&f, Vec::with_capacity(4), 0, move |(r, buf)| {
                        tx.send((r.map_err(|e| (e.kind(), e.to_string())), buf.len()))
                            .unwrap()
                    });
                },
            )
        });
        let (r, n) = recv(&rx);
        let (_kind, msg) = r.unwrap_err();
        assert!(msg.contains(&*file.0.to_string_lossy()), "{name}: {msg}");
        assert_eq!(n, 0, "{name}");
    }
}

#[test]
fn fs_many_concurrent_callback_reads() {
    hang_guard();
    let len = 1 << 20;
    let file = TempFile::new("many", len);
    for (name, rt) in runtimes() {
        let f = Arc::new(open_cb(&rt, &file.0).unwrap());
        let (tx, rx) = mpsc::channel();
        let batches = 10;
        let per = 100;
        for b in 0..batches {
            let (f, tx) = (f.clone(), tx.clone());
            rt.handle().defer(move || {
                for k in 0..per {
                    let i = b * per + k;
                    let pos = (i * 7919 * 13) % (len - 64);
                    let tx = tx.clone();
                    callback::fs::read_at(
                        &f,
                        Vec::with_capacity(64),
                        pos as u64,
                        move |(r, buf)| {
                            let ok = r.as_ref().is_ok_and(|n| *n == 64)
                                && buf.iter().enumerate().all(|(j, b)| *b == pattern(pos + j));
                            tx.send((i, ok)).unwrap();
                        },
                    );
                }
            });
        }
        let mut seen = vec![false; batches * per];
        for _ in 0..batches * per {
            let (i, ok) = recv(&rx);
            assert!(ok, "{name}: read {i} returned wrong bytes");
            assert!(!seen[i], "{name}: read {i} called back twice");
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
        // The reads went through the rings when the runtime has them, and never otherwise.
        let submitted = rt.metrics().total().io_submissions;
        if rt.metrics().io_uring() {
            assert!(
                submitted >= (batches * per) as u64,
                "{name}: {submitted} submissions"
            );
        } else {
            assert_eq!(submitted, 0, "{name}");
        }
    }
}

#[test]
fn fs_read_whole_file_and_missing_path() {
    hang_guard();
    let file = TempFile::new("read", 5000);
    for (name, rt) in runtimes() {
        let (tx, rx) = mpsc::channel();
        let p = file.0.clone();
        rt.handle()
            .defer(move || callback::fs::read(p, move |r| tx.send(r).unwrap()));
        assert_eq!(
            recv(&rx).unwrap(),
            (0..5000).map(pattern).collect::<Vec<_>>(),
            "{name}"
        );

        let missing = file.0.with_extension("missing");
        let (tx, rx) = mpsc::channel();
        let m = missing.clone();
        rt.block_on(async move { callback::fs::read(m, move |r| tx.send(r).unwrap()) });
        let e = recv(&rx).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{name}");
        assert!(
            e.to_string().contains(&*missing.to_string_lossy()),
            "{name}: {e}"
        );
    }
}

#[test]
fn fs_a_panicking_read_callback_does_not_break_later_reads() {
    hang_guard();
    let file = TempFile::new("panic", 100);
    for name in ["default", "fallback"] {
        // One worker, so that the later reads go through the very ring (or queue) whose
        // completion panicked.
        let rt = match name {
            "default" => rt(1),
            _ => Runtime::builder()
                .worker_threads(1)
                .io_uring(UringMode::Disabled)
                .build()
                .unwrap(),
        };
        let f = Arc::new(open_cb(&rt, &file.0).unwrap());
        let (tx, rx) = mpsc::channel();
        let f2 = f.clone();
        rt.handle().defer(move || {
            for _ in 0..3 {
                callback::fs::read_at(&f2, Vec::with_capacity(8), 0, |_| {
                    panic!("read callback panic (expected by this test)")
                });
            }
            let f3 = f2.clone();
            callback::fs::read_at(&f2, Vec::with_capacity(8), 10, move |(r, buf)| {
                // And a read started from inside a read callback.
                callback::fs::read_at(&f3, Vec::with_capacity(4), 20, move |(r2, buf2)| {
                    tx.send((r.unwrap(), buf, r2.unwrap(), buf2)).unwrap()
                });
            });
        });
        let (n, buf, n2, buf2) = recv(&rx);
        assert_eq!(
            (n, buf),
            (8, (10..18).map(pattern).collect::<Vec<_>>()),
            "{name}"
        );
        assert_eq!(
            (n2, buf2),
            (4, (20..24).map(pattern).collect::<Vec<_>>()),
            "{name}"
        );
        drop(f);
    }
}

#[test]
fn parallel_limit_keeps_at_most_limit_in_flight_and_the_input_order() {
    hang_guard();
    for workers in [1, 2] {
        let rt = rt(workers);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let (f, p, s) = (in_flight.clone(), peak.clone(), started.clone());
        on_worker(&rt, move || {
            parallel_limit(
                40,
                4,
                move |i, part: Part<usize, ()>| {
                    s.fetch_add(1, SeqCst);
                    let now = f.fetch_add(1, SeqCst) + 1;
                    p.fetch_max(now, SeqCst);
                    let f = f.clone();
                    set_timeout(Duration::from_millis(1 + (i % 3) as u64), move || {
                        f.fetch_sub(1, SeqCst);
                        part.call(Ok(i * 10));
                    });
                },
                move |r: Result<Vec<usize>, ()>| tx.send(r).unwrap(),
            );
        });
        assert_eq!(recv(&rx), Ok((0..40).map(|i| i * 10).collect::<Vec<_>>()));
        assert_eq!(started.load(SeqCst), 40);
        assert!(peak.load(SeqCst) <= 4, "peak {}", peak.load(SeqCst));
        assert!(peak.load(SeqCst) >= 2, "never ran operations together");
    }
}

#[test]
fn parallel_limit_stops_starting_after_the_first_error() {
    hang_guard();
    let rt = rt(1);
    let started = Arc::new(AtomicUsize::new(0));
    let (calls, rx, done) = counted::<Result<Vec<usize>, usize>>();
    let s = started.clone();
    on_worker(&rt, move || {
        parallel_limit(
            100,
            2,
            move |i, part: Part<usize, usize>| {
                s.fetch_add(1, SeqCst);
                resolve_later(if i == 5 { Err(i) } else { Ok(i) }, part);
            },
            done,
        );
    });
    assert_eq!(recv(&rx), Err(5));
    wait_past(&rt, Duration::from_millis(5));
    assert_eq!(calls.load(SeqCst), 1);
    // Item 5 failed with at most one other in flight: nothing past item 6 started.
    assert!(
        started.load(SeqCst) <= 7,
        "{} started",
        started.load(SeqCst)
    );
}
