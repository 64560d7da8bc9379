//! [`JoinSet`]: a set of spawned tasks, awaited in the order they finish.
//!
//! # Design
//!
//! Every member's join handle is polled with a waker of its own, a small `Member` that
//! knows the task's id and the set's ready list. When the task completes, the runtime wakes
//! that waker (the join waker), which pushes the id onto the ready list and wakes whoever
//! waits in [`JoinSet::join_next`]. `join_next` then polls only the handles whose ids it
//! finds there, so each finished task costs O(1) and 10 000 members cost 10 000 handle
//! polls in all, not 10 000 per wake.
//!
//! 1. `spawn` spawns the task, stores its handle under its id, and pushes the id onto the
//!    ready list, so the first `join_next` polls it once and registers the member waker.
//! 2. `join_next` drains the ready list (under its lock, storing the caller's waker if the
//!    list is empty) and polls those handles with their member wakers. A handle that is not
//!    finished has just registered its waker and is forgotten until that waker fires; a
//!    finished one is removed and returned.
//! 3. An id whose handle is gone (already returned, or detached) is skipped.
//!
//! One unit of cooperative budget is spent per `join_next`, not per handle polled.
//!
//! Alternative rejected: polling every handle on every wake (the `promise` combinators do,
//! for a few hundred children at most): 10 000 members would cost 10⁸ polls.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

use super::{AbortHandle, Id, JoinError, JoinHandle};
use crate::Handle;

/// A collection of tasks spawned on a runtime, awaited in the order they complete.
///
/// All tasks must have the same output type `T`. Dropping the set aborts every task still
/// in it; [`detach_all`](JoinSet::detach_all) lets them run on instead.
///
/// # Examples
///
/// ```
/// use weft_runtime::task::JoinSet;
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let total = rt.block_on(async {
///     let mut set = JoinSet::new();
///     for i in 1..=10u64 {
///         set.spawn(async move { i * i });
///     }
///     let mut total = 0;
///     while let Some(res) = set.join_next().await {
///         total += res.unwrap();
///     }
///     total
/// });
/// assert_eq!(total, 385);
/// ```
pub struct JoinSet<T> {
    members: HashMap<Id, Entry<T>>,
    /// Ids taken from the ready list and not yet polled.
    local: VecDeque<Id>,
    ready: Arc<ReadyList>,
    /// Handle polls made, so a unit test can check the cost is linear.
    #[cfg(test)]
    polls: usize,
}

struct Entry<T> {
    handle: JoinHandle<T>,
    waker: Waker,
}

/// The ids of members whose join waker fired, and the waker of the `join_next` caller.
#[derive(Default)]
struct ReadyList {
    inner: Mutex<ReadyInner>,
}

#[derive(Default)]
struct ReadyInner {
    ids: Vec<Id>,
    waiter: Option<Waker>,
}

impl ReadyList {
    fn push(&self, id: Id) {
        let waiter = {
            let mut inner = self.inner.lock();
            inner.ids.push(id);
            inner.waiter.take()
        };
        // Woken outside the lock: the waiter may run `join_next` on this thread at once.
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// The join waker of one member.
struct Member {
    id: Id,
    ready: Arc<ReadyList>,
}

impl Wake for Member {
    fn wake(self: Arc<Self>) {
        self.ready.push(self.id);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.id);
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            members: HashMap::new(),
            local: VecDeque::new(),
            ready: Arc::new(ReadyList::default()),
            #[cfg(test)]
            polls: 0,
        }
    }

    /// The number of tasks in the set (finished ones not yet joined included).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Aborts every task in the set. They stay in it: [`join_next`](JoinSet::join_next)
    /// returns each (cancelled, or with its output if it finished first).
    pub fn abort_all(&mut self) {
        for entry in self.members.values() {
            entry.handle.abort();
        }
    }

    /// Removes every task from the set without aborting it: they run on, and their outputs
    /// are dropped.
    pub fn detach_all(&mut self) {
        self.members.clear();
        self.local.clear();
        self.ready.inner.lock().ids.clear();
    }

    fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let id = handle.id();
        let abort = handle.abort_handle();
        let waker = Waker::from(Arc::new(Member {
            id,
            ready: Arc::clone(&self.ready),
        }));
        self.members.insert(id, Entry { handle, waker });
        // Polled once by the next `join_next`, which registers the member waker.
        self.local.push_back(id);
        abort
    }

    /// Polls for the next finished task: `Ready(None)` when the set is empty.
    ///
    /// `cx`'s waker is woken when a task finishes, if this returns `Pending`.
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        if self.members.is_empty() {
            return Poll::Ready(None);
        }
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        loop {
            if self.local.is_empty() {
                let mut inner = self.ready.inner.lock();
                if inner.ids.is_empty() {
                    let stale = inner
                        .waiter
                        .as_ref()
                        .is_none_or(|w| !w.will_wake(cx.waker()));
                    if stale {
                        inner.waiter = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                self.local.extend(inner.ids.drain(..));
            }
            if let Some(out) = self.poll_local() {
                coop.made_progress();
                return Poll::Ready(Some(out));
            }
        }
    }

    /// Polls the handles whose ids are in `local` until one is finished.
    fn poll_local(&mut self) -> Option<Result<(Id, T), JoinError>> {
        while let Some(id) = self.local.pop_front() {
            let Some(entry) = self.members.get_mut(&id) else {
                continue; // Joined or detached already.
            };
            #[cfg(test)]
            {
                self.polls += 1;
            }
            let mut member_cx = Context::from_waker(&entry.waker);
            if let Poll::Ready(res) = entry.handle.poll_output(&mut member_cx) {
                self.members.remove(&id);
                return Some(res.map(|v| (id, v)));
            }
        }
        None
    }

    /// Waits for the next task to finish and returns its output with its id; `None` when
    /// the set is empty.
    ///
    /// Cancel-safe: if the returned future is dropped before it completes, no output is
    /// lost.
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// Waits for the next task to finish and returns its output; `None` when the set is
    /// empty. Cancel-safe, as [`join_next_with_id`](JoinSet::join_next_with_id).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::task::JoinSet;
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = JoinSet::new();
    ///     set.spawn(async { panic!("boom") });
    ///     let err = set.join_next().await.unwrap().unwrap_err();
    ///     assert!(err.is_panic());
    ///     assert!(set.join_next().await.is_none());
    /// });
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.join_next_with_id()
            .await
            .map(|res| res.map(|(_, v)| v))
    }

    /// A finished task's output, if one is ready now; `None` if none is (the set may still
    /// hold running tasks: check [`is_empty`](JoinSet::is_empty)).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id().map(|res| res.map(|(_, v)| v))
    }

    /// [`try_join_next`](JoinSet::try_join_next) with the task's id.
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        if self.members.is_empty() {
            return None;
        }
        let ids: Vec<Id> = std::mem::take(&mut self.ready.inner.lock().ids);
        self.local.extend(ids);
        self.poll_local()
    }

    /// Aborts every task and waits until all have finished; the set is empty afterwards.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::task::JoinSet;
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = JoinSet::new();
    ///     for _ in 0..4 {
    ///         set.spawn(std::future::pending::<()>());
    ///     }
    ///     set.shutdown().await;
    ///     assert!(set.is_empty());
    /// });
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for every task and returns their outputs in the order they finished.
    ///
    /// # Panics
    ///
    /// If a task panicked, that panic is resumed here; if one was cancelled (aborted, or
    /// the runtime shut down), this panics saying so. The other tasks are aborted when the
    /// set is dropped by the unwind.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::task::JoinSet;
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// let mut out = rt.block_on(async {
    ///     let set: JoinSet<_> = (0..5).map(|i| async move { i }).collect();
    ///     set.join_all().await
    /// });
    /// out.sort();
    /// assert_eq!(out, vec![0, 1, 2, 3, 4]);
    /// ```
    pub async fn join_all(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        while let Some(res) = self.join_next().await {
            match res {
                Ok(v) => out.push(v),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("JoinSet::join_all: {e}"),
            }
        }
        out
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `task` on the current runtime into the set, and returns a handle that can
    /// abort it.
    ///
    /// # Panics
    ///
    /// Outside a runtime, as [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(crate::spawn(task))
    }

    /// Spawns `task` on the runtime of `handle` into the set.
    pub fn spawn_on<F>(&mut self, task: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(handle.spawn(task))
    }

    /// Runs `f` on the current runtime's blocking pool, as a member of the set.
    ///
    /// # Panics
    ///
    /// Outside a runtime, as [`spawn_blocking`](crate::task::spawn_blocking).
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(crate::task::spawn_blocking(f))
    }

    /// Runs `f` on the blocking pool of `handle`'s runtime, as a member of the set.
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(handle.spawn_blocking(f))
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

impl<T> Drop for JoinSet<T> {
    /// Aborts every task still in the set.
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

impl<T, F> std::iter::FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    /// Spawns every future on the current runtime into a new set.
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> Self {
        let mut set = JoinSet::new();
        for f in iter {
            set.spawn(f);
        }
        set
    }
}

impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        for f in iter {
            self.spawn(f);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_members_cost_linear_handle_polls() {
        let rt = crate::Runtime::builder().worker_threads(2).build().unwrap();
        let n = 10_000;
        let polls = rt.block_on(async move {
            let mut set = JoinSet::new();
            for i in 0..n {
                set.spawn(async move {
                    crate::task::yield_now().await;
                    i
                });
            }
            let mut seen = vec![false; n];
            while let Some(res) = set.join_next().await {
                let i = res.unwrap();
                assert!(!seen[i], "task {i} joined twice");
                seen[i] = true;
            }
            assert!(seen.iter().all(|&s| s));
            set.polls
        });
        // One poll to register each member's waker and one when it finishes, plus a
        // little for wakes that race the first poll; quadratic would be ~10^8.
        assert!(polls <= 3 * n, "{polls} handle polls for {n} tasks");
    }
}
