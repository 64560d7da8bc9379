//! weft::net UDP and Unix sockets: round trips, truncation, connected sockets, paths and
//! abstract names, and the errors for bad input. Run on both drivers.

mod common;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::path::PathBuf;

use common::{hang_guard, watchdog};
use weft_runtime::net::{UdpSocket, UnixListener, UnixStream};
use weft_runtime::Runtime;

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
