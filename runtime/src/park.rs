//! `block_on`: polling a future on the calling thread, parking it between polls.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use weft_reactor::{Driver, ThreadParker, ThreadUnparker, Unpark};

struct UnparkWaker(ThreadUnparker);

impl Wake for UnparkWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A thread's parker and its waker (the context's `parker` field).
///
/// A `block_on` thread owns no timing wheel and no ring: a timer or an I/O op it registered
/// would be serviced only while it sits in `block_on`, and a future polled here may move to
/// a task and outlive the call. So its timers go to a worker's wheel (which wakes it back
/// through this parker) and its file ops to the blocking pool.
pub(crate) struct Parker {
    parker: std::cell::RefCell<ThreadParker>,
    waker: Waker,
}

impl Parker {
    fn new() -> Parker {
        let parker = ThreadParker::new();
        let waker = Waker::from(Arc::new(UnparkWaker(parker.unparker())));
        Parker {
            parker: std::cell::RefCell::new(parker),
            waker,
        }
    }
}

/// Polls `future` until it is ready, parking the thread whenever it is pending.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let run = |p: &Parker| {
        let mut cx = Context::from_waker(&p.waker);
        loop {
            if let Poll::Ready(out) = crate::coop::with_budget(|| future.as_mut().poll(&mut cx)) {
                return out;
            }
            // A token left by a wake during the poll makes this return at once.
            let _ = p.parker.borrow_mut().park(None);
        }
    };
    let mut run = Some(run);
    // The thread's parker, made on its first `block_on`; during thread-local destruction
    // (a destructor that blocks on a runtime) one made for this call.
    let out = crate::context::with_resources(|cx| {
        (run.take().expect("once"))(cx.parker().get_or_init(Parker::new))
    });
    match out {
        Some(out) => out,
        None => (run.take().expect("not run"))(&Parker::new()),
    }
}
