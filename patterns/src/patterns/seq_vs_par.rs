//! `seq_vs_par`: sequential vs parallel execution (`loadSequentially`, `loadInParallel`).
//!
//! Two cases, `seq` and `par`: three independent calls (`x`, `x + 1`, `x + 2`) awaited one by
//! one, or all started together and awaited as one. With the `timer` kind the wall time of
//! an op shows it: `3 d` sequentially, `d` in parallel.
//!
//! ```js
//! async function loadSequentially() {
//!   const user = await fetchUser();
//!   const orders = await fetchOrders(user.id);
//!   const settings = await fetchSettings(user.id);
//!   return { user, orders, settings };
//! }
//! async function loadInParallel() {
//!   const [user, orders, settings] = await Promise.all([
//!     fetchUser(), fetchOrders(), fetchSettings()]);
//!   return { user, orders, settings };
//! }
//! ```
//!
//! The contract makes the three calls independent in both cases (the article's sequential
//! version passes `user.id` along, which is what makes it sequential; here the inputs are
//! `x + i`, so that both cases compute the same [`Loaded`] and differ only in timing).
//!
//! | style | `seq` | `par` |
//! |---|---|---|
//! | callback | `series` | `parallel` |
//! | combinator | a `then` chain | `all` |
//! | `async fn` | three `await`s | `await all([..])` |

use std::future::Future;

use weft::callback::{Callback, parallel, series};
use weft::promise::{PromiseExt, all};

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env};

/// What both versions load: `{ user, orders, settings }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Call 0: `svc(kind, x)`.
    pub user: u64,
    /// Call 1: `svc(kind, x + 1)`.
    pub orders: u64,
    /// Call 2: `svc(kind, x + 2)`.
    pub settings: u64,
}

impl Loaded {
    fn from_vec(v: Vec<u64>) -> Loaded {
        match v[..] {
            [user, orders, settings] => Loaded {
                user,
                orders,
                settings,
            },
            _ => unreachable!("three calls, three values"),
        }
    }
}

/// Callback, sequential: `async.series` — each call starts when the previous one
/// succeeded.
pub fn callback_seq(kind: Kind, x: u64, done: impl Callback<Loaded, SvcError>) {
    series(
        3,
        move |i, part| {
            svc_cb(kind, x + i as u64, part);
        },
        move |r: Result<Vec<u64>, SvcError>| done.call(r.map(Loaded::from_vec)),
    );
}

/// Callback, parallel: `async.parallel` — all three start at once.
pub fn callback_par(kind: Kind, x: u64, done: impl Callback<Loaded, SvcError>) {
    parallel(
        3,
        move |i, part| {
            svc_cb(kind, x + i as u64, part);
        },
        move |r: Result<Vec<u64>, SvcError>| done.call(r.map(Loaded::from_vec)),
    );
}

/// Combinator, sequential: `fetchUser().then(user => fetchOrders().then(orders => ..))`
/// (nested, so that each step still sees the earlier values).
pub fn combinator_seq(kind: Kind, x: u64) -> impl Future<Output = Result<Loaded, SvcError>> {
    svc(kind, x).then(move |user| {
        svc(kind, x + 1).then(move |orders| {
            svc(kind, x + 2).map_ok(move |settings| Loaded {
                user,
                orders,
                settings,
            })
        })
    })
}

/// Combinator, parallel: `Promise.all([fetchUser(), fetchOrders(), fetchSettings()])`.
pub fn combinator_par(kind: Kind, x: u64) -> impl Future<Output = Result<Loaded, SvcError>> {
    all([svc(kind, x), svc(kind, x + 1), svc(kind, x + 2)]).map_ok(|[user, orders, settings]| {
        Loaded {
            user,
            orders,
            settings,
        }
    })
}

/// `async fn`, sequential: the article's `loadSequentially`.
pub async fn load_sequentially<E: Env>(env: E, kind: Kind, x: u64) -> Result<Loaded, SvcError> {
    let user = env.svc(kind, x).await?;
    let orders = env.svc(kind, x + 1).await?;
    let settings = env.svc(kind, x + 2).await?;
    Ok(Loaded {
        user,
        orders,
        settings,
    })
}

/// `async fn`, parallel: the article's `loadInParallel`.
pub async fn load_in_parallel<E: Env>(env: E, kind: Kind, x: u64) -> Result<Loaded, SvcError> {
    let [user, orders, settings] =
        all([env.svc(kind, x), env.svc(kind, x + 1), env.svc(kind, x + 2)]).await?;
    Ok(Loaded {
        user,
        orders,
        settings,
    })
}

/// The `seq` case: three independent calls awaited one by one.
#[derive(Debug)]
pub struct Seq;

impl Case for Seq {
    const ID: &'static str = "seq";
    const TITLE: &'static str = "sequential execution (loadSequentially)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::TIMER];
    type Out = Result<Loaded, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback_seq(kind, x, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator_seq(kind, x)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        load_sequentially(env, kind, x)
    }
}

/// The `par` case: the same three calls awaited together.
#[derive(Debug)]
pub struct Par;

impl Case for Par {
    const ID: &'static str = "par";
    const TITLE: &'static str = "parallel execution (loadInParallel)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::TIMER];
    type Out = Result<Loaded, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback_par(kind, x, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator_par(kind, x)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        load_in_parallel(env, kind, x)
    }
}

super::entries!(Seq, Par);
