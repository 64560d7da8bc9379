//! Runtime metrics: per-worker counters and queue depths.
//!
//! Each worker's counters live in their own cache line and are written only by that worker
//! (a relaxed load and store, no locked instruction), so counting costs the hot path almost
//! nothing. Readers on other threads see values that may lag by a few events.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::scheduler::Handle;

/// The counters one worker writes.
#[derive(Default)]
pub(crate) struct WorkerCounters {
    pub(crate) polls: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) steal_operations: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) lifo_hits: AtomicU64,
    pub(crate) local_schedules: AtomicU64,
    pub(crate) overflows: AtomicU64,
    pub(crate) spawns: AtomicU64,
}

/// A snapshot of one worker's counters; see [`RuntimeMetrics::worker`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Tasks polled.
    pub polls: u64,
    /// Tasks taken from other workers' queues.
    pub steals: u64,
    /// Attempts to steal from another worker (successful or not).
    pub steal_operations: u64,
    /// Times the worker parked for lack of work.
    pub parks: u64,
    /// Polls of a task taken from the LIFO slot.
    pub lifo_hits: u64,
    /// Tasks woken or spawned from this worker onto its own queue.
    pub local_schedules: u64,
    /// Times the local queue overflowed and moved half its tasks to the global queue.
    pub overflows: u64,
    /// Tasks in the local queue now (not counting the LIFO slot).
    pub local_queue_depth: usize,
    /// I/O operations submitted to this worker's io_uring (0 on the fallback driver).
    pub io_submissions: u64,
}

/// A view of a runtime's counters. Obtained from [`Runtime::metrics`](crate::Runtime::metrics).
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::builder().worker_threads(2).build().unwrap();
/// rt.block_on(async {
///     for _ in 0..100 {
///         weft_runtime::spawn(async {}).await.unwrap();
///     }
/// });
/// let m = rt.metrics();
/// assert_eq!(m.spawned_tasks_count(), 100);
/// assert!(m.total().polls >= 100);
/// ```
#[derive(Clone)]
pub struct RuntimeMetrics {
    handle: Handle,
}

impl RuntimeMetrics {
    pub(crate) fn new(handle: Handle) -> Self {
        RuntimeMetrics { handle }
    }

    /// Whether the workers park on io_uring rings (`false`: the fallback driver).
    pub fn io_uring(&self) -> bool {
        self.handle.shared.io_uring()
    }

    /// Worker threads.
    pub fn num_workers(&self) -> usize {
        self.handle.shared.remotes().len()
    }

    /// Tasks spawned and not yet completed.
    pub fn num_alive_tasks(&self) -> usize {
        self.handle.shared.owned().len()
    }

    /// Tasks ever spawned (not counting blocking jobs).
    pub fn spawned_tasks_count(&self) -> u64 {
        let shared = &self.handle.shared;
        let local: u64 = shared
            .remotes()
            .iter()
            .map(|r| r.counters.spawns.load(Relaxed))
            .sum();
        local + shared.remote_spawns()
    }

    /// Tasks spawned or woken from threads that are not this runtime's workers.
    pub fn remote_schedule_count(&self) -> u64 {
        self.handle.shared.remote_schedules()
    }

    /// Tasks in the global queue now.
    pub fn global_queue_depth(&self) -> usize {
        self.handle.shared.inject().len()
    }

    /// Workers parked now.
    pub fn num_parked_workers(&self) -> usize {
        self.handle.shared.idle().num_parked()
    }

    /// Blocking-pool threads alive now.
    pub fn num_blocking_threads(&self) -> usize {
        self.handle.shared.blocking().num_threads()
    }

    /// Blocking jobs waiting for a thread.
    pub fn blocking_queue_depth(&self) -> usize {
        self.handle.shared.blocking().queue_depth()
    }

    /// Worker `index`'s counters.
    ///
    /// # Panics
    ///
    /// If `index >= num_workers()`.
    pub fn worker(&self, index: usize) -> WorkerMetrics {
        let r = &self.handle.shared.remotes()[index];
        let c = &r.counters;
        WorkerMetrics {
            polls: c.polls.load(Relaxed),
            steals: c.steals.load(Relaxed),
            steal_operations: c.steal_operations.load(Relaxed),
            parks: c.parks.load(Relaxed),
            lifo_hits: c.lifo_hits.load(Relaxed),
            local_schedules: c.local_schedules.load(Relaxed),
            overflows: c.overflows.load(Relaxed),
            local_queue_depth: r.stealer.len(),
            io_submissions: r.ring.as_ref().map_or(0, |h| h.submitted()),
        }
    }

    /// Every worker's counters.
    pub fn workers(&self) -> Vec<WorkerMetrics> {
        (0..self.num_workers()).map(|i| self.worker(i)).collect()
    }

    /// The counters summed over all workers.
    pub fn total(&self) -> WorkerMetrics {
        self.workers()
            .into_iter()
            .fold(WorkerMetrics::default(), |a, w| WorkerMetrics {
                polls: a.polls + w.polls,
                steals: a.steals + w.steals,
                steal_operations: a.steal_operations + w.steal_operations,
                parks: a.parks + w.parks,
                lifo_hits: a.lifo_hits + w.lifo_hits,
                local_schedules: a.local_schedules + w.local_schedules,
                overflows: a.overflows + w.overflows,
                local_queue_depth: a.local_queue_depth + w.local_queue_depth,
                io_submissions: a.io_submissions + w.io_submissions,
            })
    }
}

impl fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeMetrics")
            .field("num_workers", &self.num_workers())
            .field("num_alive_tasks", &self.num_alive_tasks())
            .field("spawned_tasks_count", &self.spawned_tasks_count())
            .field("remote_schedule_count", &self.remote_schedule_count())
            .field("global_queue_depth", &self.global_queue_depth())
            .field("workers", &self.workers())
            .finish()
    }
}
