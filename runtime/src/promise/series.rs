//! `series`: futures awaited one after the other, as one combinator.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of [`series`].
#[must_use = "futures do nothing unless awaited"]
pub struct Series<I: Iterator, T> {
    items: I,
    current: Option<I::Item>,
    values: Vec<T>,
    finished: bool,
}

// Only the current item's future is polled, through `Pin::new` (it is `Unpin`); nothing
// is pinned structurally.
impl<I: Iterator, T> Unpin for Series<I, T> where I::Item: Unpin {}

impl<I, T, E> Future for Series<I, T>
where
    I: Iterator,
    I::Item: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.finished, "`series` polled after completion");
        loop {
            let current = match &mut this.current {
                Some(fut) => fut,
                None => match this.items.next() {
                    Some(fut) => this.current.insert(fut),
                    None => {
                        this.finished = true;
                        return Poll::Ready(Ok(std::mem::take(&mut this.values)));
                    }
                },
            };
            let out = std::task::ready!(Pin::new(current).poll(cx));
            this.current = None;
            match out {
                Ok(v) => this.values.push(v),
                Err(e) => {
                    this.finished = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl<I: Iterator, T> fmt::Debug for Series<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Series")
            .field("done", &self.values.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Awaits the futures of `items` one after the other — each is taken from the iterator
/// only when the previous one has succeeded, so a lazy iterator (`.map(|i| fetch(i))`)
/// starts nothing early — and yields their values in order, or the first error (no later
/// item is started): `for (const item of items) await f(item)` as one combinator, the
/// promise chain `items.reduce((p, item) => p.then(() => f(item)), Promise.resolve())`.
///
/// The items' futures must be `Unpin` (box or pin them otherwise); nothing is allocated
/// but the values.
///
/// # Examples
///
/// ```
/// use weft_runtime::promise::{reject, resolve, series};
///
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     assert_eq!(series((1..=3).map(resolve::<u32, ()>)).await, Ok(vec![1, 2, 3]));
///
///     let mut started = 0;
///     let r = series((1..=3).map(|i| {
///         started += 1;
///         if i == 2 { reject("two") } else { resolve(i) }
///     }))
///     .await;
///     assert_eq!((r, started), (Err("two"), 2));
/// });
/// ```
pub fn series<I, T, E>(items: I) -> Series<I::IntoIter, T>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>> + Unpin,
{
    let items = items.into_iter();
    Series {
        values: Vec::with_capacity(items.size_hint().0),
        items,
        current: None,
        finished: false,
    }
}
