//! # weft
//!
//! A Rust async runtime: per-core worker threads with local work-stealing deques, timers on
//! per-worker timing wheels, and file I/O on an io_uring ring per worker (the blocking pool
//! where io_uring is unavailable). Beside the runtime, weft carries
//! the patterns of asynchronous JavaScript — callbacks, promises, async/await,
//! `Promise.all`/`race`/`any`, retry, timeout — written three ways in Rust and benchmarked
//! side by side.
//!
//! The API follows tokio's names, so switching is mostly a matter of imports:
//!
//! ```
//! use weft::Runtime;
//!
//! let rt = Runtime::builder().worker_threads(2).build()?;
//! let total = rt.block_on(async {
//!     let handles: Vec<_> = (1..=4u64).map(|i| weft::spawn(async move { i * 10 })).collect();
//!     let mut total = 0;
//!     for h in handles {
//!         total += h.await?;
//!     }
//!     Ok::<_, weft::JoinError>(total)
//! })?;
//! assert_eq!(total, 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | item | what it is |
//! |---|---|
//! | [`Runtime`], [`Builder`], [`Handle`] | start, configure, enter and stop a runtime |
//! | [`spawn`], [`task::spawn_blocking`], [`task::yield_now`] | run work on it |
//! | [`JoinHandle`], [`JoinError`], [`task::AbortHandle`] | await or cancel that work |
//! | [`RuntimeMetrics`] | what the scheduler did |
//! | [`time`] | `sleep`, `timeout`, `interval` on per-worker timing wheels |
//! | [`fs`] | `File` with owned-buffer positioned I/O, `OpenOptions`, `read`, `write`, ... |
//!
//! This crate re-exports `weft-runtime`; the reactor lives in `weft-reactor`.

pub use weft_runtime::*;
