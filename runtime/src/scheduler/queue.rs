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
//!
//! Under `cfg(loom)` the local bound is 4, and `loom_tests` below drive the overflow path at
//! that bound against a concurrent `close_and_drain` (`ci/loom.sh`). crossbeam's deque and
//! injector are not loom-instrumented: the models explore the interleavings of `Inject`'s
//! close protocol around the spill, not the deque's internals (crossbeam tests those).

use crossbeam_deque::{Injector, Steal, Worker};

use crate::loom::sync::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::task::Notified;

/// Above this many queued tasks, a push moves the oldest half to the global queue.
///
/// Large enough that a burst of spawns from one poll (an event fanned out to 1 000
/// handlers, `mixed`) stays local, where the idle worker steals its share in batches: at
/// 256, such a burst on two workers moved about 770 of its 1 000 tasks through the global
/// queue, three atomic read-modify-writes each on the way in (`examples/ready_op.rs
/// burst`, two workers, callgrind: 1 938 instructions per op at 256, 1 867 at 1 024,
/// 1 812 unbounded; 6 spills per 1 000 ops at 256, none at 1 024 and above).
#[cfg(not(loom))]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 4096;
#[cfg(loom)]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 4;

/// The global queue of `T`s (tasks; the loom model below queues drop-counting payloads).
pub(crate) struct Inject<T = Notified> {
    queue: Injector<T>,
    closed: AtomicBool,
    pushing: AtomicUsize,
}

impl<T> Inject<T> {
    pub(crate) fn new() -> Inject<T> {
        Inject {
            queue: Injector::new(),
            closed: AtomicBool::new(false),
            pushing: AtomicUsize::new(0),
        }
    }

    /// Queues `task`; after close, drops it instead (every task is complete by then).
    ///
    /// It ends with a read-modify-write of `pushing`, which
    /// [`sync_with_pushes`](Inject::sync_with_pushes) pairs with: see
    /// `Idle::worker_to_notify_after_push`.
    pub(crate) fn push(&self, task: T) {
        self.push_with(move || self.queue.push(task));
    }

    /// The push protocol around `publish`, which queues the entry (the loom model of the
    /// idle handshake publishes a flag instead); after close, `publish` is dropped unrun.
    pub(crate) fn push_with(&self, publish: impl FnOnce()) {
        self.pushing.fetch_add(1, SeqCst);
        if self.closed.load(SeqCst) {
            self.pushing.fetch_sub(1, SeqCst);
            drop(publish);
            return;
        }
        publish();
        self.pushing.fetch_sub(1, SeqCst);
    }

    /// Orders this thread after every push whose final RMW on `pushing` came before this
    /// one, and every later push's notify after this thread's earlier writes (a parker's
    /// state update): called by a parker before it re-checks the queue.
    pub(crate) fn sync_with_pushes(&self) {
        self.pushing.fetch_add(0, SeqCst);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// One task from the global queue.
    pub(crate) fn pop(&self) -> Option<T> {
        loop {
            match self.queue.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    /// Moves a batch into `local` and returns one task of it.
    pub(crate) fn pop_batch(&self, local: &Worker<T>) -> Option<T> {
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
        // `pushing` is read with an RMW, so that a push's `fetch_add` either comes first in
        // `pushing`'s order (and is waited for) or reads from this RMW, which orders the
        // `closed` store before the push's check. That holds with acquire/release alone,
        // which is what loom checks (`loom_overflow_spills_while_closing`).
        while self.pushing.fetch_add(0, SeqCst) != 0 {
            crate::loom::thread::yield_now();
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
pub(crate) fn push_local<T>(
    local: &Worker<T>,
    inject: &Inject<T>,
    task: T,
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

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// A payload that counts its drops, so a task left behind (or dropped twice) shows.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A worker fills its queue to the loom capacity and one more push spills the oldest
    /// half into the global queue while another thread closes and drains it: whatever the
    /// interleaving, nothing is left in the global queue once both are done, and every
    /// payload is dropped exactly once.
    #[test]
    fn loom_overflow_spills_while_closing() {
        loom::model(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let inject = Arc::new(Inject::new());
            let (d2, i2) = (drops.clone(), inject.clone());
            let worker = loom::thread::spawn(move || {
                let local = Worker::new_fifo();
                let mut moved = 0;
                for _ in 0..=LOCAL_QUEUE_CAPACITY {
                    moved += push_local(&local, &i2, Counted(d2.clone()), LOCAL_QUEUE_CAPACITY);
                }
                // The push that found the queue over its bound moved half of what it held.
                let pushed = LOCAL_QUEUE_CAPACITY + 1;
                assert_eq!(moved, pushed / 2);
                assert_eq!(local.len(), pushed - moved);
                local
            });
            inject.close_and_drain();
            let local = worker.join().unwrap();
            assert!(
                inject.is_empty(),
                "an entry was left behind after close_and_drain"
            );
            while let Some(t) = local.pop() {
                drop(t);
            }
            assert_eq!(drops.load(SeqCst), LOCAL_QUEUE_CAPACITY + 1);
        });
    }

    /// Below the bound nothing spills; at one past it the oldest half moves, in order.
    #[test]
    fn loom_overflow_moves_the_oldest_half() {
        loom::model(|| {
            let inject = Inject::new();
            let local = Worker::new_fifo();
            for i in 0..LOCAL_QUEUE_CAPACITY {
                assert_eq!(push_local(&local, &inject, i, LOCAL_QUEUE_CAPACITY), 0);
            }
            let moved = push_local(&local, &inject, LOCAL_QUEUE_CAPACITY, LOCAL_QUEUE_CAPACITY);
            let spilled: Vec<usize> = std::iter::from_fn(|| inject.pop()).collect();
            assert_eq!(spilled, (0..moved).collect::<Vec<_>>());
            assert_eq!(local.pop(), Some(moved));
        });
    }
}
