//! Multishot operations: one submission, many completions.
//!
//! A [`MultishotOperation`] (a multishot accept, say) stays in the kernel across its
//! completions: every CQE flagged `IORING_CQE_F_MORE` is handed to
//! [`MultishotOperation::each`] and the op's slot stays reserved; the first CQE without the
//! flag is the last (the kernel ended it: an error, a cancellation, or it ran out of room)
//! and the operation is dropped after it, so what the kernel used lives exactly as long as
//! the kernel may use it.
//!
//! [`Multishot`] is the owner's handle. Dropping it asks the kernel to cancel; the
//! operation keeps receiving the completions that still come (a connection the kernel
//! accepted before it saw the cancel, say), so it must dispose of them itself — close or
//! queue them — and nothing is freed early.
//!
//! The one-shot path ([`Op`](super::Op)) is untouched: a multishot op has a slot state of
//! its own, and a one-shot completion costs the one `match` it always did.

use std::collections::BTreeMap;
use std::sync::Arc;

use io_uring::squeue;
use parking_lot::Mutex;

use super::CqeResult;
use crate::uring::UringHandle;

/// A multishot opcode's data: what the kernel uses, the entry that points at it, and what
/// each completion means.
///
/// # Safety
///
/// The entry that [`sqe`](MultishotOperation::sqe) returns may point only at memory that
/// `self` owns and that does not move when `self` moves (heap allocations), and at
/// descriptors that `self` keeps open. The ring keeps `self` alive until the last
/// completion is reaped. The kernel may write any memory the entry names at every
/// completion, so an entry should name none that `each` reads concurrently.
pub unsafe trait MultishotOperation: Send + Sync + 'static {
    /// The submission entry (its `user_data` is set by the ring; the opcode's multishot
    /// flag is the operation's to set). Called once, at submission.
    fn sqe(&mut self) -> squeue::Entry;

    /// Runs at every completion, on the reaping thread (which may differ between calls),
    /// one call at a time and in the order the completions were reaped, even when a
    /// stalled ring is reaped by another thread while its owner runs the handler (the
    /// later completion waits in a queue, and the call running takes it next). `last` is
    /// `true` for the final one (no `IORING_CQE_F_MORE`), after which `self` is dropped.
    fn each(&self, cqe: CqeResult, last: bool);
}

/// Completions reaped ahead of their turn, for [`MultishotOperation::each`]'s order.
#[derive(Default)]
struct InOrder {
    /// The place of the next completion to deliver.
    next: u64,
    waiting: BTreeMap<u64, CqeResult>,
    /// Whether a call is delivering (it takes what waits before it returns).
    running: bool,
}

/// Hands completion `seq` to `op` in sequence order: the caller runs it if it is the lowest
/// undelivered number and no other call is delivering; otherwise the delivering call runs
/// it after the completions numbered before it.
fn deliver<T: MultishotOperation>(order: &Mutex<InOrder>, op: &T, cqe: CqeResult, seq: u64) {
    let mut o = order.lock();
    if o.running || seq != o.next {
        o.waiting.insert(seq, cqe);
        if o.running {
            return;
        }
    } else {
        // Its turn, and nobody delivering: no queue.
        o.running = true;
        o.next += 1;
        drop(o);
        let last = !io_uring::cqueue::more(cqe.flags);
        op.each(cqe, last);
        o = order.lock();
    }
    o.running = true;
    loop {
        let next = o.next;
        let Some(cqe) = o.waiting.remove(&next) else {
            o.running = false;
            return;
        };
        o.next += 1;
        drop(o);
        let last = !io_uring::cqueue::more(cqe.flags);
        op.each(cqe, last);
        o = order.lock();
    }
}

/// The owner's handle on a submitted [`MultishotOperation`]; see the module docs.
/// Dropping it cancels the operation in the kernel.
pub struct Multishot {
    ring: UringHandle,
    user_data: u64,
}

impl Multishot {
    /// Submits `op` on the ring the calling thread owns, or gives it back if the thread
    /// owns none.
    pub fn submit<T: MultishotOperation>(mut op: T) -> Result<Multishot, T> {
        let Some(ring) = crate::uring::current() else {
            return Err(op);
        };
        let entry = op.sqe();
        let op = Arc::new(op);
        let handler = op.clone();
        let order = Mutex::new(InOrder::default());
        let each = Arc::new(move |cqe: CqeResult, seq: u64| deliver(&order, &*handler, cqe, seq));
        // SAFETY: the entry points only into what `op` owns (the trait's contract), and
        // the handler, which the ring keeps until the last completion, owns `op`.
        match unsafe { ring.submit_multishot(entry, each) } {
            Some(user_data) => Ok(Multishot { ring, user_data }),
            None => match Arc::try_unwrap(op) {
                Ok(op) => Err(op),
                Err(_) => unreachable!("the refused handler was dropped"),
            },
        }
    }

    /// Whether the kernel may still complete the operation (its last completion has not
    /// been reaped).
    pub fn is_live(&self) -> bool {
        self.ring.is_multishot_live(self.user_data)
    }
}

impl Drop for Multishot {
    fn drop(&mut self) {
        self.ring.cancel_multishot(self.user_data);
    }
}

impl std::fmt::Debug for Multishot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multishot")
            .field("user_data", &self.user_data)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Record(Mutex<Vec<(u32, bool)>>);

    // SAFETY: never submitted; its entry names nothing.
    unsafe impl MultishotOperation for Record {
        fn sqe(&mut self) -> squeue::Entry {
            io_uring::opcode::Nop::new().build()
        }
        fn each(&self, cqe: CqeResult, last: bool) {
            self.0.lock().push((cqe.result.unwrap(), last));
        }
    }

    /// `IORING_CQE_F_MORE`.
    const MORE: u32 = 1 << 1;

    #[test]
    fn completions_reaped_out_of_turn_are_delivered_in_order() {
        let op = Record(Mutex::new(Vec::new()));
        let order = Mutex::new(InOrder::default());
        // A second reaper runs the handler for completions 1 and 2 before the first
        // reaper gets to completion 0.
        deliver(&order, &op, CqeResult::new(11, MORE), 1);
        deliver(&order, &op, CqeResult::new(12, 0), 2);
        assert!(op.0.lock().is_empty(), "nothing ahead of completion 0");
        deliver(&order, &op, CqeResult::new(10, MORE), 0);
        assert_eq!(*op.0.lock(), [(10, false), (11, false), (12, true)]);
    }
}
