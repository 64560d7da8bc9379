//! Fairness on a single worker: the cooperative budget makes a busy task yield, and the
//! LIFO slot's cap keeps two ping-ponging tasks from starving a third. Without either
//! mechanism these tests hang; the watchdog turns a hang into a failure.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use common::{DropLog, Flag, Payload, watchdog};
use weft_runtime::Runtime;

fn rt1() -> Runtime {
    Runtime::builder().worker_threads(1).build().unwrap()
}

/// Loops on `consume_budget` until `flag` is set; returns how many times it was polled.
fn busy_until(flag: Flag, polls: Arc<AtomicUsize>) -> impl Future<Output = usize> + Send {
    let p = polls.clone();
    CountPolls {
        inner: Box::pin(async move {
            while !flag.get() {
                weft_runtime::task::consume_budget().await;
            }
            p.load(SeqCst)
        }),
        polls,
    }
}

/// Counts the polls of the wrapped future.
struct CountPolls<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

#[test]
fn consume_budget_lets_a_task_from_the_global_queue_run() {
    common::hang_guard();
    let (polls, _) = watchdog("busy loop vs global-queue task", || {
        let rt = rt1();
        let flag = Flag::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let busy = rt.spawn(busy_until(flag.clone(), polls.clone()));
        common::wait_until("busy task running", || polls.load(SeqCst) > 0);
        // Spawned from outside: it waits in the global queue behind the busy task.
        let setter = rt.spawn(async move { flag.set() });
        let polls = rt.block_on(busy).unwrap();
        rt.block_on(setter).unwrap();
        (polls, ())
    });
    assert!(polls >= 2, "the busy task never yielded ({polls} polls)");
}

#[test]
fn consume_budget_lets_a_task_from_the_local_queue_run() {
    common::hang_guard();
    let log = DropLog::new(2);
    let polls = watchdog("busy loop vs local-queue task", {
        let log = log.clone();
        move || {
            let rt = rt1();
            let flag = Flag::new();
            let polls = Arc::new(AtomicUsize::new(0));
            let out = rt.block_on(rt.spawn(async move {
                let p0 = Payload::new(&log, 0);
                let p1 = Payload::new(&log, 1);
                // Spawned from the worker: the local queue (LIFO slot), behind us.
                let f = flag.clone();
                let setter = weft_runtime::spawn(async move {
                    let _p = p1;
                    f.set();
                });
                let busy = busy_until(flag, polls).await;
                drop(p0);
                setter.await.unwrap();
                busy
            }));
            out.unwrap()
        }
    });
    assert!(polls >= 2, "the busy task never yielded ({polls} polls)");
    log.assert_each_once();
}

/// Two tasks that wake each other forever (each wake lands in the LIFO slot) until `stop`.
struct PingPong {
    me: usize,
    slots: Arc<Mutex<[Option<Waker>; 2]>>,
    stop: Flag,
    rounds: Arc<AtomicUsize>,
    spawn_third: Option<Box<dyn FnOnce() + Send>>,
}

impl Future for PingPong {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(spawn) = self.spawn_third.take() {
            // Queued now, behind the ping-pong that starts below.
            spawn();
        }
        self.rounds.fetch_add(1, SeqCst);
        let other = {
            let mut s = self.slots.lock().unwrap();
            s[self.me] = Some(cx.waker().clone());
            s[1 - self.me].take()
        };
        if let Some(w) = other {
            w.wake();
        }
        if self.stop.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn ping_pong_through_the_lifo_slot_does_not_starve_a_third_task() {
    common::hang_guard();
    let rounds = watchdog("ping-pong vs third task", || {
        let rt = rt1();
        let stop = Flag::new();
        let rounds = Arc::new(AtomicUsize::new(0));
        let third_ran = Flag::new();
        let slots = Arc::new(Mutex::new([None, None]));
        let root = rt.spawn({
            let (stop, rounds, third_ran) = (stop.clone(), rounds.clone(), third_ran.clone());
            async move {
                let stop2 = stop.clone();
                let third_ran2 = third_ran.clone();
                let a = weft_runtime::spawn(PingPong {
                    me: 0,
                    slots: slots.clone(),
                    stop: stop.clone(),
                    rounds: rounds.clone(),
                    // Spawned from A's first poll, on the worker: into the LIFO slot,
                    // pushed to the local queue as soon as A wakes B.
                    spawn_third: Some(Box::new(move || {
                        drop(weft_runtime::spawn(async move {
                            third_ran2.set();
                            stop2.set();
                        }))
                    })),
                });
                let b = weft_runtime::spawn(PingPong {
                    me: 1,
                    slots,
                    stop,
                    rounds,
                    spawn_third: None,
                });
                (a, b)
            }
        });
        let (a, b) = rt.block_on(root).unwrap();
        rt.block_on(async move {
            a.await.unwrap();
            b.await.unwrap();
        });
        assert!(third_ran.get());
        rounds.load(SeqCst)
    });
    // The ping-pong did get going before the third task ran.
    assert!(rounds >= 3, "{rounds} rounds");
}

#[test]
fn ping_pong_without_lifo_slot_does_not_starve_either() {
    common::hang_guard();
    watchdog("ping-pong, lifo_slot(false)", || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .lifo_slot(false)
            .build()
            .unwrap();
        let stop = Flag::new();
        let slots = Arc::new(Mutex::new([None, None]));
        let rounds = Arc::new(AtomicUsize::new(0));
        let mk = |me, third: Option<Box<dyn FnOnce() + Send>>| PingPong {
            me,
            slots: slots.clone(),
            stop: stop.clone(),
            rounds: rounds.clone(),
            spawn_third: third,
        };
        let stop2 = stop.clone();
        let a = mk(
            0,
            Some(Box::new(move || {
                drop(weft_runtime::spawn(async move { stop2.set() }))
            })),
        );
        let b = mk(1, None);
        rt.block_on(rt.spawn(async move {
            let a = weft_runtime::spawn(a);
            let b = weft_runtime::spawn(b);
            a.await.unwrap();
            b.await.unwrap();
        }))
        .unwrap();
    });
}

/// Wakes its task and returns `Pending` until `flag` is set: a task that always re-polls
/// itself in place (its wake-up lands where it would run next, so the worker polls it again
/// without queueing it). Counts its polls.
struct SelfWakeUntil {
    flag: Flag,
    polls: Arc<AtomicUsize>,
}

impl Future for SelfWakeUntil {
    type Output = usize;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let n = self.polls.fetch_add(1, SeqCst) + 1;
        if self.flag.get() {
            return Poll::Ready(n);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_self_waking_task_polled_again_in_place_lets_the_global_queue_run() {
    common::hang_guard();
    let polls = watchdog("self-waking loop vs global-queue task", || {
        let rt = rt1();
        let flag = Flag::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let task = rt.spawn(SelfWakeUntil {
            flag: flag.clone(),
            polls: polls.clone(),
        });
        common::wait_until("the loop running", || polls.load(SeqCst) > 0);
        // Spawned from outside: it waits in the global queue while the loop re-polls.
        let setter = rt.spawn(async move { flag.set() });
        rt.block_on(setter).unwrap();
        rt.block_on(task).unwrap()
    });
    assert!(polls >= 2, "{polls} polls");
}

#[test]
fn a_self_waking_task_polled_again_in_place_lets_timers_fire() {
    common::hang_guard();
    watchdog("self-waking loop vs a timer", || {
        let rt = rt1();
        rt.block_on(rt.spawn(async {
            let flag = Flag::new();
            let f = flag.clone();
            let sleeper = weft_runtime::spawn(async move {
                weft_runtime::time::sleep(std::time::Duration::from_millis(2)).await;
                f.set();
            });
            // Let the sleeper register its timer, then spin by self-wakes on the one worker.
            weft_runtime::task::yield_now().await;
            let polls = Arc::new(AtomicUsize::new(0));
            SelfWakeUntil { flag, polls }.await;
            sleeper.await.unwrap();
        }))
        .unwrap();
    });
}

#[test]
fn a_self_waking_task_polled_again_in_place_can_be_aborted() {
    common::hang_guard();
    let err = watchdog("abort a self-waking loop", || {
        let rt = rt1();
        let polls = Arc::new(AtomicUsize::new(0));
        let task = rt.spawn(SelfWakeUntil {
            flag: Flag::new(),
            polls: polls.clone(),
        });
        common::wait_until("the loop running", || polls.load(SeqCst) > 0);
        task.abort();
        rt.block_on(task).unwrap_err()
    });
    assert!(err.is_cancelled(), "{err:?}");
}

#[test]
fn a_self_waking_task_polled_again_in_place_yields_to_a_task_it_wakes() {
    common::hang_guard();
    watchdog("self-waking loop vs a task it spawned", || {
        let rt = rt1();
        rt.block_on(rt.spawn(async {
            let flag = Flag::new();
            let f = flag.clone();
            // In the LIFO slot, ahead of the loop's next poll: the loop is queued, not
            // polled in place, and the spawned task runs.
            let setter = weft_runtime::spawn(async move { f.set() });
            let polls = Arc::new(AtomicUsize::new(0));
            let n = SelfWakeUntil { flag, polls }.await;
            setter.await.unwrap();
            assert!(n >= 2, "{n} polls");
        }))
        .unwrap();
    });
}
