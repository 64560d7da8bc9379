//! The multi-thread work-stealing scheduler.
//!
//! - `worker.rs`: the worker loop and its protocol (read that first);
//! - `queue.rs`: the global queue and the local-queue policy;
//! - `idle.rs`: parked/searching accounting;
//! - this file: the state the workers share, and the [`Handle`] that spawns onto them.

pub(crate) mod idle;
pub(crate) mod queue;
pub(crate) mod worker;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

use crossbeam_deque::Stealer;
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};
use weft_reactor::{TimerHandle, Unpark};

use crate::driver::IoUnparker;

use crate::blocking::BlockingPool;
use crate::metrics::WorkerCounters;
use crate::task::list::OwnedTasks;
use crate::task::{self, JoinHandle, Notified, Schedule, Task};
pub(crate) use idle::Idle;
use queue::Inject;

/// Futures larger than this are boxed by `spawn`, so that moving them through the spawn
/// path cannot overflow a thread's stack. Debug builds copy futures more, so box sooner.
pub(crate) const BOX_FUTURE_THRESHOLD: usize = if cfg!(debug_assertions) { 2048 } else { 16384 };

/// Settings the workers read.
pub(crate) struct Config {
    pub(crate) global_queue_interval: u32,
    pub(crate) event_interval: u32,
    pub(crate) max_lifo_polls: u8,
    /// The bound on each local queue; see `queue::local_capacity`.
    pub(crate) local_capacity: usize,
}

/// One worker as the other threads see it.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Notified>,
    pub(crate) unpark: IoUnparker,
    /// The worker's wheel, for threads that park on no wheel of their own.
    pub(crate) timer: TimerHandle,
    /// The worker's ring, if it has one (for metrics).
    pub(crate) ring: Option<weft_reactor::uring::UringHandle>,
    /// The worker's epoll, on the fallback (for the take-over of a stalled worker's events).
    pub(crate) epoll: Option<weft_reactor::epoll::EpollHandle>,
    pub(crate) counters: CachePadded<WorkerCounters>,
}

/// What all workers and handles share.
///
/// Aligned to a cache line pair so that the `Arc`'s counts (written on every spawn and
/// every task free, since each task holds a `Handle`) do not share a line with the fields
/// every worker reads.
#[repr(align(128))]
pub(crate) struct Shared {
    remotes: Box<[Remote]>,
    inject: Inject,
    idle: Idle,
    owned: OwnedTasks,
    shutdown: AtomicBool,
    blocking: BlockingPool,
    config: Config,
    /// Whether the workers park on io_uring (and file ops may use their rings).
    io_uring: bool,
    /// Written on every spawn and wake from a thread that is not a worker: a line of its
    /// own, so that those writes do not evict what the workers read on every task (the
    /// owned-task list's shards sat next to them).
    remote: CachePadded<RemoteCounts>,
    /// Workers still running; the runtime's drop waits on `exited`.
    running: Mutex<usize>,
    exited: Condvar,
    /// The process the runtime was built in; see `fork.rs`.
    built_in: crate::fork::BuiltIn,
    /// This runtime's number, unique in the process; see [`Handle::id`].
    id: u64,
}

/// What threads that are not workers schedule (workers count their own).
#[derive(Default)]
struct RemoteCounts {
    /// Tasks spawned.
    spawns: AtomicU64,
    /// Wakes and deferred callbacks: the other remote schedules, so that a spawn counts
    /// with one atomic operation ([`Shared::remote_schedules`] adds the two).
    others: AtomicU64,
}

/// The next runtime's [`Handle::id`].
fn next_runtime_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Relaxed)
}

/// A cheap, cloneable reference to a runtime, usable from any thread: spawn onto it, enter
/// it, read its metrics.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let joined = std::thread::spawn(move || handle.spawn(async { 1 + 1 }))
///     .join()
///     .unwrap();
/// assert_eq!(rt.block_on(joined).unwrap(), 2);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// The error of [`Handle::try_current`]: this thread is not inside a runtime.
#[derive(Debug, Clone)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NO_RUNTIME)
    }
}

impl std::error::Error for TryCurrentError {}

pub(crate) const NO_RUNTIME: &str = "there is no weft runtime on this thread: call this from \
     inside `Runtime::block_on` or a task spawned on a runtime, or enter one first with \
     `Handle::enter()`";

impl Handle {
    /// The runtime of the current thread (inside `block_on`, a task, or `enter`).
    ///
    /// # Panics
    ///
    /// Outside a runtime, with a message saying how to get into one.
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// The runtime of the current thread, or an error outside one.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        crate::context::with_current(Handle::clone).ok_or(TryCurrentError(()))
    }

    /// Makes this runtime current on this thread until the guard is dropped, so that
    /// [`spawn`](crate::spawn) and [`Handle::current`] work outside `block_on`.
    ///
    /// Guards may be dropped in any order: the current runtime is always the one entered
    /// most recently whose guard is still alive (none once all are dropped). A guard is not
    /// `Send`: it changes its own thread's context.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::{Handle, Runtime};
    /// let one = Runtime::builder().worker_threads(1).build().unwrap();
    /// let two = Runtime::builder().worker_threads(2).build().unwrap();
    /// let g1 = one.enter();
    /// let g2 = two.enter();
    /// drop(g1); // out of order: `two` stays current
    /// assert_eq!(Handle::current().metrics().num_workers(), 2);
    /// drop(g2);
    /// assert!(Handle::try_current().is_err());
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _guard: crate::context::set_current(self.clone()),
            _handle: std::marker::PhantomData,
        }
    }

    /// Spawns a task onto the runtime's workers.
    ///
    /// From a worker thread the task goes to that worker's queue (its LIFO slot, so a task
    /// that spawns and then waits hands over at once); from any other thread, to the global
    /// queue, waking a parked worker if none is searching.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if std::mem::size_of::<F>() > BOX_FUTURE_THRESHOLD {
            self.spawn_inner(Box::pin(future))
        } else {
            self.spawn_inner(future)
        }
    }

    pub(crate) fn spawn_inner<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.built_in.check("spawn");
        let (task, notified, join) = task::new_task(future, self.clone(), true);
        let task = task.expect("owned tasks have a list reference");
        if let Some(notified) = self.shared.owned.bind(task, notified) {
            worker::with_worker(|cx| match cx {
                Some(cx) if std::ptr::eq(cx.shared(), &*self.shared) => {
                    cx.count_spawn();
                    cx.schedule_local(notified, false)
                }
                _ => {
                    self.shared.remote.spawns.fetch_add(1, Relaxed);
                    self.shared.push_remote(notified)
                }
            });
        }
        join
    }

    /// Queues `f` to run on one of the runtime's workers, behind what is already queued
    /// there; see [`crate::callback::defer`].
    ///
    /// From a worker of this runtime, `f` goes to the back of that worker's local queue
    /// (never the LIFO slot), so deferred callbacks and yielding tasks run in the order
    /// they were queued; from any other thread, to the global queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.handle().defer(move || tx.send(7).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 7);
    /// ```
    pub fn defer<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.built_in.check("defer");
        self.schedule_task(task::deferred::new(f), true)
    }

    /// Runs `f` on the blocking pool; see [`crate::task::spawn_blocking`].
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.shared.built_in.check("spawn_blocking");
        self.shared.blocking.spawn(self, f)
    }

    /// Runs `future` to completion on the current thread; see [`crate::Runtime::block_on`].
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.shared.built_in.check("block_on");
        let _enter = crate::context::enter_runtime();
        let _current = crate::context::set_current(self.clone());
        crate::park::block_on(future)
    }

    /// The runtime's counters; see [`RuntimeMetrics`](crate::RuntimeMetrics).
    pub fn metrics(&self) -> crate::RuntimeMetrics {
        crate::RuntimeMetrics::new(self.clone())
    }

    /// A number naming this runtime, unique among the runtimes this process builds (never
    /// reused, even after a runtime is dropped): a key for state kept per runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = weft_runtime::Runtime::new()?;
    /// let b = weft_runtime::Runtime::new()?;
    /// assert_ne!(a.handle().id(), b.handle().id());
    /// assert_eq!(a.handle().id(), a.handle().clone().id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// From a worker of this runtime, onto its queue (LIFO slot unless `is_yield`); from
    /// anywhere else, onto the global queue.
    #[inline]
    pub(crate) fn schedule_task(&self, task: Notified, is_yield: bool) {
        worker::with_worker(|cx| match cx {
            Some(cx) if std::ptr::eq(cx.shared(), &*self.shared) => {
                cx.schedule_local(task, is_yield)
            }
            _ => self.shared.schedule_remote(task),
        })
    }
}

impl Schedule for Handle {
    #[inline]
    fn schedule(&self, task: Notified) {
        self.schedule_task(task, false)
    }

    #[inline]
    fn yield_now(&self, task: Notified) {
        worker::with_worker(|cx| match cx {
            Some(cx) if std::ptr::eq(cx.shared(), &*self.shared) => cx.requeue_local(task),
            _ => self.shared.schedule_remote(task),
        })
    }

    #[inline]
    fn repoll(&self) -> bool {
        worker::with_worker(|cx| match cx {
            Some(cx) if std::ptr::eq(cx.shared(), &*self.shared) => cx.repoll(),
            _ => false,
        })
    }

    fn release(&self, task: &Task) -> Option<Task> {
        self.shared.owned.remove(task)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.remotes.len())
            .finish_non_exhaustive()
    }
}

/// Returned by [`Handle::enter`]; leaves the runtime when dropped.
#[derive(Debug)]
pub struct EnterGuard<'a> {
    _guard: crate::context::SetCurrentGuard,
    _handle: std::marker::PhantomData<&'a Handle>,
}

impl Shared {
    /// The state for `remotes.len()` workers, before any of them runs.
    ///
    /// # Errors
    ///
    /// The operating system's error if the process id cannot be read (see `fork.rs`).
    pub(crate) fn new(
        remotes: Vec<Remote>,
        blocking: BlockingPool,
        config: Config,
        io_uring: bool,
    ) -> std::io::Result<Shared> {
        let n = remotes.len();
        Ok(Shared {
            remotes: remotes.into_boxed_slice(),
            inject: Inject::new(),
            idle: Idle::new(n),
            owned: OwnedTasks::new(n * 4),
            shutdown: AtomicBool::new(false),
            blocking,
            config,
            io_uring,
            remote: CachePadded::new(RemoteCounts::default()),
            running: Mutex::new(0),
            exited: Condvar::new(),
            built_in: crate::fork::BuiltIn::here()?,
            id: next_runtime_id(),
        })
    }

    /// Each worker as the other threads see it.
    pub(crate) fn remotes(&self) -> &[Remote] {
        &self.remotes
    }

    /// The global queue.
    pub(crate) fn inject(&self) -> &Inject {
        &self.inject
    }

    /// Parked/searching accounting.
    pub(crate) fn idle(&self) -> &Idle {
        &self.idle
    }

    /// Every task spawned and not yet completed.
    pub(crate) fn owned(&self) -> &OwnedTasks {
        &self.owned
    }

    /// The pool `spawn_blocking` and the file backend's blocking jobs run on.
    pub(crate) fn blocking(&self) -> &BlockingPool {
        &self.blocking
    }

    /// Whether the workers park on io_uring (and file ops may use their rings).
    pub(crate) fn io_uring(&self) -> bool {
        self.io_uring
    }

    /// Tasks spawned or woken from threads that are not this runtime's workers.
    pub(crate) fn remote_schedules(&self) -> u64 {
        self.remote.spawns.load(Relaxed) + self.remote.others.load(Relaxed)
    }

    /// Tasks spawned from threads that are not workers (workers count their own).
    pub(crate) fn remote_spawns(&self) -> u64 {
        self.remote.spawns.load(Relaxed)
    }

    /// Whether this is a forked child of the process the runtime was built in.
    pub(crate) fn is_forked(&self) -> bool {
        self.built_in.is_forked()
    }

    /// Counts a worker thread about to start; [`Shared::wait_for_workers`] waits for it to
    /// exit (through `worker::exit_core`) or for [`Shared::worker_not_started`].
    pub(crate) fn worker_starting(&self) {
        *self.running.lock() += 1;
    }

    /// Takes back [`Shared::worker_starting`] for a thread that could not be spawned.
    pub(crate) fn worker_not_started(&self) {
        *self.running.lock() -= 1;
    }

    /// Sets the shutdown flag and wakes every worker, so each sees it and exits.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Release);
        for r in self.remotes.iter() {
            r.unpark.unpark();
        }
    }

    /// Waits until every worker has exited, or until `deadline`; returns whether all did.
    pub(crate) fn wait_for_workers(&self, deadline: Option<std::time::Instant>) -> bool {
        let mut running = self.running.lock();
        while *running > 0 {
            match deadline {
                None => self.exited.wait(&mut running),
                Some(d) => {
                    if self.exited.wait_until(&mut running, d).timed_out() {
                        break;
                    }
                }
            }
        }
        *running == 0
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    /// From a thread that is not one of this runtime's workers.
    pub(crate) fn schedule_remote(&self, task: Notified) {
        self.remote.others.fetch_add(1, Relaxed);
        self.push_remote(task);
    }

    /// [`Shared::schedule_remote`] without the count (a spawn, counted as one).
    fn push_remote(&self, task: Notified) {
        self.inject.push(task);
        // No fence: the push's last RMW pairs with the parker's (`has_remote_work`).
        if let Some(index) = self.idle.worker_to_notify_after_push() {
            self.remotes[index].unpark.unpark();
        }
    }

    /// Wakes one parked worker if there is work no searcher will find.
    pub(crate) fn notify_parked(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.remotes[index].unpark.unpark();
        }
    }

    /// A worker's wheel for a timer first polled on a thread with no wheel (a blocking-pool
    /// or foreign thread): spread over the workers by thread.
    pub(crate) fn remote_timer(&self) -> TimerHandle {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::thread::current().id().hash(&mut h);
        let i = h.finish() as usize % self.remotes.len();
        self.remotes[i].timer.clone()
    }

    /// Whether any queue another worker could take from is non-empty: a parker's re-check,
    /// after its write of the idle state.
    pub(crate) fn has_remote_work(&self) -> bool {
        // Pairs with the RMW that ends every global-queue push, so that a remote notify
        // needs no fence (`Idle::worker_to_notify_after_push`).
        self.inject.sync_with_pushes();
        !self.inject.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }
}
