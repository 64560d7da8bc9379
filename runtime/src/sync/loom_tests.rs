//! loom models of the wake paths of `oneshot`, `mpsc` and `Notify`.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p weft-runtime --release --lib loom`
//! (`ci/loom.sh`). Under `cfg(loom)` the primitives' atomics, `Arc`, locks and (for
//! `oneshot`) cells are loom's, so each model explores every interleaving of a send or
//! notify against a receiver registering its waker, and fails on a lost wake-up (the
//! `block_on` below would deadlock, which loom reports), an unsynchronised cell access, or a
//! value dropped other than once.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;

use super::{Notify, mpsc, oneshot};

/// Polls `f` to completion on this loom thread, parking between polls; the waker unparks.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn loom_oneshot_send_wakes_receiver() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<usize>();
        let t = thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(block_on(rx), Ok(7));
        t.join().unwrap();
    });
}

#[test]
fn loom_oneshot_sender_drop_wakes_receiver() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<usize>();
        let t = thread::spawn(move || drop(tx));
        assert!(block_on(rx).is_err());
        t.join().unwrap();
    });
}

#[test]
fn loom_oneshot_close_races_send() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = oneshot::channel::<Counted>();
        let d = drops.clone();
        let t = thread::spawn(move || {
            let _ = tx.send(Counted(d));
        });
        rx.close();
        let got = rx.try_recv();
        drop(got);
        drop(rx);
        t.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn loom_oneshot_receiver_drop_wakes_closed() {
    loom::model(|| {
        let (mut tx, rx) = oneshot::channel::<usize>();
        let t = thread::spawn(move || drop(rx));
        block_on(tx.closed());
        assert!(tx.is_closed());
        t.join().unwrap();
    });
}

#[test]
fn loom_mpsc_two_senders_then_close() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
        let tx2 = tx.clone();
        let a = thread::spawn(move || tx.send(1).unwrap());
        let b = thread::spawn(move || tx2.send(2).unwrap());
        let sum = block_on(async {
            let mut sum = 0;
            while let Some(v) = rx.recv().await {
                sum += v;
            }
            sum
        });
        assert_eq!(sum, 3);
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn loom_mpsc_bounded_sender_waits_for_slot() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::channel::<usize>(1);
        let t = thread::spawn(move || {
            block_on(async {
                tx.send(1).await.unwrap();
                tx.send(2).await.unwrap();
            })
        });
        let got = block_on(async { (rx.recv().await, rx.recv().await, rx.recv().await) });
        assert_eq!(got, (Some(1), Some(2), None));
        t.join().unwrap();
    });
}

#[test]
fn loom_mpsc_receiver_drop_drops_queued_once() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel::<Counted>();
        let d = drops.clone();
        let t = thread::spawn(move || {
            let _ = tx.send(Counted(d));
        });
        drop(rx);
        t.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn loom_notify_one_wakes_waiter() {
    loom::model(|| {
        let notify = Arc::new(Notify::new());
        let n2 = notify.clone();
        let t = thread::spawn(move || n2.notify_one());
        block_on(notify.notified());
        t.join().unwrap();
    });
}

#[test]
fn loom_notify_waiters_reaches_created_notified() {
    loom::model(|| {
        let notify = Arc::new(Notify::new());
        let flag = Arc::new(AtomicUsize::new(0));
        let (n2, f2) = (notify.clone(), flag.clone());
        let t = thread::spawn(move || {
            f2.store(1, SeqCst);
            n2.notify_waiters();
        });
        block_on(async {
            loop {
                let n = notify.notified();
                if flag.load(SeqCst) == 1 {
                    break;
                }
                n.await;
            }
        });
        t.join().unwrap();
    });
}

#[test]
fn loom_notify_one_passed_on_by_dropped_waiter() {
    loom::model(|| {
        let notify = Arc::new(Notify::new());
        let n2 = notify.clone();
        // Two waiters, one notification; the first waiter is dropped while queued. Unless
        // it took the notification on its first poll, the second must complete.
        let t = thread::spawn(move || n2.notify_one());
        let mut first = Box::pin(notify.notified());
        let waker = futures_noop_waker();
        let polled = first
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
        let second = notify.notified();
        drop(first);
        if polled.is_pending() {
            block_on(second);
        }
        t.join().unwrap();
    });
}

fn futures_noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}

use std::future::Future;
