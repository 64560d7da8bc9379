//! Spawning and joining: from `block_on`, from a task, from a foreign thread; the runtime
//! context (`Handle::current`, `spawn` outside a runtime, nested `block_on`); big futures;
//! detaching; builder errors.

mod common;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};

use common::{DropLog, Payload, Signal, watchdog};
use weft_runtime::{Handle, Runtime};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn spawn_from_block_on_returns_values_and_drops_outputs_once() {
    common::hang_guard();
    let log = DropLog::new(100);
    let rt = rt(2);
    let sum = rt.block_on({
        let log = log.clone();
        async move {
            let handles: Vec<_> = (0..100)
                .map(|i| {
                    let p = Payload::new(&log, i);
                    weft_runtime::spawn(async move { (p.id() * 2, p) })
                })
                .collect();
            let mut sum = 0;
            for (i, h) in handles.into_iter().enumerate() {
                let (v, p) = h.await.unwrap();
                assert_eq!(v, i * 2);
                assert_eq!(p.id(), i);
                sum += v;
            }
            sum
        }
    });
    assert_eq!(sum, 2 * (0..100).sum::<usize>());
    drop(rt);
    log.assert_each_once();
}

#[test]
fn spawn_from_a_task() {
    common::hang_guard();
    let rt = rt(2);
    let v = rt.block_on(async {
        weft_runtime::spawn(async {
            let inner: Vec<_> = (0..10u64)
                .map(|i| weft_runtime::spawn(async move { i + 1 }))
                .collect();
            let mut s = 0;
            for h in inner {
                s += h.await.unwrap();
            }
            s
        })
        .await
        .unwrap()
    });
    assert_eq!(v, 55);
}

#[test]
fn spawn_from_a_foreign_thread_via_handle() {
    common::hang_guard();
    let rt = rt(2);
    let handle = rt.handle().clone();
    let log = DropLog::new(4 * 50);
    let joins = std::thread::scope(|s| {
        let ts: Vec<_> = (0..4)
            .map(|t| {
                let handle = handle.clone();
                let log = log.clone();
                s.spawn(move || {
                    // Not inside any runtime on this thread.
                    assert!(Handle::try_current().is_err());
                    (0..50)
                        .map(|i| {
                            let p = Payload::new(&log, t * 50 + i);
                            handle.spawn(async move { p.id() })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        ts.into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    let ids = rt.block_on(async move {
        let mut ids = Vec::new();
        for j in joins {
            ids.push(j.await.unwrap());
        }
        ids
    });
    assert_eq!(ids, (0..200).collect::<Vec<_>>());
    log.assert_each_once();
}

#[test]
fn spawn_outside_a_runtime_panics_mentioning_block_on() {
    common::hang_guard();
    let err = catch_unwind(|| {
        drop(weft_runtime::spawn(async {}));
    })
    .expect_err("spawn outside a runtime must panic");
    let msg = panic_message(&*err);
    assert!(msg.contains("block_on"), "message: {msg:?}");

    let err = catch_unwind(|| {
        drop(weft_runtime::task::spawn_blocking(|| ()));
    })
    .expect_err("spawn_blocking outside a runtime must panic");
    assert!(panic_message(&*err).contains("block_on"));
}

#[test]
fn handle_current_and_try_current() {
    common::hang_guard();
    assert!(Handle::try_current().is_err());
    let e = Handle::try_current().unwrap_err();
    assert!(e.to_string().contains("block_on"), "{e}");
    let err = catch_unwind(Handle::current).expect_err("current() outside must panic");
    assert!(panic_message(&*err).contains("block_on"));

    let rt = rt(1);
    // Inside block_on.
    let n = rt.block_on(async { Handle::current().metrics().num_workers() });
    assert_eq!(n, 1);
    // Inside a task.
    let n = rt.block_on(async {
        weft_runtime::spawn(async { Handle::try_current().unwrap().metrics().num_workers() })
            .await
            .unwrap()
    });
    assert_eq!(n, 1);
    // After `enter`, and not after the guard is dropped.
    {
        let _g = rt.enter();
        let h = Handle::current();
        let j = weft_runtime::spawn(async { 3 });
        drop(_g);
        assert!(Handle::try_current().is_err());
        assert_eq!(rt.block_on(j).unwrap(), 3);
        drop(h);
    }
    assert!(Handle::try_current().is_err());
}

#[test]
fn block_on_accepts_a_non_send_future() {
    common::hang_guard();
    let rt = rt(1);
    let v = rt.block_on(async {
        let rc = Rc::new(5);
        weft_runtime::task::yield_now().await;
        let joined = weft_runtime::spawn(async { 1 }).await.unwrap();
        *rc + joined
    });
    assert_eq!(v, 6);
}

#[test]
fn nested_block_on_panics() {
    common::hang_guard();
    let rt1 = rt(1);
    let rt2 = rt(1);
    rt1.block_on(async {
        let same = catch_unwind(AssertUnwindSafe(|| rt1.block_on(async {})));
        assert!(
            same.is_err(),
            "block_on inside block_on (same runtime) must panic"
        );
        let other = catch_unwind(AssertUnwindSafe(|| rt2.block_on(async {})));
        assert!(
            other.is_err(),
            "block_on inside block_on (other runtime) must panic"
        );
        // The outer block_on is still usable.
        assert_eq!(weft_runtime::spawn(async { 9 }).await.unwrap(), 9);
    });
    // And block_on works again after the outer one returned.
    assert_eq!(rt2.block_on(async { 4 }), 4);

    // block_on inside a task: the task panics, the error says so.
    let h2 = rt2.handle().clone();
    common::quiet_expected_panics();
    let err = rt1
        .block_on(rt1.spawn(async move { h2.block_on(async {}) }))
        .unwrap_err();
    assert!(err.is_panic());
}

/// Runs the test `name` of this binary again in a child process with `WEFT_CHILD=name`, so
/// that a stack overflow (which aborts the whole process) fails only this test. Returns
/// `true` in the child, where the caller then runs the body.
fn in_child_process(name: &str) -> bool {
    if std::env::var("WEFT_CHILD").as_deref() == Ok(name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("WEFT_CHILD", name)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{name} failed in its child process ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

async fn big_future(fill: u8) -> u32 {
    // 64 KiB held across an await: the future itself is over 64 KiB.
    let mut big = [fill; 64 * 1024];
    big[7] = 1;
    weft_runtime::task::yield_now().await;
    big[65_000] = 2;
    big.iter().map(|&b| b as u32).sum::<u32>()
}

fn spawn_big_on_small_stack(
    how: fn(&Handle) -> weft_runtime::JoinHandle<u32>,
) -> weft_runtime::JoinHandle<u32> {
    let rt = rt(2);
    assert!(std::mem::size_of_val(&big_future(0)) >= 64 * 1024);
    let handle = rt.handle().clone();
    let j = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || how(&handle))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(rt.block_on(j).unwrap(), 3);
    // The value is checked; hand back a finished dummy for the signature.
    rt.spawn(async { 0 })
}

#[test]
fn a_64k_future_spawns_via_handle_from_a_thread_with_a_256k_stack() {
    common::hang_guard();
    if in_child_process("a_64k_future_spawns_via_handle_from_a_thread_with_a_256k_stack") {
        spawn_big_on_small_stack(|h| h.spawn(big_future(0)));
    }
}

#[test]
fn a_64k_future_spawns_via_runtime_spawn_from_a_thread_with_a_256k_stack() {
    common::hang_guard();
    if in_child_process("a_64k_future_spawns_via_runtime_spawn_from_a_thread_with_a_256k_stack") {
        let rt = Arc::new(rt(2));
        let rt2 = rt.clone();
        let j = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || rt2.spawn(big_future(0)))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(rt.block_on(j).unwrap(), 3);
    }
}

#[test]
fn a_64k_future_spawns_via_weft_spawn_from_a_thread_with_a_256k_stack() {
    common::hang_guard();
    if in_child_process("a_64k_future_spawns_via_weft_spawn_from_a_thread_with_a_256k_stack") {
        spawn_big_on_small_stack(|h| {
            let _g = h.enter();
            weft_runtime::spawn(big_future(0))
        });
    }
}

#[test]
fn is_finished_tracks_completion() {
    common::hang_guard();
    let rt = rt(2);
    let go = Signal::new();
    let j = rt.spawn({
        let go = go.clone();
        async move {
            go.wait().await;
            11
        }
    });
    // It cannot complete before the signal.
    assert!(!j.is_finished());
    let abort = j.abort_handle();
    assert!(!abort.is_finished());
    go.fire();
    common::wait_until("task completes", || j.is_finished());
    assert!(abort.is_finished());
    assert_eq!(rt.block_on(j).unwrap(), 11);
}

#[test]
fn dropping_the_join_handle_detaches() {
    common::hang_guard();
    let rt = rt(2);
    let log = DropLog::new(2);
    let (tx, rx) = mpsc::channel();
    let go = Signal::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let j = rt.spawn({
        let go = go.clone();
        let p = Payload::new(&log, 0);
        let out = Payload::new(&log, 1);
        let polls = polls.clone();
        async move {
            polls.fetch_add(1, SeqCst);
            go.wait().await;
            tx.send(p.id() + 100).unwrap();
            out
        }
    });
    drop(j);
    log.assert_none();
    go.fire();
    let got = watchdog("detached task", move || rx.recv().unwrap());
    assert_eq!(got, 100);
    // The future (holding payload 0) and the output (payload 1, nobody to read it) are
    // both dropped by the runtime once the task completes.
    common::wait_until("detached task's payloads dropped", || log.total() == 2);
    log.assert_each_once();
    drop(rt);
    log.assert_each_once();
}

#[test]
fn builder_rejects_bad_settings() {
    common::hang_guard();
    let e = Runtime::builder().worker_threads(0).build().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(0)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = Runtime::builder()
        .worker_threads(1)
        .global_queue_interval(0)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = Runtime::builder()
        .worker_threads(1)
        .event_interval(0)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    // And a good one builds with exactly the workers asked for.
    let rt = Runtime::builder().worker_threads(3).build().unwrap();
    assert_eq!(rt.metrics().num_workers(), 3);
}

#[test]
fn the_join_handle_wakes_the_waker_of_its_latest_poll() {
    common::hang_guard();
    struct CountWake(AtomicUsize);
    impl std::task::Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let rt = rt(1);
    let go = Signal::new();
    let mut j = rt.spawn({
        let go = go.clone();
        async move {
            go.wait().await;
            5
        }
    });
    let a = Arc::new(CountWake(AtomicUsize::new(0)));
    let b = Arc::new(CountWake(AtomicUsize::new(0)));
    let wa = std::task::Waker::from(a.clone());
    let wb = std::task::Waker::from(b.clone());
    let mut poll_with = |w: &std::task::Waker| {
        std::future::Future::poll(
            std::pin::Pin::new(&mut j),
            &mut std::task::Context::from_waker(w),
        )
    };
    assert!(poll_with(&wa).is_pending());
    assert!(poll_with(&wa).is_pending()); // same waker again: kept
    assert!(poll_with(&wb).is_pending()); // moved to another waker
    go.fire();
    common::wait_until("completion wakes the latest waker", || {
        b.0.load(SeqCst) == 1
    });
    assert_eq!(a.0.load(SeqCst), 0, "the replaced waker was woken");
    assert_eq!(rt.block_on(j).unwrap(), 5);
}
