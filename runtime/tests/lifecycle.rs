//! Entering and leaving runtimes, and the edges of building and shutting one down: enter
//! guards dropped out of order, a worker count beyond the limit, and a callback deferred on
//! a worker that is still busy when `shutdown_timeout` returns.

mod common;

use std::time::Duration;

use common::{Flag, wait_until};
use weft_runtime::{Handle, Runtime};

fn workers_of_current() -> Option<usize> {
    Handle::try_current()
        .ok()
        .map(|h| h.metrics().num_workers())
}

#[test]
fn enter_guards_dropped_in_any_order_leave_the_right_runtime_current() {
    common::hang_guard();
    let one = Runtime::builder().worker_threads(1).build().unwrap();
    let two = Runtime::builder().worker_threads(2).build().unwrap();
    let three = Runtime::builder().worker_threads(3).build().unwrap();

    // Outer first.
    let g1 = one.enter();
    let g2 = two.enter();
    drop(g1);
    assert_eq!(workers_of_current(), Some(2));
    drop(g2);
    assert_eq!(workers_of_current(), None);

    // Middle first, then innermost, then outer.
    let g1 = one.enter();
    let g2 = two.enter();
    let g3 = three.enter();
    drop(g2);
    assert_eq!(workers_of_current(), Some(3));
    drop(g3);
    assert_eq!(workers_of_current(), Some(1));
    drop(g1);
    assert_eq!(workers_of_current(), None);

    // `block_on` inside an entered runtime restores it after.
    let g1 = one.enter();
    assert_eq!(two.block_on(async { workers_of_current() }), Some(2));
    assert_eq!(workers_of_current(), Some(1));
    drop(g1);
    assert_eq!(workers_of_current(), None);
}

#[test]
fn too_many_worker_threads_is_an_invalid_input_error_not_a_panic() {
    common::hang_guard();
    let r = std::panic::catch_unwind(|| Runtime::builder().worker_threads(70_000).build());
    let err = r
        .expect("build panicked")
        .expect_err("70 000 workers were accepted");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(msg.contains("70000") && msg.contains("32768"), "{msg}");
}

#[test]
fn callback_deferred_on_a_busy_worker_never_runs_after_shutdown_timeout() {
    common::hang_guard();
    // One worker, so nobody steals the callback from the busy worker's queue.
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let (started, release) = (Flag::new(), Flag::new());
    let (ran, dropped) = (Flag::new(), Flag::new());
    struct SetOnDrop(Flag);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set();
        }
    }
    {
        let (started, release, ran) = (started.clone(), release.clone(), ran.clone());
        let on_drop = SetOnDrop(dropped.clone());
        drop(rt.spawn(async move {
            weft_runtime::callback::defer(move || {
                let _on_drop = on_drop;
                ran.set();
            });
            started.set();
            // Busy (not at an await) until the runtime has shut down.
            while !release.get() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }
    wait_until("the task started", || started.get());
    rt.shutdown_timeout(Duration::from_millis(10));
    release.set();
    // Dropped (by the worker once it is free), and so never to run.
    wait_until("the callback was dropped", || dropped.get());
    assert!(
        !ran.get(),
        "a deferred callback ran after shutdown_timeout returned"
    );
}
