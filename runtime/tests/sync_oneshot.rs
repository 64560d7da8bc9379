//! `sync::oneshot`: delivery, closing from either side, `try_recv` states, use from plain
//! threads and other executors, and drop counting.

mod common;

use common::{DropLog, Payload, block_on_plain, hang_guard, poll_once, scaled, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::oneshot::{self, error::TryRecvError};

fn rt2() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn value_crosses_workers() {
    hang_guard();
    let rt = rt2();
    let v = watchdog("oneshot across workers", move || {
        rt.block_on(async {
            let (tx, rx) = oneshot::channel();
            weft_runtime::spawn(async move { tx.send(String::from("hi")).unwrap() });
            rx.await.unwrap()
        })
    });
    assert_eq!(v, "hi");
}

#[test]
fn sender_dropped_without_sending_fails_receiver() {
    hang_guard();
    let (tx, rx) = oneshot::channel::<u8>();
    let t = std::thread::spawn(move || drop(tx));
    assert!(block_on_plain(rx).is_err());
    t.join().unwrap();
}

#[test]
fn send_after_receiver_dropped_returns_the_value() {
    let (tx, rx) = oneshot::channel();
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(5), Err(5));
}

#[test]
fn try_recv_reports_empty_then_value_then_closed() {
    let (tx, mut rx) = oneshot::channel();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn close_keeps_a_value_sent_before_and_refuses_later_sends() {
    let (tx, mut rx) = oneshot::channel();
    tx.send(3).unwrap();
    rx.close();
    assert_eq!(rx.try_recv(), Ok(3));

    let (tx, mut rx) = oneshot::channel();
    rx.close();
    assert_eq!(tx.send(4), Err(4));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn closed_wakes_when_receiver_goes() {
    hang_guard();
    let rt = rt2();
    watchdog("sender closed()", move || {
        rt.block_on(async {
            let (mut tx, rx) = oneshot::channel::<u8>();
            let h = weft_runtime::spawn(async move {
                tx.closed().await;
                tx.is_closed()
            });
            weft_runtime::task::yield_now().await;
            drop(rx);
            assert!(h.await.unwrap());
        })
    });
}

#[test]
fn pending_receiver_is_woken_by_a_plain_thread() {
    hang_guard();
    let (tx, mut rx) = oneshot::channel();
    assert!(poll_once(&mut rx).is_pending());
    let t = std::thread::spawn(move || tx.send(9).unwrap());
    assert_eq!(block_on_plain(rx), Ok(9));
    t.join().unwrap();
}

#[test]
fn blocking_recv_on_a_plain_thread_from_a_task() {
    hang_guard();
    let rt = rt2();
    let (tx, rx) = oneshot::channel();
    rt.spawn(async move { tx.send(11u32).unwrap() });
    let v = watchdog("blocking_recv", move || rx.blocking_recv());
    assert_eq!(v, Ok(11));
}

#[test]
fn every_value_dropped_once_whatever_the_receiver_does() {
    hang_guard();
    let n = scaled(20_000, 200);
    let log = DropLog::new(n);
    let rt = rt2();
    let l = log.clone();
    watchdog("oneshot drop counting", move || {
        rt.block_on(async move {
            let mut handles = Vec::new();
            for i in 0..n {
                let (tx, mut rx) = oneshot::channel();
                let p = Payload::new(&l, i);
                handles.push(weft_runtime::spawn(async move {
                    let _ = tx.send(p);
                }));
                match i % 3 {
                    0 => drop(rx),       // dropped, maybe with the value queued
                    1 => drop(rx.await), // received
                    _ => {
                        rx.close(); // closed: the send may fail
                        let _ = rx.try_recv();
                    }
                }
            }
            for h in handles {
                h.await.unwrap();
            }
        })
    });
    log.assert_each_once();
}

#[test]
fn request_reply_between_workers() {
    hang_guard();
    let rounds = scaled(10_000, 100);
    let rt = rt2();
    let total = watchdog("oneshot request/reply", move || {
        rt.block_on(async move {
            let (req_tx, mut req_rx) =
                weft_runtime::sync::mpsc::unbounded_channel::<(usize, oneshot::Sender<usize>)>();
            let server = weft_runtime::spawn(async move {
                while let Some((v, reply)) = req_rx.recv().await {
                    reply.send(v * 2).unwrap();
                }
            });
            let mut sum = 0;
            for i in 0..rounds {
                let (tx, rx) = oneshot::channel();
                req_tx.send((i, tx)).unwrap();
                sum += rx.await.unwrap();
            }
            drop(req_tx);
            server.await.unwrap();
            sum
        })
    });
    assert_eq!(total, rounds * (rounds - 1));
}

#[test]
fn works_on_another_executor() {
    hang_guard();
    let (tx, rx) = oneshot::channel();
    let t = std::thread::spawn(move || block_on_plain(async move { tx.send(1u8).unwrap() }));
    assert_eq!(block_on_plain(rx), Ok(1));
    t.join().unwrap();
}
