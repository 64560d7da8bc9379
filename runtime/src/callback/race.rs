//! The block behind [`race`](super::race): the first outcome wins, the losers are cancelled,
//! with one heap block per composite, no lock and no reference count per part.
//!
//! # The invariant
//!
//! The block holds `state` (claims in its low bits, plus [`SETTLED`]), the final callback,
//! and one slot per operation for the [`Cancel`] handle its `op` call returned, each with a
//! `mark`. The claims are one per part and one for the starting loop; whoever gives up the
//! last frees the block (dropping, not cancelling, any handle still in it).
//!
//! - The first outcome sets `SETTLED` with `fetch_or`; only the part that set it takes the
//!   final callback. It then swaps every slot's mark to `TAKEN` (its own to `WON`) and
//!   cancels each handle whose mark was `STORED`, and drops its own.
//! - The starter writes the handle of operation `i` to slot `i` once `op(i)` returns and
//!   swaps the mark to `STORED`. If the mark was `TAKEN` already, the winner has passed: the
//!   starter takes the handle back and cancels it (or drops it, for `WON`: that operation
//!   won before its handle was stored).
//!
//! So each handle is cancelled or dropped exactly once, by whichever of the two reaches its
//! mark second.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::compose::{Part, PartVTable, PartsAt};
use super::{Callback, Cancel};
use crate::loom::sync::{AtomicUsize, Ordering, UnsafeCell};
use crate::task::pool;

/// Set in `state` once the race is settled.
const SETTLED: usize = 1 << (usize::BITS - 1);

/// A slot's mark: nothing in it yet.
const EMPTY: usize = 0;
/// The starter put the operation's handle in.
const STORED: usize = 1;
/// The winner passed: a handle stored later is the starter's to cancel.
const TAKEN: usize = 2;
/// The winner's own slot: a handle stored later is dropped, not cancelled.
const WON: usize = 3;

/// Races of up to this many operations keep their slots inside the block.
const INLINE: usize = 4;

/// One operation's cancel handle and the mark that says whether the winner or the
/// starter reached it first (module docs, "The invariant").
struct Slot<C> {
    mark: AtomicUsize,
    cancel: UnsafeCell<Option<C>>,
}

impl<C> Slot<C> {
    fn new() -> Self {
        Slot {
            mark: AtomicUsize::new(EMPTY),
            cancel: UnsafeCell::new(None),
        }
    }
}

/// The slots of a race: inline up to [`INLINE`] operations, else on the heap.
enum Slots<C> {
    Inline([Slot<C>; INLINE], usize),
    Heap(Box<[Slot<C>]>),
}

impl<C> Slots<C> {
    fn new(n: usize) -> Self {
        if n <= INLINE {
            Slots::Inline(std::array::from_fn(|_| Slot::new()), n)
        } else {
            Slots::Heap((0..n).map(|_| Slot::new()).collect())
        }
    }

    #[inline]
    fn get(&self) -> &[Slot<C>] {
        match self {
            Slots::Inline(a, n) => &a[..*n],
            Slots::Heap(b) => b,
        }
    }
}

/// The one heap block of a race: the claim count, the slots and the final callback; freed
/// by the last claim given up (module docs, "The invariant").
#[repr(C)]
struct Block<T, E, C, D> {
    /// What the parts deliver through (first: see `Part::from_raw`).
    parts: PartsAt<T, E>,
    /// Claims (parts and the starter) plus [`SETTLED`].
    state: AtomicUsize,
    /// Taken by the winner.
    done: UnsafeCell<Option<D>>,
    slots: Slots<C>,
    _te: PhantomData<fn(T, E)>,
}

impl<T, E, C, D> Block<T, E, C, D>
where
    T: Send + 'static,
    E: Send + 'static,
    C: Cancel,
    D: Callback<T, E>,
{
    const VTABLE: PartVTable<T, E> = PartVTable {
        settle: Self::settle,
        release: Self::release_part,
    };

    /// # Safety
    ///
    /// `this` is a live block, and part `index` of it, the caller, holds a claim it gives up
    /// here.
    unsafe fn settle(this: NonNull<()>, index: usize, result: Result<T, E>) {
        let this = this.cast::<Self>();
        // Our claim, given up when this goes, even if a `cancel` panics.
        let claim = Claim(this);
        // SAFETY: our claim keeps the block alive.
        let b = unsafe { this.as_ref() };
        if b.state.fetch_or(SETTLED, Ordering::AcqRel) & SETTLED != 0 {
            // A late outcome: dropped.
            return;
        }
        // SAFETY: we set `SETTLED`, so nobody else takes the final callback.
        let done = b.done.with_mut(|p| unsafe { (*p).take() });
        for (j, slot) in b.slots.get().iter().enumerate() {
            let mark = if j == index { WON } else { TAKEN };
            if slot.mark.swap(mark, Ordering::AcqRel) == STORED {
                // SAFETY: the starter stored the handle before its `STORED` swap, which we
                // acquired; after our swap it never touches the slot again.
                let c = slot.cancel.with_mut(|p| unsafe { (*p).take() });
                if j == index {
                    // The winner's own handle: the operation is over.
                    drop(c);
                } else {
                    c.cancel();
                }
            }
        }
        drop(claim);
        if let Some(done) = done {
            done.call(result);
        }
    }

    /// # Safety
    ///
    /// As for [`settle`](Self::settle).
    unsafe fn release_part(this: NonNull<()>, _: usize) {
        drop(Claim(this.cast::<Self>()));
    }
}

/// One claim on a race block, given up on drop; the last frees the block.
struct Claim<T, E, C, D>(NonNull<Block<T, E, C, D>>);

impl<T, E, C, D> Drop for Claim<T, E, C, D> {
    fn drop(&mut self) {
        // SAFETY: the claim keeps the block alive for this `fetch_sub`.
        let prev = unsafe { self.0.as_ref() }
            .state
            .fetch_sub(1, Ordering::AcqRel);
        if prev & !SETTLED == 1 {
            // The last claim: every other party's accesses happened before our AcqRel
            // `fetch_sub`, and nobody makes a new claim.
            // SAFETY: the block is ours alone, made by `Owned::into_raw` in `start`.
            drop(unsafe { pool::Owned::from_raw(self.0) });
        }
    }
}

/// Makes a race of `n` operations and calls `op(i, part)` for each, storing the handles.
pub(super) fn start<T, E, C, Op, D>(n: usize, mut op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    C: Cancel,
    Op: FnMut(usize, Part<T, E>) -> C,
    D: Callback<T, E>,
{
    if n == 0 {
        // An empty race never settles.
        return drop(done);
    }
    debug_assert!(n < SETTLED - 1);
    let block = pool::Owned::new_with(|| Block::<T, E, C, D> {
        parts: PartsAt::new(&Block::<T, E, C, D>::VTABLE),
        state: AtomicUsize::new(n + 1),
        done: UnsafeCell::new(Some(done)),
        slots: Slots::new(n),
        _te: PhantomData,
    });
    let this = pool::Owned::into_raw(block);
    // The starter's claim: the block lives until the loop is done with its slots.
    let starter = Claim(this);
    // The claims of the parts not made yet (if `op` unwinds, they are given up here).
    let mut unmade = Unmade(this, n);
    for i in 0..n {
        unmade.1 -= 1;
        // SAFETY: the claim of part `i` moves to the part; the block's vtable gives it up
        // once, from any thread (`T`, `E`, `C` and `D` are `Send`).
        let part = unsafe { Part::from_raw(this.cast(), i) };
        let c = op(i, part);
        // SAFETY: the starter's claim keeps the block alive; `i < n`.
        let slot = unsafe { &this.as_ref().slots.get()[i] };
        // Written, not assigned: the slot holds `None` (each is filled once), so there is
        // no old handle to drop, and the assignment's drop check cost about 45
        // instructions per racer.
        // SAFETY: until our `STORED` swap below the slot's handle is ours alone: the winner
        // reads it only after seeing `STORED`.
        slot.cancel.with_mut(|p| unsafe { p.write(Some(c)) });
        match slot.mark.swap(STORED, Ordering::AcqRel) {
            EMPTY => {}
            mark => {
                // The winner passed this slot before the handle was in: it is ours again.
                // SAFETY: the winner touches a slot once, with its swap, which we acquired.
                let c = slot.cancel.with_mut(|p| unsafe { (*p).take() });
                if mark == WON {
                    drop(c);
                } else {
                    c.cancel();
                }
            }
        }
    }
    drop(starter);
}

/// The claims of the parts `start` has not made yet: given up together if `op` unwinds.
struct Unmade<T, E, C, D>(NonNull<Block<T, E, C, D>>, usize);

impl<T, E, C, D> Drop for Unmade<T, E, C, D> {
    fn drop(&mut self) {
        for _ in 0..self.1 {
            drop(Claim(self.0));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, mpsc};

    use super::super::{Callback, Cancel, Part, race};

    /// Counts its cancels and its drops uncancelled.
    struct Handle {
        cancels: Arc<AtomicUsize>,
        drops: Arc<AtomicUsize>,
        cancelled: bool,
    }

    impl Cancel for Handle {
        fn cancel(mut self) {
            self.cancels.fetch_add(1, SeqCst);
            // Dropped (its counters with it) without counting as a drop. (It was forgotten,
            // which leaked the counters: memcheck found them.)
            self.cancelled = true;
        }
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            if !self.cancelled {
                self.drops.fetch_add(1, SeqCst);
            }
        }
    }

    #[test]
    fn each_handle_is_cancelled_or_dropped_once_whoever_wins_from_wherever() {
        for winner in 0..5 {
            for round in 0..50 {
                let cancels = Arc::new(AtomicUsize::new(0));
                let drops = Arc::new(AtomicUsize::new(0));
                let (tx, rx) = mpsc::channel();
                let mut threads = Vec::new();
                let mut held = Vec::new();
                race(
                    5,
                    |i, part: Part<usize, ()>| {
                        if i == winner {
                            if round % 2 == 0 {
                                part.call(Ok(i));
                            } else {
                                threads.push(std::thread::spawn(move || part.call(Ok(i))));
                            }
                        } else {
                            held.push(part);
                        }
                        Handle {
                            cancels: cancels.clone(),
                            drops: drops.clone(),
                            cancelled: false,
                        }
                    },
                    move |r: Result<usize, ()>| tx.send(r).unwrap(),
                );
                for t in threads {
                    t.join().unwrap();
                }
                assert_eq!(rx.recv().unwrap(), Ok(winner));
                for p in held {
                    p.call(Ok(99));
                }
                assert!(rx.try_recv().is_err(), "a late outcome was delivered");
                assert_eq!(cancels.load(SeqCst), 4, "losers cancelled");
                assert_eq!(drops.load(SeqCst), 1, "the winner's handle dropped");
            }
        }
    }

    #[test]
    fn a_race_whose_parts_are_all_dropped_drops_the_callback_and_handles_uncancelled() {
        let cancels = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mut held = Vec::new();
        race(
            6,
            |_, part: Part<(), ()>| {
                held.push(part);
                Handle {
                    cancels: cancels.clone(),
                    drops: drops.clone(),
                    cancelled: false,
                }
            },
            move |_: Result<(), ()>| {
                c.fetch_add(1, SeqCst);
            },
        );
        assert_eq!(drops.load(SeqCst), 0, "a handle went before its part");
        drop(held);
        assert_eq!(calls.load(SeqCst), 0);
        assert_eq!(cancels.load(SeqCst), 0);
        assert_eq!(drops.load(SeqCst), 6);
    }

    #[test]
    fn an_op_that_panics_midway_leaves_the_started_parts_racing() {
        let cancels = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let mut held = Vec::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            race(
                4,
                |i, part: Part<usize, ()>| {
                    if i == 2 {
                        panic!("op 2");
                    }
                    held.push(part);
                    Handle {
                        cancels: cancels.clone(),
                        drops: drops.clone(),
                        cancelled: false,
                    }
                },
                move |r: Result<usize, ()>| tx.send(r).unwrap(),
            )
        }));
        assert!(r.is_err());
        let mut held = held.into_iter();
        held.next().unwrap().call(Ok(0));
        assert_eq!(rx.recv().unwrap(), Ok(0));
        drop(held);
        assert_eq!(cancels.load(SeqCst), 1, "the other started op is cancelled");
        assert_eq!(drops.load(SeqCst), 1, "the winner's handle is dropped");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! loom model of the winner racing the starter for a slot: every handle is cancelled or
    //! dropped exactly once, and the final callback runs once. Run with `bash ci/loom.sh`.

    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::thread;

    use super::super::{Callback, Cancel, Part, race};

    struct Counts(Arc<AtomicUsize>);

    impl Cancel for Counts {
        fn cancel(self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn loom_race_a_winner_on_another_thread_races_the_starter() {
        loom::model(|| {
            let cancels = Arc::new(AtomicUsize::new(0));
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let mut threads = Vec::new();
            let mut held = Vec::new();
            race(
                2,
                |i, part: Part<usize, ()>| {
                    if i == 0 {
                        threads.push(thread::spawn(move || part.call(Ok(0))));
                    } else {
                        held.push(part);
                    }
                    Counts(cancels.clone())
                },
                move |_: Result<usize, ()>| {
                    c.fetch_add(1, SeqCst);
                },
            );
            for t in threads {
                t.join().unwrap();
            }
            drop(held);
            assert_eq!(calls.load(SeqCst), 1);
            assert_eq!(cancels.load(SeqCst), 1);
        });
    }
}
