//! One future for every io_uring operation: [`Op<T>`] over an [`Operation`], and one file
//! per opcode ([`read`], [`write`](mod@write), [`open`], [`close`], [`fsync`], [`poll_add`],
//! [`waitid`], [`statx`], [`unlinkat`], [`renameat`], [`mkdirat`], [`linkat`],
//! [`symlinkat`], and for sockets [`recv`], [`recv_multi`], [`send`](mod@send), [`recvmsg`],
//! [`sendmsg`], [`accept`], [`accept_multi`], [`connect`]).
//!
//! An [`Operation`] is the opcode's data: it owns what the kernel will use (a buffer, a
//! path, a descriptor), builds the submission entry from it, and turns the completion into
//! its output. [`Op<T>`] is everything else, written once:
//!
//! - **Submission on the calling thread's ring.** [`Op::submit`] submits on the ring the
//!   calling thread owns, at the moment it is called; it gives the operation back when the
//!   thread owns none (a `block_on` thread, a blocking-pool thread, a runtime without
//!   io_uring), so the caller can do the work elsewhere; [`Op::submit_with`] builds the
//!   operation only where it will submit. A caller that loops over short
//!   transfers submits each one where it is polled, so a task stolen by another worker
//!   submits to the new worker's ring.
//! - **Poll and wake** through the ring's op table: any thread may poll; the ring's owner
//!   reaps and wakes.
//! - **Abandon on drop.** Dropped before its completion, an `Op` hands the operation to the
//!   ring, which keeps it (and so what the kernel uses) until the CQE and then runs
//!   [`Operation::cleanup`] — which may undo a late success, as [`open::OpenAt`] closes a
//!   descriptor the kernel opened after its future was gone — and asks the kernel to
//!   cancel.
//!
//! [`submit_with_callback`] is the same submission with a callback in place of a future;
//! [`multishot`] is one submission with many completions.
//!
//! # Your own operation
//!
//! [`Operation`] is public: an opcode weft does not wrap runs through the same machinery,
//! with the same cancellation and cleanup, once its type promises (the trait is `unsafe`)
//! that the entry points only at what it owns. The `io_uring` crate's entry builders are
//! re-exported as [`io_uring`]. Here, `IORING_OP_NOP` on a ring this
//! thread owns:
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::task::{Context, Poll, Waker};
//! use std::time::Duration;
//! use weft_reactor::op::{io_uring, CqeResult, Op, Operation};
//! use weft_reactor::uring::Uring;
//! use weft_reactor::Driver;
//!
//! struct Nop;
//!
//! // SAFETY: a NOP's entry points at no memory.
//! unsafe impl Operation for Nop {
//!     type Output = std::io::Result<u32>;
//!     fn sqe(&mut self) -> io_uring::squeue::Entry {
//!         io_uring::opcode::Nop::new().build()
//!     }
//!     fn complete(self, cqe: CqeResult) -> std::io::Result<u32> {
//!         cqe.result
//!     }
//! }
//!
//! let mut ring = Uring::new(8)?;
//! let Ok(mut op) = Op::submit(Nop) else { panic!("this thread owns a ring") };
//! let mut cx = Context::from_waker(Waker::noop());
//! assert!(Pin::new(&mut op).poll(&mut cx).is_pending());
//! // The ring's owner submits and reaps when it parks (a worker does so between tasks).
//! ring.park(Some(Duration::from_secs(5)))?;
//! assert!(matches!(Pin::new(&mut op).poll(&mut cx), Poll::Ready(Ok(0))));
//! # Ok::<(), std::io::Error>(())
//! ```

/// What [`Operation::complete`] and [`Operation::cleanup`] receive.
pub use crate::uring::lifecycle::CqeResult;
/// The `io_uring` crate, whose `opcode` builders make an [`Operation`]'s entry.
pub use io_uring;

pub mod accept;
pub mod accept_multi;
pub mod close;
pub mod connect;
pub mod fsync;
pub mod linkat;
pub mod mkdirat;
pub mod multishot;
pub mod open;
pub mod poll_add;
pub mod read;
pub mod recv;
pub mod recv_multi;
pub mod recvmsg;
pub mod renameat;
pub mod send;
pub mod sendmsg;
pub mod statx;
pub mod symlinkat;
pub mod unlinkat;
pub mod waitid;
pub mod write;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::squeue;

use crate::uring::UringHandle;

/// One io_uring opcode's data: what the kernel uses, the entry that points at it, and what
/// its completion means.
///
/// # Safety
///
/// The entry that [`sqe`](Operation::sqe) returns may point only at memory that `self`
/// owns and that does not move when `self` moves (heap allocations: a `Vec`'s buffer, a
/// `CString`, a `Box`), and at descriptors that `self` keeps open. `Op` keeps `self` alive
/// until the completion is reaped, whether or not its future is.
pub unsafe trait Operation: Send + 'static {
    /// What the completion gives the caller.
    type Output;

    /// The submission entry (its `user_data` is set by the ring). Called once, at
    /// submission.
    fn sqe(&mut self) -> squeue::Entry;

    /// Turns the completion into the output.
    fn complete(self, cqe: CqeResult) -> Self::Output;

    /// Runs at the completion of an operation whose future was dropped, on the reaping
    /// thread; then `self` is dropped (the kernel is done with it). The default does
    /// nothing more.
    fn cleanup(self, cqe: CqeResult)
    where
        Self: Sized,
    {
        let _ = cqe;
    }
}

/// A submitted [`Operation`], as a future of its output; see the module docs.
#[must_use = "an Op does nothing useful unless polled; dropped, it cancels the operation"]
pub struct Op<T: Operation> {
    ring: UringHandle,
    user_data: u64,
    /// `None` once completed.
    op: Option<T>,
}

// Nothing the kernel uses lives inside the `Op` (the `Operation` contract puts it on the
// heap), so moving an `Op` is harmless.
impl<T: Operation> Unpin for Op<T> {}

impl<T: Operation> Op<T> {
    /// Submits `op` on the ring the calling thread owns, or gives it back if the thread
    /// owns none (so the caller can run it elsewhere, say on a blocking pool).
    ///
    /// The entry reaches the kernel at the ring's next park or maintenance pass, batched
    /// with the ring's other submissions.
    pub fn submit(op: T) -> Result<Op<T>, T> {
        match crate::uring::current() {
            Some(ring) => Self::submit_on(ring, op),
            None => Err(op),
        }
    }

    /// Submits `op` on `ring`, or gives it back if the ring refuses it.
    fn submit_on(ring: UringHandle, mut op: T) -> Result<Op<T>, T> {
        let entry = op.sqe();
        // SAFETY: the entry points only into what `op` owns (the `Operation` contract);
        // the `Op` keeps `op` until the completion, or hands it to the ring's cleanup.
        match unsafe { ring.submit(entry) } {
            Some(user_data) => Ok(Op {
                ring,
                user_data,
                op: Some(op),
            }),
            None => Err(op),
        }
    }

    /// Builds the operation from `arg` with `build` and submits it, only if the calling
    /// thread owns a ring; otherwise gives `arg` back untouched, having built nothing. For a
    /// caller that does the work another way on other threads (a non-blocking syscall, the
    /// blocking pool), this spares them the operation's construction and teardown
    /// (descriptor and buffer handles, hooks), which [`submit`](Op::submit) would build
    /// only to give back.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_reactor::op::{io_uring, CqeResult, Op, Operation};
    ///
    /// struct Nop;
    ///
    /// // SAFETY: a NOP's entry points at no memory.
    /// unsafe impl Operation for Nop {
    ///     type Output = std::io::Result<u32>;
    ///     fn sqe(&mut self) -> io_uring::squeue::Entry {
    ///         io_uring::opcode::Nop::new().build()
    ///     }
    ///     fn complete(self, cqe: CqeResult) -> std::io::Result<u32> {
    ///         cqe.result
    ///     }
    /// }
    ///
    /// // This thread owns no ring: `build` is not called, and the argument comes back.
    /// let back = Op::submit_with(7u8, |_| Nop).unwrap_err();
    /// assert_eq!(back, 7);
    /// ```
    #[inline]
    pub fn submit_with<A>(arg: A, build: impl FnOnce(A) -> T) -> Result<Op<T>, A> {
        let Some(ring) = crate::uring::current() else {
            return Err(arg);
        };
        // `current()` hands out only the calling thread's own ring, which accepts.
        Self::submit_on(ring, build(arg))
            .map_err(|_| unreachable!("a thread's own ring refused its submission"))
    }

    /// Whether the completion has been returned by `poll`.
    pub fn is_done(&self) -> bool {
        self.op.is_none()
    }
}

impl<T: Operation> Future for Op<T> {
    type Output = T::Output;

    /// # Panics
    ///
    /// If polled after it returned `Ready`.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        assert!(self.op.is_some(), "an Op polled after it completed");
        let cqe = std::task::ready!(self.ring.poll(self.user_data, cx.waker()));
        let op = self.op.take().expect("checked above");
        Poll::Ready(op.complete(cqe))
    }
}

impl<T: Operation> Drop for Op<T> {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            self.ring
                .abandon(self.user_data, Box::new(move |cqe| op.cleanup(cqe)));
        }
    }
}

impl<T: Operation> std::fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("user_data", &self.user_data)
            .field("done", &self.is_done())
            .finish_non_exhaustive()
    }
}

/// Whether the calling thread owns a ring, so that [`Op::submit`] would submit there.
#[inline]
pub fn can_submit() -> bool {
    crate::uring::current().is_some()
}

/// Submits `op` on the calling thread's ring so that its completion calls `callback` on
/// that thread when the ring reaps it — no future, no task. Gives both back if the thread
/// owns no ring.
pub fn submit_with_callback<T, F>(mut op: T, callback: F) -> Result<(), (T, F)>
where
    T: Operation,
    F: FnOnce(T::Output) + Send + 'static,
{
    let Some(ring) = crate::uring::current() else {
        return Err((op, callback));
    };
    let entry = op.sqe();
    let done = Box::new(move |cqe: CqeResult| callback(op.complete(cqe)));
    // SAFETY: the entry points only into what the operation owns (the `Operation`
    // contract), and the callback owns the operation until the completion is reaped.
    match unsafe { ring.submit_with_callback(entry, done) } {
        Some(_) => Ok(()),
        // `current()` hands out only the calling thread's own ring, which accepts.
        None => unreachable!("a thread's own ring refused its submission"),
    }
}
