//! weft::fs with the `weft::buf` owned buffers other than `Vec<u8>`: reads into a slice of
//! a larger buffer, into a `Box<[u8]>`, into `BytesMut` (feature `bytes`); writes from
//! `&'static str`, `&'static [u8]`, a slice view and `Bytes`; futures holding such buffers
//! dropped mid-flight; a buffer coming back from a runtime that shut down; the callback
//! read. On whichever driver `WEFT_IO_DRIVER` selects (run it with `fallback` too).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::Duration;

use weft_runtime::Runtime;
use weft_runtime::buf::{IoBuf, Slice};
use weft_runtime::fs::File;
use weft_runtime::time::timeout;

mod common;

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// A path in the temp dir, unique to this process and call, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, SeqCst);
        TempPath(std::env::temp_dir().join(format!(
            "weft-fs-buf-test-{}-{n}-{name}",
            std::process::id()
        )))
    }

    fn with(name: &str, contents: &[u8]) -> TempPath {
        let p = TempPath::new(name);
        std::fs::write(&p.0, contents).unwrap();
        p
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

#[test]
fn reads_fill_a_slice_of_a_larger_buffer() {
    let path = TempPath::with("slice", ALPHABET);
    rt().block_on(async {
        let file = File::open(&path).await.unwrap();

        // After the buffer's initialised bytes: they are kept, the read lands behind them.
        let mut buf = Vec::with_capacity(16);
        buf.extend_from_slice(b"head:");
        let (res, slice) = file.read_at(buf.slice(5..10), 2).await;
        assert_eq!(res.unwrap(), 5);
        assert_eq!((slice.begin(), slice.end()), (5, 10));
        assert_eq!(&slice[..], b"cdefg");
        assert_eq!(slice.get_ref().len(), 10);
        assert_eq!(slice.into_inner(), b"head:cdefg");

        // Inside initialised bytes: only the view changes, the bytes after it stay.
        let buf = b"0123456789".to_vec();
        let (res, slice) = file.read_exact_at(buf.slice(2..5), 0).await;
        res.unwrap();
        assert_eq!(slice.into_inner(), b"01abc56789");

        // Past the initialised bytes: the gap reads as zeros.
        let (res, slice) = file
            .read_at(Vec::<u8>::with_capacity(8).slice(4..8), 0)
            .await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(slice.into_inner(), b"\0\0\0\0abcd");

        // A short read (the file ends) fills the front of the view only.
        let (res, slice) = file.read_at(vec![b'.'; 8].slice(2..8), 23).await;
        assert_eq!(res.unwrap(), 3);
        assert_eq!(slice.into_inner(), b"..xyz...");

        // read_exact_at into a view that ends past the file is UnexpectedEof, with the
        // bytes read kept.
        let (res, slice) = file
            .read_exact_at(Vec::<u8>::with_capacity(10).slice(..10), 20)
            .await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(slice.into_inner(), b"uvwxyz");
    });
}

#[test]
fn reads_into_a_boxed_slice() {
    let path = TempPath::with("box", ALPHABET);
    rt().block_on(async {
        let file = File::open(&path).await.unwrap();
        let buf: Box<[u8]> = vec![b'-'; 8].into_boxed_slice();
        let (res, buf) = file.read_at(buf, 24).await;
        // A Box<[u8]> keeps its length; the count says what was read.
        assert_eq!(res.unwrap(), 2);
        assert_eq!(&buf[..], b"yz------");

        let (res, buf) = file.read_exact_at(buf, 3).await;
        res.unwrap();
        assert_eq!(&buf[..], b"defghijk");

        let (res, buf) = file.read_exact_at(buf, 20).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(&buf[..6], b"uvwxyz");
    });
}

#[test]
fn writes_from_static_strs_slices_and_views() {
    let path = TempPath::new("static");
    rt().block_on(async {
        let file = weft_runtime::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .unwrap();
        let (res, s) = file.write_all_at("hello, ", 0).await;
        res.unwrap();
        assert_eq!(s, "hello, ");
        let bytes: &'static [u8] = b"world";
        let (res, _) = file.write_at(bytes, 7).await;
        assert_eq!(res.unwrap(), 5);
        // Only the view's bytes are written.
        let (res, view) = file.write_all_at(b"xx!yy".to_vec().slice(2..3), 12).await;
        res.unwrap();
        assert_eq!(view.into_inner(), b"xx!yy");
        // A view of a `&'static str` works the same.
        let (res, _) = file.write_all_at("[and more]".slice(1..9), 13).await;
        res.unwrap();
        // Boxed bytes too.
        let boxed: Box<[u8]> = Box::from(&b"."[..]);
        let (res, _) = file.write_all_at(boxed, 21).await;
        res.unwrap();

        let (res, buf) = file.read_at(Vec::with_capacity(64), 0).await;
        res.unwrap();
        assert_eq!(buf, b"hello, world!and more.");
    });
}

#[test]
fn dropped_futures_with_non_vec_buffers_leave_the_file_usable() {
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let path = TempPath::with("dropped", &data);
    let out = TempPath::new("dropped-out");
    rt().block_on(async {
        let file = File::open(&path).await.unwrap();
        let writer = File::create(&out).await.unwrap();
        for i in 0..200u64 {
            let d = Duration::from_micros(i % 7 * 50);
            let boxed = vec![0u8; 64 << 10].into_boxed_slice();
            let _ = timeout(d, file.read_at(boxed, i * 4096)).await;
            let view = Vec::<u8>::with_capacity(64 << 10).slice(1024..);
            let _ = timeout(d, file.read_exact_at(view, i * 512)).await;
            let _ = timeout(d, writer.write_all_at("0123456789abcdef", i * 16)).await;
        }
        writer.close().await.unwrap();
        let written = std::fs::read(&out).unwrap();
        for (i, chunk) in written.chunks(16).enumerate() {
            assert!(
                chunk == b"0123456789abcdef" || chunk.iter().all(|&b| b == 0),
                "chunk {i} is torn"
            );
        }
        let (res, buf) = file
            .read_exact_at(vec![0u8; 4096].into_boxed_slice(), 4096)
            .await;
        res.unwrap();
        assert!(buf[..] == data[4096..8192]);
    });
}

#[test]
fn a_buffer_comes_back_when_the_runtime_shut_down_first() {
    let path = TempPath::with("shutdown", ALPHABET);
    common::watchdog("a read after shutdown", move || {
        let rt = rt();
        let handle = rt.handle().clone();
        let file = rt.block_on(File::open(&path)).unwrap();
        drop(rt);
        // After shutdown the blocking pool takes no jobs, so the read fails (on a
        // `block_on` thread's own ring it may still run, with the right data). Either way
        // the caller gets its buffer back, not an empty one.
        let (res, buf) = handle.block_on(file.read_at(Vec::with_capacity(16), 0));
        assert!(buf.capacity() >= 16, "the buffer was lost");
        match res {
            Ok(n) => assert_eq!(buf, ALPHABET[..n]),
            Err(e) => assert!(e.to_string().contains("shut down"), "{e}"),
        }
        let boxed: Box<[u8]> = Box::from(&b"keep me"[..]);
        let (res, buf) = handle.block_on(file.write_all_at(boxed, 100));
        if res.is_err() {
            assert_eq!(&buf[..], b"keep me");
        }
    });
}

#[test]
fn callback_reads_take_any_buffer() {
    let path = TempPath::with("callback", ALPHABET);
    let rt = rt();
    let (tx, rx) = mpsc::channel();
    rt.block_on(async {
        let file = File::open(&path).await.unwrap();
        let tx2 = tx.clone();
        let mut ab = Vec::with_capacity(4);
        ab.extend_from_slice(b"ab");
        weft_runtime::callback::fs::read_at(
            &file,
            vec![b'.'; 6].into_boxed_slice(),
            20,
            move |(res, buf): (io::Result<usize>, Box<[u8]>)| {
                tx2.send((res.unwrap(), buf.to_vec())).unwrap()
            },
        );
        weft_runtime::callback::fs::read_at(
            &file,
            ab.slice(2..4).slice(..),
            2,
            move |(res, buf): (io::Result<usize>, Slice<Slice<Vec<u8>>>)| {
                tx.send((res.unwrap(), buf.into_inner().into_inner()))
                    .unwrap()
            },
        );
    });
    let mut got = vec![
        rx.recv_timeout(common::watchdog_limit()).unwrap(),
        rx.recv_timeout(common::watchdog_limit()).unwrap(),
    ];
    got.sort();
    assert_eq!(got, [(2, b"abcd".to_vec()), (6, b"uvwxyz".to_vec())]);
}

#[cfg(feature = "bytes")]
#[test]
fn bytes_and_bytes_mut() {
    use bytes::{BufMut, Bytes, BytesMut};
    use weft_runtime::buf::IoBufMut;

    let path = TempPath::new("bytes");
    rt().block_on(async {
        let file = weft_runtime::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .unwrap();
        let (res, b) = file.write_all_at(Bytes::from_static(b"static "), 0).await;
        res.unwrap();
        assert_eq!(b, "static ");
        let shared = Bytes::from(b"shared bytes".to_vec());
        let (res, _) = file.write_all_at(shared.slice(7..), 7).await;
        res.unwrap();

        // BytesMut reads up to its capacity and sets its length, like a Vec.
        let (res, buf) = file.read_at(BytesMut::with_capacity(64), 0).await;
        assert_eq!(res.unwrap(), 12);
        assert_eq!(&buf[..], b"static bytes");
        assert!(buf.bytes_total() >= 64);

        // Into the rest of a BytesMut that already holds a prefix.
        let mut head = BytesMut::with_capacity(16);
        head.put_slice(b">> ");
        let (res, view) = file.read_exact_at(head.slice(3..9), 0).await;
        res.unwrap();
        let mut buf = view.into_inner();
        assert_eq!(&buf[..], b">> static");
        // SAFETY: no byte is declared initialised: the buffer is cleared.
        unsafe { buf.set_init(0) };
        assert!(buf.is_empty());
    });
}
