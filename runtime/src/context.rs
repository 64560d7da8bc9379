//! The thread-local context: everything weft keeps per thread, in one `thread_local!`.
//!
//! Per-thread state is two structs declared together: [`Context`], the `Copy` values in
//! `Cell`s (the worker pointer, the polled task, the budget, the task-id range, ...), and
//! [`Resources`], the values that own something and must be dropped with the thread (the
//! current runtimes' handles, the thread's wheel handle, the small-block cache,
//! `block_on`'s parker). Each field is owned by the module its doc names, which reaches it
//! through the field's accessor method, inside [`with`] or [`with_resources`]. Both are
//! built by `const` expressions, so nothing is lazily initialised; and `Context` has no
//! destructor, so an access to it is one thread-local load with no state check at all:
//! it sits on every task poll and wake (one struct with a destructor cost the `ready` op
//! 24 instructions, about 7%, in std's alive/destroyed checks).
//!
//! # The rule: guards, reentrancy, destruction
//!
//! - **Every access goes through [`with`] or [`with_resources`], which return `None` once
//!   the thread's thread-locals are being destroyed**, and every accessor then answers as
//!   on a thread outside any runtime: no current handle, no wheel, no block cache, a parker
//!   made for the call. (`Context` itself is never destroyed, so `with` always answers;
//!   callers treat it as fallible all the same.) Nothing panics for want of the context: a
//!   `Waker`, a `JoinHandle` or a `Handle` dropped by another thread-local's destructor
//!   still works. std marks `Resources` destroyed *before* it drops its fields (in
//!   declaration order), so the same holds for code a field's own drop reaches (a `Handle`
//!   that frees its runtime, a cached block).
//! - **A field is a `Cell` wherever its value is `Copy`.** A `RefCell` field is borrowed
//!   only inside its accessor's caller for a few statements that run no user code and reach
//!   no other access to the same field; a value taken out of one (a replaced `Handle` or
//!   `LocalTimerHandle`) is dropped after the borrow ends.
//! - **Guards restore what they found** (`SetCurrentGuard`, `EnterRuntimeGuard`, the
//!   budget's reset, the task poll guard, the thread timer guard, the worker pointer's
//!   reset), so they nest and unwind cleanly; a guard that drops during destruction does
//!   nothing.

use std::cell::{Cell, OnceCell, RefCell};

use weft_reactor::time::LocalTimerHandle;

use crate::scheduler::Handle;

/// The `Copy` state weft keeps per thread; see the module docs for the rule every field
/// follows. It has no destructor.
pub(crate) struct Context {
    /// `context.rs`: the id the next guard takes.
    next_guard: Cell<u64>,
    /// `context.rs`: set while this thread runs `block_on`, or is a worker: blocking here
    /// would deadlock.
    in_runtime: Cell<bool>,
    /// `scheduler/worker.rs`: the worker context of this thread (null when it is not a
    /// worker).
    worker: Cell<*const crate::scheduler::worker::WorkerCx>,
    /// `task/waker.rs`: the task this thread is polling (null when none) and whether it woke
    /// itself. Absent under loom, whose threads share one OS thread.
    #[cfg(not(loom))]
    polling: Cell<(*const (), bool)>,
    /// `scheduler/worker.rs`: whether the queue entry this worker is running was the only
    /// one queued on it when popped; a task that wakes itself may then be polled again in
    /// place (`task/raw.rs`), if the worker confirms it (`WorkerCx::repoll`).
    repoll_hint: Cell<bool>,
    /// `coop.rs`: the budget of the task being polled (`None`: unconstrained).
    budget: Cell<Option<u8>>,
    /// `task/id.rs`: the thread's reserved range of task ids, `(next, end)`; empty when
    /// `next == end`.
    task_ids: Cell<(u64, u64)>,
    /// `macros.rs`: the xorshift64* state of `select!`'s random start; 0 until first used.
    rng: Cell<u64>,
    /// `blocking.rs`: the pool this thread belongs to (null unless it is a pool thread).
    pool_thread: Cell<*const ()>,
    /// `blocking.rs`: whether this pool thread is running a file system job.
    in_io_job: Cell<bool>,
    /// `callback/mod.rs`: the batch of the innermost `batched` helper start running on this
    /// thread (null outside one).
    callback_batch: Cell<*mut crate::callback::Batch>,
    /// `task/deferred.rs`: the block of the deferred cell this thread is running, with its
    /// size class, while its closure runs (null when none, or when a `defer` took it).
    deferred_spare: Cell<(*mut u8, usize)>,
    /// `callback/held.rs`: the claims on a gather's block this thread holds, to give up
    /// together.
    held_claims: Cell<crate::callback::Held>,
    /// `callback/held.rs`: whether a scope that holds claims is open on this thread.
    held_open: Cell<bool>,
}

/// The owned state weft keeps per thread, dropped with it; see the module docs.
pub(crate) struct Resources {
    /// `context.rs`: the runtimes made current on this thread, each with the id of the
    /// guard that made it so, most recent last: the last is the one `Handle::current()` and
    /// `spawn` use. A guard removes its own entry, wherever it is, so guards may drop in any
    /// order.
    current: RefCell<Vec<(u64, Handle)>>,
    /// `time.rs`: the wheel of the driver this thread parks on, if any, with its stock of
    /// spare references for the timers filed in it from this thread.
    timer: RefCell<Option<LocalTimerHandle>>,
    /// `task/pool.rs`: the free blocks of the small-block cache.
    block_cache: RefCell<crate::task::pool::Cache>,
    /// `park.rs`: `block_on`'s parker and its waker, made on the thread's first `block_on`.
    parker: OnceCell<crate::park::Parker>,
}

thread_local! {
    static CONTEXT: Context = const {
        Context {
            next_guard: Cell::new(0),
            in_runtime: Cell::new(false),
            worker: Cell::new(std::ptr::null()),
            #[cfg(not(loom))]
            polling: Cell::new((std::ptr::null(), false)),
            repoll_hint: Cell::new(false),
            budget: Cell::new(None),
            task_ids: Cell::new((0, 0)),
            rng: Cell::new(0),
            pool_thread: Cell::new(std::ptr::null()),
            in_io_job: Cell::new(false),
            callback_batch: Cell::new(std::ptr::null_mut()),
            deferred_spare: Cell::new((std::ptr::null_mut(), 0)),
            held_claims: Cell::new(crate::callback::Held::NONE),
            held_open: Cell::new(false),
        }
    };
    static RESOURCES: Resources = const {
        Resources {
            current: RefCell::new(Vec::new()),
            timer: RefCell::new(None),
            block_cache: RefCell::new(crate::task::pool::Cache::new()),
            parker: OnceCell::new(),
        }
    };
}

/// Runs `f` with this thread's context. `Context` has no destructor, so this always
/// answers; it returns an `Option` so that callers keep the one rule (module docs).
#[inline(always)]
pub(crate) fn with<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    CONTEXT.try_with(f).ok()
}

/// Runs `f` with this thread's resources; `None` (and `f` is not called) once the
/// thread's thread-locals are being destroyed.
#[inline(always)]
pub(crate) fn with_resources<R>(f: impl FnOnce(&Resources) -> R) -> Option<R> {
    RESOURCES.try_with(f).ok()
}

impl Context {
    /// See the field.
    #[inline(always)]
    pub(crate) fn worker(&self) -> &Cell<*const crate::scheduler::worker::WorkerCx> {
        &self.worker
    }

    /// See the field.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn polling(&self) -> &Cell<(*const (), bool)> {
        &self.polling
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn repoll_hint(&self) -> &Cell<bool> {
        &self.repoll_hint
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn budget(&self) -> &Cell<Option<u8>> {
        &self.budget
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn task_ids(&self) -> &Cell<(u64, u64)> {
        &self.task_ids
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn rng(&self) -> &Cell<u64> {
        &self.rng
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn pool_thread(&self) -> &Cell<*const ()> {
        &self.pool_thread
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn in_io_job(&self) -> &Cell<bool> {
        &self.in_io_job
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn callback_batch(&self) -> &Cell<*mut crate::callback::Batch> {
        &self.callback_batch
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn deferred_spare(&self) -> &Cell<(*mut u8, usize)> {
        &self.deferred_spare
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn held_claims(&self) -> &Cell<crate::callback::Held> {
        &self.held_claims
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn held_open(&self) -> &Cell<bool> {
        &self.held_open
    }
}

impl Resources {
    /// See the field.
    #[inline(always)]
    pub(crate) fn timer(&self) -> &RefCell<Option<LocalTimerHandle>> {
        &self.timer
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn block_cache(&self) -> &RefCell<crate::task::pool::Cache> {
        &self.block_cache
    }

    /// See the field.
    #[inline(always)]
    pub(crate) fn parker(&self) -> &OnceCell<crate::park::Parker> {
        &self.parker
    }
}

/// Runs `f` with the current handle, if any.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Handle) -> R) -> Option<R> {
    with_resources(|r| r.current.borrow().last().map(|(_, h)| f(h))).flatten()
}

/// Makes `handle` current until the guard is dropped (or a later guard takes over).
///
/// During the thread's thread-local destruction nothing becomes current, and the guard
/// does nothing.
pub(crate) fn set_current(handle: Handle) -> SetCurrentGuard {
    let id = with_resources(|r| {
        let id = with(|cx| cx.next_guard.replace(cx.next_guard.get().wrapping_add(1)))?;
        r.current.borrow_mut().push((id, handle));
        Some(id)
    })
    .flatten();
    SetCurrentGuard {
        id,
        _not_send: std::marker::PhantomData,
    }
}

/// Removes its handle from the thread's current runtimes on drop; the most recent one left
/// becomes current. Not `Send`: it belongs to the thread whose context it changed.
#[derive(Debug)]
pub(crate) struct SetCurrentGuard {
    /// `None`: made during destruction, nothing to remove.
    id: Option<u64>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        // Taken out first so the handle is dropped outside the borrow.
        let old = with_resources(|r| {
            let mut stack = r.current.borrow_mut();
            let at = stack.iter().rposition(|(i, _)| *i == id);
            at.map(|i| stack.remove(i))
        });
        drop(old);
    }
}

/// Marks the thread as running a runtime (`block_on` or a worker) until the guard drops.
///
/// # Panics
///
/// If the thread already runs one: blocking a worker or nesting `block_on` would deadlock.
#[track_caller]
pub(crate) fn enter_runtime() -> EnterRuntimeGuard {
    if with(|cx| cx.in_runtime.replace(true)) == Some(true) {
        panic!(
            "cannot block on a weft runtime from inside a runtime (a task or block_on): \
             this would block the thread that drives it; use `.await` instead, or move \
             the blocking call into `weft::task::spawn_blocking`"
        );
    }
    EnterRuntimeGuard(())
}

/// Whether this thread is inside a runtime (`block_on` or a worker).
pub(crate) fn in_runtime() -> bool {
    with(|cx| cx.in_runtime.get()).unwrap_or(false)
}

/// See [`enter_runtime`].
#[derive(Debug)]
pub(crate) struct EnterRuntimeGuard(());

impl Drop for EnterRuntimeGuard {
    fn drop(&mut self) {
        with(|cx| cx.in_runtime.set(false));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::RefCell;
    use std::future::poll_fn;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::{Arc, Mutex, mpsc};
    use std::task::{Poll, Waker};

    use super::*;

    /// A thread-local destroyed after the context (registered before it), whose destructor
    /// goes through every accessor; it reports what panicked, if anything.
    struct Probe {
        report: mpsc::Sender<Result<(), String>>,
        handle: Handle,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    thread_local! {
        static PROBE: RefCell<Option<Probe>> = const { RefCell::new(None) };
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            let h = self.handle.clone();
            let waker = self.waker.lock().unwrap().take();
            let checks = AssertUnwindSafe(move || {
                assert!(
                    with_resources(|_| ()).is_none(),
                    "the resources outlived the probe"
                );
                assert!(Handle::try_current().is_err());
                assert!(!in_runtime());
                assert!(crate::task::try_id().is_none());
                assert!(crate::macros::__macro_support::thread_rng_n(3) < 3);
                let guard = h.enter();
                drop(guard);
                // A wake from here goes to the global queue (no worker, no poll).
                waker.expect("the task left its waker").wake();
                // A spawn (task id, schedule), a defer (block cache), a `block_on` (parker,
                // runtime guard, budget) and a cooperative leaf (`JoinHandle`).
                let (tx, rx) = mpsc::channel();
                h.defer(move || tx.send(7).unwrap());
                let j = h.spawn(async { crate::task::try_id().is_some() });
                assert!(h.block_on(async {
                    crate::coop::consume_budget().await;
                    j.await.unwrap()
                }));
                assert_eq!(rx.recv().unwrap(), 7);
                crate::coop::with_budget(|| crate::coop::unconstrained(|| ()));
            });
            let out = catch_unwind(checks).map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            });
            let _ = self.report.send(out);
        }
    }

    /// The one rule (module docs): every accessor answers as outside a runtime, and nothing
    /// panics, once the context is gone.
    #[test]
    fn every_accessor_works_during_thread_local_destruction() {
        let rt = crate::Runtime::builder().worker_threads(1).build().unwrap();
        let handle = rt.handle().clone();
        // A task that stays pending and leaves its waker for the probe.
        let waker = Arc::new(Mutex::new(None));
        let (w, (polled_tx, polled)) = (waker.clone(), mpsc::channel());
        let _pending = rt.spawn(poll_fn(move |cx| {
            *w.lock().unwrap() = Some(cx.waker().clone());
            polled_tx.send(()).unwrap();
            Poll::<()>::Pending
        }));
        // Hang guards, not timings.
        let guard = std::time::Duration::from_secs(30);
        polled.recv_timeout(guard).expect("first poll");
        let (tx, rx) = mpsc::channel();
        let (h, wk) = (handle.clone(), waker.clone());
        std::thread::spawn(move || {
            // The probe first, so its destructor runs after the context's.
            PROBE.with(|p| {
                *p.borrow_mut() = Some(Probe {
                    report: tx,
                    handle: h.clone(),
                    waker: wk,
                })
            });
            let _g = h.enter();
            assert_eq!(h.block_on(async { 1 }), 1);
        })
        .join()
        .unwrap();
        rx.recv_timeout(guard).expect("the probe reports").unwrap();
        // The wake from the destructor polled the task again.
        polled.recv_timeout(guard).expect("second poll");
    }
}
