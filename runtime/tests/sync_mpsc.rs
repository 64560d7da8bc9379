//! `sync::mpsc`: ordering, many producers across workers, closing from either side,
//! capacity and permits, `recv_many`, plain-thread use, the cooperative budget, and drop
//! counting of values left in a dropped receiver.

mod common;

use std::sync::Arc;

use common::{DropLog, Flag, Payload, block_on_plain, hang_guard, poll_once, scaled, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

#[test]
fn one_producer_keeps_order_bounded_and_unbounded() {
    hang_guard();
    let n = scaled(100_000, 1000);
    let rt = rt(2);
    watchdog("mpsc order", move || {
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel(64);
            weft_runtime::spawn(async move {
                for i in 0..n {
                    tx.send(i).await.unwrap();
                }
            });
            for i in 0..n {
                assert_eq!(rx.recv().await, Some(i));
            }
            assert_eq!(rx.recv().await, None);

            let (tx, mut rx) = mpsc::unbounded_channel();
            weft_runtime::spawn(async move {
                for i in 0..n {
                    tx.send(i).unwrap();
                }
            });
            for i in 0..n {
                assert_eq!(rx.recv().await, Some(i));
            }
            assert_eq!(rx.recv().await, None);
        })
    });
}

#[test]
fn eight_producers_across_two_workers_deliver_everything_in_per_producer_order() {
    hang_guard();
    let per = scaled(20_000, 200);
    let rt = rt(2);
    watchdog("mpsc 8 producers", move || {
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel::<(usize, usize)>(128);
            for p in 0..8 {
                let tx = tx.clone();
                weft_runtime::spawn(async move {
                    for i in 0..per {
                        tx.send((p, i)).await.unwrap();
                    }
                });
            }
            drop(tx);
            let mut next = [0usize; 8];
            while let Some((p, i)) = rx.recv().await {
                assert_eq!(next[p], i, "producer {p} out of order");
                next[p] += 1;
            }
            assert!(next.iter().all(|&c| c == per));
        })
    });
}

#[test]
fn dropped_receiver_drops_each_queued_value_once() {
    hang_guard();
    let n = scaled(10_000, 100);
    for bounded in [false, true] {
        let log = DropLog::new(n);
        let rt = rt(2);
        let l = log.clone();
        watchdog("mpsc drop counting", move || {
            rt.block_on(async move {
                if bounded {
                    let (tx, mut rx) = mpsc::channel(n);
                    for i in 0..n {
                        tx.send(Payload::new(&l, i)).await.unwrap();
                    }
                    // Take some so both of the receiver's buffers hold values.
                    for _ in 0..n / 3 {
                        drop(rx.recv().await);
                    }
                    drop(rx);
                    assert!(tx.is_closed());
                } else {
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    for i in 0..n {
                        tx.send(Payload::new(&l, i)).unwrap();
                    }
                    for _ in 0..n / 3 {
                        drop(rx.recv().await);
                    }
                    drop(rx);
                    assert!(tx.is_closed());
                }
            })
        });
        log.assert_each_once();
    }
}

#[test]
fn send_after_receiver_close_returns_the_value_and_queued_ones_still_arrive() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tx.send(1).unwrap();
    rx.close();
    assert_eq!(tx.send(2).unwrap_err().0, 2);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

    let (tx, mut rx) = mpsc::channel(4);
    tx.try_send(1).unwrap();
    rx.close();
    assert!(matches!(tx.try_send(2), Err(TrySendError::Closed(2))));
    assert_eq!(rx.blocking_recv(), Some(1));
    assert_eq!(rx.blocking_recv(), None);
}

#[test]
fn receiver_sees_none_only_after_the_last_sender_goes() {
    let (tx, mut rx) = mpsc::unbounded_channel::<u8>();
    let tx2 = tx.clone();
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx2.send(1).unwrap();
    drop(tx2);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn bounded_capacity_permits_and_full() {
    let (tx, mut rx) = mpsc::channel(2);
    assert_eq!(tx.capacity(), 2);
    assert_eq!(tx.max_capacity(), 2);
    let permit = tx.try_reserve().unwrap();
    tx.try_send(1).unwrap();
    assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
    assert_eq!(tx.capacity(), 0);
    permit.send(0);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(tx.capacity(), 1);
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(tx.capacity(), 2);
    // A reserved slot given back unused frees it.
    let p = tx.try_reserve().unwrap();
    assert_eq!(tx.capacity(), 1);
    drop(p);
    assert_eq!(tx.capacity(), 2);
}

#[test]
fn blocked_sender_fails_when_the_receiver_closes() {
    hang_guard();
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(1).unwrap();
    let mut send = Box::pin(tx.send(2));
    assert!(poll_once(&mut send).is_pending());
    rx.close();
    let r = block_on_plain(send);
    assert_eq!(r.unwrap_err().0, 2);
}

#[test]
fn blocked_senders_are_served_in_order() {
    let (tx, mut rx) = mpsc::channel(1);
    tx.try_send(0).unwrap();
    let mut sends: Vec<_> = (1..=3).map(|i| Box::pin(tx.send(i))).collect();
    for s in &mut sends {
        assert!(poll_once(s).is_pending());
    }
    for (i, send) in sends.iter_mut().enumerate() {
        assert_eq!(rx.try_recv(), Ok(i));
        // The freed slot went to the oldest blocked sender.
        assert!(poll_once(send).is_ready());
    }
    assert_eq!(rx.try_recv(), Ok(3));
}

#[test]
fn recv_many_takes_up_to_the_limit() {
    hang_guard();
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    let mut buf = Vec::new();
    assert_eq!(block_on_plain(rx.recv_many(&mut buf, 4)), 4);
    assert_eq!(block_on_plain(rx.recv_many(&mut buf, 100)), 6);
    assert_eq!(buf, (0..10).collect::<Vec<_>>());
    assert_eq!(block_on_plain(rx.recv_many(&mut buf, 0)), 0);
    drop(tx);
    assert_eq!(block_on_plain(rx.recv_many(&mut buf, 4)), 0);
}

#[test]
fn plain_threads_send_and_receive_with_blocking_calls() {
    hang_guard();
    let n = scaled(20_000, 200);
    let rt = rt(2);
    watchdog("mpsc blocking", move || {
        let (tx, mut rx) = mpsc::channel::<usize>(8);
        let (back_tx, mut back_rx) = mpsc::channel::<usize>(8);
        // A task relays what plain threads send.
        rt.spawn(async move {
            while let Some(v) = rx.recv().await {
                back_tx.send(v).await.unwrap();
            }
        });
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        tx.blocking_send(i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut sum = 0;
        while let Some(v) = back_rx.blocking_recv() {
            sum += v;
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(sum, n * (n - 1));
    });
}

#[test]
fn closed_resolves_when_the_receiver_goes() {
    hang_guard();
    let rt = rt(2);
    watchdog("mpsc closed()", move || {
        rt.block_on(async {
            let (tx, rx) = mpsc::channel::<u8>(1);
            let (utx, urx) = mpsc::unbounded_channel::<u8>();
            let h = weft_runtime::spawn(async move {
                tx.closed().await;
                utx.closed().await;
                tx.is_closed() && utx.is_closed()
            });
            weft_runtime::task::yield_now().await;
            drop(rx);
            drop(urx);
            assert!(h.await.unwrap());
        })
    });
}

#[test]
fn a_receiver_that_always_finds_a_message_still_yields() {
    hang_guard();
    // One worker: without the budget the loop below never returns to the scheduler and
    // the flag-setting task never runs (the watchdog turns the hang into a failure).
    let rt = rt(1);
    watchdog("mpsc coop", move || {
        rt.block_on(async {
            let flag = Flag::new();
            let f = flag.clone();
            let h = weft_runtime::spawn(async move {
                let (tx, mut rx) = mpsc::unbounded_channel();
                while !f.get() {
                    tx.send(1u8).unwrap();
                    rx.recv().await.unwrap();
                }
            });
            let setter = weft_runtime::spawn(async move { flag.set() });
            setter.await.unwrap();
            h.await.unwrap();
        })
    });
}

#[test]
fn usable_from_another_executor() {
    hang_guard();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<u8>>();
    let t = std::thread::spawn(move || {
        for i in 0..100u8 {
            tx.send(Arc::new(i)).unwrap();
        }
    });
    let mut n = 0;
    block_on_plain(async {
        while let Some(v) = rx.recv().await {
            assert_eq!(*v as usize, n);
            n += 1;
        }
    });
    t.join().unwrap();
    assert_eq!(n, 100);
}
