//! Bridges between callbacks and futures: [`promisify`] (a callback API as a future) and
//! [`callbackify`] (a future delivered to a callback).
//!
//! The shared slot of [`promisify`] is an `Arc<Mutex<Slot>>` — one allocation per
//! operation, safe code only. Whoever fills the slot takes the waker out under the lock and
//! wakes it after releasing it, so the woken task never contends with the waker for the
//! lock.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::JoinHandle;
use crate::callback::Callback;

/// What the [`Resolver`] and the [`Promisified`] future share.
enum Slot<T, E> {
    /// Nothing delivered, nobody waiting.
    Empty,
    /// Nothing delivered; this waker is waiting.
    Waiting(Waker),
    /// The result, not yet taken.
    Done(Result<T, E>),
    /// The resolver was dropped without being called.
    Dropped,
    /// The future took the result.
    Taken,
}

type Shared<T, E> = Arc<Mutex<Slot<T, E>>>;

/// Stores `new` in the slot and wakes the waiting task, if any, outside the lock.
fn store<T, E>(shared: &Shared<T, E>, new: Slot<T, E>) {
    let old = mem::replace(&mut *shared.lock(), new);
    if let Slot::Waiting(waker) = old {
        waker.wake();
    }
}

/// Turns a callback-style operation into a future: `new Promise((resolve, reject) => …)`
/// and Node's `util.promisify`.
///
/// `start` is called **at once**, here — as JavaScript runs a promise's executor — with a
/// [`Resolver`], which it passes on as the operation's callback (it implements
/// [`Callback`], so it fits every API that takes `impl Callback<T, E>`). The returned
/// future yields the `Result` the resolver is called with, from whichever thread calls it.
/// If the resolver is called before the future is first polled, the result waits in the
/// future. Dropping the future before then is harmless: the result is dropped when it
/// arrives.
///
/// # Panics
///
/// The returned future panics when polled if the resolver was dropped without being called.
/// That is a bug in the callback API that was wrapped — the JavaScript equivalent is a
/// promise that never settles, which hangs quietly; weft reports it instead. Inside a task
/// the panic is caught and the task's [`JoinHandle`] reports it as
/// [`JoinError::is_panic`](crate::JoinError::is_panic).
///
/// # Examples
///
/// ```
/// use weft_runtime::callback::Callback;
/// use weft_runtime::promise::promisify;
///
/// // A callback API, running its work on another thread.
/// fn parse_later(s: String, cb: impl Callback<u32, std::num::ParseIntError>) {
///     std::thread::spawn(move || cb.call(s.parse()));
/// }
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     assert_eq!(promisify(|done| parse_later("42".into(), done)).await, Ok(42));
///     assert!(promisify(|done| parse_later("x".into(), done)).await.is_err());
///
///     // The executor style, with explicit resolve/reject.
///     let v = promisify::<_, (), _>(|r| r.resolve("now")).await;
///     assert_eq!(v, Ok("now"));
/// });
/// ```
pub fn promisify<T, E, S>(start: S) -> Promisified<T, E>
where
    S: FnOnce(Resolver<T, E>),
{
    let shared = Arc::new(Mutex::new(Slot::Empty));
    start(Resolver {
        shared: Some(shared.clone()),
    });
    Promisified { shared }
}

/// The callback half of [`promisify`]: call it once with the operation's result.
///
/// It implements [`Callback<T, E>`] when `T` and `E` are `Send + 'static`, and is `Send`
/// when they are, so it can be handed to another thread. Dropping it without calling it
/// makes the [`Promisified`] future panic.
pub struct Resolver<T, E> {
    /// `None` once the result was sent.
    shared: Option<Shared<T, E>>,
}

impl<T, E> Resolver<T, E> {
    /// Settles the future with `result`.
    pub fn settle(mut self, result: Result<T, E>) {
        if let Some(shared) = self.shared.take() {
            store(&shared, Slot::Done(result));
        }
    }

    /// Settles the future with `Ok(value)`: JavaScript's `resolve(value)`.
    pub fn resolve(self, value: T) {
        self.settle(Ok(value))
    }

    /// Settles the future with `Err(error)`: JavaScript's `reject(error)`.
    pub fn reject(self, error: E) {
        self.settle(Err(error))
    }
}

impl<T: Send + 'static, E: Send + 'static> Callback<T, E> for Resolver<T, E> {
    fn call(self, result: Result<T, E>) {
        self.settle(result)
    }
}

impl<T, E> Drop for Resolver<T, E> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            store(&shared, Slot::Dropped);
        }
    }
}

impl<T, E> fmt::Debug for Resolver<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("settled", &self.shared.is_none())
            .finish()
    }
}

/// The future of [`promisify`]: the result the [`Resolver`] was called with.
#[must_use = "futures do nothing unless awaited"]
pub struct Promisified<T, E> {
    shared: Shared<T, E>,
}

impl<T, E> Future for Promisified<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        let mut slot = self.shared.lock();
        match mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(result) => Poll::Ready(result),
            Slot::Empty => {
                *slot = Slot::Waiting(cx.waker().clone());
                Poll::Pending
            }
            Slot::Waiting(mut waker) => {
                waker.clone_from(cx.waker());
                *slot = Slot::Waiting(waker);
                Poll::Pending
            }
            Slot::Dropped => {
                drop(slot);
                panic!(
                    "promisify: the callback was dropped without being called; \
                     the wrapped API lost it, so this future can never complete"
                )
            }
            Slot::Taken => {
                drop(slot);
                panic!("`Promisified` polled after completion")
            }
        }
    }
}

impl<T, E> fmt::Debug for Promisified<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.shared.lock() {
            Slot::Empty | Slot::Waiting(_) => "pending",
            Slot::Done(_) => "settled",
            Slot::Dropped => "dropped",
            Slot::Taken => "taken",
        };
        f.debug_struct("Promisified")
            .field("state", &state)
            .finish()
    }
}

/// Delivers a future's result to a callback: Node's `util.callbackify`, the reverse of
/// [`promisify`].
///
/// Spawns a task on the current runtime that awaits `future` and then calls `callback` with
/// its result, on a worker. The returned handle may be dropped (the task runs on) or used to
/// [`abort`](JoinHandle::abort) it — in which case the future is dropped and the callback
/// is not called.
///
/// # Panics
///
/// Outside a runtime, as [`spawn`](crate::spawn) does.
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::{callbackify, resolve};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     callbackify(resolve::<u32, String>(7), move |r: Result<u32, String>| {
///         tx.send(r).unwrap()
///     });
/// });
/// assert_eq!(rx.recv().unwrap(), Ok(7));
/// ```
#[track_caller]
pub fn callbackify<T, E, Fut, C>(future: Fut, callback: C) -> JoinHandle<()>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    C: Callback<T, E>,
{
    crate::spawn(async move {
        let result = future.await;
        callback.call(result);
    })
}
