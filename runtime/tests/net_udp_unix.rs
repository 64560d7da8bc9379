//! weft::net UDP and Unix sockets: round trips, truncation, connected sockets, paths and
//! abstract names, Unix datagrams, Unix split halves on two workers, and the errors for
//! bad input. Run on both drivers.

mod common;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::path::PathBuf;

use common::{hang_guard, watchdog};
use std::future::Future;
use std::sync::{Arc, Barrier};

use weft_runtime::Runtime;
use weft_runtime::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn udp_round_trips_unconnected_and_connected() {
    hang_guard();
    watchdog("udp", || {
        rt().block_on(async {
            let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let saddr = server.local_addr().unwrap();
            let echo = weft_runtime::spawn(async move {
                let mut buf = Vec::with_capacity(2048);
                for _ in 0..200 {
                    let (r, b) = server.recv_from(buf).await;
                    let (n, from) = r.unwrap();
                    assert_eq!(n, b.len());
                    let (r, b) = server.send_to(b, from).await;
                    assert_eq!(r.unwrap(), n);
                    buf = b;
                }
            });
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            for i in 0..100u32 {
                let msg = format!("datagram {i}").into_bytes();
                let (r, _) = a.send_to(msg.clone(), saddr).await;
                r.unwrap();
                let (r, got) = a.recv_from(Vec::with_capacity(64)).await;
                assert_eq!(r.unwrap(), (msg.len(), saddr));
                assert_eq!(got, msg);
            }
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            b.connect(saddr).await.unwrap();
            assert_eq!(b.peer_addr().unwrap(), saddr);
            for i in 0..100u32 {
                let (r, _) = b.send(i.to_le_bytes().to_vec()).await;
                assert_eq!(r.unwrap(), 4);
                let (r, got) = b.recv(Vec::with_capacity(16)).await;
                assert_eq!(r.unwrap(), 4);
                assert_eq!(got, i.to_le_bytes());
            }
            echo.await.unwrap();
        });
    });
}

#[test]
fn udp_datagram_longer_than_the_buffer_is_truncated() {
    hang_guard();
    rt().block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let baddr = b.local_addr().unwrap();
        let (r, _) = a.send_to((0..100u8).collect::<Vec<u8>>(), baddr).await;
        assert_eq!(r.unwrap(), 100);
        let (r, _) = a.send_to(b"next".to_vec(), baddr).await;
        r.unwrap();
        let (r, got) = b.recv_from(Vec::with_capacity(10)).await;
        assert_eq!(r.unwrap().0, 10);
        assert_eq!(got, (0..10u8).collect::<Vec<_>>());
        // The rest of the long datagram is gone; the next one is whole.
        let (r, got) = b.recv(Vec::with_capacity(10)).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(got, b"next");
    });
}

#[test]
fn udp_bad_input_is_a_typed_error() {
    hang_guard();
    rt().block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let err = UdpSocket::bind(a.local_addr().unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        let (r, _) = a.send(b"x".to_vec()).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::NotConnected);
        let none: &[std::net::SocketAddr] = &[];
        let (r, _) = a.send_to(b"x".to_vec(), none).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
        let std_a = a.into_std().unwrap();
        let a = UdpSocket::from_std(std_a).unwrap();
        a.set_ttl(7).unwrap();
        assert_eq!(a.ttl().unwrap(), 7);
    });
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("weft-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn unix_echo(listener: UnixListener, conns: usize) {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (s, _) = listener.accept().await.unwrap();
        tasks.push(weft_runtime::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            loop {
                let (r, b) = s.read(buf).await;
                if r.unwrap() == 0 {
                    return;
                }
                let (r, b) = s.write_all(b).await;
                r.unwrap();
                buf = b;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn unix_stream_echo_at_a_path_and_an_abstract_name() {
    hang_guard();
    watchdog("unix", || {
        let dir = TempDir::new("net-unix");
        let path = dir.0.join("echo.sock");
        let abstract_name = format!("\0weft-net-test-{}", std::process::id());
        rt().block_on(async move {
            for name in [path.clone(), PathBuf::from(&abstract_name)] {
                let listener = UnixListener::bind(&name).unwrap();
                let server = weft_runtime::spawn(unix_echo(listener, 20));
                let clients: Vec<_> = (0..20u32)
                    .map(|i| {
                        let name = name.clone();
                        weft_runtime::spawn(async move {
                            let c = UnixStream::connect(&name).await.unwrap();
                            let msg = format!("unix client {i}").into_bytes();
                            let (r, _) = c.write_all(msg.clone()).await;
                            r.unwrap();
                            let (r, got) = c.read_exact(Vec::with_capacity(msg.len())).await;
                            r.unwrap();
                            assert_eq!(got, msg);
                            c.shutdown(Shutdown::Write).unwrap();
                        })
                    })
                    .collect();
                for c in clients {
                    c.await.unwrap();
                }
                server.await.unwrap();
            }
            // The path's socket file stays: binding again is AddrInUse, naming it.
            let err = UnixListener::bind(&path).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
            assert!(err.to_string().contains("echo.sock"), "{err}");
        });
    });
}

#[test]
fn unix_bad_paths_and_missing_listeners_are_typed_errors() {
    hang_guard();
    rt().block_on(async {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        let err = UnixListener::bind(&long).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("xxxx"), "{err}");
        let err = UnixStream::connect("/nonexistent-weft-dir/sock")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("nonexistent-weft-dir"), "{err}");
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let (r, _) = a.write(b"x".to_vec()).await;
        assert_eq!(
            r.unwrap_err().kind(),
            ErrorKind::BrokenPipe,
            "no SIGPIPE either"
        );
    });
}

/// Runs `f` as a task on a worker (ring ops on the ring driver) and then on the
/// `block_on` thread (readiness).
fn on_worker_and_block_on<F, Fut>(f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = rt();
    let fut = f();
    rt.block_on(async move { weft_runtime::spawn(fut).await.unwrap() });
    rt.block_on(f());
}

#[test]
fn unix_datagram_round_trips() {
    hang_guard();
    watchdog("unix datagrams", || {
        let dir = Arc::new(TempDir::new("net-udg"));
        on_worker_and_block_on(|| {
            let dir = dir.clone();
            async move {
                // A pair.
                let (a, b) = UnixDatagram::pair().unwrap();
                for msg in [&b"one"[..], b"", b"three"] {
                    let (r, _) = a.send(msg).await;
                    assert_eq!(r.unwrap(), msg.len());
                    let (r, got) = b.recv(Vec::with_capacity(16)).await;
                    assert_eq!(r.unwrap(), msg.len());
                    assert_eq!(got, msg, "datagrams keep their boundaries");
                }
                // A bound server, an unbound client: the sender is unnamed.
                let path = dir
                    .0
                    .join(format!("srv-{:?}.sock", std::thread::current().id()));
                let _ = std::fs::remove_file(&path);
                let server = UnixDatagram::bind(&path).unwrap();
                assert_eq!(
                    server.local_addr().unwrap().as_pathname(),
                    Some(path.as_path())
                );
                let client = UnixDatagram::unbound().unwrap();
                let (r, _) = client.send_to(b"hello".to_vec(), &path).await;
                assert_eq!(r.unwrap(), 5);
                let (r, got) = server.recv_from(Vec::with_capacity(16)).await;
                let (n, from) = r.unwrap();
                assert_eq!((n, &got[..]), (5, &b"hello"[..]));
                assert!(from.is_unnamed(), "{from:?}");
                // Bound at an abstract name, the client is named in replies.
                use std::os::linux::net::SocketAddrExt;
                let name = format!(
                    "\0weft-udg-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                );
                let client = UnixDatagram::bind(&name).unwrap();
                let (r, _) = client.send_to("named", &path).await;
                r.unwrap();
                let (r, got) = server.recv_from(Vec::with_capacity(16)).await;
                let (_, from) = r.unwrap();
                assert_eq!(got, b"named");
                assert_eq!(from.as_abstract_name(), Some(&name.as_bytes()[1..]));
                // Connected both ways: send and recv.
                server.connect(&name).unwrap();
                client.connect(&path).unwrap();
                assert_eq!(
                    client.peer_addr().unwrap().as_pathname(),
                    Some(path.as_path())
                );
                let (r, _) = server.send(b"reply".to_vec()).await;
                r.unwrap();
                let (r, got) = client.recv(vec![0u8; 8].into_boxed_slice()).await;
                assert_eq!(r.unwrap(), 5);
                assert_eq!(&got[..5], b"reply");
                std::fs::remove_file(&path).unwrap();
            }
        });
    });
}

#[test]
fn unix_datagram_longer_than_the_buffer_is_truncated() {
    hang_guard();
    on_worker_and_block_on(|| async {
        let (a, b) = UnixDatagram::pair().unwrap();
        let long: Vec<u8> = (0..100u8).collect();
        let (r, _) = a.send(long.clone()).await;
        assert_eq!(r.unwrap(), 100);
        let (r, _) = a.send("next").await;
        r.unwrap();
        let (r, got) = b.recv(Vec::with_capacity(10)).await;
        assert_eq!(r.unwrap(), got.len());
        assert_eq!(got, long[..got.len()], "the head of the datagram");
        assert!(got.len() < 100);
        // The rest was discarded: the next receive is the next datagram.
        let (r, got) = b.recv_from(Vec::with_capacity(10)).await;
        assert_eq!(r.unwrap().0, 4);
        assert_eq!(got, b"next");
    });
}

#[test]
fn unix_datagram_bad_input_is_a_typed_error() {
    hang_guard();
    let dir = TempDir::new("net-udg-bad");
    rt().block_on(async move {
        let err = UnixDatagram::bind("/tmp/bad\0name").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let missing = dir.0.join("missing.sock");
        let c = UnixDatagram::unbound().unwrap();
        let (r, _) = c.send_to(b"x".to_vec(), &missing).await;
        let err = r.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused
            ),
            "{err}"
        );
        assert!(err.to_string().contains("missing.sock"), "{err}");
        let err = c.connect(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.sock"), "{err}");
        let (r, _) = c.send(b"x".to_vec()).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::NotConnected);
        let path = dir.0.join("taken.sock");
        let _held = UnixDatagram::bind(&path).unwrap();
        let err = UnixDatagram::bind(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains("taken.sock"), "{err}");
    });
}

/// Writes `total` bytes of a counting pattern through `w`, then drops it (end of stream).
async fn write_count(w: weft_runtime::net::unix::OwnedWriteHalf, total: usize) {
    let buf: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut buf = buf;
    while sent < total {
        let (r, b) = w.write_all(buf).await;
        r.unwrap();
        buf = b;
        sent += buf.len();
    }
}

/// Reads until end of stream, checking the counting pattern; the byte count.
async fn read_count(r: weft_runtime::net::unix::OwnedReadHalf) -> usize {
    let mut n = 0;
    let mut buf = Vec::with_capacity(48 * 1024);
    loop {
        let (res, b) = r.read(buf).await;
        let k = res.unwrap();
        if k == 0 {
            return n;
        }
        for (j, &x) in b.iter().enumerate() {
            assert_eq!(x as usize, ((n + j) % (64 * 1024)) % 251, "byte {}", n + j);
        }
        n += k;
        buf = b;
    }
}

#[test]
fn unix_split_halves_on_two_workers() {
    hang_guard();
    watchdog("unix halves", || {
        let total = common::scaled(8 << 20, 1 << 20) / (64 * 1024) * (64 * 1024);
        rt().block_on(async move {
            let (a, b) = UnixStream::pair().unwrap();
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            // Each task holds one half of each stream; the barrier holds both workers
            // until both tasks run, so they run on different workers.
            let barrier = Arc::new(Barrier::new(2));
            let start = |barrier: Arc<Barrier>| {
                barrier.wait();
                std::thread::current().name().unwrap_or("").to_string()
            };
            let b1 = barrier.clone();
            let t1 = weft_runtime::spawn(async move {
                let name = start(b1);
                let (_, n) = weft_runtime::join!(write_count(aw, total), read_count(br));
                (name, n)
            });
            let t2 = weft_runtime::spawn(async move {
                let name = start(barrier);
                let (_, n) = weft_runtime::join!(write_count(bw, total), read_count(ar));
                (name, n)
            });
            let (n1, got1) = t1.await.unwrap();
            let (n2, got2) = t2.await.unwrap();
            assert_ne!(n1, n2, "both tasks ran on one worker");
            assert_eq!((got1, got2), (total, total));
        });
    });
}

#[test]
fn empty_datagrams_are_sent() {
    hang_guard();
    watchdog("empty datagrams", || {
        on_worker_and_block_on(|| async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            a.connect(b.local_addr().unwrap()).await.unwrap();
            let (r, _) = a.send(Vec::new()).await;
            assert_eq!(r.unwrap(), 0);
            let (r, _) = a.send_to("", b.local_addr().unwrap()).await;
            assert_eq!(r.unwrap(), 0);
            for _ in 0..2 {
                let (r, got) = b.recv_from(Vec::with_capacity(8)).await;
                assert_eq!(r.unwrap(), (0, a.local_addr().unwrap()));
                assert!(got.is_empty());
            }
        });
    });
}
