//! The FIFO waiter queue the queue-based primitives (`Semaphore`, `Mutex`, `RwLock`,
//! `Notify`) share.
//!
//! A waiter is an `Arc<AtomicUsize>` (its *word*: what it is still owed, or how it was
//! woken; each primitive gives the word its meaning) plus the waker of the future that waits.
//! The queue lives behind its primitive's mutex; the word is written under that lock and
//! read by the waiting future without it, so a future woken by a grant sees the grant with
//! one `Acquire` load and never takes the lock again.
//!
//! Alternative rejected: intrusive nodes inside the futures (tokio's way) save one small
//! allocation per wait, but need `unsafe` pinning and a hand-written linked list; the
//! allocation happens only on the slow path, where the task is about to sleep anyway.

use std::collections::VecDeque;
use std::task::Waker;

use crate::loom::sync::{Arc, AtomicUsize};

/// A waiter's shared word.
pub(crate) type Node = Arc<AtomicUsize>;

#[derive(Debug)]
struct Entry {
    node: Node,
    waker: Waker,
}

/// Waiters in arrival order. Every method is called with the owning primitive's lock held.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    entries: VecDeque<Entry>,
}

impl WaitList {
    pub(crate) const fn new() -> WaitList {
        WaitList {
            entries: VecDeque::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a waiter.
    pub(crate) fn push(&mut self, node: Node, waker: &Waker) {
        self.entries.push_back(Entry {
            node,
            waker: waker.clone(),
        });
    }

    /// The oldest waiter's word.
    pub(crate) fn front(&self) -> Option<&Node> {
        self.entries.front().map(|e| &e.node)
    }

    /// Removes the oldest waiter, returning its waker.
    pub(crate) fn pop_front(&mut self) -> Option<Waker> {
        self.entries.pop_front().map(|e| e.waker)
    }

    /// Replaces the waker of `node`'s entry when it would not wake the same task.
    pub(crate) fn update_waker(&mut self, node: &Node, waker: &Waker) {
        if let Some(e) = self.entries.iter_mut().find(|e| Arc::ptr_eq(&e.node, node)) {
            if !e.waker.will_wake(waker) {
                e.waker = waker.clone();
            }
        }
    }

    /// Takes `node` out of the queue; `false` if it was no longer there.
    pub(crate) fn remove(&mut self, node: &Node) -> bool {
        match self.entries.iter().position(|e| Arc::ptr_eq(&e.node, node)) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes every waiter, handing each word and waker to `f`.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&Node, Waker)) {
        for e in self.entries.drain(..) {
            f(&e.node, e.waker);
        }
    }
}

/// Wakers collected under a lock, woken after it is released.
#[derive(Debug, Default)]
pub(crate) struct WakeList {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl WakeList {
    pub(crate) fn push(&mut self, w: Waker) {
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }

    pub(crate) fn wake_all(self) {
        if let Some(w) = self.first {
            w.wake();
        }
        for w in self.rest {
            w.wake();
        }
    }
}
