//! The task's state word: the specification of the task state machine.
//!
//! One `AtomicUsize` per task holds six flags and the reference count. Every transition is a
//! single atomic read-modify-write (a CAS loop or a `fetch_*`), so no lock is ever taken to
//! poll, wake, join or abort a task.
//!
//! # Flags
//!
//! - `RUNNING`: a thread is polling the future, or cancelling it in place. Set by
//!   [`transition_to_running`](State::transition_to_running) (from a queue entry) or by
//!   [`transition_to_shutdown`](State::transition_to_shutdown); cleared when the poll ends
//!   (`transition_to_idle`) or the task completes. While it is set, only that thread touches
//!   the future.
//! - `COMPLETE`: the future is gone and the output (or the error) is stored. Set once, never
//!   cleared. After it, wakes and aborts do nothing.
//! - `NOTIFIED`: the task has been woken since its last poll began. While the task is idle it
//!   means "a queue entry exists for it" (the entry holds a reference); while it is running it
//!   means "poll it again", and the poller re-queues it itself. Cleared by `transition_to_running`.
//! - `JOIN_INTEREST`: the `JoinHandle` is alive. Cleared when it is dropped. At completion, if
//!   it is clear, the completer drops the output; if set, the output belongs to the handle.
//! - `JOIN_WAKER`: the join waker slot holds the handle's waker and the completer may read it.
//!   The handle writes the slot only while this flag is clear and `COMPLETE` is clear.
//! - `CANCELLED`: `abort()` or runtime shutdown asked for the future to be dropped. Whoever
//!   polls the task next drops it instead (and completes it with `JoinError::Cancelled`).
//!
//! # References
//!
//! The upper bits count references; the cell is freed when the count reaches zero. References
//! are held by: the `JoinHandle`; every `Waker`; a queue entry (`Notified`), which the worker
//! that pops it takes over for the poll; and the runtime's list of owned tasks, until the
//! task completes. A new spawned task starts with three (list, queue entry, handle).
//!
//! # Transitions (who calls what)
//!
//! | event | from | to | refs |
//! |---|---|---|---|
//! | worker pops entry | idle, `NOTIFIED` | `RUNNING` | entry's ref becomes the poll's |
//! | poll → `Pending` | `RUNNING` | idle | poll's ref dropped |
//! | poll → `Pending` | `RUNNING \| NOTIFIED` | idle, `NOTIFIED` | poll's ref becomes the new entry's |
//! | poll → `Pending` after a self-wake¹ | `RUNNING` | idle, `NOTIFIED` | poll's ref becomes the new entry's |
//! | poll → `Ready` | `RUNNING` | `COMPLETE` | poll's ref (and the list's) dropped |
//! | wake (by value) | idle | `NOTIFIED` | waker's ref becomes the entry's |
//! | wake (by ref) | idle | `NOTIFIED` | +1 for the entry |
//! | wake | `RUNNING` | `RUNNING \| NOTIFIED` | by value: −1 |
//! | wake | `NOTIFIED` or `COMPLETE` | unchanged | by value: −1 |
//! | abort | idle | `NOTIFIED \| CANCELLED` | +1 for the entry |
//! | abort | `RUNNING` | `+ NOTIFIED \| CANCELLED` | none |
//! | shutdown | idle (even `NOTIFIED`) | `RUNNING \| CANCELLED`, cancelled in place | none |
//!
//! ¹ `wake_by_ref` of the task being polled, on the polling thread, is recorded in a
//! thread-local instead of the state word and applied by the poll's end (see `waker.rs`): the
//! same transitions as a wake at the very end of the poll.
//!
//! # Re-polls
//!
//! A poll that returns `Pending` after a self-wake¹, with the word still exactly `RUNNING`
//! (no other wake, no abort), may be followed at once by another poll with no transition
//! in between, if the scheduler says the task is what it would run next anyway
//! (`Schedule::repoll`; on a worker: nothing else queued there, and no maintenance or
//! global-queue turn due). That is the pair "poll → `Pending` after a self-wake" and
//! "worker pops entry" with nothing between them: the task would be idle and `NOTIFIED`
//! for an instant that no other thread can act on in a way it could not also have acted
//! on while the task ran. A wake or an abort arriving meanwhile sets `NOTIFIED` or
//! `CANCELLED` on the running task, and the end of the next poll handles it as for any
//! poll. The ready op (`examples/ready_op.rs`) skips two compare-and-swaps, a queue round
//! trip and the worker loop's tick for it.

use std::fmt;

use crate::loom::sync::{AtomicUsize, Ordering::*};

pub(super) const RUNNING: usize = 1 << 0;
pub(super) const COMPLETE: usize = 1 << 1;
pub(super) const NOTIFIED: usize = 1 << 2;
pub(super) const JOIN_INTEREST: usize = 1 << 3;
pub(super) const JOIN_WAKER: usize = 1 << 4;
pub(super) const CANCELLED: usize = 1 << 5;
const REF_SHIFT: usize = 6;
const REF_ONE: usize = 1 << REF_SHIFT;

/// The task's state word. See the module docs for the protocol.
pub(crate) struct State {
    val: AtomicUsize,
}

/// A copy of the state word at one instant.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    pub(crate) fn is(self, flag: usize) -> bool {
        self.0 & flag == flag
    }
    pub(crate) fn is_idle(self) -> bool {
        self.0 & (RUNNING | COMPLETE) == 0
    }
    /// Running, and neither woken nor cancelled since the poll began.
    pub(crate) fn is_running_alone(self) -> bool {
        self.0 & (RUNNING | NOTIFIED | CANCELLED | COMPLETE) == RUNNING
    }
    pub(crate) fn ref_count(self) -> usize {
        self.0 >> REF_SHIFT
    }
    fn set(&mut self, flag: usize) {
        self.0 |= flag;
    }
    fn unset(&mut self, flag: usize) {
        self.0 &= !flag;
    }
    fn ref_inc(&mut self) {
        assert!(
            self.0 <= isize::MAX as usize,
            "task reference count overflow"
        );
        self.0 += REF_ONE;
    }
    fn ref_dec(&mut self) {
        debug_assert!(self.ref_count() > 0);
        self.0 -= REF_ONE;
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is(RUNNING))
            .field("complete", &self.is(COMPLETE))
            .field("notified", &self.is(NOTIFIED))
            .field("join_interest", &self.is(JOIN_INTEREST))
            .field("join_waker", &self.is(JOIN_WAKER))
            .field("cancelled", &self.is(CANCELLED))
            .field("refs", &self.ref_count())
            .finish()
    }
}

/// Outcome of popping a queue entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToRunning {
    /// Poll the future.
    Success,
    /// Drop the future: it was aborted.
    Cancelled,
    /// Nothing to run (already complete or being cancelled in place); the entry's reference
    /// was dropped and, if `true`, it was the last one.
    Failed(bool),
}

/// Outcome of a poll that returned `Pending`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToIdle {
    /// Idle; the poll's reference was dropped (and, if `true`, it was the last).
    Ok(bool),
    /// Woken during the poll: re-queue it with the poll's reference.
    OkNotified,
    /// Aborted during the poll: drop the future and complete.
    Cancelled,
}

/// What a wake must do after its transition.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToNotified {
    /// Nothing more.
    DoNothing,
    /// Push a queue entry (the reference for it is already accounted for).
    Submit,
    /// The last reference was dropped: free the cell.
    Dealloc,
}

impl State {
    /// A new spawned task: queued (`NOTIFIED`), joined, with `refs` references.
    pub(crate) fn new(refs: usize) -> State {
        State {
            val: AtomicUsize::new(NOTIFIED | JOIN_INTEREST | refs << REF_SHIFT),
        }
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.val.load(Acquire))
    }

    fn fetch_update<T>(&self, mut f: impl FnMut(Snapshot) -> (T, Option<Snapshot>)) -> T {
        let mut curr = self.load();
        loop {
            let (out, next) = f(curr);
            let Some(next) = next else { return out };
            match self
                .val
                .compare_exchange_weak(curr.0, next.0, AcqRel, Acquire)
            {
                Ok(_) => return out,
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    /// A worker popped a queue entry and wants to poll.
    pub(crate) fn transition_to_running(&self) -> ToRunning {
        self.fetch_update(|mut s| {
            debug_assert!(s.is(NOTIFIED) || s.is(COMPLETE) || s.is(CANCELLED));
            if !s.is_idle() {
                s.ref_dec();
                return (ToRunning::Failed(s.ref_count() == 0), Some(s));
            }
            s.set(RUNNING);
            s.unset(NOTIFIED);
            let out = if s.is(CANCELLED) {
                ToRunning::Cancelled
            } else {
                ToRunning::Success
            };
            (out, Some(s))
        })
    }

    /// The poll returned `Pending`. `self_woken`: the task woke itself during the poll on
    /// the polling thread, which recorded it thread-locally instead of setting `NOTIFIED`
    /// (see `waker.rs`); it is set here, in the same compare-and-swap.
    pub(crate) fn transition_to_idle(&self, self_woken: bool) -> ToIdle {
        self.fetch_update(|mut s| {
            debug_assert!(s.is(RUNNING));
            if s.is(CANCELLED) {
                return (ToIdle::Cancelled, None);
            }
            if self_woken {
                s.set(NOTIFIED);
            }
            s.unset(RUNNING);
            if s.is(NOTIFIED) {
                (ToIdle::OkNotified, Some(s))
            } else {
                s.ref_dec();
                (ToIdle::Ok(s.ref_count() == 0), Some(s))
            }
        })
    }

    /// The output is stored: `RUNNING` → `COMPLETE`. Returns the state after.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        let prev = Snapshot(self.val.fetch_xor(RUNNING | COMPLETE, AcqRel));
        debug_assert!(prev.is(RUNNING) && !prev.is(COMPLETE));
        Snapshot(prev.0 ^ (RUNNING | COMPLETE))
    }

    /// Drops `n` references; `true` if they were the last.
    pub(crate) fn ref_dec_by(&self, n: usize) -> bool {
        let prev = Snapshot(self.val.fetch_sub(n * REF_ONE, AcqRel));
        debug_assert!(prev.ref_count() >= n, "{prev:?} minus {n}");
        prev.ref_count() == n
    }

    pub(crate) fn ref_inc(&self) {
        let prev = self.val.fetch_add(REF_ONE, Relaxed);
        // A count this large means references are leaking; stop before it wraps.
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// A waker is consumed by `wake`.
    pub(crate) fn transition_to_notified_by_val(&self) -> ToNotified {
        self.fetch_update(|mut s| {
            if s.is(RUNNING) {
                s.set(NOTIFIED);
                s.ref_dec();
                (ToNotified::DoNothing, Some(s))
            } else if s.is(COMPLETE) || s.is(NOTIFIED) {
                s.ref_dec();
                let out = if s.ref_count() == 0 {
                    ToNotified::Dealloc
                } else {
                    ToNotified::DoNothing
                };
                (out, Some(s))
            } else {
                s.set(NOTIFIED);
                (ToNotified::Submit, Some(s))
            }
        })
    }

    /// A waker is used by `wake_by_ref`.
    pub(crate) fn transition_to_notified_by_ref(&self) -> ToNotified {
        self.fetch_update(|mut s| {
            if s.is(COMPLETE) || s.is(NOTIFIED) {
                (ToNotified::DoNothing, None)
            } else if s.is(RUNNING) {
                s.set(NOTIFIED);
                (ToNotified::DoNothing, Some(s))
            } else {
                s.set(NOTIFIED);
                s.ref_inc();
                (ToNotified::Submit, Some(s))
            }
        })
    }

    /// `abort()`: returns `true` if the caller must submit a queue entry (one reference was
    /// added for it) so that a worker drops the future.
    pub(crate) fn transition_to_notified_and_cancel(&self) -> bool {
        self.fetch_update(|mut s| {
            if s.is(COMPLETE) || s.is(CANCELLED) {
                (false, None)
            } else if s.is(RUNNING) || s.is(NOTIFIED) {
                s.set(NOTIFIED | CANCELLED);
                (false, Some(s))
            } else {
                s.set(NOTIFIED | CANCELLED);
                s.ref_inc();
                (true, Some(s))
            }
        })
    }

    /// Runtime shutdown: marks the task cancelled; returns `true` if the caller now holds
    /// `RUNNING` and must cancel it in place.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.fetch_update(|mut s| {
            let idle = s.is_idle();
            if idle {
                s.set(RUNNING);
            }
            s.set(CANCELLED);
            (idle, Some(s))
        })
    }

    /// The handle is dropped before completion: clears `JOIN_INTEREST`. Fails (returns
    /// `false`) if the task has completed, in which case the handle owns the output and
    /// must drop it.
    pub(crate) fn unset_join_interested(&self) -> bool {
        self.fetch_update(|mut s| {
            debug_assert!(s.is(JOIN_INTEREST));
            if s.is(COMPLETE) {
                return (false, None);
            }
            s.unset(JOIN_INTEREST);
            (true, Some(s))
        })
    }

    /// Publishes the join waker. Fails if the task completed meanwhile.
    pub(crate) fn set_join_waker(&self) -> Result<(), Snapshot> {
        self.fetch_update(|mut s| {
            debug_assert!(s.is(JOIN_INTEREST) && !s.is(JOIN_WAKER));
            if s.is(COMPLETE) {
                return (Err(s), None);
            }
            s.set(JOIN_WAKER);
            (Ok(()), Some(s))
        })
    }

    /// Takes the join waker back so the handle may replace it. Fails if the task completed.
    pub(crate) fn unset_join_waker(&self) -> Result<(), Snapshot> {
        self.fetch_update(|mut s| {
            debug_assert!(s.is(JOIN_INTEREST) && s.is(JOIN_WAKER));
            if s.is(COMPLETE) {
                return (Err(s), None);
            }
            s.unset(JOIN_WAKER);
            (Ok(()), Some(s))
        })
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn poll_cycle() {
        let s = State::new(3);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_idle(false), ToIdle::Ok(false));
        assert_eq!(s.load().ref_count(), 2);
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::Submit);
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        // Woken while running: re-queued with the poll's reference.
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert_eq!(s.transition_to_idle(false), ToIdle::OkNotified);
        assert_eq!(s.load().ref_count(), 3);
        // A self-wake recorded by the poller: the same outcome, folded into one CAS.
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_idle(true), ToIdle::OkNotified);
        assert!(s.load().is(NOTIFIED));
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        let after = s.transition_to_complete();
        assert!(after.is(COMPLETE) && !after.is(RUNNING));
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert!(!s.transition_to_notified_and_cancel());
        assert!(!s.ref_dec_by(2));
        assert!(s.ref_dec_by(1));
    }

    #[test]
    fn abort_idle_task_submits_once() {
        let s = State::new(2);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_idle(false), ToIdle::Ok(false));
        assert!(s.transition_to_notified_and_cancel());
        assert!(!s.transition_to_notified_and_cancel());
        assert_eq!(s.transition_to_running(), ToRunning::Cancelled);
    }

    #[test]
    fn shutdown_cancels_idle_in_place_and_entry_fails_later() {
        let s = State::new(3);
        assert!(s.transition_to_shutdown());
        s.transition_to_complete();
        assert_eq!(s.transition_to_running(), ToRunning::Failed(false));
    }

    #[test]
    fn wake_by_val_on_complete_drops_last_ref() {
        let s = State::new(1);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        s.transition_to_complete();
        assert_eq!(s.transition_to_notified_by_val(), ToNotified::Dealloc);
    }
}
