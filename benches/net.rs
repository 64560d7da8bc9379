//! Socket benchmarks: weft's `net` beside tokio's, on loopback.
//!
//! ```text
//! cargo bench --bench net
//! cargo bench --bench net -- net/tcp_echo/weft
//! WEFT_BENCH_WORKERS=4 cargo bench --bench net
//! ```
//!
//! - `net/tcp_echo`: one element = one 64-byte round trip (the client writes 64 bytes,
//!   the server reads and writes them back, the client reads them). 64 connections, with
//!   client and server on the same runtime of `WEFT_BENCH_WORKERS` workers (default 2);
//!   an iteration is 64 tasks × 100 round trips, one task per connection, all at once.
//!   The connections, and the 64 server tasks that echo until end of stream, are set up
//!   once per function, outside the timing, on its first call; every echoed message is
//!   checked. Functions:
//!   - `weft`: `weft::net::TcpStream` on an io_uring runtime (`UringMode::Auto`).
//!   - `weft_fallback`: the same on `UringMode::Disabled` (readiness on each worker's
//!     epoll): what users without io_uring get.
//!   - `tokio`: `tokio::net::TcpStream` with `AsyncReadExt`/`AsyncWriteExt` on a
//!     multi-thread runtime with as many workers; each client stream sits in an
//!     uncontended `tokio::sync::Mutex` so that the batch tasks can borrow it.
//!
//! - `net/tcp_echo_4k`: the same with 4 KiB messages, 25 round trips per connection and
//!   iteration.
//! - `net/accept_connect`: one element = one connection: a `connect` answered by an
//!   `accept`, both closed (the client with `SO_LINGER` 0, so no `TIME_WAIT` piles up).
//!   An iteration is 256 connections from 8 client tasks, with one task accepting; the
//!   same three functions (on the ring driver, weft's accept and connect are ring ops).
//!
//! Targets (from the sockets issue): `weft` at least 1.25× `tokio` on `tcp_echo`, 1.2× on
//! `tcp_echo_4k`; `weft_fallback` at least 0.9×.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use criterion::{Criterion, Throughput};

const CONNS: usize = 64;

/// One echo benchmark's shape: message size and round trips per connection per iteration.
#[derive(Clone, Copy)]
struct Shape {
    msg: usize,
    rounds: usize,
}

const SMALL: Shape = Shape {
    msg: 64,
    rounds: 100,
};
const LARGE: Shape = Shape {
    msg: 4096,
    rounds: 25,
};

fn workers() -> usize {
    std::env::var("WEFT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

fn message(conn: usize, round: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (conn * 31 + round * 7 + k) as u8)
        .collect()
}

struct Weft {
    rt: weft::Runtime,
    clients: Arc<Vec<weft::net::TcpStream>>,
    shape: Shape,
}

fn weft_runtime(io: weft::UringMode) -> weft::Runtime {
    weft::Runtime::builder()
        .worker_threads(workers())
        .io_uring(io)
        .build()
        .expect("weft runtime")
}

fn weft_setup(io: weft::UringMode, shape: Shape) -> Weft {
    let rt = weft_runtime(io);
    let msg = shape.msg;
    let clients = rt.block_on(async {
        let listener = weft::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let c = weft::net::TcpStream::connect(addr).await.unwrap();
            c.set_nodelay(true).unwrap();
            let (s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            weft::spawn(async move {
                let mut buf = Vec::with_capacity(msg);
                loop {
                    let (r, b) = s.read(buf).await;
                    if !matches!(r, Ok(n) if n > 0) {
                        return;
                    }
                    let (r, b) = s.write_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    buf = b;
                }
            });
            clients.push(c);
        }
        clients
    });
    Weft {
        rt,
        clients: Arc::new(clients),
        shape,
    }
}

fn weft_batch(w: &Weft) {
    let Shape { msg, rounds } = w.shape;
    w.rt.block_on(async {
        let tasks: Vec<_> = (0..CONNS)
            .map(|i| {
                let clients = w.clients.clone();
                weft::spawn(async move {
                    let c = &clients[i];
                    let mut buf = Vec::with_capacity(msg);
                    for round in 0..rounds {
                        let m = message(i, round, msg);
                        buf.clear();
                        buf.extend_from_slice(&m);
                        let (r, b) = c.write_all(buf).await;
                        r.unwrap();
                        let (r, b) = c.read_exact(b).await;
                        r.unwrap();
                        assert_eq!(b[..], m[..], "connection {i}: wrong echo");
                        buf = b;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

struct Tokio {
    rt: tokio::runtime::Runtime,
    clients: Arc<Vec<tokio::sync::Mutex<tokio::net::TcpStream>>>,
    shape: Shape,
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn tokio_setup(shape: Shape) -> Tokio {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio_runtime();
    let msg = shape.msg;
    let clients = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.set_nodelay(true).unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; msg];
                loop {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
            clients.push(tokio::sync::Mutex::new(c));
        }
        clients
    });
    Tokio {
        rt,
        clients: Arc::new(clients),
        shape,
    }
}

fn tokio_batch(t: &Tokio) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Shape { msg, rounds } = t.shape;
    t.rt.block_on(async {
        let tasks: Vec<_> = (0..CONNS)
            .map(|i| {
                let clients = t.clients.clone();
                tokio::spawn(async move {
                    let mut c = clients[i].lock().await;
                    let mut buf = vec![0u8; msg];
                    for round in 0..rounds {
                        let m = message(i, round, msg);
                        c.write_all(&m).await.unwrap();
                        c.read_exact(&mut buf).await.unwrap();
                        assert_eq!(buf, m, "connection {i}: wrong echo");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn echo_group(c: &mut Criterion, name: &str, shape: Shape, cells: &'static EchoCells) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements((CONNS * shape.rounds) as u64));
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);
    g.bench_function("weft", |b| {
        let w = cells
            .weft
            .get_or_init(|| weft_setup(weft::UringMode::Auto, shape));
        b.iter(|| weft_batch(w))
    });
    g.bench_function("tokio", |b| {
        let t = cells.tokio.get_or_init(|| tokio_setup(shape));
        b.iter(|| tokio_batch(t))
    });
    g.bench_function("weft_fallback", |b| {
        let w = cells
            .fallback
            .get_or_init(|| weft_setup(weft::UringMode::Disabled, shape));
        b.iter(|| weft_batch(w))
    });
    g.finish();
}

/// Each echo group's runtimes and connections, built on first use.
struct EchoCells {
    weft: OnceLock<Weft>,
    tokio: OnceLock<Tokio>,
    fallback: OnceLock<Weft>,
}

impl EchoCells {
    const fn new() -> EchoCells {
        EchoCells {
            weft: OnceLock::new(),
            tokio: OnceLock::new(),
            fallback: OnceLock::new(),
        }
    }
}

fn tcp_echo(c: &mut Criterion) {
    static CELLS: EchoCells = EchoCells::new();
    echo_group(c, "net/tcp_echo", SMALL, &CELLS);
}

fn tcp_echo_4k(c: &mut Criterion) {
    static CELLS: EchoCells = EchoCells::new();
    echo_group(c, "net/tcp_echo_4k", LARGE, &CELLS);
}

/// Connections per `accept_connect` iteration, and the client tasks that make them.
const ACCEPTS: usize = 256;
const CONNECTORS: usize = 8;

fn weft_accept_batch(rt: &weft::Runtime) {
    rt.block_on(async {
        let listener = weft::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = weft::spawn(async move {
            for _ in 0..ACCEPTS {
                let (s, _) = listener.accept().await.unwrap();
                drop(s);
            }
        });
        let clients: Vec<_> = (0..CONNECTORS)
            .map(|_| {
                weft::spawn(async move {
                    for _ in 0..ACCEPTS / CONNECTORS {
                        let c = weft::net::TcpStream::connect(addr).await.unwrap();
                        c.set_linger(Some(Duration::ZERO)).unwrap();
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

fn tokio_accept_batch(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..ACCEPTS {
                let (s, _) = listener.accept().await.unwrap();
                drop(s);
            }
        });
        let clients: Vec<_> = (0..CONNECTORS)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..ACCEPTS / CONNECTORS {
                        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
                        // Deprecated because a lingering close blocks the thread; a zero
                        // linger resets at once and never blocks.
                        #[allow(deprecated)]
                        c.set_linger(Some(Duration::ZERO)).unwrap();
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

fn accept_connect(c: &mut Criterion) {
    let mut g = c.benchmark_group("net/accept_connect");
    g.throughput(Throughput::Elements(ACCEPTS as u64));
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);
    static WEFT: OnceLock<weft::Runtime> = OnceLock::new();
    static TOKIO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    static FALLBACK: OnceLock<weft::Runtime> = OnceLock::new();
    g.bench_function("weft", |b| {
        let rt = WEFT.get_or_init(|| weft_runtime(weft::UringMode::Auto));
        b.iter(|| weft_accept_batch(rt))
    });
    g.bench_function("tokio", |b| {
        let rt = TOKIO.get_or_init(tokio_runtime);
        b.iter(|| tokio_accept_batch(rt))
    });
    g.bench_function("weft_fallback", |b| {
        let rt = FALLBACK.get_or_init(|| weft_runtime(weft::UringMode::Disabled));
        b.iter(|| weft_accept_batch(rt))
    });
    g.finish();
}

criterion::criterion_group!(benches, tcp_echo, tcp_echo_4k, accept_connect);

/// `WEFT_NET_COUNT=weft|weft_fallback|tokio` with `WEFT_NET_BATCHES=n`: no criterion, just
/// the `tcp_echo` setup and `n` batches (64 × 100 round trips each), for counting
/// syscalls with `strace -c -f` or instructions with `perf stat` (run once with `n = 0`
/// and subtract the setup); `WEFT_NET_SHAPE=4k` runs the `tcp_echo_4k` shape instead
/// (64 × 25 round trips of 4 KiB a batch). `weft_accept|tokio_accept` run `n`
/// `accept_connect` batches (256 connections each) instead.
fn count_mode(which: &str) {
    let batches: usize = std::env::var("WEFT_NET_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let shape = match std::env::var("WEFT_NET_SHAPE").as_deref() {
        Ok("4k") => LARGE,
        Ok("64") | Err(_) => SMALL,
        Ok(other) => panic!("WEFT_NET_SHAPE={other}: expected 64 or 4k"),
    };
    match which {
        "weft" | "weft_fallback" => {
            let io = if which == "weft" {
                weft::UringMode::Auto
            } else {
                weft::UringMode::Disabled
            };
            let w = weft_setup(io, shape);
            for _ in 0..batches {
                weft_batch(&w);
            }
        }
        "tokio" => {
            let t = tokio_setup(shape);
            for _ in 0..batches {
                tokio_batch(&t);
            }
        }
        "weft_accept" => {
            let rt = weft_runtime(weft::UringMode::Auto);
            for _ in 0..batches {
                weft_accept_batch(&rt);
            }
            println!("{which}: {} connections", batches * ACCEPTS);
            return;
        }
        "tokio_accept" => {
            let rt = tokio_runtime();
            for _ in 0..batches {
                tokio_accept_batch(&rt);
            }
            println!("{which}: {} connections", batches * ACCEPTS);
            return;
        }
        other => panic!(
            "WEFT_NET_COUNT={other}: expected weft, weft_fallback, tokio, weft_accept or \
             tokio_accept"
        ),
    }
    println!("{which}: {} round trips", batches * CONNS * shape.rounds);
}

fn main() {
    if let Ok(which) = std::env::var("WEFT_NET_COUNT") {
        count_mode(&which);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
