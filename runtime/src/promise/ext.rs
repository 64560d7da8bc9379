//! [`PromiseExt`]: `.then`, `.catch`, `.finally` and friends as methods on every future.
//!
//! Each combinator is a plain struct that owns the future it wraps and the closure it will
//! call; nothing is boxed and nothing is spawned. Pin projection is written by hand: the
//! wrapped future is *structurally pinned* (it is only ever reached through
//! `Pin::new_unchecked` and never moved out), while the closure is not (it is moved out with
//! `Option::take` before it is called, and no `Pin<&mut F>` is ever made). That is why each
//! type below is `Unpin` whenever the future it wraps is, whatever the closure.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::time::Timeout;

/// The message of every combinator here when it is polled again after it completed.
const POLLED_AFTER_COMPLETION: &str = "promise combinator polled after completion";

/// The Promise methods — `.then`, `.catch`, `.finally` — on every [`Future`].
///
/// Implemented for every future (and every `?Sized` one, though the methods need `Sized`);
/// bring it into scope with `use weft_runtime::promise::PromiseExt;`. Each method returns a
/// named, allocation-free future that works whether or not `Self` is `Unpin`, and does
/// nothing until it is awaited — unlike a JavaScript promise, which starts at once.
///
/// | JavaScript | weft |
/// |---|---|
/// | `p.then(x => q(x))` (returns a promise) | [`p.then(\|x\| q(x))`](PromiseExt::then) |
/// | `p.then(x => v)` (returns a value) | [`p.map_ok(\|x\| v)`](PromiseExt::map_ok) |
/// | `p.then(r => …)` over a plain value | [`p.map(\|r\| …)`](PromiseExt::map) |
/// | `p.catch(e => …)` | [`p.catch(\|e\| …)`](PromiseExt::catch) |
/// | `p.finally(() => …)` | [`p.finally(\|\| …)`](PromiseExt::finally) |
/// | `Promise.race([p, delay(ms).then(reject)])` | [`p.timeout(d)`](PromiseExt::timeout) |
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::{resolve, PromiseExt};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let v = rt.block_on(
///     resolve::<u32, String>(20)
///         .then(|x| resolve(x + 1))
///         .map_ok(|x| x * 2)
///         .catch(|e| Err(format!("wrapped: {e}"))),
/// );
/// assert_eq!(v, Ok(42));
/// ```
pub trait PromiseExt: Future {
    /// On `Ok(t)`, runs the future `f(t)` and yields its result; on `Err(e)`, yields
    /// `Err(e)` without calling `f`: JavaScript's `.then` with a callback that returns a
    /// promise, and `Result::and_then` for futures.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::promise::{reject, resolve, PromiseExt};
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let ok = resolve::<u32, &str>(1).then(|x| resolve(x + 1)).await;
    ///     assert_eq!(ok, Ok(2));
    ///
    ///     let err = reject::<u32, &str>("no").then(|x| resolve(x + 1)).await;
    ///     assert_eq!(err, Err("no"));
    /// });
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    fn then<T, E, U, F, Fut2>(self, f: F) -> Then<Self, F, Fut2>
    where
        Self: Sized + Future<Output = Result<T, E>>,
        F: FnOnce(T) -> Fut2,
        Fut2: Future<Output = Result<U, E>>,
    {
        Then {
            state: ThenState::First {
                fut: self,
                f: Some(f),
            },
        }
    }

    /// Maps the whole output with `f`, synchronously, in the poll that completes `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::promise::PromiseExt;
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// assert_eq!(rt.block_on(async { 20 }.map(|x| x + 22)), 42);
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    fn map<U, F>(self, f: F) -> Map<Self, F>
    where
        Self: Sized,
        F: FnOnce(Self::Output) -> U,
    {
        Map {
            fut: self,
            f: Some(f),
        }
    }

    /// Maps the `Ok` value with `f`; an `Err` passes through and `f` is not called:
    /// JavaScript's `.then(x => value)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::promise::{reject, resolve, PromiseExt};
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     assert_eq!(resolve::<u32, ()>(2).map_ok(|x| x * 10).await, Ok(20));
    ///     assert_eq!(reject::<u32, ()>(()).map_ok(|x| x * 10).await, Err(()));
    /// });
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    fn map_ok<T, E, U, F>(self, f: F) -> MapOk<Self, F>
    where
        Self: Sized + Future<Output = Result<T, E>>,
        F: FnOnce(T) -> U,
    {
        MapOk {
            fut: self,
            f: Some(f),
        }
    }

    /// On `Err(e)`, yields `f(e)` — which may recover (`Ok`) or rethrow (`Err`, possibly of
    /// another type); an `Ok` passes through and `f` is not called: JavaScript's `.catch`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::promise::{reject, resolve, PromiseExt};
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let recovered = reject::<u32, &str>("boom").catch(|_| Ok::<_, String>(0)).await;
    ///     assert_eq!(recovered, Ok(0));
    ///
    ///     let rethrown = reject::<u32, &str>("boom")
    ///         .catch(|e| Err::<u32, _>(format!("while loading: {e}")))
    ///         .await;
    ///     assert_eq!(rethrown.unwrap_err(), "while loading: boom");
    ///
    ///     let untouched = resolve::<u32, &str>(7).catch(|_| Ok::<_, ()>(0)).await;
    ///     assert_eq!(untouched, Ok(7));
    /// });
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    fn catch<T, E, E2, F>(self, f: F) -> Catch<Self, F>
    where
        Self: Sized + Future<Output = Result<T, E>>,
        F: FnOnce(E) -> Result<T, E2>,
    {
        Catch {
            fut: self,
            f: Some(f),
        }
    }

    /// Runs `f` exactly once when `self` completes — whatever its output — then yields that
    /// output unchanged: JavaScript's `.finally`.
    ///
    /// If the `Finally` is dropped before `self` completes (a lost [`race`](super::race), an
    /// elapsed [`timeout`](PromiseExt::timeout), an aborted task), `f` does **not** run:
    /// exactly like code after an `.await` in an `async fn` whose future is dropped. For
    /// clean-up that must happen on cancellation too, use a guard value with a `Drop` impl.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use weft_runtime::promise::{reject, PromiseExt};
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// let runs = AtomicU32::new(0);
    /// let out = rt.block_on(reject::<(), &str>("failed").finally(|| {
    ///     runs.fetch_add(1, Ordering::Relaxed);
    /// }));
    /// assert_eq!(out, Err("failed"));
    /// assert_eq!(runs.load(Ordering::Relaxed), 1);
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    fn finally<F>(self, f: F) -> Finally<Self, F>
    where
        Self: Sized,
        F: FnOnce(),
    {
        Finally {
            fut: self,
            f: Some(f),
        }
    }

    /// Runs `self` for at most `duration`: `Ok(output)`, or
    /// [`Err(Elapsed)`](crate::time::Elapsed) if the time ran out first, in which case
    /// `self` is dropped (cancelled) with the returned future. The same as
    /// [`crate::time::timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_runtime::promise::{delay, PromiseExt};
    ///
    /// let rt = weft_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     assert_eq!(async { 5 }.timeout(Duration::from_secs(5)).await, Ok(5));
    ///     let slow = delay(Duration::from_secs(60));
    ///     assert!(slow.timeout(Duration::from_millis(1)).await.is_err());
    /// });
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    fn timeout(self, duration: Duration) -> Timeout<Self>
    where
        Self: Sized,
    {
        crate::time::timeout(duration, self)
    }
}

impl<Fut: Future + ?Sized> PromiseExt for Fut {}

/// Projects a pinned combinator that holds one future `fut` and a closure slot `f` into a
/// pinned reference to the future and a plain reference to the slot.
macro_rules! project {
    ($self:ident) => {{
        // Pinning: `fut` is structurally pinned: it is reached only through this
        // projection, never moved out, and the combinator has no `Drop` impl that could move
        // it. `f` is not: it is only moved out by `Option::take`; no `Pin<&mut F>` is made.
        // SAFETY: nothing reached through `this` is moved while pinned (the note above).
        let this = unsafe { $self.get_unchecked_mut() };
        // SAFETY: `this.fut` lives inside the pinned combinator and is never moved (above).
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        (fut, &mut this.f)
    }};
}

/// The future of [`PromiseExt::map`].
#[must_use = "futures do nothing unless awaited"]
pub struct Map<Fut, F> {
    fut: Fut,
    f: Option<F>,
}

// The closure is not structurally pinned (see the module notes).
impl<Fut: Unpin, F> Unpin for Map<Fut, F> {}

impl<Fut, F, U> Future for Map<Fut, F>
where
    Fut: Future,
    F: FnOnce(Fut::Output) -> U,
{
    type Output = U;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<U> {
        let (fut, f) = project!(self);
        if f.is_none() {
            panic!("{POLLED_AFTER_COMPLETION}");
        }
        let out = std::task::ready!(fut.poll(cx));
        let f = f.take().expect(POLLED_AFTER_COMPLETION);
        Poll::Ready(f(out))
    }
}

/// The future of [`PromiseExt::map_ok`].
#[must_use = "futures do nothing unless awaited"]
pub struct MapOk<Fut, F> {
    fut: Fut,
    f: Option<F>,
}

// The closure is not structurally pinned (see the module notes).
impl<Fut: Unpin, F> Unpin for MapOk<Fut, F> {}

impl<Fut, F, T, E, U> Future for MapOk<Fut, F>
where
    Fut: Future<Output = Result<T, E>>,
    F: FnOnce(T) -> U,
{
    type Output = Result<U, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<U, E>> {
        let (fut, f) = project!(self);
        if f.is_none() {
            panic!("{POLLED_AFTER_COMPLETION}");
        }
        let out = std::task::ready!(fut.poll(cx));
        let f = f.take().expect(POLLED_AFTER_COMPLETION);
        Poll::Ready(out.map(f))
    }
}

/// The future of [`PromiseExt::catch`].
#[must_use = "futures do nothing unless awaited"]
pub struct Catch<Fut, F> {
    fut: Fut,
    f: Option<F>,
}

// The closure is not structurally pinned (see the module notes).
impl<Fut: Unpin, F> Unpin for Catch<Fut, F> {}

impl<Fut, F, T, E, E2> Future for Catch<Fut, F>
where
    Fut: Future<Output = Result<T, E>>,
    F: FnOnce(E) -> Result<T, E2>,
{
    type Output = Result<T, E2>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E2>> {
        let (fut, f) = project!(self);
        if f.is_none() {
            panic!("{POLLED_AFTER_COMPLETION}");
        }
        let out = std::task::ready!(fut.poll(cx));
        let f = f.take().expect(POLLED_AFTER_COMPLETION);
        Poll::Ready(out.or_else(f))
    }
}

/// The future of [`PromiseExt::finally`].
#[must_use = "futures do nothing unless awaited"]
pub struct Finally<Fut, F> {
    fut: Fut,
    f: Option<F>,
}

// The closure is not structurally pinned (see the module notes).
impl<Fut: Unpin, F> Unpin for Finally<Fut, F> {}

impl<Fut, F> Future for Finally<Fut, F>
where
    Fut: Future,
    F: FnOnce(),
{
    type Output = Fut::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let (fut, f) = project!(self);
        if f.is_none() {
            panic!("{POLLED_AFTER_COMPLETION}");
        }
        let out = std::task::ready!(fut.poll(cx));
        let f = f.take().expect(POLLED_AFTER_COMPLETION);
        f();
        Poll::Ready(out)
    }
}

/// The future of [`PromiseExt::then`].
#[must_use = "futures do nothing unless awaited"]
pub struct Then<Fut, F, Fut2> {
    state: ThenState<Fut, F, Fut2>,
}

enum ThenState<Fut, F, Fut2> {
    /// Running the first future; `f` is `Some` until it is called.
    First { fut: Fut, f: Option<F> },
    /// Running the future `f` returned.
    Second { fut: Fut2 },
    /// The output was returned.
    Done,
}

// Neither future is moved once pinned; the closure is not structurally pinned.
impl<Fut: Unpin, F, Fut2: Unpin> Unpin for Then<Fut, F, Fut2> {}

impl<Fut, F, Fut2, T, E, U> Future for Then<Fut, F, Fut2>
where
    Fut: Future<Output = Result<T, E>>,
    F: FnOnce(T) -> Fut2,
    Fut2: Future<Output = Result<U, E>>,
{
    type Output = Result<U, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<U, E>> {
        // Pinning: the futures in `First` and `Second` are structurally pinned: they are
        // reached only through the `Pin::new_unchecked` projections below and never moved
        // out; states change only by assigning to `*state`, which drops the old state (and
        // the future in it) in place, as `Pin::set` does. `Then` has no `Drop` impl. `f` is
        // not structurally pinned: it is only moved out by `Option::take`.
        // SAFETY: nothing reached through `state` is moved while pinned (the note above).
        let state = unsafe { &mut self.get_unchecked_mut().state };
        loop {
            match state {
                ThenState::First { fut, f } => {
                    // SAFETY: `fut` lives in the pinned `Then` and is never moved (above).
                    let fut = unsafe { Pin::new_unchecked(fut) };
                    let first = std::task::ready!(fut.poll(cx));
                    match first {
                        Ok(t) => {
                            let f = f.take().expect(POLLED_AFTER_COMPLETION);
                            let next = f(t);
                            *state = ThenState::Second { fut: next };
                        }
                        Err(e) => {
                            *state = ThenState::Done;
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                ThenState::Second { fut } => {
                    // SAFETY: `fut` lives in the pinned `Then` and is never moved (above).
                    let fut = unsafe { Pin::new_unchecked(fut) };
                    let out = std::task::ready!(fut.poll(cx));
                    *state = ThenState::Done;
                    return Poll::Ready(out);
                }
                ThenState::Done => panic!("{POLLED_AFTER_COMPLETION}"),
            }
        }
    }
}

impl<Fut: fmt::Debug, F, Fut2: fmt::Debug> fmt::Debug for Then<Fut, F, Fut2> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Then");
        match &self.state {
            ThenState::First { fut, .. } => d.field("first", fut),
            ThenState::Second { fut } => d.field("second", fut),
            ThenState::Done => d.field("done", &true),
        };
        d.finish_non_exhaustive()
    }
}

macro_rules! debug_single {
    ($($name:ident),*) => {$(
        impl<Fut: fmt::Debug, F> fmt::Debug for $name<Fut, F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("future", &self.fut)
                    .field("done", &self.f.is_none())
                    .finish_non_exhaustive()
            }
        }
    )*};
}

debug_single!(Map, MapOk, Catch, Finally);
