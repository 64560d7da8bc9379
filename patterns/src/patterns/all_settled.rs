//! `all_settled`: `Promise.allSettled` — every outcome, in input order.
//!
//! One op is N = 100 independent calls, call `i` with `x + i`; calls 9, 19, ..., 99 fail
//! (with `SvcError(x + i)`). Nothing is cut short: the op ends when all 100 have settled,
//! and its outcome is the 100 results in input order.
//!
//! ```js
//! Promise.allSettled([task1(), task2(), task3()])
//!   .then((results) => console.log(results));
//! ```

use std::future::Future;

use weft::callback::parallel_settled;
use weft::promise::all_settled;

use crate::service::{Kind, SvcError, call, call_cb};
use crate::{Case, Env};

/// Calls in one op.
pub const N: usize = 100;

/// Whether call `i` fails: 9, 19, ..., 99.
pub fn fails(i: usize) -> bool {
    i % 10 == 9
}

/// Callback: `async.parallel` of reflected tasks.
pub fn callback(
    kind: Kind,
    x: u64,
    done: impl FnOnce(Vec<Result<u64, SvcError>>) + Send + 'static,
) {
    parallel_settled(
        N,
        move |i, part| {
            call_cb(kind, x + i as u64, fails(i), part);
        },
        done,
    );
}

/// Combinator: `Promise.allSettled(calls)`.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Vec<Result<u64, SvcError>>> {
    all_settled(
        (0..N)
            .map(|i| call(kind, x + i as u64, fails(i)))
            .collect::<Vec<_>>(),
    )
}

/// `async fn`: `const results = await Promise.allSettled(calls)`.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Vec<Result<u64, SvcError>> {
    let calls = (0..N).map(|i| env.call(kind, x + i as u64, fails(i)));
    all_settled(calls.collect::<Vec<_>>()).await
}

/// The `all_settled` case.
#[derive(Debug)]
pub struct AllSettled;

impl Case for AllSettled {
    const ID: &'static str = "all_settled";
    const TITLE: &'static str = "Promise.allSettled (N = 100, every tenth call fails)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::Net];
    type Out = Vec<Result<u64, SvcError>>;

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

super::entries!(AllSettled);
