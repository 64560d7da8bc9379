//! The io_uring driver: one ring per thread that parks on it.
//!
//! [`Uring`] owns a ring, its op table ([`lifecycle`]) and an eventfd. It is a [`Driver`]:
//! parking means waiting in `io_uring_enter` for a completion or the timeout, and another
//! thread wakes it by writing the eventfd, which a read kept armed in the ring completes.
//!
//! # Threads
//!
//! Only the owning thread submits (the ring is set up `SINGLE_ISSUER | DEFER_TASKRUN`, so it
//! must also be the thread that created it). Any thread may poll or abandon an op through a
//! [`UringHandle`]: the op table sits behind this ring's own mutex — there is no lock shared
//! between rings — and an abandoned op's cancellation is posted to the ring's mailbox and
//! submitted by the owner at its next park or maintenance pass (the owner is unparked if it
//! sleeps).
//!
//! # Park
//!
//! 1. Submit the mailbox's cancellations and (re-)arm the eventfd read.
//! 2. Zero timeout (a busy worker's maintenance): enter only if something must be submitted
//!    or the kernel flagged deferred work, then reap. No syscall otherwise.
//! 3. Otherwise announce `PARKED` (an unpark that came first turns this into step 2), enter
//!    waiting for one completion with the timeout as an `EXT_ARG` (no timeout SQE), return to
//!    `AWAKE` and reap.
//!
//! `Unpark` swaps in `NOTIFIED` and writes the eventfd only if the owner was `PARKED`: a busy
//! owner costs its wakers no syscall.
//!
//! # Errors at setup
//!
//! [`Uring::new`] reports why a ring cannot be had — `ENOSYS` (old kernel), `EPERM` (seccomp,
//! `kernel.io_uring_disabled`), `ENOMEM` (locked-memory limit) — with the fix, so a runtime
//! can fall back or fail with a message a user can act on.

pub mod lifecycle;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};
use parking_lot::Mutex;

use crate::driver::{Driver, Unpark};
use lifecycle::{Cleanup, CqeResult, Lifecycle, Ops, Reaped, RESERVED};

const EVENTFD: u64 = RESERVED | 1;
const CANCEL: u64 = RESERVED | 2;

const AWAKE: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

const IORING_ENTER_GETEVENTS: u32 = 1;

struct Shared {
    ops: Mutex<Ops>,
    /// `user_data` of abandoned ops whose cancellation the owner must submit.
    cancels: Mutex<Vec<u64>>,
    eventfd: OwnedFd,
    state: AtomicUsize,
}

/// An io_uring instance owned by one thread; see the module docs.
pub struct Uring {
    ring: IoUring,
    shared: Arc<Shared>,
    /// Where the armed eventfd read writes; kernel-visible while `eventfd_armed`.
    eventfd_buf: Box<u64>,
    eventfd_armed: bool,
    reaped: Vec<(u64, i32, u32)>,
    actions: Vec<Reaped>,
}

/// Polls and abandons ops of one [`Uring`] from any thread. Cheap to clone.
#[derive(Clone)]
pub struct UringHandle {
    shared: Arc<Shared>,
}

/// The [`Unpark`] handle of a [`Uring`].
#[derive(Clone)]
pub struct UringUnparker {
    shared: Arc<Shared>,
}

/// Explains a failed `io_uring_setup` and how to fix it.
fn explain_setup_error(e: io::Error) -> io::Error {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_string());
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel does not implement io_uring (older than 5.1, or \
             built without CONFIG_IO_URING): upgrade the kernel, or use the fallback driver"
            .to_string(),
        Some(libc::EPERM) => match disabled.as_deref() {
            Some("2") => "io_uring is disabled by the sysctl kernel.io_uring_disabled=2: \
                 set it to 0 (or to 1 and add this user to kernel.io_uring_group)"
                .to_string(),
            Some("1") => "io_uring is restricted by kernel.io_uring_disabled=1 and this \
                 process is not in kernel.io_uring_group: add it, or set the sysctl to 0"
                .to_string(),
            _ => "io_uring_setup was denied, most likely by a seccomp filter (Docker's \
                 default profile blocks io_uring): allow io_uring_setup, io_uring_enter and \
                 io_uring_register in the profile, or use the fallback driver"
                .to_string(),
        },
        Some(libc::ENOMEM) | Some(libc::ENOBUFS) => "the ring could not be allocated: the \
             locked-memory limit (RLIMIT_MEMLOCK, `ulimit -l`) is too low on this kernel; \
             raise it, or use a smaller ring"
            .to_string(),
        _ => format!("io_uring_setup failed: {e}"),
    };
    io::Error::new(e.kind(), format!("cannot create an io_uring: {why} ({e})"))
}

impl Uring {
    /// A ring with `entries` submission slots (the completion queue gets twice as many),
    /// owned by the calling thread.
    ///
    /// # Errors
    ///
    /// Why the kernel refused a ring, and the fix (see the module docs); or the eventfd's
    /// error.
    pub fn new(entries: u32) -> io::Result<Uring> {
        let ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .build(entries)
            .or_else(|e| {
                // Kernels before 6.1 reject DEFER_TASKRUN with EINVAL: try plain flags.
                if e.raw_os_error() == Some(libc::EINVAL) {
                    IoUring::builder().setup_cqsize(entries * 2).build(entries)
                } else {
                    Err(e)
                }
            })
            .map_err(explain_setup_error)?;
        // SAFETY: eventfd(2) returns a new fd or -1; we check before taking ownership.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Uring {
            ring,
            shared: Arc::new(Shared {
                ops: Mutex::new(Ops::new()),
                cancels: Mutex::new(Vec::new()),
                eventfd,
                state: AtomicUsize::new(AWAKE),
            }),
            eventfd_buf: Box::new(0),
            eventfd_armed: false,
            reaped: Vec::new(),
            actions: Vec::new(),
        })
    }

    /// A handle for polling and abandoning this ring's ops from any thread.
    pub fn handle(&self) -> UringHandle {
        UringHandle {
            shared: self.shared.clone(),
        }
    }

    /// Ops whose completion has not been reaped yet.
    pub fn in_flight(&self) -> usize {
        self.shared.ops.lock().live()
    }

    /// Submits `entry` as an op that a future will poll (see [`UringHandle::poll`]) and
    /// returns its `user_data`.
    ///
    /// # Safety
    ///
    /// Every buffer, path, fd and struct that `entry` points to must stay valid and
    /// unmoved until the op's completion is reaped: held by the op's owner until
    /// [`UringHandle::poll`] returns `Ready`, or handed to [`UringHandle::abandon`] as part
    /// of its cleanup.
    pub unsafe fn submit(&mut self, entry: squeue::Entry) -> u64 {
        let ud = self.shared.ops.lock().insert(Lifecycle::Submitted);
        // SAFETY: forwarded to our caller.
        unsafe { self.push(entry.user_data(ud)) };
        ud
    }

    /// Submits `entry` so that its completion runs `callback` on this thread when reaped —
    /// no future, no task.
    ///
    /// # Safety
    ///
    /// As [`submit`](Uring::submit): what `entry` points to must stay valid until the
    /// completion; `callback` may own it.
    pub unsafe fn submit_with_callback(
        &mut self,
        entry: squeue::Entry,
        callback: lifecycle::Callback,
    ) -> u64 {
        let ud = self
            .shared
            .ops
            .lock()
            .insert(Lifecycle::Callback(callback));
        // SAFETY: forwarded to our caller.
        unsafe { self.push(entry.user_data(ud)) };
        ud
    }

    /// Pushes an SQE, making room by submitting (and reaping, if the kernel is busy) when
    /// the submission queue is full.
    ///
    /// # Safety
    ///
    /// As [`submit`](Uring::submit).
    unsafe fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: the caller keeps what the entry points to alive until completion.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => panic!("io_uring_enter failed while the SQ was full: {e}"),
            }
        }
    }

    /// Step 1: the mailbox's cancellations and the eventfd read.
    fn prepare(&mut self) {
        let cancels = std::mem::take(&mut *self.shared.cancels.lock());
        for ud in cancels {
            let entry = opcode::AsyncCancel::new(ud).build().user_data(CANCEL);
            // SAFETY: a cancel SQE points to no memory.
            unsafe { self.push(entry) };
        }
        if !self.eventfd_armed {
            let entry = opcode::Read::new(
                types::Fd(self.shared.eventfd.as_raw_fd()),
                (&mut *self.eventfd_buf as *mut u64).cast(),
                8,
            )
            .build()
            .user_data(EVENTFD);
            // SAFETY: `eventfd_buf` is a heap allocation owned by `self`, which outlives the
            // read: `Drop` for `Uring` tears the ring down (the kernel cancels and waits for
            // in-flight requests when the ring's fd closes) before the box is freed.
            unsafe { self.push(entry) };
            self.eventfd_armed = true;
        }
    }

    /// Enters the kernel: submits, and waits for `want` completions up to `timeout`.
    fn enter(&mut self, want: usize, timeout: Option<Duration>) {
        let res = match timeout {
            Some(t) if want > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            _ if want > 0 => self.ring.submitter().submit_and_wait(want),
            _ => {
                let pending = self.ring.submission().len() as u32;
                // SAFETY: `enter` with no argument struct; the SQEs it submits were pushed
                // under `push`'s contract.
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        pending,
                        0,
                        IORING_ENTER_GETEVENTS,
                        None,
                    )
                }
            }
        };
        match res {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => panic!("io_uring_enter failed: {e}"),
        }
    }

    /// Reaps every completion and runs what they call for, outside the op table's lock.
    fn reap(&mut self) {
        {
            let mut cq = self.ring.completion();
            cq.sync();
            self.reaped
                .extend(cq.map(|c| (c.user_data(), c.result(), c.flags())));
        }
        if self.reaped.is_empty() {
            return;
        }
        {
            let mut ops = self.shared.ops.lock();
            for (ud, res, flags) in self.reaped.drain(..) {
                match ud {
                    EVENTFD => self.eventfd_armed = false,
                    CANCEL => {}
                    _ => self.actions.push(ops.complete(ud, CqeResult::new(res, flags))),
                }
            }
        }
        for action in self.actions.drain(..) {
            match action {
                Reaped::Wake(w) => w.wake(),
                Reaped::Run(f, r) => f(r),
                Reaped::Nothing | Reaped::Unknown => {}
            }
        }
    }
}

impl Driver for Uring {
    type Unpark = UringUnparker;

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.prepare();
        if timeout == Some(Duration::ZERO) {
            // Step 2: a syscall only if the kernel has something for us or we for it.
            let must_enter = !self.ring.submission().is_empty()
                || self.ring.submission().taskrun()
                || self.ring.submission().cq_overflow();
            if must_enter {
                self.enter(0, None);
            }
            self.reap();
            self.shared.state.store(AWAKE, SeqCst);
            return Ok(());
        }
        // Step 3.
        if self
            .shared
            .state
            .compare_exchange(AWAKE, PARKED, SeqCst, SeqCst)
            .is_err()
        {
            self.shared.state.store(AWAKE, SeqCst);
            self.enter(0, None);
            self.reap();
            return Ok(());
        }
        self.enter(1, timeout);
        self.shared.state.store(AWAKE, SeqCst);
        self.reap();
        Ok(())
    }

    fn unparker(&self) -> UringUnparker {
        UringUnparker {
            shared: self.shared.clone(),
        }
    }
}

impl Unpark for UringUnparker {
    fn unpark(&self) {
        if self.shared.state.swap(NOTIFIED, SeqCst) == PARKED {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. EAGAIN (the
            // counter is saturated) means a wake-up is pending anyway.
            unsafe {
                libc::write(
                    self.shared.eventfd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    8,
                )
            };
        }
    }
}

impl UringHandle {
    /// Polls the op `user_data`: its result, or `Pending` with `waker` stored.
    ///
    /// # Panics
    ///
    /// If `user_data` is not a live op of this ring owned by the caller.
    pub fn poll(&self, user_data: u64, waker: &Waker) -> Poll<CqeResult> {
        self.shared.ops.lock().poll(user_data, waker)
    }

    /// Gives up on an op before seeing its result: `cleanup` takes over the resources the
    /// kernel may still use and runs at the completion (at once if it already came), and
    /// the kernel is asked to cancel the op.
    pub fn abandon(&self, user_data: u64, cleanup: Cleanup) {
        let res = self.shared.ops.lock().abandon(user_data, cleanup);
        match res {
            Ok(true) => {
                self.shared.cancels.lock().push(user_data);
                UringUnparker {
                    shared: self.shared.clone(),
                }
                .unpark();
            }
            Ok(false) => {}
            Err(Reaped::Run(f, r)) => f(r),
            Err(_) => {}
        }
    }
}

impl Drop for Uring {
    /// Cancels every op still in the kernel and waits for their completions, so that no
    /// memory the kernel may write to is freed. Closing the ring's fd alone would not do:
    /// the kernel tears a ring down asynchronously. If some op will not finish within about
    /// a second, its resources (and the eventfd buffer) are leaked rather than freed.
    fn drop(&mut self) {
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL);
        // SAFETY: a cancel SQE points to no memory.
        unsafe { self.push(cancel_all) };
        for _ in 0..100 {
            if self.in_flight() == 0 && !self.eventfd_armed {
                return;
            }
            self.enter(1, Some(Duration::from_millis(10)));
            self.reap();
        }
        // The kernel still holds something: leak it.
        let ops = std::mem::replace(&mut *self.shared.ops.lock(), Ops::new());
        std::mem::forget(ops);
        std::mem::forget(std::mem::take(&mut self.eventfd_buf));
    }
}

impl fmt::Debug for Uring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uring")
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for UringHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringHandle").finish_non_exhaustive()
    }
}

impl fmt::Debug for UringUnparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringUnparker").finish_non_exhaustive()
    }
}
