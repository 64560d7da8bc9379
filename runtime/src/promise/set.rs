//! `Promise.all`, `allSettled`, `race` and `any` over a [`FutureSet`]: an array or a `Vec`.
//!
//! # Poll strategy
//!
//! Every child lives in a slot, `MaybeDone::{Pending(F), Done(output), Taken}`, inside the
//! combinator (inline for an array, one boxed slice for a `Vec`). Each poll of the
//! combinator polls every still-pending child once, in input order, with the combinator's
//! own waker, and stores the outputs of the children that complete. A wake-up from any
//! child therefore costs one poll of each pending child: O(n) per wake-up, O(n²) for a set
//! whose children complete one per wake-up. In exchange there is no per-child waker, no
//! `Arc`, no ready queue and no allocation beyond the slots — the right trade for the sets
//! the patterns use (up to about a hundred futures). For thousands of children, spawn them
//! and combine the [`JoinHandle`](crate::JoinHandle)s, or use a per-child-waker design.
//!
//! # Dropping
//!
//! Whenever a combinator's outcome is decided early — the first `Err` of [`all`], the first
//! completion of [`race`], the first `Ok` of [`any`] — every other child (pending or
//! completed) is dropped *in the same poll, before the output is returned*. Dropping the
//! combinator drops all children too.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A set of futures that [`all`], [`all_settled`], [`race`] and [`any`] accept: `[F; N]`
/// or `Vec<F>`.
///
/// This trait is sealed: it is implemented for exactly those two shapes and cannot be
/// implemented outside weft.
///
/// - **`[F; N]`** keeps the whole state inline in the returned future — no allocation — and
///   gives an array back (`[T; N]`).
/// - **`Vec<F>`** moves the futures into one boxed slice of slots (one allocation) and gives
///   a `Vec` back. Any iterator of futures becomes one with `.collect::<Vec<_>>()`.
///
/// (A blanket implementation for every `IntoIterator` is not possible next to the array
/// one: the two would overlap.)
///
/// Results always come back in **input order**, whatever order the futures completed in.
///
/// Every future in a set has the same type. Two `async` blocks (or two closures) never do;
/// build them with one function returning `impl Future`, or box them into
/// `Pin<Box<dyn Future<Output = T> + Send>>` (one allocation each) when they differ.
pub trait FutureSet: sealed::Sealed {
    /// The type of each future in the set.
    type Future: Future;

    /// The same shape holding one `T` per future: `[T; N]` for an array, `Vec<T>` for a
    /// `Vec`.
    type Collection<T>;

    #[doc(hidden)]
    type Slots: AsMut<[MaybeDone<Self::Future>]> + AsRef<[MaybeDone<Self::Future>]>;

    #[doc(hidden)]
    fn into_slots(self) -> Self::Slots;

    /// Builds the collection from the slots, in order. `slots` has the set's length.
    #[doc(hidden)]
    fn collect<T>(
        slots: &mut [MaybeDone<Self::Future>],
        f: impl FnMut(&mut MaybeDone<Self::Future>) -> T,
    ) -> Self::Collection<T>;
}

mod sealed {
    pub trait Sealed {}
    impl<F, const N: usize> Sealed for [F; N] {}
    impl<F> Sealed for Vec<F> {}
}

impl<F: Future, const N: usize> FutureSet for [F; N] {
    type Future = F;
    type Collection<T> = [T; N];
    type Slots = [MaybeDone<F>; N];

    #[inline]
    fn into_slots(self) -> Self::Slots {
        let futures = std::mem::ManuallyDrop::new(self);
        // SAFETY: each index is read once, and `futures` is never dropped, so each future is
        // owned by its slot alone.
        array_of(|i| MaybeDone::Pending(unsafe { std::ptr::read(&futures[i]) }))
    }

    #[inline]
    fn collect<T>(slots: &mut [MaybeDone<F>], mut f: impl FnMut(&mut MaybeDone<F>) -> T) -> [T; N] {
        assert_eq!(slots.len(), N, "a set's slots are as many as its futures");
        array_of(|i| f(&mut slots[i]))
    }
}

/// `[f(0), f(1), .., f(N - 1)]`, built by a plain loop into `MaybeUninit` slots, for an
/// array set's slots and outputs. `std::array::from_fn` and `array::map` go through the
/// standard library's fallible-array machinery, whose closure wrapper the compiler stopped
/// inlining here after unrelated changes elsewhere in the crate (`par/ready` `async fn`:
/// 736 → 825 instructions per op, 69 of them that wrapper and 44 `try_map`). If `f`
/// unwinds, the elements built so far are leaked, never read or dropped twice.
#[inline]
fn array_of<T, const N: usize>(mut f: impl FnMut(usize) -> T) -> [T; N] {
    let mut out = [const { std::mem::MaybeUninit::<T>::uninit() }; N];
    for (i, o) in out.iter_mut().enumerate() {
        o.write(f(i));
    }
    // SAFETY: the loop wrote all `N` elements; `[MaybeUninit<T>; N]` and `[T; N]` have the
    // same layout, and the `ManuallyDrop` keeps the originals from being dropped.
    unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(out)) }
}

impl<F: Future> FutureSet for Vec<F> {
    type Future = F;
    type Collection<T> = Vec<T>;
    type Slots = Box<[MaybeDone<F>]>;

    fn into_slots(self) -> Self::Slots {
        self.into_iter().map(MaybeDone::Pending).collect()
    }

    fn collect<T>(slots: &mut [MaybeDone<F>], f: impl FnMut(&mut MaybeDone<F>) -> T) -> Vec<T> {
        slots.iter_mut().map(f).collect()
    }
}

/// One child of a set combinator: still running, finished with its output kept, or emptied.
///
/// Public only because [`FutureSet`] names it; it cannot be named outside weft.
#[derive(Debug)]
pub enum MaybeDone<F: Future> {
    /// Still running.
    Pending(F),
    /// Finished; the output waits to be collected.
    Done(F::Output),
    /// The output was collected, or the child was dropped early.
    Taken,
}

impl<F: Future> MaybeDone<F> {
    /// Polls a pending child once and stores its output when it completes. Returns whether
    /// the slot holds no running future afterwards.
    ///
    /// # Safety
    ///
    /// `self` must be pinned: it must not move again until it is dropped or assigned to
    /// (assignment drops the old value in place).
    unsafe fn poll_pending(&mut self, cx: &mut Context<'_>) -> bool {
        let MaybeDone::Pending(fut) = self else {
            return true;
        };
        // SAFETY: the caller guarantees the slot, and so the future in it, is pinned.
        let fut = unsafe { Pin::new_unchecked(fut) };
        match fut.poll(cx) {
            Poll::Ready(out) => {
                // Assigning drops the finished future in place, as `Pin::set` does.
                *self = MaybeDone::Done(out);
                true
            }
            Poll::Pending => false,
        }
    }

    /// Moves a stored output out, leaving `Taken`; `None` (and no change) if the slot holds
    /// no output. A running future is never moved.
    fn take_output(&mut self) -> Option<F::Output> {
        if !matches!(self, MaybeDone::Done(_)) {
            return None;
        }
        // Outputs are never pinned: moving one out is fine.
        match std::mem::replace(self, MaybeDone::Taken) {
            MaybeDone::Done(out) => Some(out),
            _ => unreachable!(),
        }
    }
}

/// Drops every child in place.
fn clear<F: Future>(slots: &mut [MaybeDone<F>]) {
    for slot in slots {
        // Assigning drops the old value in place, as `Pin::set` does: a pinned future is
        // dropped, never moved.
        *slot = MaybeDone::Taken;
    }
}

fn debug_set<F: Future>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    slots: &[MaybeDone<F>],
) -> fmt::Result {
    let pending = slots
        .iter()
        .filter(|s| matches!(s, MaybeDone::Pending(_)))
        .count();
    f.debug_struct(name)
        .field("len", &slots.len())
        .field("pending", &pending)
        .finish_non_exhaustive()
}

macro_rules! set_future {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[must_use = "futures do nothing unless awaited"]
        pub struct $name<S: FutureSet> {
            slots: S::Slots,
            done: bool,
        }

        impl<S: FutureSet> $name<S> {
            fn new(set: S) -> Self {
                $name { slots: set.into_slots(), done: false }
            }

            /// The slots, pinned in place, and the completion flag.
            fn project(self: Pin<&mut Self>) -> (&mut [MaybeDone<S::Future>], &mut bool) {
                // Pinning: the children in the slots are structurally pinned: they are
                // reached only through this projection, polled only through
                // `MaybeDone::poll_pending`, and leave their slot only by being dropped in
                // place (assignment); the combinator has no `Drop` impl. The only `Slots`
                // types are `[MaybeDone<F>; N]` (inline, so pinned with the combinator) and
                // `Box<[MaybeDone<F>]>` (on the heap, which does not move while the box
                // lives), and `as_mut` of either returns that storage in place.
                // SAFETY: no child reached through `this` is moved while pinned (above).
                let this = unsafe { self.get_unchecked_mut() };
                (this.slots.as_mut(), &mut this.done)
            }
        }

        impl<S: FutureSet> fmt::Debug for $name<S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                debug_set(f, stringify!($name), self.slots.as_ref())
            }
        }
    };
}

set_future! {
    /// The future of [`all`].
    All
}
set_future! {
    /// The future of [`all_settled`].
    AllSettled
}
set_future! {
    /// The future of [`race`].
    Race
}
set_future! {
    /// The future of [`any`].
    Any
}

/// Runs every future concurrently and yields all their `Ok` values in input order, or the
/// first `Err` — at which point every other future is dropped: `Promise.all`.
///
/// *First* means first observed: children are polled in input order on each wake-up, so of
/// two that fail in the same round the earlier in the set wins. An empty set yields `Ok` at
/// once.
///
/// The futures run in the calling task — concurrency, not parallelism. For parallelism,
/// [`spawn`](crate::spawn) them first and pass the [`JoinHandle`](crate::JoinHandle)s
/// (whose error is [`JoinError`](crate::JoinError)); note that dropping a `JoinHandle`
/// detaches its task rather than stopping it.
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::{all, reject, resolve};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     // An array: no allocation, an array back.
///     let ok = all([resolve::<u32, &str>(1), resolve(2), resolve(3)]).await;
///     assert_eq!(ok, Ok([1, 2, 3]));
///
///     // Any iterator, through a Vec.
///     let squares = (1..=4u64).map(|i| async move { Ok::<_, ()>(i * i) });
///     assert_eq!(all(squares.collect::<Vec<_>>()).await, Ok(vec![1, 4, 9, 16]));
///
///     let failed = all([resolve(1), reject("second failed"), resolve(3)]).await;
///     assert_eq!(failed, Err("second failed"));
///
///     // Parallelism: spawn first, then wait for the handles.
///     let handles = [weft_runtime::spawn(async { 1 }), weft_runtime::spawn(async { 2 })];
///     assert_eq!(all(handles).await.unwrap(), [1, 2]);
/// });
/// ```
pub fn all<S, T, E>(set: S) -> All<S>
where
    S: FutureSet,
    S::Future: Future<Output = Result<T, E>>,
{
    All::new(set)
}

impl<S, T, E> Future for All<S>
where
    S: FutureSet,
    S::Future: Future<Output = Result<T, E>>,
{
    type Output = Result<S::Collection<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (slots, done) = self.project();
        assert!(!*done, "`all` polled after completion");
        let mut finished = true;
        for i in 0..slots.len() {
            // SAFETY: the slots are pinned in place (`project`).
            finished &= unsafe { slots[i].poll_pending(cx) };
            if let MaybeDone::Done(Err(_)) = &slots[i] {
                let Some(Err(e)) = slots[i].take_output() else {
                    unreachable!()
                };
                clear(slots);
                *done = true;
                return Poll::Ready(Err(e));
            }
        }
        if !finished {
            return Poll::Pending;
        }
        *done = true;
        let out = S::collect(slots, |slot| match slot.take_output() {
            Some(Ok(t)) => t,
            _ => unreachable!("every child of `all` finished with `Ok`"),
        });
        Poll::Ready(Ok(out))
    }
}

/// Runs every future concurrently and yields every output, in input order, once all have
/// completed: `Promise.allSettled`. Nothing is dropped early.
///
/// Works for any output type; for futures of `Result<T, E>` the output is one
/// `Result<T, E>` per future. An empty set yields at once.
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::{all_settled, reject, resolve};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let out = rt.block_on(all_settled([resolve(1), reject("no"), resolve(3)]));
/// assert_eq!(out, [Ok(1), Err("no"), Ok(3)]);
/// ```
pub fn all_settled<S: FutureSet>(set: S) -> AllSettled<S> {
    AllSettled::new(set)
}

impl<S: FutureSet> Future for AllSettled<S> {
    type Output = S::Collection<<S::Future as Future>::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (slots, done) = self.project();
        assert!(!*done, "`all_settled` polled after completion");
        let mut finished = true;
        for slot in slots.iter_mut() {
            // SAFETY: the slots are pinned in place (`project`).
            finished &= unsafe { slot.poll_pending(cx) };
        }
        if !finished {
            return Poll::Pending;
        }
        *done = true;
        let out = S::collect(slots, |slot| {
            slot.take_output()
                .expect("every child of `all_settled` finished")
        });
        Poll::Ready(out)
    }
}

/// Runs every future concurrently and yields the output of the first to complete —
/// success or failure alike — dropping all the others at once: `Promise.race`.
///
/// *First* means first observed: children are polled in input order on each wake-up, so of
/// two that are ready in the same round the earlier in the set wins.
///
/// # Panics
///
/// When first polled with an empty set. (`Promise.race([])` never settles; a future that
/// can never complete is almost always a bug, so weft says so loudly instead.)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_runtime::promise::{delay, race};
///
/// // One function, so both futures have one type.
/// async fn after(ms: u64, name: &str) -> &str {
///     delay(Duration::from_millis(ms)).await;
///     name
/// }
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let winner = rt.block_on(race([after(60_000, "slow"), after(1, "fast")]));
/// assert_eq!(winner, "fast");
/// ```
pub fn race<S: FutureSet>(set: S) -> Race<S> {
    Race::new(set)
}

impl<S: FutureSet> Future for Race<S> {
    type Output = <S::Future as Future>::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (slots, done) = self.project();
        assert!(!*done, "`race` polled after completion");
        assert!(
            !slots.is_empty(),
            "`race` of an empty set of futures would never complete"
        );
        for i in 0..slots.len() {
            // SAFETY: the slots are pinned in place (`project`).
            unsafe { slots[i].poll_pending(cx) };
            if let Some(out) = slots[i].take_output() {
                clear(slots);
                *done = true;
                return Poll::Ready(out);
            }
        }
        Poll::Pending
    }
}

/// Runs every future concurrently and yields the first `Ok`, dropping all the others at
/// once; if every future fails, yields an [`AggregateError`] holding every error in input
/// order: `Promise.any`.
///
/// *First* means first observed, as for [`race`]. An empty set fails at once with an
/// `AggregateError` of no errors, as `Promise.any([])` rejects. The error list is the one
/// allocation an array set makes, and only when everything failed.
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::{any, reject, resolve};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let first_ok = any([reject("down"), resolve::<_, &str>("mirror 2"), resolve("mirror 3")]);
///     assert_eq!(first_ok.await, Ok("mirror 2"));
///
///     let none = any([reject::<(), _>("a"), reject("b")]).await.unwrap_err();
///     assert_eq!(none.errors(), ["a", "b"]);
///     assert_eq!(none.to_string(), "all 2 futures failed");
/// });
/// ```
pub fn any<S, T, E>(set: S) -> Any<S>
where
    S: FutureSet,
    S::Future: Future<Output = Result<T, E>>,
{
    Any::new(set)
}

impl<S, T, E> Future for Any<S>
where
    S: FutureSet,
    S::Future: Future<Output = Result<T, E>>,
{
    type Output = Result<T, AggregateError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (slots, done) = self.project();
        assert!(!*done, "`any` polled after completion");
        let mut finished = true;
        for i in 0..slots.len() {
            // SAFETY: the slots are pinned in place (`project`).
            finished &= unsafe { slots[i].poll_pending(cx) };
            if let MaybeDone::Done(Ok(_)) = &slots[i] {
                let Some(Ok(t)) = slots[i].take_output() else {
                    unreachable!()
                };
                clear(slots);
                *done = true;
                return Poll::Ready(Ok(t));
            }
        }
        if !finished {
            return Poll::Pending;
        }
        *done = true;
        let errors = slots
            .iter_mut()
            .map(|slot| match slot.take_output() {
                Some(Err(e)) => e,
                _ => unreachable!("every child of `any` finished with `Err`"),
            })
            .collect();
        Poll::Ready(Err(AggregateError { errors }))
    }
}

/// The error of [`any`] when every future failed: all their errors, in input order
/// (JavaScript's `AggregateError`).
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::AggregateError;
///
/// let e = AggregateError::new(vec!["dns", "timeout"]);
/// assert_eq!(e.to_string(), "all 2 futures failed");
/// assert_eq!(e.errors(), ["dns", "timeout"]);
/// assert_eq!(e.into_errors(), vec!["dns", "timeout"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateError<E> {
    errors: Vec<E>,
}

impl<E> AggregateError<E> {
    /// An aggregate of `errors`, in the order given.
    pub fn new(errors: Vec<E>) -> Self {
        AggregateError { errors }
    }

    /// The errors, one per future, in input order.
    pub fn errors(&self) -> &[E] {
        &self.errors
    }

    /// The errors, one per future, in input order.
    pub fn into_errors(self) -> Vec<E> {
        self.errors
    }
}

impl<E> fmt::Display for AggregateError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all {} futures failed", self.errors.len())
    }
}

/// No [`source`](std::error::Error::source): there are several causes, not one; read them
/// with [`errors`](AggregateError::errors).
impl<E: std::error::Error + 'static> std::error::Error for AggregateError<E> {}
