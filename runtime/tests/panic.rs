//! Panics in tasks are caught and reported through the join handle; they never take a
//! worker down, and a panicking destructor during abort is reported, not propagated.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};

use common::{DropLog, Payload, PendingForever, scaled, watchdog};
use weft_runtime::Runtime;

fn rt(workers: usize) -> Runtime {
    common::quiet_expected_panics();
    Runtime::builder().worker_threads(workers).build().unwrap()
}

#[test]
fn panic_is_reported_with_its_payload() {
    common::hang_guard();
    let rt = rt(2);
    let log = DropLog::new(2);
    let (e1, e2) = rt.block_on({
        let log = log.clone();
        async move {
            let p = Payload::new(&log, 0);
            let e1 = weft_runtime::spawn(async move {
                let _p = p;
                weft_runtime::task::yield_now().await;
                panic!("[expected] boom");
            })
            .await
            .unwrap_err();
            let p = Payload::new(&log, 1);
            let e2 = weft_runtime::spawn(async move {
                let _p = p;
                if std::hint::black_box(true) {
                    panic!("[expected] boom {}", std::hint::black_box(42));
                }
            })
            .await
            .unwrap_err();
            (e1, e2)
        }
    });
    assert!(e1.is_panic() && !e1.is_cancelled());
    assert!(e1.to_string().contains("boom"), "{e1}");
    assert_eq!(
        e1.into_panic().downcast_ref::<&str>(),
        Some(&"[expected] boom")
    );
    assert!(e2.is_panic());
    let p = e2.try_into_panic().unwrap();
    assert_eq!(
        p.downcast_ref::<String>().map(String::as_str),
        Some("[expected] boom 42")
    );
    // The futures (and their payloads) were dropped while unwinding.
    log.assert_each_once();
}

#[test]
fn many_panicking_tasks_do_not_take_the_workers_down() {
    common::hang_guard();
    let n = scaled(1_000, 50);
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    common::quiet_expected_panics();
    let rt = Runtime::builder()
        .worker_threads(2)
        .on_thread_start({
            let started = started.clone();
            move || {
                started.fetch_add(1, SeqCst);
            }
        })
        .on_thread_stop({
            let stopped = stopped.clone();
            move || {
                stopped.fetch_add(1, SeqCst);
            }
        })
        .build()
        .unwrap();
    let log = DropLog::new(n);
    let errors = rt.block_on({
        let log = log.clone();
        async move {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let p = Payload::new(&log, i);
                    weft_runtime::spawn(async move {
                        if i % 2 == 0 {
                            weft_runtime::task::yield_now().await;
                        }
                        let _p = p;
                        panic!("[expected] task {i}");
                    })
                })
                .collect();
            let mut errors = 0;
            for h in hs {
                let e = h.await.unwrap_err();
                assert!(e.is_panic());
                errors += 1;
            }
            errors
        }
    });
    assert_eq!(errors, n);
    log.assert_each_once();

    // The runtime still runs tasks, on workers that are still there.
    let before = rt.metrics().total().polls;
    assert!(before >= n as u64);
    let sum = rt.block_on(async {
        let hs: Vec<_> = (0..100u64)
            .map(|i| weft_runtime::spawn(async move { i }))
            .collect();
        let mut s = 0;
        for h in hs {
            s += h.await.unwrap();
        }
        s
    });
    assert_eq!(sum, 4950);
    assert!(rt.metrics().total().polls >= before + 100);
    assert_eq!(stopped.load(SeqCst), 0, "a worker thread stopped");
    // A worker that died would never count itself out: dropping the runtime would hang.
    watchdog("drop after panics", move || drop(rt));
    assert_eq!(started.load(SeqCst), 2);
    assert_eq!(stopped.load(SeqCst), 2);
}

/// A future whose destructor panics.
struct PanicOnDrop {
    polls: Arc<AtomicUsize>,
    _p: Payload,
}

impl Future for PanicOnDrop {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, SeqCst);
        Poll::Pending
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("[expected] drop");
    }
}

#[test]
fn a_destructor_panicking_during_abort_is_reported_not_propagated() {
    common::hang_guard();
    let rt = rt(2);
    let log = DropLog::new(3);
    let polls = Arc::new(AtomicUsize::new(0));
    let j = rt.spawn(PanicOnDrop {
        polls: polls.clone(),
        _p: Payload::new(&log, 0),
    });
    common::wait_until("first poll", || polls.load(SeqCst) == 1);
    j.abort();
    let e = rt.block_on(j).unwrap_err();
    assert!(e.is_panic(), "{e:?}");
    assert_eq!(
        e.into_panic().downcast_ref::<&str>(),
        Some(&"[expected] drop")
    );
    // The fields were still dropped during the unwind.
    assert_eq!(log.count(0), 1);

    // Aborted before its first poll.
    let j = rt.spawn(async { std::future::pending::<()>().await });
    let blocked = rt.spawn(PanicOnDrop {
        polls: polls.clone(),
        _p: Payload::new(&log, 1),
    });
    blocked.abort();
    assert!(rt.block_on(blocked).unwrap_err().is_panic());
    j.abort();
    assert!(rt.block_on(j).unwrap_err().is_cancelled());

    // The runtime still works, and shutting it down with such a task parked forever does
    // not propagate the panic to the dropping thread either.
    assert_eq!(rt.block_on(rt.spawn(async { 5 })).unwrap(), 5);
    let parked_polls = Arc::new(AtomicUsize::new(0));
    let parked = rt.spawn(PanicOnDrop {
        polls: parked_polls.clone(),
        _p: Payload::new(&log, 2),
    });
    common::wait_until("parked", || parked_polls.load(SeqCst) == 1);
    drop(rt);
    log.assert_each_once();
    let e = common::block_on_plain(parked).unwrap_err();
    assert!(
        e.is_panic(),
        "shutdown's panic is reported on the handle: {e:?}"
    );
}

#[test]
fn a_panicking_output_destructor_is_contained() {
    common::hang_guard();
    struct PanicOut(#[allow(dead_code)] Payload);
    impl Drop for PanicOut {
        fn drop(&mut self) {
            panic!("[expected] output drop");
        }
    }
    let rt = rt(1);
    let log = DropLog::new(2);
    // Detached: the runtime drops the output when the task completes.
    let p = Payload::new(&log, 0);
    drop(rt.spawn(async move { PanicOut(p) }));
    common::wait_until("detached output dropped", || log.count(0) == 1);
    // Joined, then the handle is dropped without reading the output.
    let p = Payload::new(&log, 1);
    let j = rt.spawn(async move { PanicOut(p) });
    common::wait_until("done", || j.is_finished());
    drop(j);
    assert_eq!(log.count(1), 1);
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    watchdog("drop", move || drop(rt));
    log.assert_each_once();
}

#[test]
fn a_panicking_task_never_leaves_pending_futures_behind() {
    common::hang_guard();
    // Panics interleaved with parked tasks: parked ones are unaffected and dropped once at
    // shutdown.
    let rt = rt(2);
    let n = scaled(200, 10);
    let log = DropLog::new(n);
    let polls = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        let p = Payload::new(&log, i);
        let polls = polls.clone();
        drop(rt.spawn(async move {
            let _p = p;
            if i % 3 == 0 {
                panic!("[expected] {i}");
            }
            PendingForever { polls }.await;
        }));
    }
    let panicked = n.div_ceil(3);
    common::wait_until("panicked ones dropped, others parked", || {
        log.total() == panicked && polls.load(SeqCst) == n - panicked
    });
    drop(rt);
    log.assert_each_once();
}
