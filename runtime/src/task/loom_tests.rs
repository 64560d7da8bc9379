//! loom models of the task state machine.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p weft-runtime --release --lib loom`.
//! Each model drives real task cells with a tiny queue-only scheduler; loom explores every
//! interleaving of the state word's atomics and flags any unsynchronised access to the stage
//! or the join-waker slot (they are loom `UnsafeCell`s under `cfg(loom)`), and any leaked
//! `loom::sync::Arc` — every future below holds one, so a task cell that is never freed (or
//! freed twice) fails the model.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

use super::{JoinError, JoinHandle, Notified, Schedule, Task, new_task};

#[derive(Clone, Default)]
struct Queue(Arc<Mutex<VecDeque<Notified>>>);

impl Schedule for Queue {
    fn schedule(&self, task: Notified) {
        self.0.lock().unwrap().push_back(task);
    }
    fn release(&self, _: &Task) -> Option<Task> {
        None
    }
}

impl Queue {
    fn pop(&self) -> Option<Notified> {
        self.0.lock().unwrap().pop_front()
    }
    fn run_all(&self) {
        while let Some(t) = self.pop() {
            t.run();
        }
    }
}

/// Counts drops of the value it guards.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Pending on its first poll (publishing its waker), ready on the second.
struct TwoPolls {
    polls: usize,
    waker: Arc<Mutex<Option<Waker>>>,
    _payload: Counted,
}

impl Future for TwoPolls {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if self.polls == 1 {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(self.polls)
        }
    }
}

struct Flag(loom::sync::atomic::AtomicBool);

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.0.store(true, SeqCst);
    }
}

/// Polls a join handle once with a flag waker.
fn poll_join<T>(h: &mut JoinHandle<T>, flag: &StdArc<Flag>) -> Poll<Result<T, JoinError>> {
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    Pin::new(h).poll(&mut cx)
}

/// A waker fired from another thread while the task is being polled (or before, or after):
/// the task is polled again and completes; nothing leaks.
#[test]
fn wake_while_running() {
    loom::model(|| {
        let q = Queue::default();
        let drops = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let fut = TwoPolls {
            polls: 0,
            waker: slot.clone(),
            _payload: Counted(drops.clone()),
        };
        let (_, notified, mut join) = new_task(fut, q.clone(), false);
        let waker_thread = {
            let slot = slot.clone();
            thread::spawn(move || {
                loop {
                    if let Some(w) = slot.lock().unwrap().take() {
                        w.wake();
                        return;
                    }
                    thread::yield_now();
                }
            })
        };
        notified.run();
        waker_thread.join().unwrap();
        q.run_all();
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        match poll_join(&mut join, &flag) {
            Poll::Ready(Ok(2)) => {}
            other => panic!(
                "unexpected {:?}",
                other.map(|r| r.map_err(|e| e.to_string()))
            ),
        }
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// A clone of the waker outlives the task and is woken after completion: no schedule, the
/// clone's reference frees the cell when it is the last.
#[test]
fn wake_after_completion() {
    loom::model(|| {
        let q = Queue::default();
        let drops = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let payload = Counted(drops.clone());
        let slot2 = slot.clone();
        let fut = std::future::poll_fn(move |cx| {
            let _keep = &payload;
            *slot2.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(7)
        });
        let (_, notified, join) = new_task(fut, q.clone(), false);
        let t = {
            let slot = slot.clone();
            thread::spawn(move || {
                loop {
                    if let Some(w) = slot.lock().unwrap().take() {
                        w.wake_by_ref();
                        drop(w);
                        return;
                    }
                    thread::yield_now();
                }
            })
        };
        notified.run();
        drop(join);
        t.join().unwrap();
        assert!(q.pop().is_none(), "a completed task was scheduled");
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// `abort` races the poll that completes the task: the handle sees either the value or a
/// cancellation, the future is dropped exactly once, and nothing leaks.
#[test]
fn abort_races_completion() {
    loom::model(|| {
        let q = Queue::default();
        let drops = Arc::new(AtomicUsize::new(0));
        let payload = Counted(drops.clone());
        let fut = async move {
            let _p = payload;
            5
        };
        let (_, notified, mut join) = new_task(fut, q.clone(), false);
        let abort = join.abort_handle();
        let t = thread::spawn(move || abort.abort());
        notified.run();
        t.join().unwrap();
        q.run_all();
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        match poll_join(&mut join, &flag) {
            Poll::Ready(Ok(5)) => {}
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            Poll::Pending | Poll::Ready(Ok(_)) => panic!("task neither completed nor cancelled"),
        }
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// Aborting a task that is parked (idle, not queued) queues it once; running the entry
/// drops the future.
#[test]
fn abort_idle_task_from_two_threads() {
    loom::model(|| {
        let q = Queue::default();
        let drops = Arc::new(AtomicUsize::new(0));
        let payload = Counted(drops.clone());
        let fut = async move {
            let _p = payload;
            std::future::pending::<()>().await
        };
        let (_, notified, join) = new_task(fut, q.clone(), false);
        notified.run(); // now idle, parked forever
        let a = join.abort_handle();
        let b = join.abort_handle();
        let t1 = thread::spawn(move || a.abort());
        let t2 = thread::spawn(move || b.abort());
        t1.join().unwrap();
        t2.join().unwrap();
        let entry = q.pop().expect("abort queued the task");
        assert!(q.pop().is_none(), "abort queued the task twice");
        entry.run();
        assert_eq!(drops.load(SeqCst), 1);
        assert!(join.is_finished());
    });
}

/// The handle is dropped while the task completes: the output is dropped exactly once, by
/// whichever side ends up owning it.
#[test]
fn join_handle_dropped_racing_completion() {
    loom::model(|| {
        let q = Queue::default();
        let drops = Arc::new(AtomicUsize::new(0));
        let out = Counted(drops.clone());
        let fut = async move { out };
        let (_, notified, join) = new_task(fut, q.clone(), false);
        let t = thread::spawn(move || drop(join));
        notified.run();
        t.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// The handle registers its waker while the task completes on another thread: either the
/// first poll sees the output, or the handle is woken and the second poll does.
#[test]
fn join_waker_handoff() {
    loom::model(|| {
        let q = Queue::default();
        let (_, notified, mut join) = new_task(async { 9u8 }, q.clone(), false);
        let t = thread::spawn(move || notified.run());
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        let got = match poll_join(&mut join, &flag) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => {
                t.join().unwrap();
                assert!(
                    flag.0.load(SeqCst),
                    "completion did not wake the join handle"
                );
                match poll_join(&mut join, &flag) {
                    Poll::Ready(r) => r.unwrap(),
                    Poll::Pending => panic!("woken but not ready"),
                }
            }
        };
        assert_eq!(got, 9);
    });
}
