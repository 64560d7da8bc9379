//! A worker stalled in a task that never yields does not hold its timers hostage: an idle
//! worker takes over the stalled wheel's due timers and runs the tasks they wake.
//!
//! No assertion compares durations: the stalling task spins until the timer's task has run
//! (an atomic flag) and gives up only after a hang limit, reporting whether it was released.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use common::{hang_guard, wait_until, watchdog};
use weft_runtime::Runtime;
use weft_runtime::time::{self, Sleep};

/// How long the stalling task spins before it gives up: a hang limit, far beyond the few
/// milliseconds a take-over needs.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Spins without yielding until `flag` is set or [`GIVE_UP`] passes; `true` if released.
fn spin_until(flag: &AtomicBool) -> bool {
    let start = Instant::now();
    while !flag.load(SeqCst) {
        if start.elapsed() > GIVE_UP {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// Polls `sleep` once with a no-op waker, filing its timer in the calling worker's wheel.
fn register_here(sleep: &mut Sleep) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(sleep).poll(&mut cx).is_pending());
}

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn a_stalled_workers_timer_wakes_a_task_on_another_worker() {
    hang_guard();
    let released = watchdog("stalled timer", || {
        let rt = rt();
        let slot: Arc<Mutex<Option<Sleep>>> = Arc::new(Mutex::new(None));
        let done = Arc::new(AtomicBool::new(false));
        // The stalling task files a timer in its own worker's wheel, hands it over, and
        // spins until the task awaiting that timer has finished.
        let staller = {
            let (slot, done) = (slot.clone(), done.clone());
            rt.spawn(async move {
                let mut sleep = time::sleep(Duration::from_millis(5));
                register_here(&mut sleep);
                *slot.lock().unwrap() = Some(sleep);
                spin_until(&done)
            })
        };
        wait_until("the timer is filed", || slot.lock().unwrap().is_some());
        let sleep = slot.lock().unwrap().take().unwrap();
        // Runs on the other worker (the first one is spinning); its waker replaces the
        // no-op one in the stalled wheel.
        let sleeper = {
            let done = done.clone();
            rt.spawn(async move {
                sleep.await;
                done.store(true, SeqCst);
            })
        };
        let released = rt.block_on(staller).unwrap();
        rt.block_on(sleeper).unwrap();
        released
    });
    assert!(released, "the timer stayed on the stalled worker's wheel");
}

#[test]
fn a_timer_filed_just_before_the_stall_fires_while_its_worker_spins() {
    hang_guard();
    // The timer is filed by a task that ran from the stalling worker's LIFO slot, so no
    // other worker was woken for it: filing it must make sure some idle worker watches.
    let released = watchdog("timer filed before the stall", || {
        let rt = rt();
        let done = Arc::new(AtomicBool::new(false));
        let staller = {
            let done = done.clone();
            rt.spawn(async move {
                let flag = Waker::from(Arc::new(Flag(done.clone())));
                let sleep = weft_runtime::spawn(async move {
                    let mut sleep = time::sleep(Duration::from_millis(3));
                    let mut cx = Context::from_waker(&flag);
                    assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
                    // Handed back in a tuple, to be kept (not awaited) while the worker spins.
                    (sleep,)
                })
                .await
                .unwrap();
                let released = spin_until(&done);
                drop(sleep.0);
                released
            })
        };
        rt.block_on(staller).unwrap()
    });
    assert!(released, "the timer stayed on the stalled worker's wheel");
}

struct Flag(Arc<AtomicBool>);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

/// A FIFO opened read-write (so that opening it does not wait for a writer).
fn fifo() -> (std::path::PathBuf, std::fs::File) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::env::temp_dir().join(format!(
        "weft-stall-fifo-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&path);
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (path, f)
}

type Read = Pin<Box<dyn Future<Output = (std::io::Result<usize>, Vec<u8>)> + Send>>;

#[test]
fn a_read_in_a_stalled_workers_ring_completes_on_another_worker() {
    stalled_read(true);
}

#[test]
fn a_read_queued_but_not_submitted_by_a_stalled_worker_completes() {
    stalled_read(false);
}

/// A FIFO read is filed on the stalling worker's ring — handed to the kernel first if
/// `in_kernel`, else left in the submission queue — and awaited by a task on the other
/// worker; the FIFO is written while the first worker spins.
fn stalled_read(in_kernel: bool) {
    hang_guard();
    if std::env::var("WEFT_IO_DRIVER").as_deref() == Ok("fallback") {
        // File ops run on the blocking pool there: no ring to be stalled.
        return;
    }
    let released = watchdog("stalled ring", move || {
        let rt = rt();
        let (path, fifo) = fifo();
        let writer = fifo.try_clone().unwrap();
        let file = Arc::new(weft_runtime::fs::File::from_std(fifo, &path));
        // Retried when the stalling task was stolen between submitting and spinning (then
        // its ring's owner is free and the read completes the usual way).
        for _ in 0..20 {
            let slot: Arc<Mutex<Option<Read>>> = Arc::new(Mutex::new(None));
            let done = Arc::new(AtomicBool::new(false));
            let staller = {
                let (slot, done, file) = (slot.clone(), done.clone(), file.clone());
                rt.spawn(async move {
                    let here = std::thread::current().id();
                    let mut read: Read = Box::pin(async move { file.read_at(vec![0; 4], 0).await });
                    {
                        let mut cx = Context::from_waker(Waker::noop());
                        assert!(read.as_mut().poll(&mut cx).is_pending());
                    }
                    if in_kernel {
                        // Yield past a maintenance pass, which hands the read to the kernel.
                        for _ in 0..64 {
                            weft_runtime::task::yield_now().await;
                        }
                    }
                    if std::thread::current().id() != here {
                        return None;
                    }
                    *slot.lock().unwrap() = Some(read);
                    Some(spin_until(&done))
                })
            };
            let mut stolen = false;
            wait_until("the read is handed over", || {
                stolen = staller.is_finished();
                stolen || slot.lock().unwrap().is_some()
            });
            if stolen {
                assert_eq!(rt.block_on(staller).unwrap(), None);
                continue;
            }
            let read = slot.lock().unwrap().take().unwrap();
            let reader = {
                let done = done.clone();
                rt.spawn(async move {
                    let (res, buf) = read.await;
                    assert_eq!(res.unwrap(), 4);
                    assert_eq!(&buf, b"ping");
                    done.store(true, SeqCst);
                })
            };
            std::thread::sleep(Duration::from_millis(20));
            use std::io::Write;
            (&writer).write_all(b"ping").unwrap();
            let released = rt.block_on(staller).unwrap();
            rt.block_on(reader).unwrap();
            let _ = std::fs::remove_file(&path);
            return released.unwrap();
        }
        panic!("the stalling task was stolen every time");
    });
    assert!(
        released,
        "the read's completion stayed on the stalled worker's ring"
    );
}

#[test]
fn an_idle_runtime_with_a_far_timer_and_a_read_pending_does_not_wake_to_watch() {
    hang_guard();
    let rt = rt();
    let (path, fifo) = fifo();
    let writer = fifo.try_clone().unwrap();
    let file = Arc::new(weft_runtime::fs::File::from_std(fifo, &path));
    let sleeper = rt.spawn(time::sleep(Duration::from_secs(3600)));
    // A read of a FIFO nobody writes: in flight for as long as the test runs.
    let reader = rt.spawn(async move { file.read_at(vec![0; 4], 0).await.0.is_ok() });
    let m = rt.metrics();
    wait_until("both workers park", || m.num_parked_workers() == 2);
    // Settle: a worker may park, wake once to look and park again.
    std::thread::sleep(Duration::from_millis(20));
    wait_until("both workers park", || m.num_parked_workers() == 2);
    let before = m.total().parks;
    std::thread::sleep(Duration::from_millis(100));
    let after = m.total().parks;
    assert_eq!(
        before, after,
        "a parked worker woke by itself to watch a parked worker's timer or read"
    );
    sleeper.abort();
    reader.abort();
    // Ends the read (on the fallback, a blocking-pool thread is inside it).
    use std::io::Write;
    (&writer).write_all(b"done").unwrap();
    drop(rt);
    let _ = std::fs::remove_file(&path);
}

/// A socket read waiting on the stalling worker — a readiness wait on its epoll on the
/// fallback, a `RECV` on its ring otherwise — and awaited by a task on the other worker
/// completes while the first worker spins: the idle worker takes over its events.
#[test]
fn a_socket_wait_on_a_stalled_worker_completes_on_another_worker() {
    hang_guard();
    let released = watchdog("stalled socket wait", move || {
        let rt = rt();
        for _ in 0..20 {
            let (a, b) = rt
                .block_on(async { weft_runtime::net::UnixStream::pair() })
                .unwrap();
            let slot: Arc<Mutex<Option<Read>>> = Arc::new(Mutex::new(None));
            let done = Arc::new(AtomicBool::new(false));
            let staller = {
                let (slot, done) = (slot.clone(), done.clone());
                rt.spawn(async move {
                    let here = std::thread::current().id();
                    let mut read: Read =
                        Box::pin(async move { a.read(Vec::with_capacity(4)).await });
                    {
                        let mut cx = Context::from_waker(Waker::noop());
                        assert!(read.as_mut().poll(&mut cx).is_pending());
                    }
                    // Yield past a maintenance pass (a ring hands the read to the kernel).
                    for _ in 0..64 {
                        weft_runtime::task::yield_now().await;
                    }
                    if std::thread::current().id() != here {
                        return None;
                    }
                    *slot.lock().unwrap() = Some(read);
                    Some(spin_until(&done))
                })
            };
            let mut stolen = false;
            wait_until("the read is handed over", || {
                stolen = staller.is_finished();
                stolen || slot.lock().unwrap().is_some()
            });
            if stolen {
                assert_eq!(rt.block_on(staller).unwrap(), None);
                continue;
            }
            let read = slot.lock().unwrap().take().unwrap();
            let reader = {
                let done = done.clone();
                rt.spawn(async move {
                    let (res, buf) = read.await;
                    assert_eq!(res.unwrap(), 4);
                    assert_eq!(&buf, b"ping");
                    done.store(true, SeqCst);
                })
            };
            std::thread::sleep(Duration::from_millis(20));
            rt.block_on(async move { b.write_all(b"ping".to_vec()).await.0 })
                .unwrap();
            let released = rt.block_on(staller).unwrap();
            rt.block_on(reader).unwrap();
            return released.unwrap();
        }
        panic!("the stalling task was stolen every time");
    });
    assert!(
        released,
        "the read's readiness stayed on the stalled worker"
    );
}
