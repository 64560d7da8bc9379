//! [`retry`]: run a fallible operation again until it succeeds or the attempts run out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Calls `factory(1)`, `factory(2)`, … `factory(attempts)` one after the other, awaiting
/// each future, and yields the first `Ok`; after `attempts` failures, yields the **last**
/// error.
///
/// Nothing happens until the returned future is first polled. There is no delay between
/// attempts; to back off, let the factory wait before it tries, e.g.
/// `retry(5, |n| async move { delay(base * (n - 1)).await; fetch().await })`. Each finished
/// attempt is dropped before the next starts; dropping the `Retry` drops the attempt in
/// progress.
///
/// # Panics
///
/// Here, at once, if `attempts` is 0: there would be no error to return.
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::{reject, resolve, retry, PromiseExt};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     // Succeeds on the third attempt.
///     let out = retry(5, |attempt| async move {
///         if attempt < 3 { Err(format!("attempt {attempt} failed")) } else { Ok(attempt) }
///     });
///     assert_eq!(out.await, Ok(3));
///
///     // Never succeeds: the last error comes back.
///     let out = retry(2, |attempt| reject::<(), _>(attempt));
///     assert_eq!(out.await, Err(2));
/// });
/// ```
#[track_caller]
pub fn retry<T, E, F, Fut>(attempts: u32, factory: F) -> Retry<F, Fut>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    assert!(attempts > 0, "`retry` needs at least one attempt, got 0");
    Retry {
        factory,
        attempt: 0,
        attempts,
        fut: None,
    }
}

/// The future of [`retry`].
#[must_use = "futures do nothing unless awaited"]
pub struct Retry<F, Fut> {
    factory: F,
    /// The number of the attempt in `fut` (0 before the first poll).
    attempt: u32,
    attempts: u32,
    /// The attempt under way; `None` before the first poll and after completion.
    fut: Option<Fut>,
}

// The factory is not structurally pinned; only the attempt in progress is.
impl<F, Fut: Unpin> Unpin for Retry<F, Fut> {}

impl<T, E, F, Fut> Future for Retry<F, Fut>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        // Pinning: `fut` is structurally pinned: it is reached only through the
        // `Pin::new_unchecked` below and never moved; it is replaced only by assignment,
        // which drops the old attempt in place, as `Pin::set` does. `Retry` has no `Drop`
        // impl. `factory` and the counters are not structurally pinned.
        // SAFETY: nothing reached through `this` is moved while pinned (the note above).
        let this = unsafe { self.get_unchecked_mut() };
        loop {
            let Some(fut) = this.fut.as_mut() else {
                assert!(
                    this.attempt < this.attempts,
                    "`retry` polled after completion"
                );
                this.attempt += 1;
                this.fut = Some((this.factory)(this.attempt));
                continue;
            };
            // SAFETY: `fut` lives in the pinned `Retry` and is never moved (above).
            let fut = unsafe { Pin::new_unchecked(fut) };
            let out = std::task::ready!(fut.poll(cx));
            // Drop the finished attempt in place before starting the next one.
            this.fut = None;
            match out {
                Ok(t) => {
                    this.attempt = this.attempts;
                    return Poll::Ready(Ok(t));
                }
                Err(e) if this.attempt >= this.attempts => return Poll::Ready(Err(e)),
                Err(_) => {}
            }
        }
    }
}

impl<F, Fut: fmt::Debug> fmt::Debug for Retry<F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("attempt", &self.attempt)
            .field("attempts", &self.attempts)
            .field("future", &self.fut)
            .finish_non_exhaustive()
    }
}
