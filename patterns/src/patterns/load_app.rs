//! `load_app`: the article's complete example — `loadApp`, with `try`/`catch`/`finally`.
//!
//! ```js
//! async function loadApp() {
//!   try {
//!     console.log("Loading app...");
//!     const user = await fetchUser();
//!     const notifications = await fetchNotifications(user.id);
//!     console.log("User:", user);
//!     console.log("Notifications:", notifications);
//!   } catch (error) {
//!     console.error("App failed to load:", error);
//!   } finally {
//!     console.log("Loading complete");
//!   }
//! }
//! ```
//!
//! `fetchUser()` is `svc(kind, x)`; `fetchNotifications(user)` is `svc(kind, user)`, fed the
//! user's value — or, in the failing variant, `svc_fail(kind, user)`. The `console` calls
//! go to a [`Ui`], so that the example prints them and the case counts them.
//!
//! One op loads the app twice, one after the other: the success variant with `x`, then the
//! failing variant with `x + 1` (the second load is a second input, hence `x + 1`). Its
//! outcome, [`Runs`], holds each load's result and how many times each `Ui` step ran
//! during it — the cleanup (`complete`) exactly once in both, counted when the load's
//! result arrived, so also *before* it arrived.
//!
//! # `finally` in each style
//!
//! - **callback**: by hand. Both outcomes go through one closure, `finish`, which logs
//!   (the `catch`), runs the cleanup (the `finally`), then calls `done` — every path out
//!   of the callbacks calls it, and only once, since it is `FnOnce`.
//! - **combinator**: `.map_ok(log).catch(log).finally(cleanup)`, as the promise chain
//!   would be written.
//! - **`async fn`**: Rust has no `finally` keyword. The `try` block is an inner
//!   `async fn` whose `?`s stop at its boundary; the `catch` is a `match` on its result,
//!   and the `finally` is plain code after the `match`, which every outcome reaches. A
//!   drop guard (`struct Finally<F: FnOnce()>` running `F` in `Drop`) was the alternative:
//!   it would also run if the load were cancelled (its future dropped at an `.await`) or
//!   panicked. The article's `finally` has no cancellation to cover — a JavaScript
//!   promise cannot be cancelled — and `PromiseExt::finally` does not run on
//!   cancellation either, so the explicit code keeps all three styles alike and reads
//!   top to bottom. Reach for the guard when cleanup must survive cancellation.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use weft::callback::Callback;
use weft::promise::PromiseExt;

use crate::service::{Kind, SvcError, call, call_cb, svc, svc_cb};
use crate::{Case, Env};

/// What `loadApp` loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct App {
    /// `fetchUser()`: `svc(kind, x)`.
    pub user: u64,
    /// `fetchNotifications(user)`: `svc(kind, user)`.
    pub notifications: u64,
}

/// The `console` calls of `loadApp`.
pub trait Ui: Clone + Send + Sync + 'static {
    /// `console.log("Loading app...")`, first.
    fn loading(&self);
    /// `console.log("User:", ..); console.log("Notifications:", ..)`, on success.
    fn loaded(&self, app: &App);
    /// `console.error("App failed to load:", error)`, on failure.
    fn failed(&self, error: &SvcError);
    /// `console.log("Loading complete")`: the `finally`, once, whatever happened.
    fn complete(&self);
}

/// Callback: nested callbacks; the `catch` and the `finally` written by hand in `finish`.
pub fn callback<U: Ui>(kind: Kind, x: u64, fail: bool, ui: U, done: impl Callback<App, SvcError>) {
    ui.loading();
    // The one way out: every outcome is logged, cleaned up after, then handed on.
    let finish = move |result: Result<App, SvcError>| {
        match &result {
            Ok(app) => ui.loaded(app),
            Err(e) => ui.failed(e),
        }
        ui.complete();
        done.call(result);
    };
    svc_cb(kind, x, move |user: Result<u64, SvcError>| match user {
        Err(e) => finish(Err(e)),
        Ok(user) => {
            call_cb(kind, user, fail, move |n: Result<u64, SvcError>| {
                finish(n.map(|notifications| App {
                    user,
                    notifications,
                }))
            });
        }
    });
}

/// Combinator: `fetchUser().then(fetchNotifications).then(log).catch(log).finally(cleanup)`.
pub fn combinator<U: Ui>(
    kind: Kind,
    x: u64,
    fail: bool,
    ui: U,
) -> impl Future<Output = Result<App, SvcError>> {
    ui.loading();
    let (on_ok, on_err) = (ui.clone(), ui.clone());
    svc(kind, x)
        .then(move |user| {
            call(kind, user, fail).map_ok(move |notifications| App {
                user,
                notifications,
            })
        })
        .map_ok(move |app| {
            on_ok.loaded(&app);
            app
        })
        .catch(move |e| {
            on_err.failed(&e);
            Err(e)
        })
        .finally(move || ui.complete())
}

/// The `try` block of [`load_app`]: `fetchUser()`, then `fetchNotifications(user)`.
async fn fetch_app<E: Env>(env: &E, kind: Kind, x: u64, fail: bool) -> Result<App, SvcError> {
    let user = env.svc(kind, x).await?;
    let notifications = env.call(kind, user, fail).await?;
    Ok(App {
        user,
        notifications,
    })
}

/// `async fn`: the article's `loadApp`; the `finally` is the code after the `match`.
pub async fn load_app<E: Env, U: Ui>(
    env: E,
    kind: Kind,
    x: u64,
    fail: bool,
    ui: U,
) -> Result<App, SvcError> {
    ui.loading();
    let result = fetch_app(&env, kind, x, fail).await; // try { .. }
    match &result {
        Ok(app) => ui.loaded(app),
        Err(e) => ui.failed(e), // catch (error) { .. }
    }
    ui.complete(); // finally { .. }
    result
}

/// One load as the case sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// What the load returned.
    pub result: Result<App, SvcError>,
    /// Times `Ui::loaded` ran (the success log).
    pub loaded: u32,
    /// Times `Ui::failed` ran (the `catch`).
    pub failed: u32,
    /// Times `Ui::complete` ran (the `finally`), counted when the result arrived.
    pub complete: u32,
}

/// What one op produces: the success variant's load, then the failing variant's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runs {
    /// `loadApp` with `x`, both calls succeeding: `Ok(App)`, logged once, completed once.
    pub success: Run,
    /// `loadApp` with `x + 1`, `fetchNotifications` failing: `Err(SvcError(user))`, the
    /// error seen once, completed once.
    pub failure: Run,
}

/// The case's [`Ui`]: counts each step.
#[derive(Clone, Debug, Default)]
struct Counter(Arc<[AtomicU32; 3]>);

impl Counter {
    fn run(&self, result: Result<App, SvcError>) -> Run {
        Run {
            result,
            loaded: self.0[0].load(Relaxed),
            failed: self.0[1].load(Relaxed),
            complete: self.0[2].load(Relaxed),
        }
    }
}

impl Ui for Counter {
    fn loading(&self) {}

    fn loaded(&self, _: &App) {
        self.0[0].fetch_add(1, Relaxed);
    }

    fn failed(&self, _: &SvcError) {
        self.0[1].fetch_add(1, Relaxed);
    }

    fn complete(&self) {
        self.0[2].fetch_add(1, Relaxed);
    }
}

async fn load_twice<E: Env>(env: E, kind: Kind, x: u64) -> Runs {
    let (ok, failing) = (Counter::default(), Counter::default());
    let first = load_app(env.clone(), kind, x, false, ok.clone()).await;
    let second = load_app(env, kind, x + 1, true, failing.clone()).await;
    Runs {
        success: ok.run(first),
        failure: failing.run(second),
    }
}

/// The `load_app` case.
#[derive(Debug)]
pub struct LoadApp;

impl Case for LoadApp {
    const ID: &'static str = "load_app";
    const TITLE: &'static str = "the complete example (loadApp with finally)";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::TIMER, Kind::Net];
    type Out = Runs;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        let ok = Counter::default();
        callback(kind, x, false, ok.clone(), move |first| {
            let failing = Counter::default();
            callback(kind, x + 1, true, failing.clone(), move |second| {
                done(Runs {
                    success: ok.run(first),
                    failure: failing.run(second),
                })
            });
        });
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        let (ok, failing) = (Counter::default(), Counter::default());
        // One load, then the other, whatever the first gave: the first result is carried
        // as an infallible `Ok` so that `then` always runs the second.
        combinator(kind, x, false, ok.clone())
            .map(Ok::<_, Infallible>)
            .then(move |first| {
                combinator(kind, x + 1, true, failing.clone()).map(move |second| {
                    Ok(Runs {
                        success: ok.run(first),
                        failure: failing.run(second),
                    })
                })
            })
            .map(|runs| match runs {
                Ok(runs) => runs,
                Err(never) => match never {},
            })
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        load_twice(env, kind, x)
    }
}

super::entries!(LoadApp);
