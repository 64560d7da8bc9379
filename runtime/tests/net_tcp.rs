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

use common::{XorShift, hang_guard, scaled, watchdog};
use weft_runtime::Runtime;
use weft_runtime::net::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpSocket, TcpStream};
use weft_runtime::time::{sleep, timeout};

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

/// One MiB, the unit of the large transfer: a random block whose first 8 bytes the sender
/// overwrites with the block's index, so the receiver can check every byte (against the
/// block, with `==`, a `memcmp` even in debug builds) and the order of blocks.
const BLOCK: usize = 1 << 20;

fn block(seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    (0..BLOCK).map(|_| rng.next_u64() as u8).collect()
}

/// Sends `blocks` stamped copies of `block(seed)` (a `Box<[u8]>`, to cover a second
/// buffer type), then shuts down the writing side.
async fn send_blocks(w: OwnedWriteHalf, seed: u64, blocks: u64) {
    let mut buf: Box<[u8]> = block(seed).into_boxed_slice();
    for k in 0..blocks {
        buf[..8].copy_from_slice(&k.to_le_bytes());
        let (r, b) = w.write_all(buf).await;
        r.unwrap();
        buf = b;
    }
    drop(w); // shuts down the writing side: the peer reads end of stream
}

/// Receives stamped blocks of `block(seed)` until end of stream, with plain `read`s into
/// a [`Slice`](weft_runtime::buf::Slice) of the rest of the block's buffer; returns how
/// many, each checked byte for byte.
async fn recv_blocks(r: OwnedReadHalf, seed: u64) -> u64 {
    use weft_runtime::buf::IoBuf;
    let want = block(seed);
    let mut buf = Vec::with_capacity(BLOCK);
    let mut k = 0u64;
    loop {
        buf.clear();
        while buf.len() < BLOCK {
            let have = buf.len();
            let (res, slice) = r.read(buf.slice(have..BLOCK)).await;
            buf = slice.into_inner();
            if res.unwrap() == 0 {
                assert_eq!(have, 0, "end of stream inside block {k}");
                return k;
            }
        }
        assert_eq!(buf[..8], k.to_le_bytes(), "block {k} out of order");
        assert!(buf[8..] == want[8..], "block {k}: wrong bytes");
        k += 1;
    }
}

#[test]
fn gib_transfer_both_directions_on_split_halves() {
    hang_guard();
    watchdog("transfer", || {
        // 1 GiB each way at the default scale.
        let blocks = scaled(1024, 4) as u64;
        let rt = rt();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let senders = [
                weft_runtime::spawn(send_blocks(cw, 1, blocks)),
                weft_runtime::spawn(send_blocks(sw, 2, blocks)),
            ];
            let s_got = weft_runtime::spawn(recv_blocks(sr, 1));
            let c_got = weft_runtime::spawn(recv_blocks(cr, 2));
            for s in senders {
                s.await.unwrap();
            }
            assert_eq!(s_got.await.unwrap(), blocks, "client to server");
            assert_eq!(c_got.await.unwrap(), blocks, "server to client");
        });
        drop(rt);
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
                assert!(
                    timeout(Duration::from_millis(1), listener.accept())
                        .await
                        .is_err()
                );
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

/// Runs `f` as a task on a worker (whose ring, on the ring driver, carries the socket
/// ops), not on the `block_on` thread (which has no ring and uses readiness).
fn on_worker<F, T>(f: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    rt().block_on(async move { weft_runtime::spawn(f).await.unwrap() })
}

#[test]
fn dropped_accepts_lose_no_connection() {
    hang_guard();
    watchdog("dropped ring accepts", || {
        let n = scaled(200, 20);
        on_worker(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let clients = weft_runtime::spawn(async move {
                let mut held = Vec::new();
                for i in 0..n as u32 {
                    let c = TcpStream::connect(addr).await.unwrap();
                    let (r, _) = c.write_all(i.to_le_bytes().to_vec()).await;
                    r.unwrap();
                    held.push(c);
                    if i % 8 == 0 {
                        sleep(Duration::from_micros(200)).await;
                    }
                }
                held
            });
            // Accepts that time out at once, some after the kernel accepted for them: a
            // connection taken by a dropped accept must reach a later one.
            let mut seen = vec![false; n];
            let mut got = 0;
            while got < n {
                let Ok(r) = timeout(Duration::from_micros(50), listener.accept()).await else {
                    continue;
                };
                let (s, _) = r.unwrap();
                let (r, b) = s.read_exact(Vec::with_capacity(4)).await;
                r.unwrap();
                let i = u32::from_le_bytes(b[..].try_into().unwrap()) as usize;
                assert!(!seen[i], "connection {i} accepted twice");
                seen[i] = true;
                got += 1;
            }
            drop(clients.await.unwrap());
        });
    });
}

#[test]
fn connect_refused_on_a_worker_names_the_address() {
    hang_guard();
    on_worker(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    });
}

/// Every buffer type, vectored reads and writes, and a stream on both a worker and the
/// `block_on` thread (ring ops and readiness in one connection).
async fn buffer_types(client: TcpStream, server: TcpStream) {
    use weft_runtime::buf::IoBuf;
    // &'static str and &'static [u8] out; Box<[u8]> and a Slice in.
    let (r, _) = client.write_all("static ").await;
    r.unwrap();
    let (r, _) = client.write_all(&b"bytes"[..]).await;
    r.unwrap();
    let (r, boxed) = server.read_exact(vec![0u8; 7].into_boxed_slice()).await;
    r.unwrap();
    assert_eq!(&boxed[..], b"static ");
    let mut head = Vec::with_capacity(9);
    head.extend_from_slice(b"head");
    let (r, slice) = server.read_exact(head.slice(4..9)).await;
    r.unwrap();
    assert_eq!(slice.into_inner(), b"headbytes");
    // Vectored: three buffers out, read back into two smaller ones and a large one.
    let out = vec![b"abc".to_vec(), Vec::new(), b"defgh".to_vec()];
    let (r, out) = client.writev(out).await;
    assert_eq!(r.unwrap(), 8);
    assert_eq!(out[2], b"defgh", "writev gives the buffers back");
    let mut got = Vec::new();
    while got.len() < 8 {
        let bufs = vec![
            Vec::with_capacity(2),
            Vec::with_capacity(3),
            Vec::with_capacity(64),
        ];
        let (r, bufs) = server.readv(bufs).await;
        let n = r.unwrap();
        assert!(n > 0);
        assert_eq!(bufs.iter().map(Vec::len).sum::<usize>(), n);
        if n >= 2 {
            assert_eq!(bufs[0].len(), 2, "the first buffer fills first");
        }
        got.extend(bufs.concat());
    }
    assert_eq!(got, b"abcdefgh");
    // An empty vectored read and write do nothing.
    let (r, _) = server.readv(Vec::<Vec<u8>>::new()).await;
    assert_eq!(r.unwrap(), 0);
    let (r, _) = client.writev(vec![Vec::<u8>::new()]).await;
    assert_eq!(r.unwrap(), 0);
}

#[test]
fn buffer_types_and_vectored_io() {
    hang_guard();
    watchdog("buffers", || {
        // On a worker (ring ops on the ring driver) ...
        on_worker(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            buffer_types(client, server).await;
        });
        // ... and on the block_on thread (readiness and syscalls).
        rt().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            buffer_types(client, server).await;
        });
    });
}

#[test]
fn dropped_vectored_read_loses_no_byte() {
    hang_guard();
    watchdog("dropped readv", || {
        on_worker(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let server = Arc::new(server);
            let mut sent = Vec::new();
            let mut got = Vec::new();
            for i in 0..200u32 {
                // A readv dropped while waiting, maybe after the kernel filled it.
                let s2 = server.clone();
                let pending = weft_runtime::spawn(async move {
                    s2.readv(vec![Vec::with_capacity(3), Vec::with_capacity(5)])
                        .await
                        .1
                });
                let msg = i.to_le_bytes();
                let (r, _) = client.write_all(msg.to_vec()).await;
                r.unwrap();
                sent.extend_from_slice(&msg);
                pending.abort();
                if let Ok(bufs) = pending.await {
                    got.extend(bufs.concat());
                }
            }
            client.shutdown(Shutdown::Write).unwrap();
            loop {
                let (r, b) = server.read(Vec::with_capacity(64)).await;
                if r.unwrap() == 0 {
                    break;
                }
                got.extend_from_slice(&b);
            }
            assert_eq!(got, sent, "bytes lost or reordered");
        });
    });
}

/// Accepts `n` connections, each answered with the 8-byte id its client sends first; the
/// peer address `accept` returned must be the client's.
async fn accept_and_echo_ids(listener: Arc<TcpListener>, n: usize) {
    for _ in 0..n {
        let (s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, s.peer_addr().unwrap());
        let (r, buf) = s.read_exact(vec![0u8; 8]).await;
        r.unwrap();
        s.write_all(buf).await.0.unwrap();
    }
}

async fn connect_with_id(addr: SocketAddr, id: u64) {
    let c = TcpStream::connect(addr).await.unwrap();
    c.write_all(id.to_le_bytes().to_vec()).await.0.unwrap();
    let (r, back) = c.read_exact(vec![0u8; 8]).await;
    r.unwrap();
    assert_eq!(
        back,
        id.to_le_bytes(),
        "an answer from the server of another client"
    );
}

#[test]
fn many_concurrent_accepts_across_workers() {
    hang_guard();
    watchdog("concurrent accepts", || {
        let rt = Runtime::builder().worker_threads(4).build().unwrap();
        rt.block_on(async {
            let (acceptors, per) = (16, scaled(16, 4));
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
            let addr = listener.local_addr().unwrap();
            let servers: Vec<_> = (0..acceptors)
                .map(|_| weft_runtime::spawn(accept_and_echo_ids(listener.clone(), per)))
                .collect();
            let clients: Vec<_> = (0..acceptors * per)
                .map(|i| weft_runtime::spawn(connect_with_id(addr, i as u64)))
                .collect();
            for t in clients.into_iter().chain(servers) {
                t.await.unwrap();
            }
        });
    });
}

#[test]
fn accept_after_the_multishot_ended_rearms() {
    hang_guard();
    watchdog("accept after the multishot ended", || {
        rt().block_on(async {
            weft_runtime::spawn(async {
                let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
                let addr = listener.local_addr().unwrap();
                // The first accept arms the listener's multishot accept (on a ring worker).
                let first = weft_runtime::spawn(accept_and_echo_ids(listener.clone(), 1));
                connect_with_id(addr, 0).await;
                first.await.unwrap();
                // More connections than it queues unclaimed (64): it is cancelled, the
                // rest wait in the kernel's backlog.
                let queued = 72;
                let mut clients = Vec::new();
                for _ in 0..queued {
                    clients.push(TcpStream::connect(addr).await.unwrap());
                }
                // Time for the ring to take what it will (no assertion depends on it).
                sleep(Duration::from_millis(20)).await;
                for (i, c) in clients.iter().enumerate() {
                    c.write_all((i as u64).to_le_bytes().to_vec())
                        .await
                        .0
                        .unwrap();
                }
                accept_and_echo_ids(listener.clone(), queued).await;
                for (i, c) in clients.iter().enumerate() {
                    let (r, back) = c.read_exact(vec![0u8; 8]).await;
                    r.unwrap();
                    assert_eq!(back, (i as u64).to_le_bytes());
                }
                // The queue is empty and nothing is armed: the next accept arms again.
                for round in 0..3 {
                    let server = weft_runtime::spawn(accept_and_echo_ids(listener.clone(), 1));
                    connect_with_id(addr, 100 + round).await;
                    server.await.unwrap();
                }
            })
            .await
            .unwrap();
        });
    });
}

/// Connects and resets at once (`SO_LINGER` 0, then close), as a client that gives up
/// does: the server side may sit in the listener's queue with its peer already gone.
async fn connect_and_reset(addr: SocketAddr) {
    let c = TcpStream::connect(addr).await.unwrap();
    c.set_linger(Some(Duration::ZERO)).unwrap();
}

/// A connection reset before anyone accepts it is still accepted (as `accept4(2)` returns
/// it), with its peer's address: a multishot accept that asked the closed socket for its
/// peer lost it, and the accept waiting for it hung. (The multishot path runs under
/// `WEFT_ACCEPT=multishot`, as `.ci/run` does.)
#[test]
fn accepts_connections_reset_before_accept() {
    hang_guard();
    watchdog("accept of reset connections", || {
        rt().block_on(async {
            weft_runtime::spawn(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                // Arms the multishot accept (on a ring worker) before the connections come.
                let (first, client) =
                    weft_runtime::join!(listener.accept(), TcpStream::connect(addr));
                drop((first.unwrap(), client.unwrap()));
                // Blocking connects on this worker, which holds the multishot: its ring is
                // not reaped until this task yields, so each connection is reset by then.
                let n = 16;
                for _ in 0..n {
                    let c = std::net::TcpStream::connect(addr).unwrap();
                    linger_zero(&c);
                }
                for _ in 0..n {
                    let (s, peer) = listener.accept().await.unwrap();
                    assert_eq!(peer.ip(), addr.ip());
                    assert_ne!(peer.port(), 0, "the peer's address, not an empty one");
                    drop(s);
                }
            })
            .await
            .unwrap();
        });
    });
}

/// Sets `SO_LINGER` to 0 on a std stream, so that dropping it resets the connection.
fn linger_zero(c: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// The `net/accept_connect` bench's shape: a new listener per round, one task accepting,
/// 8 tasks connecting and resetting, on 2 workers; every connection is accepted.
#[test]
fn sequential_listeners_accept_every_reset_connection() {
    hang_guard();
    watchdog("sequential listeners", || {
        let rt = rt();
        for _ in 0..scaled(20, 2) {
            rt.block_on(async {
                let (per, connectors) = (8, 8);
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = weft_runtime::spawn(async move {
                    for _ in 0..per * connectors {
                        drop(listener.accept().await.unwrap());
                    }
                });
                let clients: Vec<_> = (0..connectors)
                    .map(|_| {
                        weft_runtime::spawn(async move {
                            for _ in 0..per {
                                connect_and_reset(addr).await;
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
    });
}
