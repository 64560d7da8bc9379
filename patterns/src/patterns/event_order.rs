//! `event_order`: promises and the microtask queue — `A D C B`.
//!
//! ```js
//! console.log("A");
//! setTimeout(() => { console.log("B"); }, 0);
//! Promise.resolve().then(() => { console.log("C"); });
//! console.log("D");
//! // A D C B
//! ```
//!
//! One op logs `A`; schedules a zero-delay timer that logs `B`; schedules a continuation of
//! a ready call (`svc(kind, x)`, kind `ready`: the resolved promise) that logs `C`; logs
//! `D`; and ends once both `B` and `C` have run. The outcome is the log, `"ADCB"`, and the
//! ready call's value ([`Logged`]).
//!
//! | style | `B` (the timer) | `C` (the ready continuation) |
//! |---|---|---|
//! | callback | `set_timeout(1 ms, ..)` | `svc_cb(Ready, x, ..)` (a deferred callback) |
//! | combinator | `spawn(delay(1 ms).map(..))` | `spawn(svc(Ready, x).map(..))` |
//! | `async fn` | `env.spawn(async { env.sleep(1 ms).await; .. })` | `env.spawn(async { env.svc(Ready, x).await; .. })` |
//!
//! The future styles spawn both, as `setTimeout` and `.then` register work that runs
//! whether or not anyone waits for it, and join the two tasks at the end.
//!
//! # Why a 1 ms timer
//!
//! Node clamps `setTimeout(f, 0)` to 1 ms, so every style waits [`TIMER_ZERO`] = 1 ms for
//! `B`. A zero delay would not do the same thing in each style: `weft::time::sleep(ZERO)`
//! completes on its first poll (it would log `B` right after `D`), while
//! [`set_timeout`]`(Duration::ZERO, ..)` waits for the timer wheel's next firing pass.
//! With `ZERO` for the callback style only, the order would be the same but the callback
//! op would skip the wait for reasons that have nothing to do with the style; with 1 ms
//! everywhere the three ops wait for the same timer.
//!
//! # Why the order holds, and where
//!
//! Only on a one-worker runtime (the case is
//! [`ONE_WORKER_ONLY`](crate::Case::ONE_WORKER_ONLY)): with more workers `C` and `B` may run
//! on two threads at once. On one worker, for the callback style the order is structural,
//! as in JavaScript: the ready callback is queued before the timer can fire, and a fired
//! timer's callback is queued behind it. For the future styles it rests on timing: the
//! ready call completes in two passes of the scheduler, microseconds, while the timer
//! needs a millisecond — but a timer task woken by the wheel goes to the worker's LIFO
//! slot, ahead of the queue, so a thread descheduled for over a millisecond between
//! spawning `B` and the ready call's second poll would see `B` first. JavaScript has no
//! such caveat: its microtask queue always drains before the next timer.
//!
//! [`set_timeout`]: weft::callback::set_timeout

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use weft::JoinError;
use weft::callback::set_timeout;
use weft::promise::{PromiseExt, all, delay, resolve};

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env};

/// The future styles' `setTimeout(.., 0)`: Node's clamped delay.
pub const TIMER_ZERO: Duration = Duration::from_millis(1);

/// What one op produces: the log, and the value of the ready call whose continuation
/// logged `C`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The letters in the order they were logged: `"ADCB"`.
    pub log: String,
    /// `svc(kind, x)`.
    pub value: Result<u64, SvcError>,
}

/// Where the styles log to: `console.log`, one letter at a time.
pub trait Console: Fn(&'static str) + Clone + Send + Sync + 'static {}

impl<F: Fn(&'static str) + Clone + Send + Sync + 'static> Console for F {}

/// What the callback style's two callbacks share: the later of them ends the op.
struct Pending<D> {
    left: u32,
    value: Option<Result<u64, SvcError>>,
    done: Option<D>,
}

fn settle<D: FnOnce(Result<u64, SvcError>)>(
    st: &Mutex<Pending<D>>,
    value: Option<Result<u64, SvcError>>,
) {
    let finished = {
        let mut st = st.lock();
        if value.is_some() {
            st.value = value;
        }
        st.left -= 1;
        match st.left {
            0 => st.done.take().zip(st.value.take()),
            _ => None,
        }
    };
    if let Some((done, value)) = finished {
        done(value);
    }
}

/// Callback: `set_timeout(1 ms)` for `B`, the ready call's callback for `C`; `done` gets
/// the call's value once both have run.
pub fn callback(
    kind: Kind,
    x: u64,
    console: impl Console,
    done: impl FnOnce(Result<u64, SvcError>) + Send + 'static,
) {
    let st = Arc::new(Mutex::new(Pending {
        left: 2,
        value: None,
        done: Some(done),
    }));
    console("A");
    let (c, s) = (console.clone(), st.clone());
    set_timeout(TIMER_ZERO, move || {
        c("B");
        settle(&s, None);
    });
    let (c, s) = (console.clone(), st);
    svc_cb(kind, x, move |r: Result<u64, SvcError>| {
        c("C");
        settle(&s, Some(r));
    });
    console("D");
}

/// Combinator: `Promise.resolve().then(..)` starts the op (so that nothing runs before it
/// is polled); inside, two spawned combinator futures — `delay(1 ms).map(log B)` and
/// `svc(Ready, x).map(log C)` — joined with `all` of their `JoinHandle`s.
pub fn combinator(
    kind: Kind,
    x: u64,
    console: impl Console,
) -> impl Future<Output = Result<u64, SvcError>> {
    resolve::<(), JoinError>(())
        .then(move |()| {
            console("A");
            let c = console.clone();
            let b = weft::spawn(delay(TIMER_ZERO).map(move |()| {
                c("B");
                None
            }));
            let c = console.clone();
            let ready = weft::spawn(svc(kind, x).map(move |r| {
                c("C");
                Some(r)
            }));
            console("D");
            all([b, ready])
        })
        .map(|joined| match joined {
            Ok([_, Some(value)]) => value,
            Ok(_) => unreachable!("the ready task returns its call's value"),
            Err(e) => panic!("an event_order task failed: {e}"),
        })
}

/// `async fn`: two spawned tasks, one sleeping 1 ms then logging `B`, one awaiting the
/// ready call then logging `C`; joined at the end.
pub async fn async_fn<E: Env>(
    env: E,
    kind: Kind,
    x: u64,
    console: impl Console,
) -> Result<u64, SvcError> {
    console("A");
    let (e, c) = (env.clone(), console.clone());
    let b = env.spawn(async move {
        e.sleep(TIMER_ZERO).await;
        c("B");
    });
    let (call, c) = (env.svc(kind, x), console.clone());
    let ready = env.spawn(async move {
        let r = call.await;
        c("C");
        r
    });
    console("D");
    let value = ready.await;
    b.await;
    value
}

/// The log the case collects the letters in.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<String>>);

impl Collected {
    fn console(&self) -> impl Console + use<> {
        let log = self.0.clone();
        move |s: &'static str| log.lock().push_str(s)
    }

    fn logged(&self, value: Result<u64, SvcError>) -> Logged {
        Logged {
            log: std::mem::take(&mut *self.0.lock()),
            value,
        }
    }
}

/// The `event_order` case.
#[derive(Debug)]
pub struct EventOrder;

impl Case for EventOrder {
    const ID: &'static str = "event_order";
    const TITLE: &'static str = "the microtask queue (A D C B)";
    const KINDS: &'static [Kind] = &[Kind::Ready];
    const ONE_WORKER_ONLY: bool = true;
    type Out = Logged;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        let log = Collected::default();
        callback(kind, x, log.console(), move |value| done(log.logged(value)))
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        let log = Collected::default();
        combinator(kind, x, log.console()).map(move |value| log.logged(value))
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        let log = Collected::default();
        async_fn(env, kind, x, log.console()).map(move |value| log.logged(value))
    }
}

super::entries!(EventOrder);
