//! weft::fs closes every descriptor it opens: after reads, `close().await`, drops, and
//! operations whose futures were dropped mid-flight (including ones the runtime drops unrun
//! at shutdown), and never closes one while an operation still uses it; with `Vec<u8>`,
//! boxed-slice and slice-view buffers.
//!
//! Alone in its binary, with one test, because it counts the process's descriptors. It also
//! counts the descriptors that point into its own directory, which no other code opens.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use weft_runtime::Runtime;
use weft_runtime::buf::IoBuf;
use weft_runtime::fs::{self, File};
use weft_runtime::time::timeout;

const FILES: usize = 1000;

/// Every open descriptor of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The open descriptors that refer to `dir` or files under it.
fn fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Waits (boundedly) for the pool to finish read_dir batches whose `ReadDir` was dropped,
/// then asserts nothing under `dir` is open.
fn wait_for_no_fds(dir: &Path, what: &str) {
    for _ in 0..500 {
        if fds_under(dir) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fds_under(dir), 0, "{what}");
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

/// Removes the test's directory, even when an assertion fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn contents(i: usize) -> Vec<u8> {
    format!("file number {i}").into_bytes()
}

#[test]
fn no_descriptor_leaks() {
    let dir = std::env::temp_dir().join(format!("weft-fs-fd-leak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    let paths: Vec<PathBuf> = (0..FILES)
        .map(|i| {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, contents(i)).unwrap();
            p
        })
        .collect();

    let before = open_fds();
    let rt = Runtime::builder()
        .worker_threads(2)
        .max_blocking_threads(1)
        .build()
        .unwrap();

    // 1. In sequence: open, read, then drop half and close the other half.
    rt.block_on(async {
        for (i, p) in paths.iter().enumerate() {
            let f = File::open(p).await.unwrap();
            let (res, buf) = f.read_at(Vec::with_capacity(64), 0).await;
            res.unwrap();
            assert_eq!(buf, contents(i));
            if i % 2 == 0 {
                drop(f);
            } else {
                f.close().await.unwrap();
            }
        }
    });
    assert_eq!(fds_under(&dir), 0, "after open/read/drop/close in sequence");

    // 2. The same from 1000 concurrent tasks on the workers.
    rt.block_on(async {
        let handles: Vec<_> = paths
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, p)| {
                weft_runtime::spawn(async move {
                    let f = File::open(&p).await.unwrap();
                    let (res, buf) = f.read_exact_at(Vec::with_capacity(4), 0).await;
                    res.unwrap();
                    assert_eq!(buf, b"file");
                    if i % 2 == 0 {
                        drop(f);
                    } else {
                        f.close().await.unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(fds_under(&dir), 0, "after concurrent open/read/drop/close");

    // 3. Operations dropped while queued (the only pool thread is busy): the descriptor
    //    belongs to them until they run, even after the File is dropped.
    let files: Vec<File> = rt.block_on(async {
        let mut files = Vec::new();
        for p in &paths[..100] {
            files.push(File::open(p).await.unwrap());
        }
        files
    });
    assert_eq!(fds_under(&dir), 100);
    let release = block_pool(&rt);
    let closes = rt.block_on(async {
        for (i, f) in files.iter().enumerate() {
            let r = if i % 4 < 2 {
                timeout(Duration::ZERO, f.read_at(Vec::with_capacity(64), 0)).await
            } else {
                // A boxed buffer, queued the same way.
                let boxed = vec![0u8; 64].into_boxed_slice();
                timeout(Duration::ZERO, f.read_at(boxed, 0))
                    .await
                    .map(|(res, buf)| (res, buf.into_vec()))
            };
            assert!(r.is_err(), "a queued read cannot have completed");
        }
        let mut closes = Vec::new();
        for (i, f) in files.into_iter().enumerate() {
            if i % 2 == 0 {
                drop(f);
            } else {
                // close must wait for the queued read before it closes.
                let mut close = Box::pin(f.close());
                let first = std::future::poll_fn(|cx| Poll::Ready(close.as_mut().poll(cx))).await;
                assert!(
                    first.is_pending(),
                    "close returned while a read held the descriptor"
                );
                let path = paths[i].clone();
                closes.push(weft_runtime::spawn(async move {
                    close.await.unwrap();
                    assert_eq!(fds_under(&path), 0, "close returned with {path:?} open");
                }));
            }
        }
        closes
    });
    assert_eq!(
        fds_under(&dir),
        100,
        "a descriptor was closed while a queued read still held it"
    );
    release.send(()).unwrap();
    rt.block_on(async {
        for h in closes {
            h.await.unwrap();
        }
    });
    // The pool runs jobs in order on its one thread, so the dropped files' reads (queued
    // before any close) have run, and released their descriptors, by now.
    assert_eq!(
        fds_under(&dir),
        0,
        "after queued reads on dropped/closed files"
    );

    // 4. Racy drops: futures dropped before, during or after their reads, on a pool with
    //    several threads.
    let rt4 = Runtime::builder().worker_threads(2).build().unwrap();
    rt4.block_on(async {
        for (i, p) in paths[..200].iter().enumerate() {
            let f = File::open(p).await.unwrap();
            for pos in 0..4 {
                let _ = timeout(Duration::ZERO, f.read_at(Vec::with_capacity(64), pos)).await;
            }
            // The same with the other owned buffers: a boxed slice and a view.
            let boxed = vec![0u8; 64].into_boxed_slice();
            let _ = timeout(Duration::ZERO, f.read_at(boxed, 0)).await;
            let view = Vec::<u8>::with_capacity(64).slice(8..);
            let _ = timeout(Duration::ZERO, f.read_exact_at(view, 0)).await;
            if i % 2 == 0 {
                f.close().await.unwrap();
            }
        }
    });
    // 5. Opens dropped mid-flight on the workers (on io_uring: abandoned `openat`s, whose
    //    late descriptors the ring's cleanup must close), and files created and synced.
    rt4.block_on(async {
        let handles: Vec<_> = paths[..200]
            .iter()
            .cloned()
            .map(|p| {
                weft_runtime::spawn(async move {
                    for _ in 0..4 {
                        let _ = timeout(Duration::ZERO, File::open(&p)).await;
                    }
                    let f = File::open(&p).await.unwrap();
                    f.sync_all().await.unwrap();
                    f.sync_data().await.unwrap();
                    f.close().await.unwrap();
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        // Let the abandoned opens' completions be reaped.
        weft_runtime::time::sleep(Duration::from_millis(20)).await;
    });
    assert_eq!(
        fds_under(&dir),
        0,
        "after opens dropped mid-flight on the workers"
    );
    // 6. Every path opcode and `File::metadata` dropped mid-flight on the workers (on
    //    io_uring: abandoned statx, mkdirat, unlinkat, renameat, linkat, symlinkat), and
    //    a `read_dir` dropped with a batch in flight: none keeps a descriptor.
    rt4.block_on(async {
        let handles: Vec<_> = paths[..200]
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, p)| {
                let dir = dir.clone();
                weft_runtime::spawn(async move {
                    let z = Duration::ZERO;
                    let f = File::open(&p).await.unwrap();
                    for _ in 0..4 {
                        let _ = timeout(z, f.metadata()).await;
                    }
                    let _ = timeout(z, fs::metadata(&p)).await;
                    let _ = timeout(z, fs::symlink_metadata(&p)).await;
                    let d = dir.join(format!("d{i}"));
                    let _ = timeout(z, fs::create_dir(&d)).await;
                    fs::create_dir_all(&d).await.unwrap();
                    let _ = timeout(z, fs::remove_dir(&d)).await;
                    let h = dir.join(format!("h{i}"));
                    let _ = timeout(z, fs::hard_link(&p, &h)).await;
                    let _ = timeout(z, fs::symlink(&p, dir.join(format!("s{i}")))).await;
                    let _ = timeout(z, fs::rename(&h, dir.join(format!("r{i}")))).await;
                    let _ = timeout(z, fs::remove_file(dir.join(format!("s{i}")))).await;
                    if i % 20 == 0 {
                        let mut entries = fs::read_dir(&dir).await.unwrap();
                        let _ = entries.next_entry().await;
                        for _ in 0..4 {
                            let _ = timeout(z, entries.next_entry()).await;
                        }
                        if i % 40 == 0 {
                            while let Ok(Some(_)) = entries.next_entry().await {}
                        }
                    }
                    f.close().await.unwrap();
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        weft_runtime::time::sleep(Duration::from_millis(20)).await;
    });
    wait_for_no_fds(&dir, "after path ops and read_dir dropped mid-flight");
    // A path op whose future was dropped may still run on the blocking pool (the fallback
    // driver's path ops do; only the runtime's drop waits for them), so an entry listed
    // here may be renamed or removed before it is: a missing one is already gone.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let removed = if name.starts_with('d') {
            std::fs::remove_dir(&path)
        } else if !name.starts_with('f') {
            std::fs::remove_file(&path)
        } else {
            Ok(())
        };
        if let Err(e) = removed {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::NotFound,
                "{}: {e}",
                path.display()
            );
        }
    }
    drop(rt4);
    drop(rt);
    assert_eq!(
        fds_under(&dir),
        0,
        "after the racy drops and the runtimes' drop"
    );
    assert_eq!(
        open_fds(),
        before,
        "descriptors leaked across the runtime's life"
    );

    // 5. Operations the runtime drops unrun at shutdown release their descriptors.
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let files: Vec<File> = rt.block_on(async {
        let mut files = Vec::new();
        for p in &paths[..50] {
            files.push(File::open(p).await.unwrap());
        }
        files
    });
    let release = block_pool(&rt);
    rt.block_on(async {
        for f in &files {
            let r = timeout(Duration::ZERO, f.read_at(Vec::with_capacity(64), 0)).await;
            assert!(r.is_err());
        }
    });
    drop(files);
    assert_eq!(fds_under(&dir), 50, "queued reads hold their descriptors");
    // Drops the queued jobs without waiting for the busy pool thread.
    rt.shutdown_timeout(Duration::ZERO);
    assert_eq!(
        fds_under(&dir),
        0,
        "jobs dropped at shutdown kept descriptors"
    );
    release.send(()).unwrap();
}
