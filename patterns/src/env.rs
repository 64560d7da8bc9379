//! What an `async fn` pattern needs from its runtime, so that the same code runs on weft and,
//! as the baseline, on tokio.
//!
//! The `async fn` style is written once, generic over [`Env`]; monomorphisation makes the
//! indirection free. The callback and combinator styles are weft's own APIs and have no
//! tokio twin.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::service::{Kind, SvcError};

/// The error of [`Env::timeout`]: the limit passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

/// A runtime as the `async fn` patterns see it: the service, timers, spawning.
pub trait Env: Clone + Send + Sync + 'static {
    /// The service call's future (one type for successes and failures, so that a set of
    /// calls is homogeneous).
    type Call: Future<Output = Result<u64, SvcError>> + Send + Unpin + 'static;

    /// The service, failing with `SvcError(x)` if `fail`.
    fn call(&self, kind: Kind, x: u64, fail: bool) -> Self::Call;

    /// `svc(kind, x)`.
    fn svc(&self, kind: Kind, x: u64) -> Self::Call {
        self.call(kind, x, false)
    }

    /// `svc_fail(kind, x)`.
    fn svc_fail(&self, kind: Kind, x: u64) -> Self::Call {
        self.call(kind, x, true)
    }

    /// Waits `d`.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static;

    /// Runs `f` for at most `d`; `f` is dropped when the time runs out.
    fn timeout<F>(
        &self,
        d: Duration,
        f: F,
    ) -> impl Future<Output = Result<F::Output, TimedOut>> + Send + 'static
    where
        F: Future + Send + 'static;

    /// Spawns `f` as a task; the returned future is its output (panics are resumed).
    fn spawn<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// The runtime's name in tables.
    fn name(&self) -> &'static str;
}

/// weft as an [`Env`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Weft;

impl Env for Weft {
    type Call = crate::service::Svc;

    #[inline]
    fn call(&self, kind: Kind, x: u64, fail: bool) -> Self::Call {
        crate::service::call(kind, x, fail)
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static {
        weft::time::sleep(d)
    }

    fn timeout<F>(
        &self,
        d: Duration,
        f: F,
    ) -> impl Future<Output = Result<F::Output, TimedOut>> + Send + 'static
    where
        F: Future + Send + 'static,
    {
        MapErr(weft::time::timeout(d, f))
    }

    fn spawn<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Joined(weft::spawn(f))
    }

    fn name(&self) -> &'static str {
        "weft"
    }
}

/// `weft::time::Timeout` with its error mapped to [`TimedOut`].
struct MapErr<F>(weft::time::Timeout<F>);

impl<F: Future> Future for MapErr<F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field: it is never moved out of `self`.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        inner.poll(cx).map(|r| r.map_err(|_| TimedOut))
    }
}

/// A weft `JoinHandle` whose panics are resumed in the awaiting task.
struct Joined<T>(weft::JoinHandle<T>);

impl<T> Future for Joined<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match std::task::ready!(Pin::new(&mut self.0).poll(cx)) {
            Ok(v) => Poll::Ready(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a pattern's task was cancelled: {e}"),
        }
    }
}

#[cfg(feature = "tokio")]
pub use tokio_env::Tokio;

#[cfg(feature = "tokio")]
mod tokio_env {
    use super::*;
    use crate::service::{BLOCK_SIZE, BLOCKS, Phase, count_started, file_value, outcome, step};

    /// tokio as an [`Env`]: the baseline a Rust user would otherwise pick.
    ///
    /// - `ready`: the future wakes itself once and returns `Pending` (what
    ///   `tokio::task::yield_now` does, without its async-fn wrapper);
    /// - `timer`: `tokio::time::sleep`;
    /// - `file`: `pread` on tokio's blocking pool — what `tokio::fs` does inside (its `File`
    ///   has no positioned read);
    /// - `net`: `tokio::net` against the same server protocol, served on the same runtime.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Tokio;

    /// A started call of any kind but `ready`.
    enum Other {
        Timer(Pin<Box<tokio::time::Sleep>>),
        File(tokio::task::JoinHandle<(std::io::Result<usize>, Vec<u8>)>),
        Net(crate::net::TokioNetCall),
    }

    /// The tokio service call's future: shaped as weft's [`Svc`](crate::Svc) is, with the
    /// same inlined path for a `ready` call, so that the two runtimes await the same
    /// amount of service code.
    pub struct TokioCall {
        /// `None` for a `ready` call.
        other: Option<Other>,
        x: u64,
        fail: bool,
        phase: Phase,
    }

    impl fmt::Debug for TokioCall {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TokioCall")
                .field("ready", &self.other.is_none())
                .field("x", &self.x)
                .field("phase", &self.phase)
                .finish_non_exhaustive()
        }
    }

    impl TokioCall {
        /// Polls a call of any kind but `ready`.
        #[inline(never)]
        fn poll_other(&mut self, cx: &mut Context<'_>) -> Poll<Result<u64, SvcError>> {
            let other = self.other.as_mut().expect("a ready call is polled inline");
            let (kind, value) = match other {
                Other::Timer(s) => {
                    std::task::ready!(s.as_mut().poll(cx));
                    (Kind::TIMER, step(self.x))
                }
                Other::File(j) => {
                    let r = std::task::ready!(Pin::new(j).poll(cx)).expect("pread job");
                    (Kind::File, file_value(self.x, r))
                }
                Other::Net(call) => {
                    // The reply decides the outcome (and counts the call complete).
                    let out = std::task::ready!(call.as_mut().poll(cx));
                    self.phase = Phase::Done;
                    self.other = None;
                    return Poll::Ready(out);
                }
            };
            self.phase = Phase::Done;
            self.other = None;
            Poll::Ready(outcome(kind, self.x, self.fail, value))
        }
    }

    impl Future for TokioCall {
        type Output = Result<u64, SvcError>;

        #[inline]
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = &mut *self;
            match this.phase {
                Phase::Fresh if this.other.is_none() => {
                    this.phase = Phase::Yielded;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Phase::Fresh => this.poll_other(cx),
                Phase::Yielded => {
                    this.phase = Phase::Done;
                    Poll::Ready(outcome(Kind::Ready, this.x, this.fail, step(this.x)))
                }
                Phase::Done => panic!("TokioCall polled after it completed"),
            }
        }
    }

    /// A call of any kind but `ready`, started.
    #[inline(never)]
    fn start(kind: Kind, x: u64, fail: bool) -> Other {
        match kind {
            Kind::Ready => unreachable!("a ready call starts inline"),
            Kind::Timer(d) => Other::Timer(Box::pin(tokio::time::sleep(d))),
            Kind::File => {
                let file = crate::service::data_file_std().clone();
                let pos = (x % BLOCKS) * BLOCK_SIZE as u64;
                Other::File(tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; BLOCK_SIZE];
                    let r = file.read_at(&mut buf, pos);
                    (r, buf)
                }))
            }
            Kind::Net => Other::Net(crate::net::tokio_call(x, fail)),
        }
    }

    impl Env for Tokio {
        type Call = TokioCall;

        #[inline]
        fn call(&self, kind: Kind, x: u64, fail: bool) -> TokioCall {
            count_started();
            let other = match kind {
                Kind::Ready => None,
                _ => Some(start(kind, x, fail)),
            };
            TokioCall {
                other,
                x,
                fail,
                phase: Phase::Fresh,
            }
        }

        fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static {
            tokio::time::sleep(d)
        }

        fn timeout<F>(
            &self,
            d: Duration,
            f: F,
        ) -> impl Future<Output = Result<F::Output, TimedOut>> + Send + 'static
        where
            F: Future + Send + 'static,
        {
            let t = tokio::time::timeout(d, f);
            async move { t.await.map_err(|_| TimedOut) }
        }

        fn spawn<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
        where
            F: Future + Send + 'static,
            F::Output: Send + 'static,
        {
            let h = tokio::spawn(f);
            async move {
                match h.await {
                    Ok(v) => v,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => panic!("a pattern's task was cancelled: {e}"),
                }
            }
        }

        fn name(&self) -> &'static str {
            "tokio"
        }
    }
}
