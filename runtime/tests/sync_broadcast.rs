//! `sync::broadcast`: every receiver sees every value, a lagging receiver gets
//! `Lagged(n)` and continues from the oldest value held, closing, and 16 receivers on two
//! workers.

mod common;

use common::{block_on_plain, hang_guard, poll_once, scaled, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::broadcast::{self, error::RecvError, error::TryRecvError};

#[test]
fn every_receiver_gets_every_value_in_order() {
    let (tx, mut a) = broadcast::channel(16);
    let mut b = tx.subscribe();
    for i in 0..10 {
        assert_eq!(tx.send(i).unwrap(), 2);
    }
    for i in 0..10 {
        assert_eq!(a.try_recv(), Ok(i));
        assert_eq!(b.try_recv(), Ok(i));
    }
    assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_lagging_receiver_is_told_how_many_it_missed() {
    let (tx, mut rx) = broadcast::channel(4);
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 10);
    assert_eq!(block_on_plain(rx.recv()), Err(RecvError::Lagged(6)));
    for i in 6..10 {
        assert_eq!(block_on_plain(rx.recv()), Ok(i));
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn closed_after_the_last_sender_once_drained() {
    let (tx, mut rx) = broadcast::channel(4);
    let tx2 = tx.clone();
    tx.send(1).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let mut pending = Box::pin(rx.recv());
    assert!(poll_once(&mut pending).is_pending());
    drop(tx2);
    assert!(matches!(
        poll_once(&mut pending),
        std::task::Poll::Ready(Err(RecvError::Closed))
    ));
}

#[test]
fn send_without_receivers_fails_and_subscribers_see_only_later_values() {
    let (tx, rx) = broadcast::channel(4);
    drop(rx);
    assert_eq!(tx.send(1).unwrap_err().0, 1);
    let mut late = tx.subscribe();
    tx.send(2).unwrap();
    assert_eq!(late.try_recv(), Ok(2));
    let mut again = late.resubscribe();
    assert_eq!(again.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(tx.receiver_count(), 2);
}

#[test]
fn sixteen_receivers_on_two_workers() {
    hang_guard();
    let n = scaled(20_000, 200) as u64;
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    watchdog("broadcast 16", move || {
        rt.block_on(async move {
            let (tx, rx) = broadcast::channel::<u64>(n as usize);
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let mut rx = rx.resubscribe();
                    weft_runtime::spawn(async move {
                        let mut sum = 0u64;
                        loop {
                            match rx.recv().await {
                                Ok(v) => sum += v,
                                Err(RecvError::Closed) => return sum,
                                Err(RecvError::Lagged(k)) => panic!("lagged {k} with room for all"),
                            }
                        }
                    })
                })
                .collect();
            drop(rx);
            for i in 0..n {
                tx.send(i).unwrap();
            }
            drop(tx);
            for t in tasks {
                assert_eq!(t.await.unwrap(), n * (n - 1) / 2);
            }
        })
    });
}
