//! Claims on a gather's block, given up together: one atomic operation for a run of parts
//! settled one after another on one thread, instead of one each.
//!
//! A gather (`gather.rs`) counts the parts that still hold a claim on its block, and each
//! part gives its claim up with a `fetch_sub`. On this machine a locked read-modify-write
//! costs about 6 ns, however uncontended: in `all_fail_fast/ready` the hundred parts' hundred
//! `fetch_sub`s were 39% of the callback style's time, where the instruction count saw
//! nothing (one instruction each).
//!
//! The parts of a `ready` gather are run back to back, by the one queue entry a helper's
//! batch becomes (`Batch::flush`). While such an entry runs, it opens a [`Scope`], and a
//! part settled inside it does not give its claim up: it adds it to the claims this thread
//! *holds* on that block (the context's `held_claims`: one block, a count and how to give
//! them up). The held claims are given up with at most one `fetch_sub` (none when they
//! are the last claims on the block: `Gather::release`):
//!
//! - at once, by the part that finds every claim still counted on the block held here
//!   (the count equals the held ones, its own included): it is the last, and the composite
//!   finishes in that part's call, exactly where it would without holding. Only claims can
//!   leave the count while it is read (nobody makes new ones once the parts are out), so
//!   the count cannot fall below what this thread holds and the test cannot be wrong;
//! - or when a part of another block settles here (the held claims are given up first,
//!   then that part's claim is held instead), or when the scope closes.
//!
//! So where every part settles on one thread, no composite finishes at another moment:
//! only the number of atomic operations changes. Where some settle elsewhere, the part on
//! another thread that would have been last may leave claims held here, and the composite
//! then finishes when this thread gives them up: at the latest when its entry returns. (So
//! a callback must not block its worker waiting for a composite that earlier callbacks of
//! the same entry settled: it would wait for itself. Blocking a worker in a callback is
//! wrong anyway; this makes it a deadlock in that one case.) A claim held is a claim, so
//! the block stays alive meanwhile. Outside a scope, and for parts dropped uncalled or
//! settling the composite early, claims are given up one by one as before; a composite
//! left incomplete by a dropped part then drops its final callback when the claims held
//! on it are given up.

use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use crate::loom::sync::{AtomicUsize, Ordering};

/// Gives up `n` claims on a block: the gather's `release`, type-erased.
pub(super) type ReleaseFn = unsafe fn(NonNull<()>, usize);

/// The claims this thread holds on one gather's block. (Whether a [`Scope`] is open is a
/// flag of its own, `held_open`: all words here, so that copying it in and out of its `Cell`
/// is whole-word moves; a trailing `bool` made the copies partial and stalled the loads
/// that followed them.)
#[derive(Clone, Copy)]
pub(crate) struct Held {
    /// The block (null: none held).
    block: *const (),
    /// How many claims on it are held.
    claims: usize,
    /// How to give them up.
    release: Option<ReleaseFn>,
}

impl Held {
    /// Nothing held.
    pub(crate) const NONE: Held = Held {
        block: ptr::null(),
        claims: 0,
        release: None,
    };
}

/// Gives up the claims `held` names, if any, containing a panic of the final callback that
/// this may run (the panic hook has printed it, as for any callback).
fn give_up_held(held: Held) {
    if let (Some(release), Some(block)) = (held.release, NonNull::new(held.block.cast_mut())) {
        // SAFETY: `held` was this thread's record of `claims` claims on the live block
        // (`give_up` made it so, and a claim keeps the block alive), taken out of the slot
        // by the caller, so they are given up once, here.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| unsafe { release(block, held.claims) }));
    }
}

/// While it lives, parts settled on this thread hold their claims (see the module docs);
/// when it drops, the claims held are given up (an inner scope gives up those an outer one
/// held, earlier than the outer would) and the open flag is set back to what it was.
pub(super) struct Scope {
    outer_open: bool,
}

impl Scope {
    /// Opens a scope on this thread.
    pub(super) fn enter() -> Scope {
        let outer_open = crate::context::with(|cx| cx.held_open().replace(true)).unwrap_or(false);
        Scope { outer_open }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let held = crate::context::with(|cx| {
            cx.held_open().set(self.outer_open);
            cx.held_claims().replace(Held::NONE)
        });
        if let Some(held) = held {
            give_up_held(held);
        }
    }
}

/// A part of `block` gives up its claim: returns how many claims the caller must give up
/// now with `release` (its own, or its own and those held here), or 0 if the claim is now
/// held by this thread.
///
/// `state` is the block's claim count (`mask` selects the count in it). It is read with a
/// plain load: once the parts are out it only falls, so any value read is at least the
/// current count, which is at least the claims held here; equality means every claim left
/// is ours, and the operation that gives them up (`Gather::release`: its acquire load of
/// the count, or its acquire-release `fetch_sub`) is what orders the slots.
///
/// Claims held on another block are given up here first, after the thread's record is
/// updated and with nothing borrowed from either block: the final callback this may run
/// can settle parts of `block` itself.
///
/// # Safety
///
/// The caller holds one claim on the live block `block`, which this call takes over, and
/// `state` is that block's count; no new claim on it is made any more; `release(block, n)`
/// gives up `n` claims, from this thread, once.
#[inline]
pub(super) unsafe fn give_up(
    block: NonNull<()>,
    state: NonNull<AtomicUsize>,
    mask: usize,
    release: ReleaseFn,
) -> usize {
    enum Step {
        Now(usize),
        Held,
        Switched(Held),
    }
    // SAFETY: our claim keeps the block, and so its count, alive.
    let counted = || unsafe { state.as_ref() }.load(Ordering::Relaxed) & mask;
    let step = crate::context::with(|cx| {
        if !cx.held_open().get() {
            return Step::Now(1);
        }
        let slot = cx.held_claims();
        let mut held = slot.get();
        if held.block == block.as_ptr().cast_const() {
            held.claims += 1;
            let counted = counted();
            debug_assert!(
                counted >= held.claims,
                "a gather counts fewer claims than this thread holds on it"
            );
            if counted == held.claims {
                // Every claim left is held here: the last part, which finishes it now.
                slot.set(Held::NONE);
                return Step::Now(held.claims);
            }
            slot.set(held);
            return Step::Held;
        }
        if counted() == 1 {
            // Ours is the last claim: nothing to wait for (what is held stays held).
            return Step::Now(1);
        }
        slot.set(Held {
            block: block.as_ptr().cast_const(),
            claims: 1,
            release: Some(release),
        });
        Step::Switched(held)
    });
    match step {
        Some(Step::Now(n)) => n,
        Some(Step::Held) => 0,
        Some(Step::Switched(before)) => {
            // The claims held on another block go, now that its last part did not settle
            // here; ours stays held.
            give_up_held(before);
            0
        }
        // `Context` has no destructor, so the thread-local is never gone while the thread
        // runs code; were it, the claim would simply be given up now.
        None => 1,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};

    use super::super::{Callback, Part, defer, parallel};

    type Log = Arc<Mutex<Vec<String>>>;

    fn push(log: &Log, s: impl Into<String>) {
        log.lock().unwrap().push(s.into());
    }

    fn one_worker() -> crate::Runtime {
        crate::Runtime::builder()
            .worker_threads(1)
            .build()
            .expect("runtime")
    }

    fn recv<T>(rx: &mpsc::Receiver<T>) -> T {
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("never arrived")
    }

    /// Held claims change nothing a thread can see: the gather finishes in its last part's
    /// call, before a callback queued behind that part in the same batch.
    #[test]
    fn a_gather_settled_back_to_back_finishes_in_its_last_parts_call() {
        let rt = one_worker();
        let log: Log = Arc::default();
        let (tx, rx) = mpsc::channel();
        let l = log.clone();
        rt.handle().defer(move || {
            let (l2, l3) = (l.clone(), l.clone());
            // With the callback after them, a batch that holds claims (any with an arena).
            parallel(
                3,
                move |i, part: Part<usize, ()>| {
                    let l = l2.clone();
                    defer(move || {
                        push(&l, format!("part {i}"));
                        part.call(Ok(i * 10));
                    });
                    if i == 2 {
                        let (l, tx) = (l2.clone(), tx.clone());
                        defer(move || {
                            push(&l, "after");
                            tx.send(()).unwrap();
                        });
                    }
                },
                move |r: Result<Vec<usize>, ()>| push(&l3, format!("done {:?}", r.unwrap())),
            );
        });
        recv(&rx);
        assert_eq!(
            *log.lock().unwrap(),
            ["part 0", "part 1", "part 2", "done [0, 10, 20]", "after"]
        );
    }

    /// Parts of two gathers and of the batch's own gather, interleaved in one batch: each
    /// composite finishes once, with every value in order.
    #[test]
    fn interleaved_parts_of_several_gathers_finish_each_once() {
        const N: usize = 4;
        let rt = one_worker();
        let (tx, rx) = mpsc::channel();
        rt.handle().defer(move || {
            let stash: Arc<Mutex<Vec<Part<usize, ()>>>> = Arc::default();
            for name in ["a", "b"] {
                let (s, tx) = (stash.clone(), tx.clone());
                parallel(
                    N,
                    move |_, part| s.lock().unwrap().push(part),
                    move |r: Result<Vec<usize>, ()>| tx.send((name, r)).unwrap(),
                );
            }
            // The stash holds a's parts, then b's.
            let mut parts: Vec<_> = std::mem::take(&mut *stash.lock().unwrap());
            let b: Vec<_> = parts.drain(N..).collect();
            let mut pairs: Vec<_> = parts.into_iter().zip(b).map(Some).collect();
            let tx = tx.clone();
            parallel(
                N,
                move |i, outer: Part<usize, ()>| {
                    let (a, b) = pairs[i].take().unwrap();
                    defer(move || {
                        a.call(Ok(i));
                        b.call(Ok(i + 100));
                        outer.call(Ok(i));
                    });
                },
                move |r: Result<Vec<usize>, ()>| tx.send(("outer", r)).unwrap(),
            );
        });
        let mut got: Vec<_> = (0..3).map(|_| recv(&rx)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a", Ok((0..N).collect())),
                ("b", Ok((100..100 + N).collect())),
                ("outer", Ok((0..N).collect())),
            ]
        );
        rt.block_on(async {});
        assert!(rx.try_recv().is_err(), "a composite finished twice");
    }

    /// A part settled on another thread while this thread holds the other claims: the
    /// composite finishes when the batch's entry gives them up, once.
    #[test]
    fn a_part_settled_elsewhere_while_claims_are_held_finishes_it_once() {
        let rt = one_worker();
        let (tx, rx) = mpsc::channel();
        rt.handle().defer(move || {
            let stash: Arc<Mutex<Option<Part<usize, ()>>>> = Arc::default();
            let s = stash.clone();
            let tx2 = tx.clone();
            // Four callbacks in the batch (parts 0, 2, 3, 4): it holds claims.
            parallel(
                5,
                move |i, part: Part<usize, ()>| {
                    if i == 1 {
                        *s.lock().unwrap() = Some(part);
                        return;
                    }
                    let s = s.clone();
                    defer(move || {
                        part.call(Ok(i));
                        if i == 0 {
                            // Part 1 settles on another thread, between parts 0 and 2.
                            let p = s.lock().unwrap().take().unwrap();
                            std::thread::spawn(move || p.call(Ok(1))).join().unwrap();
                        }
                    });
                },
                move |r: Result<Vec<usize>, ()>| tx2.send(r).unwrap(),
            );
        });
        assert_eq!(recv(&rx), Ok(vec![0, 1, 2, 3, 4]));
        rt.block_on(async {});
        assert!(rx.try_recv().is_err(), "finished twice");
    }

    /// A part dropped uncalled in a batch that holds claims: the composite never completes,
    /// and its final callback is dropped once, uncalled.
    #[test]
    fn a_part_dropped_uncalled_while_claims_are_held_drops_the_callback_once() {
        use super::super::test_util::Counted;
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let rt = one_worker();
        let drops = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let (c, d) = (calls.clone(), Counted(drops.clone()));
        rt.handle().defer(move || {
            parallel(
                5,
                move |i, part: Part<usize, ()>| {
                    let tx = tx.clone();
                    defer(move || {
                        if i == 2 {
                            drop(part)
                        } else {
                            part.call(Ok(i))
                        }
                        if i == 4 {
                            tx.send(()).unwrap();
                        }
                    });
                },
                move |_: Result<Vec<usize>, ()>| {
                    let _d = d;
                    c.fetch_add(1, SeqCst);
                },
            );
        });
        recv(&rx);
        assert_eq!(calls.load(SeqCst), 0, "an incomplete composite finished");
        assert_eq!(
            drops.load(SeqCst),
            1,
            "the final callback was not dropped once"
        );
    }

    /// An early outcome in a batch that holds claims: the final callback is called once, at
    /// once, and the values the other parts delivered are each dropped once.
    #[test]
    fn an_early_outcome_while_claims_are_held_calls_once_and_frees_every_value() {
        use super::super::test_util::Counted;
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let rt = one_worker();
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let dr = drops.clone();
        rt.handle().defer(move || {
            let tx2 = tx.clone();
            parallel(
                5,
                move |i, part: Part<Counted, usize>| {
                    let (d, tx) = (dr.clone(), tx2.clone());
                    defer(move || {
                        if i == 1 {
                            part.call(Err(i))
                        } else {
                            part.call(Ok(Counted(d)))
                        }
                        if i == 4 {
                            tx.send(None).unwrap();
                        }
                    });
                },
                move |r: Result<Vec<Counted>, usize>| tx.send(Some(r.err())).unwrap(),
            );
        });
        assert_eq!(recv(&rx), Some(Some(1)), "the early error");
        assert_eq!(recv(&rx), None, "the last callback");
        assert!(rx.try_recv().is_err(), "called twice");
        assert_eq!(
            drops.load(SeqCst),
            4,
            "a delivered value was not dropped once"
        );
    }

    /// The final callback of a gather whose claims are given up when another gather's part
    /// switches in settles the last part of that other gather: both finish once, in place.
    #[test]
    fn a_final_callback_run_by_a_switch_may_settle_the_gather_switched_to() {
        /// Parts of the gather whose batch holds the claims.
        const OUTER: usize = 4;
        let rt = one_worker();
        let (tx, rx) = mpsc::channel();
        rt.handle().defer(move || {
            let stash: Arc<Mutex<Vec<Part<usize, ()>>>> = Arc::default();
            let (s, t) = (stash.clone(), tx.clone());
            parallel(
                2,
                move |_, part| s.lock().unwrap().push(part),
                move |r: Result<Vec<usize>, ()>| t.send(("b", r)).unwrap(),
            );
            let mut b: Vec<_> = std::mem::take(&mut *stash.lock().unwrap());
            let b1 = b.pop().unwrap();
            let b0 = b.pop().unwrap();
            let (s, t) = (stash.clone(), tx.clone());
            parallel(
                2,
                move |_, part| s.lock().unwrap().push(part),
                move |r: Result<Vec<usize>, ()>| {
                    t.send(("a", r)).unwrap();
                    // B's last claim: B0's is held by this thread.
                    b1.call(Ok(11));
                },
            );
            let mut a: Vec<_> = std::mem::take(&mut *stash.lock().unwrap());
            let a1 = a.pop().unwrap();
            let a0 = a.pop().unwrap();
            let mut first = Some((a0, a1, b0));
            let t = tx.clone();
            parallel(
                OUTER,
                move |i, outer: Part<usize, ()>| {
                    let parts = first.take();
                    defer(move || {
                        if let Some((a0, a1, b0)) = parts {
                            // A0 held; A1 settles elsewhere, leaving A's last claim held
                            // here; B0 switches in and gives it up, so A finishes, and
                            // its callback settles B1.
                            a0.call(Ok(0));
                            std::thread::spawn(move || a1.call(Ok(1))).join().unwrap();
                            b0.call(Ok(10));
                        }
                        outer.call(Ok(i));
                    });
                },
                move |r: Result<Vec<usize>, ()>| {
                    t.send(("outer", r.map(|v| v.len()).map(|n| vec![n])))
                        .unwrap()
                },
            );
        });
        let mut got: Vec<_> = (0..3).map(|_| recv(&rx)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a", Ok(vec![0, 1])),
                ("b", Ok(vec![10, 11])),
                ("outer", Ok(vec![OUTER])),
            ]
        );
        rt.block_on(async {});
        assert!(rx.try_recv().is_err(), "a composite finished twice");
    }
}
