//! A multi-producer, multi-consumer channel where every receiver sees every value:
//! [`channel`] returns a [`Sender`] and a first [`Receiver`]; more come from
//! [`Sender::subscribe`].
//!
//! The values sit in a ring of `capacity` slots (rounded up to a power of two), each behind
//! its own reader-writer lock and tagged with the position it holds. A send takes the
//! tail lock, overwrites the slot at the tail and advances it, then wakes waiting receivers
//! through a [`Notify`] (`notify_waiters`). A receiver keeps its own next position: if its
//! slot holds that position it clones the value under the slot's read lock; if the slot
//! was overwritten by a later lap the receiver lagged, jumps to the oldest value still held
//! and reports [`error::RecvError::Lagged`] with the number it missed.
//!
//! A value stays in its slot until a later send overwrites it, so at most `capacity`
//! values are held.

use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::notify::Notify;

/// Errors of the broadcast channel.
pub mod error {
    use std::fmt;

    /// No receiver is left; the value comes back.
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

    /// Why `recv` returned no value.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum RecvError {
        /// Every sender is gone and this receiver has seen every value.
        Closed,
        /// This receiver fell behind: this many values were overwritten before it read
        /// them. The next `recv` returns the oldest value still held.
        Lagged(u64),
    }

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                RecvError::Closed => f.write_str("channel closed"),
                RecvError::Lagged(n) => write!(f, "channel lagged by {n}"),
            }
        }
    }

    impl std::error::Error for RecvError {}

    /// Why `try_recv` returned no value.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    pub enum TryRecvError {
        /// Nothing new now.
        Empty,
        /// Every sender is gone and this receiver has seen every value.
        Closed,
        /// See [`RecvError::Lagged`].
        Lagged(u64),
    }

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TryRecvError::Empty => f.write_str("channel empty"),
                TryRecvError::Closed => f.write_str("channel closed"),
                TryRecvError::Lagged(n) => write!(f, "channel lagged by {n}"),
            }
        }
    }

    impl std::error::Error for TryRecvError {}
}

use error::{RecvError, SendError, TryRecvError};

const NEVER: u64 = u64::MAX;

struct Slot<T> {
    pos: u64,
    value: Option<T>,
}

struct Tail {
    pos: u64,
    receivers: usize,
    senders: usize,
}

struct Shared<T> {
    slots: Box<[RwLock<Slot<T>>]>,
    mask: u64,
    tail: Mutex<Tail>,
    notify: Notify,
}

/// Sends to every receiver; clone it for more senders.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// Receives every value sent after it subscribed.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    next: u64,
}

/// A channel holding up to `capacity` values (rounded up to a power of two) for its
/// slowest receiver.
///
/// # Panics
///
/// If `capacity` is 0 or above `usize::MAX / 2`.
///
/// # Examples
///
/// ```
/// use weft_runtime::sync::broadcast;
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let (tx, mut a) = broadcast::channel(8);
///     let mut b = tx.subscribe();
///     tx.send(1).unwrap();
///     assert_eq!(a.recv().await, Ok(1));
///     assert_eq!(b.recv().await, Ok(1));
/// });
/// ```
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "broadcast channel capacity must be > 0");
    assert!(
        capacity <= usize::MAX >> 1,
        "broadcast channel capacity {capacity} too large"
    );
    let cap = capacity.next_power_of_two();
    let slots = (0..cap)
        .map(|_| {
            RwLock::new(Slot {
                pos: NEVER,
                value: None,
            })
        })
        .collect();
    let shared = Arc::new(Shared {
        slots,
        mask: cap as u64 - 1,
        tail: Mutex::new(Tail {
            pos: 0,
            receivers: 1,
            senders: 1,
        }),
        notify: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared, next: 0 },
    )
}

impl<T> Sender<T> {
    /// Sends `value` to every receiver, returning how many there are.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if no receiver exists.
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let receivers = {
            let mut tail = self.shared.tail.lock();
            if tail.receivers == 0 {
                return Err(SendError(value));
            }
            let pos = tail.pos;
            let old = {
                let mut slot = self.shared.slots[(pos & self.shared.mask) as usize].write();
                slot.pos = pos;
                slot.value.replace(value)
            };
            tail.pos += 1;
            let n = tail.receivers;
            drop(tail);
            drop(old);
            n
        };
        self.shared.notify.notify_waiters();
        Ok(receivers)
    }

    /// A receiver that gets every value sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let mut tail = self.shared.tail.lock();
        tail.receivers += 1;
        Receiver {
            shared: self.shared.clone(),
            next: tail.pos,
        }
    }

    /// Receivers alive now.
    pub fn receiver_count(&self) -> usize {
        self.shared.tail.lock().receivers
    }

    /// Whether both senders feed the same channel.
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.tail.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut tail = self.shared.tail.lock();
            tail.senders -= 1;
            tail.senders == 0
        };
        if last {
            self.shared.notify.notify_waiters();
        }
    }
}

impl<T: Clone> Receiver<T> {
    /// The next value.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] if values were overwritten before this receiver read them
    /// (the next call continues with the oldest one held); [`RecvError::Closed`] once every
    /// sender is gone and everything was read.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        crate::coop::consume_budget().await;
        let Receiver { shared, next } = self;
        loop {
            let n = shared.notify.notified();
            match try_recv_at(shared, next) {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Lagged(k)) => return Err(RecvError::Lagged(k)),
                Err(TryRecvError::Closed) => return Err(RecvError::Closed),
                Err(TryRecvError::Empty) => n.await,
            }
        }
    }

    /// The next value if there is one now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], [`TryRecvError::Lagged`] or [`TryRecvError::Closed`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        try_recv_at(&self.shared, &mut self.next)
    }

    /// [`Receiver::recv`] from synchronous code, parking the thread. Not from a task.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`].
    pub fn blocking_recv(&mut self) -> Result<T, RecvError> {
        super::block_on_thread(self.recv())
    }

    /// A new receiver starting from the current tail.
    pub fn resubscribe(&self) -> Receiver<T> {
        let mut tail = self.shared.tail.lock();
        tail.receivers += 1;
        Receiver {
            shared: self.shared.clone(),
            next: tail.pos,
        }
    }
}

fn try_recv_at<T: Clone>(shared: &Shared<T>, next: &mut u64) -> Result<T, TryRecvError> {
    loop {
        {
            let slot = shared.slots[(*next & shared.mask) as usize].read();
            if slot.pos == *next {
                let v = slot.value.clone().expect("a written slot holds a value");
                *next += 1;
                return Ok(v);
            }
        }
        let tail = shared.tail.lock();
        if tail.pos == *next {
            return Err(if tail.senders == 0 {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        }
        let oldest = tail.pos.saturating_sub(shared.mask + 1);
        if *next < oldest {
            let missed = oldest - *next;
            *next = oldest;
            return Err(TryRecvError::Lagged(missed));
        }
        // The slot was written between our two looks: read it again.
    }
}

impl<T> Receiver<T> {
    /// Values sent that this receiver has not read yet (lagged ones included).
    pub fn len(&self) -> usize {
        (self.shared.tail.lock().pos - self.next) as usize
    }

    /// Whether nothing unread is there now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.tail.lock().receivers -= 1;
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Receiver")
            .field("next", &self.next)
            .finish()
    }
}
