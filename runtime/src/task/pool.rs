//! The small-block cache: per-thread free lists of blocks in three size classes, for the
//! short-lived heap blocks the runtime makes by the hundred or the hundred thousand (task
//! cells, deferred cells, the one block of each composite helper).
//!
//! A composite callback queues many cells at once (`parallel` over 100 `ready` operations
//! defers 100 closures before the first runs), more than the allocator's per-thread cache
//! holds, so each cell went through `malloc`'s slow path and its consolidation: about 40%
//! of the instructions of such a composite. And a sequential composite (`series` of three
//! `ready` calls) made its block with `malloc` and freed it with `free`: about 150
//! instructions a composite, against about 20 for a trip through this cache.
//!
//! And a thread that spawns a burst of tasks (`block_on` spawning 100 000 sleeping tasks,
//! `timers_100k`) took `malloc`'s slow path for nearly every cell (its per-thread cache
//! holds 7 blocks of a size), and the joins that freed them filled its fast bins, which
//! the bench's next large allocation consolidated: `malloc`, `free`, `malloc_consolidate`
//! and the coalescing were about 10% of that bench's samples (a third of the spawning
//! thread's).
//!
//! Blocks of up to 248 bytes (and alignment up to 16) are carved in three size classes and
//! recycled through a per-thread free list of each class (the thread context's
//! `block_cache`, `context.rs`): the thread that frees a block keeps it for its next
//! allocation of the class. Larger blocks, and threads whose cache is gone (thread-local
//! destruction), use the global allocator directly.
//!
//! # Bound
//!
//! A class's list on a thread keeps at most the larger of [`CACHE_PER_CLASS`] blocks and
//! the most blocks of the class that thread has had out at once (*net*: blocks it took,
//! from the cache or the allocator, minus blocks it gave back, whoever took them). So a
//! thread that only frees what others allocate keeps 256 and hoards nothing, and a thread
//! that made a burst of 100 000 cells and then freed them keeps them for its next burst,
//! never more than it had in use at its peak: the memory stays reserved for the class on
//! that thread (the allocator could have lent it elsewhere) until the thread exits.
//!
//! # Invariant
//!
//! A block is always returned to the global allocator with the layout it was allocated
//! with: a cached block with its class's layout ([`class_layout`]), any other with its
//! type's own. Which one is a pure function of the type ([`Class`]), so the code that
//! frees a block computes the same answer as the code that allocated it.

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Block sizes of the cache (all aligned to [`CLASS_ALIGN`]).
///
/// Each is 8 bytes short of a multiple of 16, the size of a chunk of glibc's `malloc` with
/// its 8-byte header: a block the cache cannot keep, or makes when it is empty, is then a
/// 64-, 128- or 256-byte chunk, within the allocator's fast bins for the first two. With
/// classes of 64, 128 and 256 bytes every block took the chunk above (80, 144, 272 bytes):
/// a 120-byte task cell, a 128-byte chunk from `Box`, became a 144-byte one outside the
/// fast bins, and `scheduler/spawn_many_remote` (cells made on the bench thread, freed
/// by the workers, through the allocator) ran about 30% slower.
const CLASSES: [usize; 3] = [56, 120, 248];
const CLASS_ALIGN: usize = 16;
/// Free blocks a thread keeps per class at least (see "Bound" for more).
const CACHE_PER_CLASS: usize = 256;

/// Free blocks of each class, owned by this thread.
pub(crate) struct Cache {
    free: [Vec<NonNull<u8>>; CLASSES.len()],
    /// Per class: blocks this thread took minus blocks it gave back (negative on a thread
    /// that frees what others took).
    net: [isize; CLASSES.len()],
    /// Per class: the largest `net` so far, which bounds the list (see "Bound").
    peak: [usize; CLASSES.len()],
}

impl Cache {
    /// An empty cache.
    pub(crate) const fn new() -> Cache {
        Cache {
            free: [Vec::new(), Vec::new(), Vec::new()],
            net: [0; CLASSES.len()],
            peak: [0; CLASSES.len()],
        }
    }

    /// A block of class `c` is taken on this thread: from the list if it has one (else
    /// the caller asks the allocator).
    #[inline]
    fn take(&mut self, c: usize) -> Option<NonNull<u8>> {
        let net = self.net[c] + 1;
        self.net[c] = net;
        if net > 0 && net as usize > self.peak[c] {
            self.peak[c] = net as usize;
        }
        self.free[c].pop()
    }

    /// A free block of class `c` is given back on this thread: kept (`true`) unless the
    /// list is at its bound.
    #[inline]
    fn give(&mut self, c: usize, block: NonNull<u8>) -> bool {
        self.net[c] -= 1;
        let free = &mut self.free[c];
        if free.len() < self.peak[c].max(CACHE_PER_CLASS) {
            free.push(block);
            true
        } else {
            false
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        for (c, blocks) in self.free.iter_mut().enumerate() {
            let layout = class_layout(c);
            for b in blocks.drain(..) {
                // SAFETY: every cached block was allocated by the global allocator with its
                // class's layout (`alloc`) and is owned by the cache alone.
                unsafe { alloc::dealloc(b.as_ptr(), layout) };
            }
        }
    }
}

/// The layout of class `c`'s blocks.
fn class_layout(c: usize) -> Layout {
    Layout::from_size_align(CLASSES[c], CLASS_ALIGN).expect("class layouts are valid")
}

/// Where a block for a `T` comes from: a class of the cache, or the allocator with `T`'s
/// own layout.
pub(crate) struct Class<T>(PhantomData<T>);

impl<T> Class<T> {
    const OWN: Layout = Layout::new::<T>();
    /// The cache class of a `T`'s block, if it fits one.
    pub(crate) const CLASS: Option<usize> = {
        let mut i = 0;
        let mut found = None;
        while i < CLASSES.len() {
            if found.is_none()
                && Self::OWN.size() <= CLASSES[i]
                && Self::OWN.align() <= CLASS_ALIGN
                && Self::OWN.size() > 0
            {
                found = Some(i);
            }
            i += 1;
        }
        found
    };
    const LAYOUT: Layout = match Self::CLASS {
        // The class sizes are non-zero, the alignment a power of two, and a size need not
        // be a multiple of the alignment.
        Some(c) => match Layout::from_size_align(CLASSES[c], CLASS_ALIGN) {
            Ok(l) => l,
            Err(_) => panic!("bad class layout"),
        },
        None => Self::OWN,
    };
}

/// An uninitialised block for a `T`: from this thread's cache if it has one of `T`'s
/// class, else from the global allocator.
///
/// A zero-sized `T` does not compile (no caller allocates one).
#[inline]
pub(crate) fn alloc<T>() -> NonNull<T> {
    const { assert!(size_of::<T>() > 0, "pool blocks hold something") };
    if let Some(c) = Class::<T>::CLASS {
        let cached =
            crate::context::with_resources(|cx| cx.block_cache().borrow_mut().take(c)).flatten();
        if let Some(block) = cached {
            return block.cast();
        }
    }
    let layout = Class::<T>::LAYOUT;
    // SAFETY: the layout has a non-zero size (asserted above).
    let p = unsafe { alloc::alloc(layout) };
    match NonNull::new(p) {
        Some(p) => p.cast(),
        None => alloc::handle_alloc_error(layout),
    }
}

/// Gives back a block whose contents were moved out or dropped.
///
/// # Safety
/// `ptr` came from [`alloc::<T>`](alloc), nothing in it is used again, and it is freed once.
#[inline]
pub(crate) unsafe fn free<T>(ptr: NonNull<T>) {
    match Class::<T>::CLASS {
        // SAFETY: the block is of class `c` (`alloc`), and the caller's contract.
        Some(c) => unsafe { free_block(ptr.cast(), c) },
        // SAFETY: allocated by the global allocator with this layout (`alloc`); the caller
        // frees it once.
        None => unsafe { alloc::dealloc(ptr.as_ptr().cast(), Class::<T>::LAYOUT) },
    }
}

/// Moves `value` into a block of its own: [`alloc`] and a write.
#[inline]
pub(crate) fn boxed<T>(value: T) -> NonNull<T> {
    let p = alloc::<T>();
    // SAFETY: the block is fresh or recycled (nothing else refers to it), and large and
    // aligned enough for a `T` (`Class`).
    unsafe { p.as_ptr().write(value) };
    p
}

/// A `T` in a block from [`alloc`], owned: what `Box` is for the global allocator. The
/// composite helpers make their one block with [`Owned::new`], hand it around as the raw
/// pointer of [`Owned::into_raw`], and whoever ends up owning it takes it back with
/// [`Owned::from_raw`] and drops it.
pub(crate) struct Owned<T>(NonNull<T>);

impl<T> Owned<T> {
    /// Moves `value` into a block of its own.
    #[inline]
    pub(crate) fn new(value: T) -> Owned<T> {
        Owned(boxed(value))
    }

    /// Makes `make()`'s value in a block of its own: the block is taken first, so that the
    /// value can be built in it rather than built aside and copied in (a copy of a value
    /// just stored loads it back before its stores have retired: a stall on this machine).
    #[inline]
    pub(crate) fn new_with(make: impl FnOnce() -> T) -> Owned<T> {
        let p = alloc::<T>();
        // SAFETY: as in `boxed`: the block is ours alone, and fits a `T`. If `make`
        // unwinds, the block is lost to the cache (a leak of one block, never unsound).
        unsafe { p.as_ptr().write(make()) };
        Owned(p)
    }

    /// The block, no longer owned by this handle.
    #[inline]
    pub(crate) fn into_raw(this: Owned<T>) -> NonNull<T> {
        std::mem::ManuallyDrop::new(this).0
    }

    /// Owns the block again.
    ///
    /// # Safety
    /// `ptr` came from [`Owned::into_raw`] and is taken back once.
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>) -> Owned<T> {
        Owned(ptr)
    }
}

impl<T> std::ops::Deref for Owned<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the block holds a live `T` for as long as this handle owns it.
        unsafe { self.0.as_ref() }
    }
}

impl<T> std::ops::DerefMut for Owned<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and the handle is the block's only owner.
        unsafe { self.0.as_mut() }
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        /// Frees the block after the value's drop, even if that drop unwinds.
        struct Free<T>(NonNull<T>);
        impl<T> Drop for Free<T> {
            fn drop(&mut self) {
                // SAFETY: the value is dropped (or unwinding out of its drop); the block
                // came from `alloc::<T>` and this is its one free.
                unsafe { free(self.0) }
            }
        }
        let free = Free(self.0);
        // SAFETY: the block holds a live `T`, dropped once, here.
        unsafe { std::ptr::drop_in_place(free.0.as_ptr()) };
    }
}

/// Gives back a free block of class `c`: to this thread's cache, or to the allocator.
///
/// # Safety
/// `block` was allocated with `class_layout(c)` (by `alloc`), nothing in it is used
/// again, and it is freed once.
pub(crate) unsafe fn free_block(block: NonNull<u8>, c: usize) {
    {
        let kept =
            crate::context::with_resources(|cx| cx.block_cache().borrow_mut().give(c, block))
                .unwrap_or(false);
        if kept {
            return;
        }
    }
    // SAFETY: allocated by the global allocator with the class's layout; the caller frees
    // it once.
    unsafe { alloc::dealloc(block.as_ptr(), class_layout(c)) };
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Counts its drops: the crate's unit tests use it to check that a value is dropped
    /// exactly once.
    pub(crate) struct CountDrop(pub(crate) Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// Blocks of every class and of none (too big, over-aligned), more alive at once than
    /// the cache keeps, freed on this thread and on another: each value comes back intact
    /// and is dropped once.
    #[test]
    fn blocks_of_every_size_round_trip_intact() {
        #[derive(Clone, Copy)]
        #[repr(align(64))]
        struct Aligned([u8; 64]);

        fn check<P: Copy + Send + 'static>(payload: P, read: fn(&P) -> u8, expect: u8) {
            let drops = Arc::new(AtomicUsize::new(0));
            for round in 0..3 {
                let blocks: Vec<_> = (0..300)
                    .map(|_| {
                        super::Owned::into_raw(super::Owned::new((
                            payload,
                            CountDrop(drops.clone()),
                        )))
                    })
                    .collect();
                let (here, there): (Vec<_>, Vec<_>) = blocks
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| i % 3 != round);
                for (_, b) in here {
                    // SAFETY: from `into_raw` above, taken back once.
                    let o = unsafe { super::Owned::from_raw(b) };
                    assert_eq!(read(&(*o).0), expect);
                    drop(o);
                }
                // Freed on another thread: into that thread's cache.
                let there: Vec<_> = there
                    .into_iter()
                    .map(|(_, b)| b.as_ptr() as usize)
                    .collect();
                std::thread::spawn(move || {
                    for b in there {
                        let b = std::ptr::NonNull::new(b as *mut (P, CountDrop)).unwrap();
                        // SAFETY: as above; the value is `Send`.
                        let o = unsafe { super::Owned::from_raw(b) };
                        assert_eq!(read(&(*o).0), expect);
                        drop(o);
                    }
                })
                .join()
                .unwrap();
            }
            assert_eq!(drops.load(SeqCst), 900);
        }
        check(7u8, |p| *p, 7);
        check([9u8; 80], |p| p[79], 9);
        check([5u8; 200], |p| p[199], 5);
        check([3u8; 1000], |p| p[999], 3);
        check(Aligned([4; 64]), |p| p.0[63], 4);
    }

    /// The bound: a thread keeps as many free blocks as it once had out at once (more than
    /// `CACHE_PER_CLASS`), and a thread that only frees what another took keeps
    /// `CACHE_PER_CLASS`.
    #[test]
    fn a_thread_keeps_its_peak_and_a_thread_that_only_frees_keeps_the_minimum() {
        type B = [u8; 100];
        const N: usize = 4 * super::CACHE_PER_CLASS;
        let c = super::Class::<B>::CLASS.expect("100 bytes fit a class");
        let kept = move || {
            crate::context::with_resources(|cx| cx.block_cache().borrow().free[c].len())
                .expect("the thread has a context")
        };
        std::thread::spawn(move || {
            assert_eq!(kept(), 0);
            let blocks: Vec<_> = (0..N).map(|i| super::boxed([i as u8; 100])).collect();
            for b in blocks {
                // SAFETY: from `boxed` above, freed once; a `[u8; _]` needs no drop.
                unsafe { super::free(b) };
            }
            assert_eq!(
                kept(),
                N,
                "every block of the burst is kept for the next one"
            );
            let blocks: Vec<_> = (0..N).map(|_| super::boxed([7u8; 100])).collect();
            assert_eq!(kept(), 0, "the next burst takes them all back");
            // SAFETY: each block holds the array just written, and is not freed yet.
            assert!(blocks.iter().all(|b| unsafe { b.as_ref() }[99] == 7));
            let addrs: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
            std::thread::spawn(move || {
                for a in addrs {
                    let b = std::ptr::NonNull::new(a as *mut B).expect("non-null");
                    // SAFETY: taken by the other thread, which uses it no more; freed once.
                    unsafe { super::free(b) };
                }
                assert_eq!(kept(), super::CACHE_PER_CLASS);
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn an_owned_block_drops_its_value_once_through_a_raw_round_trip() {
        let drops = Arc::new(AtomicUsize::new(0));
        let owned = super::Owned::new(([1u8; 100], CountDrop(drops.clone())));
        assert_eq!((*owned).0[99], 1);
        let raw = super::Owned::into_raw(owned);
        assert_eq!(drops.load(SeqCst), 0);
        // SAFETY: from `into_raw` just above, taken back once.
        let mut owned = unsafe { super::Owned::from_raw(raw) };
        (*owned).0[0] = 2;
        assert_eq!((*owned).0[0], 2);
        drop(owned);
        assert_eq!(drops.load(SeqCst), 1);
    }
}
