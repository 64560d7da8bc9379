//! weft::fs on hostile input, on both drivers (the suite runs again with
//! `WEFT_IO_DRIVER=fallback`): short transfers on FIFOs and character devices while tasks
//! move between workers, offsets the kernel would misread, the same error kind for the
//! same bad input on either driver, and runtime drop with a file system call that never
//! returns.

mod common;

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use weft_runtime::fs::{File, OpenOptions};
use weft_runtime::Runtime;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// A path in the temp dir, unique to this process and call, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, SeqCst);
        TempPath(
            std::env::temp_dir().join(format!("weft-fs-edge-{}-{n}-{name}", std::process::id())),
        )
    }

    fn fifo(name: &str) -> TempPath {
        let p = TempPath::new(name);
        let c = CString::new(p.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
        let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(r, 0, "mkfifo: {}", io::Error::last_os_error());
        p
    }
}

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens a FIFO read-write with std (which never blocks on Linux), so that the other end
/// can be opened without waiting for a partner.
fn open_rw(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap()
}

/// Bug: `read_exact_at`/`write_all_at` resubmitted their short transfers to the ring of
/// the worker that polled them first; once the task had moved to another worker, the
/// resubmission hit `unreachable!`. Here every transfer is short (a FIFO fed or drained in
/// small pieces) and 32 tasks share 2 workers, so they move between them.
#[test]
fn short_transfers_survive_tasks_moving_between_workers() {
    const TASKS: usize = 32;
    const LEN: usize = 64 * 1024;
    const PIECE: usize = 512;
    common::watchdog("short transfers across workers", || {
        let rt = rt(2);
        let mut feeders = Vec::new();
        let mut joins = Vec::new();
        let mut fifos = Vec::new();
        for i in 0..TASKS {
            let fifo = TempPath::fifo("short");
            let other = open_rw(&fifo);
            let path = fifo.0.clone();
            if i % 2 == 0 {
                // Reader task; a thread writes in small pieces.
                feeders.push(std::thread::spawn(move || {
                    let mut other = other;
                    for k in 0..LEN / PIECE {
                        other.write_all(&[k as u8; PIECE]).unwrap();
                        std::thread::yield_now();
                    }
                    other
                }));
                joins.push(rt.spawn(async move {
                    let f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .await
                        .unwrap();
                    weft_runtime::task::yield_now().await;
                    let (r, buf) = f.read_exact_at(Vec::with_capacity(LEN), 0).await;
                    r.unwrap();
                    for (k, chunk) in buf.chunks(PIECE).enumerate() {
                        assert!(chunk.iter().all(|&b| b == k as u8), "piece {k}");
                    }
                }));
            } else {
                // Writer task; a thread drains in small pieces.
                feeders.push(std::thread::spawn(move || {
                    let mut other = other;
                    let mut got = vec![0u8; LEN];
                    let mut at = 0;
                    while at < LEN {
                        let n = other.read(&mut got[at..(at + PIECE).min(LEN)]).unwrap();
                        at += n;
                        std::thread::yield_now();
                    }
                    assert!(got.iter().enumerate().all(|(i, &b)| b == (i / 7) as u8));
                    other
                }));
                joins.push(rt.spawn(async move {
                    let f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .await
                        .unwrap();
                    weft_runtime::task::yield_now().await;
                    let data: Vec<u8> = (0..LEN).map(|i| (i / 7) as u8).collect();
                    let (r, _) = f.write_all_at(data, 0).await;
                    r.unwrap();
                }));
            }
            fifos.push(fifo);
        }
        // Character devices: /dev/zero and /dev/null from the same tasks' neighbours.
        for _ in 0..TASKS {
            joins.push(rt.spawn(async {
                let z = File::open("/dev/zero").await.unwrap();
                weft_runtime::task::yield_now().await;
                let (r, buf) = z.read_exact_at(Vec::with_capacity(1 << 16), 0).await;
                r.unwrap();
                assert!(buf.iter().all(|&b| b == 0));
                let n = OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .await
                    .unwrap();
                weft_runtime::task::yield_now().await;
                n.write_all_at(buf, 0).await.0.unwrap();
            }));
        }
        rt.block_on(async move {
            for j in joins {
                j.await.unwrap();
            }
        });
        for f in feeders {
            f.join().unwrap();
        }
        drop(fifos);
    });
}

/// Bug: io_uring reads an offset of -1 (`u64::MAX`) as "the file's cursor", so
/// `write_at(b"XXXX", u64::MAX)` returned `Ok(4)` and overwrote the start of the file. Every
/// positioned call refuses an offset above `i64::MAX`, or one whose end overflows, with
/// `InvalidInput` naming it, before the kernel sees it.
#[test]
fn offsets_past_i64_max_are_invalid_input_on_every_call() {
    let path = TempPath::new("offsets");
    std::fs::write(&*path, b"original").unwrap();
    let rt = rt(2);
    let p = path.0.clone();
    rt.block_on(async move {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .await
            .unwrap();
        let big = i64::MAX as u64;
        // (offset, buffer length) pairs: past i64::MAX, or ending past it.
        let cases = [(u64::MAX, 4), (big + 1, 4), (big - 1, 4), (big, 1)];
        for (pos, len) in cases {
            let check = |what: &str, r: io::Result<()>| {
                let e = r.expect_err(what);
                assert_eq!(
                    e.kind(),
                    io::ErrorKind::InvalidInput,
                    "{what} at {pos}: {e}"
                );
                assert!(e.to_string().contains(&pos.to_string()), "{what}: {e}");
                assert!(e.to_string().contains(&*p.to_string_lossy()), "{what}: {e}");
            };
            let (r, buf) = f.write_at(vec![b'X'; len], pos).await;
            check("write_at", r.map(drop));
            assert_eq!(buf.len(), len, "the buffer comes back");
            check("write_all_at", f.write_all_at(vec![b'X'; len], pos).await.0);
            check(
                "read_at",
                f.read_at(Vec::with_capacity(len), pos).await.0.map(drop),
            );
            check(
                "read_exact_at",
                f.read_exact_at(Vec::with_capacity(len), pos).await.0,
            );
            let (tx, rx) = std::sync::mpsc::channel();
            weft_runtime::callback::fs::read_at(&f, Vec::with_capacity(len), pos, move |r| {
                tx.send(r).unwrap()
            });
            let (r, _) = weft_runtime::task::spawn_blocking(move || rx.recv().unwrap())
                .await
                .unwrap();
            check("callback::fs::read_at", r.map(drop));
        }
        // Up to i64::MAX is a valid place to be (a read there finds the end of the file).
        let (r, _) = f.read_at(Vec::with_capacity(1), big - 1).await;
        assert_eq!(r.unwrap(), 0);
    });
    assert_eq!(std::fs::read(&*path).unwrap(), b"original");
}
