//! `mixed`: mixing styles — an event listener (a callback) that runs async code.
//!
//! ```js
//! button.addEventListener("click", async () => {
//!   try {
//!     const response = await fetch("/api/save");
//!     const result = await response.json();
//!     console.log(result);
//!   } catch (error) {
//!     console.error(error);
//!   }
//! });
//! ```
//!
//! The event source is an [`Emitter`]: `on(listener)` registers a plain callback, and
//! `emit(x)` calls every listener synchronously, as the DOM dispatches an event. One op
//! registers one listener and fires [`EVENTS`] = 1000 events (event `i` carries `x + i`);
//! each listener call starts one service call with the event's value and logs its result.
//! The op ends when all 1000 have been handled; its outcome is how many were handled and
//! the wrapping sum of their values ([`Handled`]).
//!
//! The listener is a callback in every style — that is the pattern — and what it runs
//! inside is the style's own:
//!
//! | style | the listener runs | the op waits with |
//! |---|---|---|
//! | callback | `svc_cb(kind, x, ..)` | a counter: the last result calls `done` |
//! | combinator | `spawn(svc(kind, x).map(..))` | a [`Latch`] |
//! | `async fn` | `env.spawn(async { env.svc(kind, x).await; .. })` | a [`Latch`] |
//!
//! An `async` listener in JavaScript starts a promise that nobody awaits; the future styles
//! likewise spawn a task per event (detached: the listener returns at once), and count
//! the handled events to know when the op is over.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use weft::promise::{PromiseExt, resolve};

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env, Latch};

/// Events per op.
pub const EVENTS: u64 = 1000;

type Listener = Box<dyn Fn(u64) + Send + Sync>;

/// A tiny event source: `addEventListener` and `dispatchEvent`, for events that carry a
/// `u64`.
#[derive(Default)]
pub struct Emitter {
    listeners: Vec<Listener>,
}

impl Emitter {
    /// An emitter with no listeners.
    pub fn new() -> Emitter {
        Emitter::default()
    }

    /// Registers `listener`: `addEventListener`.
    pub fn on(&mut self, listener: impl Fn(u64) + Send + Sync + 'static) {
        self.listeners.push(Box::new(listener));
    }

    /// Calls every listener with `x`, in registration order, before returning — the DOM's
    /// synchronous dispatch.
    pub fn emit(&self, x: u64) {
        for listener in &self.listeners {
            listener(x);
        }
    }
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

/// What one op produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handled {
    /// Events whose service call completed (successfully or not): 1000.
    pub count: u64,
    /// The wrapping sum of the values of the successful calls.
    pub sum: u64,
}

/// What a listener does with a result: `console.log(result)` or `console.error(error)`.
pub trait Log: Fn(&Result<u64, SvcError>) + Send + Sync + 'static {}

impl<F: Fn(&Result<u64, SvcError>) + Send + Sync + 'static> Log for F {}

/// The handled events, counted from every listener call.
struct Tally {
    count: AtomicU64,
    sum: AtomicU64,
    events: u64,
}

impl Tally {
    fn new(events: u64) -> Arc<Tally> {
        assert!(events > 0, "an op fires at least one event");
        Arc::new(Tally {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            events,
        })
    }

    /// Records one handled event; `true` for the last one.
    fn record(&self, r: &Result<u64, SvcError>) -> bool {
        if let Ok(v) = r {
            self.sum.fetch_add(*v, Ordering::Relaxed);
        }
        // AcqRel: whoever counts the last event sees every earlier event's sum.
        self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.events
    }

    fn handled(&self) -> Handled {
        Handled {
            count: self.count.load(Ordering::Acquire),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// Callback: the listener calls `svc_cb`; the last result calls `done`.
pub fn callback(
    kind: Kind,
    x: u64,
    events: u64,
    log: impl Log,
    done: impl FnOnce(Handled) + Send + 'static,
) {
    let tally = Tally::new(events);
    let done = Arc::new(Mutex::new(Some(done)));
    let log = Arc::new(log);
    let mut button = Emitter::new();
    button.on(move |x| {
        let (tally, done, log) = (tally.clone(), done.clone(), log.clone());
        svc_cb(kind, x, move |r: Result<u64, SvcError>| {
            log(&r);
            if tally.record(&r) {
                let done = done.lock().take();
                if let Some(done) = done {
                    done(tally.handled());
                }
            }
        });
    });
    for i in 0..events {
        button.emit(x + i);
    }
}

/// Combinator: the listener spawns `svc(kind, x).map(log)`; the op, started from
/// `Promise.resolve().then(..)` so that nothing runs before it is polled, waits on a latch.
pub fn combinator(kind: Kind, x: u64, events: u64, log: impl Log) -> impl Future<Output = Handled> {
    let tally = Tally::new(events);
    let latch = Latch::new(events);
    let t = tally.clone();
    resolve::<(), Infallible>(())
        .then(move |()| {
            let log = Arc::new(log);
            let l = latch.clone();
            let mut button = Emitter::new();
            button.on(move |x| {
                let (t, l, log) = (t.clone(), l.clone(), log.clone());
                weft::spawn(svc(kind, x).map(move |r| {
                    log(&r);
                    t.record(&r);
                    l.count_down();
                }));
            });
            for i in 0..events {
                button.emit(x + i);
            }
            latch.wait().map(Ok)
        })
        .map(move |_| tally.handled())
}

/// `async fn`: the listener spawns an `async` block that awaits the call — the article's
/// `addEventListener("click", async () => { .. })`; the op awaits a latch.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64, events: u64, log: impl Log) -> Handled {
    let tally = Tally::new(events);
    let latch = Latch::new(events);
    let log = Arc::new(log);
    let mut button = Emitter::new();
    let (t, l) = (tally.clone(), latch.clone());
    button.on(move |x| {
        let (env, t, l, log) = (env.clone(), t.clone(), l.clone(), log.clone());
        let handler = env.clone().spawn(async move {
            let r = env.svc(kind, x).await;
            log(&r);
            t.record(&r);
            l.count_down();
        });
        drop(handler); // detached: nobody awaits an event handler
    });
    for i in 0..events {
        button.emit(x + i);
    }
    latch.wait().await;
    tally.handled()
}

fn quiet(_: &Result<u64, SvcError>) {}

/// The `mixed` case.
#[derive(Debug)]
pub struct Mixed;

impl Case for Mixed {
    const ID: &'static str = "mixed";
    const TITLE: &'static str = "mixing styles: an event listener that runs async code";
    const KINDS: &'static [Kind] = &[Kind::Ready];
    type Out = Handled;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback(kind, x, EVENTS, quiet, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator(kind, x, EVENTS, quiet)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn(env, kind, x, EVENTS, quiet)
    }
}

super::entries!(Mixed);
