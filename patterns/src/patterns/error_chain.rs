//! `error_chain`: error-first callbacks, `.catch`, `try/catch`, `.finally`.
//!
//! One op is a chain of four dependent calls whose third fails: step 1 calls `svc(x)`,
//! step 2 `svc(r1)`, step 3 `svc_fail(r2)` — so the error is `SvcError(r2)` — and step 4
//! never runs. The handler sees the error exactly once, and the cleanup runs exactly once.
//!
//! ```js
//! step1((err, r1) => { if (err) { handle(err); cleanup(); return; } step2(r1, ...) });
//! step1().then(step2).then(step3).then(step4)
//!   .catch((error) => console.error("Error:", error))
//!   .finally(() => console.log("Done"));
//! try { const r1 = await step1(); ... } catch (error) { console.error(error); }
//! finally { console.log("Done"); }
//! ```
//!
//! [`Outcome`] records the chain's result (the error passes through the handler, which
//! logs and rethrows, so the caller still sees which call failed) and counts the effects:
//! steps run, handler calls, cleanup runs. The callback and combinator styles share the
//! counters through an `Arc<Tally>` (their closures outlive the function that made them);
//! the `async fn` keeps its [`Tally`] on its own stack and lends it to the steps.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use weft::callback::waterfall;
use weft::promise::PromiseExt;

use crate::service::{Kind, Svc, SvcError, call, call_cb};
use crate::{Case, Env};

/// Steps in the chain.
pub const STEPS: usize = 4;
/// The step that fails (counting from 1).
pub const FAILING_STEP: usize = 3;

/// What one op observed: the chain's result and how often each effect ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The chain's result after the handler: `Err(SvcError(r2))`.
    pub result: Result<u64, SvcError>,
    /// Service calls the chain made (3: step 4 never runs).
    pub steps_run: u32,
    /// Times the handler (`.catch`, `catch`, the error-first check) saw an error (1).
    pub handler_calls: u32,
    /// Times the cleanup (`.finally`, `finally`) ran (1).
    pub cleanup_runs: u32,
}

/// The effect counters of one op.
#[derive(Debug, Default)]
pub struct Tally {
    steps: AtomicU32,
    handled: AtomicU32,
    cleanups: AtomicU32,
}

impl Tally {
    /// Counts a step started.
    pub fn step(&self) {
        self.steps.fetch_add(1, Relaxed);
    }

    /// The handler: counts the error and rethrows it.
    pub fn handle(&self, e: SvcError) -> Result<u64, SvcError> {
        self.handled.fetch_add(1, Relaxed);
        Err(e)
    }

    /// The cleanup.
    pub fn cleanup(&self) {
        self.cleanups.fetch_add(1, Relaxed);
    }

    /// The op's [`Outcome`], given the chain's result.
    pub fn outcome(&self, result: Result<u64, SvcError>) -> Outcome {
        Outcome {
            result,
            steps_run: self.steps.load(Relaxed),
            handler_calls: self.handled.load(Relaxed),
            cleanup_runs: self.cleanups.load(Relaxed),
        }
    }
}

/// Whether step `n` (counting from 1) fails.
fn fails(n: usize) -> bool {
    n == FAILING_STEP
}

/// Callback: `async.waterfall` over the four steps; the final callback is the error-first
/// handler, then the cleanup.
pub fn callback(kind: Kind, x: u64, done: impl FnOnce(Outcome) + Send + 'static) {
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    waterfall(
        x,
        STEPS,
        move |i, v, part| {
            t.step();
            call_cb(kind, v, fails(i + 1), part);
        },
        move |r: Result<u64, SvcError>| {
            let r = match r {
                Err(e) => tally.handle(e), // if (err) { console.error(err); ... }
                ok => ok,
            };
            tally.cleanup();
            done(tally.outcome(r))
        },
    );
}

/// Step `n` (from 1) of the future styles, fed `v`.
fn step(tally: &Tally, kind: Kind, n: usize, v: u64) -> Svc {
    tally.step();
    call(kind, v, fails(n))
}

/// Combinator: `step1().then(step2).then(step3).then(step4).catch(..).finally(..)`.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Outcome> {
    let tally = Arc::new(Tally::default());
    let (t2, t3, t4) = (tally.clone(), tally.clone(), tally.clone());
    let (handler, cleanup) = (tally.clone(), tally.clone());
    step(&tally, kind, 1, x)
        .then(move |r1| step(&t2, kind, 2, r1))
        .then(move |r2| step(&t3, kind, 3, r2))
        .then(move |r3| step(&t4, kind, 4, r3))
        .catch(move |e| handler.handle(e))
        .finally(move || cleanup.cleanup())
        .map(move |r| tally.outcome(r))
}

/// Step `n` (from 1) of the `async fn` style, fed `v`.
fn env_step<E: Env>(env: &E, tally: &Tally, kind: Kind, n: usize, v: u64) -> E::Call {
    tally.step();
    env.call(kind, v, fails(n))
}

/// The `try` block of [`async_fn`]: four awaits, `?` on each.
async fn steps<E: Env>(env: &E, tally: &Tally, kind: Kind, x: u64) -> Result<u64, SvcError> {
    let r1 = env_step(env, tally, kind, 1, x).await?;
    let r2 = env_step(env, tally, kind, 2, r1).await?;
    let r3 = env_step(env, tally, kind, 3, r2).await?;
    let r4 = env_step(env, tally, kind, 4, r3).await?;
    Ok(r4)
}

/// `async fn`: `try { await step1() ... } catch (e) { handle } finally { cleanup }`.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Outcome {
    let tally = Tally::default();
    let r = match steps(&env, &tally, kind, x).await {
        Err(e) => tally.handle(e),
        ok => ok,
    };
    tally.cleanup();
    tally.outcome(r)
}

/// The `error_chain` case.
#[derive(Debug)]
pub struct ErrorChain;

impl Case for ErrorChain {
    const ID: &'static str = "error_chain";
    const TITLE: &'static str = "error-first callbacks, .catch, try/catch, .finally";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::Net];
    type Out = Outcome;

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

super::entries!(ErrorChain);
