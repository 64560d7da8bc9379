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
//!   - `weft`: `weft::net::TcpStream` on an io_uring runtime (`IoUring::Auto`).
//!   - `weft_fallback`: the same on `IoUring::Disabled` (readiness on each worker's
//!     epoll): what users without io_uring get.
//!   - `tokio`: `tokio::net::TcpStream` with `AsyncReadExt`/`AsyncWriteExt` on a
//!     multi-thread runtime with as many workers; each client stream sits in an
//!     uncontended `tokio::sync::Mutex` so that the batch tasks can borrow it.
//!
//! Target (from the sockets issue): `weft` at least 1.25× `tokio`, `weft_fallback` at least
//! 0.9×.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use criterion::{Criterion, Throughput};

const CONNS: usize = 64;
const ROUNDS: usize = 100;
const MSG: usize = 64;

fn workers() -> usize {
    std::env::var("WEFT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

fn message(conn: usize, round: usize) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    for (k, b) in m.iter_mut().enumerate() {
        *b = (conn * 31 + round * 7 + k) as u8;
    }
    m
}

struct Weft {
    rt: weft::Runtime,
    clients: Arc<Vec<weft::net::TcpStream>>,
}

fn weft_setup(io: weft::IoUring) -> Weft {
    let rt = weft::Runtime::builder()
        .worker_threads(workers())
        .io_uring(io)
        .build()
        .expect("weft runtime");
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
                let mut buf = Vec::with_capacity(MSG);
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
    }
}

fn weft_batch(w: &Weft) {
    w.rt.block_on(async {
        let tasks: Vec<_> = (0..CONNS)
            .map(|i| {
                let clients = w.clients.clone();
                weft::spawn(async move {
                    let c = &clients[i];
                    let mut buf = Vec::with_capacity(MSG);
                    for round in 0..ROUNDS {
                        let m = message(i, round);
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
}

fn tokio_setup() -> Tokio {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .expect("tokio runtime");
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
                let mut buf = [0u8; MSG];
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
    }
}

fn tokio_batch(t: &Tokio) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    t.rt.block_on(async {
        let tasks: Vec<_> = (0..CONNS)
            .map(|i| {
                let clients = t.clients.clone();
                tokio::spawn(async move {
                    let mut c = clients[i].lock().await;
                    let mut buf = [0u8; MSG];
                    for round in 0..ROUNDS {
                        let m = message(i, round);
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

fn tcp_echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("net/tcp_echo");
    g.throughput(Throughput::Elements((CONNS * ROUNDS) as u64));
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);
    static WEFT: OnceLock<Weft> = OnceLock::new();
    static WEFT_FB: OnceLock<Weft> = OnceLock::new();
    static TOKIO: OnceLock<Tokio> = OnceLock::new();
    g.bench_function("weft", |b| {
        let w = WEFT.get_or_init(|| weft_setup(weft::IoUring::Auto));
        b.iter(|| weft_batch(w))
    });
    g.bench_function("tokio", |b| {
        let t = TOKIO.get_or_init(tokio_setup);
        b.iter(|| tokio_batch(t))
    });
    g.bench_function("weft_fallback", |b| {
        let w = WEFT_FB.get_or_init(|| weft_setup(weft::IoUring::Disabled));
        b.iter(|| weft_batch(w))
    });
    g.finish();
}

criterion::criterion_group!(benches, tcp_echo);
criterion::criterion_main!(benches);
