//! The run queues: the global injector, and the policy around each worker's local deque.
//!
//! Local queues are Chase–Lev work-stealing deques (`crossbeam_deque::Worker`, after Chase and
//! Lev, "Dynamic Circular Work-Stealing Deque", SPAA 2005, and Lê et al., "Correct and
//! Efficient Work-Stealing for Weak Memory Models", PPoPP 2013), used FIFO so that a worker
//! runs its tasks in the order they were queued and thieves take the oldest half.
//!
//! crossbeam's deque grows without bound; weft bounds it by policy: when a push finds more
//! than [`LOCAL_QUEUE_CAPACITY`] tasks queued, the oldest half moves to the global queue, where
//! every worker (and every parked worker, once woken) can get at it. A deep local queue is
//! work that one core is hoarding. The only worker of a one-worker runtime hoards from
//! nobody, and the spilled half would only come back out of order, so its queue is left
//! unbounded and stays FIFO (and so do its deferred callbacks): see [`local_capacity`].
//! The wakes a worker's own park runs skip the bound too (`worker.rs`, "Wake-ups").
//!
//! The global queue (`Inject`) is crossbeam's lock-free `Injector` plus a close protocol:
//! a push announces itself in `pushing` before it checks `closed`, and closing waits for
//! `pushing` to drain, so after `close_and_drain` returns no entry can be added and none is
//! left behind (each entry holds a task reference, so one left behind would leak the task).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use crossbeam_deque::{Injector, Steal, Worker};

use crate::task::Notified;

/// Above this many queued tasks, a push moves the oldest half to the global queue.
#[cfg(not(loom))]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 256;
#[cfg(loom)]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 4;

pub(crate) struct Inject {
    queue: Injector<Notified>,
    closed: AtomicBool,
    pushing: AtomicUsize,
}

impl Inject {
    pub(crate) fn new() -> Inject {
        Inject {
            queue: Injector::new(),
            closed: AtomicBool::new(false),
            pushing: AtomicUsize::new(0),
        }
    }

    /// Queues `task`; after close, drops it instead (every task is complete by then).
    pub(crate) fn push(&self, task: Notified) {
        self.pushing.fetch_add(1, SeqCst);
        if self.closed.load(SeqCst) {
            self.pushing.fetch_sub(1, SeqCst);
            drop(task);
            return;
        }
        self.queue.push(task);
        self.pushing.fetch_sub(1, SeqCst);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// One task from the global queue.
    pub(crate) fn pop(&self) -> Option<Notified> {
        loop {
            match self.queue.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    /// Moves a batch into `local` and returns one task of it.
    pub(crate) fn pop_batch(&self, local: &Worker<Notified>) -> Option<Notified> {
        if self.queue.is_empty() {
            return None;
        }
        loop {
            match self.queue.steal_batch_and_pop(local) {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    pub(crate) fn close_and_drain(&self) {
        self.closed.store(true, SeqCst);
        while self.pushing.load(SeqCst) != 0 {
            std::thread::yield_now();
        }
        while let Some(t) = self.pop() {
            drop(t);
        }
    }
}

/// The bound on each local queue of a runtime with `workers` workers: none for one worker
/// (nobody else could take a spilled half), else [`LOCAL_QUEUE_CAPACITY`].
pub(crate) fn local_capacity(workers: usize) -> usize {
    if workers == 1 {
        usize::MAX
    } else {
        LOCAL_QUEUE_CAPACITY
    }
}

/// Pushes to a local queue, moving the oldest half to `inject` if it holds more than
/// `capacity` (see [`local_capacity`]). Returns how many tasks were moved.
pub(crate) fn push_local(
    local: &Worker<Notified>,
    inject: &Inject,
    task: Notified,
    capacity: usize,
) -> usize {
    local.push(task);
    if local.len() <= capacity {
        return 0;
    }
    let half = local.len() / 2;
    for _ in 0..half {
        match local.pop() {
            Some(t) => inject.push(t),
            None => break,
        }
    }
    half
}
