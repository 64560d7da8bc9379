//! # weft
//!
//! A Rust async runtime: per-core worker threads with local work-stealing deques, timers on
//! per-worker timing wheels, and file, socket and process I/O on an io_uring ring per worker
//! (the blocking pool and a readiness poller where io_uring is unavailable). Beside the
//! runtime, weft carries
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
//! | [`op`] | your own io_uring operation on a worker's ring: [`op::Operation`], run by [`op::Op`] with the cancellation and cleanup `fs` uses |
//! | [`net`] | `TcpListener`, `TcpStream`, `TcpSocket`, `UdpSocket`, `UnixListener`, `UnixStream`: owned buffers, methods on `&self` |
//!
//! This crate re-exports `weft-runtime`; the reactor lives in `weft-reactor`.
//!
//! # Your own io_uring operation
//!
//! An opcode weft does not wrap (here `IORING_OP_NOP`) runs through the same op future as
//! `fs`, submitted on the ring of the worker that polls it. The trait is `unsafe`: its
//! entry may point only at what the operation owns (see [`op::Operation`]). A thread with
//! no ring (the fallback driver, a `block_on` thread) gets the operation back.
//!
//! ```
//! use weft::op::{io_uring, CqeResult, Op, Operation};
//!
//! struct Nop;
//!
//! // SAFETY: a NOP's entry points at no memory.
//! unsafe impl Operation for Nop {
//!     type Output = std::io::Result<u32>;
//!     fn sqe(&mut self) -> io_uring::squeue::Entry {
//!         io_uring::opcode::Nop::new().build()
//!     }
//!     fn complete(self, cqe: CqeResult) -> std::io::Result<u32> {
//!         cqe.result
//!     }
//! }
//!
//! let rt = weft::Runtime::new()?;
//! let on_ring = rt.block_on(rt.spawn(async {
//!     match Op::submit(Nop) {
//!         Ok(op) => Some(op.await),
//!         Err(Nop) => None, // this worker has no ring
//!     }
//! }))?;
//! assert_eq!(on_ring.is_some(), rt.metrics().io_uring());
//! if let Some(res) = on_ring {
//!     assert_eq!(res?, 0);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use weft_runtime::*;
