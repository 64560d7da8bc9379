//! `JoinHandle::abort` and `AbortHandle`: before the first poll, while parked, during a
//! poll, after completion, and an abort storm from several threads.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, mpsc};

use common::{DropLog, Payload, PendingForever, Signal, scaled, watchdog};
use weft_runtime::Runtime;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

#[test]
fn abort_before_first_poll_from_inside_a_task() {
    common::hang_guard();
    // On one worker, a task spawned and aborted within the same poll of its parent cannot
    // have been polled: the only worker is busy polling the parent.
    let rt = rt(1);
    let log = DropLog::new(1);
    let polls = Arc::new(AtomicUsize::new(0));
    let err = rt
        .block_on({
            let log = log.clone();
            let polls = polls.clone();
            rt.spawn(async move {
                let p = Payload::new(&log, 0);
                let child = weft_runtime::spawn(async move {
                    polls.fetch_add(1, SeqCst);
                    drop(p);
                });
                child.abort();
                child.await.unwrap_err()
            })
        })
        .unwrap();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(!err.is_panic());
    assert_eq!(polls.load(SeqCst), 0, "an aborted task was polled");
    log.assert_each_once();
}

#[test]
fn abort_before_first_poll_while_the_worker_is_blocked() {
    common::hang_guard();
    let rt = rt(1);
    let log = DropLog::new(1);
    let polls = Arc::new(AtomicUsize::new(0));
    // Occupy the only worker with a blocking wait.
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let blocker = rt.spawn(async move {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    started_rx.recv().unwrap();
    let j = rt.spawn({
        let p = Payload::new(&log, 0);
        let polls = polls.clone();
        async move {
            polls.fetch_add(1, SeqCst);
            drop(p);
        }
    });
    j.abort();
    j.abort(); // idempotent
    log.assert_none(); // dropped by a worker, not by abort() itself
    release_tx.send(()).unwrap();
    let err = rt.block_on(j).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(polls.load(SeqCst), 0);
    log.assert_each_once();
    rt.block_on(blocker).unwrap();
}

#[test]
fn abort_while_parked_on_a_pending_future() {
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
    common::wait_until("first poll", || polls.load(SeqCst) == 1);
    log.assert_none();
    j.abort();
    let err = rt.block_on(j).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    // Dropped, not polled again.
    assert_eq!(polls.load(SeqCst), 1);
    log.assert_each_once();
    drop(rt);
    log.assert_each_once();
}

#[test]
fn abort_during_the_tasks_own_poll() {
    common::hang_guard();
    // The task aborts itself (through its AbortHandle) in the middle of a poll and returns
    // Pending: the poll finishes, then the future is dropped.
    let rt = rt(2);
    let log = DropLog::new(1);
    let (tx, rx) = mpsc::channel::<weft_runtime::task::AbortHandle>();
    let polls = Arc::new(AtomicUsize::new(0));
    let go = Signal::new();
    let j = rt.spawn({
        let p = Payload::new(&log, 0);
        let polls = polls.clone();
        let go = go.clone();
        async move {
            let _p = p;
            go.wait().await;
            let me = rx.recv().unwrap();
            me.abort();
            assert!(!me.is_finished());
            PendingForever { polls }.await;
        }
    });
    tx.send(j.abort_handle()).unwrap();
    go.fire();
    let err = rt.block_on(j).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(
        polls.load(SeqCst),
        1,
        "the poll in progress runs to its end, once"
    );
    log.assert_each_once();
}

#[test]
fn abort_after_completion_keeps_the_output() {
    common::hang_guard();
    let rt = rt(2);
    let log = DropLog::new(2);
    let j = rt.spawn({
        let p = Payload::new(&log, 0);
        let out = Payload::new(&log, 1);
        async move {
            drop(p);
            out
        }
    });
    common::wait_until("completion", || j.is_finished());
    let ah = j.abort_handle();
    j.abort();
    ah.abort();
    let out = rt
        .block_on(j)
        .expect("a completed task keeps its output after abort");
    assert_eq!(out.id(), 1);
    assert_eq!(log.count(0), 1);
    assert_eq!(log.count(1), 0, "the output was dropped by abort");
    drop(out);
    log.assert_each_once();
    assert!(ah.is_finished());
}

#[test]
fn abort_handle_outlives_join_handle() {
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
    let ah = j.abort_handle();
    let ah2 = ah.clone();
    drop(j); // detached, pending forever
    common::wait_until("first poll", || polls.load(SeqCst) == 1);
    assert!(!ah.is_finished());
    ah2.abort();
    common::wait_until("aborted task finishes", || ah.is_finished());
    common::wait_until("payload dropped", || log.total() == 1);
    drop(ah2);
    drop(rt);
    drop(ah);
    log.assert_each_once();
}

#[test]
fn abort_storm_from_several_threads() {
    common::hang_guard();
    let n = scaled(10_000, 100);
    let threads = 4;
    let rt = rt(2);
    let log = DropLog::new(n);
    let polls = Arc::new(AtomicUsize::new(0));
    let joins: Vec<_> = (0..n)
        .map(|i| {
            let p = Payload::new(&log, i);
            let polls = polls.clone();
            rt.spawn(async move {
                let _p = p;
                PendingForever { polls }.await;
            })
        })
        .collect();
    // Let half of them park; the rest may still be queued: both cases must work.
    common::wait_until("half parked", || polls.load(SeqCst) >= n / 2);
    let aborts: Arc<Vec<_>> = Arc::new(joins.iter().map(|j| j.abort_handle()).collect());
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let aborts = aborts.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // Every thread aborts every task, each in its own order, all at once.
                let mut order: Vec<usize> = (0..aborts.len()).collect();
                common::XorShift::new(t as u64 + 1).shuffle(&mut order);
                barrier.wait();
                for i in order {
                    aborts[i].abort();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let results = watchdog("abort storm join", {
        let rt_handle = rt.handle().clone();
        move || {
            rt_handle.block_on(async move {
                let mut out = Vec::with_capacity(joins.len());
                for j in joins {
                    out.push(j.await);
                }
                out
            })
        }
    });
    for (i, r) in results.iter().enumerate() {
        let e = r.as_ref().expect_err("a pending-forever task completed");
        assert!(e.is_cancelled(), "task {i}: {e:?}");
    }
    assert!(aborts.iter().all(|a| a.is_finished()));
    // Each future was polled at most once (its first poll) before being dropped.
    assert!(polls.load(SeqCst) <= n);
    log.assert_each_once();
    drop(aborts);
    drop(rt);
    log.assert_each_once();
}
