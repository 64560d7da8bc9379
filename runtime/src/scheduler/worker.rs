//! The worker loop.
//!
//! # Protocol
//!
//! Each worker thread owns a `Core`: a local FIFO deque, a LIFO slot, a tick counter, a
//! random number generator and its driver (what it parks on). The loop, per tick:
//!
//! 1. Every `event_interval` ticks: check for shutdown, and poll the driver without blocking
//!    (`park(Some(0))`), so that I/O completions and timers are handled even when the worker
//!    never runs out of tasks; then share the yielded tasks if a worker is parked (see
//!    "Yielded tasks").
//! 2. Every `global_queue_interval` ticks, take one task from the global queue first, so that
//!    tasks spawned from outside cannot starve behind local work.
//! 3. Otherwise take the LIFO slot, unless it has run `max_lifo_polls` times in a row (two
//!    tasks waking each other would otherwise keep the worker to themselves): then the slot's
//!    task goes to the back of the local queue.
//! 4. Otherwise the `next` slot (see "Wake-ups"), then the local queue and the yielded
//!    tasks (see "Yielded tasks"); then a batch from the global queue.
//! 5. Nothing local: become a searcher (at most half the workers search at once) and steal
//!    half of a victim's queue, visiting victims from a random start; then the global queue.
//!    A searcher that finds work stops searching and, if it was the last searcher, wakes one
//!    parked worker, since there may be more.
//! 6. Still nothing: park. The worker stops counting as unparked (and as searching) and adds
//!    itself to the sleepers. If it was the last searcher it re-checks every queue and wakes a
//!    worker if it sees work: whoever queued that work looked at the counters before this
//!    worker stopped searching and so woke nobody; after this re-check, any new push sees
//!    zero searchers and wakes a sleeper itself. Then it blocks in the driver until unparked.
//!    On return it either was woken (already counted as a searcher) or returned by itself
//!    (then it unlists itself).
//!
//! # Stalled workers
//!
//! A worker's timers live in its own wheel, which it fires whenever it parks or runs its
//! maintenance step. A task that computes for a long time without yielding stops both, so
//! the other workers watch the wheels (the wheel's side is `weft_reactor::time`'s
//! "Take-over of a stalled wheel"):
//!
//! - A worker that found no work (after step 5) takes over every other wheel whose owner is
//!   *stalled* — awake, with due timers, and no firing pass for `STALL_TICKS` (2 ms) — and
//!   fires its due timers; their tasks land in its own queue, where it runs them next. It
//!   also reaps the posted completions of every other ring whose owner is awake with ops in
//!   flight and has not reaped for 2 ms (`UringHandle::reap_stalled`), with the same effect.
//!   On the fallback the same holds for every other worker's epoll with waits registered
//!   and no dispatch for 2 ms (`EpollHandle::reap_stalled`): an epoll counts as a ring
//!   below, a registered wait as an op in flight.
//! - A parking worker bounds its park by the earliest *take-over deadline* of the other
//!   wheels (the later of a wheel's earliest deadline and its owner's last pass, plus 2
//!   ms) and rings (an awake owner's last reap plus 2 ms, while it has ops in flight),
//!   and publishes that bound as the *watch* (`Idle`). With no timer pending on another
//!   worker and no op in flight on another awake worker's ring, it parks without a
//!   timeout: an idle runtime never wakes by itself.
//! - A poll that leaves its worker's wheel with a new earliest deadline, or its ring with
//!   new ops, and a worker's return from its own park with ops in flight, check that some
//!   parked worker will look by the take-over deadline; if none will (all are parked
//!   without a bound, or later than needed) one is woken, which parks again with the
//!   bound. Each side writes first (the wheel's earliest or the ring's counts; the idle
//!   count) and reads the other's after a `SeqCst` fence, so one of the two sees the other.
//!   A runtime's only worker skips this check: no other worker exists to take over.
//!
//! The cost: while another worker has a timer pending, an idle worker wakes once per
//! deadline on that wheel plus 2 ms (at most once per 2 ms per watched wheel) to look,
//! and every 2 ms while another awake worker has ops in flight; a busy worker pays two
//! relaxed loads per poll, and a fence when its earliest deadline or submission count
//! changes. What a take-over cannot reach: a stalled worker's LIFO slot (the task there
//! waits for the stall to end) and its yielded tasks (likewise), and ops its tasks queued but the stalled worker has not
//! yet handed to the kernel (a `SINGLE_ISSUER` ring takes submissions from its owner only;
//! they go at its next maintenance pass or park, and the stall delays them).
//!
//! Scheduling a woken task from a worker of the same runtime puts it in the LIFO slot (the
//! slot's previous task moves to the local queue); a task whose poll ended woken (a yield)
//! goes to the back of the yielded tasks. From any other thread the task goes to the global
//! queue, and one parked worker is woken if no worker is searching.
//!
//! # Wake-ups
//!
//! Stealable work added by a worker wakes one parked worker (if none is searching; a
//! runtime's only worker does not look, since no other worker exists), except an entry
//! this worker will run next anyway: one queued during a poll (a deferred
//! callback, a wake that is no yield) while the LIFO slot, the local queue and the yielded
//! list are empty. Waking another
//! worker for it would only hand it over: the woken worker steals what the first was about
//! to run, and a lone task or a chain of callbacks bounces between cores (one op in flight
//! ran 2.5x slower on two workers than on one). Such an entry goes to the core's `next`
//! slot, which runs after the LIFO slot and before the local queue, so FIFO order is kept:
//! it is the oldest entry, and whatever the poll queues after it goes to the local queue
//! and wakes a worker as usual. If the poll instead fills the LIFO slot, `next` would wait
//! behind it, so at the poll's end it moves to the (empty) local queue, stealable but with
//! nobody woken for it: the worker runs it right after the LIFO slot's task (a callback
//! resolving a promise queues both, the callback and the task it wakes; waking a worker
//! for the second made `promisify/ready` at one in flight bounce between the workers, a
//! wake-up every few ops). So the entries nobody is told about are the LIFO slot's and one
//! more, which a running worker takes next, and (below) up to 15 callbacks deferred by
//! callbacks; the parking protocol (step 6) is unchanged, since a worker parks only with
//! its slots and queue empty.
//!
//! A task that wakes itself and would land in the `next` slot (nothing else queued, no
//! maintenance or global-queue turn due at the next tick) is not queued at all: its poll
//! returns `Pending` and it is polled again at once, still `RUNNING` (`WorkerCx::repoll`;
//! "Re-polls" in `task/state.rs`). The order is the one the `next` slot gives, and the tick
//! is counted as the loop would count it.
//!
//! Likewise a deferred callback left in the `next` slot by the entry that just ran, with
//! nothing else queued and no maintenance or global-queue turn due, runs at once from
//! `run_task` (`deferred_in_place`), without a pass of the loop: a chain of
//! callbacks each deferring the next (the callback style's sequential ops) pays one
//! queue push per callback and no pop, search or LIFO bookkeeping.
//!
//! One queue entry's poll wakes at most one parked worker: its first stealable push does
//! as above, the rest of that poll's pushes wake nobody (a listener that spawned 1 000
//! handlers in one poll woke the idle worker, which stole a few, parked, and was woken
//! again by the next spawn: over 20 parks per 1 000 tasks). The first push still wakes a
//! worker at once, so work queued behind a long poll is taken up by an idle worker. And
//! the re-queue of the task whose poll just ended woken (a yield, a wake while it ran)
//! wakes nobody: it goes behind entries that each had their chance to wake a worker when
//! they were queued, and this worker was running it.
//!
//! Nor does a callback that a running deferred callback defers while fewer than
//! `SPREAD_CALLBACKS_FROM` (16) entries are in the local queue: this worker reaches it
//! within a few callbacks, sooner than a woken worker would, and a woken worker only split
//! a composite's callbacks between two cores. `parallel_limit` keeps 8 operations going,
//! each settled part starting the next from its callback; on two workers every new
//! callback woke the idle worker, which stole half, and `iterate_bounded/ready` ran 3.7x
//! slower in the callback style than in `async fn` (`compare --quick`; `pattern_op` A/B on
//! two workers with this rule: 0.52 of the time). Callbacks deferred from a task's poll
//! still wake a worker as above, as does a burst of 16 or more (a listener's 1 000
//! handlers). The price: a callback that blocks its worker holds up to 15 callbacks queued
//! behind it until it returns (or until a parked worker wakes for a timer or a stalled
//! ring and steals them), where they would have been taken at once; so a callback that
//! blocks waiting for one of the callbacks it deferred waits for itself, on any number of
//! workers, as it does on one. Callbacks that block their thread stall the runtime anyway,
//! as they stall Node's event loop.
//!
//! # Yielded tasks
//!
//! A task whose poll ended woken goes to the worker's *yielded* list, a private `VecDeque`,
//! not to the stealable local queue: a push and a pop there take no atomic operation,
//! where a FIFO pop from crossbeam's deque takes a locked `fetch_add` (`ready_op yield`,
//! 200 tasks taking turns on one worker: 409 instructions per yield before, 357 after,
//! callgrind). Each entry carries the count of local-queue pops at which everything that
//! was in the local queue when it yielded has been popped; the worker takes it when that
//! count is reached, ahead of what was queued later, so a yield goes behind the entries
//! queued before it, and a local queue refilled on every tick cannot hold it back. The
//! count is of this worker's own pops: entries that leave the local queue otherwise
//! (stolen, or spilled to the global queue) are not counted, so a yielded task can wait a
//! few pops longer than the entries ahead of it, behind entries queued after it; it never
//! runs before an entry that was queued ahead of it on this worker. With the local queue
//! empty, the list's front runs whatever its count.
//!
//! The list is not stealable. At each maintenance step (step 1), if more than one task
//! waits in it and a worker is parked, the list moves to the back of the local queue and
//! one parked worker is woken to take its share; a lone yielding task stays where it is
//! (see "Wake-ups"). A deferred callback queued while the list is not empty moves it to
//! the local queue first, so that callbacks and yielded tasks still run in the order they
//! were queued. A worker parks only with the list empty. The list is what tokio's
//! deferred yields are, minus their round trip through the run queue.
//!
//! The wakes a worker's own driver runs during one park — a batch of fired timers, a batch
//! of completions — go to its LIFO slot and local queue with no notification each; at the
//! end of the park one parked worker is woken if any of them queued stealable work, and
//! steals from the batch (half of it, at most 32 tasks at a time). So 10 000 timers due in one slot cost 10 000 queue
//! pushes and at most one unpark. Such a batch ignores the local queue's bound: the spilled
//! half would go to the back of the global queue, where late timers would wait behind
//! every task queued there (in `timers_100k`, 100 000 fresh spawns).
//!
//! # Shutdown
//!
//! 1. The runtime sets `shutdown` and unparks every worker.
//! 2. Each worker notices at its next tick or park, drops its LIFO slot and local-queue
//!    entries (the tasks stay in the owned list) and exits, counting down `running`. A
//!    worker checks the flag before every task it runs, so one that was busy in a poll
//!    when shutdown began runs nothing more (a deferred callback it finds is dropped).
//! 3. The runtime waits for the count to reach zero (or its timeout), then closes the owned
//!    list and cancels every task in it on the calling thread: each future's destructor runs
//!    exactly once. A task spawned after this point is cancelled at once.
//! 4. It closes and drains the global queue, then shuts the blocking pool down: queued
//!    blocking jobs are dropped, running ones are waited for (up to the timeout; file system
//!    jobs up to a bound, see `crate::blocking`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst, fence};
use std::time::{Duration, Instant};

use crossbeam_deque::{Steal, Worker};
use weft_reactor::Driver;

use crate::driver::WorkerDriver;

use super::queue::push_local;
use super::{Remote, Shared};
use crate::task::Notified;

/// What a worker thread owns.
pub(crate) struct Core {
    local: Worker<Notified>,
    lifo: Option<Notified>,
    /// An entry queued during a poll while nothing else was queued here (see "Wake-ups"):
    /// the next to run after the LIFO slot, ahead of the local queue.
    next: Option<Notified>,
    /// Tasks whose poll ended woken (a yield, a wake while they ran), in order, each with
    /// the value of `local_pops` at which every entry that was in the local queue when it
    /// was queued has been popped (see "Yielded tasks").
    yielded: VecDeque<(Notified, u64)>,
    /// Entries this worker has popped from its local queue.
    local_pops: u64,
    lifo_polls: u8,
    /// Ticks left until the next maintenance (step 1) and global-queue turn (step 2):
    /// countdowns rather than a tick counter taken modulo the intervals, which would
    /// cost two divisions per tick.
    until_event: u32,
    until_global: u32,
    rng: u32,
    /// Taken out while the worker parks or polls it, so that wakes the driver runs (fired
    /// timers, completions) can schedule onto this core.
    driver: Option<WorkerDriver>,
}

impl Core {
    pub(crate) fn new(index: usize, local: Worker<Notified>, driver: WorkerDriver) -> Box<Core> {
        Box::new(Core {
            local,
            lifo: None,
            next: None,
            yielded: VecDeque::new(),
            local_pops: 0,
            lifo_polls: 0,
            until_event: 0,
            until_global: 0,
            rng: (index as u32).wrapping_mul(0x9E37_79B9) | 1,
            driver: Some(driver),
        })
    }

    fn driver(&self) -> &WorkerDriver {
        self.driver
            .as_ref()
            .expect("the driver is only out during park")
    }

    /// Makes the calling thread the owner of the worker's ring (before `run`).
    pub(crate) fn enable_driver(&mut self) -> std::io::Result<()> {
        self.driver
            .as_mut()
            .expect("driver present")
            .inner_mut()
            .enable()
    }

    fn next_rand(&mut self) -> u32 {
        // xorshift32
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }
}

/// The per-thread context of a running worker.
pub(crate) struct WorkerCx {
    shared: Arc<Shared>,
    index: usize,
    core: RefCell<Box<Core>>,
    /// Whether this worker counts as searching in `Idle`. A `Cell` beside the core, not in
    /// it, so that reading it on every poll takes no borrow.
    is_searching: Cell<bool>,
    /// Whether this worker is running a queue entry (see "Wake-ups" above).
    polling: Cell<bool>,
    /// This worker's wheel's earliest deadline as last seen after a poll (`u64::MAX`:
    /// none), so that a poll that changes it is noticed ("Stalled workers").
    seen_earliest: Cell<u64>,
    /// This worker's ring's submission count (or its epoll's count of first waits) as
    /// last seen after a poll.
    seen_submitted: Cell<u64>,
    /// Whether this is the runtime's only worker: then no other worker can take over its
    /// wheel or ring, and `watch_own_wheel` has nobody to make sure of.
    alone: bool,
    /// The words `watch_own_wheel` reads after every poll, found once.
    watched: Watched,
    /// This worker's counters, bumped on every poll and schedule, found once: reached
    /// through `shared.remotes[index]`, a bounds check and two loads, they were about 12
    /// instructions of every queue entry. Points into this worker's `Remote`, which the
    /// `Arc<Shared>` above keeps alive and never replaces.
    counters: NonNull<crate::metrics::WorkerCounters>,
    /// Whether the running queue entry is a deferred callback (see "Wake-ups").
    in_callback: Cell<bool>,
    /// Whether this worker is in its driver's park (firing timers, reaping completions).
    in_driver: Cell<bool>,
    /// Set when a wake during `in_driver` queued stealable work: one parked worker is to be
    /// notified when the park returns, rather than once per woken task.
    notify_owed: Cell<bool>,
    /// Whether the running queue entry has already notified a parked worker: the rest of
    /// its stealable pushes wake nobody (see "Wake-ups").
    notified_in_poll: Cell<bool>,
}

/// Where the words a worker watches after each poll are (`watch_own_wheel`): its wheel's
/// earliest deadline, its ring's submission count and its epoll's count of first waits.
/// Found once at the worker's start rather than through `shared.remotes[index]` and each
/// handle on every poll (about 25 instructions a poll, on a runtime of several workers).
///
/// # Invariants
///
/// Each pointer is to a word inside a handle of this worker's `Remote`, which the
/// `WorkerCx`'s `Arc<Shared>` keeps alive and never replaces; the words are atomics, read
/// here only.
struct Watched {
    earliest: NonNull<AtomicU64>,
    ring: Option<NonNull<AtomicU64>>,
    epoll: Option<NonNull<AtomicU64>>,
}

impl Watched {
    fn of(me: &Remote) -> Watched {
        Watched {
            earliest: NonNull::from(me.timer.earliest_word()),
            ring: me.ring.as_ref().map(|r| NonNull::from(r.submitted_word())),
            epoll: me
                .epoll
                .as_ref()
                .map(|e| NonNull::from(e.registered_word())),
        }
    }
}

/// A deferred callback queued with fewer than this many entries in the local queue wakes
/// no parked worker (see "Wake-ups").
const SPREAD_CALLBACKS_FROM: usize = 16;

/// The shortest park a watcher makes when a take-over deadline has passed but the
/// take-over found nothing to do (the owner was parked, or held its wheel's lock).
const MIN_WATCH: Duration = Duration::from_millis(1);

/// Runs `f` with this thread's worker context, if it is a worker (the thread context's
/// `worker` field; none once the context is gone).
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerCx>) -> R) -> R {
    let p = crate::context::with(|cx| cx.worker().get()).unwrap_or(ptr::null());
    // SAFETY: the pointer is set by `run` to a `WorkerCx` on its own stack frame and reset
    // to null before that frame ends; only this thread reads it.
    f(unsafe { p.as_ref() })
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    // Single writer (the owning worker): a plain load and store, no locked instruction.
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Counts a tick down: `true` once every `every` ticks.
#[inline]
fn countdown(left: &mut u32, every: u32) -> bool {
    if *left == 0 {
        *left = every.saturating_sub(1);
        true
    } else {
        *left -= 1;
        false
    }
}

/// The body of worker thread `index`.
pub(crate) fn run(shared: Arc<Shared>, index: usize, core: Box<Core>) {
    let alone = shared.remotes.len() == 1;
    let watched = Watched::of(&shared.remotes[index]);
    let counters = NonNull::from(&*shared.remotes[index].counters);
    let cx = WorkerCx {
        shared,
        index,
        core: RefCell::new(core),
        is_searching: Cell::new(false),
        polling: Cell::new(false),
        seen_earliest: Cell::new(u64::MAX),
        seen_submitted: Cell::new(0),
        alone,
        watched,
        counters,
        in_callback: Cell::new(false),
        in_driver: Cell::new(false),
        notify_owed: Cell::new(false),
        notified_in_poll: Cell::new(false),
    };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            crate::context::with(|c| c.worker().set(ptr::null()));
        }
    }
    crate::context::with(|c| c.worker().set(&cx)).expect("a worker starts with its context");
    let reset = Reset;
    let timer = crate::time::set_thread_timer(cx.core.borrow().driver().handle());
    cx.run();
    drop(timer);
    drop(reset);
    cx.exit();
}

impl WorkerCx {
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Counts a task spawned from this worker.
    pub(crate) fn count_spawn(&self) {
        bump(&self.counters().spawns, 1);
    }

    #[inline]
    fn counters(&self) -> &crate::metrics::WorkerCounters {
        // SAFETY: the field's invariant: the counters live as long as `shared`, which
        // outlives `self`'s borrow; they are atomics, shared only by reference.
        unsafe { self.counters.as_ref() }
    }

    fn run(&self) {
        let config = &self.shared.config;
        loop {
            // One borrow of the core for the countdown and the next task, unless the
            // maintenance step (which needs the core released) runs between them.
            let mut core = self.core.borrow_mut();
            if countdown(&mut core.until_event, config.event_interval) {
                drop(core);
                if self.shared.is_shutdown() {
                    return;
                }
                self.park_driver(Some(Duration::ZERO));
                core = self.core.borrow_mut();
                self.share_yielded(&mut core);
            }
            let (task, alone) = self.next_task(&mut core);
            drop(core);
            if let Some(task) = task {
                self.run_task(task, alone);
                continue;
            }
            if let Some(task) = self.steal_work() {
                self.run_task(task, false);
                continue;
            }
            if self.take_over_stalled() {
                continue;
            }
            if self.shared.is_shutdown() {
                return;
            }
            self.park();
            // Woken for shutdown: leave now, without a scan of every queue first.
            if self.shared.is_shutdown() {
                return;
            }
        }
    }

    /// Steps 2–4. Also whether the task was the only entry queued here (for a self-woken
    /// task's re-poll, `WorkerCx::repoll`), looked at only where that costs no more than a
    /// load: a task from the local queue or the global queue counts as not alone. The hint
    /// is not redundant with `repoll`'s own check: without it every self-wake of a task
    /// that is not alone asks `repoll` and is refused, which cost `examples/ready_op.rs`
    /// 57 more instructions per op in `yield` mode and 76 in `burst` mode (callgrind, one
    /// worker; `one` mode unchanged).
    fn next_task(&self, core: &mut Core) -> (Option<Notified>, bool) {
        let config = &self.shared.config;
        if countdown(&mut core.until_global, config.global_queue_interval) {
            if let Some(t) = self.shared.inject.pop() {
                return (Some(t), false);
            }
        }
        if let Some(t) = core.lifo.take() {
            if core.lifo_polls < config.max_lifo_polls {
                core.lifo_polls += 1;
                bump(&self.counters().lifo_hits, 1);
                let alone = core.next.is_none() && core.local.is_empty() && core.yielded.is_empty();
                return (Some(t), alone);
            }
            let moved = push_local(&core.local, &self.shared.inject, t, config.local_capacity);
            bump(&self.counters().overflows, (moved > 0) as u64);
        }
        core.lifo_polls = 0;
        if let Some(t) = core.next.take() {
            return (Some(t), core.local.is_empty() && core.yielded.is_empty());
        }
        if let Some(&(_, due)) = core.yielded.front() {
            if due <= core.local_pops {
                // At least as many pops as there were entries ahead of it: those entries
                // have left the local queue (run here, or stolen or spilled before).
                let (t, _) = core.yielded.pop_front().expect("checked");
                return (Some(t), core.yielded.is_empty() && core.local.is_empty());
            }
        }
        if let Some(t) = core.local.pop() {
            core.local_pops += 1;
            return (Some(t), false);
        }
        if let Some((t, _)) = core.yielded.pop_front() {
            return (Some(t), core.yielded.is_empty());
        }
        (self.shared.inject.pop_batch(&core.local), false)
    }

    /// At maintenance: if more than one yielded task waits and a worker is parked, moves
    /// them to the back of the local queue and wakes that worker to take its share (see
    /// "Yielded tasks").
    #[inline]
    fn share_yielded(&self, core: &mut Core) {
        if core.yielded.len() > 1 && self.shared.idle.num_parked() > 0 {
            self.flush_yielded(core);
            self.shared.notify_parked();
        }
    }

    /// Moves the yielded tasks, in order, to the back of the local queue.
    #[cold]
    fn flush_yielded(&self, core: &mut Core) {
        let capacity = self.shared.config.local_capacity;
        let mut spilled = 0;
        while let Some((t, _)) = core.yielded.pop_front() {
            spilled += (push_local(&core.local, &self.shared.inject, t, capacity) > 0) as u64;
        }
        bump(&self.counters().overflows, spilled);
    }

    /// Runs one queue entry; `alone`: nothing else was queued here when it was popped.
    #[inline(always)]
    fn run_task(&self, task: Notified, alone: bool) {
        if self.shared.is_shutdown() {
            // Nothing starts once shutdown has begun: a worker that was stuck in a poll past
            // `shutdown_timeout` drops what it finds instead of running it after the
            // runtime said it had shut down.
            drop(task);
            return;
        }
        if self.is_searching.replace(false) && self.shared.idle.transition_worker_from_searching() {
            self.shared.notify_parked();
        }
        bump(&self.counters().polls, 1);
        self.polling.set(true);
        self.notified_in_poll.set(false);
        crate::context::with(|cx| cx.repoll_hint().set(alone));
        self.in_callback
            .set(crate::task::deferred::is_deferred(&task));
        // A task's poll takes a fresh budget itself (`task/waker.rs`); a deferred callback,
        // which polls nothing, runs with none.
        task.run();
        let mut core = self.core.borrow_mut();
        while core.next.is_some() && !self.shared.is_shutdown() {
            let Some(next) = deferred_in_place(&mut core) else {
                break;
            };
            drop(core);
            bump(&self.counters().polls, 1);
            self.notified_in_poll.set(false);
            self.in_callback.set(true);
            self.watch_own_wheel();
            next.run();
            core = self.core.borrow_mut();
        }
        self.polling.set(false);
        self.in_callback.set(false);
        if core.next.is_some()
            && core.lifo.is_some()
            && core.local.is_empty()
            && core.yielded.is_empty()
        {
            // The poll filled the LIFO slot after queueing `next`, which now waits behind
            // it: make it stealable (nothing else is queued, so the order is kept), but
            // wake nobody for it: this worker runs it right after the LIFO slot's task
            // (see "Wake-ups"). Not with a task in the yielded list: that task yielded
            // after `next` was queued, and its count of local pops would let it run
            // before an entry pushed to the local queue now; in `next`, the entry runs
            // right after the LIFO slot's task, ahead of the yielded list.
            let task = core.next.take().expect("checked");
            core.local.push(task);
        }
        drop(core);
        self.watch_own_wheel();
    }

    /// After a poll: if this worker's wheel has a new earliest deadline, or its ring new
    /// ops, makes sure some parked worker will look at them in time should this worker
    /// stall.
    #[inline]
    fn watch_own_wheel(&self) {
        if self.alone {
            // No parked worker exists to wake: the only one is running this.
            return;
        }
        let w = &self.watched;
        // SAFETY: a word of this worker's own handles, alive as long as `self.shared`
        // (`Watched`'s invariants).
        let earliest = unsafe { w.earliest.as_ref() }.load(Relaxed);
        if self.seen_earliest.replace(earliest) != earliest && earliest != u64::MAX {
            let me = &self.shared.remotes[self.index];
            self.ensure_watcher(|| me.timer.takeover_deadline());
        }
        if let Some(word) = w.ring {
            // SAFETY: as above.
            let submitted = unsafe { word.as_ref() }.load(Relaxed);
            if self.seen_submitted.replace(submitted) != submitted {
                let ring = self.shared.remotes[self.index].ring.as_ref();
                self.ensure_watcher(|| ring.and_then(|r| r.takeover_deadline()));
            }
        }
        if let Some(word) = w.epoll {
            // SAFETY: as above.
            let registered = unsafe { word.as_ref() }.load(Relaxed);
            if self.seen_submitted.replace(registered) != registered {
                let epoll = self.shared.remotes[self.index].epoll.as_ref();
                self.ensure_watcher(|| epoll.and_then(|e| e.takeover_deadline()));
            }
        }
    }

    /// After this worker's own park: what it left in flight when it parked is watched by
    /// nobody (a parked owner's ring needs no watcher).
    fn watch_own_ring(&self) {
        let me = &self.shared.remotes[self.index];
        if let Some(ring) = &me.ring {
            self.ensure_watcher(|| ring.takeover_deadline());
        }
        if let Some(epoll) = &me.epoll {
            self.ensure_watcher(|| epoll.takeover_deadline());
        }
    }

    #[cold]
    fn ensure_watcher(&self, deadline: impl FnOnce() -> Option<Instant>) {
        // Pairs with the fence in `park`: either that parker reads the new earliest
        // deadline, or this reads it as parked.
        fence(SeqCst);
        let idle = &self.shared.idle;
        if idle.num_parked() == 0 {
            // Every worker is awake, and each looks at the wheels before it parks.
            return;
        }
        let Some(at) = deadline() else {
            return;
        };
        if !idle.watched_by(at) {
            self.shared.notify_parked();
        }
    }

    /// Fires the due timers of every other worker's wheel, and reaps the posted completions
    /// of every other worker's ring, whose owner is stalled; `true` if anything was woken
    /// (those tasks are now in this worker's queue).
    fn take_over_stalled(&self) -> bool {
        let mut fired = false;
        for (i, r) in self.shared.remotes.iter().enumerate() {
            if i != self.index {
                fired |= r.timer.take_over() > 0;
                fired |= r.ring.as_ref().is_some_and(|h| h.reap_stalled() > 0);
                fired |= r.epoll.as_ref().is_some_and(|h| h.reap_stalled() > 0);
            }
        }
        fired
    }

    /// The earliest take-over deadline of the other workers' wheels and rings.
    fn watch_deadline(&self) -> Option<Instant> {
        let remotes = self.shared.remotes.iter().enumerate();
        remotes
            .filter(|(i, _)| *i != self.index)
            .flat_map(|(_, r)| {
                let ring = r.ring.as_ref().and_then(|h| h.takeover_deadline());
                let epoll = r.epoll.as_ref().and_then(|h| h.takeover_deadline());
                [r.timer.takeover_deadline(), ring, epoll]
            })
            .flatten()
            .min()
    }

    /// Step 5.
    fn steal_work(&self) -> Option<Notified> {
        let mut core = self.core.borrow_mut();
        if !self.is_searching.get() {
            if !self.shared.idle.transition_worker_to_searching() {
                return None;
            }
            self.is_searching.set(true);
        }
        let remotes = &self.shared.remotes;
        let n = remotes.len();
        let start = core.next_rand() as usize % n;
        let counters = self.counters();
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            bump(&counters.steal_operations, 1);
            // An empty victim is skipped on two loads: a steal attempt pins crossbeam's
            // epoch, and pinning walks every thread that ever pinned now and then, so
            // attempting every empty queue made each scan O(workers²) (a 10 000-worker
            // runtime took most of a minute to start and stop).
            if remotes[victim].stealer.is_empty() {
                continue;
            }
            let before = core.local.len();
            loop {
                match remotes[victim].stealer.steal_batch_and_pop(&core.local) {
                    Steal::Success(t) => {
                        bump(&counters.steals, (core.local.len() - before + 1) as u64);
                        return Some(t);
                    }
                    Steal::Retry => std::hint::spin_loop(),
                    Steal::Empty => break,
                }
            }
        }
        self.shared.inject.pop_batch(&core.local)
    }

    /// Step 6.
    fn park(&self) {
        let shared = &*self.shared;
        let was_searching = self.is_searching.replace(false);
        if shared
            .idle
            .transition_worker_to_parked(self.index, was_searching)
            && shared.has_remote_work()
        {
            shared.notify_parked();
        }
        bump(&self.counters().parks, 1);
        // Pairs with the fence in `ensure_watcher`.
        fence(SeqCst);
        let watch = self.watch_deadline();
        let token = watch.map(|at| shared.idle.begin_watch(at));
        let timeout = watch.map(|at| at.saturating_duration_since(Instant::now()).max(MIN_WATCH));
        self.park_driver(timeout);
        if let Some(token) = token {
            shared.idle.end_watch(token);
        }
        self.watch_own_ring();
        if shared.is_shutdown() {
            return;
        }
        if !shared.idle.unpark_self(self.index) {
            self.is_searching.set(true);
        }
    }

    /// Parks on the driver with the core released, so that the wakes it runs can schedule
    /// onto this worker.
    ///
    /// The wakes of one park (a slot's worth of fired timers, a batch of completions) are
    /// placed with no notification each: whether a parked worker should help is decided
    /// once, when the park returns. A park that fired timers does not block (see
    /// `TimeDriver`), so the notification is not held back behind a sleep.
    fn park_driver(&self, timeout: Option<Duration>) {
        // Timers dropped here since the last park leave the wheel before it fires or sets
        // the park timeout.
        crate::time::flush_thread_cancels();
        let mut driver = self
            .core
            .borrow_mut()
            .driver
            .take()
            .expect("driver present");
        self.in_driver.set(true);
        // An error here is the driver's to report; the worker re-checks its queues either way.
        let _ = driver.park(timeout);
        self.in_driver.set(false);
        self.core.borrow_mut().driver = Some(driver);
        if self.notify_owed.replace(false) && !self.alone {
            self.shared.notify_parked();
        }
    }

    /// The task being polled woke itself and would go to the `next` slot, to be popped
    /// right away: `true` (and the tick is counted, as the loop would count it) if it may
    /// instead be polled again at once. Not when anything else is queued here, nor when the
    /// next tick is a maintenance or global-queue turn (those run first, as they would
    /// between the two polls).
    #[inline]
    pub(crate) fn repoll(&self) -> bool {
        if !self.polling.get() {
            return false;
        }
        {
            let Ok(mut core) = self.core.try_borrow_mut() else {
                return false;
            };
            let core = &mut **core;
            if core.until_event == 0
                || core.until_global == 0
                || core.lifo.is_some()
                || core.next.is_some()
                || !core.local.is_empty()
                || !core.yielded.is_empty()
                || self.shared.is_shutdown()
            {
                return false;
            }
            core.until_event -= 1;
            core.until_global -= 1;
            core.lifo_polls = 0;
        }
        let counters = self.counters();
        bump(&counters.local_schedules, 1);
        bump(&counters.polls, 1);
        self.notified_in_poll.set(false);
        self.watch_own_wheel();
        true
    }

    /// Places a task woken on this worker: LIFO slot, or the back of the queue for a yield
    /// (the `next` slot if nothing else is queued and a poll is running).
    #[inline]
    pub(crate) fn schedule_local(&self, task: Notified, is_yield: bool) {
        self.place_local(task, is_yield)
    }

    /// Re-queues the task whose poll just ended woken (a self-wake, or a wake while it
    /// ran) at the back of the yielded list: this worker was running it, so no parked
    /// worker is woken for it, and it costs no atomic operation (see "Yielded tasks").
    #[inline]
    pub(crate) fn requeue_local(&self, task: Notified) {
        let mut core = self.core.borrow_mut();
        bump(&self.counters().local_schedules, 1);
        let due = core.local_pops + core.local.len() as u64;
        core.yielded.push_back((task, due));
    }

    /// Stealable work wakes a parked worker, once per poll (see "Wake-ups").
    #[inline(always)]
    fn place_local(&self, task: Notified, is_yield: bool) {
        let mut core = self.core.borrow_mut();
        let counters = self.counters();
        bump(&counters.local_schedules, 1);
        if is_yield && !core.yielded.is_empty() {
            // A deferred callback queued behind yielded tasks: they go first, in order.
            self.flush_yielded(&mut core);
        }
        let pushed = if is_yield || self.shared.config.max_lifo_polls == 0 {
            Some(task)
        } else {
            core.lifo.replace(task)
        };
        let Some(task) = pushed else {
            // Only the LIFO slot was filled: nothing another worker could steal.
            return;
        };
        if self.polling.get()
            && core.next.is_none()
            && core.lifo.is_none()
            && core.local.is_empty()
            && core.yielded.is_empty()
        {
            // The only entry waiting here, run as soon as the poll returns: no other worker
            // is woken for it, and it skips the deque.
            core.next = Some(task);
            return;
        }
        if self.in_driver.get() {
            // A wake run by this worker's own park (a fired timer, a completion): past the
            // queue's bound too, since a spilled half would wait behind everything in the
            // global queue (see "Wake-ups").
            core.local.push(task);
            drop(core);
            self.notify_owed.set(true);
            return;
        }
        let config = &self.shared.config;
        let moved = push_local(
            &core.local,
            &self.shared.inject,
            task,
            config.local_capacity,
        );
        bump(&counters.overflows, (moved > 0) as u64);
        // A callback deferred by a callback, with few queued here: this worker reaches it
        // soon (see "Wake-ups"), and a woken worker would only split a composite's
        // callbacks between two cores. The queue's length is read only for such a callback.
        let soon = is_yield
            && self.in_callback.get()
            && !self.alone
            && core.local.len() < SPREAD_CALLBACKS_FROM;
        drop(core);
        // Alone, there is no other worker to wake (and the check's fence costs about 6 ns:
        // 11% of `iterate_bounded/ready`'s callback time on one worker, where every
        // callback past the first goes through the deque).
        if self.alone || soon || (self.polling.get() && self.notified_in_poll.replace(true)) {
            return;
        }
        self.shared.notify_parked();
    }

    /// Shutdown step 2.
    fn exit(self) {
        let WorkerCx { shared, core, .. } = self;
        exit_core(&shared, core.into_inner());
    }
}

/// After an entry ran: the deferred callback it left in the `next` slot, to run at once in
/// place of a pass of the loop, if nothing else is queued here and the next tick is no
/// maintenance or global-queue turn (those run first, as they would between the two). The
/// tick is counted as the loop would count it; the caller counts the poll and gives the
/// entry that ran its `watch_own_wheel`. A chain of callbacks, each deferring the next, then
/// costs no loop pass per callback; the order is the `next` slot's (see "Wake-ups").
#[inline]
fn deferred_in_place(core: &mut Core) -> Option<Notified> {
    if core.until_event == 0
        || core.until_global == 0
        || core.lifo.is_some()
        || !core
            .next
            .as_ref()
            .is_some_and(crate::task::deferred::is_deferred)
        || !core.local.is_empty()
    {
        return None;
    }
    core.until_event -= 1;
    core.until_global -= 1;
    core.lifo_polls = 0;
    core.next.take()
}

/// Shutdown step 2 for a core (also used by a worker that failed to start).
pub(crate) fn exit_core(shared: &Shared, mut core: Box<Core>) {
    drop(core.lifo.take());
    drop(core.next.take());
    core.yielded.clear();
    while let Some(t) = core.local.pop() {
        drop(t);
    }
    // Nobody fires this wheel from now on: its timers are woken to find another (see
    // `time.rs`).
    if let Some(driver) = core.driver.as_mut() {
        driver.close();
    }
    drop(core);
    let mut running = shared.running.lock();
    *running -= 1;
    if *running == 0 {
        shared.exited.notify_all();
    }
}

/// The local queue a new worker starts with.
pub(crate) fn new_local() -> Worker<Notified> {
    Worker::new_fifo()
}
