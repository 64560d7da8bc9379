//! The fallback's cached readiness (`weft_reactor::epoll`, "Cached readiness"), end to end:
//! a socket's one registration serves owned-buffer reads and poll-based reads (the
//! `tokio-io` feature) on the same epoll without being turned one-shot, and a socket
//! whose registering runtime is gone keeps working on another. These runtimes are built
//! with `UringMode::Disabled`, so they test the fallback whatever `WEFT_IO_DRIVER` says.
//! Every socket binds 127.0.0.1 on port 0.

#[path = "../runtime/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{hang_guard, watchdog};
use tokio::io::AsyncReadExt;
use weft::net::{TcpListener, TcpStream};
use weft::time::sleep;
use weft::{Runtime, UringMode};

fn fallback(workers: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(workers)
        .io_uring(UringMode::Disabled)
        .build()
        .unwrap()
}

/// A connected pair: (client, server side).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = weft::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

/// An owned-buffer read on `a` that finds nothing and waits, answered by `b` a little
/// later; the bytes must arrive.
async fn waiting_read(a: &TcpStream, b: &TcpStream, msg: &'static [u8]) {
    let (read, write) = weft::join!(a.read(Vec::with_capacity(64)), async {
        sleep(Duration::from_millis(5)).await;
        b.write_all(msg.to_vec()).await
    });
    write.0.unwrap();
    let (r, buf) = read;
    assert_eq!(r.unwrap(), msg.len());
    assert_eq!(buf, msg);
}

#[test]
fn poll_reads_and_owned_reads_share_one_registration() {
    hang_guard();
    watchdog("poll and owned reads on one registration", || {
        // One worker: the owned read's registration and the poll read's one-shot wait
        // are on the same epoll.
        fallback(1).block_on(async {
            weft::spawn(async {
                let (mut a, b) = pair().await;
                for round in 0..3 {
                    // Registers `a` (the first round) and waits on it.
                    waiting_read(&a, &b, b"owned").await;
                    // A poll-based read waits one-shot on the registered descriptor.
                    let mut buf = [0u8; 64];
                    let (n, w) = weft::join!(AsyncReadExt::read(&mut a, &mut buf), async {
                        sleep(Duration::from_millis(5)).await;
                        b.write_all(b"poll".to_vec()).await
                    });
                    w.0.unwrap();
                    assert_eq!(&buf[..n.unwrap()], b"poll", "round {round}");
                }
                // The registration still reports edges: an owned read waits and wakes.
                waiting_read(&a, &b, b"after").await;
            })
            .await
            .unwrap()
        })
    });
}

#[test]
fn a_socket_outlives_the_runtime_it_registered_on() {
    hang_guard();
    watchdog("a socket after its runtime", || {
        let first = fallback(2);
        let (a, b) = first.block_on(async {
            weft::spawn(async {
                let (a, b) = pair().await;
                waiting_read(&a, &b, b"first").await;
                waiting_read(&b, &a, b"back").await;
                (a, b)
            })
            .await
            .unwrap()
        });
        // The epolls the sockets registered with go with their workers.
        drop(first);
        let second = fallback(2);
        second.block_on(async {
            weft::spawn(async move {
                for _ in 0..3 {
                    waiting_read(&a, &b, b"second").await;
                    waiting_read(&b, &a, b"again").await;
                }
            })
            .await
            .unwrap()
        });
    });
}
