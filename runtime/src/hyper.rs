//! hyper 1.x on weft (feature `hyper`): an [`Executor`] and a [`Timer`] for hyper's
//! builders; with the `hyper::rt::{Read, Write}` impls of [`net`](crate::net)'s streams,
//! a hyper server or client runs on weft with no tokio runtime.
//!
//! # Examples
//!
//! A server connection and a client on one runtime:
//!
//! ```
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::Bytes;
//! use weft_runtime::net::{TcpListener, TcpStream};
//!
//! weft_runtime::Runtime::new()?.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     weft_runtime::spawn(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let svc = hyper::service::service_fn(|_req| async {
//!             Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("hello"))))
//!         });
//!         hyper::server::conn::http1::Builder::new()
//!             .timer(weft_runtime::hyper::Timer::default())
//!             .serve_connection(stream, svc)
//!             .await
//!             .unwrap();
//!     });
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut send, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
//!     weft_runtime::spawn(conn);
//!     let req = hyper::Request::get("/").body(Empty::<Bytes>::new()).unwrap();
//!     let body = send.send_request(req).await.unwrap().into_body().collect().await.unwrap();
//!     assert_eq!(body.to_bytes(), "hello");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::Handle;

/// hyper's executor on weft: spawns the futures hyper hands it (HTTP/2 streams, a
/// client's connection tasks) as weft tasks.
///
/// The default spawns on the runtime of the thread that calls [`execute`] (and panics
/// outside one, as [`spawn`](crate::spawn) does); [`Executor::with_handle`] spawns on a
/// given runtime from any thread.
///
/// [`execute`]: ::hyper::rt::Executor::execute
#[derive(Clone, Debug, Default)]
pub struct Executor {
    handle: Option<Handle>,
}

impl Executor {
    /// An executor that spawns on the current runtime (the default).
    pub fn new() -> Executor {
        Executor::default()
    }

    /// An executor that spawns on `handle`'s runtime, whichever thread calls it.
    pub fn with_handle(handle: Handle) -> Executor {
        Executor {
            handle: Some(handle),
        }
    }
}

impl<F> ::hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        match &self.handle {
            Some(h) => drop(h.spawn(fut)),
            None => drop(crate::spawn(fut)),
        }
    }
}

/// hyper's timer on weft: its sleeps are [`time::Sleep`](crate::time::Sleep)s on the
/// worker's timing wheel, and [`reset`](::hyper::rt::Timer::reset) moves one in place.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer(());

impl Timer {
    /// The timer (the same as the default).
    pub fn new() -> Timer {
        Timer(())
    }
}

/// A weft sleep as a hyper sleep.
struct HyperSleep(crate::time::Sleep);

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl ::hyper::rt::Sleep for HyperSleep {}

impl ::hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn ::hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(mut s) => Pin::new(&mut s.0).reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
