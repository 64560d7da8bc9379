//! weft::promise: the Promise API as future combinators — results in input order, losers
//! and the rest of a failed `all` dropped at once, `then`/`catch`/`finally` called exactly
//! when they should be, and the callback bridges in both directions.
//!
//! Every test asserts behaviour (order, counts, drops), never timing.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use weft_runtime::Runtime;
use weft_runtime::callback::Callback;
use weft_runtime::promise::{
    AggregateError, PromiseExt, all, all_settled, any, callbackify, delay, promisify, race, reject,
    resolve, retry,
};

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// Counts its drops.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// `Pending` (waking itself) `yields` times, then `Ready(value)`: a future that needs
/// several polls, to exercise the paths where children complete in different rounds.
struct YieldThen<T> {
    yields: usize,
    value: Option<T>,
}

fn yield_then<T>(yields: usize, value: T) -> YieldThen<T> {
    YieldThen {
        yields,
        value: Some(value),
    }
}

/// Pending once, then ready.
fn ready_after_one<T>(value: T) -> YieldThen<T> {
    yield_then(1, value)
}

impl<T> Unpin for YieldThen<T> {}

impl<T> Future for YieldThen<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.yields > 0 {
            self.yields -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(self.value.take().expect("polled after completion"))
    }
}

/// The message of a task's panic.
fn panic_message(err: weft_runtime::JoinError) -> String {
    let payload = err.into_panic();
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast::<&'static str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

/// Counters shared by a set of [`child`] futures.
#[derive(Clone, Default)]
struct Counters {
    dropped: Arc<AtomicUsize>,
    completed: Arc<AtomicUsize>,
}

impl Counters {
    fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }
    fn completed(&self) -> usize {
        self.completed.load(SeqCst)
    }
}

/// A child that holds a drop guard, yields `yields` times (`None`: forever), counts its
/// completion and returns `out`. One `async fn`, so every child has one type (and is
/// `!Unpin`, like any async block).
async fn child<T>(c: Counters, yields: Option<usize>, out: T) -> T {
    let _guard = DropGuard(c.dropped.clone());
    match yields {
        Some(n) => yield_then(n, ()).await,
        None => std::future::pending::<()>().await,
    }
    c.completed.fetch_add(1, SeqCst);
    out
}

// ---------------------------------------------------------------------------------------
// all

#[test]
fn all_returns_values_in_input_order() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        // Completes in reverse order: the last child first.
        let out = all([
            child(c.clone(), Some(4), Ok::<_, ()>("a")),
            child(c.clone(), Some(2), Ok("b")),
            child(c.clone(), Some(0), Ok("c")),
        ])
        .await;
        assert_eq!(out, Ok(["a", "b", "c"]));
        assert_eq!(c.completed(), 3);
        assert_eq!(c.dropped(), 3);
    });
}

/// An array's outputs are moved out of their slots once each: every output reaches the
/// caller and is dropped once, with the array it came in, and none is dropped in the set.
#[test]
fn all_of_an_array_moves_each_output_out_once() {
    let rt = rt();
    rt.block_on(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let out = all([
            ready_after_one(Ok::<_, ()>((0, DropGuard(drops.clone())))),
            yield_then(3, Ok((1, DropGuard(drops.clone())))),
            yield_then(0, Ok((2, DropGuard(drops.clone())))),
        ])
        .await
        .unwrap();
        assert_eq!(
            drops.load(SeqCst),
            0,
            "an output was dropped inside the set"
        );
        assert_eq!(out.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
        drop(out);
        assert_eq!(drops.load(SeqCst), 3);
    });
}

#[test]
fn all_of_a_hundred_vec_futures_keeps_input_order() {
    let rt = rt();
    rt.block_on(async {
        let futs: Vec<_> = (0..100usize)
            .map(|i| yield_then((i * 37) % 11, Ok::<_, String>(i)))
            .collect();
        let out = all(futs).await.unwrap();
        assert_eq!(out, (0..100).collect::<Vec<_>>());

        let once: Vec<_> = (0..100u32)
            .map(|i| ready_after_one(Ok::<_, ()>(i)))
            .collect();
        assert_eq!(all(once).await.unwrap(), (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn all_fails_fast_and_drops_every_other_child() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        let out = all([
            child(c.clone(), Some(50), Ok(1)),
            child(c.clone(), None, Ok(2)),
            child(c.clone(), Some(2), Err("third failed")),
            child(c.clone(), None, Ok(4)),
        ])
        .await;
        // Checked before anything else runs: all four were dropped inside the poll that
        // saw the error, and only the failing one ever completed.
        assert_eq!(c.dropped(), 4);
        assert_eq!(c.completed(), 1);
        assert_eq!(out, Err("third failed"));
    });
}

#[test]
fn all_of_a_vec_fails_fast_too() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        let futs: Vec<_> = (0..10)
            .map(|i| {
                if i == 7 {
                    child(c.clone(), Some(3), Err(i))
                } else {
                    child(c.clone(), None, Ok(i))
                }
            })
            .collect();
        let out = all(futs).await;
        assert_eq!(c.dropped(), 10);
        assert_eq!(out, Err(7));
    });
}

#[test]
fn all_first_error_in_input_order_wins_within_a_round() {
    let rt = rt();
    rt.block_on(async {
        let out = all([
            ready_after_one(Ok(0)),
            ready_after_one(Err("b")),
            ready_after_one(Err("c")),
        ])
        .await;
        assert_eq!(out, Err("b"));
    });
}

#[test]
fn all_of_nothing_is_ok_at_once() {
    let rt = rt();
    rt.block_on(async {
        let none: [std::future::Ready<Result<u8, ()>>; 0] = [];
        assert_eq!(all(none).await, Ok([]));
        assert_eq!(
            all(Vec::<std::future::Ready<Result<u8, ()>>>::new()).await,
            Ok(vec![])
        );
    });
}

#[test]
fn all_of_join_handles_runs_on_the_workers() {
    let rt = rt();
    rt.block_on(async {
        let handles: Vec<_> = (0..8u64)
            .map(|i| weft_runtime::spawn(async move { i * 2 }))
            .collect();
        let out = all(handles).await.unwrap();
        assert_eq!(out, (0..8u64).map(|i| i * 2).collect::<Vec<_>>());
    });
}

// ---------------------------------------------------------------------------------------
// all_settled

#[test]
fn all_settled_keeps_every_outcome_in_input_order() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        let out = all_settled([
            child(c.clone(), Some(3), Ok(1)),
            child(c.clone(), Some(1), Err("two")),
            child(c.clone(), Some(0), Ok(3)),
            child(c.clone(), Some(5), Err("four")),
        ])
        .await;
        assert_eq!(out, [Ok(1), Err("two"), Ok(3), Err("four")]);
        assert_eq!(c.completed(), 4);

        let vec_out = all_settled(vec![
            ready_after_one(Err::<u8, _>(1)),
            ready_after_one(Ok(2)),
        ])
        .await;
        assert_eq!(vec_out, vec![Err(1), Ok(2)]);
    });
}

// ---------------------------------------------------------------------------------------
// race

#[test]
fn race_yields_the_first_and_drops_the_losers_at_once() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        let out = race([
            child(c.clone(), None, "never"),
            child(c.clone(), Some(20), "slow"),
            child(c.clone(), Some(2), "fast"),
            child(c.clone(), None, "never either"),
        ])
        .await;
        assert_eq!(c.dropped(), 4);
        assert_eq!(c.completed(), 1);
        assert_eq!(out, "fast");
    });
}

#[test]
fn race_an_error_can_win() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        let out = race(vec![
            child(c.clone(), Some(10), Ok(1)),
            child(c.clone(), Some(1), Err("boom")),
        ])
        .await;
        assert_eq!(out, Err("boom"));
        assert_eq!(c.dropped(), 2);
        assert_eq!(c.completed(), 1);
    });
}

#[test]
fn race_of_nothing_panics() {
    let rt = rt();
    let err = rt.block_on(async {
        weft_runtime::spawn(race(Vec::<std::future::Ready<u8>>::new()))
            .await
            .unwrap_err()
    });
    assert!(err.is_panic());
    assert!(panic_message(err).contains("empty set"));
}

// ---------------------------------------------------------------------------------------
// any

#[test]
fn any_yields_the_first_ok_and_drops_the_rest() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        let out = any([
            child(c.clone(), Some(0), Err("down")),
            child(c.clone(), Some(10), Ok("slow mirror")),
            child(c.clone(), Some(3), Ok("fast mirror")),
            child(c.clone(), None, Ok("never")),
        ])
        .await;
        assert_eq!(c.dropped(), 4);
        assert_eq!(c.completed(), 2);
        assert_eq!(out, Ok("fast mirror"));
    });
}

#[test]
fn any_that_all_fail_reports_every_error_in_input_order() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        // They fail in reverse order.
        let futs: Vec<_> = (0..5)
            .map(|i| child(c.clone(), Some(10 - 2 * i), Err::<(), _>(format!("e{i}"))))
            .collect();
        let err: AggregateError<String> = any(futs).await.unwrap_err();
        assert_eq!(err.errors(), ["e0", "e1", "e2", "e3", "e4"]);
        assert_eq!(err.to_string(), "all 5 futures failed");
        assert_eq!(err.clone().into_errors().len(), 5);
        assert_eq!(c.completed(), 5);

        let arr = any([
            ready_after_one(Err::<u8, _>('a')),
            ready_after_one(Err('b')),
        ])
        .await;
        assert_eq!(arr, Err(AggregateError::new(vec!['a', 'b'])));
    });
}

#[test]
fn any_of_nothing_fails_at_once() {
    let rt = rt();
    rt.block_on(async {
        let none: [std::future::Ready<Result<u8, ()>>; 0] = [];
        let err = any(none).await.unwrap_err();
        assert!(err.errors().is_empty());
        assert_eq!(err.to_string(), "all 0 futures failed");
    });
}

#[test]
fn aggregate_error_is_an_error_when_its_errors_are() {
    fn is_error<E: std::error::Error>(_: &E) {}
    let e = AggregateError::new(vec![std::io::Error::other("a")]);
    is_error(&e);
    assert_eq!(e.errors().len(), 1);
}

// ---------------------------------------------------------------------------------------
// retry

#[test]
fn retry_stops_at_the_first_success() {
    let rt = rt();
    rt.block_on(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let out = retry(5, move |attempt| {
            s.lock().unwrap().push(attempt);
            ready_after_one(if attempt < 3 {
                Err(format!("attempt {attempt} failed"))
            } else {
                Ok(attempt * 10)
            })
        })
        .await;
        assert_eq!(out, Ok(30));
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
    });
}

#[test]
fn retry_returns_the_last_error_after_every_attempt_failed() {
    let rt = rt();
    rt.block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let out = retry(4, move |attempt| {
            c.fetch_add(1, SeqCst);
            async move { Err::<(), _>(attempt) }
        })
        .await;
        assert_eq!(out, Err(4));
        assert_eq!(calls.load(SeqCst), 4);
    });
}

#[test]
fn retry_is_lazy() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let fut = retry(3, move |_| {
        c.fetch_add(1, SeqCst);
        resolve::<(), ()>(())
    });
    assert_eq!(calls.load(SeqCst), 0);
    drop(fut);
    assert_eq!(calls.load(SeqCst), 0);
}

#[test]
#[should_panic(expected = "at least one attempt")]
fn retry_with_no_attempts_panics() {
    drop(retry(0, |_| resolve::<(), ()>(())));
}

// ---------------------------------------------------------------------------------------
// then / map / map_ok / catch / finally / timeout

#[test]
fn then_runs_on_ok_and_is_skipped_on_err() {
    let rt = rt();
    rt.block_on(async {
        let calls = AtomicUsize::new(0);
        let ok = ready_after_one(Ok::<u32, &str>(20))
            .then(|x| {
                calls.fetch_add(1, SeqCst);
                async move {
                    yield_then(2, ()).await;
                    Ok(x + 1)
                }
            })
            .then(|x| ready_after_one(Ok(x * 2)))
            .await;
        assert_eq!(ok, Ok(42));
        assert_eq!(calls.load(SeqCst), 1);

        let err = ready_after_one(Err::<u32, &str>("no"))
            .then(|x| {
                calls.fetch_add(1, SeqCst);
                resolve(x + 1)
            })
            .await;
        assert_eq!(err, Err("no"));
        assert_eq!(calls.load(SeqCst), 1);

        // The second step may fail too.
        let second = resolve::<u32, &str>(1)
            .then(|_| reject::<u32, _>("second"))
            .await;
        assert_eq!(second, Err("second"));
    });
}

#[test]
fn map_and_map_ok() {
    let rt = rt();
    rt.block_on(async {
        assert_eq!(ready_after_one(20).map(|x| x + 22).await, 42);
        assert_eq!(
            ready_after_one(Ok::<_, ()>(2)).map_ok(|x| x * 5).await,
            Ok(10)
        );
        let calls = AtomicUsize::new(0);
        let err = ready_after_one(Err::<u32, _>("e"))
            .map_ok(|x| {
                calls.fetch_add(1, SeqCst);
                x
            })
            .await;
        assert_eq!(err, Err("e"));
        assert_eq!(calls.load(SeqCst), 0);
    });
}

#[test]
fn catch_runs_on_err_only() {
    let rt = rt();
    rt.block_on(async {
        let calls = AtomicUsize::new(0);
        let ok = ready_after_one(Ok::<u32, &str>(7))
            .catch(|_| {
                calls.fetch_add(1, SeqCst);
                Ok::<_, String>(0)
            })
            .await;
        assert_eq!(ok, Ok(7));
        assert_eq!(calls.load(SeqCst), 0);

        let recovered = ready_after_one(Err::<u32, &str>("boom"))
            .catch(|e| {
                calls.fetch_add(1, SeqCst);
                Ok::<_, String>(e.len() as u32)
            })
            .await;
        assert_eq!(recovered, Ok(4));

        let rethrown = ready_after_one(Err::<u32, &str>("boom"))
            .catch(|e| Err::<u32, _>(format!("wrapped {e}")))
            .await;
        assert_eq!(rethrown, Err("wrapped boom".to_string()));
        assert_eq!(calls.load(SeqCst), 1);
    });
}

#[test]
fn finally_runs_once_on_ok_and_on_err() {
    let rt = rt();
    rt.block_on(async {
        let runs = AtomicUsize::new(0);
        let ok = ready_after_one(Ok::<_, &str>(1))
            .finally(|| {
                runs.fetch_add(1, SeqCst);
            })
            .await;
        assert_eq!(ok, Ok(1));
        assert_eq!(runs.load(SeqCst), 1);

        let err = async {
            yield_then(3, ()).await;
            Err::<u8, _>("failed")
        }
        .finally(|| {
            runs.fetch_add(1, SeqCst);
        })
        .await;
        assert_eq!(err, Err("failed"));
        assert_eq!(runs.load(SeqCst), 2);
    });
}

#[test]
fn finally_does_not_run_when_dropped_before_completion() {
    let rt = rt();
    rt.block_on(async {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let fut = std::future::pending::<()>().finally(move || {
            r.fetch_add(1, SeqCst);
        });
        assert!(fut.timeout(Duration::from_millis(1)).await.is_err());
        assert_eq!(runs.load(SeqCst), 0);

        // A lost race drops it too.
        let r = runs.clone();
        let loser = child(Counters::default(), None, 1).finally(move || {
            r.fetch_add(1, SeqCst);
        });
        let r = runs.clone();
        let winner = child(Counters::default(), Some(1), 2).finally(move || {
            r.fetch_add(10, SeqCst);
        });
        // Different closure types: box them into one type.
        let set: [Pin<Box<dyn Future<Output = i32> + Send>>; 2] =
            [Box::pin(loser), Box::pin(winner)];
        assert_eq!(race(set).await, 2);
        assert_eq!(runs.load(SeqCst), 10);
    });
}

#[test]
fn timeout_drops_the_inner_future_when_it_elapses() {
    let rt = rt();
    rt.block_on(async {
        let c = Counters::default();
        let out = child(c.clone(), None, ())
            .timeout(Duration::from_millis(1))
            .await;
        assert!(out.is_err());
        assert_eq!(c.dropped(), 1);
        assert_eq!(c.completed(), 0);

        let out = child(c.clone(), Some(3), 5)
            .timeout(Duration::from_secs(60))
            .await;
        assert_eq!(out, Ok(5));
        assert_eq!(c.completed(), 1);
        assert_eq!(c.dropped(), 2);
    });
}

#[test]
fn delay_completes() {
    let rt = rt();
    let v = rt.block_on(delay(Duration::from_millis(2)).map(|()| "done"));
    assert_eq!(v, "done");
}

// ---------------------------------------------------------------------------------------
// promisify / callbackify

/// A callback API that answers from another thread, a millisecond later.
fn on_thread(v: Result<u32, String>, cb: impl Callback<u32, String>) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1));
        cb.call(v);
    });
}

#[test]
fn promisify_a_callback_called_from_another_thread() {
    let rt = rt();
    rt.block_on(async {
        assert_eq!(promisify(|done| on_thread(Ok(5), done)).await, Ok(5));
        assert_eq!(
            promisify(|done| on_thread(Err("bad".into()), done)).await,
            Err("bad".to_string())
        );
        // Many at once, in one task.
        let many: Vec<_> = (0..20)
            .map(|i| promisify(move |done| on_thread(Ok(i), done)))
            .collect();
        assert_eq!(all(many).await.unwrap(), (0..20).collect::<Vec<_>>());
    });
}

#[test]
fn promisify_a_callback_called_from_defer() {
    let rt = rt();
    let handle = rt.handle().clone();
    let out = rt.block_on(async move {
        let h = handle.clone();
        let a = promisify::<u32, (), _>(move |r| h.defer(move || r.resolve(9))).await;
        let b = promisify::<u32, &str, _>(move |r| handle.defer(move || r.reject("no"))).await;
        (a, b)
    });
    assert_eq!(out, (Ok(9), Err("no")));
}

#[test]
fn promisify_a_callback_called_at_once() {
    let rt = rt();
    let out = rt.block_on(promisify::<_, (), _>(|r| r.call(Ok("sync"))));
    assert_eq!(out, Ok("sync"));
}

#[test]
fn promisify_panics_when_the_resolver_is_dropped_uncalled() {
    let rt = rt();
    rt.block_on(async {
        // Dropped at once.
        let lost = weft_runtime::spawn(promisify::<u32, (), _>(drop));
        let err = lost.await.unwrap_err();
        assert!(err.is_panic());
        assert!(panic_message(err).contains("dropped without being called"));

        // Dropped on another thread while the future waits.
        let lost_later = weft_runtime::spawn(promisify::<u32, (), _>(|r| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1));
                drop(r);
            });
        }));
        assert!(lost_later.await.unwrap_err().is_panic());
    });
}

#[test]
fn callbackify_delivers_ok_and_err() {
    let rt = rt();
    let (tx, rx) = mpsc::channel();
    let (tx2, tx3) = (tx.clone(), tx.clone());
    rt.block_on(async move {
        callbackify(ready_after_one(Ok::<u32, String>(1)), move |r| {
            tx.send(r).unwrap()
        });
        callbackify(
            async {
                yield_then(2, ()).await;
                Err("failed".to_string())
            },
            move |r: Result<u32, String>| tx2.send(r).unwrap(),
        )
        .await
        .unwrap();
        // A promisified callback API, round-tripped back to a callback.
        callbackify(promisify(|done| on_thread(Ok(3), done)), move |r| {
            tx3.send(r).unwrap()
        });
    });
    let mut got: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec![Ok(1), Ok(3), Err("failed".to_string())]);
}

#[test]
fn callbackify_aborted_never_calls_back() {
    let rt = rt();
    let (tx, rx) = mpsc::channel::<Result<(), ()>>();
    rt.block_on(async move {
        let h = callbackify(std::future::pending::<Result<(), ()>>(), move |r| {
            tx.send(r).unwrap()
        });
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
    });
    // The callback (and its sender) was dropped with the task, uncalled.
    assert!(rx.recv_timeout(Duration::from_secs(10)).is_err());
}
