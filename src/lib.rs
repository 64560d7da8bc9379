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
//! | [`task::JoinSet`] | a set of tasks, joined as they finish; dropping it aborts them |
//! | [`task::Id`], [`task::id`], [`task::try_id`] | a unique id per task |
//! | [`task_local!`], [`task::LocalKey`] | values scoped to a task (`scope`, `with`, `get`) |
//! | [`main`], [`test`] | `#[weft::main]`, `#[weft::test]`: an `async fn` on a fresh runtime |
//! | [`select!`], [`join!`], [`try_join!`], [`pin!`] | wait on several futures in one task |
//! | [`RuntimeMetrics`] | what the scheduler did |
//! | [`time`] | `sleep`, `timeout`, `interval` on per-worker timing wheels |
//! | [`fs`] | `File` with owned-buffer positioned I/O, `OpenOptions`, `read`, `write`, ... |
//! | [`buf`] | `IoBuf`, `IoBufMut`, `Slice`, `BufResult`: the owned buffers `fs` takes (`Vec<u8>`, `Box<[u8]>`, `&'static str`, `bytes` with the `bytes` feature) |
//! | [`signal`] | `ctrl_c`, `unix::signal(SignalKind)`: any number of listeners, none lost |
//! | [`process`] | `Command`, `Child`: exits watched through pidfds, owned-buffer pipes |
//! | [`sync`] | tokio's `oneshot`, `mpsc`, `broadcast`, `watch`, `Mutex`, `RwLock`, `Semaphore`, `Notify`, `Barrier`, `OnceCell` |
//! | [`net`] | `TcpListener`, `TcpStream`, `TcpSocket`, `UdpSocket`, `UnixListener`, `UnixStream`: owned buffers, methods on `&self` |
//!
//! This crate re-exports `weft-runtime`; the reactor lives in `weft-reactor`.

pub use weft_runtime::*;
