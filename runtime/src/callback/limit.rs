//! The block behind [`parallel_limit`](super::parallel_limit): a gather whose operations
//! start through a window, with no lock and no reference count per part.
//!
//! # The invariant
//!
//! The block holds `state` (claims in its low bits, plus [`SETTLED`]), `credits`, the
//! operation function with the index of the next operation, one slot per operation and the
//! final callback.
//!
//! - **Who calls the operation function.** `credits` counts places in the window that are
//!   free and not yet served. Whoever raises it from zero is the *driver*: it alone touches
//!   the operation function and `next` (the hand-over is the AcqRel `credits` operation),
//!   and serves one credit per turn of its loop — starting operation `next`, or nothing if
//!   all have started or the composite is settled — until its own `fetch_sub` takes
//!   `credits` back to zero. The starting call is the first driver, with `min(limit, n)`
//!   credits; every outcome adds one. An operation that calls its part before returning
//!   adds its credit to the running driver's loop, so synchronous operations run in
//!   constant stack.
//! - **Claims.** One per operation index (held by its part once made, by the block's
//!   `next` before), and one per running driver. Whoever gives up the last frees the block,
//!   and, if `SETTLED` is clear, calls the final callback with every value (each slot is
//!   written by its part before that part's claim is given up with AcqRel, and read only
//!   by the last releaser). A part that becomes the driver hands its claim to the driver's
//!   turn.
//! - **Settling early.** The first error sets `SETTLED` with `fetch_or`; only the part that
//!   set it takes the final callback. A part dropped uncalled, and an operation function
//!   that panics, set `SETTLED` too and leave the callback in the block: the composite then
//!   never completes, and no operation starts after it. A driver that sees `SETTLED` gives
//!   up the claims of the operations never started.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::Callback;
use super::compose::{Part, PartVTable, PartsAt};
use crate::loom::sync::{AtomicUsize, Ordering, UnsafeCell};
use crate::task::pool;

/// Set in `state` once the composite is settled (or can never complete).
const SETTLED: usize = 1 << (usize::BITS - 1);

/// The one heap block of a `parallel_limit`: the state word, the free-place counter, the
/// slots written once and the operation function; who drives and who frees it is the
/// module's "The invariant".
#[repr(C)]
struct Block<T, E, Op, D> {
    /// What the parts deliver through (first: see `Part::from_raw`).
    parts: PartsAt<T, E>,
    /// Claims plus [`SETTLED`].
    state: AtomicUsize,
    /// Free places in the window not yet served; whoever raises it from 0 drives.
    credits: AtomicUsize,
    /// The next operation to start: the driver's alone.
    next: UnsafeCell<usize>,
    /// The driver's alone.
    op: UnsafeCell<Op>,
    slots: Box<[UnsafeCell<Option<T>>]>,
    /// Taken by the first error, or by the last releaser.
    done: UnsafeCell<Option<D>>,
    _e: PhantomData<fn(E)>,
}

impl<T, E, Op, D> Block<T, E, Op, D>
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    const VTABLE: PartVTable<T, E> = PartVTable {
        settle: Self::settle,
        release: Self::release_part,
    };

    /// # Safety
    ///
    /// `this` is a live block, and part `index` of it, the caller, holds a claim it gives
    /// up here.
    unsafe fn settle(this: NonNull<()>, index: usize, result: Result<T, E>) {
        let this = this.cast::<Self>();
        // SAFETY: our claim keeps the block alive.
        let b = unsafe { this.as_ref() };
        let mut early = None;
        match result {
            Ok(v) => {
                // SAFETY: only part `index` writes slot `index`, once; it is read only by the
                // last releaser, after our claim's AcqRel release.
                b.slots[index].with_mut(|p| unsafe { *p = Some(v) });
            }
            Err(e) => {
                if b.state.fetch_or(SETTLED, Ordering::AcqRel) & SETTLED == 0 {
                    // SAFETY: we set `SETTLED`: nobody else takes the callback.
                    early = b.done.with_mut(|p| unsafe { (*p).take() }).map(|d| (d, e));
                }
            }
        }
        // SAFETY: our claim, handed to `credit`.
        unsafe { Self::credit(this) };
        if let Some((done, e)) = early {
            done.call(Err(e));
        }
    }

    /// # Safety
    ///
    /// As for [`settle`](Self::settle).
    unsafe fn release_part(this: NonNull<()>, _: usize) {
        let this = this.cast::<Self>();
        // A part that never delivers: the composite can never complete.
        // SAFETY: our claim keeps the block alive.
        unsafe { this.as_ref() }
            .state
            .fetch_or(SETTLED, Ordering::AcqRel);
        // SAFETY: our claim, handed to `credit`.
        unsafe { Self::credit(this) };
    }

    /// Frees one place in the window: serves it (becoming the driver) if nobody is driving,
    /// else leaves it to the driver. Gives up the caller's claim either way.
    ///
    /// # Safety
    ///
    /// The caller holds a claim on the live block `this`, which it gives up here.
    unsafe fn credit(this: NonNull<Self>) {
        // SAFETY: our claim keeps the block alive.
        if unsafe { this.as_ref() }
            .credits
            .fetch_add(1, Ordering::AcqRel)
            == 0
        {
            // SAFETY: we raised `credits` from zero: we drive, on our claim.
            unsafe { Self::drive(this) }
        } else {
            // SAFETY: our claim, given up once, here.
            unsafe { Self::release(this, 1) }
        }
    }

    /// Serves credits until `credits` is zero, then gives up the driver's claim.
    ///
    /// # Safety
    ///
    /// The caller is the driver (it raised `credits` from zero, or made the block with its
    /// first credits) and holds a claim on the live block `this`, given up here.
    unsafe fn drive(this: NonNull<Self>) {
        let guard = Driving(this);
        // SAFETY: the driver's claim keeps the block alive.
        let b = unsafe { this.as_ref() };
        let n = b.slots.len();
        loop {
            // SAFETY: `next` is the driver's alone (see the invariant).
            let next = b.next.with_mut(|p| unsafe { *p });
            if b.state.load(Ordering::Acquire) & SETTLED != 0 {
                if next < n {
                    // SAFETY: as above.
                    b.next.with_mut(|p| unsafe { *p = n });
                    // SAFETY: the claims of the operations never started, which `next`
                    // held; ours keeps the block alive.
                    unsafe { Self::release(this, n - next) };
                }
            } else if next < n {
                // SAFETY: as above.
                b.next.with_mut(|p| unsafe { *p = next + 1 });
                // SAFETY: the claim of index `next` moves to its part, which gives it up
                // once through the vtable, from any thread (`T`, `E`, `Op`, `D` are `Send`).
                let part = unsafe { Part::from_raw(this.cast(), next) };
                // SAFETY: the operation function is the driver's alone.
                b.op.with_mut(|op| unsafe { (*op)(next, part) });
            }
            if b.credits.fetch_sub(1, Ordering::AcqRel) == 1 {
                break;
            }
        }
        std::mem::forget(guard);
        // SAFETY: the driver's claim, given up once, here.
        unsafe { Self::release(this, 1) }
    }

    /// Gives up `k` claims; the last releaser frees the block and, unless it is settled,
    /// delivers every value.
    ///
    /// # Safety
    ///
    /// The caller holds `k` claims on the live block `this`, and gives them up here.
    unsafe fn release(this: NonNull<Self>, k: usize) {
        // SAFETY: our claims keep the block alive for this `fetch_sub`.
        let prev = unsafe { this.as_ref() }
            .state
            .fetch_sub(k, Ordering::AcqRel);
        if prev & !SETTLED != k {
            return;
        }
        // SAFETY: the count is zero and our AcqRel `fetch_sub` saw every other release: the
        // block is ours alone, made by `Owned::into_raw` in `start`.
        let block = unsafe { pool::Owned::from_raw(this) };
        if prev & SETTLED != 0 {
            return;
        }
        // SAFETY: we own the block.
        let Some(done) = block.done.with_mut(|p| unsafe { (*p).take() }) else {
            return;
        };
        let mut values = Vec::with_capacity(block.slots.len());
        for slot in block.slots.iter() {
            // SAFETY: we own the block. Not settled, so every part delivered a value.
            match slot.with_mut(|p| unsafe { (*p).take() }) {
                Some(v) => values.push(v),
                None => return,
            }
        }
        drop(block);
        done.call(Ok(values));
    }
}

/// Ends the composite if the operation function unwinds: it never completes, the claims of
/// the operations never started and the driver's own are given up, and nobody drives again
/// (`credits` never returns to zero).
struct Driving<T, E, Op, D>(NonNull<Block<T, E, Op, D>>)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>;

impl<T, E, Op, D> Drop for Driving<T, E, Op, D>
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    fn drop(&mut self) {
        // SAFETY: the driver's claim keeps the block alive until the release below.
        let b = unsafe { self.0.as_ref() };
        b.state.fetch_or(SETTLED, Ordering::AcqRel);
        // SAFETY: we are still the driver (`credits` is not zero: our turn is unserved).
        let next = b
            .next
            .with_mut(|p| unsafe { std::mem::replace(&mut *p, b.slots.len()) });
        // SAFETY: the unstarted operations' claims and the driver's, given up once, here.
        unsafe { Block::release(self.0, b.slots.len() - next + 1) }
    }
}

/// Makes the block of a `parallel_limit` of `n > 0` operations, `limit > 0` at a time, and
/// starts the first window.
pub(super) fn start<T, E, Op, D>(n: usize, limit: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    debug_assert!(n > 0 && limit > 0 && n < SETTLED - 1);
    let first = limit.min(n);
    let block = pool::Owned::new(Block {
        parts: PartsAt::new(&Block::<T, E, Op, D>::VTABLE),
        state: AtomicUsize::new(n + 1),
        credits: AtomicUsize::new(first),
        next: UnsafeCell::new(0),
        op: UnsafeCell::new(op),
        slots: (0..n).map(|_| UnsafeCell::new(None)).collect(),
        done: UnsafeCell::new(Some(done)),
        _e: PhantomData,
    });
    let this = pool::Owned::into_raw(block);
    // The first wave's deferred callbacks go to the queue as one entry
    // (`callback::batched`).
    // SAFETY: we made the block with `first` credits, so we drive, on the `+ 1` claim.
    super::batched(first, || unsafe { Block::drive(this) })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex, mpsc};

    use super::super::{Callback, Part, parallel_limit};

    use super::super::test_util::Counted;

    type Held = Arc<Mutex<Vec<Part<usize, usize>>>>;
    type Outcomes = mpsc::Receiver<Result<Vec<usize>, usize>>;

    /// A `parallel_limit` of `n`, `limit` at a time, whose parts wait in the returned list.
    fn held(n: usize, limit: usize) -> (Held, Arc<AtomicUsize>, Outcomes) {
        let parts: Held = Arc::default();
        let started = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let (p, s) = (parts.clone(), started.clone());
        parallel_limit(
            n,
            limit,
            move |_, part| {
                s.fetch_add(1, SeqCst);
                p.lock().unwrap().push(part);
            },
            move |r: Result<Vec<usize>, usize>| tx.send(r).unwrap(),
        );
        (parts, started, rx)
    }

    fn pop(parts: &Held) -> Part<usize, usize> {
        parts.lock().unwrap().remove(0)
    }

    #[test]
    fn every_outcome_frees_one_place_and_the_values_keep_their_order() {
        let (parts, started, rx) = held(6, 2);
        assert_eq!(started.load(SeqCst), 2);
        for _ in 0..6 {
            let p = pop(&parts);
            let i = p.index();
            p.call(Ok(i * 10));
        }
        assert_eq!(started.load(SeqCst), 6);
        assert_eq!(rx.try_recv().unwrap(), Ok(vec![0, 10, 20, 30, 40, 50]));
    }

    #[test]
    fn the_first_error_settles_and_nothing_starts_after_it() {
        let (parts, started, rx) = held(10, 3);
        pop(&parts).call(Ok(0));
        pop(&parts).call(Err(7));
        assert_eq!(rx.try_recv().unwrap(), Err(7));
        // The two still in flight settle late and start nothing.
        while let Some(p) = parts.lock().unwrap().pop() {
            p.call(Ok(1));
        }
        assert_eq!(started.load(SeqCst), 4);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_part_dropped_uncalled_ends_the_composite_and_drops_the_callback() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let parts: Arc<Mutex<Vec<Part<Counted, ()>>>> = Arc::default();
        let (p, c, d) = (parts.clone(), calls.clone(), Counted(drops.clone()));
        parallel_limit(
            5,
            2,
            move |_, part| p.lock().unwrap().push(part),
            move |_: Result<Vec<Counted>, ()>| {
                let _d = d;
                c.fetch_add(1, SeqCst);
            },
        );
        let first = parts.lock().unwrap().remove(0);
        first.call(Ok(Counted(drops.clone())));
        drop(parts.lock().unwrap().remove(0));
        assert_eq!(drops.load(SeqCst), 0, "freed with a part out");
        let last = parts.lock().unwrap().remove(0);
        assert!(parts.lock().unwrap().is_empty(), "started after the drop");
        last.call(Ok(Counted(drops.clone())));
        assert_eq!(calls.load(SeqCst), 0);
        // Two values and the callback's capture, each dropped once.
        assert_eq!(drops.load(SeqCst), 3);
    }

    #[test]
    fn an_operation_function_that_panics_ends_the_composite_and_frees_it() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let parts: Arc<Mutex<Vec<Part<u8, ()>>>> = Arc::default();
        let (p, c, d) = (parts.clone(), calls.clone(), Counted(drops.clone()));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parallel_limit(
                8,
                3,
                move |i, part| {
                    if i == 1 {
                        panic!("op 1");
                    }
                    p.lock().unwrap().push(part)
                },
                move |_: Result<Vec<u8>, ()>| {
                    let _d = d;
                    c.fetch_add(1, SeqCst);
                },
            )
        }));
        assert!(r.is_err());
        assert_eq!(drops.load(SeqCst), 0);
        let first = parts.lock().unwrap().remove(0);
        first.call(Ok(1));
        assert_eq!(calls.load(SeqCst), 0);
        assert_eq!(drops.load(SeqCst), 1, "the callback was not dropped once");
    }

    #[test]
    fn synchronous_and_cross_thread_outcomes_complete_once() {
        for round in 0..100 {
            let (tx, rx) = mpsc::channel();
            parallel_limit(
                50,
                4,
                move |i, part: Part<usize, ()>| {
                    if (i + round) % 3 == 0 {
                        std::thread::spawn(move || part.call(Ok(i)));
                    } else {
                        part.call(Ok(i));
                    }
                },
                move |r: Result<Vec<usize>, ()>| tx.send(r).unwrap(),
            );
            assert_eq!(rx.recv().unwrap(), Ok((0..50).collect::<Vec<_>>()));
            assert!(rx.try_recv().is_err());
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! loom model of two outcomes on two threads handing the driver role between them: the
    //! window's last operation starts once and the composite completes once. Run with
    //! `bash ci/loom.sh`.

    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::super::{Callback, Part, parallel_limit};

    #[test]
    fn loom_limit_outcomes_on_two_threads_start_the_rest_once() {
        loom::model(|| {
            let parts: Arc<Mutex<Vec<Part<usize, ()>>>> = Arc::new(Mutex::new(Vec::new()));
            let log: Arc<Mutex<Vec<Result<Vec<usize>, ()>>>> = Arc::new(Mutex::new(Vec::new()));
            let (p, l) = (parts.clone(), log.clone());
            parallel_limit(
                3,
                2,
                move |i, part| {
                    if i == 2 {
                        part.call(Ok(i));
                    } else {
                        p.lock().unwrap().push(part);
                    }
                },
                move |r: Result<Vec<usize>, ()>| l.lock().unwrap().push(r),
            );
            let second = parts.lock().unwrap().pop().unwrap();
            let first = parts.lock().unwrap().pop().unwrap();
            let t = thread::spawn(move || second.call(Ok(1)));
            first.call(Ok(0));
            t.join().unwrap();
            assert_eq!(*log.lock().unwrap(), vec![Ok(vec![0, 1, 2])]);
        });
    }
}
