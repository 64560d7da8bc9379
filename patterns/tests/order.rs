//! The outcomes the contract names for `promisify`, `seq_vs_par`, `iterate`, `event_order`,
//! `mixed` and `load_app`, beyond the three styles agreeing (`equal.rs`): the event order,
//! the cleanup counts, the bounded window, which call failed and what never started.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use weft::callback::Callback;
use weft::callback::parallel_limit;
use weft::promise::PromiseExt;
use weft_patterns::harness::run_one;
use weft_patterns::patterns::event_order::{EventOrder, Logged};
use weft_patterns::patterns::iterate::{self, LIMIT, map_bounded, map_bounded_async};
use weft_patterns::patterns::load_app::{self, App, LoadApp, Run, Runs, Ui};
use weft_patterns::patterns::mixed::{EVENTS, Handled, Mixed};
use weft_patterns::patterns::promisify::{self, Fail};
use weft_patterns::patterns::seq_vs_par::{Loaded, Par, Seq};
use weft_patterns::{Kind, Style, SvcError, Weft, call, call_cb, expected, probe};

const STYLES: [Style; 3] = [Style::Callback, Style::Combinator, Style::AsyncFn];

/// The probe counters are process-wide, and the event order wants a quiet machine: the
/// tests of this file run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime(workers: usize) -> weft::Runtime {
    weft::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// Starts a callback-style op on a worker and waits for what it sends.
fn on_callbacks<T: Send + 'static>(
    rt: &weft::Runtime,
    start: impl FnOnce(mpsc::Sender<T>) + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || start(tx));
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the callback op never completed")
}

/// Runs a future-style op as a task.
fn on_task<F>(rt: &weft::Runtime, f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(f)).unwrap()
}

// --- event_order ---------------------------------------------------------------------------

#[test]
fn event_order_is_adcb_on_one_worker_100_times_per_style() {
    let _g = serial();
    let rt = runtime(1);
    for style in STYLES {
        for x in 0..100 {
            let out = run_one::<EventOrder>(&rt, style, Kind::Ready, x);
            assert_eq!(
                out,
                Logged {
                    log: "ADCB".into(),
                    value: Ok(expected(Kind::Ready, x)),
                },
                "{}: run {x}",
                style.name()
            );
        }
    }
}

// --- load_app ------------------------------------------------------------------------------

/// A `Ui` that records every step, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }

    fn steps(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Ui for Recorder {
    fn loading(&self) {
        self.push("loading".into());
    }

    fn loaded(&self, app: &App) {
        self.push(format!("loaded {}", app.notifications));
    }

    fn failed(&self, error: &SvcError) {
        self.push(format!("failed {}", error.0));
    }

    fn complete(&self) {
        self.push("complete".into());
    }
}

#[test]
fn load_app_cleans_up_once_on_success_and_on_failure() {
    let _g = serial();
    let rt = runtime(2);
    for kind in [Kind::Ready, Kind::TIMER, Kind::Net] {
        for style in STYLES {
            let x = 11;
            let user = expected(kind, x);
            let user2 = expected(kind, x + 1);
            let runs = run_one::<LoadApp>(&rt, style, kind, x);
            let want = Runs {
                success: Run {
                    result: Ok(App {
                        user,
                        notifications: expected(kind, user),
                    }),
                    loaded: 1,
                    failed: 0,
                    complete: 1,
                },
                failure: Run {
                    result: Err(SvcError(user2)),
                    loaded: 0,
                    failed: 1,
                    complete: 1,
                },
            };
            assert_eq!(runs, want, "{} / {kind}", style.name());
        }
    }
}

#[test]
fn load_app_runs_catch_then_finally_before_the_result_arrives() {
    let _g = serial();
    let rt = runtime(1);
    let kind = Kind::Ready;
    let x = 5;
    let user = expected(kind, x);
    for fail in [false, true] {
        let want_result = match fail {
            false => Ok(App {
                user,
                notifications: expected(kind, user),
            }),
            true => Err(SvcError(user)),
        };
        let want_steps: Vec<String> = match &want_result {
            Ok(app) => vec![
                "loading".into(),
                format!("loaded {}", app.notifications),
                "complete".into(),
            ],
            Err(e) => vec![
                "loading".into(),
                format!("failed {}", e.0),
                "complete".into(),
            ],
        };
        for style in STYLES {
            let ui = Recorder::default();
            let u = ui.clone();
            // The steps as they stood when the result arrived.
            let (result, steps) = match style {
                Style::Callback => on_callbacks(&rt, move |tx| {
                    let seen = u.clone();
                    load_app::callback(kind, x, fail, u, move |r: Result<App, SvcError>| {
                        tx.send((r, seen.steps())).unwrap()
                    })
                }),
                Style::Combinator => on_task(
                    &rt,
                    load_app::combinator(kind, x, fail, u.clone()).map(move |r| (r, u.steps())),
                ),
                _ => on_task(
                    &rt,
                    load_app::load_app(Weft, kind, x, fail, u.clone()).map(move |r| (r, u.steps())),
                ),
            };
            assert_eq!(result, want_result, "{} (fail: {fail})", style.name());
            assert_eq!(steps, want_steps, "{} (fail: {fail})", style.name());
            assert_eq!(
                ui.steps(),
                want_steps,
                "{}: nothing ran afterwards",
                style.name()
            );
        }
    }
}

// --- iterate -------------------------------------------------------------------------------

/// Calls in flight, measured around each call.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
    started: AtomicUsize,
}

impl InFlight {
    fn start(&self) {
        self.started.fetch_add(1, SeqCst);
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
    }

    fn end(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

const N: usize = 100;

/// Delays of 1, 2 and 3 ms in turn, so that calls complete out of input order.
fn scrambled(i: usize) -> Kind {
    Kind::timer_ms(1 + (i % 3) as u64)
}

/// Runs the bounded map of `style` over `N` items with `kind_of(i)`, item `fail_at` (if
/// any) failing; returns the outcome and the counters.
fn bounded(
    rt: &weft::Runtime,
    style: Style,
    x: u64,
    kind_of: fn(usize) -> Kind,
    fail_at: Option<usize>,
) -> (Result<Vec<u64>, SvcError>, Arc<InFlight>) {
    let flight = Arc::new(InFlight::default());
    let fl = flight.clone();
    let out = match style {
        Style::Callback => on_callbacks(rt, move |tx| {
            parallel_limit(
                N,
                LIMIT,
                move |i, part| {
                    fl.start();
                    let fl = fl.clone();
                    call_cb(kind_of(i), x + i as u64, Some(i) == fail_at, move |r| {
                        fl.end();
                        part.call(r)
                    });
                },
                move |r: Result<Vec<u64>, SvcError>| tx.send(r).unwrap(),
            )
        }),
        Style::Combinator => on_task(
            rt,
            map_bounded(N, LIMIT, move |i| {
                fl.start();
                let fl = fl.clone();
                call(kind_of(i), x + i as u64, Some(i) == fail_at).map(move |r| {
                    fl.end();
                    r
                })
            }),
        ),
        _ => on_task(
            rt,
            map_bounded_async(N, LIMIT, move |i| {
                fl.start();
                let fl = fl.clone();
                call(kind_of(i), x + i as u64, Some(i) == fail_at).map(move |r| {
                    fl.end();
                    r
                })
            }),
        ),
    };
    (out, flight)
}

#[test]
fn iterate_bounded_never_has_more_than_8_in_flight() {
    let _g = serial();
    for workers in [1, 2] {
        let rt = runtime(workers);
        for style in STYLES {
            for kind_of in [(|_| Kind::Ready) as fn(usize) -> Kind, scrambled] {
                let x = 1000;
                let (out, flight) = bounded(&rt, style, x, kind_of, None);
                let want: Vec<u64> = (0..N).map(|i| expected(kind_of(i), x + i as u64)).collect();
                assert_eq!(
                    out,
                    Ok(want),
                    "{} on {workers}: values in input order",
                    style.name()
                );
                let max = flight.max.load(SeqCst);
                assert!(
                    max <= LIMIT,
                    "{} on {workers}: {max} calls in flight",
                    style.name()
                );
                assert_eq!(
                    flight.started.load(SeqCst),
                    N,
                    "{} on {workers}",
                    style.name()
                );
                if workers == 1 {
                    // The first eight start together, before any can complete.
                    assert_eq!(max, LIMIT, "{}: the window is full", style.name());
                }
            }
        }
    }
}

#[test]
fn iterate_bounded_stops_starting_after_an_error() {
    let _g = serial();
    let rt = runtime(2);
    let fail_at = 20;
    for style in STYLES {
        let x = 7;
        let (out, flight) = bounded(&rt, style, x, scrambled, Some(fail_at));
        assert_eq!(out, Err(SvcError(x + fail_at as u64)), "{}", style.name());
        // No item starts once the error is out (wait past the longest delay, 3 ms, for the
        // calls still in flight to complete).
        let started = flight.started.load(SeqCst);
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(
            flight.started.load(SeqCst),
            started,
            "{}: started after the error",
            style.name()
        );
        assert!(
            started > fail_at && started < N,
            "{}: {started} started",
            style.name()
        );
        assert!(flight.max.load(SeqCst) <= LIMIT, "{}", style.name());
    }
}

#[test]
fn iterate_cases_give_every_value_in_order() {
    let _g = serial();
    let rt = runtime(2);
    let x = 40;
    for kind in [Kind::Ready, Kind::Net] {
        let want: Vec<u64> = (0..iterate::ITEMS as u64)
            .map(|i| expected(kind, x + i))
            .collect();
        for style in STYLES {
            let seq = run_one::<iterate::IterateSeq>(&rt, style, kind, x);
            let par = run_one::<iterate::IteratePar>(&rt, style, kind, x);
            let bounded = run_one::<iterate::IterateBounded>(&rt, style, kind, x);
            assert_eq!(seq.as_ref(), Ok(&want), "{} {kind} seq", style.name());
            assert_eq!(par.as_ref(), Ok(&want), "{} {kind} par", style.name());
            assert_eq!(
                bounded.as_ref(),
                Ok(&want),
                "{} {kind} bounded",
                style.name()
            );
        }
    }
}

// --- promisify -----------------------------------------------------------------------------

#[test]
fn promisify_delivers_errors_and_stops_after_the_first() {
    let _g = serial();
    let rt = runtime(2);
    for kind in [Kind::Ready, Kind::File, Kind::Net] {
        let x = 3;
        for fail in [Fail::Neither, Fail::Promisified, Fail::Callbackified] {
            let want = match fail {
                Fail::Neither => Ok((expected(kind, x), expected(kind, x + 1))),
                Fail::Promisified => Err(SvcError(x)),
                Fail::Callbackified => Err(SvcError(x + 1)),
            };
            for style in STYLES {
                probe::enable();
                let out = match style {
                    Style::Callback => on_callbacks(&rt, move |tx| {
                        promisify::callback(kind, x, fail, move |r| tx.send(r).unwrap())
                    }),
                    Style::Combinator => on_task(&rt, promisify::combinator(kind, x, fail)),
                    _ => on_task(&rt, promisify::async_fn(Weft, kind, x, fail)),
                };
                let started = probe::started();
                probe::disable();
                assert_eq!(out, want, "{} / {kind} / {fail:?}", style.name());
                let calls = if fail == Fail::Promisified { 1 } else { 2 };
                assert_eq!(
                    started,
                    calls,
                    "{} / {kind} / {fail:?}: calls started",
                    style.name()
                );
            }
        }
    }
}

#[cfg(feature = "tokio")]
#[test]
fn promisify_async_fn_runs_on_tokio() {
    let _g = serial();
    let rt = weft_patterns::harness::tokio_runtime(1);
    for kind in [Kind::Ready, Kind::File, Kind::Net] {
        let x = 9;
        let env = weft_patterns::Tokio;
        let ok = rt.block_on(promisify::async_fn(env, kind, x, Fail::Neither));
        assert_eq!(ok, Ok((expected(kind, x), expected(kind, x + 1))));
        let first = rt.block_on(promisify::async_fn(env, kind, x, Fail::Promisified));
        assert_eq!(first, Err(SvcError(x)));
        let second = rt.block_on(promisify::async_fn(env, kind, x, Fail::Callbackified));
        assert_eq!(second, Err(SvcError(x + 1)));
    }
}

// --- seq_vs_par ----------------------------------------------------------------------------

#[test]
fn seq_and_par_load_the_same_three_values() {
    let _g = serial();
    let rt = runtime(2);
    for kind in [Kind::Ready, Kind::TIMER] {
        let x = 21;
        let want = Ok(Loaded {
            user: expected(kind, x),
            orders: expected(kind, x + 1),
            settings: expected(kind, x + 2),
        });
        for style in STYLES {
            let start = Instant::now();
            assert_eq!(
                run_one::<Seq>(&rt, style, kind, x),
                want,
                "{} seq",
                style.name()
            );
            if let Kind::Timer(d) = kind {
                // One after the other: never faster than three delays.
                assert!(
                    start.elapsed() >= 3 * d,
                    "{}: seq overlapped its calls",
                    style.name()
                );
            }
            assert_eq!(
                run_one::<Par>(&rt, style, kind, x),
                want,
                "{} par",
                style.name()
            );
        }
    }
}

// --- mixed ---------------------------------------------------------------------------------

#[test]
fn mixed_handles_every_event() {
    let _g = serial();
    let rt = runtime(2);
    let x = 77;
    let sum = (0..EVENTS).fold(0u64, |s, i| s.wrapping_add(expected(Kind::Ready, x + i)));
    for style in STYLES {
        probe::enable();
        let out = run_one::<Mixed>(&rt, style, Kind::Ready, x);
        let started = probe::started();
        probe::disable();
        assert_eq!(out, Handled { count: EVENTS, sum }, "{}", style.name());
        assert_eq!(started, EVENTS, "{}: one call per event", style.name());
    }
}

// --- the async fn style on tokio -------------------------------------------------------------

#[cfg(feature = "tokio")]
mod on_tokio {
    use super::*;
    use weft_patterns::patterns::{iterate, mixed, promisify, seq_vs_par};
    use weft_patterns::{Case, Tokio};

    /// The `async fn` style gives the same outcome on tokio as on weft.
    fn agrees<C: Case>(weft_rt: &weft::Runtime, tokio_rt: &tokio::runtime::Runtime) {
        for &kind in C::KINDS {
            let x = 12;
            let on_weft = run_one::<C>(weft_rt, Style::AsyncFn, kind, x);
            let on_tokio = tokio_rt.block_on(C::async_fn(Tokio, kind, x));
            assert_eq!(on_tokio, on_weft, "{} / {kind}", C::ID);
        }
    }

    #[test]
    fn async_fn_style_agrees_on_tokio() {
        let _g = serial();
        let weft_rt = runtime(2);
        let tokio_rt = weft_patterns::harness::tokio_runtime(2);
        agrees::<promisify::Promisify>(&weft_rt, &tokio_rt);
        agrees::<seq_vs_par::Seq>(&weft_rt, &tokio_rt);
        agrees::<seq_vs_par::Par>(&weft_rt, &tokio_rt);
        agrees::<iterate::IterateSeq>(&weft_rt, &tokio_rt);
        agrees::<iterate::IteratePar>(&weft_rt, &tokio_rt);
        agrees::<iterate::IterateBounded>(&weft_rt, &tokio_rt);
        agrees::<mixed::Mixed>(&weft_rt, &tokio_rt);
        agrees::<LoadApp>(&weft_rt, &tokio_rt);
        // The order is weft's to guarantee (tokio's `block_on` thread logs `D` while a
        // worker may already log `C`); here only that the op completes with the ready
        // call's value and logs each letter once, `A` first.
        let out = tokio_rt.block_on(EventOrder::async_fn(Tokio, Kind::Ready, 4));
        assert_eq!(out.value, Ok(expected(Kind::Ready, 4)));
        let mut letters: Vec<char> = out.log.chars().collect();
        assert_eq!(letters.first(), Some(&'A'), "{}", out.log);
        letters.sort_unstable();
        assert_eq!(letters, ['A', 'B', 'C', 'D'], "{}", out.log);
    }
}
