//! [`Barrier`]: `n` tasks wait until all of them have arrived.
//!
//! A count and a generation behind a lock, and a [`Notify`]. Each arrival takes its
//! `Notified` under the lock, before it unlocks; the last arrival bumps the generation and
//! calls `notify_waiters`, which reaches every `Notified` created before it.

use std::fmt;

use parking_lot::Mutex;

use super::notify::Notify;

/// Lets `n` tasks wait for each other; reusable, one round after another.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::Barrier;
///
/// let rt = weft_runtime::Runtime::builder().worker_threads(2).build().unwrap();
/// rt.block_on(async {
///     let barrier = Arc::new(Barrier::new(3));
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             weft_runtime::spawn(async move { b.wait().await.is_leader() })
///         })
///         .collect();
///     let mut leaders = 0;
///     for t in tasks {
///         leaders += t.await.unwrap() as usize;
///     }
///     assert_eq!(leaders, 1);
/// });
/// ```
pub struct Barrier {
    n: usize,
    state: Mutex<Round>,
    notify: Notify,
}

struct Round {
    arrived: usize,
    generation: u64,
}

/// What [`Barrier::wait`] returns: exactly one waiter per round is the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this waiter was the round's last arrival.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` tasks (0 counts as 1).
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n: n.max(1),
            state: Mutex::new(Round {
                arrived: 0,
                generation: 0,
            }),
            notify: Notify::new(),
        }
    }

    /// Waits until `n` tasks (this one included) have called `wait` in this round.
    ///
    /// Dropping the future after it was first polled does not take back the arrival.
    pub async fn wait(&self) -> BarrierWaitResult {
        let (generation, mut notified) = {
            let mut s = self.state.lock();
            s.arrived += 1;
            if s.arrived == self.n {
                s.arrived = 0;
                s.generation += 1;
                drop(s);
                self.notify.notify_waiters();
                return BarrierWaitResult(true);
            }
            (s.generation, self.notify.notified())
        };
        loop {
            notified.await;
            notified = self.notify.notified();
            if self.state.lock().generation != generation {
                return BarrierWaitResult(false);
            }
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").field("n", &self.n).finish()
    }
}
