//! The same hyper "hello" server on weft and on tokio, for `ci/http_bench.sh` to load with
//! `wrk`.
//!
//! ```text
//! http_bench --runtime weft  --listen 127.0.0.1:0 [--workers 2] [--stats]   # serve until killed
//! http_bench --runtime tokio --listen 127.0.0.1:0 [--workers 2]
//! http_bench                                                      # short self-check of both
//! ```
//!
//! With `--listen` it prints `listening on ADDR` and serves until it is killed. `--stats`
//! (weft only) also prints, once a second to stderr, each worker's polls, parks, steals
//! and ring submissions over that second (`stats/s`: how the connections spread over the
//! workers and their rings) and the runtime's totals so far (`stats/total`, which
//! `ci/http_bench.sh` divides by a round's requests). Both
//! servers are the same hyper `http1` connection code, 2 workers by default, `TCP_NODELAY`
//! on, hyper's timer from the runtime; only the runtime and its I/O differ (weft's streams
//! are hyper I/O themselves; tokio's go through hyper-util's `TokioIo`).
//!
//! With no arguments (as `ci/examples.sh` runs every example) it starts each server in
//! turn, drives it with a built-in hyper client on the same runtime (16 connections x 200
//! requests), checks every answer and prints the rate: a smoke test, not the benchmark.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

mod on_weft {
    use super::*;
    use weft::net::TcpListener;

    pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    pub async fn serve(listener: TcpListener) {
        let http = hyper::server::conn::http1::Builder::new()
            .timer(weft::hyper::Timer::default())
            .clone();
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let http = http.clone();
            weft::spawn(async move {
                let _ = http
                    .serve_connection(stream, hyper::service::service_fn(hello))
                    .await;
            });
        }
    }

    pub async fn client(addr: SocketAddr, requests: usize) -> Result<(), Error> {
        let stream = weft::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(stream).await?;
        weft::spawn(conn);
        super::requests(&mut send, requests).await
    }

    pub fn run(listen: Option<&str>, workers: usize, stats: bool) -> Result<(), Error> {
        let rt = weft::Runtime::builder().worker_threads(workers).build()?;
        if stats {
            let metrics = rt.metrics();
            std::thread::spawn(move || print_stats(metrics));
        }
        rt.block_on(async {
            let listener = bind(listen.unwrap_or("127.0.0.1:0")).await?;
            let addr = listener.local_addr()?;
            match listen {
                Some(_) => {
                    println!("listening on {addr}");
                    serve(listener).await;
                    Ok(())
                }
                None => {
                    weft::spawn(serve(listener));
                    let start = Instant::now();
                    let clients: Vec<_> = (0..CLIENTS)
                        .map(|_| weft::spawn(client(addr, PER_CLIENT)))
                        .collect();
                    for c in clients {
                        c.await??;
                    }
                    report("weft", start);
                    Ok(())
                }
            }
        })
    }
}

/// Prints each worker's counters over the last second, and the totals over all workers
/// so far, once a second, for ever.
fn print_stats(metrics: weft::RuntimeMetrics) {
    let mut last = metrics.workers();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = metrics.workers();
        let line: Vec<String> = now
            .iter()
            .zip(&last)
            .enumerate()
            .map(|(i, (n, l))| {
                format!(
                    "w{i}: polls {} parks {} steals {} ring_ops {}",
                    n.polls - l.polls,
                    n.parks - l.parks,
                    n.steals - l.steals,
                    n.io_submissions - l.io_submissions
                )
            })
            .collect();
        eprintln!("stats/s {}", line.join(" | "));
        let sum = |f: fn(&weft::WorkerMetrics) -> u64| now.iter().map(f).sum::<u64>();
        eprintln!(
            "stats/total polls {} parks {} steals {} ring_ops {}",
            sum(|w| w.polls),
            sum(|w| w.parks),
            sum(|w| w.steals),
            sum(|w| w.io_submissions)
        );
        last = now;
    }
}

mod on_tokio {
    use super::*;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::net::TcpListener;

    pub async fn serve(listener: TcpListener) {
        let http = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .clone();
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let http = http.clone();
            tokio::spawn(async move {
                let _ = http
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                    .await;
            });
        }
    }

    pub async fn client(addr: SocketAddr, requests: usize) -> Result<(), Error> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        super::requests(&mut send, requests).await
    }

    pub fn run(listen: Option<&str>, workers: usize) -> Result<(), Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let listener = TcpListener::bind(listen.unwrap_or("127.0.0.1:0")).await?;
            let addr = listener.local_addr()?;
            match listen {
                Some(_) => {
                    println!("listening on {addr}");
                    serve(listener).await;
                    Ok(())
                }
                None => {
                    tokio::spawn(serve(listener));
                    let start = Instant::now();
                    let clients: Vec<_> = (0..CLIENTS)
                        .map(|_| tokio::spawn(client(addr, PER_CLIENT)))
                        .collect();
                    for c in clients {
                        c.await??;
                    }
                    report("tokio", start);
                    Ok(())
                }
            }
        })
    }
}

const CLIENTS: usize = 16;
const PER_CLIENT: usize = 200;

/// Sends `n` GETs on one connection and checks each answer.
async fn requests(
    send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    n: usize,
) -> Result<(), Error> {
    for _ in 0..n {
        send.ready().await?;
        let req = Request::get("/")
            .header("host", "127.0.0.1")
            .body(Empty::new())?;
        let resp = send.send_request(req).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        if body != "hello" {
            return Err(format!("unexpected body {body:?}").into());
        }
    }
    Ok(())
}

fn report(runtime: &str, start: Instant) {
    let n = CLIENTS * PER_CLIENT;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{runtime:>5}: {n} requests on {CLIENTS} connections in {:.0} ms ({:.0} req/s, client and server on one runtime)",
        secs * 1e3,
        n as f64 / secs
    );
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runtime = None;
    let mut listen = None;
    let mut workers = 2;
    let mut stats = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--runtime" => runtime = Some(value()?),
            "--listen" => listen = Some(value()?),
            "--stats" => stats = true,
            "--workers" => {
                let v = value()?;
                workers = v.parse().map_err(|e| format!("--workers {v}: {e}"))?;
            }
            _ => {
                eprintln!(
                    "usage: http_bench [--runtime weft|tokio] [--listen ADDR] [--workers N] [--stats]"
                );
                std::process::exit(2);
            }
        }
    }
    match (runtime.as_deref(), listen.as_deref()) {
        (None, None) => {
            on_weft::run(None, workers, stats)?;
            on_tokio::run(None, workers)
        }
        (Some("weft"), l) => on_weft::run(l, workers, stats),
        (Some("tokio"), l) => on_tokio::run(l, workers),
        (Some(other), _) => Err(format!("--runtime {other}: expected weft or tokio").into()),
        (None, Some(_)) => Err("--listen needs --runtime weft|tokio".into()),
    }
}
