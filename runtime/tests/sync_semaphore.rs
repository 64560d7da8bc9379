//! `sync::Semaphore`: never more permits out than exist (8 threads hammering), FIFO for
//! multi-permit requests, permits passed on by dropped waiters, closing, owned permits.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{block_on_plain, hang_guard, poll_once, scaled, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::{Semaphore, TryAcquireError};

#[test]
fn permits_never_over_issued_under_eight_threads() {
    hang_guard();
    let per = scaled(100_000, 1000);
    const PERMITS: usize = 3;
    let sem = Arc::new(Semaphore::new(PERMITS));
    let out = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (s, o, m) = (sem.clone(), out.clone(), max.clone());
    watchdog("semaphore 8 threads", move || {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (sem, out, max) = (s.clone(), o.clone(), m.clone());
                std::thread::spawn(move || {
                    block_on_plain(async {
                        for i in 0..per {
                            let p = if (i + t) % 2 == 0 {
                                sem.acquire().await.unwrap()
                            } else {
                                loop {
                                    match sem.try_acquire() {
                                        Ok(p) => break p,
                                        Err(TryAcquireError::NoPermits) => std::hint::spin_loop(),
                                        Err(e) => panic!("{e}"),
                                    }
                                }
                            };
                            let now = out.fetch_add(1, SeqCst) + 1;
                            assert!(now <= PERMITS, "{now} permits out of {PERMITS}");
                            max.fetch_max(now, SeqCst);
                            out.fetch_sub(1, SeqCst);
                            drop(p);
                        }
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    assert_eq!(sem.available_permits(), PERMITS);
    assert!(max.load(SeqCst) >= 1);
}

#[test]
fn many_tasks_on_two_workers_share_the_permits() {
    hang_guard();
    let per = scaled(5_000, 100);
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    watchdog("semaphore tasks", move || {
        rt.block_on(async move {
            let sem = Arc::new(Semaphore::new(2));
            let out = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (sem, out) = (sem.clone(), out.clone());
                    weft_runtime::spawn(async move {
                        for _ in 0..per {
                            let _p = sem.clone().acquire_owned().await.unwrap();
                            assert!(out.fetch_add(1, SeqCst) < 2);
                            weft_runtime::task::yield_now().await;
                            out.fetch_sub(1, SeqCst);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(sem.available_permits(), 2);
        })
    });
}

#[test]
fn a_large_request_at_the_head_is_not_overtaken() {
    let sem = Semaphore::new(3);
    let held = sem.try_acquire_many(3).unwrap();
    let mut big = Box::pin(sem.acquire_many(2));
    let mut small = Box::pin(sem.acquire());
    assert!(poll_once(&mut big).is_pending());
    assert!(poll_once(&mut small).is_pending());
    drop(held); // 3 free: big takes 2, small takes 1, in that order
    assert!(poll_once(&mut big).is_ready());
    assert!(poll_once(&mut small).is_ready());

    let sem = Semaphore::new(1);
    let one = sem.try_acquire().unwrap();
    let mut big = Box::pin(sem.acquire_many(2));
    assert!(poll_once(&mut big).is_pending());
    sem.add_permits(0);
    drop(one); // 1 paid to big, which still waits; a newcomer may not take it
    assert_eq!(sem.available_permits(), 0);
    assert!(sem.try_acquire().is_err());
    sem.add_permits(1);
    assert!(poll_once(&mut big).is_ready());
}

#[test]
fn a_dropped_waiter_passes_on_the_permits_it_was_paid() {
    let sem = Semaphore::new(2);
    let held = sem.try_acquire_many(2).unwrap();
    let mut big = Box::pin(sem.acquire_many(3));
    let mut next = Box::pin(sem.acquire());
    assert!(poll_once(&mut big).is_pending());
    assert!(poll_once(&mut next).is_pending());
    drop(held); // big is paid 2 of its 3
    assert!(poll_once(&mut next).is_pending());
    drop(big); // its 2 go on: 1 to `next`, 1 back to the pool
    assert!(poll_once(&mut next).is_ready());
    drop(next);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn close_fails_waiters_and_later_acquires_but_not_held_permits() {
    hang_guard();
    let sem = Arc::new(Semaphore::new(1));
    let p = sem.try_acquire().unwrap();
    let mut w = Box::pin(sem.acquire());
    assert!(poll_once(&mut w).is_pending());
    sem.close();
    assert!(sem.is_closed());
    assert!(block_on_plain(w).is_err());
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert!(block_on_plain(sem.clone().acquire_owned()).is_err());
    assert_eq!(p.num_permits(), 1);
    drop(p);
}

#[test]
fn forget_merge_and_owned_permits() {
    let sem = Arc::new(Semaphore::new(4));
    let mut a = sem.try_acquire().unwrap();
    a.merge(sem.try_acquire().unwrap());
    assert_eq!(a.num_permits(), 2);
    a.forget();
    assert_eq!(sem.available_permits(), 2);
    let o = sem.clone().try_acquire_many_owned(2).unwrap();
    assert_eq!(sem.available_permits(), 0);
    assert!(Arc::ptr_eq(o.semaphore(), &sem));
    drop(o);
    assert_eq!(sem.forget_permits(5), 2);
    assert_eq!(sem.available_permits(), 0);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 1);
}
