//! `block_on`: polling a future on the calling thread, parking it between polls.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use weft_reactor::{Driver, ThreadParker, ThreadUnparker, TimeDriver, Unpark};

struct UnparkWaker(ThreadUnparker);

impl Wake for UnparkWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// One driver (a timing wheel around a parker) and its waker per thread, made on first
    /// use: timers polled inside `block_on` live in this thread's own wheel.
    static PARKER: (std::cell::RefCell<TimeDriver<ThreadParker>>, Waker) = {
        let parker = TimeDriver::new(ThreadParker::new());
        let waker = Waker::from(Arc::new(UnparkWaker(parker.unparker())));
        (std::cell::RefCell::new(parker), waker)
    };
}

/// Polls `future` until it is ready, parking the thread whenever it is pending.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    PARKER.with(|(parker, waker)| {
        let mut cx = Context::from_waker(waker);
        let _timer = crate::time::set_thread_timer(parker.borrow().handle());
        loop {
            if let Poll::Ready(out) = crate::coop::with_budget(|| future.as_mut().poll(&mut cx)) {
                return out;
            }
            // A token left by a wake during the poll makes this return at once.
            let _ = parker.borrow_mut().park(None);
        }
    })
}
