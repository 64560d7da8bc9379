//! weft::time on a worker's own wheel, where a `Sleep` registers without a lock and the
//! worker files the registration after the poll: what is registered, moved, polled again or
//! dropped before it is filed behaves as a timer filed at once — on the worker, on another
//! worker, and on a thread outside any runtime.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{hang_guard, wait_until, watchdog};
use weft_runtime::time::{self, Sleep};
use weft_runtime::Runtime;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// Counts its wakes; its `Arc`'s strong count says how many wakers are still held.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counter() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

#[test]
fn sleeps_registered_and_dropped_in_one_poll_release_every_waker() {
    hang_guard();
    let rt = rt(2);
    let (count, waker) = counter();
    rt.block_on(rt.spawn(async move {
        let mut cx = Context::from_waker(&waker);
        // More than one batch of reserved keys, so that some are filed during the poll.
        let mut sleeps: Vec<Sleep> = (0..1_000)
            .map(|_| time::sleep(Duration::from_secs(60)))
            .collect();
        for s in &mut sleeps {
            assert!(Pin::new(s).poll(&mut cx).is_pending());
        }
        drop(sleeps);
    }))
    .unwrap();
    // The worker applies the cancels when the poll returns, which may be just after the
    // join handle saw the task finish.
    wait_until("every waker is released", || Arc::strong_count(&count) == 1);
    assert_eq!(count.0.load(SeqCst), 0, "a cancelled timer fired");
}

#[test]
fn a_sleep_moved_in_the_poll_that_registered_it_wakes_at_the_new_deadline() {
    hang_guard();
    let woke = watchdog("reset before filing", || {
        let rt = rt(2);
        rt.block_on(rt.spawn(async {
            let start = Instant::now();
            let deadline = start + Duration::from_millis(3);
            let mut sleep = time::sleep(Duration::from_secs(60));
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                if polls == 1 {
                    assert!(Pin::new(&mut sleep).poll(cx).is_pending());
                    // Moved before the worker filed it, and not polled again: the waker of
                    // the registration must fire at the new deadline.
                    Pin::new(&mut sleep).reset(deadline);
                    return Poll::Pending;
                }
                match Pin::new(&mut sleep).poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Instant::now()),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
                >= deadline
        }))
        .unwrap()
    });
    assert!(woke, "completed before the new deadline");
}

#[test]
fn a_sleep_registered_on_a_worker_and_dropped_outside_the_runtime_is_cancelled() {
    hang_guard();
    let rt = rt(2);
    let (count, waker) = counter();
    let sleep = rt
        .block_on(rt.spawn(async move {
            let mut sleep = time::sleep(Duration::from_secs(60));
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
            (sleep,)
        }))
        .unwrap()
        .0;
    // Filed by the worker after the poll.
    wait_until("the timer is filed", || Arc::strong_count(&count) == 2);
    // Dropped on a thread that is in no runtime and parks no wheel.
    std::thread::spawn(move || drop(sleep)).join().unwrap();
    assert_eq!(
        Arc::strong_count(&count),
        1,
        "the wheel still holds the waker"
    );
    drop(rt);
    assert_eq!(count.0.load(SeqCst), 0);
}

#[test]
fn a_sleep_registered_on_one_worker_completes_when_polled_on_the_other() {
    hang_guard();
    watchdog("moved between workers", || {
        let rt = rt(2);
        for _ in 0..50 {
            let (_count, waker) = counter();
            let (sleep, deadline) = rt
                .block_on(rt.spawn(async move {
                    let deadline = Instant::now() + Duration::from_millis(1);
                    let mut sleep = time::sleep_until(deadline);
                    let mut cx = Context::from_waker(&waker);
                    assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
                    (sleep, deadline)
                }))
                .unwrap();
            // Awaited by another task, wherever it runs: its waker replaces the first.
            let done = rt.block_on(rt.spawn(async move {
                sleep.await;
                Instant::now()
            }));
            assert!(done.unwrap() >= deadline, "completed early");
        }
    });
}

#[test]
fn a_sleep_is_no_larger_than_before_owned_registration() {
    // The deadline (16 bytes) and where the timer is filed (40: a handle and a key, or a
    // wheel id and a key), completion folded into the latter; see `time.rs`, "Precision".
    assert!(
        std::mem::size_of::<Sleep>() <= 56,
        "Sleep is {} bytes",
        std::mem::size_of::<Sleep>()
    );
}
