//! `task_local!`: `scope` across polls, yields and workers; tasks on one thread keep their
//! own values; nesting; `sync_scope`; `with`/`try_with`/`get` outside a scope; the value
//! set while the inner future is dropped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{Counted, Signal};
use weft_runtime as weft;
use weft_runtime::task::{self, AccessError};

weft::task_local! {
    static NUMBER: u32;
    static NAME: String;
}

#[weft::test(worker_threads = 2)]
async fn the_value_follows_the_future_across_yields_and_workers() {
    common::hang_guard();
    let handles: Vec<_> = (0..8u32)
        .map(|i| {
            weft::spawn(NUMBER.scope(i, async move {
                for _ in 0..200 {
                    assert_eq!(NUMBER.get(), i);
                    task::yield_now().await;
                }
                NUMBER.get()
            }))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i as u32);
    }
}

#[weft::test(worker_threads = 1)]
async fn tasks_interleaved_on_one_worker_keep_their_own_values() {
    common::hang_guard();
    let gate = Signal::new();
    let (wa, wb) = (gate.wait(), gate.wait());
    let a = weft::spawn(NAME.scope("a".into(), async move {
        wa.await;
        NAME.get()
    }));
    let b = weft::spawn(NAME.scope("b".into(), async move {
        wb.await;
        NAME.with(|n| n.clone())
    }));
    task::yield_now().await;
    assert!(
        NAME.try_with(|_| ()).is_err(),
        "a task's value leaked to block_on"
    );
    gate.fire();
    assert_eq!(a.await.unwrap(), "a");
    assert_eq!(b.await.unwrap(), "b");
}

#[weft::test(worker_threads = 1)]
async fn nested_scopes_restore_the_outer_value() {
    common::hang_guard();
    NUMBER
        .scope(1, async {
            let inner = NUMBER
                .scope(2, async {
                    task::yield_now().await;
                    NUMBER.get()
                })
                .await;
            assert_eq!(inner, 2);
            assert_eq!(NUMBER.get(), 1);
        })
        .await;
    assert_eq!(NUMBER.try_with(|n| *n), Err::<u32, _>(access_error()));
}

fn access_error() -> AccessError {
    NUMBER.try_with(|_| ()).unwrap_err()
}

#[test]
fn try_with_and_with_outside_a_scope() {
    let err = NUMBER.try_with(|n| *n).unwrap_err();
    assert_eq!(err.to_string(), "task-local value not set");
    assert_eq!(format!("{err:?}"), "AccessError");
    let panic = std::panic::catch_unwind(|| NUMBER.with(|n| *n)).unwrap_err();
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(msg.contains("outside its scope"), "{msg}");
}

#[test]
fn sync_scope_nests_and_restores_after_a_panic() {
    common::quiet_expected_panics();
    let n = NUMBER.sync_scope(1, || {
        NUMBER.sync_scope(2, || NUMBER.get()) * 10 + NUMBER.get()
    });
    assert_eq!(n, 21);
    let res = std::panic::catch_unwind(|| {
        NUMBER.sync_scope(5, || panic!("[expected] inside sync_scope"));
    });
    assert!(res.is_err());
    assert!(
        NUMBER.try_with(|_| ()).is_err(),
        "the value stayed set after the unwind"
    );
    NUMBER.sync_scope(3, || assert_eq!(NUMBER.get(), 3));
}

struct ReadsOnDrop(Arc<AtomicUsize>);

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        // Seen from the inner future's destructor: the value is still set.
        let v = NUMBER.try_with(|n| *n).unwrap_or(0);
        self.0.store(v as usize, SeqCst);
    }
}

#[weft::test(worker_threads = 1)]
async fn an_aborted_scope_drops_its_future_with_the_value_set_and_frees_the_value() {
    common::hang_guard();
    let seen = Arc::new(AtomicUsize::new(0));
    let value_drops = Arc::new(AtomicUsize::new(0));
    weft::task_local! { static HELD: Counted; }
    let guard = ReadsOnDrop(seen.clone());
    let h = weft::spawn(NUMBER.scope(
        42,
        HELD.scope(Counted(value_drops.clone()), async move {
            let _g = guard;
            std::future::pending::<()>().await
        }),
    ));
    task::yield_now().await;
    h.abort();
    assert!(h.await.unwrap_err().is_cancelled());
    assert_eq!(seen.load(SeqCst), 42);
    assert_eq!(
        value_drops.load(SeqCst),
        1,
        "the scoped value was not dropped once"
    );
}
