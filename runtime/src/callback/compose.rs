//! Composition helpers in the spirit of the Node `async` library, written once for every
//! callback-style caller.
//!
//! Each helper starts operations by calling an *operation function* with an index (and,
//! for [`waterfall`], the previous value) and a [`Part`]: the callback that operation must
//! call with its outcome. The helper's shared state decides what each outcome means and
//! calls the final callback exactly once.
//!
//! The sets are homogeneous and indexed (`op(i, part)` for `i in 0..n`) rather than a list
//! of boxed closures: one allocation per composite (its shared state) instead of one per
//! operation, and the operation function is ordinary code that captures what it needs.
//! The helpers that start several operations at once collect the callbacks those defer
//! into one run-queue entry (`batched` in `mod.rs`; see
//! [the ordering rules](super#ordering)).
//!
//! # Once, and what happens to late outcomes
//!
//! The final callback sits in an `Option` inside the composite's one heap block, and whoever
//! settles the composite takes it out and calls it. No helper takes a lock or counts
//! references per part: [`parallel`], [`parallel_settled`] and [`any`] are gathers
//! (`gather.rs`) in which each part writes its own slot and counts down once with an atomic
//! operation (or, settled back to back with others on one thread, shares one:
//! `held.rs`), and the last part (or the first that settles early) takes the callback;
//! [`parallel_limit`] is such a gather whose starts are handed between threads by a counter
//! of free places (`limit.rs`); [`race`] lets the first outcome take it with one atomic
//! operation (`race.rs`); [`series`], [`waterfall`] and [`retry`] pass their one block
//! between the caller of the operation function and the running part (`sequence.rs`); and
//! [`timeout`] settles under a lock shared with its timer. Every later outcome finds the
//! slot empty and is dropped — an `all` that failed fast ignores the
//! stragglers, a `race` ignores the losers (and cancels those that returned a [`Cancel`]
//! handle), a `timeout` that fired ignores the operation's eventual result.
//!
//! # Synchronous completion
//!
//! An operation may call its part before its `op` call returns, or from any thread.
//! [`parallel`], [`parallel_settled`], [`any`], [`race`] and [`timeout`] then settle on the
//! spot, so `done` may run before the helper returns, on whichever thread settled it.
//! [`series`], [`waterfall`] and [`retry`] start their next operation only once the current
//! `op` call has returned — never nested inside it — so a long chain of synchronous
//! operations runs in constant stack, and (for `n > 0`) without a runtime.
//!
//! # Examples
//!
//! ```
//! use weft_runtime::callback::{parallel, resolve_later};
//!
//! let rt = weft_runtime::Runtime::new().unwrap();
//! let (tx, rx) = std::sync::mpsc::channel();
//! rt.block_on(async move {
//!     parallel(
//!         3,
//!         |i, part| resolve_later(Ok::<u64, String>(i as u64 * 10), part),
//!         move |r: Result<Vec<u64>, String>| tx.send(r).unwrap(),
//!     );
//! });
//! assert_eq!(rx.recv().unwrap(), Ok(vec![0, 10, 20]));
//! ```

use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::limit as limit_block;
use super::race as race_block;
use super::sequence::{self, Flow, Steps};
use super::{Callback, Cancel, TimeoutHandle, gather, set_timeout};
use crate::time::Elapsed;

/// Where a [`Part`] delivers: the shared state of a composite that keeps its state in an
/// `Arc` ([`timeout`]).
///
/// # Safety
///
/// The implementor is `repr(C)` and its first field points to
/// `<Self as ArcVTable<T, E>>::VTABLE` (what [`Part`] delivers through).
unsafe trait Sink<T, E>: Send + Sync {
    fn settle(self: Arc<Self>, index: usize, result: Result<T, E>);
}

/// How a [`Part`] reaches its composite: two functions over a type-erased pointer, so that
/// the part of a composite with its own block (`gather.rs`, `limit.rs`, `race.rs`,
/// `sequence.rs`) carries no reference count of its own, while [`timeout`]'s keeps its
/// `Arc`'s.
///
/// The composite's state starts with a pointer to its `PartVTable`, a promoted constant
/// (every such state is `repr(C)` with it as its first field), and a part carries only the pointer to the state
/// and its index: two words, passed and returned in registers. With the vtable inside the
/// part (four words), every call that handed a part on went through memory, and a copy
/// loaded it back whole before its stores had retired: on this machine that stall was the
/// largest single cost of a `ready` callback composite.
pub(super) struct PartVTable<T, E> {
    /// Delivers the outcome of part `index` and gives up the part's claim on the state.
    pub(super) settle: unsafe fn(NonNull<()>, usize, Result<T, E>),
    /// Gives up the claim of part `index`, dropped uncalled.
    pub(super) release: unsafe fn(NonNull<()>, usize),
}

/// Where a composite's [`PartVTable`] is: the first field of every state a [`Part`] points
/// to. It points to a promoted constant, so it is valid for the whole program whatever `T`
/// and `E` are (a `&'static` would need them `'static`).
#[repr(transparent)]
pub(super) struct PartsAt<T, E>(*const PartVTable<T, E>);

// SAFETY: it points to an immutable constant of function pointers, valid for ever: reading
// it from any thread is sound.
unsafe impl<T, E> Send for PartsAt<T, E> {}
// SAFETY: as for `Send`.
unsafe impl<T, E> Sync for PartsAt<T, E> {}

impl<T, E> PartsAt<T, E> {
    /// Points to `vtable`.
    pub(super) const fn new(vtable: &'static PartVTable<T, E>) -> Self
    where
        T: 'static,
        E: 'static,
    {
        PartsAt(vtable)
    }
}

impl<T, E> Clone for PartVTable<T, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, E> Copy for PartVTable<T, E> {}

/// The callback a composition helper hands to one of its operations.
///
/// Call it (it is a [`Callback`]) with the operation's outcome; it can be called only once,
/// since calling consumes it. Dropping it uncalled means the operation never finished: the
/// composite then never completes, as a Node callback that is never called.
pub struct Part<T, E> {
    /// The composite's state, whose first field is the vtable to deliver through.
    state: NonNull<PartsAt<T, E>>,
    index: usize,
}

// SAFETY: every state a part points to is shared between threads by design (an
// `Arc<dyn Sink + Send + Sync>`, or a block whose slots, steps and callback are `Send` and
// whose bookkeeping is atomic), and `T` and `E` travel through it, so they must be `Send`.
unsafe impl<T: Send, E: Send> Send for Part<T, E> {}
// SAFETY: `&Part` exposes only its index.
unsafe impl<T, E> Sync for Part<T, E> {}

impl<T, E> Part<T, E> {
    /// Which operation of the composite this is (counting from 0; for [`retry`], the
    /// attempt counting from 1).
    pub fn index(&self) -> usize {
        self.index
    }

    /// A part that delivers through the vtable `state` starts with.
    ///
    /// # Safety
    ///
    /// `state` points to a `repr(C)` value whose first field points to a `PartVTable<T, E>`
    /// that lives as long as the program (a promoted constant), never changed while a part
    /// points there; it carries one claim, given up by
    /// exactly one call of that vtable's `settle` or `release` with `state` and `index`;
    /// those functions may be called from any thread, once.
    #[inline]
    pub(super) unsafe fn from_raw(state: NonNull<()>, index: usize) -> Self {
        Part {
            state: state.cast(),
            index,
        }
    }

    /// The vtable the part delivers through.
    #[inline]
    fn vtable(&self) -> &PartVTable<T, E> {
        // SAFETY: the claim the part carries keeps the state alive, and its first field
        // points to the vtable, which lives for ever and which nobody changes (`from_raw`'s
        // contract).
        unsafe { &*(*self.state.as_ptr()).0 }
    }
}

impl<T: Send + 'static, E: Send + 'static> Callback<T, E> for Part<T, E> {
    #[inline]
    fn call(self, result: Result<T, E>) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the part's claim, given up here once: `this` is not dropped.
        unsafe { (this.vtable().settle)(this.state.cast(), this.index, result) }
    }
}

impl<T, E> Drop for Part<T, E> {
    fn drop(&mut self) {
        // SAFETY: the part's claim, given up here once: it was never called (calling
        // forgets the part).
        unsafe { (self.vtable().release)(self.state.cast(), self.index) }
    }
}

impl<T, E> fmt::Debug for Part<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The vtable of the parts of an `Arc`-based composite `S`: each part owns one strong count.
struct ArcParts<S>(std::marker::PhantomData<S>);

impl<S> ArcParts<S> {
    /// # Safety
    ///
    /// `state` came from `Arc::<S>::into_raw` and its count is the caller's.
    unsafe fn settle<T, E>(state: NonNull<()>, index: usize, result: Result<T, E>)
    where
        S: Sink<T, E>,
    {
        // SAFETY: the part owns this strong count (`part` made it with `into_raw`).
        let sink = unsafe { Arc::from_raw(state.cast::<S>().as_ptr()) };
        sink.settle(index, result)
    }

    /// # Safety
    ///
    /// As for [`settle`](Self::settle).
    unsafe fn release(state: NonNull<()>, _: usize) {
        // SAFETY: the part owns this strong count (`part` made it with `into_raw`).
        drop(unsafe { Arc::from_raw(state.cast::<S>().as_ptr()) })
    }
}

trait ArcVTable<T, E> {
    const VTABLE: PartVTable<T, E>;
}

impl<T, E, S: Sink<T, E>> ArcVTable<T, E> for S {
    const VTABLE: PartVTable<T, E> = PartVTable {
        settle: ArcParts::<S>::settle::<T, E>,
        release: ArcParts::<S>::release,
    };
}

fn part<T, E, S: Sink<T, E> + 'static>(sink: &Arc<S>, index: usize) -> Part<T, E> {
    let raw = Arc::into_raw(sink.clone()).cast_mut().cast::<()>();
    // SAFETY: `into_raw` is never null and points to the `S`, which starts with its
    // vtable (`Sink`'s contract); the part owns the strong count just made, which
    // `ArcParts` gives back once, from any thread (`S: Send + Sync`).
    unsafe { Part::from_raw(NonNull::new_unchecked(raw), index) }
}

// --- parallel ------------------------------------------------------------------------------

/// Runs `op(0..n)` at once; `done` gets every value in input order, or the first error as
/// soon as it occurs (later outcomes are ignored): `async.parallel`, `Promise.all`.
///
/// With `n == 0`, `done` gets `Ok(vec![])` on the next pass of the scheduler.
///
/// # Panics
///
/// Outside a runtime when `n == 0` (the empty result is deferred).
pub fn parallel<T, E, Op, D>(n: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>),
    D: Callback<Vec<T>, E>,
{
    if n == 0 {
        return super::resolve_later(Ok(Vec::new()), done);
    }
    gather::start(n, gather::AllOk(done), op);
}

// --- parallel_limit ------------------------------------------------------------------------

/// Runs `op(0..n)` with at most `limit` operations in flight, starting the next as soon as
/// one succeeds; `done` gets every value in input order, or the first error as soon as it
/// occurs (no operation starts after it; those in flight are ignored): `async.mapLimit`,
/// a bounded `Promise.all`.
///
/// A part dropped uncalled, or an operation function that panics, ends the composite the
/// same way, except that `done` is dropped uncalled: the composite never completes, as a
/// Node callback that is never called.
///
/// # Panics
///
/// If `limit` is 0; outside a runtime when `n == 0` (the empty result is deferred).
///
/// # Examples
///
/// ```
/// use weft_runtime::callback::{parallel_limit, resolve_later};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     parallel_limit(
///         10,
///         3,
///         |i, part| resolve_later(Ok::<usize, ()>(i * i), part),
///         move |r: Result<Vec<usize>, ()>| tx.send(r).unwrap(),
///     );
/// });
/// assert_eq!(rx.recv().unwrap(), Ok((0..10).map(|i| i * i).collect()));
/// ```
pub fn parallel_limit<T, E, Op, D>(n: usize, limit: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    assert!(limit > 0, "parallel_limit: the limit must be at least 1");
    if n == 0 {
        return super::resolve_later(Ok(Vec::new()), done);
    }
    limit_block::start(n, limit, op, done);
}

// --- parallel_settled ----------------------------------------------------------------------

/// Runs `op(0..n)` at once; `done` gets every outcome, in input order, once all have
/// settled: `Promise.allSettled` (Node: `async.parallel` of `async.reflect`ed tasks).
///
/// # Panics
///
/// Outside a runtime when `n == 0`.
pub fn parallel_settled<T, E, Op, D>(n: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>),
    D: FnOnce(Vec<Result<T, E>>) + Send + 'static,
{
    if n == 0 {
        return super::defer(move || done(Vec::new()));
    }
    gather::start(n, gather::AllSettled(done), op);
}

// --- any -----------------------------------------------------------------------------------

/// Runs `op(0..n)` at once; `done` gets the first success, or — if every operation fails —
/// all the errors in input order: `Promise.any` (Node: `async.tryEach`, but concurrent).
///
/// # Panics
///
/// Outside a runtime when `n == 0` (the empty failure is deferred).
pub fn any<T, E, Op, D>(n: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>),
    D: Callback<T, Vec<E>>,
{
    if n == 0 {
        return super::resolve_later(Err(Vec::new()), done);
    }
    gather::start(n, gather::AnyOk(done), op);
}

// --- race ----------------------------------------------------------------------------------

/// Runs `op(0..n)` at once; the first to settle (success or error) decides, and every other
/// operation is cancelled through the [`Cancel`] handle its `op` call returned (an
/// operation that returns `()` is simply ignored): `async.race`, `Promise.race`.
///
/// With `n == 0`, `done` is never called (an empty race never settles, as in JavaScript).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_runtime::callback::{race, set_timeout, Callback};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     // The losers are cancelled when the 1 ms timer wins, so nothing waits for them. Their
///     // delays are far apart from the winner's because timers on different workers settle
///     // in wall-clock order, and a loaded machine can hold a worker back for milliseconds.
///     let delays = [30_000u64, 1, 20_000];
///     race(
///         3,
///         move |i, part| {
///             set_timeout(Duration::from_millis(delays[i]), move || {
///                 part.call(Ok::<usize, ()>(i))
///             })
///         },
///         move |r: Result<usize, ()>| tx.send(r).unwrap(),
///     );
/// });
/// assert_eq!(rx.recv().unwrap(), Ok(1));
/// ```
pub fn race<T, E, C, Op, D>(n: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    C: Cancel,
    Op: FnMut(usize, Part<T, E>) -> C,
    D: Callback<T, E>,
{
    // Not batched (`callback::batched`): only the first outcome counts, so a batch would
    // only add its own list and entry (3 737 instructions per `race/ready` op unbatched,
    // 4 041 batched, when the race kept its state behind a lock).
    race_block::start(n, op, done)
}

// --- series, waterfall and retry ----------------------------------------------------------
//
// One operation at a time, so the operation function is called again and again; it is a
// `FnMut` and lives in the composite's one heap block with the rest of its bookkeeping,
// handed between the thread calling the operation function and the running operation's
// part by one atomic word (`sequence.rs`). An outcome that arrives while the operation
// function still runs — its operation called its `Part` before returning, or from another
// thread — waits in the block for that thread, which goes on with the next step in the same
// loop. So no step starts inside the previous one's call, a chain of synchronous operations
// runs in constant stack, and nothing needs a runtime.

/// The shared end of the sequential helpers' `take_done`: drops the operation function in
/// place and reads the final callback out.
///
/// # Safety
///
/// Both point to live fields of steps that nobody uses or drops after this call.
#[inline(always)]
unsafe fn drop_op_take_done<Op, D>(op: *mut Op, done: *const D) -> D {
    // SAFETY: the caller's contract: each field is dropped or moved out once.
    unsafe {
        ptr::drop_in_place(op);
        ptr::read(done)
    }
}

struct SeriesSteps<T, Op, D> {
    op: Op,
    done: D,
    values: Vec<T>,
    n: usize,
}

impl<T, E, Op, D> Steps<T, E> for SeriesSteps<T, Op, D>
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    type Input = ();
    type Out = Result<Vec<T>, E>;

    fn start(&mut self, index: usize, (): (), part: Part<T, E>) {
        (self.op)(index, part)
    }

    fn next(&mut self, index: usize, result: Result<T, E>) -> Flow<(), Self::Out> {
        match result {
            Ok(v) => {
                self.values.push(v);
                if index + 1 < self.n {
                    Flow::Start(index + 1, ())
                } else {
                    Flow::Finish(Ok(std::mem::take(&mut self.values)))
                }
            }
            Err(e) => Flow::Finish(Err(e)),
        }
    }

    type Done = D;

    unsafe fn take_done(this: *mut Self) -> D {
        // SAFETY: the caller's contract: `this` is live and nobody uses it after, so its
        // values are dropped once.
        unsafe {
            ptr::drop_in_place(&raw mut (*this).values);
            drop_op_take_done(&raw mut (*this).op, &raw const (*this).done)
        }
    }

    fn finish(done: D, out: Self::Out) {
        done.call(out)
    }
}

/// Runs `op(0)`, then `op(1)` once it succeeded, and so on; `done` gets all values in order,
/// or the first error (the rest never start): `async.series`, or a `for` loop of `await`s.
///
/// An operation may call its part before returning (synchronously) or from any thread; the
/// next operation then starts once `op` has returned, never inside it, so long chains of
/// synchronous operations need no stack and (for `n > 0`) no runtime.
///
/// # Panics
///
/// Outside a runtime when `n == 0` (the empty result is deferred).
pub fn series<T, E, Op, D>(n: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, Part<T, E>) + Send + 'static,
    D: Callback<Vec<T>, E>,
{
    if n == 0 {
        return super::resolve_later(Ok(Vec::new()), done);
    }
    let steps = SeriesSteps {
        op,
        done,
        values: Vec::with_capacity(n),
        n,
    };
    sequence::run(steps, Flow::Start(0, ()));
}

struct WaterfallSteps<Op, D> {
    op: Op,
    done: D,
    n: usize,
}

impl<T, E, Op, D> Steps<T, E> for WaterfallSteps<Op, D>
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, T, Part<T, E>) + Send + 'static,
    D: Callback<T, E>,
{
    type Input = T;
    type Out = Result<T, E>;

    fn start(&mut self, index: usize, input: T, part: Part<T, E>) {
        (self.op)(index, input, part)
    }

    fn next(&mut self, index: usize, result: Result<T, E>) -> Flow<T, Self::Out> {
        match result {
            Ok(v) if index + 1 < self.n => Flow::Start(index + 1, v),
            r => Flow::Finish(r),
        }
    }

    type Done = D;

    unsafe fn take_done(this: *mut Self) -> D {
        // SAFETY: the caller's contract: `this` is live and nobody uses it after.
        unsafe { drop_op_take_done(&raw mut (*this).op, &raw const (*this).done) }
    }

    fn finish(done: D, out: Self::Out) {
        done.call(out)
    }
}

/// Runs `n` dependent steps: step 0 gets `init`, step `i + 1` gets step `i`'s value;
/// `done` gets the last value, or the first error (later steps never run):
/// `async.waterfall`, a promise chain, callback hell flattened.
///
/// Operations may complete synchronously, as for [`series`].
///
/// # Panics
///
/// Outside a runtime when `n == 0` (`init` is then deferred to `done`).
///
/// # Examples
///
/// ```
/// use weft_runtime::callback::{resolve_later, waterfall};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     waterfall(
///         1u64,
///         4,
///         |_, v, part| resolve_later(Ok::<u64, ()>(v * 2), part),
///         move |r: Result<u64, ()>| tx.send(r).unwrap(),
///     );
/// });
/// assert_eq!(rx.recv().unwrap(), Ok(16));
/// ```
pub fn waterfall<T, E, Op, D>(init: T, n: usize, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(usize, T, Part<T, E>) + Send + 'static,
    D: Callback<T, E>,
{
    if n == 0 {
        return super::resolve_later(Ok(init), done);
    }
    sequence::run(WaterfallSteps { op, done, n }, Flow::Start(0, init));
}

// --- retry ---------------------------------------------------------------------------------

struct RetrySteps<Op, D> {
    op: Op,
    done: D,
    attempts: usize,
}

impl<T, E, Op, D> Steps<T, E> for RetrySteps<Op, D>
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(u32, Part<T, E>) + Send + 'static,
    D: Callback<T, E>,
{
    type Input = ();
    type Out = Result<T, E>;

    fn start(&mut self, attempt: usize, (): (), part: Part<T, E>) {
        // `attempt <= attempts`, which came from a `u32`.
        (self.op)(attempt as u32, part)
    }

    fn next(&mut self, attempt: usize, result: Result<T, E>) -> Flow<(), Self::Out> {
        match result {
            Err(_) if attempt < self.attempts => Flow::Start(attempt + 1, ()),
            r => Flow::Finish(r),
        }
    }

    type Done = D;

    unsafe fn take_done(this: *mut Self) -> D {
        // SAFETY: the caller's contract: `this` is live and nobody uses it after.
        unsafe { drop_op_take_done(&raw mut (*this).op, &raw const (*this).done) }
    }

    fn finish(done: D, out: Self::Out) {
        done.call(out)
    }
}

/// Calls `op(1, part)`; while an attempt fails and fewer than `attempts` have run, calls
/// `op` again with the next attempt number. `done` gets the first success or the last
/// error: `async.retry`, the article's `fetchWithRetry`. No delay between attempts.
///
/// Attempts may complete synchronously, as for [`series`].
///
/// # Panics
///
/// If `attempts` is 0.
pub fn retry<T, E, Op, D>(attempts: u32, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    Op: FnMut(u32, Part<T, E>) + Send + 'static,
    D: Callback<T, E>,
{
    assert!(attempts > 0, "retry: at least one attempt is needed");
    let steps = RetrySteps {
        op,
        done,
        attempts: attempts as usize,
    };
    sequence::run(steps, Flow::Start(1, ()));
}

// --- timeout -------------------------------------------------------------------------------

#[repr(C)]
struct Timeout<T, E, C, D> {
    /// What the part delivers through (see [`Sink`]).
    parts: PartsAt<T, E>,
    st: Mutex<TimeoutState<C, D>>,
    _te: std::marker::PhantomData<fn(T, E)>,
}

struct TimeoutState<C, D> {
    done: Option<D>,
    cancel: Option<C>,
    timer: Option<TimeoutHandle>,
    /// Whether the timer (rather than the operation) settled it.
    elapsed: bool,
}

// SAFETY: `Timeout` is `repr(C)` with `parts` first, and `timeout` sets it to the vtable.
unsafe impl<T, E, C, D> Sink<T, E> for Timeout<T, E, C, D>
where
    T: Send + 'static,
    E: Send + 'static,
    C: Cancel,
    D: Callback<Result<T, E>, Elapsed>,
{
    fn settle(self: Arc<Self>, _: usize, result: Result<T, E>) {
        let (done, timer, cancel) = {
            let mut st = self.st.lock();
            let Some(done) = st.done.take() else { return };
            (done, st.timer.take(), st.cancel.take())
        };
        // The operation is over: its handle is dropped, not cancelled.
        drop(cancel);
        if let Some(t) = timer {
            t.cancel();
        }
        done.call(Ok(result));
    }
}

impl<T, E, C, D> Timeout<T, E, C, D>
where
    C: Cancel,
    D: Callback<Result<T, E>, Elapsed>,
{
    fn elapse(&self) {
        let (done, cancel, timer) = {
            let mut st = self.st.lock();
            let Some(done) = st.done.take() else { return };
            st.elapsed = true;
            (done, st.cancel.take(), st.timer.take())
        };
        drop(timer);
        cancel.cancel();
        done.call(Err(Elapsed::new()));
    }
}

/// Runs `op` with a deadline: `done` gets `Ok(outcome)` if the operation settles within
/// `limit` (the timer is then cancelled), or `Err(Elapsed)` if the time runs out first (the
/// operation is then cancelled through the [`Cancel`] handle `op` returned, and its
/// eventual outcome ignored): `async.timeout`, the article's `Promise.race` with a timer.
///
/// The timer is armed before `op` is called, so with a deadline that passes at once the
/// operation may be cancelled as soon as it has started.
///
/// # Panics
///
/// Outside a runtime (before `op` is called).
pub fn timeout<T, E, C, Op, D>(limit: Duration, op: Op, done: D)
where
    T: Send + 'static,
    E: Send + 'static,
    C: Cancel,
    Op: FnOnce(Part<T, E>) -> C,
    D: Callback<Result<T, E>, Elapsed>,
{
    let sink = Arc::new(Timeout {
        parts: PartsAt::new(&<Timeout<T, E, C, D> as ArcVTable<T, E>>::VTABLE),
        st: Mutex::new(TimeoutState {
            done: Some(done),
            cancel: None,
            timer: None,
            elapsed: false,
        }),
        _te: std::marker::PhantomData,
    });
    let s = sink.clone();
    let timer = set_timeout(limit, move || s.elapse());
    let c = op(part(&sink, 0));
    let mut st = sink.st.lock();
    if st.done.is_some() {
        st.cancel = Some(c);
        st.timer = Some(timer);
    } else {
        // Settled while we were arming: by the operation (then there is nothing to stop but
        // the timer), or by the timer (then stop the operation).
        let elapsed = st.elapsed;
        drop(st);
        if elapsed {
            c.cancel();
        } else {
            drop(c);
            timer.cancel();
        }
    }
}
