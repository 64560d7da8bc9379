//! Shutdown: dropping a runtime with parked tasks (including cycles of wakers), a stuck task
//! under `shutdown_timeout`, spawning after shutdown, destructors that spawn during
//! shutdown.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{DropLog, Flag, Payload, PendingForever, scaled, watchdog};
use weft_runtime::{Handle, Runtime};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// Holds a waker of another task and wakes it when dropped (so shutdown's destructors
/// schedule tasks while the runtime is being torn down).
struct WakeOnDrop(Option<Waker>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.wake();
        }
    }
}

/// Registers its own waker in `slots[me]`, then waits until `slots[next]` is registered and
/// takes it: a ring of tasks each holding the next one's waker, all pending forever.
struct Ring {
    slots: Arc<Vec<Mutex<Option<Waker>>>>,
    me: usize,
    next: usize,
    held: Option<WakeOnDrop>,
    holding: Arc<AtomicUsize>,
}

impl Future for Ring {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.held.is_some() {
            return Poll::Pending;
        }
        *self.slots[self.me].lock().unwrap() = Some(cx.waker().clone());
        let taken = self.slots[self.next].lock().unwrap().take();
        match taken {
            Some(w) => {
                self.held = Some(WakeOnDrop(Some(w)));
                self.holding.fetch_add(1, SeqCst);
            }
            // Not registered yet: try again later.
            None => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    }
}

#[test]
fn dropping_the_runtime_drops_every_parked_future_once() {
    common::hang_guard();
    let n = scaled(10_000, 100);
    let pending = n / 2;
    let ring = n - pending;
    let rt = rt(2);
    let log = DropLog::new(n);
    let polls = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::with_capacity(n);
    for i in 0..pending {
        let p = Payload::new(&log, i);
        let polls = polls.clone();
        joins.push(rt.spawn(async move {
            let _p = p;
            PendingForever { polls }.await;
        }));
    }
    let slots: Arc<Vec<Mutex<Option<Waker>>>> =
        Arc::new((0..ring).map(|_| Mutex::new(None)).collect());
    let holding = Arc::new(AtomicUsize::new(0));
    for k in 0..ring {
        let p = Payload::new(&log, pending + k);
        let fut = Ring {
            slots: slots.clone(),
            me: k,
            next: (k + 1) % ring,
            held: None,
            holding: holding.clone(),
        };
        // Detached half of them: only the runtime can drop those.
        let j = rt.spawn(async move {
            let _p = p;
            fut.await;
        });
        if k % 2 == 0 {
            joins.push(j);
        }
    }
    common::wait_until("all parked", || {
        polls.load(SeqCst) == pending && holding.load(SeqCst) == ring
    });
    log.assert_none();
    watchdog("drop runtime", move || drop(rt));
    // On return, not later.
    log.assert_each_once();
    for j in joins {
        assert!(j.is_finished());
        let e = common::block_on_plain(j).unwrap_err();
        assert!(e.is_cancelled(), "{e:?}");
    }
    // What the ring tasks left in the slots are the wakers of tasks already cancelled.
    drop(slots);
    log.assert_each_once();
}

#[test]
fn shutdown_timeout_returns_with_a_task_stuck_in_a_blocking_loop() {
    common::hang_guard();
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder()
        .worker_threads(2)
        .on_thread_stop({
            let stopped = stopped.clone();
            move || {
                stopped.fetch_add(1, SeqCst);
            }
        })
        .build()
        .unwrap();
    let log = DropLog::new(3);
    let release = Flag::new();
    let entered = Flag::new();
    let after_loop = Arc::new(AtomicUsize::new(0));
    let stuck = rt.spawn({
        let p = Payload::new(&log, 0);
        let release = release.clone();
        let entered = entered.clone();
        let after_loop = after_loop.clone();
        async move {
            let _p = p;
            entered.set();
            while !release.get() {
                std::thread::sleep(Duration::from_millis(1));
            }
            // The poll in progress ends; the task stays pending and is then dropped on
            // its worker, since shutdown cancelled it.
            PendingForever { polls: after_loop }.await;
        }
    });
    // Only once one worker is stuck: the others must not sit in its queue behind it.
    common::wait_until("stuck", || entered.get());
    let parked_polls = Arc::new(AtomicUsize::new(0));
    let parked = rt.spawn({
        let p = Payload::new(&log, 1);
        let polls = parked_polls.clone();
        async move {
            let _p = p;
            PendingForever { polls }.await;
        }
    });
    let detached = rt.spawn({
        let p = Payload::new(&log, 2);
        async move {
            let _p = p;
            std::future::pending::<()>().await;
        }
    });
    drop(detached);
    common::wait_until("parked", || parked_polls.load(SeqCst) == 1);

    watchdog("shutdown_timeout", move || {
        rt.shutdown_timeout(Duration::from_millis(50))
    });
    // Returned: the idle tasks were dropped, the stuck one is still in its poll.
    assert_eq!(
        log.count(0),
        0,
        "the stuck task's future was dropped while polled"
    );
    assert_eq!(log.count(1), 1);
    assert_eq!(log.count(2), 1);
    assert!(parked.is_finished());
    assert!(common::block_on_plain(parked).unwrap_err().is_cancelled());
    assert!(!stuck.is_finished());
    // The idle worker counts itself out before its stop hook runs: wait for the hook.
    common::wait_until("idle worker stops", || stopped.load(SeqCst) >= 1);
    assert_eq!(stopped.load(SeqCst), 1, "the stuck worker stopped");

    release.set();
    let e = watchdog("stuck task finishes", move || common::block_on_plain(stuck));
    assert!(e.unwrap_err().is_cancelled());
    assert_eq!(after_loop.load(SeqCst), 1);
    log.assert_each_once();
    // The detached worker thread exits too.
    common::wait_until("detached worker exits", || stopped.load(SeqCst) == 2);
}

#[test]
fn spawn_after_the_runtime_is_dropped_is_cancelled() {
    common::hang_guard();
    let rt = rt(1);
    let handle = rt.handle().clone();
    drop(rt);
    let log = DropLog::new(2);
    let polls = Arc::new(AtomicUsize::new(0));
    let j = handle.spawn({
        let p = Payload::new(&log, 0);
        let polls = polls.clone();
        async move {
            polls.fetch_add(1, SeqCst);
            drop(p);
        }
    });
    // Dropped at once, never polled.
    assert_eq!(log.count(0), 1);
    assert!(j.is_finished());
    assert!(common::block_on_plain(j).unwrap_err().is_cancelled());
    assert_eq!(polls.load(SeqCst), 0);

    // Through `enter` and the free function too, and for blocking jobs.
    let _g = handle.enter();
    let j = weft_runtime::spawn(async { 1 });
    assert!(common::block_on_plain(j).unwrap_err().is_cancelled());
    let p = Payload::new(&log, 1);
    let b = weft_runtime::task::spawn_blocking(move || drop(p));
    assert!(common::block_on_plain(b).unwrap_err().is_cancelled());
    log.assert_each_once();
}

/// Spawns a task (holding another of these, `depth` levels deep) when dropped.
struct SpawnOnDrop {
    handle: Handle,
    depth: usize,
    log: Arc<DropLog>,
    next_id: Arc<AtomicUsize>,
    spawned: Arc<Mutex<Vec<weft_runtime::JoinHandle<()>>>>,
    _p: Payload,
}

impl SpawnOnDrop {
    fn new(
        handle: &Handle,
        depth: usize,
        log: &Arc<DropLog>,
        next_id: &Arc<AtomicUsize>,
        spawned: &Arc<Mutex<Vec<weft_runtime::JoinHandle<()>>>>,
    ) -> SpawnOnDrop {
        SpawnOnDrop {
            handle: handle.clone(),
            depth,
            log: log.clone(),
            next_id: next_id.clone(),
            spawned: spawned.clone(),
            _p: Payload::new(log, next_id.fetch_add(1, SeqCst)),
        }
    }
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        if self.depth == 0 {
            return;
        }
        let child = SpawnOnDrop::new(
            &self.handle,
            self.depth - 1,
            &self.log,
            &self.next_id,
            &self.spawned,
        );
        let j = self.handle.spawn(async move {
            let _c = child;
            std::future::pending::<()>().await;
        });
        self.spawned.lock().unwrap().push(j);
        // And a blocking job, which must not run either.
        let c2 = SpawnOnDrop::new(&self.handle, 0, &self.log, &self.next_id, &self.spawned);
        let b = self.handle.spawn_blocking(move || drop(c2));
        drop(b);
    }
}

#[test]
fn a_destructor_that_spawns_during_shutdown_neither_hangs_nor_leaks() {
    common::hang_guard();
    let tasks = scaled(100, 5);
    let depth = 3;
    // Each task's payload chain: 1 + depth spawned children + depth blocking jobs.
    let total = tasks * (1 + 2 * depth);
    let rt = rt(2);
    let log = DropLog::new(total);
    let next_id = Arc::new(AtomicUsize::new(0));
    let spawned = Arc::new(Mutex::new(Vec::new()));
    let polls = Arc::new(AtomicUsize::new(0));
    for _ in 0..tasks {
        let s = SpawnOnDrop::new(rt.handle(), depth, &log, &next_id, &spawned);
        let polls = polls.clone();
        drop(rt.spawn(async move {
            let _s = s;
            PendingForever { polls }.await;
        }));
    }
    common::wait_until("parked", || polls.load(SeqCst) == tasks);
    watchdog("drop runtime", move || drop(rt));
    assert_eq!(next_id.load(SeqCst), total);
    log.assert_each_once();
    let spawned = std::mem::take(&mut *spawned.lock().unwrap());
    assert_eq!(spawned.len(), tasks * depth);
    for j in spawned {
        assert!(common::block_on_plain(j).unwrap_err().is_cancelled());
    }
}

#[test]
fn dropping_the_runtime_with_queued_and_running_tasks() {
    common::hang_guard();
    // Tasks that keep yielding (always queued) and tasks spawned from foreign threads while
    // the runtime is dropped.
    let n = scaled(1_000, 20);
    let rt = rt(2);
    let log = DropLog::new(n);
    let started = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        let p = Payload::new(&log, i);
        let started = started.clone();
        drop(rt.spawn(async move {
            let _p = p;
            started.fetch_add(1, SeqCst);
            loop {
                weft_runtime::task::yield_now().await;
            }
        }));
    }
    common::wait_until("all started", || started.load(SeqCst) == n);
    let handle = rt.handle().clone();
    let extra = scaled(2_000, 20);
    let extra_log = DropLog::new(extra);
    let spawner = std::thread::spawn({
        let extra_log = extra_log.clone();
        move || {
            let mut js = Vec::new();
            for i in 0..extra {
                let p = Payload::new(&extra_log, i);
                js.push(handle.spawn(async move {
                    let _p = p;
                    std::future::pending::<()>().await;
                }));
            }
            js
        }
    });
    watchdog("drop runtime", move || drop(rt));
    log.assert_each_once();
    let js = spawner.join().unwrap();
    // Spawned before or after the shutdown: either way cancelled and dropped once.
    for j in js {
        assert!(common::block_on_plain(j).unwrap_err().is_cancelled());
    }
    extra_log.assert_each_once();
}

#[test]
fn dropping_the_runtime_from_its_own_blocking_thread_does_not_deadlock() {
    common::hang_guard();
    common::quiet_expected_panics();
    // The last reference to the runtime goes away inside one of its own blocking jobs (an
    // `Arc<Runtime>` shared with the job). Waiting there for every blocking thread to exit
    // would wait for itself: the drop must either refuse (panic, reported on the handle) or
    // return, but the job must finish.
    let rt = Arc::new(rt(1));
    let in_job = rt.clone();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let job = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        // Wait until the test has dropped its reference: ours is the last.
        while Arc::strong_count(&in_job) > 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(in_job);
        7
    });
    started_rx.recv().unwrap();
    drop(rt);
    let r = common::watchdog_within(
        "blocking job that drops the runtime",
        Duration::from_secs(20),
        move || common::block_on_plain(job).map_err(|e| e.is_panic()),
    );
    assert!(matches!(r, Ok(7) | Err(true)), "{r:?}");
}

#[test]
fn a_foreign_block_on_waiting_on_a_task_returns_when_the_runtime_is_dropped() {
    common::hang_guard();
    let rt = rt(2);
    let log = DropLog::new(1);
    let polls = Arc::new(AtomicUsize::new(0));
    let j = rt.spawn({
        let p = Payload::new(&log, 0);
        let polls = polls.clone();
        async move {
            let _p = p;
            PendingForever { polls }.await;
        }
    });
    let handle = rt.handle().clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        // Another thread blocks on the runtime, waiting for a task that never finishes.
        handle.block_on(async move {
            tx.send(()).unwrap();
            j.await
        })
    });
    rx.recv().unwrap();
    common::wait_until("parked", || polls.load(SeqCst) == 1);
    watchdog("drop runtime", move || drop(rt));
    log.assert_each_once();
    let r = watchdog("foreign block_on returns", move || waiter.join().unwrap());
    assert!(r.unwrap_err().is_cancelled());
}
