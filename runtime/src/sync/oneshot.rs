//! A channel for one value: [`channel`] returns a [`Sender`] and a [`Receiver`].
//!
//! One allocation (the shared cell, behind an `Arc`) and one state word; a send is one
//! compare-and-swap plus, if the receiver is waiting, one wake.
//!
//! # The state word
//!
//! - `RX_TASK`: the receiver's waker is in `rx_waker`; the sender may read it.
//! - `COMPLETE`: the sender is done: `value` holds the value, or the sender was dropped
//!   without sending (`value` is `None`).
//! - `CLOSED`: the receiver closed or was dropped; a later send gives the value back.
//! - `TX_TASK`: the sender's waker (for [`Sender::closed`]) is in `tx_waker`.
//!
//! # Who touches which cell
//!
//! 1. `value`: written by the sender before it sets `COMPLETE` (a CAS that fails if
//!    `CLOSED` is set, in which case the sender takes the value back); read by the receiver
//!    only after it observed `COMPLETE` (acquire), never by the sender afterwards.
//! 2. `rx_waker`: touched by the receiver only while `RX_TASK` and `COMPLETE` are both
//!    clear (it clears `RX_TASK` with a CAS that fails on `COMPLETE` before replacing a
//!    waker, and never reads the cell while `RX_TASK` is set); taken and woken by the sender
//!    only if `RX_TASK` was set at the moment it set `COMPLETE`, after which the receiver
//!    never touches it again.
//! 3. `tx_waker`: the mirror image, with `TX_TASK`, `CLOSED`, and the receiver taking it.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::sync::{Arc, AtomicUsize, Ordering::*, UnsafeCell};

const RX_TASK: usize = 0b0001;
const COMPLETE: usize = 0b0010;
const CLOSED: usize = 0b0100;
const TX_TASK: usize = 0b1000;

/// Errors of the oneshot channel.
pub mod error {
    use std::fmt;

    /// The sender was dropped without sending.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RecvError(pub(super) ());

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("channel closed")
        }
    }

    impl std::error::Error for RecvError {}

    /// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TryRecvError {
        /// Nothing sent yet.
        Empty,
        /// The sender was dropped without sending, or the value was already taken.
        Closed,
    }

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TryRecvError::Empty => f.write_str("channel empty"),
                TryRecvError::Closed => f.write_str("channel closed"),
            }
        }
    }

    impl std::error::Error for TryRecvError {}
}

use error::{RecvError, TryRecvError};

/// The shared cell. Invariants: the module notes' ownership rules 1–3.
struct Inner<T> {
    state: AtomicUsize,
    value: UnsafeCell<Option<T>>,
    rx_waker: UnsafeCell<Option<Waker>>,
    tx_waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cells are accessed only under the ownership rules, which never let two sides
// touch one cell mutably at once; values of `T` cross threads, so `T: Send`.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above; `&Inner` hands no `&T` out, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Inner<T> {}

/// Sends the one value. Dropping it without sending makes the receiver fail with
/// [`RecvError`].
pub struct Sender<T> {
    inner: Option<Arc<Inner<T>>>,
}

/// Receives the one value: await it, or call [`Receiver::try_recv`].
#[must_use = "futures do nothing unless polled"]
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// A sender/receiver pair.
///
/// # Examples
///
/// ```
/// use weft_runtime::sync::oneshot;
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let (tx, rx) = oneshot::channel();
///     weft_runtime::spawn(async move { tx.send(42).unwrap() });
///     assert_eq!(rx.await, Ok(42));
/// });
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(None),
        rx_waker: UnsafeCell::new(None),
        tx_waker: UnsafeCell::new(None),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
    )
}

/// Registers `cx`'s waker in `cell` under flag `task`, unless `done` is (or becomes) set.
/// Returns `true` if `done` was observed instead.
///
/// A waker already registered is replaced, never compared: comparing would read the cell
/// while `task` is set, when the other side may be taking it.
///
/// # Safety
///
/// Only the side that owns `cell` as writer (rule 2 or 3) may call it.
unsafe fn register(
    state: &AtomicUsize,
    cell: &UnsafeCell<Option<Waker>>,
    task: usize,
    done: usize,
    cx: &Context<'_>,
) -> bool {
    let mut s = state.load(Acquire);
    loop {
        if s & done != 0 {
            return true;
        }
        if s & task == 0 {
            break;
        }
        match state.compare_exchange_weak(s, s & !task, AcqRel, Acquire) {
            Ok(_) => break,
            Err(actual) => s = actual,
        }
    }
    // SAFETY: `task` is clear and `done` was clear when we last looked, so the other side
    // will not touch the cell until we set `task` again (rules 2/3).
    cell.with_mut(|w| unsafe { *w = Some(cx.waker().clone()) });
    let prev = state.fetch_or(task, AcqRel);
    prev & done != 0
}

/// Takes the waker out of `cell` and wakes it.
///
/// # Safety
///
/// The caller set the other side's `done` flag while that side's `task` flag was set, so
/// the other side no longer touches `cell` (rules 2/3) and nobody else reads it.
unsafe fn take_and_wake(cell: &UnsafeCell<Option<Waker>>) {
    // SAFETY: the caller's contract: exclusive access to the cell.
    if let Some(w) = cell.with_mut(|w| unsafe { (*w).take() }) {
        w.wake();
    }
}

impl<T> Sender<T> {
    /// Sends `value`, completing the receiver.
    ///
    /// # Errors
    ///
    /// The value comes back if the receiver was closed or dropped.
    pub fn send(mut self, value: T) -> Result<(), T> {
        let inner = self.inner.take().expect("a sender sends once");
        // SAFETY: rule 1: before COMPLETE only the sender touches `value`.
        inner.value.with_mut(|v| unsafe { *v = Some(value) });
        let mut s = inner.state.load(Relaxed);
        loop {
            if s & CLOSED != 0 {
                // SAFETY: COMPLETE was never set, so the receiver never reads `value`.
                let v = inner.value.with_mut(|v| unsafe { (*v).take() });
                return Err(v.expect("just written"));
            }
            match inner
                .state
                .compare_exchange_weak(s, s | COMPLETE, AcqRel, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        if s & RX_TASK != 0 {
            // SAFETY: RX_TASK was set when we set COMPLETE, so the receiver wrote its waker
            // and will not touch the cell again (rule 2).
            unsafe { take_and_wake(&inner.rx_waker) };
        }
        Ok(())
    }

    /// Whether the receiver was closed or dropped.
    pub fn is_closed(&self) -> bool {
        let inner = self.inner.as_ref().expect("sender used after send");
        inner.state.load(Acquire) & CLOSED != 0
    }

    /// Polls for the receiver being closed or dropped.
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = self.inner.as_ref().expect("sender used after send");
        // SAFETY: the sender is the only writer of `tx_waker` (rule 3).
        if unsafe { register(&inner.state, &inner.tx_waker, TX_TASK, CLOSED, cx) } {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits until the receiver is closed or dropped (to stop computing an unwanted value).
    pub async fn closed(&mut self) {
        poll_fn(|cx| self.poll_closed(cx)).await
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let prev = inner.state.fetch_or(COMPLETE, AcqRel);
        if prev & RX_TASK != 0 && prev & CLOSED == 0 {
            // SAFETY: as in `send`: RX_TASK was set when COMPLETE was.
            unsafe { take_and_wake(&inner.rx_waker) };
        }
    }
}

impl<T> Receiver<T> {
    /// Closes the channel: a later send fails and gives its value back. A value sent before
    /// is still received.
    pub fn close(&mut self) {
        let prev = self.inner.state.fetch_or(CLOSED, AcqRel);
        if prev & TX_TASK != 0 && prev & COMPLETE == 0 {
            // SAFETY: TX_TASK was set when we set CLOSED, so the sender wrote its waker and
            // will not touch the cell again (rule 3).
            unsafe { take_and_wake(&self.inner.tx_waker) };
        }
    }

    /// Whether the sender is done: the value is there to take, or it cannot come any more.
    pub fn is_terminated(&self) -> bool {
        self.inner.state.load(Acquire) & COMPLETE != 0
    }

    /// Takes the value if it was sent.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing was sent yet; [`TryRecvError::Closed`] if the
    /// sender was dropped, the receiver closed, or the value already taken.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let s = self.inner.state.load(Acquire);
        if s & COMPLETE != 0 {
            // SAFETY: COMPLETE observed with acquire: the sender is done with `value`
            // (rule 1), and `&mut self` makes this the only reader.
            match self.inner.value.with_mut(|v| unsafe { (*v).take() }) {
                Some(v) => Ok(v),
                None => Err(TryRecvError::Closed),
            }
        } else if s & CLOSED != 0 {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Waits for the value from synchronous code, parking the thread. Not from a task.
    ///
    /// # Errors
    ///
    /// [`RecvError`] if the sender was dropped without sending.
    pub fn blocking_recv(self) -> Result<T, RecvError> {
        super::block_on_thread(self)
    }

    fn take(&mut self) -> Result<T, RecvError> {
        // SAFETY: called only after COMPLETE was observed with acquire (rule 1).
        match self.inner.value.with_mut(|v| unsafe { (*v).take() }) {
            Some(v) => Ok(v),
            None => Err(RecvError(())),
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        // SAFETY: the receiver is the only writer of `rx_waker` (rule 2).
        let done = unsafe {
            register(
                &this.inner.state,
                &this.inner.rx_waker,
                RX_TASK,
                COMPLETE,
                cx,
            )
        };
        if done {
            coop.made_progress();
            Poll::Ready(this.take())
        } else {
            Poll::Pending
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Receiver")
            .field("terminated", &self.is_terminated())
            .finish()
    }
}
