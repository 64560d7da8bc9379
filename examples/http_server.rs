//! An HTTP/1.1 server: hyper 1.x on weft, no tokio runtime. "hello" on `/`, 404 elsewhere.
//!
//! ```text
//! cargo run --example http_server                             # self-test: server and client
//! cargo run --example http_server -- --listen 127.0.0.1:8080  # serve until Ctrl-C
//! ```
//!
//! With no arguments it serves on 127.0.0.1 (a port the kernel picks), sends a few
//! requests with a hyper client on one keep-alive connection, prints each answer, stops
//! the server gracefully and exits. With `--listen` it serves until Ctrl-C, then lets every
//! open connection finish the request it is on before it exits.
//!
//! The streams are hyper's I/O directly (weft's `hyper` feature implements
//! `hyper::rt::{Read, Write}`); `weft::hyper::Timer` drives hyper's timeouts.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use weft::net::{TcpListener, TcpStream};
use weft::sync::watch;
use weft::task::JoinSet;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/" {
        return Ok(Response::new(Full::new(Bytes::from("hello"))));
    }
    let mut resp = Response::new(Full::new(Bytes::from("not found")));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    Ok(resp)
}

/// Serves one connection; once `stop` changes, finishes the request it is serving and
/// closes it.
async fn connection(stream: TcpStream, mut stop: watch::Receiver<bool>) -> hyper::Result<()> {
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(weft::hyper::Timer::default())
        .serve_connection(stream, hyper::service::service_fn(hello));
    weft::pin!(conn);
    weft::select! {
        r = &mut conn => return r,
        _ = stop.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// Accepts connections until `stop` changes, then waits for the open ones to finish.
async fn serve(listener: TcpListener, mut stop: watch::Receiver<bool>) -> io::Result<()> {
    let mut open = JoinSet::new();
    loop {
        weft::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                let stop = stop.clone();
                open.spawn(async move {
                    if let Err(e) = connection(stream, stop).await {
                        eprintln!("{peer}: {e}");
                    }
                });
            }
            _ = stop.changed() => break,
        }
        // Reap the finished connections as we go.
        while open.try_join_next().is_some() {}
    }
    let n = open.len();
    while open.join_next().await.is_some() {}
    println!("server stopped; {n} open connection(s) closed gracefully");
    Ok(())
}

/// Sends `paths` in turn on one keep-alive connection; prints each answer.
async fn client(addr: SocketAddr, paths: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(stream).await?;
    weft::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("client connection: {e}");
        }
    });
    for path in paths {
        send.ready().await?;
        let req = Request::get(*path)
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        println!(
            "GET {path} -> {status} {:?}",
            String::from_utf8_lossy(&body)
        );
        let want = if *path == "/" {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, want, "GET {path}");
    }
    Ok(())
}

async fn self_test() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("http server on http://{addr}");
    let (stop_tx, stop) = watch::channel(false);
    let server = weft::spawn(serve(listener, stop));
    let mut paths = vec!["/"; 8];
    paths.push("/missing");
    client(addr, &paths).await?;
    stop_tx.send(true)?;
    server.await??;
    Ok(())
}

#[weft::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => self_test().await,
        [flag, addr] if flag == "--listen" => {
            let listener = TcpListener::bind(addr.as_str()).await?;
            println!(
                "http server on http://{}; Ctrl-C stops it",
                listener.local_addr()?
            );
            let (stop_tx, stop) = watch::channel(false);
            let server = weft::spawn(serve(listener, stop));
            weft::signal::ctrl_c().await?;
            println!("stopping: finishing the open connections");
            stop_tx.send(true)?;
            server.await??;
            Ok(())
        }
        _ => {
            eprintln!("usage: http_server [--listen ADDR]");
            std::process::exit(2);
        }
    }
}
