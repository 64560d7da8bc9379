//! Error outcomes of the error-handling patterns — `error_chain`, `all_fail_fast`,
//! `all_settled`, `race`, `any`, `retry`, `timeout` — in every style: which call failed,
//! how often handlers and cleanups ran, and that cancelled work stopped (through the
//! service's probe counters); and that a cancelled `net` call never hands its reply to
//! the next call on its connection.
//!
//! The probe counters are process-wide, so every test here holds [`LOCK`]: no two of them
//! make service calls at the same time. Timing-sensitive checks use a `timer(d)` with a
//! `d` of 10 ms (the patterns scale their delays with `d`), so that a busy machine cannot
//! change which call wins; they assert what happened, never how fast.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use weft_patterns::harness::run_one;
use weft_patterns::patterns::{
    all_fail_fast::AllFailFast, all_settled::AllSettled, any::Any, error_chain::ErrorChain,
    race::Race, retry::Retry, timeout::Timeout,
};
use weft_patterns::{Case, Kind, Style, SvcError, Weft, chain_value, expected, probe};

/// Serialises the tests of this file (the probe counters are shared).
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const STYLES: [Style; 3] = [Style::Callback, Style::Combinator, Style::AsyncFn];
const XS: [u64; 3] = [0, 7, 1 << 40];
/// A timer kind with room for scheduling delays: the patterns scale their delays with it.
const SLOW_TIMER: Kind = Kind::timer_ms(10);

fn runtime(workers: usize) -> weft::Runtime {
    weft::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// Runs `check` on one and on two workers.
fn on_runtimes(mut check: impl FnMut(&weft::Runtime)) {
    for workers in [1, 2] {
        check(&runtime(workers));
    }
}

/// [`probed`], run until one run of `f` finishes less than `d` later than its nominal
/// `ds x d` (`d` = [`SLOW_TIMER`]'s duration), at most 20 times; returns that run's result
/// and counts.
///
/// The timer patterns here space their deadlines at least `d` apart. A run less than `d`
/// late observed each outcome before the next deadline passed, so which call won (or
/// whether the timeout fired) is fixed by the deadlines alone. A run that ended later
/// was held off the CPU long enough that two deadlines may have passed before anything was
/// polled, and a future `race` then takes the first ready child in input order while the
/// callbacks settle in firing order: such a run says nothing about the pattern, so it is
/// run again. This asserts no duration: a machine that never meets the gap fails the test
/// with that reason.
fn probed_on_time<T>(settle: Duration, ds: u32, mut f: impl FnMut() -> T) -> (T, u64, u64) {
    let Kind::Timer(d) = SLOW_TIMER else {
        unreachable!("SLOW_TIMER is a timer kind")
    };
    for _ in 0..20 {
        let mut took = Duration::ZERO;
        let out = probed(settle, || {
            let start = std::time::Instant::now();
            let out = f();
            took = start.elapsed();
            out
        });
        if took < (ds + 1) * d {
            return out;
        }
    }
    panic!("20 runs in a row were {d:?} late or more: the machine is too busy to judge");
}

/// Counts calls started and completed while `f` runs, and for `settle` after it.
fn probed<T>(settle: Duration, f: impl FnOnce() -> T) -> (T, u64, u64) {
    probe::enable();
    let out = f();
    std::thread::sleep(settle);
    let counts = (probe::started(), probe::completed());
    probe::disable();
    (out, counts.0, counts.1)
}

#[test]
fn error_chain_stops_at_step_3_handles_once_cleans_up_once() {
    let _g = lock();
    on_runtimes(|rt| {
        for kind in [Kind::Ready, Kind::File, Kind::Net] {
            for x in XS {
                for style in STYLES {
                    let (out, started, completed) =
                        probed(Duration::ZERO, || run_one::<ErrorChain>(rt, style, kind, x));
                    // Step 3 was fed step 2's value, and failed with it.
                    let r2 = chain_value(kind, x, 2);
                    assert_eq!(out.result, Err(SvcError(r2)), "{style:?} {kind} x = {x}");
                    assert_eq!(out.steps_run, 3, "{style:?} {kind}: step 4 must not run");
                    assert_eq!(out.handler_calls, 1, "{style:?} {kind}: handler calls");
                    assert_eq!(out.cleanup_runs, 1, "{style:?} {kind}: cleanup runs");
                    assert_eq!(
                        (started, completed),
                        (3, 3),
                        "{style:?} {kind}: service calls"
                    );
                }
            }
        }
    });
}

#[test]
fn all_fail_fast_delivers_call_50s_error() {
    let _g = lock();
    on_runtimes(|rt| {
        for kind in [Kind::Ready, Kind::TIMER] {
            for x in XS {
                for style in STYLES {
                    let out = run_one::<AllFailFast>(rt, style, kind, x);
                    assert_eq!(out, Err(SvcError(x + 50)), "{style:?} {kind} x = {x}");
                }
            }
        }
    });
}

/// "As soon as it occurs": on one worker, when the outcome is delivered, only calls 0 to
/// 50 have completed — in the callback style too, whose other 49 callbacks are still
/// queued and run (and are ignored) afterwards.
#[test]
fn all_fail_fast_delivers_before_the_rest_complete() {
    let _g = lock();
    let rt = runtime(1);
    let kind = Kind::Ready;
    probe::enable();

    let (tx, rx) = std::sync::mpsc::channel();
    rt.handle().defer(move || {
        AllFailFast::callback(kind, 3, move |r| tx.send((r, probe::completed())).unwrap())
    });
    let (r, at_delivery) = rx.recv().unwrap();
    assert_eq!(r, Err(SvcError(53)));
    assert_eq!(
        at_delivery, 51,
        "callback: completed calls when the error arrived"
    );
    // The other 49 still run (their outcomes ignored); let them finish before going on.
    let start = std::time::Instant::now();
    while probe::completed() < 100 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the other callbacks never ran"
        );
        std::thread::sleep(Duration::from_millis(1));
    }

    for (style, out) in [
        (
            "combinator",
            rt.block_on(async {
                probe::enable();
                let r = AllFailFast::combinator(kind, 3).await;
                (r, probe::completed())
            }),
        ),
        (
            "async_fn",
            rt.block_on(async {
                probe::enable();
                let r = AllFailFast::async_fn(Weft, kind, 3).await;
                (r, probe::completed())
            }),
        ),
    ] {
        assert_eq!(out, (Err(SvcError(53)), 51), "{style}");
    }
    probe::disable();
}

/// The futures drop the 49 calls still pending when call 50 fails: with `timer`, those
/// timers never fire, and no call after the failing one ever completes.
#[test]
fn all_fail_fast_futures_cancel_the_rest() {
    let _g = lock();
    on_runtimes(|rt| {
        for style in [Style::Combinator, Style::AsyncFn] {
            let (out, started, completed) = probed(Duration::from_millis(20), || {
                run_one::<AllFailFast>(rt, style, Kind::TIMER, 11)
            });
            assert_eq!(out, Err(SvcError(61)), "{style:?}");
            assert_eq!(started, 100, "{style:?}");
            assert!(
                completed <= 51,
                "{style:?}: {completed} calls completed; calls after the 50th must not"
            );
        }
    });
}

#[test]
fn all_settled_reports_every_outcome_in_order() {
    let _g = lock();
    on_runtimes(|rt| {
        for kind in [Kind::Ready, Kind::File, Kind::Net] {
            for x in XS {
                let want: Vec<_> = (0..100u64)
                    .map(|i| {
                        if i % 10 == 9 {
                            Err(SvcError(x + i))
                        } else {
                            Ok(expected(kind, x + i))
                        }
                    })
                    .collect();
                for style in STYLES {
                    let (out, started, completed) =
                        probed(Duration::ZERO, || run_one::<AllSettled>(rt, style, kind, x));
                    assert_eq!(out, want, "{style:?} {kind} x = {x}");
                    assert_eq!((started, completed), (100, 100), "{style:?} {kind}");
                }
            }
        }
    });
}

/// With `timer(d)` the call of 1 d (call 1) wins; the other two are cancelled and never
/// complete, even well after their delays have passed.
#[test]
fn race_timer_fastest_wins_losers_cancelled() {
    let _g = lock();
    on_runtimes(|rt| {
        for x in XS {
            for style in STYLES {
                // The longest delay is 3 d = 30 ms; wait 10 ms more.
                let (out, started, completed) =
                    probed_on_time(Duration::from_millis(40), 1, || {
                        run_one::<Race>(rt, style, SLOW_TIMER, x)
                    });
                assert_eq!(out, Ok(expected(SLOW_TIMER, x + 1)), "{style:?} x = {x}");
                assert_eq!(
                    (started, completed),
                    (3, 1),
                    "{style:?}: losers must not complete"
                );
            }
        }
    });
}

/// With `ready`, call 0 (the one `ready` call) wins in every style.
#[test]
fn race_ready_call_0_wins() {
    let _g = lock();
    on_runtimes(|rt| {
        for x in XS {
            for style in STYLES {
                let (out, started, completed) = probed(Duration::ZERO, || {
                    run_one::<Race>(rt, style, Kind::Ready, x)
                });
                assert_eq!(out, Ok(expected(Kind::Ready, x)), "{style:?} x = {x}");
                assert_eq!((started, completed), (3, 1), "{style:?}");
            }
        }
    });
}

#[test]
fn any_takes_the_first_success_or_every_error_in_order() {
    let _g = lock();
    on_runtimes(|rt| {
        for kind in [Kind::Ready, Kind::TIMER] {
            for x in XS {
                for style in STYLES {
                    let out = run_one::<Any>(rt, style, kind, x);
                    assert_eq!(
                        out.one_succeeds,
                        Ok(expected(kind, x + 2)),
                        "{style:?} {kind}"
                    );
                    assert_eq!(
                        out.all_fail,
                        Err(vec![SvcError(x), SvcError(x + 1), SvcError(x + 2)]),
                        "{style:?} {kind}"
                    );
                }
            }
        }
    });
}

#[test]
fn retry_succeeds_on_attempt_3_or_returns_the_last_error() {
    let _g = lock();
    on_runtimes(|rt| {
        for x in XS {
            for style in STYLES {
                let (out, started, _) = probed(Duration::ZERO, || {
                    run_one::<Retry>(rt, style, Kind::Ready, x)
                });
                assert_eq!(
                    out.third_succeeds,
                    Ok(expected(Kind::Ready, x + 3)),
                    "{style:?}"
                );
                assert_eq!(
                    out.all_fail,
                    Err(SvcError(x + 3)),
                    "{style:?}: the last error"
                );
                assert_eq!(out.calls, 6, "{style:?}: calls counted");
                assert_eq!(started, 6, "{style:?}: calls made");
            }
        }
    });
}

/// (a) gives the value, (b) times out; (b)'s call is cancelled and never completes.
#[test]
fn timeout_value_in_time_error_when_late_and_the_late_call_cancelled() {
    use weft_patterns::patterns::timeout::Outcome::{TimedOut, Value};
    let _g = lock();
    on_runtimes(|rt| {
        for x in XS {
            for style in STYLES {
                // (b)'s call would take 5 d = 50 ms from its start; wait 60 ms past the op.
                // One op is (a), 1 d, then (b), timed out at 1 d: 2 d.
                let (out, started, completed) =
                    probed_on_time(Duration::from_millis(60), 2, || {
                        run_one::<Timeout>(rt, style, SLOW_TIMER, x)
                    });
                assert_eq!(out, (Value(expected(SLOW_TIMER, x)), TimedOut), "{style:?}");
                assert_eq!(
                    (started, completed),
                    (2, 1),
                    "{style:?}: (b) must not complete"
                );
            }
        }
    });
}

/// A `net` call cancelled at every point of its exchange (dropped after 0, 1, 2, ...
/// polls) leaves no reply behind for a later call: every later call on the runtime gets
/// its own value, and cancelled calls never count as completed.
#[test]
fn cancelled_net_calls_never_hand_their_reply_to_the_next_call() {
    use std::future::Future;
    use std::task::{Context, Waker};
    fn poll_once(call: &mut weft_patterns::Svc) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        std::pin::Pin::new(call).poll(&mut cx).is_ready()
    }
    let _g = lock();
    on_runtimes(|rt| {
        let rt_handle = rt.handle().clone();
        let (out, started, completed) = probed(Duration::ZERO, || {
            rt.block_on(rt_handle.spawn(async move {
                let mut got = Vec::new();
                for round in 0..40u64 {
                    // Up to `round % 8` polls, then dropped, the reply maybe on its way.
                    let mut call = weft_patterns::svc(Kind::Net, 1_000 + round);
                    let mut finished = false;
                    for _ in 0..round % 8 {
                        if poll_once(&mut call) {
                            finished = true;
                            break;
                        }
                        weft::task::yield_now().await;
                    }
                    drop(call);
                    // Calls that reuse the pool right after the cancel.
                    for k in 0..3 {
                        let x = 50_000 + round * 10 + k;
                        // The cancelled call's own outcome counted once, with its round.
                        let counted = finished && k == 0;
                        got.push((x, weft_patterns::svc(Kind::Net, x).await, counted));
                    }
                }
                got
            }))
            .unwrap()
        });
        let mut finished = 0;
        for (x, r, f) in &out {
            assert_eq!(*r, Ok(expected(Kind::Net, *x)), "the call for {x}");
            finished += *f as u64;
        }
        assert_eq!(started, 40 + 120, "calls started");
        // The 120 awaited calls, and a cancelled one only if it had finished.
        assert_eq!(completed, 120 + finished, "calls completed");
    });
}
