use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Gives the worker to the other tasks for one turn: the calling task goes to the back of
/// its worker's run queue and is polled again after what is already queued there.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     for _ in 0..3 {
///         weft_runtime::task::yield_now().await;
///     }
/// });
/// ```
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Woken during its own poll, the task is re-queued behind the others (not in the
        // LIFO slot): see `Schedule::yield_now`.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
