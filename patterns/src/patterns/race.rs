//! `race`: `Promise.race` — the first call to settle wins, the losers are cancelled.
//!
//! ```js
//! Promise.race([fastRequest(), slowRequest()])
//!   .then((result) => console.log("First result:", result));
//! ```
//!
//! One op is three calls, call `i` with `x + i`, started at once; the op's outcome is the
//! first to settle, and the other two are cancelled — their futures dropped (with their
//! timers), their callbacks' timers cleared through the [`SvcHandle`](crate::SvcHandle) that
//! `weft::callback::race` holds for each — so they never complete.
//!
//! - **`timer`** (`d` = 1 ms): the delays are 3 d, 1 d and 2 d ([`DELAYS`]), so call 1 wins
//!   with `Ok(expected(x + 1))`.
//! - **`ready`**: call 0 is a `ready` call; calls 1 and 2 are timers of [`PENDING_MS`]
//!   that lose and are cancelled long before they could fire. Call 0 wins.
//!
//! # Deviation: the `ready` variant
//!
//! The contract's `ready` race makes all three calls `ready`, and call 0 wins. It does with
//! futures, always: `race` polls its children in input order within one task. It does not
//! always with callbacks on more than one worker: the three callbacks are queued in order,
//! but another worker may steal one and run it while the first is still on its way, so any
//! of the three can settle first (measured with every CPU kept busy: 6 ops in 40 000 on two
//! workers, 67 in 40 000 on three). Calls that all complete in the same scheduler pass
//! have no defined winner across threads. So the `ready` variant races one `ready` call
//! against two calls that are still pending: the winner is defined in every style and on
//! any number of workers, and — as in the `timer` variant — the losers are really
//! cancelled (two timers registered and cleared per op, in every style), where three
//! `ready` calls would leave nothing to cancel.
//!
//! # Timing
//!
//! The `timer` variant's margins are 1 d, and the styles observe the winner differently: a
//! future `race` takes the first child it finds ready *in input order*, a callback race
//! the first callback to run. A worker held off the CPU for about 2 d at the wrong moment
//! (while starting the calls, or between the first timer and the poll) lets another call
//! win — in a future `race`, call 0, which it finds ready first. With d = 1 ms on a
//! loaded two-core machine this happened in a few ops per thousand. The delays scale with
//! `d`, so a test that needs certainty uses a longer `timer(d)`.

use std::future::Future;

use weft::callback::race as race_cb;
use weft::promise::race;

use crate::service::{Kind, SvcError, call_cb, svc};
use crate::{Case, Env};

/// Calls in one op.
pub const N: usize = 3;
/// The delays of the three calls with `timer(d)`, in multiples of `d`: call 1 wins.
pub const DELAYS: [u32; N] = [3, 1, 2];
/// The delay of the two losers in the `ready` variant: long enough never to fire.
pub const PENDING_MS: u64 = 1000;
/// The call that wins, with either kind.
pub fn winner(kind: Kind) -> usize {
    match kind {
        Kind::Timer(_) => 1,
        _ => 0,
    }
}

/// The kind of call `i` in an op of kind `kind`: with `timer(d)`, `timer(DELAYS[i] * d)`;
/// otherwise `kind` for call 0 and `timer(PENDING_MS)` for the two losers.
pub fn kind_of(kind: Kind, i: usize) -> Kind {
    match kind {
        Kind::Timer(d) => Kind::Timer(d * DELAYS[i]),
        k if i == 0 => k,
        _ => Kind::timer_ms(PENDING_MS),
    }
}

/// Callback: `async.race`; each call's [`SvcHandle`](crate::SvcHandle) is its cancel handle.
pub fn callback(kind: Kind, x: u64, done: impl FnOnce(Result<u64, SvcError>) + Send + 'static) {
    race_cb(
        N,
        move |i, part| call_cb(kind_of(kind, i), x + i as u64, false, part),
        done,
    );
}

/// Combinator: `Promise.race([...])` over an array; the losers are dropped.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Result<u64, SvcError>> {
    race([
        svc(kind_of(kind, 0), x),
        svc(kind_of(kind, 1), x + 1),
        svc(kind_of(kind, 2), x + 2),
    ])
}

/// `async fn`: `const result = await Promise.race([...])`.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Result<u64, SvcError> {
    let result = race([
        env.svc(kind_of(kind, 0), x),
        env.svc(kind_of(kind, 1), x + 1),
        env.svc(kind_of(kind, 2), x + 2),
    ])
    .await?;
    Ok(result)
}

/// The `race` case.
#[derive(Debug)]
pub struct Race;

impl Case for Race {
    const ID: &'static str = "race";
    const TITLE: &'static str = "Promise.race (3 calls; timer: 3, 1, 2 ms)";
    const KINDS: &'static [Kind] = &[Kind::TIMER, Kind::Ready];
    type Out = Result<u64, SvcError>;

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

super::entries!(Race);
