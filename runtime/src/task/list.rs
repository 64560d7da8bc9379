//! The runtime's list of owned tasks, so that shutdown can drop every future that has not
//! completed — including tasks no queue holds (parked forever on a waker nobody will call).
//!
//! An intrusive doubly-linked list through each task's header, split into shards chosen by a
//! hash of the cell address, each behind its own mutex: two workers spawning at once rarely
//! take the same lock. Inserting and removing are O(1) and allocate nothing.
//!
//! Protocol:
//! 1. `bind` inserts a new task (taking the list's reference), unless the list is closed,
//!    in which case the task is cancelled at once and never queued.
//! 2. A task that completes calls `remove` (via `Schedule::release`), which hands the list's
//!    reference back if the task is still linked.
//! 3. Shutdown calls `close_and_shutdown_all`: it closes every shard, then pops tasks one by
//!    one (the lock is not held while a future is dropped, so destructors may spawn or wake)
//!    and cancels each in place. A popped task is no longer linked, so its own `remove` finds
//!    nothing.

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::ptr::NonNull;

use super::raw::Header;
use super::{Notified, Task};

pub(crate) struct OwnedTasks {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    shift: u32,
}

struct Shard {
    head: Option<NonNull<Header>>,
    closed: bool,
    /// Linked tasks (counted under the lock, so no shared counter is written per spawn).
    len: usize,
}

// SAFETY: the raw pointers are task headers whose links are only touched under this shard's
// mutex (invariant 4 of `raw.rs`); each linked task holds a reference owned by the list.
unsafe impl Send for Shard {}

impl OwnedTasks {
    /// A list with at least `min_shards` shards (rounded up to a power of two).
    pub(crate) fn new(min_shards: usize) -> OwnedTasks {
        let n = min_shards.max(1).next_power_of_two();
        OwnedTasks {
            shards: (0..n)
                .map(|_| {
                    CachePadded::new(Mutex::new(Shard {
                        head: None,
                        closed: false,
                        len: 0,
                    }))
                })
                .collect(),
            shift: 64 - n.trailing_zeros(),
        }
    }

    fn shard(&self, ptr: NonNull<Header>) -> &Mutex<Shard> {
        if self.shards.len() == 1 {
            return &self.shards[0];
        }
        let h = (ptr.as_ptr() as usize as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.shards[(h >> self.shift) as usize]
    }

    /// Step 1: links the task, or cancels it if the list is closed (then `None`).
    pub(crate) fn bind(&self, task: Task, notified: Notified) -> Option<Notified> {
        let ptr = task.header_ptr();
        let mut shard = self.shard(ptr).lock();
        if shard.closed {
            drop(shard);
            drop(notified);
            task.shutdown();
            return None;
        }
        let ptr = task.into_raw();
        // SAFETY: under the shard lock (invariant 4); `ptr` is live (the list now owns its
        // reference) and not linked anywhere yet.
        unsafe {
            (*ptr.as_ref().links.with_mut(|l| l)).next = shard.head;
            if let Some(head) = shard.head {
                head.as_ref().links.with_mut(|l| (*l).prev = Some(ptr));
            }
        }
        shard.head = Some(ptr);
        shard.len += 1;
        Some(notified)
    }

    /// Step 2: unlinks the task if it is linked, returning the list's reference.
    pub(crate) fn remove(&self, task: &Task) -> Option<Task> {
        let ptr = task.header_ptr();
        let mut shard = self.shard(ptr).lock();
        // SAFETY: under the shard lock; the task is live (the caller holds a reference).
        let (prev, next) = unsafe { ptr.as_ref().links.with(|l| ((*l).prev, (*l).next)) };
        match prev {
            // SAFETY: linked neighbours are live (the list holds their references).
            Some(p) => unsafe { p.as_ref().links.with_mut(|l| (*l).next = next) },
            None if shard.head == Some(ptr) => shard.head = next,
            None => return None, // not linked: popped by shutdown, or never bound
        }
        if let Some(n) = next {
            // SAFETY: as above.
            unsafe { n.as_ref().links.with_mut(|l| (*l).prev = prev) };
        }
        // SAFETY: under the shard lock.
        unsafe {
            ptr.as_ref().links.with_mut(|l| {
                (*l).prev = None;
                (*l).next = None;
            })
        };
        shard.len -= 1;
        // SAFETY: the list's reference is handed back.
        Some(unsafe { Task::from_raw(ptr) })
    }

    fn pop(&self, shard: &Mutex<Shard>) -> Option<Task> {
        let mut shard = shard.lock();
        let ptr = shard.head?;
        // SAFETY: under the shard lock; linked tasks are live.
        unsafe {
            let next = ptr.as_ref().links.with(|l| (*l).next);
            if let Some(n) = next {
                n.as_ref().links.with_mut(|l| (*l).prev = None);
            }
            shard.head = next;
            ptr.as_ref().links.with_mut(|l| (*l).next = None);
        }
        shard.len -= 1;
        // SAFETY: the list's reference is handed to the caller.
        Some(unsafe { Task::from_raw(ptr) })
    }

    /// Step 3: closes the list and cancels every task in it.
    pub(crate) fn close_and_shutdown_all(&self) {
        for shard in self.shards.iter() {
            shard.lock().closed = true;
        }
        for shard in self.shards.iter() {
            while let Some(task) = self.pop(shard) {
                task.shutdown();
            }
        }
    }

    /// Tasks spawned and not yet completed.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len).sum()
    }
}

impl Drop for OwnedTasks {
    fn drop(&mut self) {
        // Every path that drops a runtime shuts the list down first; this catches the rest
        // (a runtime that never started its workers) so that no task leaks.
        self.close_and_shutdown_all();
    }
}
