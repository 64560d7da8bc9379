//! Stress: a million tasks; ten thousand tasks woken from foreign threads in random order;
//! wake storms on one task while it runs.
//!
//! `WEFT_STRESS_SCALE` scales the counts down (see `ci/valgrind.sh`).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};

use common::{DropLog, Payload, XorShift, scaled, watchdog};
use weft_runtime::Runtime;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

#[test]
fn a_million_tasks_each_complete_once_and_drop_their_payload_once() {
    common::hang_guard();
    let n = scaled(1_000_000, 1_000);
    let batch = 10_000.min(n);
    let rt = rt(2);
    let log = DropLog::new(n);
    let ran: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(0)).collect());
    let start = std::time::Instant::now();
    watchdog("a million tasks", {
        let log = log.clone();
        let ran = ran.clone();
        let handle = rt.handle().clone();
        move || {
            handle.block_on(async move {
                let mut next = 0;
                let mut round = 0;
                while next < n {
                    let end = (next + batch).min(n);
                    let ids = next..end;
                    let spawn_one = |i: usize| {
                        let p = Payload::new(&log, i);
                        let ran = ran.clone();
                        move || async move {
                            ran[p.id()].fetch_add(1, SeqCst);
                            p.id()
                        }
                    };
                    let handles: Vec<_> = if round % 2 == 0 {
                        // From block_on: the global queue.
                        ids.clone()
                            .map(|i| weft_runtime::spawn(spawn_one(i)()))
                            .collect()
                    } else {
                        // From a task on a worker: its local queue (overflowing to the global
                        // queue, and stolen by the other worker).
                        let makers: Vec<_> = ids.clone().map(spawn_one).collect();
                        weft_runtime::spawn(async move {
                            makers
                                .into_iter()
                                .map(|m| weft_runtime::spawn(m()))
                                .collect::<Vec<_>>()
                        })
                        .await
                        .unwrap()
                    };
                    for (h, i) in handles.into_iter().zip(ids) {
                        assert_eq!(h.await.unwrap(), i);
                    }
                    // A task's future is dropped before its handle sees the output.
                    assert_eq!(log.total(), end, "payloads dropped after {end} tasks");
                    next = end;
                    round += 1;
                }
            })
        }
    });
    let elapsed = start.elapsed();
    eprintln!("{n} tasks in {elapsed:?}");
    for (i, r) in ran.iter().enumerate() {
        assert_eq!(r.load(SeqCst), 1, "task {i} ran {} times", r.load(SeqCst));
    }
    log.assert_each_once();
    let m = rt.metrics();
    // Every batch's spawner task counts too.
    assert!(m.spawned_tasks_count() >= n as u64);
    common::wait_until("no task left alive", || m.num_alive_tasks() == 0);
    drop(rt);
    log.assert_each_once();
}

/// A waker slot a task parks on, and whether it has been fired.
#[derive(Default)]
struct Slot {
    fired: bool,
    waker: Option<Waker>,
    /// Polls that found the slot not fired after it was registered.
    extra_polls: usize,
}

struct WaitSlot {
    slots: Arc<Vec<Mutex<Slot>>>,
    index: usize,
}

impl Future for WaitSlot {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.slots[self.index].lock().unwrap();
        if s.fired {
            return Poll::Ready(());
        }
        if s.waker.is_some() {
            s.extra_polls += 1;
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn ten_thousand_tasks_woken_from_foreign_threads_in_random_order() {
    common::hang_guard();
    let n = scaled(10_000, 100);
    let threads = 4;
    let rt = rt(2);
    let log = DropLog::new(n);
    let slots: Arc<Vec<Mutex<Slot>>> = Arc::new((0..n).map(|_| Mutex::default()).collect());
    let completed: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(0)).collect());
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let p = Payload::new(&log, i);
            let slots = slots.clone();
            let completed = completed.clone();
            rt.spawn(async move {
                WaitSlot { slots, index: i }.await;
                completed[p.id()].fetch_add(1, SeqCst);
                p.id()
            })
        })
        .collect();
    // Each foreign thread wakes its share of the tasks, in a random order; a few are woken
    // twice (by two threads) and some waker clones are woken after their task completed.
    let mut order: Vec<usize> = (0..n).collect();
    XorShift::new(0x5EED).shuffle(&mut order);
    let order = Arc::new(order);
    let barrier = Arc::new(Barrier::new(threads));
    let wakers: Vec<_> = (0..threads)
        .map(|t| {
            let order = order.clone();
            let slots = slots.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut rng = XorShift::new(t as u64 + 7);
                let mine: Vec<usize> = order
                    .iter()
                    .copied()
                    .skip(t)
                    .step_by(threads)
                    .chain((0..order.len() / 50).map(|_| order[rng.below(order.len())]))
                    .collect();
                barrier.wait();
                for i in mine {
                    // Wait for the task to register (its first poll), then fire and wake.
                    let w = loop {
                        let mut s = slots[i].lock().unwrap();
                        if s.fired {
                            break s.waker.clone();
                        }
                        if s.waker.is_some() {
                            s.fired = true;
                            break s.waker.clone();
                        }
                        drop(s);
                        std::thread::yield_now();
                    };
                    if let Some(w) = w {
                        if i % 2 == 0 {
                            w.wake_by_ref();
                            w.wake();
                        } else {
                            w.wake();
                        }
                    }
                }
            })
        })
        .collect();
    let results = watchdog("random-order wakes", {
        let h = rt.handle().clone();
        move || {
            for w in wakers {
                w.join().unwrap();
            }
            h.block_on(async move {
                let mut out = Vec::new();
                for j in handles {
                    out.push(j.await.unwrap());
                }
                out
            })
        }
    });
    assert_eq!(results, (0..n).collect::<Vec<_>>());
    for (i, c) in completed.iter().enumerate() {
        assert_eq!(
            c.load(SeqCst),
            1,
            "task {i} completed {} times",
            c.load(SeqCst)
        );
    }
    for (i, s) in slots.iter().enumerate() {
        let s = s.lock().unwrap();
        assert!(s.fired);
        // Woken only once it was fired, so it never found the slot unfired again.
        assert_eq!(s.extra_polls, 0, "task {i} was polled without a wake");
    }
    log.assert_each_once();
    drop(slots); // the stored wakers, after their tasks completed
    drop(rt);
    log.assert_each_once();
}

/// The state of the wake-storm task, shared with the test.
struct Storm {
    in_poll: AtomicBool,
    concurrent: AtomicUsize,
    polls: AtomicUsize,
    /// Wakes issued so far; each waker thread bumps it *before* it wakes.
    sent: AtomicUsize,
    /// The value of `sent` read at the start of the latest poll.
    observed: AtomicUsize,
    waker: Mutex<Option<Waker>>,
    done: AtomicBool,
}

struct StormTask {
    storm: Arc<Storm>,
    _p: Payload,
}

impl Future for StormTask {
    type Output = usize;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let s = &self.storm;
        if s.in_poll.swap(true, SeqCst) {
            s.concurrent.fetch_add(1, SeqCst);
        }
        // Read first: a wake issued after this read must lead to another poll.
        let sent = s.sent.load(SeqCst);
        s.polls.fetch_add(1, SeqCst);
        *s.waker.lock().unwrap() = Some(cx.waker().clone());
        // Stay in the poll a little so that wakes land while the task is running.
        for _ in 0..500 {
            std::hint::spin_loop();
        }
        let done = s.done.load(SeqCst);
        s.in_poll.store(false, SeqCst);
        s.observed.store(sent, SeqCst);
        if done {
            Poll::Ready(s.polls.load(SeqCst))
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn wake_storms_poll_after_every_wake_and_never_concurrently() {
    common::hang_guard();
    let bursts = scaled(400, 8);
    let threads = 4;
    let wakes_per_thread = scaled(200, 10);
    let rt = rt(2);
    let log = DropLog::new(1);
    let storm = Arc::new(Storm {
        in_poll: AtomicBool::new(false),
        concurrent: AtomicUsize::new(0),
        polls: AtomicUsize::new(0),
        sent: AtomicUsize::new(0),
        observed: AtomicUsize::new(usize::MAX),
        waker: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let j = rt.spawn(StormTask {
        storm: storm.clone(),
        _p: Payload::new(&log, 0),
    });
    common::wait_until("first poll", || storm.observed.load(SeqCst) == 0);
    let total_polls = watchdog("wake storms", {
        let storm = storm.clone();
        let h = rt.handle().clone();
        move || {
            let waker = storm.waker.lock().unwrap().clone().unwrap();
            for b in 1..=bursts {
                std::thread::scope(|sc| {
                    for t in 0..threads {
                        let waker = waker.clone();
                        let storm = &storm;
                        sc.spawn(move || {
                            for k in 0..wakes_per_thread {
                                storm.sent.fetch_add(1, SeqCst);
                                // Some bursts use one kind of wake only, so that a kind
                                // lost while the task runs is not masked by another.
                                let kind = if b % 4 == 3 { (k + t) % 3 } else { b % 4 };
                                match kind {
                                    0 => waker.wake_by_ref(),
                                    1 => {
                                        // By value: the clone's reference is consumed.
                                        let w = waker.clone();
                                        w.wake();
                                    }
                                    _ => {
                                        let w = waker.clone();
                                        w.wake_by_ref();
                                        drop(w);
                                    }
                                }
                            }
                        });
                    }
                });
                // Every wake of the burst is followed by a poll that began after it.
                let sent = storm.sent.load(SeqCst);
                while storm.observed.load(SeqCst) != sent {
                    std::thread::yield_now();
                }
            }
            storm.done.store(true, SeqCst);
            storm.sent.fetch_add(1, SeqCst);
            waker.wake();
            h.block_on(j).unwrap()
        }
    });
    assert_eq!(
        storm.concurrent.load(SeqCst),
        0,
        "the task was polled concurrently"
    );
    assert!(
        total_polls > bursts,
        "{total_polls} polls for {bursts} bursts"
    );
    // Each poll after the first consumed at least one wake: no wake was turned into two
    // queue entries.
    let sent = storm.sent.load(SeqCst);
    assert!(
        total_polls <= sent + 1,
        "{total_polls} polls for {sent} wakes"
    );
    log.assert_each_once();
    // The waker kept in the storm state outlives the task.
    drop(storm);
    drop(rt);
    log.assert_each_once();
}

/// A task whose every poll holds until the test releases it, so that a wake is sure to
/// land while the task is running.
struct HeldPoll {
    polls: Arc<AtomicUsize>,
    in_poll: Arc<AtomicUsize>,
    release: Arc<AtomicUsize>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Future for HeldPoll {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let n = self.polls.fetch_add(1, SeqCst) + 1;
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        self.in_poll.store(n, SeqCst);
        // Hold until the test has woken us (during this poll) and released poll `n`.
        while self.release.load(SeqCst) < n {
            std::hint::spin_loop();
        }
        if n > 3 * ROUNDS {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

const ROUNDS: usize = 20;

#[test]
fn a_wake_while_the_task_is_running_polls_it_again() {
    common::hang_guard();
    let rt = rt(2);
    let polls = Arc::new(AtomicUsize::new(0));
    let in_poll = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicUsize::new(0));
    let waker = Arc::new(Mutex::new(None::<Waker>));
    let j = rt.spawn(HeldPoll {
        polls: polls.clone(),
        in_poll: in_poll.clone(),
        release: release.clone(),
        waker: waker.clone(),
    });
    watchdog("wakes during polls", move || {
        // Each kind of wake, ROUNDS times: by reference, by value, and through a clone.
        for n in 1..=3 * ROUNDS {
            while in_poll.load(SeqCst) != n {
                std::thread::yield_now();
            }
            let w = waker.lock().unwrap().clone().unwrap();
            match n % 3 {
                0 => w.wake_by_ref(),
                1 => w.wake(),
                _ => {
                    let c = w.clone();
                    c.wake_by_ref();
                }
            }
            release.store(n, SeqCst);
        }
        // The last poll was woken too; let it complete.
        while in_poll.load(SeqCst) != 3 * ROUNDS + 1 {
            std::thread::yield_now();
        }
        release.store(3 * ROUNDS + 1, SeqCst);
    });
    rt.block_on(j).unwrap();
    // Woken exactly once per poll: polled exactly once more than it was woken.
    assert_eq!(polls.load(SeqCst), 3 * ROUNDS + 1);
}
