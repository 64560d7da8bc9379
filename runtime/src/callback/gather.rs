//! The gather behind [`parallel`](super::parallel), [`parallel_settled`](super::parallel_settled)
//! and [`any`](super::any): `n` parts settle into per-index slots with at most one atomic
//! read-modify-write each, and no lock; parts settled back to back on one thread share one
//! (`held.rs`).
//!
//! # The invariant
//!
//! One heap block per composite holds `state`, the slots (inline for up to four parts, else
//! in a slice of their own) and the final callback (inside a [`Rule`]). `state`'s low bits
//! count the parts that still hold a claim on the block: it starts at `n`, and each part
//! gives its claim up exactly once — by settling or by being
//! dropped uncalled — with one `fetch_sub`, or by handing it to its thread, which gives up
//! the claims it holds on the block with one `fetch_sub` later (`held.rs`). Whoever takes
//! the count to zero owns the block and frees it; a releaser that finds the count equal
//! to the claims it gives up (every claim left is its own) owns it without the
//! `fetch_sub`, having acquired the others' releases with its load. So:
//!
//! - slot `i` is written only by part `i` (each part settles at most once: calling consumes
//!   it), before its `fetch_sub` (AcqRel); the last releaser reads every slot after its
//!   own `fetch_sub` (or acquire load), which acquires every earlier release, and nobody
//!   else reads them;
//! - the final callback leaves the block once: an outcome that settles the composite early
//!   (the first error of `parallel`, the first success of `any`) sets the `SETTLED` bit with
//!   `fetch_or`, and only the part that set it takes the callback, before giving up its own
//!   claim (so the block is alive); otherwise the last releaser takes it, having seen
//!   `SETTLED` clear — which no later outcome can set, as every part has released;
//! - a composite with a slot left empty (a part dropped uncalled) never calls its final
//!   callback, as a Node callback that is never called: the callback is dropped with the
//!   block.
//!
//! The count fits below the `SETTLED` bit: `n` slots of at least one byte each fit in
//! `isize::MAX` bytes.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::compose::{Part, PartVTable, PartsAt};
use crate::loom::sync::{AtomicUsize, Ordering, UnsafeCell};
use crate::task::pool;

/// Set in `state` once the final callback has been taken by an early outcome.
const SETTLED: usize = 1 << (usize::BITS - 1);

/// What a gather makes of each outcome, and how it calls its final callback.
pub(super) trait Rule<T, E>: Send + 'static {
    /// What a slot keeps.
    type Slot: Send + 'static;
    /// An outcome that settles the composite at once.
    type Early;
    /// Keeps an outcome in its slot, or settles early with it.
    fn sort(result: Result<T, E>) -> Result<Self::Slot, Self::Early>;
    /// Calls the final callback with an early outcome.
    fn early(self, early: Self::Early);
    /// Calls the final callback with every slot, in index order.
    fn finish(self, slots: Vec<Self::Slot>);
}

/// Composites of up to this many parts keep their slots inside the block: one allocation
/// per composite, not two (`par/ready`, three parts: about 150 instructions of 2 100 per op
/// were the second `malloc` and `free`).
const INLINE_SLOTS: usize = 4;

/// The slots of a gather: inside the block for a few parts, else a slice of their own.
enum Slots<S> {
    /// The first `n` of the array are the slots.
    Inline([UnsafeCell<Option<S>>; INLINE_SLOTS], usize),
    Heap(Box<[UnsafeCell<Option<S>>]>),
}

impl<S> Slots<S> {
    fn new(n: usize) -> Self {
        if n <= INLINE_SLOTS {
            Slots::Inline(std::array::from_fn(|_| UnsafeCell::new(None)), n)
        } else {
            Slots::Heap((0..n).map(|_| UnsafeCell::new(None)).collect())
        }
    }

    #[inline]
    fn get(&self) -> &[UnsafeCell<Option<S>>] {
        match self {
            Slots::Inline(a, n) => &a[..*n],
            Slots::Heap(b) => b,
        }
    }
}

#[repr(C)]
struct Gather<T, E, R: Rule<T, E>> {
    /// What the parts deliver through (first: see `Part::from_raw`).
    parts: PartsAt<T, E>,
    /// Parts holding a claim on this block, plus [`SETTLED`].
    state: AtomicUsize,
    slots: Slots<R::Slot>,
    /// The first of `slots`, wherever they are: set once the block is in place (it never
    /// moves), so that a part reaches its slot without a branch or a bounds check.
    first: *const UnsafeCell<Option<R::Slot>>,
    /// The final callback; `None` once taken.
    rule: UnsafeCell<Option<R>>,
    _te: PhantomData<fn(T, E)>,
}

impl<T, E, R> Gather<T, E, R>
where
    T: Send + 'static,
    E: Send + 'static,
    R: Rule<T, E>,
{
    const VTABLE: PartVTable<T, E> = PartVTable {
        settle: Self::settle,
        release: Self::release_part,
    };

    /// Delivers part `index`'s outcome and gives up its claim.
    ///
    /// # Safety
    ///
    /// `this` points to a live gather block, and part `index` of it holds a claim it has
    /// not given up; this call gives it up.
    unsafe fn settle(this: NonNull<()>, index: usize, result: Result<T, E>) {
        let this = this.cast::<Self>();
        // SAFETY: the caller's claim keeps the block alive until `release` below.
        let g = unsafe { this.as_ref() };
        match R::sort(result) {
            Ok(slot) => {
                // SAFETY: `index < n`, and `first` points to the block's `n` slots, alive
                // while we hold our claim.
                let cell = unsafe { &*g.first.add(index) };
                // The `fetch_sub` that gives up our claim (ours below, or this thread's
                // later: `held.rs`) releases this write; the last releaser's acquires it.
                // SAFETY: only part `index` writes slot `index`, and it settles once; the
                // slot is read only by the last releaser, after this write.
                cell.with_mut(|p| unsafe { *p = Some(slot) });
            }
            Err(early) => {
                let prev = g.state.fetch_or(SETTLED, Ordering::AcqRel);
                if prev & SETTLED == 0 {
                    // SAFETY: we set SETTLED, so nobody else takes the rule: a later early
                    // outcome sees the bit, and the last releaser sees it too (we still
                    // hold our claim, so it comes after our `fetch_sub`).
                    let rule = g.rule.with_mut(|p| unsafe { (*p).take() });
                    // SAFETY: our claim, given up once, here.
                    unsafe { Self::release(this, 1) };
                    if let Some(rule) = rule {
                        rule.early(early);
                    }
                    return;
                }
            }
        }
        // Our claim goes now, or later with the others this thread holds on the block
        // (`held.rs`). Claims are made only by `start`, and those it has not handed out yet
        // are counted too, so the count is never below the claims held here.
        // SAFETY: our claim, given up once, by `give_up` or by us below; `state` is the count.
        let now = unsafe {
            super::held::give_up(
                this.cast(),
                NonNull::from(&g.state),
                !SETTLED,
                Self::release_claims,
            )
        };
        if now > 0 {
            // SAFETY: the claims `give_up` hands back to us (ours, and any it held).
            unsafe { Self::release(this, now) }
        }
    }

    /// Gives up `k` claims: [`release`](Self::release) for `held.rs`.
    ///
    /// # Safety
    ///
    /// As for `release`.
    unsafe fn release_claims(this: NonNull<()>, k: usize) {
        // SAFETY: the caller's contract.
        unsafe { Self::release(this.cast(), k) }
    }

    /// Part `index` was dropped uncalled: its slot stays empty.
    ///
    /// # Safety
    ///
    /// As for [`settle`](Self::settle).
    unsafe fn release_part(this: NonNull<()>, _index: usize) {
        // SAFETY: the caller's claim, given up once, here.
        unsafe { Self::release(this.cast(), 1) }
    }

    /// Gives up `k` claims; the last releaser finishes the composite and frees the block.
    ///
    /// # Safety
    ///
    /// `this` is a live gather block and the caller holds `k` claims on it, which it gives
    /// up here and does not use again.
    unsafe fn release(this: NonNull<Self>, k: usize) {
        // SAFETY: our claims keep the block alive for this load and `fetch_sub`.
        let state = &unsafe { this.as_ref() }.state;
        let now = state.load(Ordering::Acquire);
        let prev = if now & !SETTLED == k {
            // Every claim left is ours (the count never falls below the claims held), so
            // nobody else changes `state` again: no part is left to settle, set `SETTLED`
            // or give a claim up. The acquire load read the last of the other claims'
            // releases, and each was a read-modify-write, so it acquired them all, as the
            // `fetch_sub` would have. That `fetch_sub` is skipped: the last part of a
            // gather settled on its thread (held claims, or a lone part) takes no locked
            // operation, which after the stores of a batch cost several nanoseconds.
            now
        } else {
            state.fetch_sub(k, Ordering::AcqRel)
        };
        if prev & !SETTLED != k {
            return;
        }
        // Every claim left was ours and is given up here, and our AcqRel `fetch_sub` (or
        // acquire load) synchronized with every other part's release: their slot writes
        // and rule take happened before what follows.
        // SAFETY: no other part holds a claim and no new one is made, so we own the block,
        // which `start` made with `Owned::into_raw`.
        let g = unsafe { pool::Owned::from_raw(this) };
        if prev & SETTLED != 0 {
            return;
        }
        let Some(rule) = g.rule.with_mut(|p| {
            // SAFETY: we own the block.
            unsafe { (*p).take() }
        }) else {
            return;
        };
        let mut values = Vec::with_capacity(g.slots.get().len());
        for slot in g.slots.get() {
            // SAFETY: we own the block.
            match slot.with_mut(|p| unsafe { (*p).take() }) {
                Some(v) => values.push(v),
                // A part was dropped uncalled: the composite never completes.
                None => return,
            }
        }
        drop(g);
        rule.finish(values);
    }
}

/// Gives up the claims of the parts `start` has not made yet, if `op` unwinds.
struct Unstarted<T, E, R>
where
    T: Send + 'static,
    E: Send + 'static,
    R: Rule<T, E>,
{
    g: NonNull<Gather<T, E, R>>,
    left: usize,
}

impl<T, E, R> Drop for Unstarted<T, E, R>
where
    T: Send + 'static,
    E: Send + 'static,
    R: Rule<T, E>,
{
    fn drop(&mut self) {
        if self.left > 0 {
            // SAFETY: `start` holds the claims of the parts not yet made, `left` of them,
            // and gives them up here only.
            unsafe { Gather::release(self.g, self.left) }
        }
    }
}

/// Makes a gather of `n > 0` parts for `rule` and calls `op(i, part)` for each.
pub(super) fn start<T, E, R, Op>(n: usize, rule: R, mut op: Op)
where
    T: Send + 'static,
    E: Send + 'static,
    R: Rule<T, E>,
    Op: FnMut(usize, Part<T, E>),
{
    debug_assert!(n > 0 && n < SETTLED);
    let block = pool::Owned::new_with(|| Gather::<T, E, R> {
        parts: PartsAt::new(&Gather::<T, E, R>::VTABLE),
        state: AtomicUsize::new(n),
        slots: Slots::new(n),
        first: std::ptr::null(),
        rule: UnsafeCell::new(Some(rule)),
        _te: PhantomData,
    });
    let g = pool::Owned::into_raw(block);
    // SAFETY: the block is ours alone until the first part is made, below; it stays where
    // it is until freed, so the slots' address does too.
    unsafe { (*g.as_ptr()).first = (*g.as_ptr()).slots.get().as_ptr() };
    // The claims of parts `n - left..n`, which this function holds until it makes them.
    let mut unstarted = Unstarted { g, left: n };
    // The operations' deferred callbacks go to the queue as one entry (`callback::batched`).
    super::batched(n, || {
        for i in 0..n {
            unstarted.left -= 1;
            // The block is `repr(C)` with its vtable first, as a part needs.
            // SAFETY: the claim of part `i` moves from `unstarted` to the part: the block
            // lives while it is held, the gather's vtable frees it, and `T`, `E` and the
            // rule are `Send`, so the part may go to any thread.
            let part = unsafe { Part::from_raw(g.cast(), i) };
            op(i, part);
        }
    })
}

// --- rules ---------------------------------------------------------------------------------

/// `parallel`: every value, or the first error.
pub(super) struct AllOk<D>(pub(super) D);

impl<T, E, D> Rule<T, E> for AllOk<D>
where
    T: Send + 'static,
    E: Send + 'static,
    D: super::Callback<Vec<T>, E>,
{
    type Slot = T;
    type Early = E;

    #[inline]
    fn sort(result: Result<T, E>) -> Result<T, E> {
        result
    }

    fn early(self, e: E) {
        self.0.call(Err(e))
    }

    fn finish(self, values: Vec<T>) {
        self.0.call(Ok(values))
    }
}

/// `any`: the first value, or every error.
pub(super) struct AnyOk<D>(pub(super) D);

impl<T, E, D> Rule<T, E> for AnyOk<D>
where
    T: Send + 'static,
    E: Send + 'static,
    D: super::Callback<T, Vec<E>>,
{
    type Slot = E;
    type Early = T;

    #[inline]
    fn sort(result: Result<T, E>) -> Result<E, T> {
        match result {
            Ok(v) => Err(v),
            Err(e) => Ok(e),
        }
    }

    fn early(self, v: T) {
        self.0.call(Ok(v))
    }

    fn finish(self, errors: Vec<E>) {
        self.0.call(Err(errors))
    }
}

/// `parallel_settled`: every outcome.
pub(super) struct AllSettled<D>(pub(super) D);

impl<T, E, D> Rule<T, E> for AllSettled<D>
where
    T: Send + 'static,
    E: Send + 'static,
    D: FnOnce(Vec<Result<T, E>>) + Send + 'static,
{
    type Slot = Result<T, E>;
    type Early = std::convert::Infallible;

    #[inline]
    fn sort(result: Result<T, E>) -> Result<Result<T, E>, std::convert::Infallible> {
        Ok(result)
    }

    fn early(self, never: std::convert::Infallible) {
        match never {}
    }

    fn finish(self, outcomes: Vec<Result<T, E>>) {
        (self.0)(outcomes)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::super::{Callback, Part, any, parallel, parallel_settled};

    use super::super::test_util::Counted;

    #[test]
    fn a_part_dropped_uncalled_drops_the_final_callback_uncalled() {
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (c, d) = (calls.clone(), Counted(drops.clone()));
        let mut parts = Vec::new();
        parallel(
            3,
            |_, part: Part<Counted, ()>| parts.push(part),
            move |_: Result<Vec<Counted>, ()>| {
                let _d = d;
                c.fetch_add(1, SeqCst);
            },
        );
        let mut parts = parts.into_iter();
        parts.next().unwrap().call(Ok(Counted(drops.clone())));
        drop(parts.next());
        assert_eq!(drops.load(SeqCst), 0, "freed before the last part");
        parts.next().unwrap().call(Ok(Counted(drops.clone())));
        assert_eq!(calls.load(SeqCst), 0);
        // Two values and the callback's capture, each dropped once.
        assert_eq!(drops.load(SeqCst), 3);
    }

    #[test]
    fn an_op_that_panics_midway_frees_the_composite() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = Counted(drops.clone());
        let mut parts = Vec::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parallel_settled(
                4,
                |i, part: Part<(), ()>| {
                    if i == 2 {
                        panic!("op 2");
                    }
                    parts.push(part)
                },
                move |_| drop(d),
            )
        }));
        assert!(r.is_err());
        assert_eq!(drops.load(SeqCst), 0);
        for p in parts {
            p.call(Ok(()));
        }
        assert_eq!(drops.load(SeqCst), 1, "the callback was not dropped once");
    }

    #[test]
    fn early_settling_calls_once_and_drops_every_late_outcome() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut parts = Vec::new();
        any(
            3,
            |_, part: Part<u32, Counted>| parts.push(part),
            move |r: Result<u32, Vec<Counted>>| tx.send(r.ok()).unwrap(),
        );
        let mut parts = parts.into_iter();
        parts.next().unwrap().call(Err(Counted(drops.clone())));
        parts.next().unwrap().call(Ok(7));
        assert_eq!(rx.try_recv().unwrap(), Some(7));
        parts.next().unwrap().call(Err(Counted(drops.clone())));
        assert!(rx.try_recv().is_err());
        assert_eq!(drops.load(SeqCst), 2);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! loom models of the gather's settle/finish race: parts settled on two threads at once
    //! deliver to the final callback exactly once, with the right outcome, and the block is
    //! freed once (loom's `Arc` inside the callback would otherwise leak, which loom
    //! reports; a slot or rule accessed without the count's ordering fails the model).
    //! Run with `bash ci/loom.sh`.

    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::super::{Callback, Part, any, parallel};

    type Log<T> = Arc<Mutex<Vec<T>>>;

    /// Settles two parts of a fresh `parallel` on two threads with `a` and `b`; returns what
    /// the final callback got.
    fn parallel_of_two(a: Result<u32, u32>, b: Result<u32, u32>) -> Vec<Result<Vec<u32>, u32>> {
        let log: Log<Result<Vec<u32>, u32>> = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let mut parts = Vec::new();
        parallel(
            2,
            |_, part: Part<u32, u32>| parts.push(part),
            move |r: Result<Vec<u32>, u32>| l.lock().unwrap().push(r),
        );
        let second = parts.pop().unwrap();
        let first = parts.pop().unwrap();
        let t = thread::spawn(move || second.call(b));
        first.call(a);
        t.join().unwrap();
        let got = log.lock().unwrap().clone();
        got
    }

    #[test]
    fn loom_gather_two_successes_deliver_once_in_order() {
        loom::model(|| {
            assert_eq!(parallel_of_two(Ok(1), Ok(2)), vec![Ok(vec![1, 2])]);
        });
    }

    #[test]
    fn loom_gather_a_failure_racing_a_success_delivers_the_failure_once() {
        loom::model(|| {
            assert_eq!(parallel_of_two(Ok(1), Err(9)), vec![Err(9)]);
        });
    }

    #[test]
    fn loom_gather_two_failures_deliver_one_of_them_once() {
        loom::model(|| {
            let got = parallel_of_two(Err(8), Err(9));
            assert!(got == vec![Err(8)] || got == vec![Err(9)], "{got:?}");
        });
    }

    #[test]
    fn loom_gather_any_with_a_dropped_part_calls_nothing_and_frees_once() {
        loom::model(|| {
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let mut parts = Vec::new();
            any(
                2,
                |_, part: Part<u32, u32>| parts.push(part),
                move |_: Result<u32, Vec<u32>>| {
                    c.fetch_add(1, SeqCst);
                },
            );
            let second = parts.pop().unwrap();
            let first = parts.pop().unwrap();
            let t = thread::spawn(move || drop(second));
            first.call(Err(1));
            t.join().unwrap();
            assert_eq!(calls.load(SeqCst), 0);
        });
    }
}
