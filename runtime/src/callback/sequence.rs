//! The driver behind [`series`](super::series), [`waterfall`](super::waterfall) and
//! [`retry`](super::retry): one operation at a time, with one heap block per composite, no
//! lock and no reference count.
//!
//! # The invariant
//!
//! The block holds the helper's bookkeeping (its [`Steps`]: the operation function, the
//! final callback and what has been gathered so far), a one-outcome mailbox and a `state`
//! word. At any time exactly one party owns the block: the *driver* (the thread calling the
//! operation function, or folding in an outcome) or the running operation's [`Part`]. The
//! `state` word says which, and is the only thing both may touch at once:
//!
//! - `IN_START`: the driver is calling the operation function for step `i`; part `i` may be
//!   called meanwhile (before the call returns, or from another thread). Such a part writes
//!   its outcome to the mailbox and moves `state` to `DELIVERED` (release) with a single
//!   compare-exchange, and returns: the driver, seeing `DELIVERED` (acquire) once the
//!   operation function has returned, takes the outcome and goes on in the same loop. So no
//!   step starts inside the previous one's call, and a chain of synchronous operations runs
//!   in constant stack.
//! - `PARKED`: the operation function returned first; the driver moved `state` there
//!   (release) and left. The block is now the part's: when it is called it becomes the
//!   driver (acquire), folds its outcome in and starts the next step from its own stack.
//! - `ABANDONED`: the operation function panicked while its part was still out. The part,
//!   when called or dropped, frees the block (the final callback is dropped uncalled).
//!
//! A part dropped uncalled delivers "nothing" the same way; whoever then owns the block
//! frees it, and the final callback is dropped uncalled (the composite never completes, as
//! a Node callback that is never called). The composite that finishes frees its block
//! before it calls the final callback.
//!
//! Each step costs one compare-exchange by the driver and, when the outcome arrives later,
//! one load by the part; there is no allocation per step.

use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use super::compose::{Part, PartVTable, PartsAt};
use crate::loom::sync::{AtomicUsize, Ordering, UnsafeCell};
use crate::task::pool;

/// What a sequential helper does after an outcome.
pub(super) enum Flow<I, O> {
    /// Start operation (or attempt) `index` with this input.
    Start(usize, I),
    /// The composite is over: deliver this to the final callback.
    Finish(O),
}

/// The bookkeeping of one sequential helper, owned by whichever party drives it.
pub(super) trait Steps<T, E>: Send + 'static {
    /// What an operation gets besides its index: `()`, or the previous value (waterfall).
    type Input;
    /// What the final callback gets.
    type Out;
    /// Calls the operation function.
    fn start(&mut self, index: usize, input: Self::Input, part: Part<T, E>);
    /// Folds in the outcome of operation `index`.
    fn next(&mut self, index: usize, result: Result<T, E>) -> Flow<Self::Input, Self::Out>;
    /// What the final callback is called through (the user's `done`).
    type Done;
    /// Reads the final callback out of the steps at `this` and drops the rest of them in
    /// place, field by field.
    ///
    /// Moving the whole steps out of the block instead copied them in 16-byte loads of
    /// words the last [`next`](Self::next) had just stored one by one (the emptied values,
    /// the attempt count), a store-forwarding stall at the end of every composite.
    ///
    /// # Safety
    ///
    /// `this` points to live steps that nobody uses or drops after this call.
    unsafe fn take_done(this: *mut Self) -> Self::Done;
    /// Calls the final callback.
    fn finish(done: Self::Done, out: Self::Out);
}

/// The driver is in the operation function; the part has not delivered.
const IN_START: usize = 0;
/// The part delivered (or was dropped) while the driver was in the operation function.
const DELIVERED: usize = 1;
/// The driver left; the block is the part's.
const PARKED: usize = 2;
/// The operation function panicked while its part was out; the part frees the block.
const ABANDONED: usize = 3;

/// The one heap block of a sequential composite: its state word, the running part's
/// mailbox and the user's values. Who may touch which field, and who frees it, is the
/// module's "The invariant".
#[repr(C)]
struct Block<T, E, S> {
    /// What the running part delivers through (first: see `Part::from_raw`).
    parts: PartsAt<T, E>,
    state: AtomicUsize,
    /// `None` only while the final callback is being taken out.
    steps: UnsafeCell<Option<S>>,
    /// The outcome a part delivered while the driver was in the operation function; `None`
    /// there means the part was dropped uncalled.
    mailbox: UnsafeCell<Option<(usize, Result<T, E>)>>,
    _te: PhantomData<fn(T, E)>,
}

/// Runs the composite `steps` from `first` on: the helpers' entry point.
pub(super) fn run<T, E, S>(steps: S, first: Flow<S::Input, S::Out>)
where
    T: Send + 'static,
    E: Send + 'static,
    S: Steps<T, E>,
{
    let block = pool::Owned::new_with(|| Block {
        parts: PartsAt::new(&Block::<T, E, S>::VTABLE),
        state: AtomicUsize::new(IN_START),
        steps: UnsafeCell::new(Some(steps)),
        mailbox: UnsafeCell::new(None),
        _te: PhantomData,
    });
    // SAFETY: the block is ours alone (no part exists yet).
    unsafe { drive(pool::Owned::into_raw(block), first) }
}

impl<T, E, S> Block<T, E, S>
where
    T: Send + 'static,
    E: Send + 'static,
    S: Steps<T, E>,
{
    const VTABLE: PartVTable<T, E> = PartVTable {
        settle: Self::settle,
        release: Self::release_part,
    };

    /// The running part delivers `outcome` (`None`: dropped uncalled).
    ///
    /// # Safety
    ///
    /// `this` is a live block whose running part is the caller, delivering once.
    unsafe fn deliver(this: NonNull<Self>, outcome: Option<(usize, Result<T, E>)>) {
        // SAFETY: the block lives until its owner frees it, and the owner is the driver
        // (who cannot free it before it sees our delivery) or us.
        let b = unsafe { this.as_ref() };
        let mut state = b.state.load(Ordering::Acquire);
        if state == IN_START {
            // SAFETY: while `state` is `IN_START` the mailbox is the running part's (ours) to
            // write; the driver reads it only after seeing `DELIVERED`, which we publish
            // below with release. If the driver parks first, nobody reads it but us.
            b.mailbox.with_mut(|p| unsafe { *p = outcome });
            match b
                .state
                .compare_exchange(IN_START, DELIVERED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => state = now,
            }
            // The driver left meanwhile: the block (and our outcome, back) is ours.
            // SAFETY: `state` is `PARKED` or `ABANDONED` (acquired): nobody else touches
            // the block again.
            let outcome = b.mailbox.with_mut(|p| unsafe { (*p).take() });
            // SAFETY: as above, the block is ours.
            return unsafe { Self::take_over(this, state, outcome) };
        }
        // SAFETY: `state` is `PARKED` or `ABANDONED` (acquired): the block is ours.
        unsafe { Self::take_over(this, state, outcome) }
    }

    /// Goes on after the driver left (`state` is `PARKED`) or gave up (`ABANDONED`).
    ///
    /// # Safety
    ///
    /// The caller owns `this` (it acquired `state`), and no party touches it again.
    unsafe fn take_over(this: NonNull<Self>, state: usize, outcome: Option<(usize, Result<T, E>)>) {
        match (state, outcome) {
            (PARKED, Some((index, result))) => {
                // SAFETY: the block is ours: nobody else reads `steps`.
                let flow = b_steps(this, |s| s.next(index, result));
                // SAFETY: the block is ours; `drive` takes it over.
                unsafe { drive(this, flow) }
            }
            // Dropped uncalled, or the operation function panicked: the composite never
            // completes. SAFETY: the block is ours, made by `Owned::into_raw`.
            _ => drop(unsafe { pool::Owned::from_raw(this) }),
        }
    }

    /// # Safety
    ///
    /// `this` is a live block, and the caller its running part, delivering once.
    unsafe fn settle(this: NonNull<()>, index: usize, result: Result<T, E>) {
        // SAFETY: the caller's contract.
        unsafe { Self::deliver(this.cast(), Some((index, result))) }
    }

    /// # Safety
    ///
    /// As for [`settle`](Self::settle).
    unsafe fn release_part(this: NonNull<()>, _: usize) {
        // SAFETY: the caller's contract.
        unsafe { Self::deliver(this.cast(), None) }
    }
}

/// Calls `f` on the block's steps.
///
/// The caller owns the block (see the module's invariant), so nobody else touches `steps`.
fn b_steps<T, E, S, R>(this: NonNull<Block<T, E, S>>, f: impl FnOnce(&mut S) -> R) -> R {
    // SAFETY: the block is live and its owner (the caller) alone touches `steps`; it holds
    // `Some` until `finish` takes it, after which nothing calls here.
    let b = unsafe { this.as_ref() };
    // SAFETY: as above: exclusive access.
    b.steps
        .with_mut(|p| f(unsafe { (*p).as_mut() }.expect("steps taken")))
}

/// Marks the block `ABANDONED` if the operation function unwinds, so that its part (or, if
/// it has delivered already, this guard) frees the block.
struct Unwinding<T, E, S>(NonNull<Block<T, E, S>>);

impl<T, E, S> Drop for Unwinding<T, E, S> {
    fn drop(&mut self) {
        // SAFETY: the driver (whose guard this is) keeps the block alive until here.
        let b = unsafe { self.0.as_ref() };
        if b.state
            .compare_exchange(IN_START, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // The part delivered already: the block is ours, made by `Owned::into_raw`.
            // SAFETY: nobody touches it after a delivery but the driver, which is us.
            drop(unsafe { pool::Owned::from_raw(self.0) });
        }
    }
}

/// Runs steps from `flow` on until an operation is left running (its part then owns the
/// block) or the composite finishes (the block is freed).
///
/// # Safety
///
/// The caller owns `this` (a live block from `run`) and hands it over.
unsafe fn drive<T, E, S>(this: NonNull<Block<T, E, S>>, mut flow: Flow<S::Input, S::Out>)
where
    T: Send + 'static,
    E: Send + 'static,
    S: Steps<T, E>,
{
    loop {
        match flow {
            Flow::Finish(out) => {
                // SAFETY: the block is live (made by `run`).
                let b = unsafe { this.as_ref() };
                let done = b.steps.with_mut(|p| {
                    // `take_done` leaves the steps moved out and dropped, so the slot is
                    // overwritten with `None` without a drop. (A panic in one of their
                    // drops leaks the block: no `Owned` holds it yet, so nothing is
                    // dropped twice.)
                    // SAFETY: we own the block, so nobody else touches its steps; they are
                    // `Some` until this arm, which runs once.
                    unsafe {
                        let steps: *mut S = (*p).as_mut().expect("steps taken");
                        let done = S::take_done(steps);
                        ptr::write(p, None);
                        done
                    }
                });
                // SAFETY: the block is ours, made by `Owned::into_raw`; freed before the
                // final callback runs, so a panic there leaks nothing.
                drop(unsafe { pool::Owned::from_raw(this) });
                return S::finish(done, out);
            }
            Flow::Start(index, input) => {
                // SAFETY: we own the block: the previous step's part has delivered.
                let b = unsafe { this.as_ref() };
                b.state.store(IN_START, Ordering::Relaxed);
                // SAFETY: the block carries one claim, the running part's: it is given up
                // by one delivery (`settle` or `release`), from any thread (the steps and
                // outcomes are `Send`).
                let part = unsafe { Part::from_raw(this.cast(), index) };
                let guard = Unwinding(this);
                b_steps(this, |s| s.start(index, input, part));
                std::mem::forget(guard);
                match b.state.compare_exchange(
                    IN_START,
                    PARKED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // The part owns the block now; we touch it no more.
                    Ok(_) => return,
                    Err(_) => {
                        // `DELIVERED`: the part was called (or dropped) during the call.
                        // SAFETY: we acquired its delivery; the block is ours again.
                        let outcome = b.mailbox.with_mut(|p| unsafe { (*p).take() });
                        match outcome {
                            Some((index, result)) => {
                                flow = b_steps(this, |s| s.next(index, result));
                            }
                            None => {
                                // SAFETY: as in `take_over`: the composite never completes.
                                drop(unsafe { pool::Owned::from_raw(this) });
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex, mpsc};

    use super::super::{Callback, Part, retry, series, waterfall};

    use super::super::test_util::Counted;

    type Held<T> = Arc<Mutex<Option<Part<T, ()>>>>;

    #[test]
    fn a_part_dropped_uncalled_later_frees_the_block_and_drops_the_callback_uncalled() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let held: Held<u32> = Arc::default();
        let (h, c, d) = (held.clone(), calls.clone(), Counted(drops.clone()));
        series(
            3,
            move |_, part| *h.lock().unwrap() = Some(part),
            move |_: Result<Vec<u32>, ()>| {
                let _d = d;
                c.fetch_add(1, SeqCst);
            },
        );
        let p = held.lock().unwrap().take().unwrap();
        p.call(Ok(1));
        assert_eq!(drops.load(SeqCst), 0, "freed while a part is out");
        drop(held.lock().unwrap().take());
        assert_eq!(calls.load(SeqCst), 0);
        assert_eq!(drops.load(SeqCst), 1, "the callback was not dropped once");
    }

    #[test]
    fn a_part_dropped_inside_its_operation_drops_the_callback_uncalled() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (c, d) = (calls.clone(), Counted(drops.clone()));
        waterfall(
            0u32,
            5,
            |i, v, part: Part<u32, ()>| {
                if i == 2 {
                    drop(part)
                } else {
                    part.call(Ok(v + 1))
                }
            },
            move |_: Result<u32, ()>| {
                let _d = d;
                c.fetch_add(1, SeqCst);
            },
        );
        assert_eq!(calls.load(SeqCst), 0);
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn an_operation_that_panics_with_its_part_out_frees_the_block_when_the_part_goes() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let held: Held<u32> = Arc::default();
        let (h, c, d) = (held.clone(), calls.clone(), Counted(drops.clone()));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            retry(
                3,
                move |_, part| {
                    *h.lock().unwrap() = Some(part);
                    panic!("op panics");
                },
                move |_: Result<u32, ()>| {
                    let _d = d;
                    c.fetch_add(1, SeqCst);
                },
            )
        }));
        assert!(r.is_err());
        // The operation function (and the final callback) stay with the block while the
        // part is out.
        assert_eq!(drops.load(SeqCst), 0);
        let p = held.lock().unwrap().take().unwrap();
        p.call(Ok(7));
        assert_eq!(
            calls.load(SeqCst),
            0,
            "a composite whose op panicked completed"
        );
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn an_operation_that_panics_after_calling_its_part_frees_the_block_at_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (c, d) = (calls.clone(), Counted(drops.clone()));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            series(
                3,
                |i, part: Part<usize, ()>| {
                    part.call(Ok(i));
                    if i == 1 {
                        panic!("op 1 panics");
                    }
                },
                move |_: Result<Vec<usize>, ()>| {
                    let _d = d;
                    c.fetch_add(1, SeqCst);
                },
            )
        }));
        assert!(r.is_err());
        assert_eq!(calls.load(SeqCst), 0);
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn outcomes_from_other_threads_drive_every_step_once() {
        for _ in 0..200 {
            let (tx, rx) = mpsc::channel();
            series(
                8,
                |i, part: Part<usize, ()>| {
                    // Sometimes before the op returns, sometimes after.
                    std::thread::spawn(move || part.call(Ok(i)));
                },
                move |r: Result<Vec<usize>, ()>| tx.send(r).unwrap(),
            );
            assert_eq!(rx.recv().unwrap(), Ok((0..8).collect::<Vec<_>>()));
            assert!(rx.try_recv().is_err());
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! loom model of the driver/part hand-off: a part called on another thread while its
    //! operation function runs, or after it returned, is folded in exactly once, and the
    //! block is freed once. Run with `bash ci/loom.sh`.

    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::super::{Callback, Part, series};

    #[test]
    fn loom_sequence_a_part_on_another_thread_races_the_driver() {
        loom::model(|| {
            let log: Arc<Mutex<Vec<Result<Vec<u32>, ()>>>> = Arc::new(Mutex::new(Vec::new()));
            let l = log.clone();
            let threads = Arc::new(Mutex::new(Vec::new()));
            let t = threads.clone();
            series(
                2,
                move |i, part: Part<u32, ()>| {
                    if i == 0 {
                        t.lock()
                            .unwrap()
                            .push(thread::spawn(move || part.call(Ok(10))));
                    } else {
                        part.call(Ok(11));
                    }
                },
                move |r: Result<Vec<u32>, ()>| l.lock().unwrap().push(r),
            );
            let spawned = std::mem::take(&mut *threads.lock().unwrap());
            for t in spawned {
                t.join().unwrap();
            }
            assert_eq!(*log.lock().unwrap(), vec![Ok(vec![10, 11])]);
        });
    }
}
