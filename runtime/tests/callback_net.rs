//! weft::callback::net: connect, read, read_exact and write_all with callbacks — many
//! connections exchanging verified bytes, refused connects, end of stream, bytes that a
//! cancelled future read left behind, and no callback run inline. Run on both drivers
//! (`WEFT_IO_DRIVER=fallback` too). Every socket binds 127.0.0.1 on port 0.

mod common;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::watchdog_limit;
use weft_runtime::Runtime;
use weft_runtime::callback::net;
use weft_runtime::net::{TcpListener, TcpStream};

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// A listener on 127.0.0.1:0 whose connections echo what they read, from tasks on `rt`.
fn echo_server(rt: &Runtime) -> SocketAddr {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            weft_runtime::spawn(async move {
                let mut buf = Vec::with_capacity(64);
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
    });
    addr
}

/// Waits for what a callback sends, failing on a hang.
fn recv<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(watchdog_limit())
        .expect("a callback never ran (hung)")
}

/// Exchanges `left` 9-byte messages on `s`, one at a time, checking each echo, then sends
/// `Ok(count)`.
fn exchange(s: Arc<TcpStream>, conn: u64, left: u64, done: mpsc::Sender<io::Result<u64>>) {
    if left == 0 {
        done.send(Ok(conn)).unwrap();
        return;
    }
    let mut msg = vec![conn as u8];
    msg.extend_from_slice(&(conn * 1_000 + left).to_le_bytes());
    let want = msg.clone();
    let s2 = s.clone();
    net::write_all(&s, msg, move |(r, _)| {
        if let Err(e) = r {
            return done.send(Err(e)).unwrap();
        }
        let s3 = s2.clone();
        net::read_exact(&s2, Vec::with_capacity(9), move |(r, got)| match r {
            Err(e) => done.send(Err(e)).unwrap(),
            Ok(()) => {
                assert_eq!(got, want, "connection {conn}, message {left}");
                exchange(s3, conn, left - 1, done)
            }
        });
    });
}

#[test]
fn many_connections_exchange_verified_messages() {
    let rt = rt();
    let addr = echo_server(&rt);
    let (tx, rx) = mpsc::channel();
    const CONNS: u64 = 16;
    for conn in 0..CONNS {
        let tx = tx.clone();
        rt.handle().defer(move || {
            net::connect(addr, move |r: io::Result<TcpStream>| {
                let s = r.unwrap();
                s.set_nodelay(true).unwrap();
                exchange(Arc::new(s), conn, 50, tx)
            })
        });
    }
    let mut seen: Vec<u64> = (0..CONNS).map(|_| recv(&rx).unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..CONNS).collect::<Vec<_>>());
}

#[test]
fn a_refused_connect_is_connection_refused_naming_the_address() {
    let rt = rt();
    // A port nothing listens on: bound, then closed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || {
        net::connect(addr, move |r: io::Result<TcpStream>| {
            tx.send(r.map(drop)).unwrap()
        })
    });
    let e = recv(&rx).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[test]
fn end_of_stream_is_ok_0_for_read_and_unexpected_eof_for_read_exact() {
    let rt = rt();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    // The server sends 3 bytes and closes.
    rt.spawn(async move {
        for _ in 0..2 {
            let (s, _) = listener.accept().await.unwrap();
            let (r, _) = s.write_all(b"abc".to_vec()).await;
            r.unwrap();
        }
    });
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    rt.handle().defer(move || {
        net::connect(addr, move |r: io::Result<TcpStream>| {
            let s = Arc::new(r.unwrap());
            net::read_exact(&s.clone(), Vec::with_capacity(8), move |(r, buf)| {
                tx.send((r.map(|()| 0), buf)).unwrap();
                drop(s);
            });
        })
    });
    let (r, buf) = recv(&rx);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{e}");
    assert!(e.to_string().contains("3 of 8"), "{e}");
    assert_eq!(buf, b"abc");

    rt.handle().defer(move || {
        net::connect(addr, move |r: io::Result<TcpStream>| {
            let s = Arc::new(r.unwrap());
            let s2 = s.clone();
            net::read_exact(&s.clone(), Vec::with_capacity(3), move |(r, _)| {
                r.unwrap();
                net::read(&s2, Vec::with_capacity(8), move |(r, buf)| {
                    tx2.send((r, buf)).unwrap();
                    drop(s);
                });
            });
        })
    });
    let (r, buf) = recv(&rx);
    assert_eq!(r.unwrap(), 0, "a read after the peer closed");
    assert!(buf.is_empty());
}

/// A future read cancelled before its bytes arrived: on a ring its `RECV` is still in the
/// kernel and takes them; a callback read issued meanwhile gets those bytes first, in
/// order, followed by the next ones.
#[test]
fn a_callback_read_returns_what_a_cancelled_future_read_left_first() {
    let rt = rt();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let server = rt.spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        // Waits (off the runtime) until the client has cancelled its read.
        let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
        weft_runtime::task::spawn_blocking(move || go_rx.lock().unwrap().recv().unwrap())
            .await
            .unwrap();
        let (r, _) = s.write_all(b"first".to_vec()).await;
        r.unwrap();
        weft_runtime::time::sleep(Duration::from_millis(20)).await;
        let (r, _) = s.write_all(b"second".to_vec()).await;
        r.unwrap();
        // Holds the connection open until the client is done.
        let (r, _) = s.read(Vec::with_capacity(1)).await;
        drop(r);
    });
    let client = rt
        .block_on(rt.spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            let cancelled = weft_runtime::time::timeout(
                Duration::from_millis(5),
                s.read(Vec::with_capacity(64)),
            )
            .await;
            assert!(cancelled.is_err(), "nothing was sent yet");
            s
        }))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let s = Arc::new(client);
    let s2 = s.clone();
    rt.handle().defer(move || {
        net::read_exact(&s2, Vec::with_capacity(11), move |(r, buf)| {
            tx.send((r, buf)).unwrap()
        })
    });
    go_tx.send(()).unwrap();
    let (r, buf) = recv(&rx);
    r.unwrap();
    assert_eq!(buf, b"firstsecond");
    drop(s);
    rt.block_on(server).unwrap();
}

#[test]
fn callbacks_never_run_inside_the_call_that_started_them() {
    // One worker: with two, an idle worker may steal a deferred callback and run it in
    // parallel before the starting call's `store` below, which says nothing about inline.
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let addr = echo_server(&rt);
    let (tx, rx) = mpsc::channel();
    rt.handle().defer(move || {
        net::connect(addr, move |r: io::Result<TcpStream>| {
            let s = Arc::new(r.unwrap());
            // A read with no room and a write of nothing complete at once: still deferred.
            let returned = Arc::new(AtomicBool::new(false));
            let (r2, tx2) = (returned.clone(), tx.clone());
            net::read(&s, Vec::new(), move |(r, _)| {
                tx2.send(("read", r.unwrap(), r2.load(SeqCst))).unwrap()
            });
            let r3 = returned.clone();
            net::write_all(&s, Vec::new(), move |(r, _)| {
                r.unwrap();
                tx.send(("write", 0, r3.load(SeqCst))).unwrap()
            });
            returned.store(true, SeqCst);
        })
    });
    for _ in 0..2 {
        let (what, n, after) = recv(&rx);
        assert_eq!(n, 0, "{what}");
        assert!(after, "{what}'s callback ran before the call returned");
    }
}
