//! The io_uring driver against the real kernel, with raw submission entries (the raw
//! `submit` is private to the reactor: everything outside goes through `crate::op`). A test
//! that cannot get a ring fails with the reason: it never passes silently.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Poll, Wake, Waker};
use std::time::Duration;

use crate::uring::Uring;
use crate::uring::lifecycle::keep_until_complete;
use crate::{Driver, Unpark};
use io_uring::{opcode, types};

fn ring(entries: u32) -> Uring {
    Uring::new(entries).unwrap_or_else(|e| panic!("this test needs io_uring: {e}"))
}

struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counter() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

struct Dropped(Arc<AtomicUsize>);
impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn data_file(len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let path = std::env::temp_dir().join(format!(
        "weft-uring-{}-{}",
        std::process::id(),
        std::thread::current()
            .name()
            .unwrap_or("t")
            .replace(':', "_")
    ));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    (path, data)
}

#[test]
fn reads_a_file_and_wakes_the_waiting_future() {
    let mut ring = ring(8);
    let handle = ring.handle();
    let (path, data) = data_file(10_000);
    let file = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 4096];
    let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), buf.as_mut_ptr(), 4096)
        .offset(4097)
        .build();
    // SAFETY: `buf` and `file` outlive the op: we poll it to completion below.
    let ud = unsafe { ring.submit(entry) };
    let (woken, waker) = counter();
    assert!(handle.poll(ud, &waker).is_pending());
    let n = loop {
        ring.park(Some(Duration::from_secs(5))).unwrap();
        if let Poll::Ready(r) = handle.poll(ud, &waker) {
            break r.result.unwrap() as usize;
        }
    };
    assert_eq!(n, 4096);
    assert_eq!(&buf[..], &data[4097..4097 + 4096]);
    assert_eq!(woken.0.load(SeqCst), 1);
    assert_eq!(ring.in_flight(), 0);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn errors_come_back_as_io_errors() {
    let mut ring = ring(8);
    let handle = ring.handle();
    let mut buf = [0u8; 8];
    let entry = opcode::Read::new(types::Fd(-1), buf.as_mut_ptr(), 8).build();
    // SAFETY: `buf` outlives the op.
    let ud = unsafe { ring.submit(entry) };
    let (_, waker) = counter();
    let r = loop {
        ring.park(Some(Duration::from_secs(5))).unwrap();
        if let Poll::Ready(r) = handle.poll(ud, &waker) {
            break r;
        }
    };
    assert_eq!(r.result.unwrap_err().raw_os_error(), Some(libc::EBADF));
}

#[test]
fn a_callback_op_runs_on_the_reaping_thread_without_a_future() {
    let mut ring = ring(8);
    let (path, data) = data_file(100);
    let file = Arc::new(std::fs::File::open(&path).unwrap());
    let mut buf = Box::new([0u8; 100]);
    let ptr = buf.as_mut_ptr();
    let got = Arc::new(parking_lot::Mutex::new(None));
    let g = got.clone();
    let keep = file.clone();
    let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), ptr, 100).build();
    let caller = std::thread::current().id();
    // SAFETY: the callback owns `buf` and the file until the completion.
    unsafe {
        ring.submit_with_callback(
            entry,
            Box::new(move |r| {
                let _keep = keep;
                assert_eq!(std::thread::current().id(), caller);
                *g.lock() = Some((r.result.unwrap(), buf.to_vec()));
            }),
        )
    };
    while got.lock().is_none() {
        ring.park(Some(Duration::from_secs(5))).unwrap();
    }
    let (n, bytes) = got.lock().take().unwrap();
    assert_eq!(n, 100);
    assert_eq!(bytes, data);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn unpark_from_another_thread_ends_an_untimed_park() {
    let mut ring = ring(8);
    for _ in 0..100 {
        let u = ring.unparker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200));
            u.unpark();
        });
        ring.park(None).unwrap();
        t.join().unwrap();
    }
}

#[test]
fn unpark_before_park_is_not_lost() {
    let mut ring = ring(8);
    ring.unparker().unpark();
    // Would block forever if the token were lost.
    ring.park(None).unwrap();
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn an_abandoned_op_keeps_its_buffer_until_the_kernel_lets_go() {
    let mut ring = ring(8);
    let handle = ring.handle();
    let (rx, _tx) = pipe();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut buf = vec![0u8; 64];
    let entry = opcode::Read::new(types::Fd(rx.as_raw_fd()), buf.as_mut_ptr(), 64).build();
    // SAFETY: `buf` is handed to the cleanup below and lives until the completion.
    let ud = unsafe { ring.submit(entry) };
    ring.park(Some(Duration::ZERO)).unwrap(); // submitted, blocked on the empty pipe
    let (_, waker) = counter();
    assert!(handle.poll(ud, &waker).is_pending());
    // Dropped from another thread, as a future on another worker would be.
    let h = handle.clone();
    let d = drops.clone();
    std::thread::spawn(move || h.abandon(ud, keep_until_complete((buf, Dropped(d)))))
        .join()
        .unwrap();
    assert_eq!(drops.load(SeqCst), 0, "freed before the kernel completed");
    while ring.in_flight() > 0 {
        ring.park(Some(Duration::from_secs(5))).unwrap();
    }
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn more_ops_than_submission_slots() {
    let mut ring = ring(4);
    let handle = ring.handle();
    let (path, data) = data_file(64 * 1024);
    let file = std::fs::File::open(&path).unwrap();
    let mut bufs: Vec<Vec<u8>> = (0..256).map(|_| vec![0u8; 256]).collect();
    let mut uds = Vec::new();
    for (i, b) in bufs.iter_mut().enumerate() {
        let e = opcode::Read::new(types::Fd(file.as_raw_fd()), b.as_mut_ptr(), 256)
            .offset(i as u64 * 256)
            .build();
        // SAFETY: the buffers outlive every op: we wait for all of them below.
        uds.push(unsafe { ring.submit(e) });
    }
    let (_, waker) = counter();
    let mut done = vec![false; uds.len()];
    while done.iter().any(|d| !d) {
        ring.park(Some(Duration::from_secs(5))).unwrap();
        for (i, ud) in uds.iter().enumerate() {
            if !done[i] {
                if let Poll::Ready(r) = handle.poll(*ud, &waker) {
                    assert_eq!(r.result.unwrap(), 256);
                    done[i] = true;
                }
            }
        }
    }
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(&b[..], &data[i * 256..(i + 1) * 256]);
    }
    std::fs::remove_file(path).unwrap();
}

#[test]
fn dropping_the_ring_with_ops_in_flight_cancels_and_frees_them() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (rx, _tx) = pipe();
    {
        let mut ring = ring(8);
        let handle = ring.handle();
        for _ in 0..4 {
            let mut buf = vec![0u8; 16];
            let e = opcode::Read::new(types::Fd(rx.as_raw_fd()), buf.as_mut_ptr(), 16).build();
            // SAFETY: the buffer goes to the cleanup, which lives until the completion.
            let ud = unsafe { ring.submit(e) };
            handle.abandon(ud, keep_until_complete((buf, Dropped(drops.clone()))));
        }
        ring.park(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(drops.load(SeqCst), 4);
}

#[test]
fn a_disabled_ring_is_owned_by_the_thread_that_enables_it() {
    let ring = Uring::new_disabled(8).unwrap_or_else(|e| panic!("this test needs io_uring: {e}"));
    let handle = ring.handle();
    let mut buf = [0u8; 8];
    let entry = opcode::Read::new(types::Fd(-1), buf.as_mut_ptr(), 8).build();
    // SAFETY: rejected before anything is pushed: this thread does not own the ring.
    assert!(unsafe { handle.submit(entry.clone()) }.is_none());
    let res = std::thread::spawn(move || {
        let mut ring = ring;
        ring.enable().unwrap();
        let h = ring.handle();
        assert!(h.is_owner());
        let mut buf = [0u8; 8];
        let entry = opcode::Read::new(types::Fd(-1), buf.as_mut_ptr(), 8).build();
        // SAFETY: `buf` outlives the op: polled to completion below.
        let ud = unsafe { h.submit(entry) }.unwrap();
        let (_, waker) = counter();
        loop {
            ring.park(Some(Duration::from_secs(5))).unwrap();
            if let Poll::Ready(r) = h.poll(ud, &waker) {
                break r.result.unwrap_err().raw_os_error();
            }
        }
    })
    .join()
    .unwrap();
    assert_eq!(res, Some(libc::EBADF));
    assert!(!handle.is_owner());
}

/// Drives `op` on `ring` (owned by this thread) to its output.
fn run_op<T: crate::op::Operation>(ring: &mut Uring, mut op: crate::op::Op<T>) -> T::Output {
    use std::future::Future;
    let (_, waker) = counter();
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = std::pin::Pin::new(&mut op).poll(&mut cx) {
            return out;
        }
        ring.park(Some(Duration::from_secs(5))).unwrap();
    }
}

#[test]
fn a_poll_first_recv_gets_bytes_already_queued_and_bytes_sent_later() {
    use crate::op::Op;
    use crate::op::recv::Recv;
    use std::future::Future;
    let mut ring = ring(8);
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = Arc::new(a);
    // Queued before the receive: the kernel's readiness wait finds them at once.
    b.write_all(b"first").unwrap();
    let recv = Recv::new(a.clone(), Vec::with_capacity(16), 0, 0).poll_first(true);
    let Ok(op) = Op::submit(recv) else {
        panic!("this thread owns a ring")
    };
    let (n, buf) = run_op(&mut ring, op);
    assert_eq!(n.unwrap(), 5);
    assert_eq!(&buf[..], b"first");
    // Sent while the receive waits in the kernel.
    let recv = Recv::new(a.clone(), buf, 5, 0).poll_first(true);
    let Ok(mut op) = Op::submit(recv) else {
        panic!("this thread owns a ring")
    };
    let (_, waker) = counter();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(std::pin::Pin::new(&mut op).poll(&mut cx).is_pending());
    ring.park(Some(Duration::ZERO)).unwrap();
    assert!(std::pin::Pin::new(&mut op).poll(&mut cx).is_pending());
    b.write_all(b" second").unwrap();
    let (n, buf) = run_op(&mut ring, op);
    assert_eq!(n.unwrap(), 7);
    assert_eq!(&buf[..], b"first second");
}

#[test]
fn the_queue_indices_are_read_without_the_lock() {
    let ring = ring(8);
    let cqi = view(&ring);
    assert_eq!(cqi.pending(), 0);
    let entry = opcode::Nop::new().build().user_data(crate::uring::CANCEL);
    // SAFETY: owner thread, one queue view (this statement); a NOP points to no memory.
    unsafe { ring.shared.ring.submission_shared().push(&entry) }.unwrap();
    ring.shared.ring.submit().unwrap();
    // A NOP completes while it is submitted: its CQE is posted, unreaped.
    assert_eq!(cqi.pending(), 1);
    let head = cqi.head();
    let mut actions = Vec::new();
    let cq = ring.shared.cq.lock();
    // SAFETY: `cq` is held; no queue view is alive.
    unsafe { ring.shared.collect(&mut Vec::new(), &mut actions) };
    drop(cq);
    assert_eq!((cqi.pending(), cqi.head()), (0, head.wrapping_add(1)));
}

fn view(ring: &Uring) -> crate::uring::cqindex::CqIndex {
    let r = &ring.shared.ring;
    crate::uring::cqindex::CqIndex::new(r.as_raw_fd(), r.params()).expect("the header maps")
}

/// Other threads reap the posted completions of an awake owner that leaves them for
/// longer than `STALL`, while it submits more: under the `cq` exclusion every completion
/// is reaped exactly once, by one thread or another.
#[test]
fn reapers_and_the_owner_take_each_completion_once() {
    const OPS: usize = 6_000;
    let mut ring = ring(64);
    let handle = ring.handle();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..OPS).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reapers: Vec<_> = (0..3)
        .map(|_| {
            let (handle, stop) = (handle.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(SeqCst) {
                    n += handle.reap_stalled();
                    std::hint::spin_loop();
                }
                n
            })
        })
        .collect();
    let mut next = 0;
    while next < OPS {
        for _ in 0..16.min(OPS - next) {
            let runs = runs.clone();
            let i = next;
            // SAFETY: a NOP points to no memory.
            unsafe {
                ring.submit_with_callback(
                    opcode::Nop::new().build(),
                    Box::new(move |r| {
                        r.result.unwrap();
                        runs[i].fetch_add(1, SeqCst);
                    }),
                )
            };
            next += 1;
        }
        // Submitted without a reap: the completions sit posted for the reapers to race for
        // once the owner's last reap is `STALL` old.
        ring.shared.ring.submit().unwrap();
        std::thread::sleep(crate::uring::STALL + Duration::from_millis(1));
        ring.park(Some(Duration::ZERO)).unwrap();
    }
    while ring.in_flight() > 0 {
        ring.park(Some(Duration::from_millis(10))).unwrap();
    }
    stop.store(true, SeqCst);
    let taken: usize = reapers.into_iter().map(|t| t.join().unwrap()).sum();
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(
            r.load(SeqCst),
            1,
            "op {i} completed {} times",
            r.load(SeqCst)
        );
    }
    // Each completion was counted once: a completion read twice (two threads in the
    // queue at once) would count twice, and could complete a later op that reused its
    // `user_data`.
    assert_eq!(
        ring.shared.completed.load(SeqCst),
        ring.shared.submitted.load(SeqCst),
        "a completion was reaped twice"
    );
    assert_eq!(
        taken as u64,
        ring.shared.taken.load(SeqCst),
        "every op the reapers took is counted"
    );
    assert!(
        taken > 0,
        "no reaper took a completion: the test did not race"
    );
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed `cpu_set_t` is the empty set; `CPU_SET` writes inside it, and
    // `sched_setaffinity(0, ..)` reads it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A socket receive that waits completes through task work queued for the thread that
/// submitted it (the ring's owner). While that thread gets no CPU — here it runs as
/// `SCHED_IDLE` on a CPU a spinning thread holds — the kernel flags the ring
/// (`IORING_SQ_TASKRUN`) and posts nothing, so no other thread can reap the completion;
/// once the owner has run, the completion is posted and another thread may reap it.
///
/// Ignored in the default run: it pins two threads to CPU 0, one of them real-time where
/// allowed, which would starve the tests running beside it. Run it alone:
/// `cargo test -p weft-reactor --lib -- --ignored a_descheduled_owners`.
#[test]
#[ignore = "pins threads and spins a real-time thread: run alone with --ignored"]
fn a_descheduled_owners_socket_completion_waits_as_task_work() {
    use std::sync::atomic::AtomicBool;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs two CPUs");
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let stop_hog = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let owner = {
        let (stop_hog, done, ready) = (stop_hog.clone(), done.clone(), ready.clone());
        std::thread::spawn(move || {
            let ring = ring(8);
            let mut buf = Box::new([0u8; 8]);
            let (got, waker) = counter();
            let entry = opcode::Recv::new(types::Fd(a.as_raw_fd()), buf.as_mut_ptr(), 8).build();
            // SAFETY: `buf` and `a` outlive the op: this thread keeps them until `done`,
            // after the op's completion has been reaped (checked below), or the ring's
            // drop cancels it first.
            let ud = unsafe { ring.handle().submit(entry) }.unwrap();
            assert!(ring.handle().poll(ud, &waker).is_pending());
            ring.shared.ring.submit().unwrap();
            tx.send((ring.handle(), view(&ring))).unwrap();
            // Spawned first: a thread inherits its parent's scheduling policy.
            let hog = {
                let stop_hog = stop_hog.clone();
                std::thread::spawn(move || {
                    pin_to(0);
                    // Real-time where allowed (root, CAP_SYS_NICE), so that the owner gets
                    // no CPU at all; else `SCHED_IDLE` leaves it a sliver of one.
                    // SAFETY: plain `sched_param` for the calling thread.
                    let _ = unsafe {
                        let p = libc::sched_param { sched_priority: 1 };
                        libc::sched_setscheduler(0, libc::SCHED_FIFO, &p)
                    };
                    while !stop_hog.load(SeqCst) {
                        std::hint::spin_loop();
                    }
                })
            };
            pin_to(0);
            // SAFETY: plain `sched_param` for the calling thread.
            let r = unsafe {
                let p = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &p)
            };
            assert_eq!(r, 0, "SCHED_IDLE: {}", std::io::Error::last_os_error());
            ready.store(true, SeqCst);
            // Awake, in user space, never entering the kernel on its own.
            while !done.load(SeqCst) {
                std::hint::spin_loop();
            }
            hog.join().unwrap();
            assert_eq!(got.0.load(SeqCst), 1, "the receive's waker ran once");
            let r = ring.handle().poll(ud, &waker);
            assert!(matches!(r, Poll::Ready(ref r) if r.result.as_ref().is_ok_and(|n| *n == 1)));
            drop(ring);
            drop((buf, a));
        })
    };
    pin_to(1);
    let (handle, cqi) = rx.recv().unwrap();
    while !ready.load(SeqCst) {
        std::hint::spin_loop();
    }
    (&b).write_all(b"x").unwrap();
    let mut queued = 0;
    let start = std::time::Instant::now();
    while queued < 100 && start.elapsed() < Duration::from_secs(10) {
        if cqi.taskrun() && cqi.pending() == 0 {
            // A take-over (allowed once the owner's last reap is `STALL` old) finds
            // nothing to reap.
            assert_eq!(handle.reap_stalled(), 0, "nothing posted to reap");
            queued += 1;
        }
    }
    stop_hog.store(true, SeqCst);
    let mut taken = 0;
    while taken == 0 && start.elapsed() < Duration::from_secs(20) {
        taken = handle.reap_stalled();
    }
    done.store(true, SeqCst);
    owner.join().unwrap();
    assert!(queued > 0, "the completion never waited as task work");
    assert_eq!(taken, 1, "once posted, another thread reaps the completion");
}
