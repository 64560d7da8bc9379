//! `sync::Notify`: the stored permit, FIFO `notify_one`, `notify_waiters` reaching every
//! `Notified` created before it (polled or not) and no later one, a picked waiter dropped
//! before completing passing the notification on, and wake-ups across workers.

mod common;

use std::sync::Arc;

use common::{hang_guard, poll_once, scaled, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::Notify;

#[test]
fn notify_one_without_waiters_stores_one_permit() {
    let n = Notify::new();
    n.notify_one();
    n.notify_one();
    let mut a = Box::pin(n.notified());
    let mut b = Box::pin(n.notified());
    assert!(poll_once(&mut a).is_ready());
    assert!(
        poll_once(&mut b).is_pending(),
        "two notify_one stored two permits"
    );
}

#[test]
fn notify_one_wakes_waiters_in_arrival_order() {
    let n = Notify::new();
    let mut ws: Vec<_> = (0..3).map(|_| Box::pin(n.notified())).collect();
    for w in &mut ws {
        assert!(poll_once(w).is_pending());
    }
    for i in 0..3 {
        n.notify_one();
        assert!(poll_once(&mut ws[i]).is_ready(), "waiter {i} not woken");
        for later in &mut ws[i + 1..] {
            assert!(poll_once(later).is_pending());
        }
    }
}

#[test]
fn notify_waiters_reaches_unpolled_notified_but_not_later_ones() {
    let n = Notify::new();
    let mut polled = Box::pin(n.notified());
    assert!(poll_once(&mut polled).is_pending());
    let mut unpolled = Box::pin(n.notified());
    n.notify_waiters();
    let mut later = Box::pin(n.notified());
    assert!(poll_once(&mut polled).is_ready());
    assert!(poll_once(&mut unpolled).is_ready());
    assert!(
        poll_once(&mut later).is_pending(),
        "notify_waiters stored a permit"
    );
}

#[test]
fn a_picked_waiter_dropped_before_completing_passes_the_notification_on() {
    let n = Notify::new();
    let mut a = Box::pin(n.notified());
    let mut b = Box::pin(n.notified());
    assert!(poll_once(&mut a).is_pending());
    assert!(poll_once(&mut b).is_pending());
    n.notify_one(); // picks `a`
    drop(a);
    assert!(poll_once(&mut b).is_ready());

    // With nobody else waiting, it becomes the stored permit.
    let mut c = Box::pin(n.notified());
    assert!(poll_once(&mut c).is_pending());
    n.notify_one();
    drop(c);
    assert!(poll_once(&mut Box::pin(n.notified())).is_ready());
}

#[test]
fn a_waiter_dropped_while_queued_does_not_swallow_later_notifications() {
    let n = Notify::new();
    let mut a = Box::pin(n.notified());
    assert!(poll_once(&mut a).is_pending());
    drop(a);
    n.notify_one();
    assert!(poll_once(&mut Box::pin(n.notified())).is_ready());
}

#[test]
fn ping_pong_across_two_workers() {
    hang_guard();
    let rounds = scaled(20_000, 200);
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    watchdog("notify ping-pong", move || {
        rt.block_on(async move {
            let ping = Arc::new(Notify::new());
            let pong = Arc::new(Notify::new());
            let (pi, po) = (ping.clone(), pong.clone());
            let other = weft_runtime::spawn(async move {
                for _ in 0..rounds {
                    pi.notified().await;
                    po.notify_one();
                }
            });
            for _ in 0..rounds {
                ping.notify_one();
                pong.notified().await;
            }
            other.await.unwrap();
        })
    });
}

#[test]
fn enable_queues_the_waiter_for_notify_one() {
    let n = Notify::new();
    let mut a = Box::pin(n.notified());
    assert!(!a.as_mut().enable());
    n.notify_one();
    // The notification went to `a`, not into a stored permit.
    assert!(poll_once(&mut Box::pin(n.notified())).is_pending());
    assert!(poll_once(&mut a).is_ready());
}
