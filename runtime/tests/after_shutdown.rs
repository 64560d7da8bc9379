//! Timers and file operations on a runtime that has shut down: time still passes, so
//! `sleep`, `timeout` and `interval` complete on time (never hang on a wheel nobody fires),
//! a callback timer is dropped unrun, and a file operation fails with an error.

mod common;

use std::time::{Duration, Instant};

use common::watchdog_within;
use weft_runtime::Runtime;
use weft_runtime::time::{interval, sleep, timeout};

const LIMIT: Duration = Duration::from_secs(20);

fn dropped_runtime_handle() -> weft_runtime::Handle {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    handle
}

#[test]
fn sleep_timeout_and_interval_after_drop_complete_not_early() {
    common::hang_guard();
    watchdog_within("timers after drop", LIMIT, || {
        let handle = dropped_runtime_handle();
        handle.block_on(async {
            let start = Instant::now();
            sleep(Duration::from_millis(10)).await;
            assert!(start.elapsed() >= Duration::from_millis(10));

            let start = Instant::now();
            let r = timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
            assert!(r.is_err());
            assert!(start.elapsed() >= Duration::from_millis(5));

            let mut iv = interval(Duration::from_millis(3));
            let t0 = iv.tick().await;
            let t1 = iv.tick().await;
            assert_eq!(t1 - t0, Duration::from_millis(3));
            assert!(Instant::now() >= t1);
        });
    });
}

#[test]
fn sleep_in_flight_while_the_runtime_drops_completes() {
    common::hang_guard();
    watchdog_within("sleep across drop", LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let handle = rt.handle().clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            handle.block_on(async {
                let start = Instant::now();
                let s = sleep(Duration::from_millis(50));
                tx.send(()).unwrap();
                s.await;
                start.elapsed()
            })
        });
        // Dropped while the sleep is (about to be) filed in a worker's wheel.
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        drop(rt);
        assert!(sleeper.join().unwrap() >= Duration::from_millis(50));
    });
}

#[test]
fn blocking_job_sleeping_through_the_drop_lets_the_drop_finish() {
    common::hang_guard();
    watchdog_within("blocking job sleeping across drop", LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let handle = rt.handle().clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let job = rt.spawn_blocking(move || {
            handle.block_on(async {
                let s = sleep(Duration::from_millis(50));
                tx.send(()).unwrap();
                s.await;
            });
            1
        });
        rx.recv().unwrap();
        // The drop waits for the started job, whose sleep must still end.
        drop(rt);
        assert_eq!(common::block_on_plain(job).unwrap(), 1);
    });
}

#[test]
fn set_timeout_after_drop_drops_the_callback_unrun() {
    common::hang_guard();
    watchdog_within("set_timeout after drop", LIMIT, || {
        let handle = dropped_runtime_handle();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        {
            let _enter = handle.enter();
            let _t = weft_runtime::callback::set_timeout(Duration::from_millis(1), move || {
                tx.send(()).unwrap()
            });
        }
        // Disconnected (not a message): the callback was dropped without running.
        assert!(rx.recv().is_err());
    });
}

#[test]
fn file_read_after_drop_is_an_error() {
    common::hang_guard();
    watchdog_within("file read after drop", LIMIT, || {
        let path = std::env::temp_dir().join(format!("weft-after-shutdown-{}", std::process::id()));
        std::fs::write(&path, b"data").unwrap();
        let handle = dropped_runtime_handle();
        let r = handle.block_on(weft_runtime::fs::read(&path));
        let _ = std::fs::remove_file(&path);
        assert!(r.is_err(), "{r:?}");
    });
}
