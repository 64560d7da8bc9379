//! The op table: one slot per in-flight io_uring operation, keyed by the SQE's `user_data`.
//!
//! This is the reactor's bookkeeping without the kernel: every rule about who may free what,
//! and when, lives here and is unit-tested here.
//!
//! # The rule
//!
//! **A buffer, path, fd or `Timespec` handed to the kernel belongs to the in-flight operation
//! until its completion is reaped.** An op future owns those resources while it waits; if it
//! is dropped first, they move into the slot (`Ignored`) and are released only when the CQE
//! arrives. The slot itself is freed only at the CQE too, so a `user_data` is never reused
//! while the kernel may still complete it.
//!
//! # Lifecycle
//!
//! ```text
//!              poll (not done)              complete
//! Submitted ───────────────────► Waiting ───────────► Completed ──poll──► (freed)
//!     │                             │                    │
//!     │ complete                    │ future dropped     │ future dropped
//!     ▼                             ▼                    ▼
//! Completed                      Ignored ──complete──► (freed; cleanup runs)
//!
//! OnComplete ──complete──► (freed; the callback runs on the reaping thread)
//!
//!            complete with F_MORE (the handler runs; the slot stays)
//!              ┌──────┐
//!              ▼      │
//! Multishot ──────────┴──complete without F_MORE──► (freed; the handler runs, then drops)
//! ```
//!
//! A multishot op (`Multishot`) completes many times: every CQE flagged
//! `IORING_CQE_F_MORE` runs its handler and keeps the slot, so the `user_data` stays
//! reserved; the first CQE without the flag is the last, runs the handler once more and
//! frees the slot, dropping the handler (and with it the resources the kernel used) only
//! then. Its owner's handle going away does not free anything: it asks the kernel to cancel,
//! and the handler sees the remaining completions.
//!
//! `user_data` is `generation << 32 | index`: a completion or a poll naming a slot that has
//! since been freed and reused is detected, never misdelivered. Values with the top bit set
//! are reserved for the reactor's own operations (the eventfd read, cancellations).

use std::fmt;
use std::io;
use std::task::{Poll, Waker};

/// The result of one completion: `res` (a byte count, an fd, or a negated errno) and flags.
#[derive(Debug)]
pub struct CqeResult {
    /// `Ok(res)` for a non-negative result, the errno otherwise.
    pub result: io::Result<u32>,
    /// The CQE's flags (`IORING_CQE_F_*`).
    pub flags: u32,
}

impl CqeResult {
    /// Decodes a CQE's `res` and `flags`.
    pub fn new(res: i32, flags: u32) -> CqeResult {
        let result = if res >= 0 {
            Ok(res as u32)
        } else {
            Err(io::Error::from_raw_os_error(-res))
        };
        CqeResult { result, flags }
    }
}

/// Runs when an op whose future was dropped completes: owns the resources the kernel used,
/// and may undo a late success (close an fd that an abandoned open returned).
pub(crate) type OnAbandon = Box<dyn FnOnce(CqeResult) + Send>;

/// Runs when an op submitted with a callback completes, on the reaping thread.
pub(crate) type OnComplete = Box<dyn FnOnce(CqeResult) + Send>;

/// Runs at every completion of a multishot op, on the reaping thread, with the
/// completion's place among the op's completions (0, 1, 2... in the order they were reaped:
/// two reaping threads may run the handler out of that order); owns what the kernel uses,
/// and is dropped after the last completion.
pub(crate) type OnEach = std::sync::Arc<dyn Fn(CqeResult, u64) + Send + Sync>;

pub(crate) enum Lifecycle {
    /// In the kernel; nobody has polled yet.
    Submitted,
    /// In the kernel; a future waits (wake this at completion).
    Waiting(Waker),
    /// The future was dropped; the cleanup keeps the resources alive until the CQE.
    Ignored(OnAbandon),
    /// Done; the result waits for the future's next poll.
    Completed(CqeResult),
    /// Done by running a callback, with no future and no task.
    OnComplete(OnComplete),
    /// A multishot op: in the kernel until a completion without `IORING_CQE_F_MORE`; and
    /// how many completions it has had.
    Multishot(OnEach, u64),
    /// The ring was dropped while the kernel still held this op: whatever it used is leaked
    /// (never freed), and a future still waiting on it never completes.
    Leaked,
}

/// What the reaper must do after recording a completion.
pub(crate) enum Reaped {
    /// Wake this future.
    Wake(Waker),
    /// Nothing (the future will find the result when it polls).
    Nothing,
    /// Run this (the cleanup of a dropped op, or the op's callback) outside the table lock.
    Run(Box<dyn FnOnce(CqeResult) + Send>, CqeResult),
    /// Run this multishot handler outside the table lock (the slot may stay live), with
    /// the completion's place.
    RunEach(OnEach, CqeResult, u64),
    /// The `user_data` names no live op (stale or reserved): ignore it.
    Unknown,
}

struct Slot {
    generation: u32,
    state: Option<Lifecycle>,
}

/// The op table of one ring.
pub(crate) struct Ops {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// Live slots whose completion has been reaped (waiting for their future's poll).
    completed: usize,
}

/// `user_data` values at or above this are the reactor's own.
pub(crate) const RESERVED: u64 = 1 << 63;

fn split(user_data: u64) -> Option<(usize, u32)> {
    if user_data >= RESERVED {
        return None;
    }
    Some(((user_data & 0xFFFF_FFFF) as usize, (user_data >> 32) as u32))
}

impl Ops {
    pub(crate) fn new() -> Ops {
        Ops {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            completed: 0,
        }
    }

    /// Ops whose slot is still allocated (in the kernel, or completed and not yet polled).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Ops the kernel may still be using.
    pub(crate) fn in_kernel(&self) -> usize {
        self.live - self.completed
    }

    /// The ring is going away with ops still in the kernel: leak what they use. Cleanups
    /// and callbacks are forgotten, not run (running them would free memory the kernel may
    /// still write to); waiting futures are left pending.
    pub(crate) fn leak_in_kernel(&mut self) {
        for slot in &mut self.slots {
            match slot.state.take() {
                Some(Lifecycle::Ignored(f) | Lifecycle::OnComplete(f)) => {
                    std::mem::forget(f);
                    slot.state = Some(Lifecycle::Leaked);
                }
                Some(Lifecycle::Multishot(f, _)) => {
                    std::mem::forget(f);
                    slot.state = Some(Lifecycle::Leaked);
                }
                Some(Lifecycle::Submitted | Lifecycle::Waiting(_)) => {
                    slot.state = Some(Lifecycle::Leaked);
                }
                other => slot.state = other,
            }
        }
    }

    /// Allocates a slot for an op about to be submitted and returns its `user_data`.
    pub(crate) fn insert(&mut self, state: Lifecycle) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                assert!(self.slots.len() < u32::MAX as usize >> 1, "op table full");
                self.slots.push(Slot {
                    generation: 0,
                    state: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.state = Some(state);
        self.live += 1;
        ((slot.generation as u64 & 0x7FFF_FFFF) << 32) | index as u64
    }

    fn slot(&mut self, user_data: u64) -> Option<&mut Slot> {
        let (index, generation) = split(user_data)?;
        let slot = self.slots.get_mut(index)?;
        (slot.generation & 0x7FFF_FFFF == generation && slot.state.is_some()).then_some(slot)
    }

    fn free(&mut self, user_data: u64) -> Lifecycle {
        let index = (user_data & 0xFFFF_FFFF) as usize;
        let slot = &mut self.slots[index];
        let state = slot.state.take().expect("freeing a free slot");
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.live -= 1;
        if matches!(state, Lifecycle::Completed(_)) {
            self.completed -= 1;
        }
        state
    }

    /// A future polls its op: the result if complete (the slot is freed), else `Pending`
    /// with `waker` stored.
    pub(crate) fn poll(&mut self, user_data: u64, waker: &Waker) -> Poll<CqeResult> {
        let slot = self
            .slot(user_data)
            .expect("an op future polled a slot it does not own");
        match slot.state.as_mut() {
            Some(Lifecycle::Completed(_)) => match self.free(user_data) {
                Lifecycle::Completed(r) => Poll::Ready(r),
                _ => unreachable!(),
            },
            Some(Lifecycle::Waiting(w)) => {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                Poll::Pending
            }
            Some(state @ Lifecycle::Submitted) => {
                *state = Lifecycle::Waiting(waker.clone());
                Poll::Pending
            }
            Some(Lifecycle::Leaked) => Poll::Pending,
            Some(Lifecycle::Ignored(_) | Lifecycle::OnComplete(_) | Lifecycle::Multishot(..))
            | None => {
                unreachable!("an op future polled a slot it gave away")
            }
        }
    }

    /// The future is dropped before it saw the result. Returns `true` if the op is still in
    /// the kernel (the caller then asks the kernel to cancel it); the resources stay with
    /// the slot until the completion. If the result was already in, the slot is freed and
    /// `cleanup` runs now (it is returned to be run outside the lock).
    pub(crate) fn abandon(&mut self, user_data: u64, cleanup: OnAbandon) -> Result<bool, Reaped> {
        let slot = self
            .slot(user_data)
            .expect("an op future dropped a slot it does not own");
        match slot.state.as_mut() {
            Some(Lifecycle::Completed(_)) => match self.free(user_data) {
                Lifecycle::Completed(r) => Err(Reaped::Run(cleanup, r)),
                _ => unreachable!(),
            },
            Some(state @ (Lifecycle::Submitted | Lifecycle::Waiting(_))) => {
                *state = Lifecycle::Ignored(cleanup);
                Ok(true)
            }
            Some(Lifecycle::Leaked) => {
                // The ring is gone and the kernel may still use the resources: leak them.
                std::mem::forget(cleanup);
                Ok(false)
            }
            _ => unreachable!("an op future dropped a slot it gave away"),
        }
    }

    /// Whether `user_data` is a multishot op the kernel may still complete (its last
    /// completion not reaped): its owner then asks the kernel to cancel it.
    pub(crate) fn is_multishot_live(&mut self, user_data: u64) -> bool {
        matches!(
            self.slot(user_data).and_then(|s| s.state.as_ref()),
            Some(Lifecycle::Multishot(..))
        )
    }

    /// Records the completion of `user_data`.
    pub(crate) fn complete(&mut self, user_data: u64, result: CqeResult) -> Reaped {
        let Some(slot) = self.slot(user_data) else {
            return Reaped::Unknown;
        };
        match slot.state.take() {
            Some(Lifecycle::Waiting(w)) => {
                slot.state = Some(Lifecycle::Completed(result));
                self.completed += 1;
                Reaped::Wake(w)
            }
            Some(Lifecycle::Submitted) => {
                slot.state = Some(Lifecycle::Completed(result));
                self.completed += 1;
                Reaped::Nothing
            }
            Some(Lifecycle::Ignored(f) | Lifecycle::OnComplete(f)) => {
                slot.state = Some(Lifecycle::Submitted);
                self.free(user_data);
                Reaped::Run(f, result)
            }
            Some(Lifecycle::Multishot(f, seq)) => {
                if io_uring::cqueue::more(result.flags) {
                    slot.state = Some(Lifecycle::Multishot(f.clone(), seq + 1));
                } else {
                    slot.state = Some(Lifecycle::Submitted);
                    self.free(user_data);
                }
                Reaped::RunEach(f, result, seq)
            }
            Some(Lifecycle::Completed(prev)) => {
                // A second CQE for one op (multishot): keep the first until it is polled.
                slot.state = Some(Lifecycle::Completed(prev));
                Reaped::Nothing
            }
            Some(Lifecycle::Leaked) => {
                slot.state = Some(Lifecycle::Leaked);
                Reaped::Unknown
            }
            None => Reaped::Unknown,
        }
    }
}

impl fmt::Debug for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ops")
            .field("live", &self.live)
            .field("capacity", &self.slots.len())
            .finish()
    }
}

/// Keeps a value alive inside a [`OnAbandon`] until the completion arrives, then drops it.
#[cfg(test)]
pub(crate) fn keep_until_complete<T: Send + 'static>(resources: T) -> OnAbandon {
    let resources: Box<dyn std::any::Any + Send> = Box::new(resources);
    Box::new(move |_| drop(resources))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn poll_then_complete_wakes_and_frees() {
        let mut ops = Ops::new();
        let (c, w) = waker();
        let ud = ops.insert(Lifecycle::Submitted);
        assert!(ops.poll(ud, &w).is_pending());
        match ops.complete(ud, CqeResult::new(4096, 0)) {
            Reaped::Wake(w) => w.wake(),
            _ => panic!("expected a wake"),
        }
        assert_eq!(c.0.load(SeqCst), 1);
        match ops.poll(ud, &w) {
            Poll::Ready(r) => assert_eq!(r.result.unwrap(), 4096),
            Poll::Pending => panic!("completed op pending"),
        }
        assert_eq!(ops.live(), 0);
    }

    #[test]
    fn completion_before_first_poll_is_kept() {
        let mut ops = Ops::new();
        let (_, w) = waker();
        let ud = ops.insert(Lifecycle::Submitted);
        assert!(matches!(
            ops.complete(ud, CqeResult::new(-2, 0)),
            Reaped::Nothing
        ));
        match ops.poll(ud, &w) {
            Poll::Ready(r) => assert_eq!(r.result.unwrap_err().kind(), io::ErrorKind::NotFound),
            Poll::Pending => panic!(),
        }
    }

    #[test]
    fn dropped_future_keeps_resources_until_the_cqe() {
        let mut ops = Ops::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let ud = ops.insert(Lifecycle::Submitted);
        let cancel = ops.abandon(ud, keep_until_complete(Dropped(drops.clone())));
        assert!(matches!(cancel, Ok(true)));
        // The kernel still owns the buffer: nothing freed, the slot not reusable.
        assert_eq!(drops.load(SeqCst), 0);
        assert_eq!(ops.live(), 1);
        let other = ops.insert(Lifecycle::Submitted);
        assert_ne!(other & 0xFFFF_FFFF, ud & 0xFFFF_FFFF);
        match ops.complete(ud, CqeResult::new(-125, 0)) {
            Reaped::Run(f, r) => f(r),
            _ => panic!("expected the cleanup"),
        }
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn late_success_of_an_abandoned_op_reaches_its_cleanup() {
        let mut ops = Ops::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let ud = ops.insert(Lifecycle::Submitted);
        let _ = ops.abandon(
            ud,
            Box::new(move |r: CqeResult| {
                // An abandoned open that succeeded must close the fd it returned.
                s.store(r.result.unwrap() as usize, SeqCst);
            }),
        );
        if let Reaped::Run(f, r) = ops.complete(ud, CqeResult::new(7, 0)) {
            f(r);
        }
        assert_eq!(seen.load(SeqCst), 7);
    }

    #[test]
    fn stale_and_reserved_user_data_are_ignored() {
        let mut ops = Ops::new();
        let (_, w) = waker();
        let ud = ops.insert(Lifecycle::Submitted);
        let _ = ops.complete(ud, CqeResult::new(1, 0));
        let _ = ops.poll(ud, &w);
        let reused = ops.insert(Lifecycle::Submitted);
        assert_eq!(reused & 0xFFFF_FFFF, ud & 0xFFFF_FFFF, "slot reused");
        assert_ne!(reused, ud, "with a new generation");
        assert!(matches!(
            ops.complete(ud, CqeResult::new(1, 0)),
            Reaped::Unknown
        ));
        assert!(matches!(
            ops.complete(RESERVED | 5, CqeResult::new(1, 0)),
            Reaped::Unknown
        ));
    }

    #[test]
    fn callback_runs_at_completion() {
        let mut ops = Ops::new();
        let got = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        let ud = ops.insert(Lifecycle::OnComplete(Box::new(move |r| {
            g.store(r.result.unwrap() as usize, SeqCst)
        })));
        match ops.complete(ud, CqeResult::new(42, 0)) {
            Reaped::Run(f, r) => f(r),
            _ => panic!(),
        }
        assert_eq!(got.load(SeqCst), 42);
        assert_eq!(ops.live(), 0);
    }

    /// `IORING_CQE_F_MORE`.
    const MORE: u32 = 1 << 1;

    fn each_counter() -> (Arc<AtomicUsize>, Arc<AtomicUsize>, OnEach) {
        let seen = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = Arc::new(Dropped(drops.clone()));
        let (s, g) = (seen.clone(), guard.clone());
        let each: OnEach = Arc::new(move |r: CqeResult, _| {
            let _keep = &g;
            s.fetch_add(r.result.unwrap_or(0) as usize, SeqCst);
        });
        drop(guard);
        (seen, drops, each)
    }

    fn run(reaped: Reaped) {
        match reaped {
            Reaped::RunEach(f, r, seq) => f(r, seq),
            _ => panic!("expected the multishot handler"),
        }
    }

    #[test]
    fn multishot_slot_lives_while_more_and_frees_at_the_last() {
        assert!(io_uring::cqueue::more(MORE));
        let mut ops = Ops::new();
        let (seen, drops, each) = each_counter();
        let ud = ops.insert(Lifecycle::Multishot(each, 0));
        run(ops.complete(ud, CqeResult::new(1, MORE)));
        run(ops.complete(ud, CqeResult::new(2, MORE)));
        assert_eq!(seen.load(SeqCst), 3, "every result delivered");
        assert_eq!(ops.live(), 1, "the slot stays while the kernel has more");
        assert_eq!(ops.in_kernel(), 1);
        assert!(ops.is_multishot_live(ud));
        assert_eq!(drops.load(SeqCst), 0, "resources kept");
        run(ops.complete(ud, CqeResult::new(4, 0)));
        assert_eq!(seen.load(SeqCst), 7, "the last result delivered too");
        assert_eq!(ops.live(), 0, "freed at the completion without F_MORE");
        assert!(!ops.is_multishot_live(ud));
        assert_eq!(drops.load(SeqCst), 1, "resources released after the last");
        assert!(matches!(
            ops.complete(ud, CqeResult::new(8, 0)),
            Reaped::Unknown
        ));
    }

    #[test]
    fn multishot_resources_leak_with_the_ring() {
        let mut ops = Ops::new();
        let (_, drops, each) = each_counter();
        let ud = ops.insert(Lifecycle::Multishot(each, 0));
        ops.leak_in_kernel();
        assert_eq!(drops.load(SeqCst), 0, "the kernel may still use them");
        assert!(matches!(
            ops.complete(ud, CqeResult::new(1, 0)),
            Reaped::Unknown
        ));
    }
}
