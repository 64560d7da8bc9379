//! weft::net TCP: echo under load with verified bytes, a large two-way transfer on split
//! halves, half-close, reset, refused connects, dropped listeners, cancelled operations
//! that lose no byte, and connections spread over both workers. Run on both drivers
//! (`WEFT_IO_DRIVER=fallback` too). Every socket binds 127.0.0.1 on port 0.

mod common;

use std::future::Future;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{hang_guard, scaled, watchdog, XorShift};
use weft_runtime::net::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpSocket, TcpStream};
use weft_runtime::time::{sleep, timeout};
use weft_runtime::Runtime;

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

fn assert_traits<T: Send + Sync + Unpin + 'static>() {}

#[test]
fn types_are_send_sync_unpin() {
    assert_traits::<TcpListener>();
    assert_traits::<TcpStream>();
    assert_traits::<TcpSocket>();
    assert_traits::<OwnedReadHalf>();
    assert_traits::<OwnedWriteHalf>();
    assert_traits::<weft_runtime::net::UdpSocket>();
    assert_traits::<weft_runtime::net::UnixListener>();
    assert_traits::<weft_runtime::net::UnixStream>();
}

/// Accepts forever, echoing each connection until its peer shuts down.
async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        weft_runtime::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            loop {
                let (r, b) = s.read(buf).await;
                match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let (r, b) = s.write_all(b).await;
                if r.is_err() {
                    return;
                }
                buf = b;
            }
        });
    }
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut rng = XorShift::new(i as u64 + 1);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn echo_many_concurrent_connections_over_both_workers() {
    hang_guard();
    watchdog("echo", || {
        let rt = rt();
        let n = scaled(1000, 20);
        let before = rt.metrics().workers();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            weft_runtime::spawn(echo_server(listener));
            let clients: Vec<_> = (0..n)
                .map(|i| {
                    weft_runtime::spawn(async move {
                        let s = TcpStream::connect(addr).await.unwrap();
                        s.set_nodelay(true).unwrap();
                        let want = payload(i, 1 + i % 3000);
                        for _ in 0..3 {
                            let (r, _) = s.write_all(want.clone()).await;
                            r.unwrap();
                            let (r, got) = s.read_exact(Vec::with_capacity(want.len())).await;
                            r.unwrap();
                            assert_eq!(got, want, "connection {i}: echoed bytes differ");
                        }
                    })
                })
                .collect();
            for c in clients {
                c.await.unwrap();
            }
        });
        let m = rt.metrics();
        let after = m.workers();
        for (w, (a, b)) in after.iter().zip(&before).enumerate() {
            assert!(a.polls > b.polls, "worker {w} polled nothing");
            if m.io_uring() {
                // Each worker's ring carried socket waits.
                assert!(
                    a.io_submissions > b.io_submissions,
                    "worker {w}'s ring submitted nothing"
                );
            }
        }
    });
}

/// A 64-bit FNV-1a hash, to check a stream's bytes without keeping them.
fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

async fn send_pattern(w: OwnedWriteHalf, seed: u64, total: usize) -> u64 {
    let mut rng = XorShift::new(seed);
    let mut h = FNV_START;
    let mut sent = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    while sent < total {
        buf.clear();
        let chunk = (1 + rng.below(64 * 1024)).min(total - sent);
        buf.extend((0..chunk).map(|_| rng.next_u64() as u8));
        fnv(&mut h, &buf);
        let (r, b) = w.write_all(buf).await;
        r.unwrap();
        buf = b;
        sent += chunk;
    }
    drop(w); // shuts down the writing side: the peer reads end of stream
    h
}

async fn recv_hash(r: OwnedReadHalf) -> (u64, usize) {
    let mut h = FNV_START;
    let mut total = 0;
    let mut buf = Vec::with_capacity(48 * 1024);
    loop {
        let (res, b) = r.read(buf).await;
        match res.unwrap() {
            0 => return (h, total),
            n => {
                fnv(&mut h, &b);
                total += n;
            }
        }
        buf = b;
    }
}

#[test]
fn large_transfer_both_directions_on_split_halves() {
    hang_guard();
    watchdog("transfer", || {
        let total = scaled(64 << 20, 1 << 20);
        rt().block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let tasks = [
                weft_runtime::spawn(async move { (send_pattern(cw, 1, total).await, 0) }),
                weft_runtime::spawn(async move { (send_pattern(sw, 2, total).await, 0) }),
                weft_runtime::spawn(recv_hash(sr)),
                weft_runtime::spawn(recv_hash(cr)),
            ];
            let [c_sent, s_sent, s_got, c_got] = tasks;
            let (c_sent, s_sent) = (c_sent.await.unwrap().0, s_sent.await.unwrap().0);
            let (s_got, c_got) = (s_got.await.unwrap(), c_got.await.unwrap());
            assert_eq!(s_got, (c_sent, total), "client to server");
            assert_eq!(c_got, (s_sent, total), "server to client");
        });
    });
}

#[test]
fn half_close_then_reply() {
    hang_guard();
    watchdog("half close", || {
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = weft_runtime::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                loop {
                    let (r, b) = s.read(Vec::with_capacity(7)).await;
                    if r.unwrap() == 0 {
                        break;
                    }
                    got.extend_from_slice(&b);
                }
                let (r, _) = s.write_all(format!("got {}", got.len()).into_bytes()).await;
                r.unwrap();
                got
            });
            let c = TcpStream::connect(addr).await.unwrap();
            let (r, _) = c.write_all(b"hello, half-closed world".to_vec()).await;
            r.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let (r, reply) = c.read_exact(Vec::with_capacity(6)).await;
            r.unwrap();
            assert_eq!(reply, b"got 24");
            let (r, _) = c.read(Vec::with_capacity(8)).await;
            assert_eq!(r.unwrap(), 0, "the server closed after replying");
            assert_eq!(server.await.unwrap(), b"hello, half-closed world");
            // Writing after our own shutdown fails (no SIGPIPE kills the test).
            let (r, _) = c.write(b"late".to_vec()).await;
            assert_eq!(r.unwrap_err().kind(), ErrorKind::BrokenPipe);
        });
    });
}

#[test]
fn peer_reset_mid_read_is_connection_reset() {
    hang_guard();
    watchdog("reset", || {
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let c = Arc::new(TcpStream::connect(addr).await.unwrap());
            let (s, _) = listener.accept().await.unwrap();
            let c2 = c.clone();
            let reader =
                weft_runtime::spawn(async move { c2.read(Vec::with_capacity(64)).await.0 });
            sleep(Duration::from_millis(20)).await; // let the read start waiting
            s.set_linger(Some(Duration::ZERO)).unwrap();
            assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
            drop(s); // linger 0: close sends a reset
            let err = reader.await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
            // Sending on the reset connection errors too, and raises no SIGPIPE.
            let (r, _) = c.write(b"x".to_vec()).await;
            assert!(r.is_err());
        });
    });
}

#[test]
fn connect_refused_names_the_address() {
    hang_guard();
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    });
}

#[test]
fn bind_in_use_names_the_address() {
    hang_guard();
    rt().block_on(async {
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = a.local_addr().unwrap();
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        let err = TcpListener::bind("no-such-host.invalid:1")
            .await
            .unwrap_err();
        let _ = err; // a resolver error, whatever its kind: no panic
    });
}

#[test]
fn listener_dropped_with_accept_pending_closes_it() {
    hang_guard();
    watchdog("dropped listener", || {
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // A connection queued but never accepted.
            let queued = TcpStream::connect(addr).await.unwrap();
            let acceptor = weft_runtime::spawn(async move {
                // Accepts the queued one, then waits with a second accept pending.
                let (_s, _) = listener.accept().await.unwrap();
                listener.accept().await.map(drop)
            });
            sleep(Duration::from_millis(20)).await;
            acceptor.abort();
            assert!(acceptor.await.unwrap_err().is_cancelled());
            // The listener (and its abandoned wait) is gone: connects are refused.
            let mut tries = 0;
            loop {
                match TcpStream::connect(addr).await {
                    // Connected while the listener was closing, then reset by its close.
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                        break;
                    }
                    Ok(_) => {}
                }
                tries += 1;
                assert!(tries < 1000, "the listener never closed");
                sleep(Duration::from_millis(5)).await;
            }
            // The accepted connection was dropped with the task: its peer sees the end.
            let (r, _) = queued.read(Vec::with_capacity(8)).await;
            assert!(matches!(r, Ok(0) | Err(_)));
        });
    });
}

#[test]
fn dropped_read_loses_no_byte() {
    hang_guard();
    watchdog("dropped read", || {
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, _) = listener.accept().await.unwrap();
            for round in 0..50u8 {
                // A read that waits, then is dropped (a timeout or a losing select! arm).
                let r = timeout(Duration::from_millis(1), c.read(Vec::with_capacity(16))).await;
                assert!(r.is_err(), "round {round}: nothing was sent yet");
                // Bytes sent now must all reach the next read.
                let (w, _) = s.write_all(vec![round; 10]).await;
                w.unwrap();
                let (r, got) = c.read_exact(Vec::with_capacity(10)).await;
                r.unwrap();
                assert_eq!(got, vec![round; 10], "round {round}");
            }
            // The same race with the write landing while the read is being dropped.
            for round in 0..200u32 {
                let s_ref = &s;
                let write = async move {
                    let (w, _) = s_ref.write_all(round.to_le_bytes().to_vec()).await;
                    w.unwrap();
                };
                let read = timeout(Duration::from_micros(50), c.read(Vec::with_capacity(4)));
                let (r, ()) = weft_runtime::join!(read, write);
                let mut got = match r {
                    Ok((r, b)) => {
                        r.unwrap();
                        b
                    }
                    Err(_) => Vec::new(),
                };
                while got.len() < 4 {
                    let (r, b) = c.read(Vec::with_capacity(4 - got.len())).await;
                    assert!(r.unwrap() > 0);
                    got.extend_from_slice(&b);
                }
                assert_eq!(got, round.to_le_bytes(), "round {round}");
            }
        });
    });
}

/// A read whose bytes the kernel delivered but whose future was dropped before it saw
/// them (on the ring: a completed `RECV`, abandoned) hands them to the next read.
#[test]
fn bytes_of_a_completed_but_dropped_read_reach_the_next_read() {
    hang_guard();
    watchdog("completed dropped read", || {
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let c = Arc::new(TcpStream::connect(addr).await.unwrap());
            let (s, _) = listener.accept().await.unwrap();
            let c2 = c.clone();
            // On a worker (which owns a ring when the runtime has them).
            weft_runtime::spawn(async move {
                for round in 0..20u8 {
                    let mut read = Box::pin(c2.read(Vec::with_capacity(64)));
                    let first = std::future::poll_fn(|cx| {
                        std::task::Poll::Ready(read.as_mut().poll(cx).is_pending())
                    })
                    .await;
                    assert!(first, "round {round}: nothing was sent yet");
                    let (w, _) = s.write_all(vec![round; 40]).await;
                    w.unwrap();
                    // Long enough for the kernel to complete the read and the ring to be
                    // reaped; the future is never polled again.
                    sleep(Duration::from_millis(5)).await;
                    drop(read);
                    // A marker after them: lost bytes show as the marker read too early.
                    let (w, _) = s.write_all(vec![0xff; 8]).await;
                    w.unwrap();
                    let (r, first) = c2.read_exact(Vec::with_capacity(8)).await;
                    r.unwrap();
                    assert_eq!(first, [round; 8], "round {round}: the bytes were lost");
                    let (r, rest) = c2.read_exact(Vec::with_capacity(32)).await;
                    r.unwrap();
                    assert_eq!(rest, [round; 32], "round {round}");
                    let (r, marker) = c2.read_exact(Vec::with_capacity(8)).await;
                    r.unwrap();
                    assert_eq!(marker, [0xff; 8]);
                }
            })
            .await
            .unwrap();
            drop(c);
        });
    });
}

#[test]
fn dropped_accept_leaves_the_listener_usable() {
    hang_guard();
    watchdog("dropped accept", || {
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            for _ in 0..20 {
                assert!(timeout(Duration::from_millis(1), listener.accept())
                    .await
                    .is_err());
            }
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        });
    });
}

#[test]
fn options_peek_and_std_round_trip() {
    hang_guard();
    rt().block_on(async {
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.set_reuseport(true).unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = sock.listen(16).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let c = TcpSocket::new_v4().unwrap().connect(addr).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_ttl(42).unwrap();
        assert_eq!(c.ttl().unwrap(), 42);
        c.set_linger(None).unwrap();
        assert_eq!(c.linger().unwrap(), None);
        let (r, _) = c.write_all(b"peekaboo".to_vec()).await;
        r.unwrap();
        let (r, p) = s.peek(Vec::with_capacity(4)).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(p, b"peek");
        let (r, all) = s.read_exact(Vec::with_capacity(8)).await;
        r.unwrap();
        assert_eq!(all, b"peekaboo");
        // To std and back: the same connection, still working.
        let std_s = s.into_std().unwrap();
        let s = TcpStream::from_std(std_s).unwrap();
        let std_l = listener.into_std().unwrap();
        let listener = TcpListener::from_std(std_l).unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr);
        let (r, _) = s.write_all(b"back".to_vec()).await;
        r.unwrap();
        let (r, b) = c.read_exact(Vec::with_capacity(4)).await;
        r.unwrap();
        assert_eq!(b, b"back");
        // A read into a buffer with no capacity returns at once.
        let (r, _) = c.read(Vec::new()).await;
        assert_eq!(r.unwrap(), 0);
        // read_exact past the end names how far it got.
        drop(s);
        let (r, b) = c.read_exact(Vec::with_capacity(4)).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert!(b.is_empty());
    });
}

#[test]
fn runtime_shutdown_with_reads_pending_does_not_hang() {
    hang_guard();
    watchdog("shutdown", || {
        let rt = rt();
        let (listener, conns) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut conns = Vec::new();
            for _ in 0..50 {
                let c = TcpStream::connect(addr).await.unwrap();
                let (s, _) = listener.accept().await.unwrap();
                conns.push(c);
                // Server side: a read that never completes, on a worker.
                weft_runtime::spawn(async move {
                    let _ = s.read(Vec::with_capacity(16)).await;
                });
            }
            (listener, conns)
        });
        // A stream shared with a task whose read is pending when the runtime goes: it
        // stays usable afterwards, on another runtime, and loses nothing.
        let (shared, peer) = rt.block_on(async {
            let addr = listener.local_addr().unwrap();
            let c = Arc::new(TcpStream::connect(addr).await.unwrap());
            let (peer, _) = listener.accept().await.unwrap();
            let c2 = c.clone();
            weft_runtime::spawn(async move {
                let _ = c2.read(Vec::with_capacity(16)).await;
            });
            sleep(Duration::from_millis(10)).await; // the read is in flight
            (c, peer)
        });
        drop(rt);
        let rt2 = Runtime::builder().worker_threads(1).build().unwrap();
        rt2.block_on(async {
            let (w, _) = peer.write_all(b"after".to_vec()).await;
            w.unwrap();
            let (r, got) = shared.read_exact(Vec::with_capacity(5)).await;
            r.unwrap();
            assert_eq!(got, b"after");
        });
        // Every server-side socket closed with its task: our reads see the end.
        for c in &conns {
            let r = Runtime::builder()
                .worker_threads(1)
                .build()
                .unwrap()
                .block_on(c.read(Vec::with_capacity(4)));
            assert!(matches!(r.0, Ok(0) | Err(_)));
        }
        drop(listener);
    });
}
