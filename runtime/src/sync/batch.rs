//! The counting semaphore under `Semaphore`, `Mutex`, `RwLock` and `OnceCell`.
//!
//! # The state word
//!
//! `state = permits << 2 | WAITERS | CLOSED`, one `AtomicUsize`:
//!
//! - `permits`: free permits, taken and given back with a compare-and-swap.
//! - `WAITERS`: the wait list is not empty. Set and cleared only with the list's lock held.
//!   While it is set `permits` is 0: a release that sees it hands its permits to the
//!   waiters (under the lock) instead of adding them to the word, so a newcomer can never
//!   take a permit ahead of a queued waiter (FIFO), and an uncontended acquire or release
//!   is one compare-and-swap with no lock.
//! - `CLOSED`: set once by `close`; acquires fail from then on.
//!
//! # Acquiring `n` permits
//!
//! 1. Fast path: if `permits >= n` and not closed, CAS them away. Done.
//! 2. Slow path, under the lock: retry 1; otherwise take whatever `permits` holds (set it to
//!    0), set `WAITERS` in the same CAS, and queue a waiter whose word is the number still
//!    owed.
//! 3. A release (under the lock) pays the oldest waiter first, lowering its word; a waiter
//!    whose word reaches 0 is popped and woken. Whatever is left once the list is empty goes
//!    back to `permits`, in the CAS that clears `WAITERS`.
//! 4. A waiter dropped while queued leaves the list and passes on the permits it was already
//!    paid (step 3 again); one dropped after its word reached 0 releases all `n`.
//!
//! A waiter's word is `CLOSED_MARK` once `close` drained it.

use std::task::{Context, Poll};

use super::wait_list::{Node, WaitList, WakeList};
use crate::loom::sync::{Arc, AtomicUsize, Mutex, Ordering::*};

const WAITERS: usize = 0b01;
const CLOSED: usize = 0b10;
const SHIFT: usize = 2;

/// The most permits a semaphore can hold.
pub(crate) const MAX_PERMITS: usize = usize::MAX >> 3;

/// A waiter's word after `close`.
const CLOSED_MARK: usize = usize::MAX;

/// Why a non-blocking acquire failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryFail {
    Closed,
    NoPermits,
}

#[derive(Debug)]
pub(crate) struct Sem {
    state: AtomicUsize,
    waiters: Mutex<WaitList>,
}

impl Sem {
    #[cfg(not(loom))]
    pub(crate) const fn new(permits: usize) -> Sem {
        assert!(
            permits <= MAX_PERMITS,
            "a semaphore holds at most MAX_PERMITS permits"
        );
        Sem {
            state: AtomicUsize::new(permits << SHIFT),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(permits: usize) -> Sem {
        assert!(
            permits <= MAX_PERMITS,
            "a semaphore holds at most MAX_PERMITS permits"
        );
        Sem {
            state: AtomicUsize::new(permits << SHIFT),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    pub(crate) fn available(&self) -> usize {
        self.state.load(Acquire) >> SHIFT
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Acquire) & CLOSED != 0
    }

    #[inline]
    pub(crate) fn try_acquire(&self, n: usize) -> Result<(), TryFail> {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & CLOSED != 0 {
                return Err(TryFail::Closed);
            }
            if s >> SHIFT < n {
                return Err(TryFail::NoPermits);
            }
            match self
                .state
                .compare_exchange_weak(s, s - (n << SHIFT), Acquire, Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => s = actual,
            }
        }
    }

    /// Gives `n` permits back: to the word when nobody waits, else to the waiters.
    #[inline]
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut s = self.state.load(Relaxed);
        while s & WAITERS == 0 {
            assert!(
                (s >> SHIFT) + n <= MAX_PERMITS,
                "a semaphore holds at most MAX_PERMITS permits"
            );
            match self
                .state
                .compare_exchange_weak(s, s + (n << SHIFT), Release, Relaxed)
            {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
        let mut list = self.waiters.lock();
        let wakes = self.release_locked(n, &mut list);
        drop(list);
        wakes.wake_all();
    }

    /// Step 3: pays waiters oldest first; the rest goes to the word once the list is empty.
    fn release_locked(&self, mut n: usize, list: &mut WaitList) -> WakeList {
        let mut wakes = WakeList::default();
        while n > 0 {
            let Some(node) = list.front() else { break };
            let owed = node.load(Relaxed);
            let pay = owed.min(n);
            n -= pay;
            node.store(owed - pay, Release);
            if pay == owed {
                wakes.push(list.pop_front().expect("front exists"));
            }
        }
        if list.is_empty() {
            let mut s = self.state.load(Relaxed);
            loop {
                let next = ((s & !WAITERS) & ((1 << SHIFT) - 1)) | (((s >> SHIFT) + n) << SHIFT);
                match self.state.compare_exchange_weak(s, next, AcqRel, Relaxed) {
                    Ok(_) => break,
                    Err(actual) => s = actual,
                }
            }
        }
        wakes
    }

    /// Fails every queued and future acquire.
    pub(crate) fn close(&self) {
        let mut list = self.waiters.lock();
        let mut wakes = WakeList::default();
        list.drain(|node, w| {
            node.store(CLOSED_MARK, Release);
            wakes.push(w);
        });
        // Clear WAITERS, set CLOSED; permits already in the word stay (they are unreachable).
        let mut s = self.state.load(Relaxed);
        loop {
            match self
                .state
                .compare_exchange_weak(s, (s & !WAITERS) | CLOSED, AcqRel, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        drop(list);
        wakes.wake_all();
    }
}

/// One pending acquire of `n` permits; see the module notes. `Ok(())` means the caller
/// now owns the permits.
#[derive(Debug)]
pub(crate) struct Acquire {
    n: usize,
    node: Option<Node>,
}

impl Acquire {
    pub(crate) fn new(n: usize) -> Acquire {
        Acquire { n, node: None }
    }

    pub(crate) fn poll(&mut self, sem: &Sem, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let r = self.poll_inner(sem, cx);
        if r.is_ready() {
            coop.made_progress();
        }
        r
    }

    fn poll_inner(&mut self, sem: &Sem, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if let Some(node) = &self.node {
            return match node.load(Acquire) {
                0 => {
                    self.node = None;
                    Poll::Ready(Ok(()))
                }
                CLOSED_MARK => {
                    self.node = None;
                    Poll::Ready(Err(()))
                }
                _ => {
                    let mut list = sem.waiters.lock();
                    match node.load(Acquire) {
                        0 => {
                            drop(list);
                            self.node = None;
                            Poll::Ready(Ok(()))
                        }
                        CLOSED_MARK => {
                            drop(list);
                            self.node = None;
                            Poll::Ready(Err(()))
                        }
                        _ => {
                            list.update_waker(node, cx.waker());
                            Poll::Pending
                        }
                    }
                }
            };
        }
        match sem.try_acquire(self.n) {
            Ok(()) => return Poll::Ready(Ok(())),
            Err(TryFail::Closed) => return Poll::Ready(Err(())),
            Err(TryFail::NoPermits) => {}
        }
        // Step 2.
        let mut list = sem.waiters.lock();
        let mut s = sem.state.load(Acquire);
        loop {
            if s & CLOSED != 0 {
                return Poll::Ready(Err(()));
            }
            let have = s >> SHIFT;
            if have >= self.n {
                match sem
                    .state
                    .compare_exchange_weak(s, s - (self.n << SHIFT), Acquire, Acquire)
                {
                    Ok(_) => return Poll::Ready(Ok(())),
                    Err(actual) => s = actual,
                }
                continue;
            }
            let next = (s & CLOSED) | WAITERS;
            match sem.state.compare_exchange_weak(s, next, AcqRel, Acquire) {
                Ok(_) => {
                    let node = Arc::new(AtomicUsize::new(self.n - have));
                    list.push(node.clone(), cx.waker());
                    self.node = Some(node);
                    return Poll::Pending;
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Step 4. Call when the acquire is dropped (it may have been paid meanwhile).
    pub(crate) fn cancel(&mut self, sem: &Sem) {
        let Some(node) = self.node.take() else { return };
        let mut list = sem.waiters.lock();
        let owed = node.load(Acquire);
        let paid = match owed {
            CLOSED_MARK => return,
            0 => self.n,
            _ => {
                list.remove(&node);
                self.n - owed
            }
        };
        // Even with nothing paid, the removal may have emptied the list: release_locked
        // clears WAITERS then.
        let wakes = if paid == 0 && !list.is_empty() {
            WakeList::default()
        } else {
            sem.release_locked(paid, &mut list)
        };
        drop(list);
        wakes.wake_all();
    }

    /// Whether a waiter is queued (the acquire has been polled and is pending).
    #[allow(dead_code)]
    pub(crate) fn is_queued(&self) -> bool {
        self.node.is_some()
    }
}

/// [`Acquire`] as a future borrowing its semaphore; dropping it cancels (step 4).
#[derive(Debug)]
pub(crate) struct AcquireFuture<'a> {
    sem: &'a Sem,
    acq: Acquire,
}

impl<'a> AcquireFuture<'a> {
    pub(crate) fn new(sem: &'a Sem, n: usize) -> AcquireFuture<'a> {
        AcquireFuture {
            sem,
            acq: Acquire::new(n),
        }
    }
}

impl std::future::Future for AcquireFuture<'_> {
    type Output = Result<(), ()>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        let this = self.get_mut();
        this.acq.poll(this.sem, cx)
    }
}

impl Drop for AcquireFuture<'_> {
    fn drop(&mut self) {
        self.acq.cancel(self.sem);
    }
}
