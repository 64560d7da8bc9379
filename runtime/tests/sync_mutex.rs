//! `sync::Mutex`: exclusion across workers, FIFO hand-over, a waiter dropped or aborted
//! mid-wait, owned guards, plain-thread locking and the cooperative budget.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{Flag, block_on_plain, hang_guard, poll_once, scaled, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::Mutex;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

#[test]
fn eight_tasks_on_two_workers_never_overlap() {
    hang_guard();
    let per = scaled(10_000, 100);
    let rt = rt(2);
    let total = watchdog("mutex contended", move || {
        rt.block_on(async move {
            let m = Arc::new(Mutex::new(0usize));
            let inside = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (m, inside) = (m.clone(), inside.clone());
                    weft_runtime::spawn(async move {
                        for i in 0..per {
                            let mut g = m.lock().await;
                            assert_eq!(inside.fetch_add(1, SeqCst), 0, "two holders");
                            *g += 1;
                            if i % 64 == 0 {
                                weft_runtime::task::yield_now().await;
                            }
                            inside.fetch_sub(1, SeqCst);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            *m.lock().await
        })
    });
    assert_eq!(total, 8 * per);
}

#[test]
fn waiters_get_the_lock_in_arrival_order_and_newcomers_do_not_barge() {
    let m = Mutex::new(());
    let g = m.try_lock().unwrap();
    let mut waiters: Vec<_> = (0..4).map(|_| Box::pin(m.lock())).collect();
    for w in &mut waiters {
        assert!(poll_once(w).is_pending());
    }
    drop(g);
    for i in 0..4 {
        // The lock was handed to waiter i, so nobody else can take it.
        assert!(
            m.try_lock().is_err(),
            "a newcomer barged in before waiter {i}"
        );
        for later in &mut waiters[i + 1..] {
            assert!(poll_once(later).is_pending());
        }
        let guard = match poll_once(&mut waiters[i]) {
            std::task::Poll::Ready(g) => g,
            std::task::Poll::Pending => panic!("waiter {i} was skipped"),
        };
        drop(guard);
    }
    assert!(m.try_lock().is_ok());
}

#[test]
fn a_waiter_dropped_after_being_handed_the_lock_passes_it_on() {
    let m = Mutex::new(1);
    let g = m.try_lock().unwrap();
    let mut first = Box::pin(m.lock());
    let mut second = Box::pin(m.lock());
    assert!(poll_once(&mut first).is_pending());
    assert!(poll_once(&mut second).is_pending());
    drop(g); // hands the lock to `first`
    drop(first); // which never takes it
    assert!(poll_once(&mut second).is_ready());
}

#[test]
fn a_waiter_dropped_while_queued_leaves_the_lock_usable() {
    let m = Mutex::new(1);
    let g = m.try_lock().unwrap();
    let mut w = Box::pin(m.lock());
    assert!(poll_once(&mut w).is_pending());
    drop(w);
    drop(g);
    assert_eq!(*m.try_lock().unwrap(), 1);
}

#[test]
fn an_aborted_task_waiting_for_the_lock_leaves_it_usable() {
    hang_guard();
    let rounds = scaled(200, 20);
    let rt = rt(2);
    watchdog("mutex abort", move || {
        rt.block_on(async move {
            let m = Arc::new(Mutex::new(0usize));
            for _ in 0..rounds {
                let g = m.clone().lock_owned().await;
                let waiters: Vec<_> = (0..3)
                    .map(|_| {
                        let m = m.clone();
                        weft_runtime::spawn(async move { *m.lock().await += 1 })
                    })
                    .collect();
                weft_runtime::task::yield_now().await;
                waiters[1].abort();
                drop(g);
                for w in waiters {
                    let _ = w.await;
                }
                // Usable afterwards, whether or not the aborted one got in first.
                *m.lock().await += 0;
            }
            let v = *m.lock().await;
            assert!(v >= 2 * rounds && v <= 3 * rounds);
        })
    });
}

#[test]
fn owned_guard_outlives_the_borrow_and_blocking_lock_works_from_threads() {
    hang_guard();
    let m = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || {
                for j in 0..100 {
                    m.blocking_lock().push(i * 100 + j);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let g = block_on_plain(m.clone().lock_owned());
    assert_eq!(g.len(), 400);
    assert!(m.try_lock().is_err());
    drop(g);
    let mut m = Arc::try_unwrap(m).unwrap();
    m.get_mut().push(0);
    assert_eq!(m.into_inner().len(), 401);
}

#[test]
fn a_task_that_always_gets_the_lock_still_yields() {
    hang_guard();
    let rt = rt(1);
    watchdog("mutex coop", move || {
        rt.block_on(async {
            let flag = Flag::new();
            let f = flag.clone();
            let h = weft_runtime::spawn(async move {
                let m = Mutex::new(0u64);
                while !f.get() {
                    *m.lock().await += 1;
                }
            });
            weft_runtime::spawn(async move { flag.set() })
                .await
                .unwrap();
            h.await.unwrap();
        })
    });
}
