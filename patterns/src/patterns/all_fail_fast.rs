//! `all_fail_fast`: `Promise.all` rejecting.
//!
//! One op is N = 100 independent calls, call `i` with `x + i`, of which call 50 fails: the
//! op's outcome is `Err(SvcError(x + 50))`, delivered as soon as that call fails, not after
//! the other 99.
//!
//! ```js
//! Promise.all([fetchUser(), fetchPosts(), fetchSettings()])
//!   .then(([user, posts, settings]) => console.log(user, posts, settings))
//!   .catch((error) => console.error("One request failed:", error));
//! ```
//!
//! What happens to the other calls differs by style, as the contract allows:
//!
//! - **futures** (`combinator`, `async_fn`): `all` drops every other child in the poll that
//!   sees the failure, so calls still pending then never complete — with `timer`, their
//!   timers are removed from the wheel;
//! - **callbacks**: `parallel` ignores the outcomes that arrive after the failure. It has no
//!   way to cancel them (unlike `race` and `timeout`, its operations return no
//!   [`Cancel`](weft::callback::Cancel) handle), so with `timer` the remaining timers still
//!   fire and their callbacks are dropped — what JavaScript does too.

use std::future::Future;

use weft::callback::parallel;
use weft::promise::all;

use crate::service::{Kind, SvcError, call, call_cb};
use crate::{Case, Env};

/// Calls in one op.
pub const N: usize = 100;
/// The call that fails (counting from 0).
pub const FAILING: usize = 50;

/// Callback: `async.parallel` over the 100 calls.
pub fn callback(
    kind: Kind,
    x: u64,
    done: impl FnOnce(Result<Vec<u64>, SvcError>) + Send + 'static,
) {
    parallel(
        N,
        move |i, part| {
            call_cb(kind, x + i as u64, i == FAILING, part);
        },
        done,
    );
}

/// Combinator: `Promise.all(calls)`.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Result<Vec<u64>, SvcError>> {
    all((0..N)
        .map(|i| call(kind, x + i as u64, i == FAILING))
        .collect::<Vec<_>>())
}

/// `async fn`: `await Promise.all(calls)` (the `try/catch` is the caller's).
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Result<Vec<u64>, SvcError> {
    let calls = (0..N).map(|i| env.call(kind, x + i as u64, i == FAILING));
    all(calls.collect::<Vec<_>>()).await
}

/// The `all_fail_fast` case.
#[derive(Debug)]
pub struct AllFailFast;

impl Case for AllFailFast {
    const ID: &'static str = "all_fail_fast";
    const TITLE: &'static str = "Promise.all rejecting (N = 100, call 50 fails)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::TIMER];
    type Out = Result<Vec<u64>, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback(kind, x, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator(kind, x)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn(env, kind, x)
    }
}

super::entries!(AllFailFast);
