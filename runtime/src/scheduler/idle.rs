//! Which workers are parked, and how many are searching for work.
//!
//! One atomic word counts *unparked* workers (upper bits) and *searching* workers (lower 16
//! bits); a mutex-protected list holds the indices of parked workers. The rules:
//!
//! - At most half the workers search at once (`2 * searching < workers`), so stealing does not
//!   turn into every idle core hammering every queue.
//! - A worker is woken only if *no* worker is searching (a searcher will find the work) and
//!   some worker is parked: one at a time, never all (no thundering herd). The woken worker
//!   is counted as searching *before* it runs, so a burst of spawns wakes one worker, which
//!   wakes the next only when it finds work itself.
//! - The last searcher to park re-checks every queue after it has stopped counting as a
//!   searcher; see `worker.rs` for why that means no wake-up is lost.
//!
//! It also keeps the *watch*: the earliest instant at which some parked worker will wake by
//! itself to look at the other workers' timing wheels (`worker.rs`, "Stalled workers").
//!
//! Its atomics and lock come from `crate::loom`; the `loom_tests` below model the rules above
//! (`ci/loom.sh`).

use std::time::Instant;

use crate::loom::sync::{AtomicU64, AtomicUsize, Mutex, Ordering::SeqCst, fence};

const UNPARK_SHIFT: usize = 16;
const SEARCH_MASK: usize = (1 << UNPARK_SHIFT) - 1;

pub(crate) struct Idle {
    state: AtomicUsize,
    num_workers: usize,
    sleepers: Mutex<Vec<usize>>,
    /// Nanoseconds after `base` at which the earliest watching parker wakes (`u64::MAX`:
    /// none). Lowered by each watcher before it parks, restored by it when it wakes unless
    /// another lowered it meanwhile: it may be earlier than the truth, never later.
    watch: AtomicU64,
    base: Instant,
}

fn searching(s: usize) -> usize {
    s & SEARCH_MASK
}

fn unparked(s: usize) -> usize {
    s >> UNPARK_SHIFT
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        assert!(num_workers < SEARCH_MASK, "too many workers");
        Idle {
            state: AtomicUsize::new(num_workers << UNPARK_SHIFT),
            num_workers,
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
            watch: AtomicU64::new(u64::MAX),
            base: Instant::now(),
        }
    }

    fn watch_nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// A parker will wake by itself at `at` to look at the wheels; returns the token to
    /// pass to [`end_watch`](Idle::end_watch).
    pub(crate) fn begin_watch(&self, at: Instant) -> u64 {
        let t = self.watch_nanos(at);
        self.watch.fetch_min(t, SeqCst);
        t
    }

    /// The parker of `begin_watch` is awake again.
    pub(crate) fn end_watch(&self, token: u64) {
        let _ = self.watch.compare_exchange(token, u64::MAX, SeqCst, SeqCst);
    }

    /// Whether some parked worker will look at the wheels by `at` by itself.
    pub(crate) fn watched_by(&self, at: Instant) -> bool {
        self.watch.load(SeqCst) <= self.watch_nanos(at)
    }

    fn notify_should_wakeup(&self) -> bool {
        let s = self.state.load(SeqCst);
        searching(s) == 0 && unparked(s) < self.num_workers
    }

    /// The parked worker to wake for new work, if one should be woken. It is removed from
    /// the sleepers and counted as unparked and searching.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        // The notifier published its work with an ordinary store (a deque push is a
        // release store) and now reads the state; a parker writes the state, then re-checks
        // the queues (`transition_worker_to_parked`). That is a store/load handshake on two
        // locations: without a fence on each side, each may read the other's location from
        // before the other's write (store buffering) and the wake-up is lost. The fence
        // here costs no write to the shared state line (an RMW would bounce it between
        // cores on every spawn); `loom_last_searcher_parks_while_work_arrives` checks it.
        fence(SeqCst);
        self.pick_worker()
    }

    /// [`worker_to_notify`](Idle::worker_to_notify) for work published through the global
    /// queue, with no fence.
    ///
    /// `Inject::push` ends with a read-modify-write of the queue's `pushing` counter, and a
    /// parker reads that counter with a read-modify-write (`Inject::sync_with_pushes`) after
    /// its own write of the state and before it re-checks the global queue. The two RMWs
    /// on one location are ordered: if the push's comes first, the parker's synchronises
    /// with it and its re-check sees the work; if the parker's comes first, the push's
    /// synchronises with it and the state load below sees the parker parked. Either way the
    /// work is found, and the remote spawn path, which already pays for those RMWs, pays for
    /// no fence; `loom_last_searcher_parks_while_remote_work_arrives` checks it.
    pub(crate) fn worker_to_notify_after_push(&self) -> Option<usize> {
        self.pick_worker()
    }

    fn pick_worker(&self) -> Option<usize> {
        if !self.notify_should_wakeup() {
            return None;
        }
        let mut sleepers = self.sleepers.lock();
        if !self.notify_should_wakeup() {
            return None;
        }
        let index = sleepers.pop()?;
        self.state.fetch_add(1 | (1 << UNPARK_SHIFT), SeqCst);
        Some(index)
    }

    /// A worker wants to steal. `false`: enough workers search already.
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let s = self.state.load(SeqCst);
        if 2 * searching(s) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// A searcher found work. `true` if it was the last searcher (the caller then wakes
    /// another worker, since more work may be waiting).
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, SeqCst);
        debug_assert!(searching(prev) > 0);
        searching(prev) == 1
    }

    /// A worker parks. `true` if it was the last searcher (the caller must then re-check
    /// all queues before blocking).
    pub(crate) fn transition_worker_to_parked(&self, index: usize, is_searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock();
        let dec = (1 << UNPARK_SHIFT) + usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        // The parker's side of the handshake in `worker_to_notify`: the caller's re-check
        // of the queues comes after this fence.
        fence(SeqCst);
        debug_assert!(unparked(prev) > 0);
        sleepers.push(index);
        is_searching && searching(prev) == 1
    }

    /// A worker returned from park on its own (time-out, spurious wake, a stale token).
    /// If it is still listed as a sleeper, unlists it and counts it unparked (not
    /// searching) and returns `true`; `false` means it was woken by `worker_to_notify` and
    /// is already counted as a searcher.
    pub(crate) fn unpark_self(&self, index: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        match sleepers.iter().position(|&i| i == index) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.state.fetch_add(1 << UNPARK_SHIFT, SeqCst);
                true
            }
            None => false,
        }
    }

    /// Workers currently searching.
    #[cfg(test)]
    pub(crate) fn num_searching(&self) -> usize {
        searching(self.state.load(SeqCst))
    }

    /// Workers currently parked.
    pub(crate) fn num_parked(&self) -> usize {
        self.num_workers - unparked(self.state.load(SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_half_search_and_one_wakes_at_a_time() {
        let idle = Idle::new(4);
        assert!(idle.transition_worker_to_searching());
        assert!(idle.transition_worker_to_searching());
        assert!(!idle.transition_worker_to_searching());
        // Workers 2 and 3 park (not searching); a searcher exists, so nobody is woken.
        assert!(!idle.transition_worker_to_parked(2, false));
        assert!(!idle.transition_worker_to_parked(3, false));
        assert_eq!(idle.worker_to_notify(), None);
        // Both searchers park; the second is the last searcher.
        assert!(!idle.transition_worker_to_parked(0, true));
        assert!(idle.transition_worker_to_parked(1, true));
        assert_eq!(idle.num_parked(), 4);
        // New work wakes exactly one, which counts as searching: the next notify is a no-op.
        let first = idle.worker_to_notify().unwrap();
        assert_eq!(idle.num_searching(), 1);
        assert_eq!(idle.worker_to_notify(), None);
        // It finds work and was the last searcher: now another may be woken.
        assert!(idle.transition_worker_from_searching());
        let second = idle.worker_to_notify().unwrap();
        assert_ne!(first, second);
        // A spurious return of a still-listed worker unlists it.
        let listed = (0..4).find(|i| *i != first && *i != second).unwrap();
        assert!(idle.unpark_self(listed));
        assert!(!idle.unpark_self(first));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::{Arc, AtomicBool};

    /// No lost wake-up: the last searcher parks while another thread queues work and asks
    /// for a worker to wake. Either the parker's re-check (its `true` return) sees the
    /// work, or the notifier gets a parked worker to wake; and the counts stay consistent.
    #[test]
    fn loom_last_searcher_parks_while_work_arrives() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2));
            let work = Arc::new(AtomicBool::new(false));
            idle.transition_worker_to_parked(1, false);
            assert!(idle.transition_worker_to_searching());
            let (i2, w2) = (idle.clone(), work.clone());
            let notifier = loom::thread::spawn(move || {
                w2.store(true, SeqCst);
                i2.worker_to_notify()
            });
            let found = idle.transition_worker_to_parked(0, true) && work.load(SeqCst);
            let woken = notifier.join().unwrap();
            assert!(
                found || woken.is_some(),
                "work queued and nobody will look at it"
            );
            let listed = idle.sleepers.lock().len();
            assert_eq!(idle.num_parked(), listed);
        });
    }

    /// The same race with the work published through the global queue's push protocol and
    /// the fence-free notify of `Shared::schedule_remote`: the parker's RMW on `pushing`
    /// before its re-check is what keeps the wake-up (without it this model fails).
    #[test]
    fn loom_last_searcher_parks_while_remote_work_arrives() {
        use crate::scheduler::queue::Inject;
        use loom::sync::atomic::Ordering::{Acquire, Release};
        loom::model(|| {
            let idle = Arc::new(Idle::new(2));
            let inject = Arc::new(Inject::<()>::new());
            // Stands for the queue's contents: published with a release store, as a push
            // into crossbeam's injector is at best.
            let work = Arc::new(AtomicBool::new(false));
            idle.transition_worker_to_parked(1, false);
            assert!(idle.transition_worker_to_searching());
            let (i2, q2, w2) = (idle.clone(), inject.clone(), work.clone());
            let notifier = loom::thread::spawn(move || {
                q2.push_with(|| w2.store(true, Release));
                i2.worker_to_notify_after_push()
            });
            let found = idle.transition_worker_to_parked(0, true) && {
                inject.sync_with_pushes();
                work.load(Acquire)
            };
            let woken = notifier.join().unwrap();
            assert!(
                found || woken.is_some(),
                "work queued and nobody will look at it"
            );
        });
    }

    /// No thundering herd: two notifiers racing over two parked workers wake exactly one
    /// (the woken one counts as searching, which stops the other).
    #[test]
    fn loom_two_notifies_wake_one_worker() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2));
            idle.transition_worker_to_parked(0, false);
            idle.transition_worker_to_parked(1, false);
            let i2 = idle.clone();
            let t = loom::thread::spawn(move || i2.worker_to_notify());
            let a = idle.worker_to_notify();
            let b = t.join().unwrap();
            assert_eq!(usize::from(a.is_some()) + usize::from(b.is_some()), 1);
            assert_eq!(idle.num_searching(), 1);
            assert_eq!(idle.num_parked(), 1);
        });
    }

    /// A parked worker returning on its own (a time-out) races a notify that picks it:
    /// exactly one of them takes it off the sleepers, and it is counted unparked once.
    #[test]
    fn loom_unpark_self_races_notify() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2));
            idle.transition_worker_to_parked(0, false);
            let i2 = idle.clone();
            let t = loom::thread::spawn(move || i2.worker_to_notify());
            let by_itself = idle.unpark_self(0);
            let notified = t.join().unwrap();
            assert_ne!(by_itself, notified == Some(0));
            assert_eq!(idle.num_parked(), 0);
            assert!(idle.sleepers.lock().is_empty());
        });
    }
}
