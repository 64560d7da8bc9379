//! [`Notify`]: wake one waiting task, or all of them, without a value.
//!
//! # The state word
//!
//! `state = generation << 2 | mode`, mode one of `EMPTY`, `WAITING` (the wait list is not
//! empty; set and cleared only under the list's lock) and `NOTIFIED` (a stored permit).
//! `generation` counts `notify_waiters` calls.
//!
//! 1. `notify_one` with nobody waiting stores the permit (`EMPTY -> NOTIFIED`) with one CAS
//!    and no lock; with `WAITING` it takes the lock, pops the oldest waiter, marks its word
//!    `ONE` and wakes it.
//! 2. `notify_waiters` with nobody waiting bumps the generation with one CAS; with `WAITING`
//!    it drains the whole list under the lock, marking each word `ALL`.
//! 3. A [`Notified`] remembers the generation it was created in. Polled, it is ready if the
//!    generation moved (a `notify_waiters` since its creation, even before its first poll)
//!    or if it can take a stored permit (`NOTIFIED -> EMPTY`); otherwise, under the lock, it
//!    rechecks both and queues itself (`-> WAITING`).
//! 4. A `Notified` dropped after a `notify_one` picked it, before it reported ready, passes
//!    the notification on (step 1 again), so a `notify_one` is never lost to a cancelled
//!    waiter.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::wait_list::{Node, WaitList, WakeList};
use crate::loom::sync::{Arc, AtomicUsize, Mutex, Ordering::*};

const EMPTY: usize = 0;
const WAITING: usize = 1;
const NOTIFIED: usize = 2;
const MODE: usize = 0b11;
const GEN_ONE: usize = 0b100;

/// Waiter words.
const PENDING: usize = 0;
const ONE: usize = 1;
const ALL: usize = 2;

/// Wakes tasks waiting in [`Notify::notified`].
///
/// `notify_one` wakes the oldest waiter, or, with none, stores one permit that the next
/// `notified().await` consumes at once. `notify_waiters` wakes every `Notified` that exists
/// when it is called (polled yet or not) and stores nothing.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weft_runtime::sync::Notify;
///
/// let rt = weft_runtime::Runtime::builder().worker_threads(2).build().unwrap();
/// rt.block_on(async {
///     let notify = Arc::new(Notify::new());
///     let n2 = notify.clone();
///     let waiter = weft_runtime::spawn(async move { n2.notified().await; "woken" });
///     notify.notify_one();
///     assert_eq!(waiter.await.unwrap(), "woken");
/// });
/// ```
pub struct Notify {
    state: AtomicUsize,
    waiters: Mutex<WaitList>,
}

/// The future [`Notify::notified`] returns.
#[must_use = "futures do nothing unless polled"]
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: usize,
    node: Option<Node>,
    done: bool,
}

impl Notify {
    /// A `Notify` with no permit stored.
    #[cfg(not(loom))]
    pub const fn new() -> Notify {
        Notify {
            state: AtomicUsize::new(EMPTY),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// A `Notify` with no permit stored.
    #[cfg(loom)]
    pub fn new() -> Notify {
        Notify {
            state: AtomicUsize::new(EMPTY),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// [`Notify::new`] usable in a `static`.
    #[cfg(not(loom))]
    pub const fn const_new() -> Notify {
        Notify::new()
    }

    /// A future that completes at the next notification (or at once if a permit is stored).
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            generation: self.state.load(SeqCst) >> 2,
            node: None,
            done: false,
        }
    }

    /// Wakes the oldest waiter, or stores a permit if none waits (step 1).
    pub fn notify_one(&self) {
        let mut s = self.state.load(SeqCst);
        while s & MODE != WAITING {
            if s & MODE == NOTIFIED {
                return;
            }
            match self
                .state
                .compare_exchange(s, (s & !MODE) | NOTIFIED, SeqCst, SeqCst)
            {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
        let mut list = self.waiters.lock();
        let w = self.notify_one_locked(&mut list);
        drop(list);
        if let Some(w) = w {
            w.wake();
        }
    }

    fn notify_one_locked(&self, list: &mut WaitList) -> Option<std::task::Waker> {
        let mut s = self.state.load(SeqCst);
        loop {
            match s & MODE {
                WAITING => break,
                NOTIFIED => return None,
                _ => match self
                    .state
                    .compare_exchange(s, (s & !MODE) | NOTIFIED, SeqCst, SeqCst)
                {
                    Ok(_) => return None,
                    Err(actual) => s = actual,
                },
            }
        }
        let node = list.front().expect("WAITING with an empty list").clone();
        node.store(ONE, Release);
        let w = list.pop_front();
        if list.is_empty() {
            // Only this lock's holder leaves WAITING, so a plain store keeps the generation.
            self.state.store(s & !MODE, SeqCst);
        }
        w
    }

    /// Wakes every existing [`Notified`]; stores no permit (step 2).
    pub fn notify_waiters(&self) {
        let mut s = self.state.load(SeqCst);
        while s & MODE != WAITING {
            match self
                .state
                .compare_exchange(s, s.wrapping_add(GEN_ONE), SeqCst, SeqCst)
            {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
        let mut list = self.waiters.lock();
        let s = self.state.load(SeqCst);
        let mut wakes = WakeList::default();
        list.drain(|node, w| {
            node.store(ALL, Release);
            wakes.push(w);
        });
        // Under the lock nobody else changes a WAITING word; any other word may still see
        // lock-free CASes, so add to it atomically.
        if s & MODE == WAITING {
            self.state.store(s.wrapping_add(GEN_ONE) & !MODE, SeqCst);
        } else {
            self.state.fetch_add(GEN_ONE, SeqCst);
        }
        drop(list);
        wakes.wake_all();
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Relaxed);
        f.debug_struct("Notify")
            .field("permit", &(s & MODE == NOTIFIED))
            .field("waiting", &(s & MODE == WAITING))
            .finish()
    }
}

impl Notified<'_> {
    /// Queues this waiter now, without waiting, so that a `notify_one` from here on can pick
    /// it; returns whether it is already notified. A later poll supplies the real waker.
    pub fn enable(self: Pin<&mut Self>) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.get_mut().poll_notified(&mut cx).is_ready()
    }

    fn poll_notified(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        if let Some(node) = &self.node {
            if node.load(Acquire) != PENDING {
                self.node = None;
                self.done = true;
                return Poll::Ready(());
            }
            let mut list = self.notify.waiters.lock();
            if node.load(Acquire) != PENDING {
                drop(list);
                self.node = None;
                self.done = true;
                return Poll::Ready(());
            }
            list.update_waker(node, cx.waker());
            return Poll::Pending;
        }
        // Step 3: lock-free checks first.
        let s = self.notify.state.load(SeqCst);
        if s >> 2 != self.generation || self.take_permit(s) {
            self.done = true;
            return Poll::Ready(());
        }
        let mut list = self.notify.waiters.lock();
        let mut s = self.notify.state.load(SeqCst);
        loop {
            if s >> 2 != self.generation {
                self.done = true;
                return Poll::Ready(());
            }
            match s & MODE {
                NOTIFIED => match self
                    .notify
                    .state
                    .compare_exchange(s, s & !MODE, SeqCst, SeqCst)
                {
                    Ok(_) => {
                        self.done = true;
                        return Poll::Ready(());
                    }
                    Err(actual) => s = actual,
                },
                _ => match self.notify.state.compare_exchange(
                    s,
                    (s & !MODE) | WAITING,
                    SeqCst,
                    SeqCst,
                ) {
                    Ok(_) => break,
                    Err(actual) => s = actual,
                },
            }
        }
        let node = Arc::new(AtomicUsize::new(PENDING));
        list.push(node.clone(), cx.waker());
        self.node = Some(node);
        Poll::Pending
    }

    fn take_permit(&self, mut s: usize) -> bool {
        while s & MODE == NOTIFIED {
            match self
                .notify
                .state
                .compare_exchange(s, s & !MODE, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
        false
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_notified(cx)
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else { return };
        let mut list = self.notify.waiters.lock();
        match node.load(Acquire) {
            // Step 4: picked by notify_one but never reported: pass it on.
            ONE => {
                let w = self.notify.notify_one_locked(&mut list);
                drop(list);
                if let Some(w) = w {
                    w.wake();
                }
            }
            ALL => {}
            _ => {
                list.remove(&node);
                if list.is_empty() {
                    let s = self.notify.state.load(SeqCst);
                    if s & MODE == WAITING {
                        self.notify.state.store(s & !MODE, SeqCst);
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("queued", &self.node.is_some())
            .field("done", &self.done)
            .finish()
    }
}
