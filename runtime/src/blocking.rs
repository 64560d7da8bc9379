//! The blocking pool: threads for closures that block (file system calls without io_uring,
//! CPU-heavy work, foreign blocking APIs), so they never stall a worker.
//!
//! A job is a task whose future calls the closure once; it is queued (FIFO) under one mutex
//! and run by an idle pool thread, or by a new thread while fewer than `max_threads` exist.
//! Idle threads exit after `keep_alive`. At shutdown, queued jobs are dropped unrun (their
//! handles report cancellation) and running ones are waited for, up to the runtime's
//! shutdown timeout.
//!
//! **File system jobs are waited for only up to [`IO_JOB_GRACE`].** The fallback driver's
//! `weft::fs` calls (and the callback API's) are pool jobs too, and some never return: an
//! `open` of a FIFO with no writer, a read of a FIFO or terminal that gets no data, a call
//! on a hung network mount. Their futures are gone by then (their tasks were dropped), so
//! nothing would ever end them; a pool thread still in one after the grace period is
//! detached, finishes (or not) on its own, and holds the job's buffer and descriptor until
//! then. A job from [`spawn_blocking`] is the user's: it is waited for as before, without
//! a bound when the runtime is dropped.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::runtime::ThreadHooks;
use crate::scheduler::Handle;
use crate::task::{self, JoinHandle, Notified, Schedule, Task};

/// How long shutdown waits for a running file system job before detaching its thread (see
/// the module docs).
pub(crate) const IO_JOB_GRACE: Duration = Duration::from_secs(1);

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    condvar: Condvar,
    all_exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    hooks: ThreadHooks,
}

struct State {
    /// Jobs, each with whether it is a file system job (see the module docs).
    queue: VecDeque<(Notified, bool)>,
    /// Threads running a file system job.
    io_running: usize,
    num_threads: usize,
    num_idle: usize,
    /// Wake-ups handed to idle threads and not yet taken.
    num_notify: usize,
    shutdown: bool,
    next_id: usize,
    threads: HashMap<usize, std::thread::JoinHandle<()>>,
}

/// The future of a blocking job: calls the closure on its first poll.
struct BlockingTask<F>(Option<F>);

impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("blocking job polled after completion");
        Poll::Ready(f())
    }
}

/// Blocking jobs are queued once and run once; nothing ever wakes them.
struct BlockingSchedule;

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        // Unreachable: a blocking job's waker is never cloned, and `abort` of a queued or
        // running job only marks it. Dropping the entry is the safe answer if it ever happens.
        debug_assert!(false, "a blocking job was scheduled");
        drop(task);
    }

    fn release(&self, _task: &Task) -> Option<Task> {
        None
    }
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize, keep_alive: Duration, hooks: ThreadHooks) -> Self {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    io_running: 0,
                    num_threads: 0,
                    num_idle: 0,
                    num_notify: 0,
                    shutdown: false,
                    next_id: 0,
                    threads: HashMap::new(),
                }),
                condvar: Condvar::new(),
                all_exited: Condvar::new(),
                max_threads,
                keep_alive,
                hooks,
            }),
        }
    }

    pub(crate) fn spawn<F, R>(&self, handle: &Handle, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_job(handle, f, false)
    }

    /// Queues a file system call: like [`spawn`](BlockingPool::spawn), but shutdown waits
    /// for it only up to [`IO_JOB_GRACE`] (see the module docs).
    pub(crate) fn spawn_io<F, R>(&self, handle: &Handle, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_job(handle, f, true)
    }

    fn spawn_job<F, R>(&self, handle: &Handle, f: F, io: bool) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (_, notified, join) = task::new_task(BlockingTask(Some(f)), BlockingSchedule, false);
        let mut state = self.inner.state.lock();
        if state.shutdown {
            drop(state);
            notified.shutdown();
            return join;
        }
        state.queue.push_back((notified, io));
        if state.num_idle > state.num_notify {
            state.num_notify += 1;
            drop(state);
            self.inner.condvar.notify_one();
        } else if state.num_threads < self.inner.max_threads {
            let id = state.next_id;
            state.next_id += 1;
            let inner = self.inner.clone();
            let rt = handle.clone();
            let mut builder =
                std::thread::Builder::new().name(format!("{}-blocking", self.inner.hooks.name));
            if let Some(size) = self.inner.hooks.stack_size {
                builder = builder.stack_size(size);
            }
            match builder.spawn(move || inner.run(id, rt)) {
                Ok(t) => {
                    state.num_threads += 1;
                    state.threads.insert(id, t);
                }
                // No thread: the job stays queued for an existing thread, if any. With none,
                // it would never run, so fail it loudly rather than hang the caller.
                Err(e) if state.num_threads == 0 => {
                    let job = state.queue.pop_back();
                    drop(state);
                    drop(job);
                    panic!("weft: could not start a blocking-pool thread: {e}");
                }
                Err(_) => {}
            }
        }
        join
    }

    /// Number of pool threads alive.
    pub(crate) fn num_threads(&self) -> usize {
        self.inner.state.lock().num_threads
    }

    /// Jobs waiting for a thread.
    pub(crate) fn queue_depth(&self) -> usize {
        self.inner.state.lock().queue.len()
    }

    /// Drops queued jobs, then waits for running ones until `deadline`, and for running
    /// file system jobs until [`IO_JOB_GRACE`] from now at most.
    ///
    /// Called from one of this pool's own threads (a job dropped the last reference to
    /// its runtime), it waits for the others but not for itself, and leaves its own
    /// thread to finish the job and exit on its own.
    pub(crate) fn shutdown(&self, deadline: Option<Instant>) {
        // The thread context's `pool_thread` and `in_io_job` (`context.rs`).
        let (pool, in_io) =
            crate::context::with(|cx| (cx.pool_thread().get(), cx.in_io_job().get()))
                .unwrap_or((std::ptr::null(), false));
        let me = pool == Arc::as_ptr(&self.inner).cast();
        let myself = usize::from(me);
        let my_io = usize::from(me && in_io);
        let io_deadline = Instant::now() + IO_JOB_GRACE;
        let io_deadline = deadline.map_or(io_deadline, |d| d.min(io_deadline));
        let mut state = self.inner.state.lock();
        state.shutdown = true;
        let queued: Vec<(Notified, bool)> = state.queue.drain(..).collect();
        drop(state);
        for (job, _) in queued {
            job.shutdown();
        }
        self.inner.condvar.notify_all();
        let mut state = self.inner.state.lock();
        loop {
            let others = state.num_threads - myself;
            let io = state.io_running - my_io;
            if others == 0 {
                break;
            }
            // Only file system jobs left: wait for them up to their bound.
            let until = if others == io {
                Some(io_deadline)
            } else {
                deadline
            };
            match until {
                None => self.inner.all_exited.wait(&mut state),
                Some(d) => {
                    if self.inner.all_exited.wait_until(&mut state, d).timed_out()
                        && (Some(d) == deadline || others == io)
                    {
                        break;
                    }
                }
            }
        }
        let threads: Vec<_> = state.threads.drain().map(|(_, t)| t).collect();
        let exited = state.num_threads == myself;
        drop(state);
        if exited {
            let current = std::thread::current().id();
            for t in threads {
                // Our own handle is dropped (detached): a thread cannot join itself.
                if t.thread().id() != current {
                    let _ = t.join();
                }
            }
        }
    }
}

impl Inner {
    fn run(self: Arc<Self>, id: usize, rt: Handle) {
        crate::context::with(|cx| cx.pool_thread().set(Arc::as_ptr(&self).cast()));
        let _current = crate::context::set_current(rt);
        // A panicking hook must not take a queued job's only thread with it: the panic has
        // been reported by the panic hook; the thread works anyway.
        if let Some(f) = &self.hooks.on_start {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f()));
        }
        let mut state = self.state.lock();
        loop {
            if let Some((job, io)) = state.queue.pop_front() {
                state.io_running += usize::from(io);
                drop(state);
                crate::context::with(|cx| cx.in_io_job().set(io));
                job.run();
                crate::context::with(|cx| cx.in_io_job().set(false));
                state = self.state.lock();
                state.io_running -= usize::from(io);
                continue;
            }
            if state.shutdown {
                break;
            }
            state.num_idle += 1;
            let timed_out = self
                .condvar
                .wait_for(&mut state, self.keep_alive)
                .timed_out();
            state.num_idle -= 1;
            if state.num_notify > 0 {
                state.num_notify -= 1;
            } else if timed_out && state.queue.is_empty() && !state.shutdown {
                // Idle for `keep_alive`: leave (detaching our own join handle).
                state.threads.remove(&id);
                break;
            }
        }
        state.num_threads -= 1;
        // At shutdown every exit may be the one the shutdown waits for (the last thread not
        // in a file system job); otherwise only the last one is.
        let last = state.num_threads == 0 || state.shutdown;
        drop(state);
        if let Some(f) = &self.hooks.on_stop {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f()));
        }
        if last {
            self.all_exited.notify_all();
        }
    }
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPool").finish_non_exhaustive()
    }
}

/// Runs a blocking closure on the current runtime's blocking pool and returns a handle to
/// its result.
///
/// Use it for work that would stall a worker: blocking system calls, synchronous libraries,
/// long computations. The pool grows up to the builder's `max_blocking_threads`; idle
/// threads leave after `thread_keep_alive`. Aborting the handle cancels a job that has not
/// started; one that has started runs to the end.
///
/// Dropping the runtime waits for a job that has started, however long it takes. The
/// pool's own file system jobs (`weft::fs` on the fallback driver) are different: some
/// never return (an `open` of a FIFO with no writer), so dropping the runtime waits for
/// them one second at most and then leaves their threads to finish on their own.
///
/// # Panics
///
/// Outside a runtime (see [`Handle::current`]).
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let len = rt.block_on(async {
///     weft_runtime::task::spawn_blocking(|| std::fs::read("Cargo.toml").map(|b| b.len()))
///         .await
///         .unwrap()
/// });
/// assert!(len.unwrap() > 0);
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match crate::context::with_current(|h| h.spawn_blocking(f)) {
        Some(j) => j,
        None => panic!(
            "weft::task::spawn_blocking: {}",
            crate::scheduler::NO_RUNTIME
        ),
    }
}
