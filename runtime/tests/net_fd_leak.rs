//! weft::net closes every socket it opens: after use, after every kind of operation future
//! is dropped mid-flight (accept, connect, read, write), and when a runtime shuts down with
//! connections open and reads pending.
//!
//! Alone in its binary because it counts the process's socket descriptors.

mod common;

use std::time::Duration;

use common::{hang_guard, wait_until, watchdog};
use weft_runtime::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use weft_runtime::time::timeout;
use weft_runtime::Runtime;

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
                assert!(timeout(Duration::ZERO, c.read(Vec::with_capacity(8)))
                    .await
                    .is_err());
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
            assert!(timeout(Duration::ZERO, u.recv(Vec::with_capacity(8)))
                .await
                .is_err());
            let (a, b) = UnixStream::pair().unwrap();
            assert!(timeout(Duration::ZERO, a.read(Vec::with_capacity(8)))
                .await
                .is_err());
            drop((u, a, b));
        });
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
