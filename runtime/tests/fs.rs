//! weft::fs on the blocking-pool backend: reads of every size and offset class, sparse
//! files, errors that keep their kind and name the path, owned buffers surviving dropped
//! futures, concurrency across workers, and shutdown with operations in flight.
//!
//! The fd-leak check lives in `fs_fd_leak.rs`, alone in its binary, because it counts the
//! process's descriptors.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use weft_runtime::Runtime;
use weft_runtime::fs::{self, File, OpenOptions};
use weft_runtime::time::timeout;

/// Only a hang detector: no assertion compares a duration.
const WATCHDOG: Duration = Duration::from_secs(120);

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// A path in the temp dir, unique to this process and call, removed (file or directory)
/// on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, SeqCst);
        TempPath(
            std::env::temp_dir().join(format!("weft-fs-test-{}-{n}-{name}", std::process::id())),
        )
    }
}

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
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
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The data files' content: little-endian u64 word `w` holds `splitmix64(w)`.
fn byte_at(offset: u64) -> u8 {
    splitmix64(offset / 8).to_le_bytes()[(offset % 8) as usize]
}

fn expected(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64).map(byte_at).collect()
}

/// A data file of `len` bytes (a multiple of 8 or not).
fn data_file(name: &str, len: u64) -> TempPath {
    let path = TempPath::new(name);
    let words = len.div_ceil(8);
    let mut bytes = Vec::with_capacity(words as usize * 8);
    for w in 0..words {
        bytes.extend_from_slice(&splitmix64(w).to_le_bytes());
    }
    bytes.truncate(len as usize);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The original error behind one of weft::fs's path-naming errors.
fn raw_os_error(e: &io::Error) -> Option<i32> {
    e.get_ref()?
        .source()?
        .downcast_ref::<io::Error>()?
        .raw_os_error()
}

#[track_caller]
fn assert_names(e: &io::Error, op: &str, path: &Path) {
    let msg = e.to_string();
    let want = format!("{op} {}: ", path.display());
    assert!(msg.starts_with(&want), "{msg:?} should start with {want:?}");
}

#[test]
fn reads_of_every_size_and_offset_class() {
    const SIZES: [usize; 6] = [0, 1, 4095, 4096, 4097, 1 << 20];
    const OFFSETS: [u64; 5] = [0, 1, 4095, 4096, 4097];
    let len = (1u64 << 20) + 3 * 4096 + 5;
    let path = data_file("classes", len);
    let rt = rt(2);
    rt.block_on(async {
        let file = File::open(&*path).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), len);
        for size in SIZES {
            for off in OFFSETS.into_iter().chain([len - 4097, len - 1]) {
                let buf = Vec::with_capacity(size);
                let cap = buf.capacity();
                let want = expected(off, cap.min((len - off) as usize));
                let (res, buf) = file.read_at(buf, off).await;
                let n = res.unwrap();
                assert_eq!(n, want.len(), "size {size} at {off}");
                assert_eq!(buf.len(), n);
                assert!(buf == want, "size {size} at {off}: contents differ");

                let buf = Vec::with_capacity(size);
                let cap = buf.capacity();
                let (res, buf) = file.read_exact_at(buf, off).await;
                if off + cap as u64 <= len {
                    res.unwrap();
                    assert!(buf == expected(off, cap), "exact {size} at {off}");
                } else {
                    assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
                    assert!(buf == expected(off, (len - off) as usize), "partial exact");
                }
            }
        }
        // At and past the end: 0 bytes, whatever the buffer.
        for off in [len, len + 1, len + 4096, 1 << 40] {
            let (res, buf) = file.read_at(vec![7; 4096], off).await;
            assert_eq!(res.unwrap(), 0, "at {off}");
            assert!(buf.is_empty());
        }
        // A buffer's old contents are overwritten from the front, not appended to.
        let (res, buf) = file.read_at(vec![0xAA; 4096], 1).await;
        assert_eq!(res.unwrap(), 4096);
        assert!(buf == expected(1, 4096));
    });

    let empty = TempPath::new("empty");
    std::fs::write(&empty, b"").unwrap();
    rt.block_on(async {
        let file = File::open(&*empty).await.unwrap();
        for off in [0, 1, 4096] {
            let (res, buf) = file.read_at(Vec::with_capacity(4096), off).await;
            assert_eq!(res.unwrap(), 0);
            assert!(buf.is_empty());
        }
        let (res, _) = file.read_exact_at(Vec::with_capacity(1), 0).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (res, _) = file.read_exact_at(Vec::new(), 0).await;
        res.unwrap();
        assert!(fs::read(&*empty).await.unwrap().is_empty());
        assert_eq!(fs::read_to_string(&*empty).await.unwrap(), "");
    });
}

#[test]
fn sparse_gigabyte_file() {
    const GIB: u64 = 1 << 30;
    let path = TempPath::new("sparse");
    let tail = expected(12345, 4096);
    rt(2).block_on(async {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&*path)
            .await
            .unwrap();
        file.set_len(GIB).await.unwrap();
        let (res, _) = file.write_all_at(tail.clone(), GIB - 4096).await;
        res.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), GIB);

        let (res, buf) = file.read_at(Vec::with_capacity(4096), GIB - 4096).await;
        assert_eq!(res.unwrap(), 4096);
        assert!(buf == tail);
        // Near the end: a short read of what is left.
        let (res, buf) = file.read_at(Vec::with_capacity(4096), GIB - 100).await;
        assert_eq!(res.unwrap(), 100);
        assert!(buf[..] == tail[4096 - 100..]);
        // Straddling the hole and the data.
        let (res, buf) = file
            .read_exact_at(Vec::with_capacity(8192), GIB - 8192)
            .await;
        res.unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..] == tail[..]);
        // In the hole: zeros.
        for off in [0, 4097, GIB / 2, GIB - 8192] {
            let (res, buf) = file.read_at(vec![0xFF; 4096], off).await;
            assert_eq!(res.unwrap(), 4096);
            assert!(buf.iter().all(|&b| b == 0), "hole at {off}");
        }
        let (res, _) = file.read_at(Vec::with_capacity(4096), GIB).await;
        assert_eq!(res.unwrap(), 0);
        file.close().await.unwrap();
    });
}

#[test]
fn reading_a_directory_fails_naming_it() {
    let dir = TempPath::new("dir");
    std::fs::create_dir(&dir).unwrap();
    // std's kind for EISDIR (IsADirectory on current toolchains; the crate's MSRV cannot
    // name it).
    let eisdir_kind = io::Error::from_raw_os_error(libc::EISDIR).kind();
    rt(1).block_on(async {
        // Linux opens a directory read-only; reading it fails.
        let file = File::open(&*dir).await.unwrap();
        let (res, buf) = file.read_at(Vec::with_capacity(16), 0).await;
        let e = res.unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::EISDIR), "{e:?}");
        assert_eq!(e.kind(), eisdir_kind);
        assert_names(&e, "read_at", &dir);
        assert!(buf.is_empty());
        assert_eq!(buf.capacity(), 16, "the buffer comes back");

        let e = fs::read(&*dir).await.unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::EISDIR));
        assert_eq!(e.kind(), eisdir_kind);
        assert_names(&e, "read", &dir);

        let e = OpenOptions::new()
            .write(true)
            .open(&*dir)
            .await
            .unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::EISDIR));
        assert_names(&e, "open", &dir);
    });
}

#[test]
fn missing_paths_are_not_found_and_named() {
    let missing = TempPath::new("missing");
    rt(1).block_on(async {
        let e = File::open(&*missing).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(raw_os_error(&e), Some(libc::ENOENT));
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
        assert_names(&e, "open", &missing);

        let e = fs::metadata(&*missing).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_names(&e, "metadata", &missing);

        let e = fs::read(&*missing).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_names(&e, "read", &missing);

        let e = fs::read_to_string(&*missing).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_names(&e, "read_to_string", &missing);

        let in_missing_dir = missing.join("file");
        let e = fs::write(&in_missing_dir, b"x").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_names(&e, "write", &in_missing_dir);
    });
}

#[test]
fn invalid_utf8_is_invalid_data_naming_the_path() {
    let path = TempPath::new("latin1");
    std::fs::write(&path, b"caf\xe9").unwrap();
    rt(1).block_on(async {
        let e = fs::read_to_string(&*path).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_names(&e, "read_to_string", &path);
        assert_eq!(fs::read(&*path).await.unwrap(), b"caf\xe9");
    });
}

#[test]
fn read_exact_at_past_the_end_is_unexpected_eof() {
    let path = data_file("exact", 100);
    rt(1).block_on(async {
        let file = File::open(&*path).await.unwrap();
        let (res, buf) = file.read_exact_at(Vec::with_capacity(64), 36).await;
        res.unwrap();
        assert!(buf == expected(36, 64));

        let (res, buf) = file.read_exact_at(Vec::with_capacity(64), 50).await;
        let e = res.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_names(&e, "read_exact_at", &path);
        assert!(buf == expected(50, 50), "the bytes before the end are kept");

        let (res, buf) = file.read_exact_at(Vec::with_capacity(1), 100).await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(buf.is_empty());
    });
}

#[test]
fn writes_read_back() {
    let path = TempPath::new("rw");
    rt(2).block_on(async {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&*path)
            .await
            .unwrap();
        let data = expected(0, 10_000);
        let (res, back) = file.write_at(data.clone(), 10).await;
        assert_eq!(res.unwrap(), data.len());
        assert!(back == data, "write_at returns the buffer unchanged");
        let (res, _) = file.write_all_at(b"head".to_vec(), 0).await;
        res.unwrap();
        let (res, _) = file.write_at(Vec::new(), 5).await;
        assert_eq!(res.unwrap(), 0);
        file.sync_data().await.unwrap();

        let (res, buf) = file.read_exact_at(Vec::with_capacity(10_010), 0).await;
        res.unwrap();
        assert_eq!(&buf[..4], b"head");
        assert_eq!(&buf[4..10], &[0; 6], "the gap reads as zeros");
        assert!(buf[10..] == data[..]);
        assert!(fs::read(&*path).await.unwrap() == buf);

        file.set_len(7).await.unwrap();
        file.sync_all().await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 7);
        assert_eq!(fs::metadata(&*path).await.unwrap().len(), 7);
        file.close().await.unwrap();

        fs::write(&*path, "replaced").await.unwrap();
        assert_eq!(fs::read_to_string(&*path).await.unwrap(), "replaced");

        // Writing through a read-only file fails, naming it.
        let ro = File::open(&*path).await.unwrap();
        let (res, buf) = ro.write_at(b"x".to_vec(), 0).await;
        let e = res.unwrap_err();
        assert_eq!(raw_os_error(&e), Some(libc::EBADF));
        assert_names(&e, "write_at", &path);
        assert_eq!(buf, b"x");
        let e = ro.set_len(0).await.unwrap_err();
        assert_names(&e, "set_len", &path);
        ro.close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"replaced");

        // create truncates.
        let f = File::create(&*path).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 0);
    });
}

#[test]
fn append_create_new_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    let path = TempPath::new("append");
    rt(1).block_on(async {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&*path)
            .await
            .unwrap();
        let mode = f.metadata().await.unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        let (res, _) = f.write_all_at(b"hello".to_vec(), 0).await;
        res.unwrap();
        f.close().await.unwrap();

        let e = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&*path)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_names(&e, "open", &path);

        let f = OpenOptions::new().append(true).open(&*path).await.unwrap();
        // On an O_APPEND file Linux ignores the offset of a positioned write.
        let (res, _) = f.write_all_at(b" world".to_vec(), 0).await;
        res.unwrap();
        f.close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");

        // create without write access is refused before any system call, naming the path.
        let e = OpenOptions::new()
            .read(true)
            .create(true)
            .open(&*path)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_names(&e, "open", &path);
    });
}

#[test]
fn ten_thousand_concurrent_reads_across_two_workers() {
    const READS: u64 = 10_000;
    let len = 8u64 << 20;
    let path = data_file("concurrent", len);
    let rt = Runtime::builder()
        .worker_threads(2)
        .max_blocking_threads(32)
        .build()
        .unwrap();
    let verified = rt.block_on(async {
        let file = Arc::new(File::open(&*path).await.unwrap());
        let handles: Vec<_> = (0..READS)
            .map(|i| {
                let file = file.clone();
                weft_runtime::spawn(async move {
                    let off = splitmix64(i ^ 0xdead_beef) % (len - 4096 + 1);
                    let (res, buf) = if i % 2 == 0 {
                        file.read_at(Vec::with_capacity(4096), off).await
                    } else {
                        let (res, buf) = file.read_exact_at(vec![0; 4096], off).await;
                        (res.map(|()| 4096), buf)
                    };
                    assert_eq!(res.unwrap(), 4096, "read {i} at {off}");
                    assert!(buf == expected(off, 4096), "read {i} at {off}: wrong bytes");
                    1u64
                })
            })
            .collect();
        let mut verified = 0;
        for h in handles {
            verified += h.await.unwrap();
        }
        verified
    });
    assert_eq!(verified, READS);
}

/// Occupies the runtime's (one-thread) blocking pool until the returned sender is used or
/// dropped, so that operations queue behind it. Returns once the blocking job is running.
fn block_pool(rt: &Runtime) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    drop(rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        let _ = rx.recv();
    }));
    started_rx.recv().unwrap();
    tx
}

#[test]
fn futures_dropped_mid_flight_leave_the_file_usable() {
    let path = data_file("dropped", 1 << 20);
    let out = TempPath::new("dropped-write");
    // The blocking backend's guarantees, made deterministic by a busy pool: so this runtime
    // uses the fallback driver. (On a ring a dropped op is cancelled in the kernel and may
    // or may not have happened; `dropped_ring_ops_leave_the_file_usable` covers that.)
    let rt = Runtime::builder()
        .worker_threads(2)
        .max_blocking_threads(1)
        .io_uring(weft_runtime::UringMode::Disabled)
        .build()
        .unwrap();
    let (file, writer) = rt.block_on(async {
        let file = File::open(&*path).await.unwrap();
        let writer = File::create(&*out).await.unwrap();
        (file, writer)
    });

    // Deterministic: with the only pool thread busy, the first poll queues the operation
    // and the zero timeout drops it before it runs. The job still owns the buffer and fd.
    let release = block_pool(&rt);
    rt.block_on(async {
        for i in 0..8 {
            let r = timeout(Duration::ZERO, file.read_at(Vec::with_capacity(1 << 20), i)).await;
            assert!(r.is_err(), "a queued read cannot have completed");
        }
        let r = timeout(Duration::ZERO, writer.write_all_at(b"late".to_vec(), 0)).await;
        assert!(r.is_err(), "a queued write cannot have completed");
        // close must wait for the dropped write, which still holds the descriptor.
        let mut close = std::pin::pin!(writer.close());
        assert!(
            poll_in_place(close.as_mut()).await.is_pending(),
            "close returned while a dropped write still held the descriptor"
        );
        release.send(()).unwrap();
        close.await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"late");
        let (res, buf) = file.read_at(Vec::with_capacity(4096), 4096).await;
        assert_eq!(res.unwrap(), 4096);
        assert!(buf == expected(4096, 4096));
    });

    // Racy on purpose: each future is dropped before, during or after its read.
    let other = Runtime::builder().worker_threads(2).build().unwrap();
    other.block_on(async {
        let mut completed = 0;
        for i in 0..200u64 {
            match timeout(
                Duration::ZERO,
                file.read_at(Vec::with_capacity(64 << 10), i),
            )
            .await
            {
                Ok((res, buf)) => {
                    assert_eq!(res.unwrap(), 64 << 10);
                    assert!(buf == expected(i, 64 << 10));
                    completed += 1;
                }
                Err(_elapsed) => {}
            }
        }
        // A task aborted while it waits for a read.
        let file = Arc::new(file);
        let f2 = file.clone();
        let h = weft_runtime::spawn(async move {
            loop {
                let (res, _) = f2.read_at(Vec::with_capacity(4096), 0).await;
                res.unwrap();
            }
        });
        weft_runtime::task::yield_now().await;
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        let (res, buf) = file.read_exact_at(Vec::with_capacity(4096), 8).await;
        res.unwrap();
        assert!(buf == expected(8, 4096));
        let file = Arc::try_unwrap(file).expect("the aborted task dropped its clone");
        file.close().await.unwrap();
        let _ = completed;
    });
    drop(rt);
}

/// Polls `fut` once with the task's context and reports what it said.
async fn poll_in_place<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Runs `f` on a helper thread and panics if it has not returned within [`WATCHDOG`].
fn within_watchdog(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => t.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // It panicked: surface the panic.
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} hung"),
    }
}

#[test]
fn shutdown_with_reads_in_flight() {
    let path = data_file("shutdown", 4 << 20);
    let path2 = path.to_path_buf();
    within_watchdog("runtime shutdown with reads in flight", move || {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(4)
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let file = Arc::new(rt.block_on(File::open(&path2)).unwrap());
        let reads = Arc::new(AtomicUsize::new(0));
        let bad = Arc::new(AtomicBool::new(false));
        for t in 0..32u64 {
            let (file, reads, bad) = (file.clone(), reads.clone(), bad.clone());
            rt.spawn(async move {
                for i in 0.. {
                    let off = splitmix64((t << 32) | i) % ((4 << 20) - (64 << 10));
                    let (res, buf) = file.read_at(Vec::with_capacity(64 << 10), off).await;
                    if res.ok() != Some(64 << 10) || buf != expected(off, 64 << 10) {
                        bad.store(true, SeqCst);
                    }
                    reads.fetch_add(1, SeqCst);
                }
            });
        }
        rt.block_on(async {
            while reads.load(SeqCst) < 200 {
                weft_runtime::time::sleep(Duration::from_millis(1)).await;
            }
        });
        drop(rt);
        assert!(!bad.load(SeqCst), "a read returned wrong data");

        // After shutdown an operation never hangs: on the blocking pool it fails (the pool
        // takes no jobs); on the block_on thread's own ring it may still complete, and then
        // with the right data.
        let (res, buf) = handle.block_on(file.read_at(Vec::with_capacity(16), 0));
        match res {
            Ok(n) => {
                assert_eq!(n, 16);
                assert!(buf == expected(0, 16));
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::Other);
                assert!(e.to_string().contains("shut down"), "{e}");
                assert_names(&e, "read_at", &path2);
                assert!(buf.is_empty());
            }
        }
        let e = handle.block_on(fs::read(&path2)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Other);
    });
}

#[test]
fn works_in_block_on_and_on_workers() {
    let path = TempPath::new("anywhere");
    let rt = rt(2);
    rt.block_on(fs::write(&*path, b"from block_on")).unwrap();
    let p = path.to_path_buf();
    let got = rt
        .block_on(rt.spawn(async move {
            let file = File::open(&p).await.unwrap();
            let (res, buf) = file.read_at(Vec::with_capacity(64), 5).await;
            res.unwrap();
            file.close().await.unwrap();
            buf
        }))
        .unwrap();
    assert_eq!(got, b"block_on");
    // From another thread, through a cloned handle's block_on.
    let h = rt.handle().clone();
    let p = path.to_path_buf();
    let got = std::thread::spawn(move || h.block_on(fs::read_to_string(&p)))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(got, "from block_on");
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(NoopWaker));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    Pin::as_mut(&mut fut).poll(&mut cx)
}

#[test]
fn outside_a_runtime_the_futures_panic_clearly() {
    let path = data_file("outside", 16);
    type Case = Box<dyn FnOnce() + std::panic::UnwindSafe>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "read",
            Box::new({
                let p = path.to_path_buf();
                move || drop(poll_once(fs::read(p)))
            }),
        ),
        (
            "open",
            Box::new({
                let p = path.to_path_buf();
                move || drop(poll_once(File::open(p)))
            }),
        ),
    ];
    for (what, f) in cases {
        let payload = std::panic::catch_unwind(f).expect_err(what);
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            msg.contains("there is no weft runtime on this thread"),
            "{what}: {msg:?}"
        );
    }
    // A File opened in a runtime, used outside it.
    let file = rt(1).block_on(File::open(&*path)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(poll_once(file.read_at(Vec::with_capacity(4), 0)))
    }));
    assert!(r.is_err());
    // Creating the futures does nothing; dropping them unpolled is fine.
    drop(fs::read(&*path));
    drop(file.read_at(Vec::new(), 0));
}

#[test]
fn types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<File>();
    send_sync::<OpenOptions>();
    let path = Path::new("/nonexistent");
    let rt = rt(1);
    let file = rt.block_on(File::open("/dev/null")).unwrap();
    send(&file.read_at(Vec::new(), 0));
    send(&file.write_all_at(Vec::new(), 0));
    send(&file.metadata());
    send(&OpenOptions::new().open(path));
    send(&fs::read(path));
    send(&fs::write(path, b""));
    send(&file.close());
}

#[test]
fn dropped_ring_ops_leave_the_file_usable() {
    // Reads and writes dropped before, during or after their completion, on whatever
    // driver the runtime has (io_uring by default): nothing crashes, nothing leaks, and the
    // file still reads back correctly; a dropped write either happened whole or not at all.
    let path = data_file("dropped-ring", 1 << 20);
    let out = TempPath::new("dropped-ring-write");
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    rt.block_on(async {
        let file = File::open(&*path).await.unwrap();
        let writer = File::create(&*out).await.unwrap();
        for i in 0..200u64 {
            let d = Duration::from_micros(i % 7 * 50);
            let _ = timeout(d, file.read_at(Vec::with_capacity(64 << 10), i * 4096)).await;
            let _ = timeout(d, writer.write_all_at(vec![i as u8; 512], i * 512)).await;
        }
        writer.close().await.unwrap();
        let written = std::fs::read(&*out).unwrap();
        for (i, chunk) in written.chunks(512).enumerate() {
            assert!(
                chunk.iter().all(|&b| b == i as u8) || chunk.iter().all(|&b| b == 0),
                "chunk {i} is torn"
            );
        }
        let (res, buf) = file.read_at(Vec::with_capacity(4096), 4096).await;
        assert_eq!(res.unwrap(), 4096);
        assert!(buf == expected(4096, 4096));
    });
}
