//! Task ids: a unique, non-zero `u64` per task, for logs and for telling tasks apart.
//!
//! # Design
//!
//! One global counter would put one contended atomic on every spawn, on a cache line that
//! every spawning thread writes. Instead each thread reserves a block of [`BLOCK`] ids from
//! the global counter with one `fetch_add` and hands them out from the thread context's
//! `task_ids` range (`context.rs`), so the shared line is written once per 1024 spawns of a
//! thread (a spawn during thread-local destruction takes a block for itself). Ids are unique but not dense and
//! not ordered across threads; nothing may rely on their order.
//!
//! The id sits in the task header (8 bytes, next to the state word): [`id`] reads it through
//! the pointer the worker already keeps to the task it polls (`waker.rs`), so knowing the
//! current task costs no extra store per poll.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Ids a thread takes from the global counter at a time.
const BLOCK: u64 = 1024;

/// The next block to hand out (block `b` holds ids `b * BLOCK .. (b + 1) * BLOCK`).
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);

/// An opaque id that is unique among all tasks of all runtimes in the process, for as
/// long as the process runs.
///
/// `Display` prints the number; `Debug` prints `Id(number)`.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let h = weft_runtime::spawn(async { weft_runtime::task::id() });
///     let id = h.id();
///     assert_eq!(h.await.unwrap(), id);
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    /// A fresh id.
    pub(crate) fn next() -> Id {
        let take = |(next, end): (u64, u64)| {
            if next != end {
                return (next, end);
            }
            let block = NEXT_BLOCK.fetch_add(1, Relaxed);
            let start = block * BLOCK;
            (start.max(1), start + BLOCK)
        };
        let raw = crate::context::with(|cx| {
            let (next, end) = take(cx.task_ids().get());
            cx.task_ids().set((next + 1, end));
            next
        })
        .unwrap_or_else(|| take((0, 0)).0);
        Id(NonZeroU64::new(raw).expect("task ids start at 1"))
    }

    /// The id stored in a header; `None` for a header with no id (a deferred callback).
    pub(crate) fn from_raw(raw: u64) -> Option<Id> {
        NonZeroU64::new(raw).map(Id)
    }

    /// The number, for the task header.
    pub(crate) fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

/// The id of the task this code runs in.
///
/// # Panics
///
/// Outside a task (in `block_on`'s own future, or on a thread that is not polling a task);
/// see [`try_id`].
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (a, b) = rt.block_on(async {
///     let a = weft_runtime::spawn(async { weft_runtime::task::id() });
///     let b = weft_runtime::spawn(async { weft_runtime::task::id() });
///     (a.await.unwrap(), b.await.unwrap())
/// });
/// assert_ne!(a, b);
/// ```
#[track_caller]
pub fn id() -> Id {
    try_id().expect("weft::task::id() called outside a task (use `try_id` there)")
}

/// The id of the task this code runs in, or `None` outside a task.
///
/// # Examples
///
/// ```
/// assert!(weft_runtime::task::try_id().is_none());
/// let rt = weft_runtime::Runtime::new().unwrap();
/// assert!(rt.block_on(async { weft_runtime::task::try_id() }).is_none());
/// let inner = rt.block_on(async {
///     weft_runtime::spawn(async { weft_runtime::task::try_id() }).await.unwrap()
/// });
/// assert!(inner.is_some());
/// ```
pub fn try_id() -> Option<Id> {
    super::waker::current_task_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_non_zero_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..3000).map(|_| Id::next()).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .map(Id::as_u64)
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate task ids");
        assert!(all[0] > 0);
    }

    #[test]
    fn display_and_debug_match_tokio() {
        let id = Id::from_raw(42).unwrap();
        assert_eq!(id.to_string(), "42");
        assert_eq!(format!("{id:?}"), "Id(42)");
        assert!(Id::from_raw(0).is_none());
    }
}
