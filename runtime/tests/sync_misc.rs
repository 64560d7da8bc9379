//! `sync::RwLock`, `sync::Barrier` and `sync::OnceCell`: exclusion and writer fairness,
//! leaders and reuse, initialise-once with a cancelled initialiser.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{block_on_plain, hang_guard, poll_once, watchdog};
use weft_runtime::Runtime;
use weft_runtime::sync::{Barrier, OnceCell, RwLock, SetError};

fn rt2() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn rwlock_readers_share_writers_exclude_and_a_queued_writer_blocks_new_readers() {
    let l = RwLock::new(1);
    let r1 = l.try_read().unwrap();
    let r2 = l.try_read().unwrap();
    assert_eq!(*r1 + *r2, 2);
    assert!(l.try_write().is_err());
    let mut w = Box::pin(l.write());
    assert!(poll_once(&mut w).is_pending());
    assert!(l.try_read().is_err(), "a reader overtook the queued writer");
    drop(r1);
    assert!(poll_once(&mut w).is_pending());
    drop(r2);
    let std::task::Poll::Ready(mut g) = poll_once(&mut w) else {
        panic!("writer not admitted")
    };
    *g = 5;
    drop(g);
    drop(w);
    assert_eq!(*l.blocking_read(), 5);
    *l.blocking_write() += 1;
    assert_eq!(l.into_inner(), 6);
}

#[test]
fn rwlock_with_max_readers_limits_readers() {
    let l = RwLock::with_max_readers((), 2);
    let _a = l.try_read().unwrap();
    let _b = l.try_read().unwrap();
    assert!(l.try_read().is_err());
}

#[test]
fn barrier_has_one_leader_per_round_and_is_reusable() {
    hang_guard();
    let rt = rt2();
    watchdog("barrier", move || {
        rt.block_on(async {
            let b = Arc::new(Barrier::new(4));
            let arrived = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let (b, arrived) = (b.clone(), arrived.clone());
                    weft_runtime::spawn(async move {
                        let mut leaders = 0;
                        for round in 0..50 {
                            arrived.fetch_add(1, SeqCst);
                            if b.wait().await.is_leader() {
                                leaders += 1;
                            }
                            // Nobody passes round r before all four reached it.
                            assert!(arrived.load(SeqCst) >= (round + 1) * 4);
                        }
                        leaders
                    })
                })
                .collect();
            let mut leaders = 0;
            for t in tasks {
                leaders += t.await.unwrap();
            }
            assert_eq!(leaders, 50);
        })
    });
}

#[test]
fn once_cell_runs_one_initialiser_for_many_callers() {
    hang_guard();
    let rt = rt2();
    watchdog("once_cell", move || {
        rt.block_on(async {
            let cell = Arc::new(OnceCell::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let (cell, runs) = (cell.clone(), runs.clone());
                    weft_runtime::spawn(async move {
                        *cell
                            .get_or_init(|| async move {
                                runs.fetch_add(1, SeqCst);
                                weft_runtime::task::yield_now().await;
                                i
                            })
                            .await
                    })
                })
                .collect();
            let mut seen = Vec::new();
            for t in tasks {
                seen.push(t.await.unwrap());
            }
            assert_eq!(runs.load(SeqCst), 1);
            assert!(seen.iter().all(|&v| v == seen[0]));
        })
    });
}

#[test]
fn once_cell_cancelled_or_failed_initialiser_lets_the_next_run() {
    let cell = OnceCell::<u32>::new();
    let mut first = Box::pin(cell.get_or_init(std::future::pending::<u32>));
    assert!(poll_once(&mut first).is_pending());
    assert!(matches!(cell.set(1), Err(SetError::InitializingError(1))));
    let mut second = Box::pin(cell.get_or_init(|| async { 2 }));
    assert!(poll_once(&mut second).is_pending());
    drop(first);
    assert_eq!(block_on_plain(second), &2);

    let cell = OnceCell::<u32>::new();
    assert_eq!(
        block_on_plain(cell.get_or_try_init(|| async { Err::<u32, _>("no") })),
        Err("no")
    );
    assert!(!cell.initialized());
    assert_eq!(cell.set(3), Ok(()));
    assert!(matches!(
        cell.set(4),
        Err(SetError::AlreadyInitializedError(4))
    ));
    assert_eq!(cell.get(), Some(&3));
    assert_eq!(cell.into_inner(), Some(3));
}

static GLOBAL: OnceCell<String> = OnceCell::const_new();

#[test]
fn once_cell_in_a_static() {
    let v = block_on_plain(GLOBAL.get_or_init(|| async { String::from("x") }));
    assert_eq!(v, "x");
}
