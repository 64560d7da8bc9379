//! The cooperative budget: a task may make at most [`BUDGET`] units of progress through
//! weft's own leaf futures (join handles, `JoinSet`, file, socket and process operations on
//! a ring, signal streams) per poll. Once spent,
//! those futures return `Pending` after waking the task, so a task that is always ready goes
//! to the back of the queue and its peers get the worker.
//!
//! Each task poll starts with a fresh budget, set and restored with the polled task itself
//! (`task/waker.rs`'s poll guard), and so does each poll of `block_on`'s future
//! ([`with_budget`]). Outside those polls the budget is unconstrained. The
//! budget is the thread context's `budget` field (`context.rs`).

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Context, Poll};

/// Units of progress per task poll.
pub(crate) const BUDGET: u8 = 128;

/// Runs `f` with the thread's budget cell, if the context is still there.
#[inline(always)]
fn with_cell<R>(f: impl FnOnce(&Cell<Option<u8>>) -> R) -> Option<R> {
    crate::context::with(|cx| f(cx.budget()))
}

/// Runs `f` (one task poll) with a fresh budget, restoring the previous one afterwards.
#[inline]
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(Option<u8>);
    impl Drop for Reset {
        fn drop(&mut self) {
            with_cell(|c| c.set(self.0));
        }
    }
    let _reset = Reset(with_cell(|c| c.replace(Some(BUDGET))).flatten());
    f()
}

/// Spends one unit, or (budget exhausted) wakes the task and returns `Pending`.
///
/// The returned guard gives the unit back unless [`RestoreOnPending::made_progress`] is
/// called, so a leaf that ends up `Pending` anyway costs nothing.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    let budget = with_cell(|c| match c.get() {
        None => Poll::Ready(RestoreOnPending(None)),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            c.set(Some(n - 1));
            Poll::Ready(RestoreOnPending(Some(n)))
        }
    });
    budget.unwrap_or(Poll::Ready(RestoreOnPending(None)))
}

/// See [`poll_proceed`].
#[derive(Debug)]
pub(crate) struct RestoreOnPending(Option<u8>);

impl RestoreOnPending {
    pub(crate) fn made_progress(mut self) {
        self.0 = None;
    }
}

impl Drop for RestoreOnPending {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            with_cell(|c| c.set(Some(n)));
        }
    }
}

/// Spends one unit of the task's cooperative budget, yielding to other tasks once it is
/// exhausted.
///
/// Call it in loops that do a lot of work without awaiting anything that could be pending,
/// so that they still let their worker's other tasks run.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut sum = 0u64;
///     for i in 0..10_000 {
///         sum += i;
///         weft_runtime::task::consume_budget().await;
///     }
///     assert_eq!(sum, 49_995_000);
/// });
/// ```
pub async fn consume_budget() {
    poll_fn(|cx| {
        let guard = std::task::ready!(poll_proceed(cx));
        guard.made_progress();
        Poll::Ready(())
    })
    .await
}

/// Runs `f` with no budget limit, restoring the budget afterwards.
pub(crate) fn unconstrained<R>(f: impl FnOnce() -> R) -> R {
    let prev = with_cell(|c| c.replace(None)).flatten();
    let out = f();
    with_cell(|c| c.set(prev));
    out
}
