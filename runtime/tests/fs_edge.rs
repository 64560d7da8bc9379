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

use weft_runtime::Runtime;
use weft_runtime::fs::{File, OpenOptions};

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
    // In a task, so that on io_uring the calls reach a worker's ring (`block_on` has none).
    let task = rt.spawn(async move {
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
    rt.block_on(task).unwrap();
    assert_eq!(std::fs::read(&*path).unwrap(), b"original");
}

const CHILD_ENV: &str = "WEFT_FS_EDGE_CHILD";

/// The original error behind one of weft::fs's path-naming errors.
fn raw_os_error(e: &io::Error) -> Option<i32> {
    e.get_ref()?
        .source()?
        .downcast_ref::<io::Error>()?
        .raw_os_error()
}

/// Runs the bad-input table on the current runtime and writes one line per case:
/// `name: ok` or `name: Kind errno`.
async fn bad_input_table(dir: PathBuf) -> String {
    use std::future::Future;
    use std::pin::Pin;
    type Case<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;
    let dir = &*dir;
    let file = dir.join("file");
    std::fs::write(&file, b"0123456789").unwrap();
    let fifo = dir.join("fifo");
    {
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let rw = || {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        o
    };
    let wo = || {
        let mut o = OpenOptions::new();
        o.write(true);
        o
    };
    let long = dir.join("x".repeat(5000));
    let cases: Vec<(&str, Case<'_>)> = vec![
        (
            "open missing",
            Box::pin(async { File::open(dir.join("nope")).await.map(drop) }),
        ),
        (
            "open empty path",
            Box::pin(async { File::open("").await.map(drop) }),
        ),
        (
            "open file as dir",
            Box::pin(async { File::open(file.join("x")).await.map(drop) }),
        ),
        (
            "open dir for writing",
            Box::pin(async { wo().open(dir).await.map(drop) }),
        ),
        (
            "create in missing dir",
            Box::pin(async { File::create(dir.join("a/b")).await.map(drop) }),
        ),
        (
            "create_new existing",
            Box::pin(async {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
                    .await
                    .map(drop)
            }),
        ),
        (
            "NUL in path",
            Box::pin(async { File::open("/tmp/a\0b").await.map(drop) }),
        ),
        (
            "name too long",
            Box::pin(async { File::open(&long).await.map(drop) }),
        ),
        (
            "truncate without write",
            Box::pin(async {
                OpenOptions::new()
                    .read(true)
                    .truncate(true)
                    .open(&file)
                    .await
                    .map(drop)
            }),
        ),
        (
            "no access mode",
            Box::pin(async { OpenOptions::new().open(&file).await.map(drop) }),
        ),
        (
            "write /proc/version",
            Box::pin(async { wo().open("/proc/version").await.map(drop) }),
        ),
        (
            "read_at a directory",
            Box::pin(async {
                File::open(dir)
                    .await?
                    .read_at(Vec::with_capacity(8), 0)
                    .await
                    .0
                    .map(drop)
            }),
        ),
        (
            "read_at write-only",
            Box::pin(async {
                wo().open(&file)
                    .await?
                    .read_at(Vec::with_capacity(8), 0)
                    .await
                    .0
                    .map(drop)
            }),
        ),
        (
            "write_at read-only",
            Box::pin(async {
                File::open(&file)
                    .await?
                    .write_at(b"x".to_vec(), 0)
                    .await
                    .0
                    .map(drop)
            }),
        ),
        (
            "write_all_at read-only",
            Box::pin(async {
                File::open(&file)
                    .await?
                    .write_all_at(b"x".to_vec(), 0)
                    .await
                    .0
            }),
        ),
        (
            "write_at /proc/self/status",
            Box::pin(async {
                wo().open("/proc/self/status")
                    .await?
                    .write_at(b"x".to_vec(), 0)
                    .await
                    .0
                    .map(drop)
            }),
        ),
        (
            "write_all_at /dev/full",
            Box::pin(async {
                wo().open("/dev/full")
                    .await?
                    .write_all_at(vec![1; 64], 0)
                    .await
                    .0
            }),
        ),
        (
            "read_exact_at past the end",
            Box::pin(async {
                File::open(&file)
                    .await?
                    .read_exact_at(Vec::with_capacity(64), 4)
                    .await
                    .0
            }),
        ),
        (
            "read_at u64::MAX",
            Box::pin(async {
                File::open(&file)
                    .await?
                    .read_at(Vec::with_capacity(1), u64::MAX)
                    .await
                    .0
                    .map(drop)
            }),
        ),
        (
            "write_at i64::MAX + 1",
            Box::pin(async {
                rw().open(&file)
                    .await?
                    .write_at(b"x".to_vec(), 1 << 63)
                    .await
                    .0
                    .map(drop)
            }),
        ),
        (
            "read_at a FIFO with data",
            Box::pin(async {
                let f = rw().open(&fifo).await?;
                f.write_at(b"abc".to_vec(), 7).await.0?;
                let (r, buf) = f.read_at(Vec::with_capacity(8), 99).await;
                assert_eq!((r?, &buf[..]), (3, &b"abc"[..]));
                Ok(())
            }),
        ),
        (
            "sync_all a FIFO",
            Box::pin(async { rw().open(&fifo).await?.sync_all().await }),
        ),
        (
            "sync_data /dev/null",
            Box::pin(async { wo().open("/dev/null").await?.sync_data().await }),
        ),
        (
            "set_len read-only",
            Box::pin(async { File::open(&file).await?.set_len(1).await }),
        ),
        (
            "set_len a FIFO",
            Box::pin(async { rw().open(&fifo).await?.set_len(1).await }),
        ),
        (
            "metadata missing",
            Box::pin(async { weft_runtime::fs::metadata(dir.join("nope")).await.map(drop) }),
        ),
        (
            "read missing",
            Box::pin(async { weft_runtime::fs::read(dir.join("nope")).await.map(drop) }),
        ),
        (
            "read a directory",
            Box::pin(async { weft_runtime::fs::read(dir).await.map(drop) }),
        ),
        (
            "write into a file",
            Box::pin(async { weft_runtime::fs::write(file.join("x"), b"x").await }),
        ),
        (
            "read_to_string binary",
            Box::pin(async {
                std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
                weft_runtime::fs::read_to_string(dir.join("bin"))
                    .await
                    .map(drop)
            }),
        ),
    ];
    let mut out = String::new();
    for (name, case) in cases {
        let line = match case.await {
            Ok(()) => format!("{name}: ok\n"),
            Err(e) => format!("{name}: {:?} {:?}\n", e.kind(), raw_os_error(&e)),
        };
        out.push_str(&line);
    }
    out
}

/// Bug: the same bad input gave different error kinds on the two drivers (writing to
/// `/proc/self/status` was `NotSeekable` on the fallback, `InvalidInput` on io_uring). The
/// table runs in two children, one per driver, and every line must match.
#[test]
fn the_same_bad_input_gives_the_same_error_on_both_drivers() {
    const NAME: &str = "the_same_bad_input_gives_the_same_error_on_both_drivers";
    if std::env::var(CHILD_ENV).is_ok() {
        let dir = TempPath::new("table");
        std::fs::create_dir(&*dir).unwrap();
        let rt = rt(2);
        let uring = rt.metrics().io_uring();
        // In a task, so that on io_uring the calls reach a worker's ring (`block_on` has none).
        let table = rt
            .block_on(rt.spawn(bad_input_table(dir.0.clone())))
            .unwrap();
        drop(rt);
        std::fs::remove_dir_all(&*dir).unwrap();
        println!("io_uring={uring}\n<<<\n{table}>>>");
        return;
    }
    let run = |driver: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env("WEFT_IO_DRIVER", driver)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{driver} child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let table = stdout
            .split_once("<<<\n")
            .and_then(|(_, t)| t.split_once(">>>"))
            .map(|(t, _)| t.to_string())
            .unwrap_or_else(|| panic!("no table from the {driver} child:\n{stdout}"));
        (stdout.contains("io_uring=true"), table)
    };
    let (uring_used, on_uring) = run("auto");
    let (fallback_used, on_fallback) = run("fallback");
    assert!(!fallback_used);
    if !uring_used {
        eprintln!("io_uring is unavailable here: only the fallback's table was checked");
        return;
    }
    let mut diffs = Vec::new();
    for (a, b) in on_uring.lines().zip(on_fallback.lines()) {
        if a != b {
            diffs.push(format!("io_uring: {a}\nfallback: {b}"));
        }
    }
    assert_eq!(on_uring.lines().count(), on_fallback.lines().count());
    assert!(
        diffs.is_empty(),
        "the drivers differ:\n{}",
        diffs.join("\n")
    );
    eprintln!("{on_uring}");
}

/// Bug: on the fallback, dropping the runtime hung forever on an `open` of a FIFO with no
/// writer (open(2) blocks until one comes) whose task had been aborted: drop waited for
/// every running blocking-pool job. A file system job is now waited for only up to a
/// bound, then its thread is detached. Also with the task still pending (not aborted), and
/// with a read of a FIFO that never gets data.
#[test]
fn runtime_drop_does_not_wait_for_a_file_call_that_never_returns() {
    let fifo = TempPath::fifo("never");
    let quiet = TempPath::fifo("quiet-read");
    // A writer that never writes: reads of `quiet` block (the test's end drops it).
    let writer = open_rw(&quiet);
    for abort in [true, false] {
        let rt = rt(2);
        let p = fifo.0.clone();
        let q = quiet.0.clone();
        let opening = rt.spawn(async move { File::open(&p).await.map(drop) });
        let reading = rt.spawn(async move {
            let f = File::open(&q).await?;
            f.read_at(Vec::with_capacity(8), 0).await.0.map(drop)
        });
        // Let both calls start on the pool (or in the kernel).
        rt.block_on(weft_runtime::time::sleep(std::time::Duration::from_millis(
            50,
        )));
        if abort {
            opening.abort();
            reading.abort();
        }
        common::watchdog("dropping the runtime", move || drop(rt));
    }
    drop(writer);
}
