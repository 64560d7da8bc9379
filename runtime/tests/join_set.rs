//! `task::JoinSet` (joining in completion order, try_join_next, abort_all, detach_all,
//! shutdown, join_all, dropping the set) and task ids (`task::id`, `JoinHandle::id`,
//! `JoinError::id`).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{Counted, DropLog, Payload, Signal, scaled, wait_until};
use weft_runtime as weft;
use weft_runtime::task::{self, JoinSet};

#[weft::test(worker_threads = 2)]
async fn join_next_returns_every_output_once() {
    common::hang_guard();
    let n = scaled(10_000, 500);
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(async move {
            if i % 3 == 0 {
                task::yield_now().await;
            }
            i
        });
    }
    assert_eq!(set.len(), n);
    let mut seen = vec![false; n];
    while let Some(res) = set.join_next().await {
        let i = res.unwrap();
        assert!(!seen[i], "{i} joined twice");
        seen[i] = true;
    }
    assert!(seen.iter().all(|&s| s));
    assert!(set.is_empty());
    assert!(set.join_next().await.is_none());
}

#[weft::test(worker_threads = 1)]
async fn join_next_gives_completion_order() {
    common::hang_guard();
    let gates: Vec<Signal> = (0..3).map(|_| Signal::new()).collect();
    let mut set = JoinSet::new();
    for (i, g) in gates.iter().enumerate() {
        let wait = g.wait();
        set.spawn(async move {
            wait.await;
            i
        });
    }
    for i in [2, 0, 1] {
        gates[i].fire();
        assert_eq!(set.join_next().await.unwrap().unwrap(), i);
    }
}

#[weft::test(worker_threads = 2)]
async fn ids_match_between_handles_errors_and_the_task() {
    common::hang_guard();
    let mut set = JoinSet::new();
    let mut expected = HashSet::new();
    for _ in 0..50 {
        let h = set.spawn(async { task::id() });
        assert!(expected.insert(h.id()), "an id was handed out twice");
    }
    while let Some(res) = set.join_next_with_id().await {
        let (id, inside) = res.unwrap();
        assert_eq!(id, inside, "task::id() inside differs from the handle's id");
        assert!(expected.remove(&id));
    }
    assert!(expected.is_empty());

    let abort = set.spawn(std::future::pending());
    let id = abort.id();
    abort.abort();
    let err = set.join_next().await.unwrap().unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.id(), id);
    assert_eq!(err.to_string(), format!("task {id} was cancelled"));
    assert_eq!(
        format!("{err:?}"),
        format!("JoinError::Cancelled(Id({id}))")
    );

    let h = weft::spawn(async { task::try_id() });
    let id = h.id();
    assert_eq!(h.await.unwrap(), Some(id));
    assert_eq!(task::try_id(), None, "block_on's own future is not a task");
    let blocking = task::spawn_blocking(task::try_id);
    let id = blocking.id();
    assert_eq!(blocking.await.unwrap(), Some(id));
}

#[test]
fn id_panics_outside_a_task() {
    let err = std::panic::catch_unwind(task::id).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(msg.contains("outside a task"), "{msg}");
}

#[weft::test(worker_threads = 1)]
async fn try_join_next_sees_only_finished_tasks() {
    common::hang_guard();
    let gate = Signal::new();
    let mut set = JoinSet::new();
    let wait = gate.wait();
    set.spawn(async move {
        wait.await;
        5
    });
    assert!(set.try_join_next().is_none());
    // Let the task run and park on the gate, then release it.
    task::yield_now().await;
    assert!(set.try_join_next().is_none());
    gate.fire();
    let got = loop {
        if let Some(res) = set.try_join_next() {
            break res.unwrap();
        }
        task::yield_now().await;
    };
    assert_eq!(got, 5);
    assert!(set.is_empty());
    assert!(set.try_join_next().is_none());
}

#[weft::test(worker_threads = 2)]
async fn abort_all_cancels_every_member_and_drops_its_future() {
    common::hang_guard();
    let n = 100;
    let log = DropLog::new(n);
    let mut set = JoinSet::new();
    for i in 0..n {
        let p = Payload::new(&log, i);
        set.spawn(async move {
            let _p = p;
            std::future::pending::<()>().await
        });
    }
    set.abort_all();
    assert_eq!(set.len(), n, "aborted tasks stay in the set until joined");
    let mut cancelled = 0;
    while let Some(res) = set.join_next().await {
        assert!(res.unwrap_err().is_cancelled());
        cancelled += 1;
    }
    assert_eq!(cancelled, n);
    log.assert_each_once();
}

#[test]
fn dropping_the_set_aborts_its_tasks() {
    common::hang_guard();
    let rt = weft::Runtime::builder().worker_threads(2).build().unwrap();
    let n = 64;
    let log = DropLog::new(n);
    let started = Arc::new(AtomicUsize::new(0));
    let set = rt.block_on(async {
        let mut set = JoinSet::new();
        for i in 0..n {
            let p = Payload::new(&log, i);
            let started = started.clone();
            set.spawn(async move {
                let _p = p;
                started.fetch_add(1, SeqCst);
                std::future::pending::<()>().await
            });
        }
        set
    });
    wait_until("every task started", || started.load(SeqCst) == n);
    log.assert_none();
    drop(set);
    wait_until("every aborted future dropped", || log.total() == n);
    log.assert_each_once();
}

#[weft::test(worker_threads = 2)]
async fn detach_all_lets_the_tasks_run_on() {
    common::hang_guard();
    let gate = Signal::new();
    let done = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..10 {
        let wait = gate.wait();
        let done = done.clone();
        set.spawn(async move {
            wait.await;
            done.fetch_add(1, SeqCst);
        });
    }
    set.detach_all();
    assert!(set.is_empty());
    drop(set);
    gate.fire();
    let done2 = done.clone();
    task::spawn_blocking(move || {
        wait_until("detached tasks finished", || done2.load(SeqCst) == 10)
    })
    .await
    .unwrap();
}

#[weft::test(worker_threads = 2)]
async fn shutdown_aborts_and_waits() {
    common::hang_guard();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let c = Counted(dropped.clone());
        set.spawn(async move {
            let _c = c;
            std::future::pending::<()>().await
        });
    }
    set.shutdown().await;
    assert!(set.is_empty());
    assert_eq!(
        dropped.load(SeqCst),
        20,
        "shutdown returned before every future was dropped"
    );
}

#[weft::test(worker_threads = 2)]
async fn join_all_collects_and_resumes_a_panic() {
    common::hang_guard();
    common::quiet_expected_panics();
    let set: JoinSet<u32> = (0..10).map(|i| async move { i * 2 }).collect();
    let mut out = set.join_all().await;
    out.sort_unstable();
    assert_eq!(out, (0..10).map(|i| i * 2).collect::<Vec<_>>());

    let mut set = JoinSet::new();
    set.spawn(async { panic!("[expected] member panicked") });
    let caught = weft::spawn(set.join_all()).await.unwrap_err();
    assert!(caught.is_panic());
    let payload = caught.into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"[expected] member panicked")
    );
}

#[test]
fn spawn_on_and_spawn_blocking_on_from_outside_the_runtime() {
    common::hang_guard();
    let rt = weft::Runtime::builder().worker_threads(1).build().unwrap();
    let mut set = JoinSet::new();
    set.spawn_on(async { 1 }, rt.handle());
    set.spawn_blocking_on(|| 2, rt.handle());
    let mut got = rt.block_on(async {
        let mut got = Vec::new();
        while let Some(res) = set.join_next().await {
            got.push(res.unwrap());
        }
        got
    });
    got.sort_unstable();
    assert_eq!(got, vec![1, 2]);
}

#[weft::test(worker_threads = 2)]
async fn spawn_blocking_joins_like_a_task() {
    common::hang_guard();
    let mut set = JoinSet::new();
    for i in 0..8 {
        set.spawn_blocking(move || i + 100);
    }
    let mut total = 0;
    while let Some(res) = set.join_next().await {
        total += res.unwrap();
    }
    assert_eq!(total, (100..108).sum::<i32>());
}

#[weft::test(worker_threads = 2)]
async fn a_cancelled_join_next_loses_no_output() {
    common::hang_guard();
    let mut set = JoinSet::new();
    let gate = Signal::new();
    let wait = gate.wait();
    set.spawn(async move {
        wait.await;
        9
    });
    // A join_next that is polled once and dropped.
    {
        let mut next = std::pin::pin!(set.join_next());
        assert!(common::poll_once(&mut next).is_pending());
    }
    gate.fire();
    assert_eq!(set.join_next().await.unwrap().unwrap(), 9);
}
