//! `weft::sync`: channels and locks for tasks, with tokio's names and signatures.
//!
//! | item | what it is |
//! |---|---|
//! | [`oneshot`] | one value, one sender, one receiver |
//! | [`mpsc`] | many senders, one receiver; bounded ([`mpsc::channel`]) or not ([`mpsc::unbounded_channel`]) |
//! | [`broadcast`] | many senders, many receivers, each receiver sees every value; slow ones lag |
//! | [`watch`] | one latest value, receivers see changes |
//! | [`Mutex`], [`RwLock`] | async locks whose guards may be held across `.await` |
//! | [`Semaphore`] | a counting semaphore |
//! | [`Notify`] | a wake-up without a value |
//! | [`Barrier`] | wait until `n` tasks arrive |
//! | [`OnceCell`] | a value initialised once, asynchronously |
//!
//! # Design
//!
//! - **Any executor.** Everything here waits through a plain [`std::task::Waker`]; nothing
//!   needs a weft runtime to be current, so a value can be handed to code that runs on
//!   another executor or a plain thread (the `blocking_*` methods park the thread).
//! - **Cooperative.** Polled inside a weft task, each receive and acquire spends one unit of
//!   the task's budget (`crate::coop`): a task that always finds a message ready still
//!   yields to its worker's other tasks.
//! - **Fair.** `Mutex`, `RwLock` and `Semaphore` serve waiters first come, first served;
//!   a release hands its permits to the oldest waiter rather than back to the pool, and a
//!   waiter dropped mid-wait passes on what it was given. `Notify::notify_one` wakes the
//!   oldest waiter.
//! - **Fast paths.** An uncontended lock or acquire is one compare-and-swap (`batch.rs`);
//!   a oneshot is one allocation and one state word; an mpsc send is a short critical
//!   section, and the receiver drains the whole queue per lock (see [`mpsc`]).
//!
//! Shared internals: `wait_list` (the FIFO waiter queue), `batch` (the semaphore every
//! lock is built on).
//!
//! Under `cfg(loom)` the atomics, `Arc` and locks come from loom (`crate::loom`), and
//! `loom_tests` model the wake paths of `oneshot`, `mpsc` and `Notify`.

use std::future::Future;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

mod barrier;
pub(crate) mod batch;
pub mod broadcast;
pub mod mpsc;
mod mutex;
mod notify;
mod once_cell;
pub mod oneshot;
mod rwlock;
mod semaphore;
mod wait_list;
pub mod watch;

#[cfg(all(test, loom))]
mod loom_tests;

pub use barrier::{Barrier, BarrierWaitResult};
pub use mutex::{Mutex, MutexGuard, OwnedMutexGuard, TryLockError};
pub use notify::{Notified, Notify};
pub use once_cell::{OnceCell, SetError};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{
    AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError,
};

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: StdArc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` to completion on this thread, parking between polls: the `blocking_*`
/// methods. The cooperative budget does not apply (this is not a task poll).
pub(crate) fn block_on_thread<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(StdArc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    crate::coop::unconstrained(|| {
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    })
}
