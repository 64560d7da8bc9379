//! The blocking pool: values, its thread cap, cancellation of queued jobs at shutdown, and
//! the runtime context inside a job.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, mpsc};

use common::{Counted, DropLog, Payload, watchdog};
use weft_runtime::{Handle, Runtime};

#[test]
fn spawn_blocking_returns_the_closures_value() {
    common::hang_guard();
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let log = DropLog::new(2);
    let p = Payload::new(&log, 0);
    let out = Payload::new(&log, 1);
    let (id, out) = rt
        .block_on(rt.spawn_blocking(move || (p.id(), out)))
        .unwrap();
    assert_eq!(id, 0);
    assert_eq!(
        log.count(0),
        1,
        "the closure (and what it captured) is dropped once"
    );
    assert_eq!(out.id(), 1);
    drop(out);
    // Also from a task, through the runtime and the handle, and a panicking job.
    let v = rt.block_on(rt.spawn(async {
        weft_runtime::task::spawn_blocking(|| 7).await.unwrap()
            + Handle::current().spawn_blocking(|| 8).await.unwrap()
    }));
    assert_eq!(v.unwrap(), 15);
    assert_eq!(rt.block_on(rt.spawn_blocking(|| "x")).unwrap(), "x");
    common::quiet_expected_panics();
    let e = rt
        .block_on(rt.spawn_blocking(|| panic!("[expected] blocking")))
        .unwrap_err();
    assert!(e.is_panic());
    // The pool thread survived the panic.
    assert_eq!(rt.block_on(rt.spawn_blocking(|| 3)).unwrap(), 3);
    drop(rt);
    log.assert_each_once();
}

#[test]
fn max_blocking_threads_is_a_cap_and_jobs_still_complete() {
    common::hang_guard();
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(2)
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let barrier = barrier.clone();
            let max_seen = max_seen.clone();
            rt.spawn_blocking(move || {
                // Needs a second job running at the same time: with two threads, jobs pair up.
                barrier.wait();
                let n = Handle::current().metrics().num_blocking_threads();
                max_seen.fetch_max(n, SeqCst);
                i
            })
        })
        .collect();
    let sum = watchdog("8 jobs on 2 threads", {
        let h = rt.handle().clone();
        move || {
            h.block_on(async move {
                let mut s = 0;
                for j in handles {
                    s += j.await.unwrap();
                }
                s
            })
        }
    });
    assert_eq!(sum, 28);
    let max = max_seen.load(SeqCst);
    assert!((1..=2).contains(&max), "{max} blocking threads");
    assert!(rt.metrics().num_blocking_threads() <= 2);
    assert_eq!(rt.metrics().blocking_queue_depth(), 0);
    // Blocking jobs are not counted as spawned tasks.
    assert_eq!(rt.metrics().spawned_tasks_count(), 0);
}

#[test]
fn jobs_queued_at_shutdown_are_dropped_not_run() {
    common::hang_guard();
    let queued = 16;
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    // Occupies the only pool thread.
    let first = {
        let runs = runs.clone();
        let c = Counted(drops.clone());
        rt.spawn_blocking(move || {
            let _c = c;
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            runs.fetch_add(1, SeqCst);
        })
    };
    started_rx.recv().unwrap();
    let jobs: Vec<_> = (0..queued)
        .map(|_| {
            let runs = runs.clone();
            let c = Counted(drops.clone());
            rt.spawn_blocking(move || {
                let _c = c;
                runs.fetch_add(1, SeqCst);
            })
        })
        .collect();
    assert_eq!(rt.metrics().blocking_queue_depth(), queued);
    // Drop the runtime on another thread: it drops the queue, then waits for `first`.
    let dropper = std::thread::spawn(move || drop(rt));
    common::wait_until("queued jobs dropped", || drops.load(SeqCst) == queued);
    assert_eq!(runs.load(SeqCst), 0);
    release_tx.send(()).unwrap();
    watchdog("runtime drop", move || dropper.join().unwrap());
    assert_eq!(runs.load(SeqCst), 1, "only the running job ran");
    assert_eq!(drops.load(SeqCst), queued + 1);
    common::block_on_plain(first).unwrap();
    for j in jobs {
        assert!(common::block_on_plain(j).unwrap_err().is_cancelled());
    }
}

#[test]
fn the_runtime_is_current_inside_a_blocking_job() {
    common::hang_guard();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let v = rt.block_on(rt.spawn_blocking(|| {
        let h = Handle::current();
        assert_eq!(h.metrics().num_workers(), 2);
        // Spawn onto the runtime from the pool thread and wait for it right here.
        let j = weft_runtime::spawn(async { 20 });
        let nested = weft_runtime::task::spawn_blocking(|| 1);
        h.block_on(async move { j.await.unwrap() + nested.await.unwrap() })
    }));
    assert_eq!(v.unwrap(), 21);
}

#[test]
fn aborting_a_queued_job_cancels_it() {
    common::hang_guard();
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        1
    });
    started_rx.recv().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let queued = {
        let runs = runs.clone();
        let c = Counted(drops.clone());
        rt.spawn_blocking(move || {
            let _c = c;
            runs.fetch_add(1, SeqCst);
        })
    };
    queued.abort();
    // Aborting the running one does not stop it.
    first.abort();
    release_tx.send(()).unwrap();
    assert_eq!(rt.block_on(first).unwrap(), 1);
    assert!(rt.block_on(queued).unwrap_err().is_cancelled());
    assert_eq!(runs.load(SeqCst), 0);
    assert_eq!(drops.load(SeqCst), 1);
}
