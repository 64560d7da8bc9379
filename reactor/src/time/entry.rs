//! Timer storage: a slab of entries with a free list, and intrusive doubly-linked lists
//! threaded through it by index.
//!
//! Every timer lives in one [`Entry`] of a `Vec`; a vacant entry's index is on the slab's
//! free list, a stack of indices (not a list threaded through the entries: entries are
//! freed in firing order, anywhere in the slab, so each step along a threaded list was a
//! cache miss that a burst of timers filed one after another waited for; from the stack
//! the entry a few allocations ahead is prefetched).
//! An occupied entry is always on exactly one bucket list of the wheel (a wheel slot, the
//! pending list or the overflow list); the list's head index lives in the wheel, the `prev` /
//! `next` links live in the entries, so linking and unlinking are O(1) and need no allocation
//! and no `unsafe`.
//!
//! A [`Key`] names an entry by index *and* generation. The generation is bumped every time an
//! entry is freed, so a key kept after its timer fired or was cancelled no longer matches once
//! the slot is reused, and [`Slab::lookup`] rejects it.

use std::fmt;

/// "No entry": the end of a list.
pub(super) const NIL: u32 = u32::MAX;

/// The `bucket` of an entry that is on no list (vacant, or briefly detached while the wheel
/// moves it).
pub(super) const NO_BUCKET: u16 = u16::MAX;

/// A handle to one timer in a [`Wheel`](super::Wheel): the entry's slab index and generation.
///
/// Keys are small (8 bytes) and `Copy`. A key stays valid until its timer fires or is
/// cancelled; after that every operation taking it is a harmless no-op (it returns `None` or
/// `false`), even once the slot has been reused by another timer. The generation is a `u32`
/// that wraps, so a key held across 2³² reuses of the *same* slot could alias a newer timer;
/// in practice a timer's owner drops its key long before that.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// A key that names no timer in any wheel (its index is never allocated).
    pub(super) const NONE: Key = Key {
        index: NIL,
        generation: 0,
    };

    /// The slab index this key refers to.
    pub(super) fn index(self) -> u32 {
        self.index
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}v{})", self.index, self.generation)
    }
}

/// One slot of the slab.
///
/// For `T = usize` and for `T = Waker` this is 40 bytes on a 64-bit target: the deadline (8),
/// the payload `Option<T>` (16; `Waker` uses its niche), the two links (8), the generation (4)
/// and the bucket tag (2), padded to 8. The `size_of_entry` test checks it.
pub(super) struct Entry<T> {
    /// Tick at which the timer is due. Meaningless while vacant.
    pub(super) deadline: u64,
    /// The payload; `None` exactly when the entry is vacant.
    pub(super) value: Option<T>,
    /// Previous entry on the same bucket list, or [`NIL`] at the head.
    pub(super) prev: u32,
    /// Next entry on the same bucket list, or [`NIL`] at the tail (and while vacant).
    pub(super) next: u32,
    /// Bumped on every free, so that stale keys are detected.
    generation: u32,
    /// Which wheel bucket list this entry is on, or [`NO_BUCKET`].
    pub(super) bucket: u16,
}

/// A vector of [`Entry`]s with a free list, and list operations over it.
pub(super) struct Slab<T> {
    entries: Vec<Entry<T>>,
    /// Indices of the vacant entries, the most recently freed last (reused first).
    free: Vec<u32>,
    /// Number of occupied entries.
    len: usize,
}

impl<T> Slab<T> {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Slab {
            entries: Vec::with_capacity(capacity),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Number of occupied entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Makes room for at least `additional` more entries than are occupied now.
    pub(super) fn reserve(&mut self, additional: usize) {
        let vacant = self.entries.len() - self.len;
        self.entries.reserve(additional.saturating_sub(vacant));
    }

    /// Number of entries (occupied or vacant) the slab holds without reallocating.
    pub(super) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Allocates an entry holding `value`, due at `deadline`, on no list.
    ///
    /// # Panics
    ///
    /// If `u32::MAX - 1` timers are already live (the index space is exhausted).
    pub(super) fn alloc(&mut self, deadline: u64, value: T) -> Key {
        let index = if let Some(index) = self.free.pop() {
            // The entry this many allocations ahead is likely cold (see the module docs),
            // and timers are filed in bursts: ask for it now.
            const AHEAD: usize = 4;
            if let Some(&ahead) = self.free.len().checked_sub(AHEAD).map(|i| &self.free[i]) {
                crate::hint::prefetch(&self.entries[ahead as usize]);
            }
            let entry = &mut self.entries[index as usize];
            debug_assert!(entry.value.is_none(), "free list holds an occupied entry");
            entry.deadline = deadline;
            entry.value = Some(value);
            entry.prev = NIL;
            entry.next = NIL;
            entry.bucket = NO_BUCKET;
            index
        } else {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel: too many live timers (u32 index space exhausted)");
            self.entries.push(Entry {
                deadline,
                value: Some(value),
                prev: NIL,
                next: NIL,
                generation: 0,
                bucket: NO_BUCKET,
            });
            index
        };
        self.len += 1;
        Key {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Frees the occupied entry at `index`, which must already be off every list, and returns
    /// its payload. Any key to it becomes stale.
    pub(super) fn release(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        debug_assert_eq!(entry.bucket, NO_BUCKET, "released an entry still on a list");
        let value = entry
            .value
            .take()
            .expect("timer wheel: released a vacant entry");
        entry.generation = entry.generation.wrapping_add(1);
        entry.prev = NIL;
        entry.next = NIL;
        self.free.push(index);
        self.len -= 1;
        value
    }

    /// The index of the live entry `key` names, or `None` if the key is stale or foreign.
    pub(super) fn lookup(&self, key: Key) -> Option<u32> {
        let entry = self.entries.get(key.index as usize)?;
        (entry.generation == key.generation && entry.value.is_some()).then_some(key.index)
    }

    /// The key currently naming the occupied entry at `index`.
    pub(super) fn key_of(&self, index: u32) -> Key {
        Key {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    pub(super) fn entry(&self, index: u32) -> &Entry<T> {
        &self.entries[index as usize]
    }

    pub(super) fn entry_mut(&mut self, index: u32) -> &mut Entry<T> {
        &mut self.entries[index as usize]
    }

    /// Pushes entry `index` onto the front of the list whose head is `*head`, tagging it with
    /// `bucket`. The entry's old links are overwritten, so it must not be reachable from any
    /// other list.
    pub(super) fn push_front(&mut self, head: &mut u32, bucket: u16, index: u32) {
        let old = *head;
        {
            let entry = &mut self.entries[index as usize];
            entry.prev = NIL;
            entry.next = old;
            entry.bucket = bucket;
        }
        if old != NIL {
            self.entries[old as usize].prev = index;
        }
        *head = index;
    }

    /// Removes entry `index` from the list whose head is `*head`.
    pub(super) fn unlink(&mut self, head: &mut u32, index: u32) {
        let (prev, next) = {
            let entry = &mut self.entries[index as usize];
            let links = (entry.prev, entry.next);
            entry.prev = NIL;
            entry.next = NIL;
            entry.bucket = NO_BUCKET;
            links
        };
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            debug_assert_eq!(
                *head, index,
                "list head does not match an entry with no prev"
            );
            *head = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_release_reuses_slots_and_bumps_generation() {
        let mut slab = Slab::with_capacity(0);
        let a = slab.alloc(5, 'a');
        let b = slab.alloc(6, 'b');
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.lookup(a), Some(a.index()));
        assert_eq!(slab.release(a.index()), 'a');
        assert_eq!(slab.lookup(a), None);
        let c = slab.alloc(7, 'c');
        assert_eq!(c.index(), a.index(), "freed slot is reused first");
        assert_ne!(c, a);
        assert_eq!(
            slab.lookup(a),
            None,
            "stale key must not name the reused slot"
        );
        assert_eq!(slab.lookup(c), Some(c.index()));
        assert_eq!(slab.lookup(b), Some(b.index()));
        assert_eq!(slab.entries.len(), 2);
    }

    #[test]
    fn list_push_and_unlink_in_any_position() {
        let mut slab = Slab::with_capacity(4);
        let keys: Vec<Key> = (0..4).map(|i| slab.alloc(i, i)).collect();
        let mut head = NIL;
        for k in &keys {
            slab.push_front(&mut head, 0, k.index());
        }
        let walk = |slab: &Slab<u64>, head: u32| {
            let mut out = Vec::new();
            let mut cur = head;
            while cur != NIL {
                out.push(slab.entry(cur).deadline);
                cur = slab.entry(cur).next;
            }
            out
        };
        assert_eq!(walk(&slab, head), [3, 2, 1, 0]);
        slab.unlink(&mut head, keys[1].index()); // middle
        assert_eq!(walk(&slab, head), [3, 2, 0]);
        slab.unlink(&mut head, keys[3].index()); // head
        assert_eq!(walk(&slab, head), [2, 0]);
        slab.unlink(&mut head, keys[0].index()); // tail
        assert_eq!(walk(&slab, head), [2]);
        slab.unlink(&mut head, keys[2].index()); // only
        assert_eq!(head, NIL);
    }
}
