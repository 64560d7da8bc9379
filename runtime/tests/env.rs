//! `WEFT_WORKER_THREADS`. One test in its own binary: the environment is process-wide, so
//! nothing else may build a runtime concurrently.

mod common;

use std::io;

use weft_runtime::{Runtime, WORKER_THREADS_ENV};

#[test]
fn worker_threads_env_var() {
    common::hang_guard();
    assert_eq!(WORKER_THREADS_ENV, "WEFT_WORKER_THREADS");

    set_workers_env(Some("abc"));
    let e = Runtime::builder().build().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let msg = e.to_string();
    assert!(msg.contains("WEFT_WORKER_THREADS"), "{msg}");
    assert!(msg.contains("abc"), "{msg}");
    // `Runtime::new` reads it too.
    assert_eq!(
        Runtime::new().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );

    for bad in ["0", "-1", "", "2.5"] {
        set_workers_env(Some(bad));
        let e = Runtime::builder().build().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
    }

    set_workers_env(Some(" 3 "));
    let rt = Runtime::builder().build().unwrap();
    assert_eq!(rt.metrics().num_workers(), 3);
    assert_eq!(
        rt.block_on(async { weft_runtime::spawn(async { 1 }).await.unwrap() }),
        1
    );
    drop(rt);

    // The builder's own setting wins over the variable, even a malformed one.
    set_workers_env(Some("abc"));
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    assert_eq!(rt.metrics().num_workers(), 2);
    drop(rt);

    set_workers_env(None);
    let rt = Runtime::builder().build().unwrap();
    let expected = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(rt.metrics().num_workers(), expected);
}

/// Sets (`Some`) or removes (`None`) `WEFT_WORKER_THREADS`.
///
/// Called only between runtimes: each runtime this test builds is dropped (its `Drop` joins
/// its workers and its blocking threads) or never got past the builder's check of the
/// variable, which fails before any thread is spawned.
fn set_workers_env(value: Option<&str>) {
    // SAFETY: the environment may be written while no other thread reads it. This binary
    // runs this one test; the only other threads are the hang guard, which sleeps and reads
    // no variable, and the test harness's main thread, which waits for this test.
    unsafe {
        match value {
            Some(v) => std::env::set_var(WORKER_THREADS_ENV, v),
            None => std::env::remove_var(WORKER_THREADS_ENV),
        }
    }
}
