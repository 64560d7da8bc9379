//! A panic in a user's waker never crosses a worker: wakers fired by the timer wheel, by a
//! ring completion (or the blocking pool, under the fallback driver) and by a completing
//! task's `JoinHandle` run under `catch_unwind`. With one worker, a worker killed by such a
//! panic would leave every later task unrun and the runtime's drop waiting for it. The same
//! holds for the process-wide readiness thread that wakes signal listeners.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{wait_until, watchdog_within};
use weft_runtime::Runtime;

/// A waker that counts its wakes and then panics.
struct PanickingWaker(AtomicUsize);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
        panic!("[expected] a user waker panicked");
    }
}

fn panicking_waker() -> (Arc<PanickingWaker>, Waker) {
    let p = Arc::new(PanickingWaker(AtomicUsize::new(0)));
    (p.clone(), Waker::from(p))
}

/// Polls `fut` once with `waker` (a hand-written future's choice of waker).
fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// One worker, so that a worker killed by the panic would stop everything.
fn one_worker() -> Runtime {
    common::quiet_expected_panics();
    Runtime::builder().worker_threads(1).build().unwrap()
}

/// The runtime still runs tasks on its (only) worker, including timers.
fn still_runs(rt: &Runtime) {
    let sum = rt.block_on(async {
        let hs: Vec<_> = (0..16u64)
            .map(|i| {
                weft_runtime::spawn(async move {
                    weft_runtime::time::sleep(Duration::from_millis(1)).await;
                    i
                })
            })
            .collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 120);
}

#[test]
fn timer_waker_panic_leaves_the_worker_running() {
    common::hang_guard();
    watchdog_within("timer waker panic", Duration::from_secs(20), || {
        let rt = one_worker();
        let (p, waker) = panicking_waker();
        // Registered from a task, so on the worker's wheel; forgotten, so that the entry
        // stays and fires with the panicking waker.
        rt.block_on(async move {
            weft_runtime::spawn(async move {
                let mut s = weft_runtime::time::sleep(Duration::from_millis(2));
                assert!(poll_with(&mut s, &waker).is_pending());
                std::mem::forget(s);
            })
            .await
            .unwrap();
        });
        wait_until("the timer's waker fired", || p.0.load(SeqCst) == 1);
        still_runs(&rt);
        drop(rt);
    });
}

#[test]
fn join_waker_panic_leaves_the_worker_running() {
    common::hang_guard();
    watchdog_within("join waker panic", Duration::from_secs(20), || {
        let rt = one_worker();
        let (p, waker) = panicking_waker();
        let gate = common::Signal::new();
        let mut h = rt.spawn({
            let gate = gate.clone();
            async move {
                gate.wait().await;
                7
            }
        });
        // The handle's waker is the panicking one when the task completes, on the worker.
        assert!(poll_with(&mut h, &waker).is_pending());
        gate.fire();
        wait_until("the join waker fired", || p.0.load(SeqCst) == 1);
        still_runs(&rt);
        // The output is still there for the handle.
        assert_eq!(rt.block_on(h).unwrap(), 7);
        drop(rt);
    });
}

#[test]
fn file_read_waker_panic_leaves_the_worker_running() {
    common::hang_guard();
    watchdog_within("file read waker panic", Duration::from_secs(20), || {
        let rt = one_worker();
        let path = std::env::temp_dir().join(format!(
            "weft-waker-panic-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, b"hello, ring").unwrap();
        let (p, waker) = panicking_waker();
        let read = rt.block_on({
            let path = path.clone();
            async move {
                weft_runtime::spawn(async move {
                    let file = weft_runtime::fs::File::open(&path).await.unwrap();
                    // Submitted on the worker's ring (on the blocking pool under the
                    // fallback), first polled with the panicking waker: the completion
                    // wakes it, on the worker that reaps the ring.
                    let mut read = Box::pin(file.read_at(vec![0; 16], 0));
                    assert!(poll_with(&mut read, &waker).is_pending());
                    while p.0.load(SeqCst) == 0 {
                        weft_runtime::time::sleep(Duration::from_millis(1)).await;
                    }
                    let (n, buf) = read.await;
                    let n = n.unwrap();
                    drop(file);
                    buf[..n].to_vec()
                })
                .await
                .unwrap()
            }
        });
        assert_eq!(read, b"hello, ring");
        still_runs(&rt);
        drop(rt);
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn signal_listener_waker_panic_leaves_the_poller_running() {
    use weft_runtime::signal::unix::{SignalKind, signal};
    common::hang_guard();
    watchdog_within("signal waker panic", Duration::from_secs(20), || {
        let rt = one_worker();
        let (p, waker) = panicking_waker();
        // SIGURG (default: ignored): nothing else in this binary raises it.
        let kind = SignalKind::from_raw(libc::SIGURG);
        let raise = || {
            // SAFETY: sends SIGURG to this process, which has a handler for it by now.
            unsafe { libc::raise(libc::SIGURG) };
        };
        rt.block_on(async move {
            let mut first = signal(kind).unwrap();
            // Woken (and panicking) on the process-wide readiness thread.
            assert!(poll_with(&mut Box::pin(first.recv()), &waker).is_pending());
            raise();
            wait_until("the listener's waker fired", || p.0.load(SeqCst) == 1);
            // The thread still dispatches signals.
            let mut second = signal(kind).unwrap();
            let mut recv = Box::pin(second.recv());
            let mut raised = false;
            // Raised only once `recv` waits, so that only the thread's dispatch can end it.
            let got = std::future::poll_fn(|cx| {
                let r = recv.as_mut().poll(cx);
                if r.is_pending() && !std::mem::replace(&mut raised, true) {
                    raise();
                }
                r
            })
            .await;
            assert_eq!(got, Some(()));
            drop(first);
        });
        drop(rt);
    });
}
