//! The poll-based I/O traits of `weft::net`'s streams (features `tokio-io`, `futures-io`):
//! a poll read dropped after the kernel filled its buffer keeps the bytes; small reads of
//! every kind (poll, owned buffer, dropped midway) interleaved get every byte in order;
//! 1 MiB through tokio-util's `LinesCodec` and `BytesCodec`; writes that fill the socket's
//! buffers keep every byte in order; a poll writer that never waits for room still yields
//! to other tasks (the cooperative budget); errors keep their kinds. Run
//! on both drivers (`WEFT_IO_DRIVER=fallback` too). Every socket binds 127.0.0.1 on port 0.

#[path = "../runtime/tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::io::ErrorKind;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::Poll;
use std::time::Duration;

use common::{XorShift, hang_guard, poll_once, watchdog};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{BytesCodec, Framed, LinesCodec};
use weft::Runtime;
use weft::net::{TcpListener, TcpStream};
use weft::time::sleep;

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// A connected pair: (client, server side).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = weft::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

/// Runs `f` on a worker (where reads go through the ring, unless on the fallback driver).
fn on_worker<F: Future<Output = ()> + Send + 'static>(what: &'static str, f: F) {
    hang_guard();
    watchdog(what, move || {
        let rt = rt();
        rt.block_on(async move { weft::spawn(f).await.unwrap() })
    });
}

/// Polls `fut` once through a real task context; it must be pending.
fn poll_pending<F: Future + Unpin>(fut: &mut F) {
    assert!(
        poll_once(fut).is_pending(),
        "the read had nothing to return yet"
    );
}

#[test]
fn dropped_poll_read_keeps_the_bytes_for_the_next_poll_read() {
    on_worker("dropped poll read", async {
        let (mut a, mut b) = pair().await;
        let mut buf = [0u8; 64];
        {
            let mut read = pin!(AsyncReadExt::read(&mut a, &mut buf));
            poll_pending(&mut read);
            // Dropped here: its RECV stays with the stream.
        }
        AsyncWriteExt::write_all(&mut b, b"kept across the drop")
            .await
            .unwrap();
        AsyncWriteExt::flush(&mut b).await.unwrap();
        // Time for the kernel to fill the abandoned read's buffer; either way no byte may
        // be lost.
        sleep(Duration::from_millis(50)).await;
        let n = AsyncReadExt::read(&mut a, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"kept across the drop");
    });
}

#[test]
fn dropped_poll_read_keeps_the_bytes_for_an_owned_read() {
    on_worker("dropped poll read, then owned read", async {
        let (mut a, mut b) = pair().await;
        let mut buf = [0u8; 64];
        {
            let mut read = pin!(AsyncReadExt::read(&mut a, &mut buf));
            poll_pending(&mut read);
        }
        AsyncWriteExt::write_all(&mut b, b"first").await.unwrap();
        AsyncWriteExt::flush(&mut b).await.unwrap();
        sleep(Duration::from_millis(50)).await;
        // A small poll read leaves the rest of what its `RECV` got in the stream.
        let mut two = [0u8; 2];
        let n = AsyncReadExt::read(&mut a, &mut two).await.unwrap();
        let mut got = two[..n].to_vec();
        AsyncWriteExt::write_all(&mut b, b" second").await.unwrap();
        AsyncWriteExt::flush(&mut b).await.unwrap();
        while got.len() < b"first second".len() {
            let (r, v) = a.read(Vec::with_capacity(64)).await;
            assert!(r.unwrap() > 0, "end of stream after {got:?}");
            got.extend_from_slice(&v);
        }
        assert_eq!(got, b"first second");
    });
}

#[test]
fn bytes_beyond_a_small_read_buffer_come_in_the_next_reads() {
    on_worker("small poll reads", async {
        let (mut a, mut b) = pair().await;
        AsyncWriteExt::write_all(&mut b, b"abcdefghij")
            .await
            .unwrap();
        AsyncWriteExt::flush(&mut b).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 10 {
            let mut one = [0u8; 3];
            let n = AsyncReadExt::read(&mut a, &mut one).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&one[..n]);
        }
        assert_eq!(got, b"abcdefghij");
    });
}

#[test]
fn a_vectored_read_after_a_poll_read_gets_the_bytes_the_poll_read_left() {
    on_worker("readv after a poll read", async {
        let (mut a, b) = pair().await;
        let (r, _) = b.write_all(b"hello world".to_vec()).await;
        r.unwrap();
        let mut five = [0u8; 5];
        AsyncReadExt::read_exact(&mut a, &mut five).await.unwrap();
        assert_eq!(&five, b"hello");
        // The poll read took the rest from the kernel: the readv must see it first.
        let mut got = Vec::new();
        while got.len() < 6 {
            let (r, bufs) = a
                .readv(vec![Vec::with_capacity(2), Vec::with_capacity(64)])
                .await;
            assert!(r.unwrap() > 0);
            got.extend(bufs.concat());
        }
        assert_eq!(got, b" world");
    });
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn interleaved_small_reads_of_every_kind_get_every_byte_in_order() {
    on_worker("interleaved reads", async {
        const TOTAL: usize = 256 * 1024;
        let (a, b) = pair().await;
        let writer = weft::spawn(async move {
            let mut b = b;
            let data = pattern(TOTAL);
            let mut rng = XorShift::new(7);
            let mut at = 0;
            while at < TOTAL {
                let n = (1 + rng.below(4000)).min(TOTAL - at);
                // Alternate the poll-based and the owned-buffer writes.
                if rng.below(2) == 0 {
                    AsyncWriteExt::write_all(&mut b, &data[at..at + n])
                        .await
                        .unwrap();
                    AsyncWriteExt::flush(&mut b).await.unwrap();
                } else {
                    b.write_all(data[at..at + n].to_vec()).await.0.unwrap();
                }
                at += n;
                if rng.below(8) == 0 {
                    weft::task::yield_now().await;
                }
            }
            AsyncWriteExt::shutdown(&mut b).await.unwrap();
        });
        let mut a = a;
        let mut rng = XorShift::new(11);
        let mut got = Vec::with_capacity(TOTAL);
        loop {
            let size = 1 + rng.below(100);
            let n = match rng.below(4) {
                0 => {
                    let mut buf = vec![0u8; size];
                    let n = AsyncReadExt::read(&mut a, &mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    n
                }
                1 => {
                    let (r, v) = a.read(Vec::with_capacity(size)).await;
                    got.extend_from_slice(&v);
                    r.unwrap()
                }
                2 => {
                    let mut buf = vec![0u8; size];
                    let n = futures_io_read(&mut a, &mut buf).await;
                    got.extend_from_slice(&buf[..n]);
                    n
                }
                _ => {
                    // A poll read polled once, then dropped whether or not it finished.
                    let mut buf = vec![0u8; size];
                    let mut read = pin!(AsyncReadExt::read(&mut a, &mut buf));
                    match poll_once(&mut read) {
                        Poll::Ready(r) => {
                            let n = r.unwrap();
                            got.extend_from_slice(&buf[..n]);
                            if n == 0 {
                                break;
                            }
                        }
                        Poll::Pending => {}
                    }
                    continue;
                }
            };
            if n == 0 {
                break;
            }
        }
        writer.await.unwrap();
        assert_eq!(got.len(), TOTAL);
        assert!(got == pattern(TOTAL), "bytes out of order or corrupted");
    });
}

async fn futures_io_read(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    std::future::poll_fn(|cx| {
        futures_io::AsyncRead::poll_read(std::pin::Pin::new(&mut *s), cx, buf)
    })
    .await
    .unwrap()
}

#[test]
fn one_mib_of_lines_through_lines_codec() {
    on_worker("LinesCodec", async {
        let (a, b) = pair().await;
        let server = weft::spawn(async move {
            let mut framed = Framed::new(b, LinesCodec::new());
            while let Some(line) = framed.next().await {
                framed.send(line.unwrap()).await.unwrap();
            }
        });
        let mut lines = Vec::new();
        let mut total = 0;
        let mut i = 0usize;
        while total < 1024 * 1024 {
            let line = format!("line {i} {}", "x".repeat(i % 200));
            total += line.len() + 1;
            lines.push(line);
            i += 1;
        }
        let (r, w) = a.into_split();
        let mut sink = tokio_util::codec::FramedWrite::new(w, LinesCodec::new());
        let mut stream = tokio_util::codec::FramedRead::new(r, LinesCodec::new());
        let sent = lines.clone();
        let writer = weft::spawn(async move {
            for l in sent {
                sink.feed(l).await.unwrap();
            }
            SinkExt::<String>::close(&mut sink).await.unwrap();
        });
        for want in &lines {
            let got = stream.next().await.expect("a line").unwrap();
            assert_eq!(&got, want);
        }
        assert!(
            stream.next().await.is_none(),
            "end of stream after the echo"
        );
        writer.await.unwrap();
        server.await.unwrap();
    });
}

#[test]
fn one_mib_through_bytes_codec() {
    on_worker("BytesCodec", async {
        const TOTAL: usize = 1024 * 1024;
        let (a, b) = pair().await;
        let writer = weft::spawn(async move {
            let data = pattern(TOTAL);
            let mut framed = Framed::new(b, BytesCodec::new());
            for chunk in data.chunks(10_000) {
                framed
                    .send(bytes::Bytes::copy_from_slice(chunk))
                    .await
                    .unwrap();
            }
            SinkExt::<bytes::Bytes>::close(&mut framed).await.unwrap();
        });
        let mut framed = Framed::new(a, BytesCodec::new());
        let mut got = Vec::with_capacity(TOTAL);
        while let Some(chunk) = framed.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        writer.await.unwrap();
        assert_eq!(got.len(), TOTAL);
        assert!(got == pattern(TOTAL), "bytes corrupted");
    });
}

#[test]
fn writes_into_a_full_socket_buffer_wait_and_keep_every_byte_in_order() {
    on_worker("full send buffer", async {
        // More than loopback's send and receive buffers hold together, so the writer's
        // `send(2)` finds the buffer full and the rest goes the waiting way.
        const TOTAL: usize = 16 * 1024 * 1024;
        let (mut a, mut b) = pair().await;
        let writer = weft::spawn(async move {
            let data = pattern(TOTAL);
            for chunk in data.chunks(100_000) {
                AsyncWriteExt::write_all(&mut b, chunk).await.unwrap();
            }
            AsyncWriteExt::shutdown(&mut b).await.unwrap();
        });
        // Nobody reads for a while: the buffers fill and the writer waits.
        sleep(Duration::from_millis(50)).await;
        let mut got = Vec::with_capacity(TOTAL);
        AsyncReadExt::read_to_end(&mut a, &mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), TOTAL);
        assert!(got == pattern(TOTAL), "bytes corrupted or reordered");
    });
}

#[test]
fn a_poll_writer_that_never_waits_still_lets_other_tasks_run() {
    hang_guard();
    watchdog("poll write budget", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        rt.block_on(async {
            weft::spawn(async {
                let (_a, mut b) = pair().await;
                let ran = Arc::new(AtomicBool::new(false));
                let flag = ran.clone();
                let other = weft::spawn(async move { flag.store(true, SeqCst) });
                // 10 000 one-byte writes fit in the socket's buffers: none has to wait for
                // room, so only the cooperative budget makes the writer yield.
                let mut yielded = false;
                for _ in 0..10_000 {
                    AsyncWriteExt::write_all(&mut b, b"x").await.unwrap();
                    if ran.load(SeqCst) {
                        yielded = true;
                        break;
                    }
                }
                other.await.unwrap();
                assert!(
                    yielded,
                    "10 000 writes ran without letting another task run"
                );
            })
            .await
            .unwrap();
        });
    });
}

#[test]
fn shared_reference_reads_and_writes() {
    on_worker("&TcpStream", async {
        let (a, b) = pair().await;
        let mut w = &b;
        AsyncWriteExt::write_all(&mut w, b"by reference")
            .await
            .unwrap();
        AsyncWriteExt::flush(&mut w).await.unwrap();
        let mut r = &a;
        let mut buf = [0u8; 12];
        AsyncReadExt::read_exact(&mut r, &mut buf).await.unwrap();
        assert_eq!(&buf, b"by reference");
    });
}

#[test]
fn end_of_stream_reads_zero_and_a_reset_is_connection_reset() {
    on_worker("eof and reset", async {
        let (mut a, b) = pair().await;
        let mut b = b;
        AsyncWriteExt::write_all(&mut b, b"bye").await.unwrap();
        AsyncWriteExt::shutdown(&mut b).await.unwrap();
        let mut got = Vec::new();
        a.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");

        let (mut c, d) = pair().await;
        d.set_linger(Some(Duration::ZERO)).unwrap();
        drop(d);
        let mut buf = [0u8; 8];
        let e = AsyncReadExt::read(&mut c, &mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    });
}

#[test]
fn reads_and_writes_on_a_thread_without_a_ring() {
    hang_guard();
    watchdog("block_on thread", || {
        rt().block_on(async {
            let (mut a, mut b) = pair().await;
            let data = pattern(300_000);
            let expect = data.clone();
            let (w, r) = weft::join!(
                async {
                    AsyncWriteExt::write_all(&mut b, &data).await.unwrap();
                    AsyncWriteExt::shutdown(&mut b).await.unwrap();
                },
                async {
                    let mut got = Vec::new();
                    a.read_to_end(&mut got).await.unwrap();
                    got
                }
            );
            let () = w;
            assert!(r == expect, "bytes corrupted");
        })
    });
}

#[test]
fn dropped_write_half_sends_the_accepted_bytes_before_shutting_down() {
    on_worker("write half dropped after poll writes", async {
        const TOTAL: usize = 200 * 1024;
        let (a, mut b) = pair().await;
        let (r, mut w) = a.into_split();
        // Accepted, maybe not yet sent: no flush before the drop.
        AsyncWriteExt::write_all(&mut w, &pattern(TOTAL))
            .await
            .unwrap();
        drop(w);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), TOTAL);
        assert!(got == pattern(TOTAL), "bytes corrupted");
        drop(r);
    });
}

#[test]
fn unix_stream_through_the_traits() {
    on_worker("UnixStream", async {
        let (mut a, mut b) = weft::net::UnixStream::pair().unwrap();
        AsyncWriteExt::write_all(&mut a, b"over a unix socket")
            .await
            .unwrap();
        AsyncWriteExt::shutdown(&mut a).await.unwrap();
        let mut got = String::new();
        b.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "over a unix socket");
    });
}
