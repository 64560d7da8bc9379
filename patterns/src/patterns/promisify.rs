//! `promisify`: turning callbacks into promises (`readFileAsPromise`), and the reverse,
//! delivering a future to a callback (Node's `util.callbackify`).
//!
//! ```js
//! function readFileAsPromise(filePath) {
//!   return new Promise((resolve, reject) => {
//!     fs.readFile(filePath, "utf8", (err, data) => {
//!       if (err) { reject(err); return; }
//!       resolve(data);
//!     });
//!   });
//! }
//! readFileAsPromise("notes.txt")
//!   .then((content) => console.log(content))
//!   .catch((error) => console.error(error));
//!
//! util.callbackify(saveNotes)(notes, (err, saved) => { ... });   // the reverse
//! ```
//!
//! # One op
//!
//! Two bridged calls, one after the other:
//!
//! 1. **promisified**: the callback API, [`call_cb`]`(kind, x, ..)`, wrapped as a future with
//!    [`promisify`] ([`read_as_promise`], the article's `readFileAsPromise`);
//! 2. **callbackified**: the future API, [`call`]`(kind, x + 1, ..)`, delivered to a callback
//!    with [`callbackify`].
//!
//! The outcome is `Ok((first, second))`; if the first call fails, its error is the outcome
//! and the second call never starts (the `.catch` at the end of the article's chain).
//!
//! Every style makes both bridged calls. Each half ends in one of the two worlds, so each
//! style also needs one bridge *back* into its own world for the half that ends in the other
//! — and that is what the styles teach:
//!
//! | style | call 1 (callback API) | call 2 (future API) |
//! |---|---|---|
//! | callback | `callbackify(promisify(svc_cb))`: a round trip back to a callback | `callbackify(svc)`: lands in a callback |
//! | combinator, `async fn` | `promisify(svc_cb)`: lands in a future | `promisify(callbackify(svc))`: a round trip back to a future |
//!
//! So every style makes one plain bridge and one round trip, three bridge operations in all
//! (callback: one `promisify`, two `callbackify`; the future styles: two `promisify`, one
//! `callbackify`). A `callbackify` is a spawned task; a `promisify` one shared slot.
//!
//! # Deviations
//!
//! - **The callback style holds futures**: bridging is the pattern, so the callback style's
//!   path necessarily contains the futures it bridges. It still *consumes* them only as
//!   callbacks, through `callbackify`, and composes with callbacks only.
//! - **The `async fn` style on tokio**: [`svc_cb`](crate::svc_cb) and [`callbackify`]
//!   need a weft runtime, and [`Env`] has no callback face of the service. The `async fn`
//!   style therefore goes through [`call_cb_on`] and [`callbackify_on`]: on weft,
//!   `call_cb_on` is exactly [`call_cb`] (chosen by type, at compile time), and
//!   `callbackify_on` is [`Env::spawn`] of "await, then call back" — what `callbackify`
//!   does. On tokio the callback API is a spawned task that awaits the call and calls
//!   back, the way a tokio library offers one. (An `Env::call_cb` method would remove the
//!   type test.)
//! - **Lazy start in the combinator style**: [`promisify`] runs its executor at once, as a
//!   JavaScript promise does, but an op must not start before it is polled (it may be built
//!   outside the runtime), so the combinator style starts it from
//!   `resolve(()).then(..)` — `Promise.resolve().then(() => readFileAsPromise(..))`.

use std::any::TypeId;
use std::future::Future;

use weft::callback::Callback;
use weft::promise::{PromiseExt, Promisified, callbackify, promisify, resolve};

use crate::service::{Kind, SvcError, call, call_cb};
use crate::{Case, Env, Weft};

/// Which call of an op fails, for the error paths (the benchmark: [`Fail::Neither`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// Both calls succeed.
    Neither,
    /// Call 1, made through the callback API and [`promisify`], fails with `SvcError(x)`.
    Promisified,
    /// Call 2, made through the future API and [`callbackify`], fails with
    /// `SvcError(x + 1)`.
    Callbackified,
}

impl Fail {
    fn first(self) -> bool {
        self == Fail::Promisified
    }

    fn second(self) -> bool {
        self == Fail::Callbackified
    }
}

/// The article's `readFileAsPromise`: the callback API as a future. The call starts here,
/// at once, as a promise's executor runs at once.
///
/// # Panics
///
/// Outside a weft runtime (the callback API needs one).
pub fn read_as_promise(kind: Kind, x: u64, fail: bool) -> Promisified<u64, SvcError> {
    promisify(|resolver| {
        call_cb(kind, x, fail, resolver);
    })
}

/// Callback: call 1 made through `promisify` and consumed with `callbackify`; then call 2
/// made through the future API and delivered with `callbackify`.
pub fn callback(kind: Kind, x: u64, fail: Fail, done: impl Callback<(u64, u64), SvcError>) {
    let notes = read_as_promise(kind, x, fail.first());
    callbackify(notes, move |r: Result<u64, SvcError>| match r {
        Err(e) => done.call(Err(e)),
        Ok(notes) => {
            callbackify(
                call(kind, x + 1, fail.second()),
                move |r: Result<u64, SvcError>| done.call(r.map(|saved| (notes, saved))),
            );
        }
    });
}

/// Combinator: `Promise.resolve().then(() => readFileAsPromise(..)).then(notes => ..)`,
/// where call 2 is `callbackify`d into the resolver of a second `promisify`.
pub fn combinator(
    kind: Kind,
    x: u64,
    fail: Fail,
) -> impl Future<Output = Result<(u64, u64), SvcError>> {
    resolve(())
        .then(move |()| read_as_promise(kind, x, fail.first()))
        .then(move |notes| {
            promisify(move |resolver| {
                callbackify(call(kind, x + 1, fail.second()), resolver);
            })
            .map_ok(move |saved| (notes, saved))
        })
}

/// The service's callback face on any [`Env`]: [`call_cb`] on weft (the type test is
/// resolved at compile time); elsewhere — the tokio baseline — a spawned task that awaits
/// [`Env::call`] and then calls `cb`, through [`callbackify_on`].
pub fn call_cb_on<E: Env>(
    env: &E,
    kind: Kind,
    x: u64,
    fail: bool,
    cb: impl Callback<u64, SvcError>,
) {
    if TypeId::of::<E>() == TypeId::of::<Weft>() {
        call_cb(kind, x, fail, cb);
    } else {
        callbackify_on(env, env.call(kind, x, fail), cb);
    }
}

/// Node's `util.callbackify` on any [`Env`]: spawns a task that awaits `fut` and calls `cb`
/// with its result — what [`callbackify`] does on weft.
///
/// The task is detached, as when `callbackify`'s `JoinHandle` is dropped: both [`Env`]s
/// start a task inside [`Env::spawn`] itself, and dropping the future it returns does not
/// stop the task.
pub fn callbackify_on<E, T, Er, F>(env: &E, fut: F, cb: impl Callback<T, Er>)
where
    E: Env,
    T: Send + 'static,
    Er: Send + 'static,
    F: Future<Output = Result<T, Er>> + Send + 'static,
{
    let detached = env.spawn(async move { cb.call(fut.await) });
    drop(detached);
}

/// `async fn`: `await` the promisified callback API, then `await` the callbackified call
/// through a second `promisify`.
pub async fn async_fn<E: Env>(
    env: E,
    kind: Kind,
    x: u64,
    fail: Fail,
) -> Result<(u64, u64), SvcError> {
    let notes = promisify(|resolver| call_cb_on(&env, kind, x, fail.first(), resolver)).await?;
    let saved =
        promisify(|resolver| callbackify_on(&env, env.call(kind, x + 1, fail.second()), resolver))
            .await?;
    Ok((notes, saved))
}

/// The `promisify` case.
#[derive(Debug)]
pub struct Promisify;

impl Case for Promisify {
    const ID: &'static str = "promisify";
    const TITLE: &'static str = "turning callbacks into promises, and back";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::Net];
    type Out = Result<(u64, u64), SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback(kind, x, Fail::Neither, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator(kind, x, Fail::Neither)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn(env, kind, x, Fail::Neither)
    }
}

super::entries!(Promisify);
