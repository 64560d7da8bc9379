//! `sync::watch`: change detection (`changed`, `has_changed`, `borrow` vs
//! `borrow_and_update`), coalescing, closing from either side, `send_if_modified`.

mod common;

use common::{block_on_plain, hang_guard, poll_once, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::watch;

#[test]
fn changed_sees_each_new_value_once() {
    let (tx, mut rx) = watch::channel(0);
    assert_eq!(rx.has_changed(), Ok(false));
    assert!(poll_once(&mut Box::pin(rx.changed())).is_pending());
    tx.send(1).unwrap();
    assert_eq!(rx.has_changed(), Ok(true));
    assert!(rx.borrow().has_changed());
    assert_eq!(rx.has_changed(), Ok(true), "borrow marked the value seen");
    {
        let r = rx.borrow_and_update();
        assert_eq!(*r, 1);
        assert!(r.has_changed());
    }
    assert_eq!(rx.has_changed(), Ok(false));
    tx.send(2).unwrap();
    tx.send(3).unwrap();
    assert!(block_on_plain(rx.changed()).is_ok());
    assert_eq!(*rx.borrow(), 3, "sends coalesce to the latest");
    assert!(poll_once(&mut Box::pin(rx.changed())).is_pending());
}

#[test]
fn a_pending_changed_is_woken_by_a_send() {
    hang_guard();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    watchdog("watch wake", move || {
        rt.block_on(async {
            let (tx, mut rx) = watch::channel(0u64);
            let h = weft_runtime::spawn(async move {
                let mut last = 0;
                while rx.changed().await.is_ok() {
                    let v = *rx.borrow_and_update();
                    assert!(v > last, "values go forward");
                    last = v;
                }
                last
            });
            for i in 1..=1000 {
                tx.send(i).unwrap();
                if i % 10 == 0 {
                    weft_runtime::task::yield_now().await;
                }
            }
            drop(tx);
            assert_eq!(h.await.unwrap(), 1000);
        })
    });
}

#[test]
fn sender_drop_ends_changed_after_the_unseen_value() {
    let (tx, mut rx) = watch::channel(0);
    tx.send(5).unwrap();
    drop(tx);
    assert!(block_on_plain(rx.changed()).is_ok());
    assert_eq!(*rx.borrow(), 5);
    assert!(block_on_plain(rx.changed()).is_err());
    assert!(rx.has_changed().is_err());
}

#[test]
fn send_without_receivers_fails_but_send_replace_stores() {
    hang_guard();
    let (tx, rx) = watch::channel(1);
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(2).unwrap_err().0, 2);
    assert_eq!(*tx.borrow(), 1);
    assert_eq!(tx.send_replace(3), 1);
    let mut rx = tx.subscribe();
    assert_eq!(
        rx.has_changed(),
        Ok(false),
        "subscribe counts the current value seen"
    );
    assert_eq!(*rx.borrow(), 3);
    assert_eq!(tx.receiver_count(), 1);
    let mut closed = Box::pin(tx.closed());
    assert!(poll_once(&mut closed).is_pending());
    rx.mark_changed();
    assert_eq!(rx.has_changed(), Ok(true));
    drop(rx);
    assert!(poll_once(&mut closed).is_ready());
}

#[test]
fn send_if_modified_notifies_only_on_true() {
    let (tx, mut rx) = watch::channel(vec![1]);
    assert!(!tx.send_if_modified(|v| {
        v.push(0);
        v.pop();
        false
    }));
    assert_eq!(rx.has_changed(), Ok(false));
    tx.send_modify(|v| v.push(2));
    assert_eq!(rx.has_changed(), Ok(true));
    let got = block_on_plain(async { rx.wait_for(|v| v.len() == 2).await.map(|r| r.clone()) });
    assert_eq!(got.unwrap(), vec![1, 2]);
}
