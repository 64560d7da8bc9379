//! A task's future is pinned in its cell from its first poll until it is dropped, and it is
//! dropped there: on completion, on abort, and at shutdown. A future that was moved before
//! its drop would run its destructor with self-references pointing at the old place (a
//! file read borrowing the `File` beside it in the same async block crashed that way).

mod common;

use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};

use weft_runtime::Runtime;

/// Records where it was polled; at drop, counts itself in `moved` if it is elsewhere.
struct Pinned {
    polled_at: usize,
    ready_on: usize,
    polls: usize,
    moved: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    _pin: PhantomPinned,
}

impl Pinned {
    fn new(ready_on: usize, moved: &Arc<AtomicUsize>, dropped: &Arc<AtomicUsize>) -> Pinned {
        Pinned {
            polled_at: 0,
            ready_on,
            polls: 0,
            moved: moved.clone(),
            dropped: dropped.clone(),
            _pin: PhantomPinned,
        }
    }
}

impl Future for Pinned {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: nothing is moved out; the fields are plain data.
        let this = unsafe { self.get_unchecked_mut() };
        this.polled_at = this as *mut Pinned as usize;
        this.polls += 1;
        if this.polls == this.ready_on {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if self.polled_at != 0 && self.polled_at != self as *mut Pinned as usize {
            self.moved.fetch_add(1, SeqCst);
        }
        self.dropped.fetch_add(1, SeqCst);
    }
}

#[test]
fn futures_are_dropped_where_they_were_polled() {
    common::watchdog("pinned drops", || {
        let moved = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        // Completed: the finished future is dropped when the output is stored.
        rt.block_on(rt.spawn(Pinned::new(3, &moved, &dropped)))
            .unwrap();
        // Aborted after some polls.
        let h = rt.spawn(Pinned::new(usize::MAX, &moved, &dropped));
        rt.block_on(weft_runtime::task::yield_now());
        h.abort();
        assert!(rt.block_on(h).unwrap_err().is_cancelled());
        // Still running at shutdown.
        for _ in 0..8 {
            drop(rt.spawn(Pinned::new(usize::MAX, &moved, &dropped)));
        }
        rt.block_on(weft_runtime::task::yield_now());
        drop(rt);
        assert_eq!(dropped.load(SeqCst), 10);
        assert_eq!(moved.load(SeqCst), 0, "futures moved before their drop");
    });
}
