//! weft-runtime: tasks, the work-stealing scheduler, `block_on`/`spawn`, the blocking pool
//! and metrics.
//!
//! Most users depend on the `weft` facade crate, which re-exports this one.
//!
//! # Quick start
//!
//! ```
//! use weft_runtime::Runtime;
//!
//! let rt = Runtime::builder().worker_threads(2).build()?;
//! let answer = rt.block_on(async {
//!     let a = weft_runtime::spawn(async { 40 });
//!     let b = weft_runtime::spawn(async { 2 });
//!     a.await.unwrap() + b.await.unwrap()
//! });
//! assert_eq!(answer, 42);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Map
//!
//! - [`task`]: the task cell and its state machine, [`JoinHandle`], [`task::yield_now`],
//!   [`task::spawn_blocking`], [`task::JoinSet`], [`task::Id`], [`task_local!`].
//! - [`main`], [`test`] (from `weft-macros`), [`select!`], [`join!`], [`try_join!`],
//!   [`pin!`]: the attribute and future macros.
//! - [`Runtime`], [`Builder`], [`Handle`]: starting, entering and stopping a runtime.
//! - [`RuntimeMetrics`]: what the scheduler did (polls, steals, parks, queue depths).
//! - [`time`]: [`time::sleep`], [`time::timeout`], [`time::interval`] on per-worker timing
//!   wheels.
//! - [`callback`]: error-first callbacks: [`callback::defer`], [`callback::set_timeout`],
//!   file callbacks, and `series`/`parallel`/`waterfall`/`race`/`retry`/`timeout`.
//! - [`fs`]: [`fs::File`], [`fs::OpenOptions`], [`fs::read`]: positioned I/O, owned buffers.
//! - [`buf`]: the owned-buffer traits [`buf::IoBuf`] and [`buf::IoBufMut`], the
//!   [`buf::Slice`] view and [`buf::BufResult`], taken by [`fs`] and [`callback::fs`].
//! - [`op`]: the reactor's op future [`op::Op`] over an [`op::Operation`], the extension
//!   point for an io_uring opcode weft does not wrap.
//! - [`promise`]: the Promise API as future combinators: [`promise::PromiseExt`]
//!   (`then`, `catch`, `finally`, `timeout`), [`promise::all`], [`promise::race`],
//!   [`promise::any`], [`promise::retry`], [`promise::promisify`].
//! - [`signal`]: [`signal::ctrl_c`] and [`signal::unix::signal`], any number of listeners.
//! - [`process`]: [`process::Command`] and [`process::Child`], exits watched through pidfds.
//! - [`sync`]: `oneshot`, `mpsc`, `broadcast`, `watch`, `Mutex`, `RwLock`, `Semaphore`,
//!   `Notify`, `Barrier`, `OnceCell`, with tokio's names, usable on any executor.
//! - [`net`]: [`net::TcpListener`], [`net::TcpStream`], [`net::UdpSocket`], Unix sockets:
//!   owned buffers, methods on `&self`.
//! - `hyper` (feature `hyper`): `Executor` and `Timer` for hyper 1.x; with the features
//!   `tokio-io`, `futures-io` and `hyper` the streams implement those crates' I/O traits.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

mod blocking;
pub use weft_reactor::buf;
pub use weft_reactor::op;
pub mod callback;
mod context;
mod coop;
mod driver;
mod fork;
pub mod fs;
#[cfg(feature = "hyper")]
pub mod hyper;
mod io;
mod loom;
mod macros;
mod metrics;
pub mod net;
mod park;
mod poller;
pub mod process;
pub mod promise;
mod runtime;
mod scheduler;
pub mod signal;
pub mod sync;
pub mod task;
pub mod time;

pub use io::{IO_DRIVER_ENV, UringMode};
#[doc(hidden)]
pub use macros::__macro_support;
pub use metrics::{RuntimeMetrics, WorkerMetrics};
pub use runtime::{Builder, Runtime, WORKER_THREADS_ENV};
pub use scheduler::{EnterGuard, Handle, TryCurrentError};
pub use task::{JoinError, JoinHandle};
/// Inside this crate's own tests and examples, name the runtime with `crate`, or import it
/// as `weft` (`use weft_runtime as weft;`): the expansion says `weft::Runtime`.
///
/// ```
/// #[weft_runtime::main(crate = "weft_runtime", worker_threads = 2)]
/// async fn main() {
///     let h = weft_runtime::spawn(async { 40 + 2 });
///     assert_eq!(h.await.unwrap(), 42);
/// }
/// ```
pub use weft_macros::main;
/// Inside this crate's own tests, name the runtime with `crate`, or import it as `weft`.
///
/// ```
/// use weft_runtime as weft;
///
/// #[weft::test(io = "fallback")]
/// async fn spawns() -> Result<(), weft::JoinError> {
///     assert_eq!(weft::spawn(async { 2 }).await?, 2);
///     Ok(())
/// }
/// # fn main() {}
/// ```
pub use weft_macros::test;

use std::future::Future;

/// Spawns a task onto the current runtime.
///
/// Inside a worker the task goes to that worker's queue; inside `block_on` or after
/// [`Handle::enter`], to the global queue.
///
/// # Panics
///
/// Outside a runtime, with a message saying how to get into one. Use [`Handle::spawn`] to
/// spawn from a thread that is not in the runtime.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let v = rt.block_on(async { weft_runtime::spawn(async { 7 }).await.unwrap() });
/// assert_eq!(v, 7);
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Boxed here, before the future is moved through any other frame: in a debug build
    // every move is a stack copy, and a large future copied a few times overflows a small
    // thread stack.
    if std::mem::size_of::<F>() > scheduler::BOX_FUTURE_THRESHOLD {
        spawn_unboxed(Box::pin(future))
    } else {
        spawn_unboxed(future)
    }
}

#[track_caller]
fn spawn_unboxed<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match context::with_current(|h| h.spawn_inner(future)) {
        Some(j) => j,
        None => panic!("weft::spawn: {}", scheduler::NO_RUNTIME),
    }
}
