//! hyper 1.x on weft with no tokio runtime: a hyper client against a hyper server through
//! each I/O trait feature (`hyper::rt` directly, `tokio-io` under hyper-util's `TokioIo`,
//! `futures-io` under a small adapter here), keep-alive over many requests, and a 1 MiB
//! POST body echoed and checked. Run on both drivers (`WEFT_IO_DRIVER=fallback` too).
//! Every socket binds 127.0.0.1 on port 0.

#[path = "../runtime/tests/common/mod.rs"]
mod common;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::{hang_guard, watchdog};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use weft::Runtime;
use weft::net::{TcpListener, TcpStream};

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// Which trait the connection's I/O goes through.
#[derive(Clone, Copy, Debug)]
enum Via {
    Hyper,
    TokioIo,
    FuturesIo,
}

/// `futures_io` streams as hyper I/O (what a user of the `futures-io` feature writes).
struct FuturesIo<T>(T);

impl<T: futures_io::AsyncRead + Unpin> hyper::rt::Read for FuturesIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut tmp = [0u8; 16 * 1024];
        let want = buf.remaining().min(tmp.len());
        let n = std::task::ready!(Pin::new(&mut self.0).poll_read(cx, &mut tmp[..want]))?;
        buf.put_slice(&tmp[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<T: futures_io::AsyncWrite + Unpin> hyper::rt::Write for FuturesIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => Ok(Response::new(Full::new(Bytes::from("hello")))),
        (&Method::POST, "/echo") => {
            let body = req.into_body().collect().await?.to_bytes();
            Ok(Response::new(Full::new(body)))
        }
        _ => {
            let mut not_found = Response::new(Full::new(Bytes::from("not found")));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            Ok(not_found)
        }
    }
}

/// Serves every connection of `listener`, each as its own task.
async fn serve(listener: TcpListener, via: Via) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        weft::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new()
                .timer(weft::hyper::Timer::default())
                .clone();
            let svc = hyper::service::service_fn(handle);
            let r = match via {
                Via::Hyper => http.serve_connection(stream, svc).await,
                Via::TokioIo => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    http.serve_connection(io, svc).await
                }
                Via::FuturesIo => http.serve_connection(FuturesIo(stream), svc).await,
            };
            r.expect("server connection");
        });
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr, via: Via) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    macro_rules! handshake {
        ($io:expr) => {{
            let (send, conn) = hyper::client::conn::http1::handshake($io).await.unwrap();
            weft::spawn(async move { conn.await.expect("client connection") });
            send
        }};
    }
    match via {
        Via::Hyper => handshake!(stream),
        Via::TokioIo => handshake!(hyper_util::rt::TokioIo::new(stream)),
        Via::FuturesIo => handshake!(FuturesIo(stream)),
    }
}

async fn request(
    send: &mut Sender,
    method: Method,
    path: &str,
    body: Bytes,
) -> (StatusCode, Bytes) {
    send.ready().await.unwrap();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Full::new(body))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// Starts a server through `via`, then runs `client` against it with a client through
/// the same trait.
fn with_server<F, Fut>(what: &'static str, via: Via, client: F)
where
    F: FnOnce(SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    hang_guard();
    watchdog(what, move || {
        rt().block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = weft::spawn(serve(listener, via));
            weft::spawn(client(addr)).await.unwrap();
            server.abort();
        })
    });
}

fn hello_and_not_found(via: Via) {
    with_server("hello", via, move |addr| async move {
        let mut send = connect(addr, via).await;
        let (status, body) = request(&mut send, Method::GET, "/", Bytes::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "hello");
        let (status, _) = request(&mut send, Method::GET, "/nowhere", Bytes::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

#[test]
fn hello_through_hyper_rt() {
    hello_and_not_found(Via::Hyper);
}

#[test]
fn hello_through_tokio_io() {
    hello_and_not_found(Via::TokioIo);
}

#[test]
fn hello_through_futures_io() {
    hello_and_not_found(Via::FuturesIo);
}

fn keep_alive(via: Via) {
    with_server("keep-alive", via, move |addr| async move {
        let mut send = connect(addr, via).await;
        for i in 0..500 {
            let body = Bytes::from(format!("request {i}"));
            let (status, got) = request(&mut send, Method::POST, "/echo", body.clone()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(got, body, "request {i}");
        }
    });
}

#[test]
fn keep_alive_many_requests_through_hyper_rt() {
    keep_alive(Via::Hyper);
}

#[test]
fn keep_alive_many_requests_through_tokio_io() {
    keep_alive(Via::TokioIo);
}

#[test]
fn keep_alive_many_requests_through_futures_io() {
    keep_alive(Via::FuturesIo);
}

fn big_post(via: Via) {
    with_server("1 MiB POST", via, move |addr| async move {
        let body: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let body = Bytes::from(body);
        let mut send = connect(addr, via).await;
        let (status, got) = request(&mut send, Method::POST, "/echo", body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got.len(), body.len());
        assert!(got == body, "the echoed body differs");
    });
}

#[test]
fn post_of_1_mib_echoed_through_hyper_rt() {
    big_post(Via::Hyper);
}

#[test]
fn post_of_1_mib_echoed_through_tokio_io() {
    big_post(Via::TokioIo);
}

#[test]
fn post_of_1_mib_echoed_through_futures_io() {
    big_post(Via::FuturesIo);
}

#[test]
fn many_clients_at_once() {
    with_server("many clients", Via::Hyper, |addr| async move {
        let mut clients = Vec::new();
        for c in 0..32 {
            clients.push(weft::spawn(async move {
                let mut send = connect(addr, Via::Hyper).await;
                for i in 0..20 {
                    let body = Bytes::from(format!("client {c} request {i}"));
                    let (_, got) = request(&mut send, Method::POST, "/echo", body.clone()).await;
                    assert_eq!(got, body);
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
    });
}
