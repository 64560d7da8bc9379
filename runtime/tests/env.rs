//! `WEFT_WORKER_THREADS`. One test in its own binary: the environment is process-wide, so
//! nothing else may build a runtime concurrently.

mod common;

use std::io;

use weft_runtime::{Runtime, WORKER_THREADS_ENV};

#[test]
fn worker_threads_env_var() {
    common::hang_guard();
    assert_eq!(WORKER_THREADS_ENV, "WEFT_WORKER_THREADS");

    std::env::set_var(WORKER_THREADS_ENV, "abc");
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
        std::env::set_var(WORKER_THREADS_ENV, bad);
        let e = Runtime::builder().build().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {e}");
    }

    std::env::set_var(WORKER_THREADS_ENV, " 3 ");
    let rt = Runtime::builder().build().unwrap();
    assert_eq!(rt.metrics().num_workers(), 3);
    assert_eq!(
        rt.block_on(async { weft_runtime::spawn(async { 1 }).await.unwrap() }),
        1
    );
    drop(rt);

    // The builder's own setting wins over the variable, even a malformed one.
    std::env::set_var(WORKER_THREADS_ENV, "abc");
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    assert_eq!(rt.metrics().num_workers(), 2);
    drop(rt);

    std::env::remove_var(WORKER_THREADS_ENV);
    let rt = Runtime::builder().build().unwrap();
    let expected = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(rt.metrics().num_workers(), expected);
}
