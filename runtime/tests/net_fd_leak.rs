//! weft::net closes every socket it opens: after use, after every kind of operation future
//! is dropped mid-flight (accept, connect, read, readv, write; on the `block_on` thread,
//! through readiness, and on a worker, through its ring), when a listener whose multishot
//! accept queued connections is dropped, and when a runtime shuts down with connections
//! open and reads pending.
//!
//! Alone in its binary because it counts the process's socket descriptors.

mod common;

use std::time::Duration;

use common::{hang_guard, wait_until, watchdog};
use weft_runtime::Runtime;
use weft_runtime::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use weft_runtime::time::timeout;

/// The open descriptors of this process that are sockets.
fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn no_socket_leaks() {
    hang_guard();
    watchdog("fd leak", || {
        let before = open_sockets();
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // Dropped connects go to their own listener (one may connect before its drop).
            let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let other_addr = other.local_addr().unwrap();
            for i in 0..100 {
                // Accept dropped while waiting.
                assert!(timeout(Duration::ZERO, listener.accept()).await.is_err());
                // Connect dropped after its first poll (complete or not).
                let _ = timeout(Duration::ZERO, TcpStream::connect(other_addr)).await;
                let c = TcpStream::connect(addr).await.unwrap();
                let (s, _) = listener.accept().await.unwrap();
                // Read dropped while waiting.
                assert!(
                    timeout(Duration::ZERO, c.read(Vec::with_capacity(8)))
                        .await
                        .is_err()
                );
                if i % 10 == 0 {
                    // A write dropped while the socket's buffers are full (nobody reads).
                    let big = vec![7u8; 32 << 20];
                    let r = timeout(Duration::from_millis(5), c.write_all(big)).await;
                    assert!(r.is_err(), "32 MiB cannot fit in loopback buffers");
                }
                if i % 2 == 0 {
                    let (c, s) = (c.into_split(), s.into_split());
                    drop((c, s));
                } else {
                    drop((c, s));
                }
            }
            // Connections the listener queued but nobody accepted go with it.
            for _ in 0..10 {
                let _ = TcpStream::connect(addr).await.unwrap();
            }
            drop((listener, other));
            let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            assert!(
                timeout(Duration::ZERO, u.recv(Vec::with_capacity(8)))
                    .await
                    .is_err()
            );
            let (a, b) = UnixStream::pair().unwrap();
            assert!(
                timeout(Duration::ZERO, a.read(Vec::with_capacity(8)))
                    .await
                    .is_err()
            );
            drop((u, a, b));
        });
        // The same drops on a worker, where accept, connect, reads (plain and vectored)
        // and writes are ring ops: an abandoned accept's connection is queued in the
        // listener and closed with it, an abandoned connect's socket closes at its
        // completion.
        rt.block_on(async {
            weft_runtime::spawn(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let other_addr = other.local_addr().unwrap();
                for i in 0..100 {
                    assert!(timeout(Duration::ZERO, listener.accept()).await.is_err());
                    let _ = timeout(Duration::ZERO, TcpStream::connect(other_addr)).await;
                    let c = TcpStream::connect(addr).await.unwrap();
                    // The accept may be abandoned after the kernel accepted: either way
                    // the connection is returned by this accept or a later one.
                    let (s, _) = match timeout(Duration::from_micros(10), listener.accept()).await {
                        Ok(r) => r.unwrap(),
                        Err(_) => listener.accept().await.unwrap(),
                    };
                    assert!(
                        timeout(Duration::ZERO, c.read(Vec::with_capacity(8)))
                            .await
                            .is_err()
                    );
                    let bufs = vec![Vec::with_capacity(4), Vec::with_capacity(4)];
                    assert!(timeout(Duration::ZERO, s.readv(bufs)).await.is_err());
                    if i % 10 == 0 {
                        let big = vec![7u8; 32 << 20];
                        let r = timeout(Duration::from_millis(5), c.write_all(big)).await;
                        assert!(r.is_err(), "32 MiB cannot fit in loopback buffers");
                    }
                    drop((c.into_split(), s));
                }
                // Connections that dropped accepts took and nobody claimed, and ones the
                // kernel queued, go with the listener.
                for _ in 0..10 {
                    let c = TcpStream::connect(addr).await.unwrap();
                    let _ = timeout(Duration::from_micros(10), listener.accept()).await;
                    drop(c);
                }
                drop((listener, other));
                let (a, b) = weft_runtime::net::UnixDatagram::pair().unwrap();
                assert!(
                    timeout(Duration::ZERO, a.recv(Vec::with_capacity(8)))
                        .await
                        .is_err()
                );
                drop((a, b));
            })
            .await
            .unwrap();
        });
        // On a ring worker the listener's multishot accept (`WEFT_ACCEPT=multishot`) takes
        // connections before anyone accepts them: dropping the listener cancels it and closes what it queued.
        let ring = std::env::var("WEFT_IO_DRIVER").as_deref() != Ok("fallback")
            && std::env::var("WEFT_ACCEPT").as_deref() == Ok("multishot");
        let clients = rt.block_on(async move {
            weft_runtime::spawn(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let c = TcpStream::connect(addr).await.unwrap();
                drop((c, listener.accept().await.unwrap()));
                let base = open_sockets();
                let mut clients = Vec::new();
                for _ in 0..8 {
                    clients.push(TcpStream::connect(addr).await.unwrap().into_std().unwrap());
                }
                if ring {
                    // Some clients' server sides, accepted and queued in the listener. Not
                    // necessarily all: the kernel may end the multishot early (the rest stay
                    // in its backlog until an accept arms another), so this waits a bounded
                    // number of ticks, and the count after the drop is what is checked.
                    for _ in 0..2000 {
                        if open_sockets() >= base + 9 {
                            break;
                        }
                        weft_runtime::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                drop(listener);
                clients
            })
            .await
            .unwrap()
        });
        wait_until("the queued connections closed", || {
            open_sockets() <= before + clients.len()
        });
        drop(clients);
        // Shutdown with connections open and reads pending on the workers.
        let peers = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut peers = Vec::new();
            for _ in 0..100 {
                let c = TcpStream::connect(addr).await.unwrap();
                let (s, _) = listener.accept().await.unwrap();
                weft_runtime::spawn(async move {
                    let _ = s.read(Vec::with_capacity(8)).await;
                });
                peers.push(c.into_std().unwrap());
            }
            peers
        });
        drop(rt);
        drop(peers);
        // Abandoned ring waits and readiness registrations release their descriptor
        // when their completion is reaped or the registration is removed: soon.
        wait_until("every socket closed", || open_sockets() <= before);
        assert_eq!(open_sockets(), before);
    });
}
