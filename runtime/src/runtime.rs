//! [`Runtime`] and its [`Builder`].

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use weft_reactor::Driver;

use crate::io::UringMode;

use crate::blocking::BlockingPool;
use crate::metrics::WorkerCounters;
use crate::scheduler::worker::{self, Core};
use crate::scheduler::{self, Config, Handle, Remote, Shared};
use crate::task::JoinHandle;

/// The environment variable that sets the number of worker threads when the builder does
/// not (a positive integer).
pub const WORKER_THREADS_ENV: &str = "WEFT_WORKER_THREADS";

type Callback = Arc<dyn Fn() + Send + Sync>;

/// The most worker threads a runtime may have: far above any machine's cores, and below
/// what the idle accounting counts (16 bits of searching workers).
const MAX_WORKER_THREADS: usize = 32_768;

/// Names, stack size and start/stop hooks shared by worker and blocking threads.
#[derive(Clone)]
pub(crate) struct ThreadHooks {
    pub(crate) name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_start: Option<Callback>,
    pub(crate) on_stop: Option<Callback>,
}

/// Configures and builds a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::builder()
///     .worker_threads(2)
///     .thread_name("my-app")
///     .on_thread_start(|| println!("worker started"))
///     .build()
///     .unwrap();
/// assert_eq!(rt.metrics().num_workers(), 2);
/// ```
pub struct Builder {
    worker_threads: Option<usize>,
    hooks: ThreadHooks,
    max_blocking_threads: usize,
    keep_alive: Duration,
    global_queue_interval: u32,
    event_interval: u32,
    lifo_slot: bool,
    io_uring: UringMode,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults: one worker per available CPU (honouring cgroup quotas and
    /// affinity, or [`WORKER_THREADS_ENV`]), up to 512 blocking threads kept alive 10 s.
    pub fn new() -> Builder {
        Builder {
            worker_threads: None,
            hooks: ThreadHooks {
                name: "weft-worker".to_string(),
                stack_size: None,
                on_start: None,
                on_stop: None,
            },
            max_blocking_threads: 512,
            keep_alive: Duration::from_secs(10),
            global_queue_interval: 61,
            event_interval: 61,
            lifo_slot: true,
            io_uring: UringMode::Auto,
        }
    }

    /// Whether workers use io_uring (default [`UringMode::Auto`]: if the kernel allows it).
    /// The `WEFT_IO_DRIVER` environment variable overrides this (see [`UringMode`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::{UringMode, Runtime};
    /// // A runtime that never touches io_uring (file I/O on the blocking pool):
    /// let rt = Runtime::builder().io_uring(UringMode::Disabled).build().unwrap();
    /// assert!(!rt.metrics().io_uring());
    /// ```
    pub fn io_uring(&mut self, mode: UringMode) -> &mut Self {
        self.io_uring = mode;
        self
    }

    /// The number of worker threads (1 to 32 768; outside that [`build`](Builder::build)
    /// fails).
    pub fn worker_threads(&mut self, n: usize) -> &mut Self {
        self.worker_threads = Some(n);
        self
    }

    /// The name prefix of the runtime's threads (workers are `NAME-N`).
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.hooks.name = name.into();
        self
    }

    /// The stack size of the runtime's threads, in bytes.
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.hooks.stack_size = Some(bytes);
        self
    }

    /// Runs `f` on every worker and blocking thread as it starts.
    ///
    /// If it panics on a worker, [`build`](Builder::build) fails with an error naming the
    /// worker and the panic message. On a blocking-pool thread (started later, with no
    /// caller to refuse) the panic is caught and the thread works anyway.
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.hooks.on_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on every worker and blocking thread as it stops. A panic in it is caught.
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.hooks.on_stop = Some(Arc::new(f));
        self
    }

    /// The most threads the blocking pool may start (at least 1).
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Self {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for work before it exits.
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Self {
        self.keep_alive = d;
        self
    }

    /// Every `n` ticks a worker takes a task from the global queue before its own (default
    /// 61), so remote spawns cannot starve.
    pub fn global_queue_interval(&mut self, n: u32) -> &mut Self {
        self.global_queue_interval = n;
        self
    }

    /// Every `n` ticks a busy worker checks for shutdown and polls its driver (default 61).
    pub fn event_interval(&mut self, n: u32) -> &mut Self {
        self.event_interval = n;
        self
    }

    /// Whether a task woken by a task goes to the worker's LIFO slot (default `true`):
    /// lower latency for message passing, at some cost in fairness (bounded, see the
    /// scheduler's docs).
    pub fn lifo_slot(&mut self, enabled: bool) -> &mut Self {
        self.lifo_slot = enabled;
        self
    }

    fn resolve_workers(&self) -> io::Result<usize> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let n = match self.worker_threads {
            Some(n) => n,
            None => match std::env::var(WORKER_THREADS_ENV) {
                Ok(v) => v.trim().parse::<usize>().map_err(|_| {
                    invalid(format!(
                        "{WORKER_THREADS_ENV}={v:?} is not a number of worker threads \
                         (expected a positive integer)"
                    ))
                })?,
                Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
        };
        if n == 0 {
            return Err(invalid(
                "a runtime needs at least one worker thread (worker_threads or \
                 WEFT_WORKER_THREADS was 0)"
                    .to_string(),
            ));
        }
        if n > MAX_WORKER_THREADS {
            return Err(invalid(format!(
                "{n} worker threads requested (worker_threads or {WORKER_THREADS_ENV}): a \
                 runtime has at most {MAX_WORKER_THREADS}"
            )));
        }
        for (what, v) in [
            ("global_queue_interval", self.global_queue_interval),
            ("event_interval", self.event_interval),
        ] {
            if v == 0 {
                return Err(invalid(format!("{what} must be at least 1")));
            }
        }
        if self.max_blocking_threads == 0 {
            return Err(invalid("max_blocking_threads must be at least 1".into()));
        }
        Ok(n)
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a setting out of range (0 or more than 32 768 workers, a malformed
    /// `WEFT_WORKER_THREADS`); the operating system's error, naming the worker, if a thread
    /// cannot be started (the threads already started are shut down and joined first).
    pub fn build(&mut self) -> io::Result<Runtime> {
        let n = self.resolve_workers()?;
        let mode = self.io_uring.resolve()?;
        let drivers = crate::driver::worker_drivers(n, mode)?;
        let io_uring = drivers.iter().any(|d| d.inner().ring().is_some());
        let mut locals = Vec::with_capacity(n);
        let mut remotes = Vec::with_capacity(n);
        for (index, driver) in drivers.into_iter().enumerate() {
            let local = worker::new_local();
            remotes.push(Remote {
                stealer: local.stealer(),
                unpark: driver.unparker(),
                timer: driver.handle(),
                ring: driver.inner().ring(),
                epoll: driver.inner().epoll(),
                counters: CachePadded::new(WorkerCounters::default()),
            });
            locals.push(Core::new(index, local, driver));
        }
        let shared = Arc::new(Shared::new(
            remotes,
            BlockingPool::new(
                self.max_blocking_threads,
                self.keep_alive,
                self.hooks.clone(),
            ),
            Config {
                global_queue_interval: self.global_queue_interval,
                event_interval: self.event_interval,
                max_lifo_polls: if self.lifo_slot { 3 } else { 0 },
                local_capacity: crate::scheduler::queue::local_capacity(n),
            },
            io_uring,
        )?);
        let handle = Handle { shared };
        let mut rt = Runtime {
            handle,
            threads: Vec::with_capacity(n),
            shut_down: false,
        };
        // Each worker enables its ring (becoming its single issuer) and reports back before
        // `build` returns, so a ring that cannot be enabled is a build error, not a panic.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        for (index, mut core) in locals.into_iter().enumerate() {
            let shared = rt.handle.shared.clone();
            let hooks = self.hooks.clone();
            let started = started_tx.clone();
            let mut builder = std::thread::Builder::new().name(format!("{}-{index}", hooks.name));
            if let Some(size) = hooks.stack_size {
                builder = builder.stack_size(size);
            }
            rt.handle.shared.worker_starting();
            let spawned = builder.spawn(move || {
                let start = core.enable_driver().map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("weft: worker {index} could not enable its io_uring: {e}"),
                    )
                });
                let _enter = crate::context::enter_runtime();
                let _current = crate::context::set_current(Handle {
                    shared: shared.clone(),
                });
                // The start hook runs before the worker reports in: if it panics, the
                // user's per-thread setup did not happen, and `build` says so.
                let start = start.and_then(|()| run_hook(&hooks.on_start, index));
                let failed = start.is_err();
                let _ = started.send(start);
                drop(started);
                if failed {
                    worker::exit_core(&shared, core);
                    return;
                }
                worker::run(shared, index, core);
                let _ = run_hook(&hooks.on_stop, index);
            });
            match spawned {
                Ok(t) => rt.threads.push(t),
                Err(e) => {
                    rt.handle.shared.worker_not_started();
                    // `rt` is dropped here: the workers already started are shut down.
                    return Err(io::Error::new(
                        e.kind(),
                        format!("weft: could not start worker thread {index} of {n}: {e}"),
                    ));
                }
            }
        }
        drop(started_tx);
        for _ in 0..rt.threads.len() {
            match started_rx.recv() {
                Ok(Ok(())) => {}
                // `rt` is dropped here: the workers that did start are shut down.
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("weft: a worker thread died at start")),
            }
        }
        Ok(rt)
    }
}

/// Runs a thread hook, turning a panic into an error that names the worker.
fn run_hook(hook: &Option<Callback>, index: usize) -> io::Result<()> {
    let Some(f) = hook else { return Ok(()) };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f())).map_err(|p| {
        let msg = crate::task::panic_message(&*p).unwrap_or("a non-string payload");
        io::Error::other(format!(
            "weft: a thread hook panicked on worker {index}: {msg}"
        ))
    })
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("worker_threads", &self.worker_threads)
            .field("thread_name", &self.hooks.name)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("keep_alive", &self.keep_alive)
            .field("global_queue_interval", &self.global_queue_interval)
            .field("event_interval", &self.event_interval)
            .field("lifo_slot", &self.lifo_slot)
            .field("io_uring", &self.io_uring)
            .finish_non_exhaustive()
    }
}

/// A multi-thread work-stealing runtime: worker threads with local queues that steal from
/// each other, a global queue, and a blocking pool.
///
/// Dropping the runtime shuts it down: workers stop, every task that has not completed has
/// its future dropped (its destructors run, on the dropping thread), blocking jobs that have
/// started are waited for (file system calls on the pool only up to a bound, as some never
/// return: see [`spawn_blocking`](crate::task::spawn_blocking)), and the threads are joined.
///
/// A runtime does not survive `fork(2)`: in the child (which has none of its threads),
/// `spawn`, `defer`, `spawn_blocking` and `block_on` panic with a message saying so, and
/// dropping it leaks it rather than wait for threads that are not there. A forked child
/// should `exec` (or fork before any runtime starts threads).
///
/// # Examples
///
/// ```
/// use weft_runtime::Runtime;
///
/// let rt = Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let handles: Vec<_> = (0..10u64).map(|i| weft_runtime::spawn(async move { i * i })).collect();
///     let mut sum = 0;
///     for h in handles {
///         sum += h.await.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 285);
/// ```
pub struct Runtime {
    handle: Handle,
    threads: Vec<std::thread::JoinHandle<()>>,
    shut_down: bool,
}

impl Runtime {
    /// A runtime with the default settings (see [`Builder::new`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure one.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The runtime's [`Handle`]: cloneable, `Send + Sync`, spawns from any thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task onto the workers; see [`Handle::spawn`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Boxed here rather than in `Handle::spawn`, before another frame copies it.
        if std::mem::size_of::<F>() > scheduler::BOX_FUTURE_THRESHOLD {
            self.handle.spawn_inner(Box::pin(future))
        } else {
            self.handle.spawn_inner(future)
        }
    }

    /// Runs `f` on the blocking pool; see [`crate::task::spawn_blocking`].
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Runs `future` to completion on the calling thread, with this runtime current (so
    /// [`spawn`](crate::spawn) and [`Handle::current`] work inside it). The future need not be
    /// `Send`; tasks it spawns run on the workers.
    ///
    /// # Panics
    ///
    /// If called from inside a runtime (a task, or another `block_on`): that would block
    /// the thread that drives it.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Enters the runtime's context without blocking; see [`Handle::enter`].
    pub fn enter(&self) -> scheduler::EnterGuard<'_> {
        self.handle.enter()
    }

    /// The runtime's counters.
    pub fn metrics(&self) -> crate::RuntimeMetrics {
        self.handle.metrics()
    }

    /// Shuts down, waiting at most `timeout` for workers to finish their current poll and
    /// for started blocking jobs. Threads still busy after it are left to finish on their
    /// own (detached): the poll, callback or blocking job they are in runs to its end, and
    /// nothing else of this runtime's starts after this returns (a busy worker drops the
    /// tasks and deferred callbacks it still holds, unrun). Every task not being polled has
    /// its future dropped.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(Instant::now() + timeout));
    }

    /// Shuts down without waiting for busy threads (`shutdown_timeout(0)`).
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO)
    }

    fn shutdown(&mut self, deadline: Option<Instant>) {
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        if self.handle.shared.is_forked() {
            // A forked child: the threads do not exist here and the rings are the parent's.
            // Leak all of it (see `fork.rs`).
            std::mem::forget(self.handle.clone());
            std::mem::forget(std::mem::take(&mut self.threads));
            return;
        }
        let shared = &self.handle.shared;
        if deadline.is_none() && crate::context::in_runtime() {
            panic!(
                "a weft runtime was dropped inside a runtime (a task or block_on), where \
                 waiting for its threads could deadlock: drop it outside, or use \
                 `shutdown_background()`"
            );
        }
        // Step 1.
        shared.begin_shutdown();
        // Step 2: wait for the workers.
        let all_exited = shared.wait_for_workers(deadline);
        // Step 3: every remaining future is dropped here.
        shared.owned().close_and_shutdown_all();
        // Step 4.
        shared.inject().close_and_drain();
        shared.blocking().shutdown(deadline);
        if all_exited {
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}
