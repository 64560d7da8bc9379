//! A multi-producer, single-consumer channel: bounded ([`channel`]) or unbounded
//! ([`unbounded_channel`]).
//!
//! # Design
//!
//! The channel is a `VecDeque` behind a short lock, plus a second `VecDeque` the receiver
//! owns outright:
//!
//! 1. A send takes the lock, pushes, takes the receiver's waker if one is stored, and
//!    unlocks; the wake happens outside the lock. With a sleeping receiver, that is the only
//!    moment the waker is touched.
//! 2. A receive pops from its own deque with no lock at all. When that is empty it takes the
//!    lock once and swaps the whole shared deque with its (empty) own: every message queued
//!    meanwhile comes over in one step, and the two buffers' allocations are reused in turn.
//! 3. If both are empty, the receiver stores its waker under the lock and sleeps; a send
//!    takes it (step 1), so a storm of sends wakes the receiver once.
//! 4. A bounded channel adds a batch semaphore (`sync/batch.rs`) of `capacity` permits: a send
//!    waits for one (FIFO among senders), a receive gives one back per message taken.
//!
//! Closing: the last sender's drop marks the channel closed for the receiver, which gets
//! `None` once it has drained what is queued. The receiver's `close` (or drop) makes sends
//! fail (the value comes back in the error) and closes the semaphore, waking blocked
//! senders; a dropped receiver drops every value still queued, each exactly once.
//!
//! Alternative rejected: a lock-free linked list of blocks (tokio's). It makes the
//! uncontended send cheaper by a few nanoseconds but the receive more expensive per message
//! (an atomic per slot); with step 2 the receiver pays one lock per *batch*.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use super::batch::{AcquireFuture, Sem, TryFail};
use super::notify::Notify;
use crate::loom::sync::{Arc, AtomicUsize, Mutex, Ordering::*};

/// Errors of the mpsc channels.
pub mod error {
    use std::fmt;

    /// The receiver is gone; the value comes back.
    #[derive(PartialEq, Eq, Clone, Copy)]
    pub struct SendError<T>(pub T);

    impl<T> fmt::Debug for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SendError").finish_non_exhaustive()
        }
    }

    impl<T> fmt::Display for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("channel closed")
        }
    }

    impl<T> std::error::Error for SendError<T> {}

    /// Why [`Sender::try_send`](super::Sender::try_send) failed; the value comes back.
    #[derive(PartialEq, Eq, Clone, Copy)]
    pub enum TrySendError<T> {
        /// The channel is at capacity.
        Full(T),
        /// The receiver is gone.
        Closed(T),
    }

    impl<T> TrySendError<T> {
        /// The value that was not sent.
        pub fn into_inner(self) -> T {
            match self {
                TrySendError::Full(v) | TrySendError::Closed(v) => v,
            }
        }
    }

    impl<T> From<SendError<T>> for TrySendError<T> {
        fn from(e: SendError<T>) -> Self {
            TrySendError::Closed(e.0)
        }
    }

    impl<T> fmt::Debug for TrySendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TrySendError::Full(_) => f.write_str("Full(..)"),
                TrySendError::Closed(_) => f.write_str("Closed(..)"),
            }
        }
    }

    impl<T> fmt::Display for TrySendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TrySendError::Full(_) => f.write_str("no available capacity"),
                TrySendError::Closed(_) => f.write_str("channel closed"),
            }
        }
    }

    impl<T> std::error::Error for TrySendError<T> {}

    /// Why `try_recv` returned no message.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum TryRecvError {
        /// Nothing queued now.
        Empty,
        /// Nothing queued, and every sender is gone (or the receiver closed).
        Disconnected,
    }

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TryRecvError::Empty => f.write_str("receiving on an empty channel"),
                TryRecvError::Disconnected => f.write_str("receiving on a closed channel"),
            }
        }
    }

    impl std::error::Error for TryRecvError {}
}

use error::{SendError, TryRecvError, TrySendError};

struct Shared<T> {
    buf: VecDeque<T>,
    rx_waker: Option<Waker>,
    tx_closed: bool,
    rx_closed: bool,
}

struct Chan<T> {
    shared: Mutex<Shared<T>>,
    senders: AtomicUsize,
    /// `Some` for a bounded channel: one permit per free slot.
    sem: Option<Sem>,
    capacity: usize,
    /// Woken (all) when the receiver closes, for `Sender::closed`.
    rx_gone: Notify,
}

impl<T> Chan<T> {
    fn new(sem: Option<Sem>, capacity: usize) -> Arc<Chan<T>> {
        Arc::new(Chan {
            shared: Mutex::new(Shared {
                buf: VecDeque::new(),
                rx_waker: None,
                tx_closed: false,
                rx_closed: false,
            }),
            senders: AtomicUsize::new(1),
            sem,
            capacity,
            rx_gone: Notify::new(),
        })
    }

    /// Step 1. The caller holds a permit if the channel is bounded.
    #[inline]
    fn push(&self, value: T) -> Result<(), T> {
        let mut sh = self.shared.lock();
        if sh.rx_closed {
            return Err(value);
        }
        sh.buf.push_back(value);
        let w = sh.rx_waker.take();
        drop(sh);
        if let Some(w) = w {
            w.wake();
        }
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.shared.lock().rx_closed
    }

    async fn closed(&self) {
        loop {
            let n = self.rx_gone.notified();
            if self.is_closed() {
                return;
            }
            n.await;
        }
    }

    fn add_sender(&self) {
        self.senders.fetch_add(1, Relaxed);
    }

    fn drop_sender(&self) {
        if self.senders.fetch_sub(1, AcqRel) != 1 {
            return;
        }
        let mut sh = self.shared.lock();
        sh.tx_closed = true;
        let w = sh.rx_waker.take();
        drop(sh);
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// The receiving half shared by both flavours.
struct Rx<T> {
    chan: Arc<Chan<T>>,
    local: VecDeque<T>,
}

enum Got<T> {
    Value(T),
    Empty,
    Closed,
}

impl<T> Rx<T> {
    fn new(chan: Arc<Chan<T>>) -> Rx<T> {
        Rx {
            chan,
            local: VecDeque::new(),
        }
    }

    #[inline]
    fn took(&self, n: usize) {
        if let Some(sem) = &self.chan.sem {
            sem.release(n);
        }
    }

    /// Steps 2 and 3; registers `cx` when it finds nothing.
    #[inline]
    fn try_take(&mut self, cx: Option<&Context<'_>>) -> Got<T> {
        if let Some(v) = self.local.pop_front() {
            self.took(1);
            return Got::Value(v);
        }
        let mut sh = self.chan.shared.lock();
        if !sh.buf.is_empty() {
            std::mem::swap(&mut sh.buf, &mut self.local);
            drop(sh);
            let v = self
                .local
                .pop_front()
                .expect("swapped in a non-empty queue");
            self.took(1);
            return Got::Value(v);
        }
        if sh.tx_closed || sh.rx_closed {
            return Got::Closed;
        }
        if let Some(cx) = cx {
            match &sh.rx_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => sh.rx_waker = Some(cx.waker().clone()),
            }
        }
        Got::Empty
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        match self.try_take(Some(cx)) {
            Got::Value(v) => {
                coop.made_progress();
                Poll::Ready(Some(v))
            }
            Got::Closed => {
                coop.made_progress();
                Poll::Ready(None)
            }
            Got::Empty => Poll::Pending,
        }
    }

    fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<T>,
        limit: usize,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        match self.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(0),
            Poll::Ready(Some(v)) => out.push(v),
        }
        let mut n = 1;
        while n < limit {
            match self.try_take(None) {
                Got::Value(v) => {
                    out.push(v);
                    n += 1;
                }
                _ => break,
            }
        }
        Poll::Ready(n)
    }

    fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match self.try_take(None) {
            Got::Value(v) => Ok(v),
            Got::Empty => Err(TryRecvError::Empty),
            Got::Closed => Err(TryRecvError::Disconnected),
        }
    }

    fn close(&mut self) {
        let mut sh = self.chan.shared.lock();
        if sh.rx_closed {
            return;
        }
        sh.rx_closed = true;
        drop(sh);
        if let Some(sem) = &self.chan.sem {
            sem.close();
        }
        self.chan.rx_gone.notify_waiters();
    }

    fn len(&self) -> usize {
        self.local.len() + self.chan.shared.lock().buf.len()
    }
}

impl<T> Drop for Rx<T> {
    fn drop(&mut self) {
        self.close();
        // Drop what is queued now, outside the lock (a value's drop may use the channel).
        let queued = std::mem::take(&mut self.chan.shared.lock().buf);
        drop(queued);
    }
}

// ---------------------------------------------------------------------------------------
// Bounded.

/// Sends into a bounded channel; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// Receives from a bounded channel.
pub struct Receiver<T> {
    rx: Rx<T>,
}

/// One reserved slot of a bounded channel; [`Permit::send`] fills it without waiting.
/// Dropping it unused frees the slot.
pub struct Permit<'a, T> {
    chan: &'a Chan<T>,
}

/// A bounded channel with room for `buffer` messages: a send waits while it is full.
///
/// # Panics
///
/// If `buffer` is 0 or above `Semaphore::MAX_PERMITS`.
///
/// # Examples
///
/// ```
/// use weft_runtime::sync::mpsc;
///
/// let rt = weft_runtime::Runtime::builder().worker_threads(2).build().unwrap();
/// rt.block_on(async {
///     let (tx, mut rx) = mpsc::channel(16);
///     for i in 0..3 {
///         let tx = tx.clone();
///         weft_runtime::spawn(async move { tx.send(i).await.unwrap() });
///     }
///     drop(tx);
///     let mut got = Vec::new();
///     while let Some(v) = rx.recv().await {
///         got.push(v);
///     }
///     got.sort();
///     assert_eq!(got, [0, 1, 2]);
/// });
/// ```
pub fn channel<T>(buffer: usize) -> (Sender<T>, Receiver<T>) {
    assert!(buffer > 0, "mpsc bounded channel requires buffer > 0");
    let chan = Chan::new(Some(Sem::new(buffer)), buffer);
    (
        Sender { chan: chan.clone() },
        Receiver { rx: Rx::new(chan) },
    )
}

impl<T> Sender<T> {
    /// Waits for a free slot, then sends.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if the receiver is closed or gone.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let sem = self.chan.sem.as_ref().expect("bounded");
        if AcquireFuture::new(sem, 1).await.is_err() {
            return Err(SendError(value));
        }
        self.chan.push(value).map_err(SendError)
    }

    /// Sends if a slot is free now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let sem = self.chan.sem.as_ref().expect("bounded");
        match sem.try_acquire(1) {
            Ok(()) => self.chan.push(value).map_err(TrySendError::Closed),
            Err(TryFail::NoPermits) => Err(TrySendError::Full(value)),
            Err(TryFail::Closed) => Err(TrySendError::Closed(value)),
        }
    }

    /// [`Sender::send`] from synchronous code, parking the thread. Not from a task.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if the receiver is closed or gone.
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        super::block_on_thread(self.send(value))
    }

    /// Waits for a free slot and reserves it.
    ///
    /// # Errors
    ///
    /// [`SendError`] if the receiver is closed or gone.
    pub async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        let sem = self.chan.sem.as_ref().expect("bounded");
        match AcquireFuture::new(sem, 1).await {
            Ok(()) => Ok(Permit { chan: &self.chan }),
            Err(()) => Err(SendError(())),
        }
    }

    /// Reserves a slot if one is free now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`].
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let sem = self.chan.sem.as_ref().expect("bounded");
        match sem.try_acquire(1) {
            Ok(()) => Ok(Permit { chan: &self.chan }),
            Err(TryFail::NoPermits) => Err(TrySendError::Full(())),
            Err(TryFail::Closed) => Err(TrySendError::Closed(())),
        }
    }

    /// Waits until the receiver is closed or dropped.
    pub async fn closed(&self) {
        self.chan.closed().await
    }

    /// Whether the receiver is closed or dropped.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Free slots now.
    pub fn capacity(&self) -> usize {
        self.chan.sem.as_ref().map_or(0, Sem::available)
    }

    /// The `buffer` the channel was made with.
    pub fn max_capacity(&self) -> usize {
        self.chan.capacity
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Permit<'_, T> {
    /// Sends into the reserved slot. If the receiver has gone meanwhile the value is dropped.
    pub fn send(self, value: T) {
        let chan = self.chan;
        std::mem::forget(self);
        // The permit now belongs to the queued message; the receiver gives it back.
        if chan.push(value).is_err() {
            if let Some(sem) = &chan.sem {
                sem.release(1);
            }
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        if let Some(sem) = &self.chan.sem {
            sem.release(1);
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone (or [`Receiver::close`] was
    /// called) and the queue is drained.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.rx.poll_recv(cx)).await
    }

    /// Polls for the next message.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }

    /// Waits for at least one message, then appends up to `limit` to `buffer`. Returns how
    /// many; 0 only when `limit` is 0 or the channel is closed and drained.
    pub async fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> usize {
        poll_fn(|cx| self.rx.poll_recv_many(cx, buffer, limit)).await
    }

    /// A message if one is queued now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    /// [`Receiver::recv`] from synchronous code, parking the thread. Not from a task.
    pub fn blocking_recv(&mut self) -> Option<T> {
        super::block_on_thread(self.recv())
    }

    /// Stops further sends (blocked senders fail); queued messages can still be received.
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots now.
    pub fn capacity(&self) -> usize {
        self.rx.chan.sem.as_ref().map_or(0, Sem::available)
    }

    /// The `buffer` the channel was made with.
    pub fn max_capacity(&self) -> usize {
        self.rx.chan.capacity
    }
}

// ---------------------------------------------------------------------------------------
// Unbounded.

/// Sends into an unbounded channel (never waits); clone it for more producers.
pub struct UnboundedSender<T> {
    chan: Arc<Chan<T>>,
}

/// Receives from an unbounded channel.
pub struct UnboundedReceiver<T> {
    rx: Rx<T>,
}

/// A channel without a bound: sends never wait (memory is the limit).
///
/// # Examples
///
/// ```
/// use weft_runtime::sync::mpsc;
///
/// let (tx, mut rx) = mpsc::unbounded_channel();
/// tx.send("a").unwrap();
/// drop(tx);
/// assert_eq!(rx.blocking_recv(), Some("a"));
/// assert_eq!(rx.blocking_recv(), None);
/// ```
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let chan = Chan::new(None, usize::MAX);
    (
        UnboundedSender { chan: chan.clone() },
        UnboundedReceiver { rx: Rx::new(chan) },
    )
}

impl<T> UnboundedSender<T> {
    /// Sends at once.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if the receiver is closed or gone.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.push(value).map_err(SendError)
    }

    /// Waits until the receiver is closed or dropped.
    pub async fn closed(&self) {
        self.chan.closed().await
    }

    /// Whether the receiver is closed or dropped.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        UnboundedSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> UnboundedReceiver<T> {
    /// The next message; `None` once every sender is gone (or [`UnboundedReceiver::close`]
    /// was called) and the queue is drained.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.rx.poll_recv(cx)).await
    }

    /// Polls for the next message.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }

    /// Waits for at least one message, then appends up to `limit` to `buffer`. Returns how
    /// many; 0 only when `limit` is 0 or the channel is closed and drained.
    pub async fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> usize {
        poll_fn(|cx| self.rx.poll_recv_many(cx, buffer, limit)).await
    }

    /// A message if one is queued now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    /// [`UnboundedReceiver::recv`] from synchronous code, parking the thread. Not from a
    /// task.
    pub fn blocking_recv(&mut self) -> Option<T> {
        super::block_on_thread(self.recv())
    }

    /// Stops further sends; queued messages can still be received.
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

macro_rules! debug_named {
    ($($t:ident $(<$l:lifetime>)?),*) => {$(
        impl<$($l,)? T> fmt::Debug for $t<$($l,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(concat!("mpsc::", stringify!($t))).finish_non_exhaustive()
            }
        }
    )*};
}

debug_named!(
    Sender,
    Receiver,
    UnboundedSender,
    UnboundedReceiver,
    Permit<'a>
);
