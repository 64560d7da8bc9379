//! `select!` (first finished wins, losers dropped before the body, random start, `biased;`,
//! patterns that disable a branch, preconditions, `else`, control flow in bodies),
//! `join!`, `try_join!` and `pin!`.

mod common;

use std::future::{Future, pending, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};

use common::{Counted, Signal};
use weft_runtime as weft;
use weft_runtime::task;

/// Pending forever; sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Future for DropFlag {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[weft::test(worker_threads = 1)]
async fn the_ready_branch_wins_and_losers_are_dropped_before_its_body() {
    common::hang_guard();
    let dropped = Arc::new(AtomicBool::new(false));
    let got = weft::select! {
        _ = DropFlag(dropped.clone()) => unreachable!("a pending future won"),
        v = async { 3 } => {
            assert!(dropped.load(SeqCst), "the losing future outlived select!");
            v
        }
    };
    assert_eq!(got, 3);
}

#[weft::test(worker_threads = 1)]
async fn biased_polls_in_order_and_unbiased_starts_at_random() {
    common::hang_guard();
    for _ in 0..100 {
        let first = weft::select! {
            biased;
            a = ready(1) => a,
            b = ready(2) => b,
        };
        assert_eq!(first, 1);
    }
    let mut wins = [0usize; 3];
    for _ in 0..600 {
        let i = weft::select! {
            a = ready(0usize) => a,
            b = ready(1usize) => b,
            c = ready(2usize) => c,
        };
        wins[i] += 1;
    }
    // Chance of a branch never winning 600 fair draws: 3 * (2/3)^600.
    assert!(
        wins.iter().all(|&w| w > 0),
        "start branch not random: {wins:?}"
    );
}

#[weft::test(worker_threads = 1)]
async fn a_failed_pattern_disables_its_branch() {
    common::hang_guard();
    let gate = Signal::new();
    let opener = gate.clone();
    weft::spawn(async move {
        task::yield_now().await;
        opener.fire();
    });
    let got = weft::select! {
        biased;
        Some(v) = async { None::<u32> } => v,
        () = gate.wait() => 99,
    };
    assert_eq!(got, 99);

    // Patterns with `mut` and `ref` bind as they would in a `match`.
    let got = weft::select! {
        (mut a, ref b) = async { (1, String::from("x")) } => {
            a += 1;
            format!("{a}{b}")
        }
    };
    assert_eq!(got, "2x");
}

#[weft::test(worker_threads = 1)]
async fn preconditions_and_else() {
    common::hang_guard();
    let evaluated = Arc::new(AtomicUsize::new(0));
    let e = evaluated.clone();
    let got = weft::select! {
        v = async move { e.fetch_add(1, SeqCst); 1 }, if false => v,
        v = async { 2 }, if 1 + 1 == 2 => v,
    };
    assert_eq!(got, 2);
    assert_eq!(
        evaluated.load(SeqCst),
        0,
        "a disabled branch's future was polled"
    );

    let got = weft::select! {
        v = ready(1), if false => v,
        Ok(v) = ready(Err::<i32, ()>(())) => v,
        else => -1,
    };
    assert_eq!(got, -1);
}

#[test]
fn all_disabled_without_else_panics() {
    common::hang_guard();
    common::quiet_expected_panics();
    let rt = weft::Runtime::builder().worker_threads(1).build().unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            weft::select! {
                v = ready(1), if false => v,
            }
        })
    }));
    let payload = res.unwrap_err();
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or_default();
    assert!(msg.contains("all branches are disabled"), "{msg}");
}

async fn first_even(values: Vec<u32>) -> Result<u32, String> {
    for v in values {
        weft::select! {
            x = ready(v) => {
                if x == 0 {
                    return Err("zero".into());
                }
                if x % 2 == 0 {
                    return Ok(x);
                }
                continue;
            }
        }
    }
    Err::<u32, String>("none".into()).map_err(|e| e.to_uppercase())
}

#[weft::test(worker_threads = 1)]
async fn return_and_continue_in_bodies_act_on_the_caller() -> Result<(), String> {
    common::hang_guard();
    assert_eq!(first_even(vec![1, 3, 4, 5]).await?, 4);
    assert_eq!(first_even(vec![1, 0]).await, Err("zero".into()));
    assert_eq!(first_even(vec![1]).await, Err("NONE".into()));
    Ok(())
}

#[weft::test(worker_threads = 1)]
async fn a_pinned_future_survives_many_selects() {
    common::hang_guard();
    let gate = Signal::new();
    let wait = gate.wait();
    weft::pin!(wait);
    let mut loops = 0;
    loop {
        weft::select! {
            () = &mut wait => break,
            () = task::yield_now() => {
                loops += 1;
                if loops == 5 {
                    gate.fire();
                }
            }
        }
    }
    assert_eq!(loops, 5);
}

#[weft::test(worker_threads = 2)]
async fn join_waits_for_all_and_drops_each_future_when_it_finishes() {
    common::hang_guard();
    let dropped = Arc::new(AtomicUsize::new(0));
    let gate = Signal::new();
    let c = Counted(dropped.clone());
    let first = async move {
        let _c = c;
        1
    };
    let wait = gate.wait();
    let d = dropped.clone();
    let opener = gate.clone();
    let second = async move {
        // `first` finished on the join's first poll and was dropped then.
        opener.fire();
        wait.await;
        d.load(SeqCst)
    };
    let (a, seen, c) = weft::join!(first, second, weft::spawn(async { "c" }));
    assert_eq!((a, seen, c.unwrap()), (1, 1, "c"));
    let () = weft::join!();
    let (only,) = weft::join!(ready(5));
    assert_eq!(only, 5);
}

#[weft::test(worker_threads = 1)]
async fn try_join_stops_at_the_first_error_and_drops_the_rest() {
    common::hang_guard();
    let dropped = Arc::new(AtomicBool::new(false));
    let pending_one = {
        let flag = DropFlag(dropped.clone());
        async move {
            flag.await;
            Ok::<u8, &str>(0)
        }
    };
    let res = weft::try_join!(
        pending_one,
        async { Err::<u8, _>("bad") },
        pending::<Result<u8, &str>>()
    );
    assert_eq!(res, Err("bad"));
    assert!(
        dropped.load(SeqCst),
        "the pending future outlived try_join!"
    );

    let ok: Result<(u8, &str), ()> = weft::try_join!(async { Ok(1) }, async { Ok("two") });
    assert_eq!(ok, Ok((1, "two")));
}
