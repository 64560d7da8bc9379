//! The io_uring driver: one ring per thread that parks on it.
//!
//! [`Uring`] owns a ring, its op table ([`lifecycle`]) and an eventfd. It is a [`Driver`]:
//! parking means waiting in `io_uring_enter` for a completion or the timeout, and another
//! thread wakes it by writing the eventfd, which a read kept armed in the ring completes.
//!
//! # Threads
//!
//! Only the owning thread pushes SQEs and, but for a stalled owner (below), enters the
//! kernel and reaps (the ring is set up `COOP_TASKRUN`): the thread that created it with [`Uring::new`], or the thread that called
//! [`Uring::enable`] on a ring made with [`Uring::new_disabled`] — which is how a runtime
//! builds its workers' rings on one thread and hands each to its worker. The owner submits
//! through the driver while parking, or through an [`Op`](crate::op::Op) while it runs a
//! task. Any thread may poll or abandon an op through a [`UringHandle`]: the op table sits behind this ring's own mutex — there is no lock shared
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
//!    waiting for one completion with the timeout as an `EXT_ARG` (no timeout SQE), reap,
//!    and return to `AWAKE`.
//!
//! All three run under the ring's `cq` mutex (below, "Reaping a stalled ring"); what the
//! reaped completions call for runs after it is released.
//!
//! `Unpark` swaps in `NOTIFIED` and writes the eventfd only if the owner was `PARKED`: a busy
//! owner costs its wakers no syscall. The handshake is `../handshake.rs`, model-checked there
//! with loom against an abstract eventfd.
//!
//! # Reaping a stalled ring
//!
//! The completion queue is read under the ring's `cq` mutex, which the owner holds through
//! its whole park: from (re-)arming the eventfd read (step 1), through announcing `PARKED`
//! and waiting in `io_uring_enter` (step 3), to reaping. Another thread may call
//! [`UringHandle::reap_stalled`]: if the owner has not reaped for [`STALL`], ops are in
//! flight, `cq` is free (`try_lock`: it never waits) and, checked under `cq`, the owner is
//! not `PARKED`, it reaps the completions the kernel has posted and runs what they call for on its own thread — wakes,
//! and completion callbacks. First it enters the ring's kernel side to submit the SQEs the
//! owner queued but had not submitted before it stalled (`to_submit` is the queue's size: the
//! kernel takes only what the owner's published tail covers, so the SQ's memory is never
//! touched by two threads). Ops it submits complete through task work on its own thread,
//! which it runs when it next returns from the kernel.
//!
//! Holding `cq` across the park is what keeps such a thread from taking a wake-up meant for
//! a waiting owner. With the announcement outside `cq`, a reaper could pass its check
//! before the owner announced `PARKED`, then, while the owner waited for `cq`, submit the
//! owner's new eventfd read (or reap its completion): the read consumed the unpark's
//! write, the reaper took its completion, and the owner waited for a completion that no
//! longer existed. Under `cq` the reaper never submits the eventfd read, and any eventfd
//! completion it takes ends a wait that is already over.
//!
//! What another thread can reap is only what the kernel has posted. A socket op that waits
//! (a `RECV` on an empty socket) completes through task work queued for the thread that
//! submitted it, which posts the completion at that thread's next pass through the kernel
//! (`IORING_SQ_TASKRUN` flags it meanwhile): while the owner is descheduled — runnable, but
//! with no CPU — nothing is posted and no other thread can take its completions
//! (`kernel_tests::a_descheduled_owners_socket_completion_waits_as_task_work`). And a
//! parked owner holds `cq` from before its wait until it has reaped, so completions the
//! kernel posted while waking it wait for it too if it is descheduled before it reaps.
//! `WEFT_CQ_STATS=1` samples how long posted completions and flagged task work wait, and
//! what the owner did meanwhile (`cqstats.rs`).
//!
//! This needs the setup flags' help. `COOP_TASKRUN` (the default) or plain flags post the
//! completions of the owner's ops at its next return from the kernel, which a timer
//! interrupt provides, and let any thread enter. `DEFER_TASKRUN` (with the
//! `SINGLE_ISSUER` it requires) posts them only when the owner itself enters to wait and
//! refuses other threads' entries, so a stalled owner's ops wait for it
//! ([`UringHandle::reap_stalled`] then finds nothing).
//!
//! # Errors at setup
//!
//! [`Uring::new`] reports why a ring cannot be had — `ENOSYS` (old kernel), `EPERM` (seccomp,
//! `kernel.io_uring_disabled`), `ENOMEM` (locked-memory limit) — with the fix, so a runtime
//! can fall back or fail with a message a user can act on. It also enters the new ring once
//! and registers a probe, so that a filter allowing `io_uring_setup` but denying
//! `io_uring_enter` or `io_uring_register` (some container profiles) is a setup error too,
//! not a panic at the first park. `Drop` never panics: if the kernel refuses to enter
//! while the ring shuts down, it reports that and leaks what in-flight ops may still use.

mod cqindex;
mod cqstats;
#[cfg(test)]
mod kernel_tests;
pub mod lifecycle;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Poll, Waker};
use std::time::Duration;

use io_uring::{IoUring, opcode, squeue, types};
use parking_lot::Mutex;

use crate::driver::{Driver, Unpark};
use crate::handshake::Handshake;
use lifecycle::{CqeResult, Lifecycle, OnAbandon, Ops, RESERVED, Reaped};

const EVENTFD: u64 = RESERVED | 1;
const CANCEL: u64 = RESERVED | 2;
/// The CQE a `MSG_RING` wake posts in the parked ring.
const MSG_WAKE: u64 = RESERVED | 3;

/// How long an awake owner may go without reaping before [`UringHandle::reap_stalled`]
/// reaps for it: as the timing wheel's `STALL_TICKS`.
pub const STALL: Duration = Duration::from_millis(2);

/// How another thread wakes a parked ring; see [`Unpark for UringUnparker`](UringUnparker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WakeMode {
    /// `write(2)` to the ring's eventfd, whose read the ring keeps armed.
    Eventfd,
    /// From a thread that owns a ring of its own: an `IORING_OP_MSG_RING` SQE on that ring,
    /// posting a CQE straight into the parked one (no eventfd, no re-arm). Other threads
    /// still use the eventfd.
    MsgRing,
}

impl WakeMode {
    /// `WEFT_URING_WAKE=msg_ring` selects `MsgRing`, for measurement; the default is the
    /// eventfd (ARCHITECTURE.md, Decisions).
    fn get() -> WakeMode {
        static MODE: std::sync::OnceLock<WakeMode> = std::sync::OnceLock::new();
        *MODE.get_or_init(|| match std::env::var("WEFT_URING_WAKE").as_deref() {
            Ok("msg_ring") => WakeMode::MsgRing,
            _ => WakeMode::Eventfd,
        })
    }
}

thread_local! {
    /// The ring this thread owns, for `MSG_RING` wakes (weak: the ring's life is its
    /// driver's, not this thread's).
    static OWN_RING: std::cell::RefCell<std::sync::Weak<Shared>> =
        const { std::cell::RefCell::new(std::sync::Weak::new()) };
    /// Whether this thread was ever given a ring: a thread that never was (a fallback
    /// worker, a `block_on` or pool thread) learns that it has none from one load, not a
    /// `RefCell` borrow and a `Weak` upgrade per op it would submit.
    static HAD_RING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The ring the calling thread owns, if it has one that is still alive: where
/// [`Op`](crate::op::Op) submits.
///
/// Inlined, so that a thread without a ring (a fallback worker) learns so from one
/// thread-local load at every socket op it would submit.
#[inline]
pub(crate) fn current() -> Option<UringHandle> {
    if !HAD_RING.with(std::cell::Cell::get) {
        return None;
    }
    current_ring()
}

/// [`current`] on a thread that was given a ring.
fn current_ring() -> Option<UringHandle> {
    let shared = OWN_RING.with(|o| o.borrow().upgrade())?;
    shared.is_owner().then_some(UringHandle { shared })
}

const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_ENTER_SQ_WAKEUP: u32 = 2;

/// The first live `SQPOLL` ring, whose submission thread later ones attach to.
static SQPOLL_FIRST: Mutex<std::sync::Weak<Shared>> = Mutex::new(std::sync::Weak::new());

struct Shared {
    /// Its submission queue is touched only by the owner thread, its completion queue only
    /// under `cq`; one `SubmissionQueue`/`CompletionQueue` view at a time.
    ring: IoUring,
    /// The thread that submits; set when the ring is enabled.
    owner: std::sync::OnceLock<std::thread::ThreadId>,
    ops: Mutex<Ops>,
    /// `user_data` of abandoned ops whose cancellation the owner must submit.
    cancels: Mutex<Vec<u64>>,
    /// Held by whoever reads the completion queue, and by the owner through its whole park
    /// (module docs, "Reaping a stalled ring").
    cq: Mutex<()>,
    /// When the ring was built: the origin of `last_reap`.
    born: std::time::Instant,
    /// Milliseconds after `born` of the owner's last reap.
    last_reap: std::sync::atomic::AtomicU64,
    /// Op completions reaped over the ring's life (written under `cq`).
    completed: std::sync::atomic::AtomicU64,
    eventfd: OwnedFd,
    /// Whether the eventfd read is in the kernel (armed by the owner; cleared by whoever
    /// reaps its completion).
    eventfd_armed: AtomicBool,
    /// Ops submitted over the ring's life (written by the owner only).
    submitted: std::sync::atomic::AtomicU64,
    /// AWAKE / PARKED / NOTIFIED (module docs, "Park").
    handshake: Handshake,
    /// The completion queue's indices, readable by any thread without `cq`, for
    /// `WEFT_CQ_STATS` (`None` without it, or if the kernel refused the second mapping).
    cq_index: Option<cqindex::CqIndex>,
    /// The owner's kernel thread id, for `WEFT_CQ_STATS` (`cqstats.rs`).
    owner_tid: std::sync::atomic::AtomicI32,
    /// Op completions reaped by threads other than the owner (written under `cq`).
    taken: std::sync::atomic::AtomicU64,
    /// The provided buffers of multishot receives, registered by the owner at the first
    /// one (`None` if the kernel refused them). Declared after `ring`: freed after the
    /// ring's fd is closed.
    bufs: std::sync::OnceLock<Option<Arc<crate::op::recv_multi::BufRing>>>,
}

/// An io_uring instance owned by one thread; see the module docs.
pub struct Uring {
    shared: Arc<Shared>,
    /// Where the armed eventfd read writes; kernel-visible while `eventfd_armed`.
    eventfd_buf: Box<u64>,
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
             built without CONFIG_IO_URING), or a seccomp filter answers ENOSYS for it: \
             upgrade the kernel or allow io_uring_setup, io_uring_enter and \
             io_uring_register in the profile, or use the fallback driver"
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

/// Explains a refused `io_uring_enter` or `io_uring_register` on a ring that was set up:
/// only a filter (seccomp, an LSM) denies one of them and not `io_uring_setup`.
fn explain_denied(call: &str, e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOSYS) => format!(
            "{call} was denied although io_uring_setup was allowed, most likely by a seccomp \
             filter (some container profiles allow only io_uring_setup): allow \
             io_uring_setup, io_uring_enter and io_uring_register in the profile, or use the \
             fallback driver"
        ),
        _ => format!("{call} failed on a new ring"),
    };
    io::Error::new(e.kind(), format!("cannot use an io_uring: {why} ({e})"))
}

/// Checks that this process may enter the ring: a filter that allows `io_uring_setup` but
/// denies `io_uring_enter` would otherwise fail the first park of every worker. A disabled
/// ring answers `EBADFD` to an allowed enter, an enabled one `0`.
fn probe_enter(ring: &IoUring) -> io::Result<()> {
    // SAFETY: an enter that submits nothing and waits for nothing, with no argument struct.
    let res = unsafe { ring.submitter().enter::<libc::sigset_t>(0, 0, 0, None) };
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBADFD) => Ok(()),
        Err(e) => Err(explain_denied("io_uring_enter", e)),
    }
}

/// Which setup flags a ring asks for (falling back to none where the kernel rejects them).
///
/// Chosen by measurement (ARCHITECTURE.md, Decisions): `CoopTaskrun` — the kernel runs
/// task work (posting completions) at the owner's next return from the kernel rather than
/// interrupting it, and tied with `DeferTaskrun` on random reads while still posting
/// completions for an owner stalled in user space, so that another thread can reap them —
/// is the default. `WEFT_URING_SETUP=defer|coop|plain|sqpoll` selects another, for measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetupFlags {
    /// `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` (Linux 6.1+).
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (Linux 5.19+).
    CoopTaskrun,
    /// No flags.
    Plain,
    /// `SQPOLL` (Linux 5.11+; refused or older, the ring has no flags), every ring
    /// attached (`ATTACH_WQ`) to the kernel submission thread of the process's first live
    /// `SQPOLL` ring, which then runs the task work of every ring's ops (so an owner
    /// descheduled in user space holds no socket completion back). `WEFT_SQPOLL_IDLE_MS`
    /// (milliseconds; default 1, also for a value that does not parse) is how long that
    /// thread polls an empty queue before it sleeps.
    SqPoll,
}

impl SetupFlags {
    fn from_env() -> SetupFlags {
        match std::env::var("WEFT_URING_SETUP").as_deref() {
            Ok("defer") => SetupFlags::DeferTaskrun,
            Ok("plain") => SetupFlags::Plain,
            Ok("sqpoll") => SetupFlags::SqPoll,
            _ => SetupFlags::CoopTaskrun,
        }
    }
}

/// The opcodes the reactor relies on, with the kernel release that added each.
const REQUIRED_OPCODES: &[(u8, &str, &str)] = &[
    (opcode::Read::CODE, "READ", "5.6"),
    (opcode::Write::CODE, "WRITE", "5.6"),
    (opcode::OpenAt::CODE, "OPENAT", "5.6"),
    (opcode::Close::CODE, "CLOSE", "5.6"),
    (opcode::Fsync::CODE, "FSYNC", "5.1"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL", "5.5"),
    (
        opcode::AsyncCancel2::CODE,
        "ASYNC_CANCEL (cancel-any)",
        "5.19",
    ),
];

/// Checks, once per ring, that the kernel supports every opcode the reactor submits: a
/// kernel without one gets a setup error naming it (so a runtime falls back), never an
/// `EINVAL` from the first read.
fn probe_opcodes(ring: &IoUring) -> io::Result<()> {
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => explain_denied("io_uring_register", e),
            _ => io::Error::new(
                e.kind(),
                format!("cannot probe io_uring opcodes (kernel < 5.6?): {e}"),
            ),
        })?;
    for (code, name, since) in REQUIRED_OPCODES {
        if !probe.is_supported(*code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "cannot use io_uring: the kernel lacks IORING_OP_{name} (Linux {since}+); \
                     use the fallback driver"
                ),
            ));
        }
    }
    Ok(())
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
        let ring = Uring::build(entries, false)?;
        ring.shared
            .owner
            .set(std::thread::current().id())
            .expect("a new ring has no owner");
        ring.shared.owned_here();
        Ok(ring)
    }

    /// Like [`new`](Uring::new), but disabled until [`enable`](Uring::enable) is called on
    /// the thread that will own it.
    ///
    /// # Errors
    ///
    /// As [`new`](Uring::new).
    pub fn new_disabled(entries: u32) -> io::Result<Uring> {
        Uring::build(entries, true)
    }

    /// Enables a ring made by [`new_disabled`](Uring::new_disabled); the calling thread
    /// becomes its owner.
    ///
    /// # Errors
    ///
    /// The kernel's, if the ring cannot be enabled.
    pub fn enable(&mut self) -> io::Result<()> {
        self.shared.ring.submitter().register_enable_rings()?;
        self.shared
            .owner
            .set(std::thread::current().id())
            .map_err(|_| io::Error::other("this io_uring was already enabled"))?;
        self.shared.owned_here();
        Ok(())
    }

    fn build(entries: u32, disabled: bool) -> io::Result<Uring> {
        let flags = SetupFlags::from_env();
        // The first live `SQPOLL` ring, whose submission thread a new one shares: locked
        // for the whole build, so that rings built at once on two threads share one thread
        // too, and held (`first`), so that its descriptor stays open for `ATTACH_WQ`.
        let mut sqpoll_slot = (flags == SetupFlags::SqPoll).then(|| SQPOLL_FIRST.lock());
        let sqpoll_first = sqpoll_slot.as_ref().and_then(|first| first.upgrade());
        let builder = |full: bool| {
            let mut b = IoUring::builder();
            b.setup_cqsize(entries * 2);
            if full {
                match flags {
                    SetupFlags::DeferTaskrun => {
                        b.setup_single_issuer()
                            .setup_defer_taskrun()
                            .setup_taskrun_flag();
                    }
                    SetupFlags::CoopTaskrun => {
                        // Not `SINGLE_ISSUER`: a thread reaping for a stalled owner also
                        // hands the owner's queued SQEs to the kernel.
                        b.setup_coop_taskrun().setup_taskrun_flag();
                    }
                    SetupFlags::Plain => {}
                    SetupFlags::SqPoll => {
                        let idle = std::env::var("WEFT_SQPOLL_IDLE_MS")
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(1);
                        b.setup_sqpoll(idle);
                        if let Some(first) = &sqpoll_first {
                            b.setup_attach_wq(first.ring.as_raw_fd());
                        }
                    }
                }
            }
            if disabled {
                b.setup_r_disabled();
            }
            b.build(entries)
        };
        let ring = builder(true)
            .or_else(|e| {
                // Kernels before 6.1 reject DEFER_TASKRUN with EINVAL: try plain flags. A
                // refused `SQPOLL` (EPERM for an unprivileged process before 5.11) is no
                // reason to give the ring up either.
                if e.raw_os_error() == Some(libc::EINVAL) || flags == SetupFlags::SqPoll {
                    builder(false)
                } else {
                    Err(e)
                }
            })
            .and_then(|ring| {
                // Before 5.11 an `SQPOLL` ring takes only registered descriptors, and
                // weft's ops name plain ones: such a ring would fail every op with EBADF.
                let p = ring.params();
                if p.is_setup_sqpoll() && !p.is_feature_sqpoll_nonfixed() {
                    builder(false)
                } else {
                    Ok(ring)
                }
            })
            .map_err(explain_setup_error)?;
        probe_opcodes(&ring)?;
        probe_enter(&ring)?;
        // SAFETY: eventfd(2) returns a new fd or -1; we check before taking ownership.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let cq_index = cqstats::enabled()
            .then(|| cqindex::CqIndex::new(ring.as_raw_fd(), ring.params()).ok())
            .flatten();
        let uring = Uring {
            shared: Arc::new(Shared {
                ring,
                owner: std::sync::OnceLock::new(),
                ops: Mutex::new(Ops::new()),
                cancels: Mutex::new(Vec::new()),
                cq: Mutex::new(()),
                born: std::time::Instant::now(),
                last_reap: std::sync::atomic::AtomicU64::new(0),
                completed: std::sync::atomic::AtomicU64::new(0),
                eventfd,
                eventfd_armed: AtomicBool::new(false),
                submitted: std::sync::atomic::AtomicU64::new(0),
                handshake: Handshake::new(),
                cq_index,
                owner_tid: std::sync::atomic::AtomicI32::new(0),
                taken: std::sync::atomic::AtomicU64::new(0),
                bufs: std::sync::OnceLock::new(),
            }),
            eventfd_buf: Box::new(0),
            reaped: Vec::new(),
            actions: Vec::new(),
        };
        if let Some(first) = &mut sqpoll_slot
            && uring.shared.ring.params().is_setup_sqpoll()
            && sqpoll_first.is_none()
        {
            **first = Arc::downgrade(&uring.shared);
        }
        Ok(uring)
    }

    /// A handle for polling and abandoning this ring's ops from any thread.
    pub fn handle(&self) -> UringHandle {
        UringHandle {
            shared: self.shared.clone(),
        }
    }

    #[cfg(test)]
    /// The ring itself, for tests that register resources with it.
    pub(crate) fn io_uring(&self) -> &IoUring {
        &self.shared.ring
    }

    /// Ops whose completion has not been reaped yet.
    pub fn in_flight(&self) -> usize {
        self.shared.ops.lock().live()
    }

    #[cfg(test)]
    /// Submits `entry` as an op that a future will poll; see [`UringHandle::submit`].
    ///
    /// # Safety
    ///
    /// As [`UringHandle::submit`].
    pub(crate) unsafe fn submit(&mut self, entry: squeue::Entry) -> u64 {
        // SAFETY: `&mut self` is the owner's driver; the rest is our caller's contract.
        unsafe { self.handle().submit(entry) }.expect("submit from the ring's owner")
    }

    #[cfg(test)]
    /// Submits `entry` so that its completion runs `callback`; see
    /// [`UringHandle::submit_with_callback`].
    ///
    /// # Safety
    ///
    /// As [`UringHandle::submit_with_callback`].
    pub(crate) unsafe fn submit_with_callback(
        &mut self,
        entry: squeue::Entry,
        callback: lifecycle::OnComplete,
    ) -> u64 {
        // SAFETY: as `submit`.
        unsafe { self.handle().submit_with_callback(entry, callback) }
            .expect("submit from the ring's owner")
    }

    /// Step 1: the mailbox's cancellations and the eventfd read, pushed by the owner while
    /// it holds `cq` (the `_cq` guard), so that `eventfd_armed` cannot change under it and
    /// no other thread submits the read (see "Reaping a stalled ring"). A full queue whose
    /// completions are backed up is collected into `actions`, run after `cq` is released.
    /// (The fields are passed apart because the guard borrows `shared`.)
    fn prepare(
        shared: &Shared,
        _cq: &parking_lot::MutexGuard<'_, ()>,
        eventfd_buf: &mut u64,
        reaped: &mut Vec<(u64, i32, u32)>,
        actions: &mut Vec<Reaped>,
    ) {
        let cancels = std::mem::take(&mut *shared.cancels.lock());
        for ud in cancels {
            let entry = opcode::AsyncCancel::new(ud).build().user_data(CANCEL);
            // SAFETY: a cancel SQE points to no memory; owner thread, holding `cq`.
            unsafe { Self::push_holding_cq(shared, &entry, reaped, actions) };
        }
        if !shared.eventfd_armed.load(Relaxed) {
            let entry = opcode::Read::new(
                types::Fd(shared.eventfd.as_raw_fd()),
                (eventfd_buf as *mut u64).cast(),
                8,
            )
            .build()
            .user_data(EVENTFD);
            // SAFETY: `eventfd_buf` is the `Uring`'s heap allocation, which outlives the
            // read: `Drop` for `Uring` tears the ring down (the kernel cancels and waits for
            // in-flight requests when the ring's fd closes) before the box is freed.
            unsafe { Self::push_holding_cq(shared, &entry, reaped, actions) };
            shared.eventfd_armed.store(true, Relaxed);
        }
    }

    /// [`Shared::push`] for the owner while it holds `cq`: backed-up completions are
    /// collected into `actions` instead of under a second lock of `cq`.
    ///
    /// # Safety
    ///
    /// As [`Shared::push`], and the caller holds `cq`.
    unsafe fn push_holding_cq(
        shared: &Shared,
        entry: &squeue::Entry,
        reaped: &mut Vec<(u64, i32, u32)>,
        actions: &mut Vec<Reaped>,
    ) {
        loop {
            // SAFETY: owner thread, one view at a time (this statement); the entry's memory
            // is our caller's to keep alive.
            if unsafe { shared.ring.submission_shared().push(entry) }.is_ok() {
                return;
            }
            match shared.ring.submit() {
                Ok(_) => shared.wait_for_sq_room(),
                // SAFETY: the caller holds `cq`; no queue view is alive.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => unsafe {
                    shared.collect(reaped, actions)
                },
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => panic!("io_uring_enter failed while the SQ was full: {e}"),
            }
        }
    }

    /// Enters the kernel: submits, and waits for `want` completions up to `timeout`.
    ///
    /// # Panics
    ///
    /// If `io_uring_enter` fails for another reason than a timeout or a signal (the ring
    /// was probed when it was built: see [`probe_enter`]).
    fn enter(&self, want: usize, timeout: Option<Duration>) {
        if let Err(e) = self.try_enter(want, timeout) {
            panic!("io_uring_enter failed: {e}");
        }
    }

    /// [`enter`](Uring::enter), returning its error instead of panicking.
    fn try_enter(&self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        let res = match timeout {
            Some(t) if want > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.shared.ring.submitter().submit_with_args(want, &args)
            }
            _ if want > 0 => self.shared.ring.submitter().submit_and_wait(want),
            _ => {
                // SAFETY: owner thread; the queue view lives only for this statement.
                let pending = unsafe { self.shared.ring.submission_shared() }.len() as u32;
                let flags = IORING_ENTER_GETEVENTS | self.shared.sq_wakeup_flag();
                // SAFETY: `enter` with no argument struct; the SQEs it submits were pushed
                // under `push`'s contract.
                unsafe {
                    self.shared
                        .ring
                        .submitter()
                        .enter::<libc::sigset_t>(pending, 0, flags, None)
                }
            }
        };
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Reaps every completion and runs what it calls for, and records the owner's reap.
    fn reap(&mut self) {
        let ms = self.shared.born.elapsed().as_millis();
        self.shared
            .last_reap
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Relaxed);
        let cq = self.shared.cq.lock();
        // SAFETY: `cq` is held, and no queue view is alive.
        unsafe { self.shared.collect(&mut self.reaped, &mut self.actions) };
        drop(cq);
        run_actions(&mut self.actions);
    }
}

impl Driver for Uring {
    type Unpark = UringUnparker;

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Steps 1 to 3 hold `cq` from before the eventfd read is (re-)armed until after the
        // wait, so that a thread reaping for a stalled owner never runs between them: it
        // would submit the read, or take its completion, and so swallow the wake-up of an
        // owner that is about to wait (see "Reaping a stalled ring").
        let cq = self.shared.cq.lock();
        Self::prepare(
            &self.shared,
            &cq,
            &mut self.eventfd_buf,
            &mut self.reaped,
            &mut self.actions,
        );
        let shared = &*self.shared;
        let waited = if timeout == Some(Duration::ZERO) {
            // Step 2: a syscall only if the kernel has something for us or we for it.
            let must_enter = {
                // SAFETY: owner thread; one queue view, dropped at the end of this block.
                let sq = unsafe { shared.ring.submission_shared() };
                // An `SQPOLL` ring's thread takes the queue by itself unless it sleeps.
                let queued = !sq.is_empty() && (!shared.sqpoll() || sq.need_wakeup());
                queued || sq.taskrun() || sq.cq_overflow()
            };
            if must_enter {
                self.enter(0, None);
            }
            true
        } else if shared.handshake.announce_park() {
            // Step 3.
            self.enter(1, timeout);
            true
        } else {
            // An unpark came first (the word is `AWAKE` again): submit and reap, no wait.
            self.enter(0, None);
            false
        };
        let ms = shared.born.elapsed().as_millis();
        shared
            .last_reap
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Relaxed);
        // SAFETY: `cq` is held, and no queue view is alive.
        unsafe { shared.collect(&mut self.reaped, &mut self.actions) };
        drop(cq);
        if waited {
            shared.handshake.awake();
        }
        run_actions(&mut self.actions);
        Ok(())
    }

    fn unparker(&self) -> UringUnparker {
        UringUnparker {
            shared: self.shared.clone(),
        }
    }
}

impl UringUnparker {
    /// Wakes the parked ring with a `MSG_RING` from this thread's own ring; `false` if this
    /// thread owns no (other) ring.
    fn msg_ring(&self) -> bool {
        let Some(own) = OWN_RING.with(|o| o.borrow().upgrade()) else {
            return false;
        };
        if Arc::ptr_eq(&own, &self.shared) || !own.is_owner() {
            return false;
        }
        let entry =
            opcode::MsgRingData::new(types::Fd(self.shared.ring.as_raw_fd()), 0, MSG_WAKE, None)
                .build()
                // No completion on the sending ring when it succeeds.
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(MSG_WAKE);
        // SAFETY: owner thread of `own` (checked); the SQE points to no memory.
        unsafe { own.push(&entry) };
        // On failure the SQE stays queued and goes with the sender's next submission; the
        // caller then wakes through the eventfd too, so the wake is not late.
        own.ring.submit().is_ok()
    }
}

impl Unpark for UringUnparker {
    fn unpark(&self) {
        if self.shared.handshake.notify() {
            if WakeMode::get() == WakeMode::MsgRing && self.msg_ring() {
                return;
            }
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

/// Runs what reaped completions call for: wakes and completion callbacks.
fn run_actions(actions: &mut Vec<Reaped>) {
    for action in actions.drain(..) {
        match action {
            Reaped::Wake(w) => crate::wake::wake(w),
            Reaped::Run(f, r) => {
                crate::wake::guarded(move || f(r));
            }
            Reaped::RunEach(f, r, seq) => {
                crate::wake::guarded(move || f(r, seq));
            }
            Reaped::Nothing | Reaped::Unknown => {}
        }
    }
}

impl Shared {
    /// Records the calling thread as the owner (its ring for `MSG_RING`, its thread id for
    /// `WEFT_CQ_STATS`).
    fn owned_here(self: &Arc<Shared>) {
        OWN_RING.with(|o| *o.borrow_mut() = Arc::downgrade(self));
        HAD_RING.with(|h| h.set(true));
        // SAFETY: `gettid` has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.owner_tid.store(tid, Relaxed);
        if cqstats::enabled() {
            cqstats::register(self);
        }
    }

    /// Reaps every completion into `actions`, which the caller runs (with [`run_actions`])
    /// after releasing `cq`: an action may submit, and a full queue makes that reap.
    ///
    /// # Safety
    ///
    /// The caller holds `cq` (so no other completion-queue view is alive).
    unsafe fn collect(&self, reaped: &mut Vec<(u64, i32, u32)>, actions: &mut Vec<Reaped>) {
        {
            // SAFETY: `cq` is held, so this is the only completion-queue view; it is
            // dropped before any action (which may submit or reap) runs.
            let mut cq = unsafe { self.ring.completion_shared() };
            cq.sync();
            reaped.extend(cq.map(|c| (c.user_data(), c.result(), c.flags())));
        }
        if reaped.is_empty() {
            return;
        }
        {
            let mut ops = self.ops.lock();
            let mut completed = 0;
            for (ud, res, flags) in reaped.drain(..) {
                match ud {
                    EVENTFD => self.eventfd_armed.store(false, Relaxed),
                    MSG_WAKE => {}
                    CANCEL => {}
                    _ => {
                        completed += 1;
                        actions.push(ops.complete(ud, CqeResult::new(res, flags)));
                    }
                }
            }
            // Written under `cq` only: a load and a store.
            let c = &self.completed;
            c.store(c.load(Relaxed) + completed, Relaxed);
        }
    }

    fn is_owner(&self) -> bool {
        self.owner.get() == Some(&std::thread::current().id())
    }

    /// Whether the ring was set up `SQPOLL` (a kernel thread takes its submissions).
    fn sqpoll(&self) -> bool {
        self.ring.params().is_setup_sqpoll()
    }

    /// `IORING_ENTER_SQ_WAKEUP` if this is an `SQPOLL` ring whose thread sleeps, else 0.
    /// Owner thread only, with no submission-queue view alive.
    fn sq_wakeup_flag(&self) -> u32 {
        if !self.sqpoll() {
            return 0;
        }
        // SAFETY: the owner's one queue view, for this statement only. The tail that the
        // kernel thread must see was published when the pushes' views were dropped, and
        // `need_wakeup` fences before it reads the flag.
        if unsafe { self.ring.submission_shared() }.need_wakeup() {
            IORING_ENTER_SQ_WAKEUP
        } else {
            0
        }
    }

    /// On an `SQPOLL` ring, after a full submission queue was handed over: waits until
    /// the kernel's submission thread has taken some of it (`IORING_ENTER_SQ_WAIT`), where
    /// retrying the push at once would spin against the thread it waits for. Elsewhere
    /// the `submit` that came before made the room, and this does nothing.
    fn wait_for_sq_room(&self) {
        if self.sqpoll() {
            // An error (EINTR) only makes the caller's loop try again.
            let _ = self.ring.submitter().squeue_wait();
        }
    }

    /// Pushes an SQE, making room by submitting when the submission queue is full.
    ///
    /// # Safety
    ///
    /// Called on the owner thread only, with no other submission-queue view alive; what
    /// `entry` points to stays valid until its completion is reaped.
    unsafe fn push(&self, entry: &squeue::Entry) {
        loop {
            // SAFETY: owner thread, one view at a time (this statement); the entry's memory
            // is our caller's to keep alive.
            if unsafe { self.ring.submission_shared().push(entry) }.is_ok() {
                return;
            }
            // Full: hand what is queued to the kernel. EBUSY means completions are backed
            // up (the kernel keeps overflowed ones, IORING_FEAT_NODROP, so none is lost):
            // reap, then try again.
            match self.ring.submit() {
                Ok(_) => self.wait_for_sq_room(),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    let mut actions = Vec::new();
                    let cq = self.cq.lock();
                    // SAFETY: `cq` is held; no queue view is alive.
                    unsafe { self.collect(&mut Vec::new(), &mut actions) };
                    drop(cq);
                    run_actions(&mut actions);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => panic!("io_uring_enter failed while the SQ was full: {e}"),
            }
        }
    }
}

impl UringHandle {
    /// Ops submitted to this ring so far (the reactor's own excluded).
    pub fn submitted(&self) -> u64 {
        self.shared.submitted.load(Relaxed)
    }

    /// The word [`submitted`](Self::submitted) reads, for a caller that watches it after
    /// every poll and keeps the reference: it lives as long as the ring.
    pub fn submitted_word(&self) -> &std::sync::atomic::AtomicU64 {
        &self.shared.submitted
    }

    fn count_submit(&self) {
        let c = &self.shared.submitted;
        // Owner-only writer: a load and a store, no locked instruction.
        c.store(c.load(Relaxed) + 1, Relaxed);
    }

    /// Whether the calling thread owns this ring (and so may submit to it).
    pub fn is_owner(&self) -> bool {
        self.shared.is_owner()
    }

    /// Whether ops submitted to this ring have not been reaped yet (read without a lock; a
    /// cancellation's own completion is not counted).
    pub fn has_in_flight(&self) -> bool {
        self.shared.submitted.load(Relaxed) != self.shared.completed.load(Relaxed)
    }

    /// When another thread should next look at this ring in case its owner stalls: its
    /// owner's last reap plus [`STALL`]; `None` with nothing in flight, or while the owner
    /// waits in the kernel (it reaps what completes). Read without a lock.
    pub fn takeover_deadline(&self) -> Option<std::time::Instant> {
        if !self.has_in_flight() || self.shared.handshake.is_parked() {
            return None;
        }
        let last = Duration::from_millis(self.shared.last_reap.load(Relaxed));
        Some(self.shared.born + last + STALL)
    }

    /// Reaps this ring's posted completions on the calling thread if its owner is stalled:
    /// awake (not waiting in the kernel), with ops in flight, and without a reap for
    /// [`STALL`]. Wakes and completion callbacks run on the calling thread. Never waits:
    /// if another thread is reaping, or the owner is parked, nothing happens. Returns how
    /// many op completions it reaped. See the module docs ("Reaping a stalled ring").
    pub fn reap_stalled(&self) -> usize {
        let shared = &*self.shared;
        if !self.has_in_flight() || shared.handshake.is_parked() {
            return 0;
        }
        let since = shared.born.elapsed();
        let last = Duration::from_millis(shared.last_reap.load(Relaxed));
        if since < last + STALL {
            return 0;
        }
        let Some(cq) = shared.cq.try_lock() else {
            return 0;
        };
        // Checked again under `cq`: the owner announces `PARKED` only while it holds `cq`
        // (its park), so a thread that holds it and reads `AWAKE` or `NOTIFIED` has no
        // waiting owner's wake-up to take.
        if shared.handshake.is_parked() {
            return 0;
        }
        let to_submit = shared.ring.params().sq_entries();
        // An `SQPOLL` ring's kernel thread takes the SQEs, and ignores `to_submit`: wake it
        // in case it sleeps (a wake-up of an awake thread costs nothing more).
        let flags = if shared.sqpoll() {
            IORING_ENTER_SQ_WAKEUP
        } else {
            0
        };
        // SAFETY: no argument struct; the kernel submits only the SQEs the owner published
        // (pushed under `push`'s contract), and this thread touches no queue memory. On a
        // `SINGLE_ISSUER` ring the kernel refuses (EEXIST) and nothing happens.
        let _ = unsafe {
            shared
                .ring
                .submitter()
                .enter::<libc::sigset_t>(to_submit, 0, flags, None)
        };
        let mut actions = Vec::new();
        // SAFETY: `cq` is held; no queue view is alive on this thread.
        unsafe { shared.collect(&mut Vec::new(), &mut actions) };
        let n = actions.len();
        // Written under `cq` only: a load and a store.
        let t = &shared.taken;
        t.store(t.load(Relaxed) + n as u64, Relaxed);
        drop(cq);
        run_actions(&mut actions);
        n
    }

    /// Submits `entry` as an op a future will [`poll`](UringHandle::poll), and returns its
    /// `user_data`. The SQE reaches the kernel at the owner's next park or maintenance pass
    /// (batched: one `io_uring_enter` for many ops). Returns `None` on a thread that does
    /// not own the ring.
    ///
    /// # Safety
    ///
    /// Every buffer, path, fd and struct that `entry` points to must stay valid and
    /// unmoved until the op's completion is reaped: held by the op's owner until `poll`
    /// returns `Ready`, or handed to [`abandon`](UringHandle::abandon) as part of its
    /// cleanup.
    pub(crate) unsafe fn submit(&self, entry: squeue::Entry) -> Option<u64> {
        // SAFETY: our caller's contract, which is `submit_lifecycle`'s.
        unsafe { self.submit_lifecycle(entry, Lifecycle::Submitted) }
    }

    /// Submits `entry` so that its completion runs `callback` when reaped — on the owner
    /// thread, or on a thread reaping for a stalled owner ([`reap_stalled`]) — no future,
    /// no task. `None` on a thread that does not own the ring.
    ///
    /// [`reap_stalled`]: UringHandle::reap_stalled
    ///
    /// # Safety
    ///
    /// As [`submit`](UringHandle::submit); `callback` may own the resources.
    pub(crate) unsafe fn submit_with_callback(
        &self,
        entry: squeue::Entry,
        callback: lifecycle::OnComplete,
    ) -> Option<u64> {
        // SAFETY: as `submit`; the callback owns what the entry points to.
        unsafe { self.submit_lifecycle(entry, Lifecycle::OnComplete(callback)) }
    }

    /// Submits `entry` as a multishot op: every completion runs `handler` on the reaping
    /// thread, until the first one without `IORING_CQE_F_MORE`, after which `handler` is
    /// dropped. `None` on a thread that does not own the ring.
    ///
    /// # Safety
    ///
    /// As [`submit`](UringHandle::submit), until the last completion: `handler` owns every
    /// resource that `entry` points to.
    pub(crate) unsafe fn submit_multishot(
        &self,
        entry: squeue::Entry,
        handler: lifecycle::OnEach,
    ) -> Option<u64> {
        // SAFETY: as `submit`, until the last completion; the handler owns the resources.
        unsafe { self.submit_lifecycle(entry, Lifecycle::Multishot(handler, 0)) }
    }

    /// The one submission path: records `lifecycle` in the op table under a new
    /// `user_data`, pushes `entry` with it and counts the op. `None` on a thread that does
    /// not own the ring (nothing is recorded then).
    ///
    /// # Safety
    ///
    /// As [`submit`](UringHandle::submit), for as long as `lifecycle` says the op may
    /// complete (its last completion, for a multishot op).
    unsafe fn submit_lifecycle(&self, entry: squeue::Entry, lifecycle: Lifecycle) -> Option<u64> {
        if !self.is_owner() {
            return None;
        }
        let ud = self.shared.ops.lock().insert(lifecycle);
        // SAFETY: owner thread (checked); the entry's memory is our caller's contract.
        unsafe { self.shared.push(&entry.user_data(ud)) };
        self.count_submit();
        Some(ud)
    }

    /// This ring's provided buffers for multishot receives, registered at the first call
    /// (`op::recv_multi`); `None` on a thread that does not own the ring, or if the kernel
    /// refused them.
    pub(crate) fn buf_ring(&self) -> Option<Arc<crate::op::recv_multi::BufRing>> {
        if !self.is_owner() {
            return None;
        }
        self.shared
            .bufs
            .get_or_init(|| {
                // SAFETY: the `BufRing` lives in `Shared`, after the ring's fd (which it
                // outlives), and `Drop for Uring` leaks it if ops may still be in the
                // kernel.
                match unsafe { crate::op::recv_multi::BufRing::register(&self.shared.ring) } {
                    Ok(bufs) => Some(Arc::new(bufs)),
                    Err(_) => {
                        crate::op::recv_multi::refused();
                        None
                    }
                }
            })
            .clone()
    }

    /// Whether the multishot op `user_data` may still complete.
    pub(crate) fn is_multishot_live(&self, user_data: u64) -> bool {
        self.shared.ops.lock().is_multishot_live(user_data)
    }

    /// Asks the kernel to cancel the multishot op `user_data` if it may still complete;
    /// its handler keeps running for the completions that follow, the last one included.
    pub(crate) fn cancel_multishot(&self, user_data: u64) {
        if self.shared.ops.lock().is_multishot_live(user_data) {
            self.shared.cancels.lock().push(user_data);
            UringUnparker {
                shared: self.shared.clone(),
            }
            .unpark();
        }
    }

    /// Polls the op `user_data`: its result, or `Pending` with `waker` stored.
    ///
    /// # Panics
    ///
    /// If `user_data` is not a live op of this ring owned by the caller.
    pub(crate) fn poll(&self, user_data: u64, waker: &Waker) -> Poll<CqeResult> {
        self.shared.ops.lock().poll(user_data, waker)
    }

    /// Gives up on an op before seeing its result: `cleanup` takes over the resources the
    /// kernel may still use and runs at the completion (at once if it already came), and
    /// the kernel is asked to cancel the op.
    pub(crate) fn abandon(&self, user_data: u64, cleanup: OnAbandon) {
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
    /// the kernel tears a ring down asynchronously. Completed ops whose futures have not
    /// polled yet keep their slots (handles stay valid after the ring is gone). If some op
    /// will not finish within about a second, or the kernel refuses `io_uring_enter` (a
    /// filter installed after the ring was built), what it uses (and the eventfd buffer) is
    /// leaked rather than freed, and the failure is reported on stderr. It never panics: it
    /// may run while a panic unwinds.
    fn drop(&mut self) {
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL);
        // SAFETY: owner's driver (`&mut self`), one queue view for this statement; a cancel
        // SQE points to no memory. A full queue is left alone: the waits below submit it.
        let _ = unsafe { self.shared.ring.submission_shared().push(&cancel_all) };
        for _ in 0..100 {
            if self.shared.ops.lock().in_kernel() == 0 && !self.shared.eventfd_armed.load(Relaxed) {
                return;
            }
            if let Err(e) = self.try_enter(1, Some(Duration::from_millis(10))) {
                eprintln!(
                    "weft: io_uring_enter failed while a ring shut down ({e}); the memory its \
                     {} in-flight ops may use is leaked",
                    self.shared.ops.lock().in_kernel()
                );
                break;
            }
            self.reap();
        }
        self.shared.ops.lock().leak_in_kernel();
        std::mem::forget(std::mem::take(&mut self.eventfd_buf));
        // In-flight receives may still write into the provided buffers.
        if let Some(Some(bufs)) = self.shared.bufs.get() {
            std::mem::forget(bufs.clone());
        }
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
