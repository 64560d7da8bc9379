//! The epoll driver: what a worker parks on when io_uring is unavailable, and the
//! readiness it serves (cached per socket, one-shot for pipes and pidfds).
//!
//! [`Epoll`] owns an epoll instance and an eventfd. It is a [`Driver`]: parking means
//! waiting in `epoll_pwait2` for a readiness event, the eventfd or the timeout, and another
//! thread wakes it by writing the eventfd (registered level-triggered, so a write is never
//! missed by a wait that starts after it). Timeouts are `timespec`s in nanoseconds
//! (`epoll_pwait2`, Linux 5.11+, called through `syscall(2)` so that an older C library
//! links too); a kernel that answers `ENOSYS` (or a seccomp filter that answers `EPERM`)
//! switches the process to `epoll_wait`, whose millisecond timeout is rounded *up*, so a
//! timer is never fired early on either path.
//!
//! # Park
//!
//! 1. Zero timeout (a busy worker's maintenance): if any readiness wait is registered,
//!    `epoll_pwait2` with a zero timeout and dispatch; no syscall otherwise. A pending
//!    unpark token is consumed.
//! 2. Otherwise announce `PARKED` (an unpark that came first turns this into step 1), wait
//!    in the kernel, return to `AWAKE`, dispatch the events and drain the eventfd if it was
//!    among them.
//!
//! `Unpark` swaps in `NOTIFIED` and writes the eventfd only if the owner was `PARKED`: a
//! busy owner costs its wakers no syscall. A token is never lost: an unpark either comes
//! before the `AWAKE → PARKED` exchange (which then fails) or sees `PARKED` and writes the
//! eventfd, which makes the wait return whether it has started yet or not. An eventfd write
//! whose wait had already ended by its timeout leaves the eventfd readable: the next park
//! returns at once and drains it (spurious, which the caller tolerates). The handshake is
//! written once, for the ring too (`handshake.rs`, `Handshake`), and model-checked with an abstract eventfd under loom.
//!
//! # Cached readiness (sockets)
//!
//! A socket registers once, at its first wait on a fallback worker, on that worker's
//! epoll ([`EpollHandle::register_fd`]): edge-triggered for `EPOLLIN | EPOLLOUT |
//! EPOLLRDHUP`, for good, so that no wait after it costs an `epoll_ctl`. The
//! [`Registration`] and the epoll's table share a slot: two readiness bits (read, write)
//! and an event count (the *tick*) in one atomic word, and the pending waits with their
//! wakers. The protocol:
//!
//! 1. An I/O call reads the tick ([`Registration::seen`]) and tries its syscall first.
//! 2. On `WouldBlock` it waits ([`Registration::ready`]): the wait clears the direction's
//!    bit if the tick is still the one read in step 1 (an event counted since may be
//!    newer than the syscall's answer, so its bit stays and the wait returns at once),
//!    then returns if the bit is set, else leaves its waker in the slot.
//! 3. An event (at the owner's park or maintenance pass, or a take-over) sets the bits it
//!    reports (an error or hang-up sets both), bumps the tick, and wakes the waits whose
//!    direction it set; the caller goes back to step 1.
//!
//! The bits are set before the slot's lock is taken, and a wait checks them under it, so
//! a wake-up is never lost. An edge that came before the registration is not lost either:
//! `EPOLL_CTL_ADD` reports the descriptor's state at once as an event.
//!
//! A wait may be polled on any thread: the descriptor stays on the epoll it registered
//! with, whose owner dispatches its events wherever the task runs now (the wake sends the
//! task to that owner's worker). A busy owner dispatches at its maintenance pass, a
//! stalled one is taken over (below; the slot's waits count as registered waits), and a
//! parked one is woken by the event itself. A `block_on` thread's wait on the slot is
//! dispatched the same way; it is not among the waits the scheduler's watch looks at, so
//! behind a stalled owner it waits for the stall to end. When the epoll goes (its worker's
//! driver is dropped), every slot is marked dead and its waits end: the caller then waits
//! some other way ([`Registration::is_alive`]).
//!
//! The registration's owner drops it before it closes the descriptor: the drop removes it
//! from the epoll (`EPOLL_CTL_DEL`, under the table's lock) and from the table, so that a
//! reused number starts afresh. An event that a take-over had already read when the slot
//! went is dispatched to whatever holds the number then: a spurious readiness, which costs
//! the next I/O call one `WouldBlock`.
//!
//! Edge-triggered and persistent, a socket's every state change reaches the epoll it
//! registered with, waited on or not (tokio's shape): a parked owner wakes for data that
//! no task is waiting for yet. The one-shot design before it (below, still used for pipes
//! and pidfds) paid an `EPOLL_CTL_MOD` per wait instead.
//!
//! # One-shot readiness (pipes, pidfds)
//!
//! [`ready`] waits for a descriptor to become readable or writable on the epoll of the
//! thread that polls it first (its [`current`] epoll: a fallback worker's), as a ring
//! thread uses a one-shot `POLL_ADD` on its ring. Registrations are `EPOLLONESHOT`: a wait
//! arms the descriptor (`EPOLL_CTL_MOD`, or `EPOLL_CTL_ADD` the first time this epoll sees
//! it), the event disarms it, and the next wait re-arms it with one `MOD`. Each epoll keeps
//! a table from descriptor to its waiters, so that a read and a write waiting on one socket
//! on one worker share the descriptor's single registration (armed with the union of their
//! events); an event wakes the waiters whose events it reports (an error or hang-up wakes
//! them all) and re-arms for those left.
//!
//! A one-shot wait on a descriptor with a persistent registration on the same epoll (a
//! socket's poll-based I/O, `weft::net`'s trait features) joins the table's entry without
//! arming it, which would make the registration one-shot: it looks at the descriptor's
//! state with a zero-timeout `poll(2)` under the table's lock, and otherwise is woken by
//! the registration's next edge.
//!
//! A descriptor closed while registered one-shot leaves every epoll by itself (the kernel
//! removes it with its last reference); a number reused by a new descriptor is found
//! unregistered by `MOD` (`ENOENT`) and added. A stale event (a duplicate of a closed
//! descriptor still armed) wakes the waiters of the same number spuriously, which
//! readiness loops tolerate: they retry their syscall and wait again.
//!
//! # Take-over of a stalled epoll
//!
//! Events wait in the kernel until the owner dispatches them, at its park or maintenance
//! pass; a task that computes without yielding stops both. So, as for a ring, another
//! thread may call [`EpollHandle::reap_stalled`]: if the owner is awake, has waits
//! registered and has not dispatched for [`STALL`], it takes the ready events with a
//! zero-timeout wait (an epoll may be waited on by several threads; a one-shot or
//! edge-triggered event goes to one of them) and wakes their waiters on its own thread. It never drains the
//! eventfd: level-triggered, its event stays for the owner, which may be about to park.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::driver::{Driver, Unpark};
use crate::handshake::Handshake;
pub use crate::uring::STALL;

/// The event key of the eventfd (a descriptor's key is its number, never negative).
const WAKE_KEY: u64 = u64::MAX;

/// Events a wait may ask for (`POLLIN`/`POLLOUT` have the same values as `EPOLLIN`/`EPOLLOUT`).
const ERR_EVENTS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// One readiness wait: what a [`Ready`] future and the table share.
struct Waiter {
    events: u32,
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// A descriptor this epoll has seen.
struct FdEntry {
    /// Keeps the descriptor open while waits are registered (a descriptor's number cannot
    /// be reused while it is in the table with waiters).
    fd: Option<Arc<OwnedFd>>,
    waiters: Vec<Arc<Waiter>>,
    /// The events armed in the kernel (0: disarmed, or never added).
    armed: u32,
    /// Whether this epoll is believed to hold a registration for the number.
    added: bool,
    /// The descriptor's persistent registration ([`Registration`]), if it has one here:
    /// then the kernel's registration is edge-triggered for good, never one-shot, and
    /// one-shot waiters on the entry are woken by its events without arming.
    slot: Option<Arc<Slot>>,
}

/// Readiness bits of a [`Slot`] (the low two bits of its state).
const READ: u32 = 1;
const WRITE: u32 = 2;
const BITS: u32 = READ | WRITE;

/// The events a persistent registration asks for (edge-triggered).
const PERSISTENT_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// What a readiness event reports for each direction: an error or hang-up readies both,
/// a read-side hang-up (`EPOLLRDHUP`) the read side.
fn directions(revents: u32) -> u32 {
    let mut dirs = 0;
    let read = (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32 | ERR_EVENTS;
    if revents & read != 0 {
        dirs |= READ;
    }
    if revents & (libc::EPOLLOUT as u32 | ERR_EVENTS) != 0 {
        dirs |= WRITE;
    }
    dirs
}

/// The direction bits of a wait for `events` (`POLLIN`, `POLLOUT`).
fn interest(events: i16) -> u32 {
    let mut dirs = 0;
    if events & libc::POLLIN != 0 {
        dirs |= READ;
    }
    if events & libc::POLLOUT != 0 {
        dirs |= WRITE;
    }
    dirs
}

/// One persistent registration's readiness: what a [`Registration`] and the epoll's
/// table share (see "Cached readiness" in the module docs).
struct Slot {
    /// `tick << 2 | bits`: the directions reported ready since a wait last cleared them,
    /// and how many events have reached the slot (wrapping in 30 bits).
    state: AtomicU32,
    waiters: Mutex<SlotWaiters>,
    /// `SlotWaiters::dead`, for [`Registration::is_alive`] to read without the lock (set
    /// under it, once, before the waits are woken).
    dead: AtomicBool,
}

#[derive(Default)]
struct SlotWaiters {
    /// `(id, directions, waker)` of each pending [`Readiness`].
    list: Vec<(u64, u32, Waker)>,
    next_id: u64,
    /// The epoll is gone: waits end at once (the caller waits elsewhere).
    dead: bool,
}

impl Slot {
    /// Records an event reporting `dirs` and takes the wakers it satisfies; how many.
    fn fire(&self, dirs: u32, wake: &mut Vec<Waker>) -> usize {
        // Bits first, then the wakers under the lock: a wait that checks the bits under
        // the lock either sees them or has left its waker for this to take.
        let _ = self.state.fetch_update(SeqCst, SeqCst, |s| {
            Some((s & !BITS).wrapping_add(1 << 2) | (s & BITS) | dirs)
        });
        if dirs == 0 {
            return 0;
        }
        let mut w = self.waiters.lock();
        let before = w.list.len();
        let mut i = 0;
        while i < w.list.len() {
            if w.list[i].1 & dirs != 0 {
                wake.push(w.list.swap_remove(i).2);
            } else {
                i += 1;
            }
        }
        before - w.list.len()
    }

    /// Marks the slot dead and takes every waker; how many.
    fn kill(&self, wake: &mut Vec<Waker>) -> usize {
        let mut w = self.waiters.lock();
        w.dead = true;
        self.dead.store(true, SeqCst);
        let n = w.list.len();
        wake.extend(w.list.drain(..).map(|(_, _, waker)| waker));
        n
    }
}

impl FdEntry {
    fn empty() -> FdEntry {
        FdEntry {
            fd: None,
            waiters: Vec::new(),
            armed: 0,
            added: false,
            slot: None,
        }
    }
}

/// The table's hasher: a descriptor number times a 64-bit odd constant (Fibonacci
/// hashing), which spreads small consecutive numbers over the high bits the table's probe
/// uses. The keys are the process's own descriptors, not input an attacker picks, so
/// SipHash's resistance to chosen keys buys nothing here, and every event's lookup paid
/// for it: the table's lookups were about 175 of the fallback's 5 700 user-space
/// instructions per `tcp_echo` round trip with SipHash, 40 with this (callgrind).
#[derive(Default)]
struct FdHasher(u64);

impl Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.0 = u64::from(n as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct Shared {
    epfd: OwnedFd,
    eventfd: OwnedFd,
    handshake: Handshake,
    table: Mutex<HashMap<RawFd, FdEntry, BuildHasherDefault<FdHasher>>>,
    /// Registered waits, so that a zero-timeout park with none makes no syscall.
    waiting: AtomicUsize,
    /// How many times the epoll went from no wait registered to one (a count that only
    /// grows), for the scheduler's watch.
    registered: AtomicU64,
    /// Milliseconds after `born` of the owner's last dispatch.
    last_dispatch: AtomicU64,
    born: Instant,
}

/// A [`Driver`] that parks in `epoll_pwait2` and serves readiness waits (see the module docs).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_reactor::epoll::Epoll;
/// use weft_reactor::{Driver, Unpark};
///
/// let mut epoll = Epoll::new().unwrap();
/// epoll.unparker().unpark();                     // a token before parking...
/// epoll.park(None).unwrap();                     // ...makes this return at once
/// epoll.park(Some(Duration::from_micros(200))).unwrap(); // times out
/// ```
pub struct Epoll {
    shared: Arc<Shared>,
    events: Vec<libc::epoll_event>,
    /// Kept between parks so that a dispatch allocates nothing.
    wake: Vec<Waker>,
    closing: Vec<Arc<OwnedFd>>,
}

/// The [`Unpark`] handle of an [`Epoll`]. Cheap to clone.
#[derive(Clone)]
pub struct EpollUnparker {
    shared: Arc<Shared>,
}

/// A handle to an [`Epoll`]'s readiness table, for [`ready`] on any thread.
#[derive(Clone)]
pub struct EpollHandle {
    shared: Arc<Shared>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

std::thread_local! {
    /// The epoll this thread owns (weak: its life is its driver's), where [`ready`] registers.
    static OWN: std::cell::RefCell<Weak<Shared>> = const { std::cell::RefCell::new(Weak::new()) };
}

/// The epoll the calling thread owns ([`Epoll::enable`]), if it has one that is alive.
pub fn current() -> Option<EpollHandle> {
    let shared = OWN.with(|o| o.borrow().upgrade())?;
    Some(EpollHandle { shared })
}

/// Whether `epoll_pwait2` is known to be unavailable (then `epoll_wait`, rounding up).
static NO_PWAIT2: AtomicBool = AtomicBool::new(false);

impl Epoll {
    /// A new epoll instance with its eventfd registered.
    ///
    /// # Errors
    ///
    /// If the epoll instance or the eventfd cannot be created (descriptor limits).
    pub fn new() -> io::Result<Epoll> {
        let named = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        // SAFETY: epoll_create1(2) takes no memory; it returns a new descriptor or -1.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
            .map_err(|e| named("weft: epoll_create1", e))?;
        // SAFETY: `epfd` is a fresh descriptor that nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        // SAFETY: eventfd(2) takes no memory; it returns a new descriptor or -1.
        let efd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
            .map_err(|e| named("weft: eventfd for the epoll driver", e))?;
        // SAFETY: `efd` is a fresh descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKE_KEY,
        };
        // SAFETY: both descriptors are open; `ev` is a live epoll_event.
        cvt(unsafe {
            libc::epoll_ctl(
                epfd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                eventfd.as_raw_fd(),
                &mut ev,
            )
        })
        .map_err(|e| named("weft: epoll_ctl(ADD) of the wake-up eventfd", e))?;
        Ok(Epoll {
            shared: Arc::new(Shared {
                epfd,
                eventfd,
                handshake: Handshake::new(),
                table: Mutex::new(HashMap::default()),
                waiting: AtomicUsize::new(0),
                registered: AtomicU64::new(0),
                last_dispatch: AtomicU64::new(0),
                born: Instant::now(),
            }),
            events: Vec::with_capacity(256),
            wake: Vec::new(),
            closing: Vec::new(),
        })
    }

    /// Makes this the calling thread's epoll: [`ready`] polled on this thread registers
    /// here. A worker calls this first thing on its own thread.
    pub fn enable(&mut self) {
        let weak = Arc::downgrade(&self.shared);
        OWN.with(|o| *o.borrow_mut() = weak);
    }

    /// A handle to the readiness table.
    pub fn handle(&self) -> EpollHandle {
        EpollHandle {
            shared: self.shared.clone(),
        }
    }

    /// Waits in the kernel for up to `timeout` (`None`: no limit) and dispatches what it
    /// returns; `true` if the eventfd was among the events.
    fn wait(&mut self, timeout: Option<Duration>) -> bool {
        self.events.clear();
        let cap = self.events.capacity() as libc::c_int;
        let n = epoll_wait(self.shared.epfd.as_raw_fd(), &mut self.events, cap, timeout);
        self.shared.mark_dispatch();
        if n <= 0 {
            // A timeout, or EINTR (a signal on this thread): the caller re-checks.
            return false;
        }
        // SAFETY: the kernel initialised the first `n <= capacity` entries.
        unsafe { self.events.set_len(n as usize) };
        self.shared
            .dispatch(&self.events, &mut self.wake, &mut self.closing, true)
    }
}

/// `epoll_pwait2` with a nanosecond timeout, or `epoll_wait` with milliseconds rounded up
/// where the kernel lacks it; the number of events, or -1.
fn epoll_wait(
    epfd: RawFd,
    events: &mut Vec<libc::epoll_event>,
    cap: libc::c_int,
    timeout: Option<Duration>,
) -> libc::c_int {
    if !NO_PWAIT2.load(Relaxed) {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `events` has room for `cap` entries; `tsp` is null or points to a live
        // timespec; the signal mask pointer is null (no mask change).
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epfd,
                events.as_mut_ptr(),
                cap,
                tsp,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        } as libc::c_int;
        if n >= 0 {
            return n;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => NO_PWAIT2.store(true, Relaxed),
            _ => return n,
        }
    }
    let ms = match timeout {
        None => -1,
        Some(t) => {
            // Rounded up: a wait shorter than asked would fire a timer early.
            let ms = t.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    };
    // SAFETY: `events` has room for `cap` entries.
    unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), cap, ms) }
}

impl Shared {
    /// Wakes the waiters the events report and re-arms for those left; `true` if the
    /// eventfd was among them (then drained).
    ///
    /// Only the owner drains the eventfd (`drain_wakeup`): another thread that took the
    /// eventfd's event (a take-over) leaves it readable, since the owner may be about to
    /// wait for it.
    fn dispatch(
        &self,
        events: &[libc::epoll_event],
        wake: &mut Vec<Waker>,
        closing: &mut Vec<Arc<OwnedFd>>,
        drain_wakeup: bool,
    ) -> bool {
        let mut woke_up = false;
        {
            let mut table = self.table.lock();
            for ev in events {
                let (key, revents) = (ev.u64, ev.events);
                if key == WAKE_KEY {
                    woke_up = true;
                    continue;
                }
                let fd = key as RawFd;
                let Some(entry) = table.get_mut(&fd) else {
                    continue;
                };
                if let Some(slot) = &entry.slot {
                    // Persistent: record the readiness, wake its waits and the one-shot
                    // waiters it satisfies; nothing to arm again.
                    let fired = slot.fire(directions(revents), wake);
                    self.waiting.fetch_sub(fired, Relaxed);
                    self.fire_waiters(entry, revents, wake);
                    continue;
                }
                // The one-shot event disarmed the registration.
                entry.armed = 0;
                self.fire_waiters(entry, revents, wake);
                if entry.waiters.is_empty() {
                    closing.extend(entry.fd.take());
                } else {
                    let want = entry.waiters.iter().fold(0, |a, w| a | w.events);
                    // On failure (the descriptor is gone) the waiters are woken to find out.
                    if self.arm(fd, entry, want).is_err() {
                        self.waiting.fetch_sub(entry.waiters.len(), Relaxed);
                        for w in entry.waiters.drain(..) {
                            w.fired.store(true, SeqCst);
                            wake.extend(w.waker.lock().take());
                        }
                        closing.extend(entry.fd.take());
                    }
                }
            }
        }
        // Descriptors are closed and tasks woken outside the table's lock.
        closing.clear();
        for w in wake.drain(..) {
            crate::wake::wake(w);
        }
        if woke_up && drain_wakeup {
            let mut buf = 0u64;
            // SAFETY: reads at most 8 bytes into a live u64 (non-blocking eventfd).
            unsafe { libc::read(self.eventfd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        }
        woke_up
    }

    /// Wakes (and removes) the one-shot waiters of `entry` that `revents` satisfies.
    fn fire_waiters(&self, entry: &mut FdEntry, revents: u32, wake: &mut Vec<Waker>) {
        let before = entry.waiters.len();
        entry.waiters.retain(|w| {
            if revents & (w.events | ERR_EVENTS) == 0 {
                return true;
            }
            w.fired.store(true, SeqCst);
            if let Some(waker) = w.waker.lock().take() {
                wake.push(waker);
            }
            false
        });
        let fired = before - entry.waiters.len();
        self.waiting.fetch_sub(fired, Relaxed);
    }

    /// Counts one more registered wait (and a move from none, for the scheduler's watch).
    fn add_waiting(&self) {
        if self.waiting.fetch_add(1, Relaxed) == 0 {
            self.registered.fetch_add(1, Relaxed);
        }
    }

    /// `epoll_ctl(op)` of `fd` for `events`, keyed by the descriptor's number.
    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        // SAFETY: `epfd` is open; `fd` is open (its caller holds it); `ev` is live.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    fn mark_dispatch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_dispatch.store(ms, Relaxed);
    }

    /// Arms `fd` for `events` (one-shot), adding it to the epoll if it is not there.
    fn arm(&self, fd: RawFd, entry: &mut FdEntry, events: u32) -> io::Result<()> {
        let events = events | libc::EPOLLONESHOT as u32;
        let (first, second) = if entry.added {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
        };
        let r = self.ctl_either(first, second, fd, events);
        entry.added = r.is_ok();
        entry.armed = if r.is_ok() { events } else { 0 };
        r
    }

    /// `ctl(first)`, then `ctl(second)` if the kernel answers that the number is (ADD) or
    /// is not (MOD) registered: a MOD of a number this epoll no longer holds (closed and
    /// reused), or an ADD of one it still holds (a duplicate kept it).
    fn ctl_either(
        &self,
        first: libc::c_int,
        second: libc::c_int,
        fd: RawFd,
        events: u32,
    ) -> io::Result<()> {
        match self.ctl(first, fd, events) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EEXIST)) => {
                self.ctl(second, fd, events)
            }
            r => r,
        }
    }
}

impl EpollHandle {
    /// Registers `waiter` for `fd`; `Err` if the kernel refuses the descriptor (then the
    /// waiter is not registered).
    fn register(&self, fd: &Arc<OwnedFd>, waiter: &Arc<Waiter>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        let mut table = self.shared.table.lock();
        let entry = table.entry(raw).or_insert_with(FdEntry::empty);
        if entry.slot.is_some() {
            // Persistent (edge-triggered) here: an edge that came before this wait will
            // not come again, so look at the descriptor's state now, under the table's
            // lock; an edge after the look finds the waiter in the entry.
            let mut pfd = libc::pollfd {
                fd: raw,
                events: waiter.events as i16,
                revents: 0,
            };
            // SAFETY: one live pollfd; a zero timeout does not block.
            if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
                waiter.fired.store(true, SeqCst);
                return Ok(());
            }
            entry.waiters.push(waiter.clone());
            self.shared.add_waiting();
            return Ok(());
        }
        if entry.fd.is_none() {
            // Nothing held the number open since the last wait on it went: it may name
            // another file now, whose registration (if any) is not the old one's, so what
            // the entry believes armed says nothing. Arm again (`arm` falls back from MOD
            // to ADD when the kernel dropped the old file's registration at its close).
            entry.fd = Some(fd.clone());
            entry.armed = 0;
        }
        let want = entry.armed | waiter.events;
        if want != entry.armed {
            if let Err(e) = self.shared.arm(raw, entry, want) {
                if entry.waiters.is_empty() {
                    entry.fd = None;
                }
                return Err(e);
            }
        }
        entry.waiters.push(waiter.clone());
        self.shared.add_waiting();
        Ok(())
    }

    /// Registers `fd` with this epoll for good, edge-triggered for reading, writing and
    /// the peer's hang-up: its events then set the [`Registration`]'s readiness, which
    /// [`Registration::ready`] waits on from any thread. The registration ends
    /// (`EPOLL_CTL_DEL`) when the `Registration` is dropped, which its owner must do
    /// before it closes `fd`; see "Cached readiness" in the module docs.
    ///
    /// # Errors
    ///
    /// The kernel's refusal of the descriptor (`EPERM` for a regular file, `EBADF`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::Future;
    /// use std::io::{ErrorKind, Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use std::task::{Context, Waker};
    /// use std::time::Duration;
    /// use weft_reactor::epoll::Epoll;
    /// use weft_reactor::Driver;
    ///
    /// let mut epoll = Epoll::new()?;
    /// let (mut a, mut b) = UnixStream::pair()?;
    /// a.set_nonblocking(true)?;
    /// let reg = epoll.handle().register_fd(&a)?;
    /// let mut buf = [0u8; 8];
    /// let seen = reg.seen(); // before the syscall
    /// assert_eq!(a.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    /// let mut wait = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(wait.as_mut().poll(&mut cx).is_pending());
    /// b.write_all(b"hi")?;
    /// epoll.park(Some(Duration::from_secs(5)))?; // dispatches the event
    /// assert!(wait.as_mut().poll(&mut cx).is_ready());
    /// drop(wait);
    /// assert_eq!(a.read(&mut buf)?, 2);
    /// drop(reg); // before `a` closes
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register_fd(&self, fd: &impl AsRawFd) -> io::Result<Registration> {
        let raw = fd.as_raw_fd();
        let slot = Arc::new(Slot {
            state: AtomicU32::new(0),
            waiters: Mutex::new(SlotWaiters::default()),
            dead: AtomicBool::new(false),
        });
        let mut table = self.shared.table.lock();
        let entry = table.entry(raw).or_insert_with(FdEntry::empty);
        // One-shot waiters holding the number open: the same file, registered here (MOD
        // turns it persistent, and reports the present state as an event); otherwise the
        // number may be new to this epoll or a reuse of one the kernel dropped (ADD).
        let (first, second) = if entry.fd.is_some() && entry.added {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
        };
        if let Err(e) = self
            .shared
            .ctl_either(first, second, raw, PERSISTENT_EVENTS)
        {
            if entry.waiters.is_empty() {
                table.remove(&raw);
            }
            return Err(e);
        }
        entry.added = true;
        entry.armed = 0;
        entry.slot = Some(slot.clone());
        Ok(Registration {
            shared: self.shared.clone(),
            slot,
            fd: raw,
        })
    }

    /// How many times this epoll went from no wait registered to one (a count that only
    /// grows): when it moves, a take-over deadline has begun that nobody may be watching.
    /// While waits stay registered, a watcher re-arms itself from [`takeover_deadline`]
    /// at each of its parks.
    ///
    /// [`takeover_deadline`]: EpollHandle::takeover_deadline
    pub fn registered(&self) -> u64 {
        self.shared.registered.load(Relaxed)
    }

    /// The word [`registered`](Self::registered) reads, for a caller that watches it after
    /// every poll and keeps the reference: it lives as long as the epoll.
    pub fn registered_word(&self) -> &std::sync::atomic::AtomicU64 {
        &self.shared.registered
    }

    /// When another thread should next look at this epoll in case its owner stalls: the
    /// owner's last dispatch plus [`STALL`]; `None` with no wait registered, or while the
    /// owner waits in the kernel (it dispatches what becomes ready). Read without a lock.
    pub fn takeover_deadline(&self) -> Option<Instant> {
        let shared = &*self.shared;
        if shared.waiting.load(Relaxed) == 0 || shared.handshake.is_parked() {
            return None;
        }
        let last = Duration::from_millis(shared.last_dispatch.load(Relaxed));
        Some(shared.born + last + STALL)
    }

    /// Dispatches this epoll's ready events on the calling thread if its owner is stalled:
    /// awake (not waiting in the kernel), with waits registered, and without a dispatch
    /// for [`STALL`]. Wakes run on the calling thread. The eventfd is left to the owner.
    /// Returns how many events it took (the eventfd's included).
    pub fn reap_stalled(&self) -> usize {
        let shared = &*self.shared;
        match self.takeover_deadline() {
            Some(at) if at <= Instant::now() => {}
            _ => return 0,
        }
        let mut events = Vec::with_capacity(64);
        let n = epoll_wait(
            shared.epfd.as_raw_fd(),
            &mut events,
            64,
            Some(Duration::ZERO),
        );
        if n <= 0 {
            return 0;
        }
        // SAFETY: the kernel initialised the first `n <= 64` entries.
        unsafe { events.set_len(n as usize) };
        let (mut wake, mut closing) = (Vec::new(), Vec::new());
        shared.dispatch(&events, &mut wake, &mut closing, false);
        n as usize
    }

    /// Removes `waiter` (a dropped wait), if it is still registered.
    fn deregister(&self, raw: RawFd, waiter: &Arc<Waiter>) {
        let mut table = self.shared.table.lock();
        let Some(entry) = table.get_mut(&raw) else {
            return;
        };
        let before = entry.waiters.len();
        entry.waiters.retain(|w| !Arc::ptr_eq(w, waiter));
        let removed = before - entry.waiters.len();
        self.shared.waiting.fetch_sub(removed, Relaxed);
        // An armed registration nobody waits on fires once more and is ignored.
        let fd = if entry.waiters.is_empty() {
            entry.fd.take()
        } else {
            None
        };
        drop(table);
        drop(fd);
    }
}

impl Driver for Epoll {
    type Unpark = EpollUnparker;

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            // Step 1.
            self.shared.handshake.awake();
            if self.shared.waiting.load(Relaxed) > 0 {
                self.wait(Some(Duration::ZERO));
            } else {
                // Nothing to dispatch, but the pass counts: a wait registered next is not
                // taken over before its own `STALL` has passed.
                self.shared.mark_dispatch();
            }
            return Ok(());
        }
        // Step 2.
        let shared = self.shared.clone();
        if shared.handshake.park(|| self.wait(timeout)).is_none()
            && shared.waiting.load(Relaxed) > 0
        {
            self.wait(Some(Duration::ZERO));
        }
        Ok(())
    }

    fn unparker(&self) -> EpollUnparker {
        EpollUnparker {
            shared: self.shared.clone(),
        }
    }
}

impl Unpark for EpollUnparker {
    fn unpark(&self) {
        let eventfd = self.shared.eventfd.as_raw_fd();
        self.shared.handshake.unpark(|| {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. EAGAIN (the
            // counter is saturated) means a wake-up is pending anyway.
            unsafe { libc::write(eventfd, (&one as *const u64).cast(), 8) };
        });
    }
}

/// Waits until `fd` reports one of `events` (`POLLIN`, `POLLOUT`; errors and hang-ups count
/// as ready) on `epoll`'s table; see the module docs.
pub fn ready(epoll: EpollHandle, fd: Arc<OwnedFd>, events: i16) -> Ready {
    Ready {
        epoll,
        fd,
        events: (events as u16) as u32,
        waiter: None,
    }
}

/// See [`ready`].
pub struct Ready {
    epoll: EpollHandle,
    fd: Arc<OwnedFd>,
    events: u32,
    waiter: Option<Arc<Waiter>>,
}

impl Future for Ready {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match &this.waiter {
            Some(w) => {
                if w.fired.load(SeqCst) {
                    return Poll::Ready(Ok(()));
                }
                *w.waker.lock() = Some(cx.waker().clone());
                // An event between the check and the store took no waker: look again.
                if w.fired.load(SeqCst) {
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            None => {
                let w = Arc::new(Waiter {
                    events: this.events,
                    fired: AtomicBool::new(false),
                    waker: Mutex::new(Some(cx.waker().clone())),
                });
                this.epoll.register(&this.fd, &w)?;
                let fired = w.fired.load(SeqCst);
                this.waiter = Some(w);
                if fired {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        if let Some(w) = &self.waiter {
            if !w.fired.load(SeqCst) {
                self.epoll.deregister(self.fd.as_raw_fd(), w);
            }
        }
    }
}

/// A descriptor's persistent registration with one epoll, from
/// [`EpollHandle::register_fd`]: the readiness its events reported, and the waits on it.
/// Dropping it removes the descriptor from the epoll (`EPOLL_CTL_DEL`), which must come
/// before the descriptor is closed (see "Cached readiness" in the module docs).
pub struct Registration {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    fd: RawFd,
}

/// A [`Registration`]'s event count, read before a syscall ([`Registration::seen`]), so
/// that a wait after the syscall failed clears only readiness that the syscall saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen(u32);

impl Registration {
    /// The events seen so far; read it before the syscall whose `WouldBlock` leads to
    /// [`ready`](Registration::ready).
    pub fn seen(&self) -> Seen {
        Seen(self.slot.state.load(SeqCst) >> 2)
    }

    /// Whether the epoll is still there to report events (it goes with its worker). Once
    /// not, [`ready`](Registration::ready) returns at once and the caller waits some
    /// other way.
    pub fn is_alive(&self) -> bool {
        !self.slot.dead.load(SeqCst)
    }

    /// Waits until the descriptor is ready for `events` (`POLLIN`, `POLLOUT`) after a
    /// syscall that began after `seen` failed with `WouldBlock`: clears that readiness
    /// unless an event came since `seen` (then it returns at once, and the caller tries
    /// again), and waits for the next event that reports it. `None` (nothing was read
    /// before the syscall) clears nothing: a readiness already recorded returns at once.
    /// Errors and hang-ups count as ready both ways. Returns at once if the epoll is gone.
    pub fn ready(&self, events: i16, seen: Option<Seen>) -> Readiness<'_> {
        Readiness {
            reg: self,
            dirs: interest(events),
            seen,
            id: None,
        }
    }
}

/// See [`Registration::ready`].
pub struct Readiness<'a> {
    reg: &'a Registration,
    dirs: u32,
    seen: Option<Seen>,
    /// The id of this wait's entry among the slot's waiters, once polled.
    id: Option<u64>,
}

impl Future for Readiness<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let slot = &this.reg.slot;
        if let (None, Some(seen)) = (this.id, this.seen) {
            // The syscall failed after `seen`: what it saw is not ready, so clear it,
            // unless an event came since, which may be newer than the syscall.
            let mut cur = slot.state.load(SeqCst);
            while cur >> 2 == seen.0 && cur & this.dirs != 0 {
                match slot
                    .state
                    .compare_exchange(cur, cur & !this.dirs, SeqCst, SeqCst)
                {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        let mut w = slot.waiters.lock();
        if w.dead || slot.state.load(SeqCst) & this.dirs != 0 {
            if let Some(id) = this.id.take() {
                let before = w.list.len();
                w.list.retain(|(i, _, _)| *i != id);
                let removed = before - w.list.len();
                this.reg.shared.waiting.fetch_sub(removed, Relaxed);
            }
            return Poll::Ready(Ok(()));
        }
        match this.id {
            Some(id) => match w.list.iter_mut().find(|(i, _, _)| *i == id) {
                Some((_, _, waker)) => waker.clone_from(cx.waker()),
                // An event took the waker: its readiness was cleared again since (by
                // another wait after a newer syscall); wait for the next event.
                None => {
                    w.list.push((id, this.dirs, cx.waker().clone()));
                    this.reg.shared.add_waiting();
                }
            },
            None => {
                let id = w.next_id;
                w.next_id += 1;
                w.list.push((id, this.dirs, cx.waker().clone()));
                this.id = Some(id);
                this.reg.shared.add_waiting();
            }
        }
        Poll::Pending
    }
}

impl Drop for Readiness<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut w = self.reg.slot.waiters.lock();
            let before = w.list.len();
            w.list.retain(|(i, _, _)| *i != id);
            let removed = before - w.list.len();
            self.reg.shared.waiting.fetch_sub(removed, Relaxed);
        }
    }
}

impl Drop for Registration {
    /// Removes the descriptor from the epoll (it is still open: see the type's docs) and
    /// wakes the one-shot waiters that shared its entry, which find out and wait again.
    fn drop(&mut self) {
        let entry = {
            let mut table = self.shared.table.lock();
            match table.get(&self.fd) {
                Some(e) if e.slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &self.slot)) => {
                    // Under the lock, so that no registration of the same number can
                    // come between the removal and the `DEL`.
                    let _ = self.shared.ctl(libc::EPOLL_CTL_DEL, self.fd, 0);
                    table.remove(&self.fd)
                }
                _ => None,
            }
        };
        let mut wake = Vec::new();
        if let Some(e) = entry {
            self.shared.waiting.fetch_sub(e.waiters.len(), Relaxed);
            for w in &e.waiters {
                w.fired.store(true, SeqCst);
                wake.extend(w.waker.lock().take());
            }
        }
        let n = self.slot.kill(&mut wake);
        self.shared.waiting.fetch_sub(n, Relaxed);
        for w in wake {
            crate::wake::wake(w);
        }
    }
}

impl Drop for Epoll {
    /// Wakes every registered wait: nobody dispatches this epoll any more, so each finds
    /// its wait over, retries its syscall and waits again wherever it is polled next
    /// (a persistent registration's waits some other way: its slot is dead).
    fn drop(&mut self) {
        let mut wake = Vec::new();
        let entries: Vec<FdEntry> = {
            let mut table = self.shared.table.lock();
            table.drain().map(|(_, e)| e).collect()
        };
        for e in &entries {
            for w in &e.waiters {
                w.fired.store(true, SeqCst);
                wake.extend(w.waker.lock().take());
            }
            if let Some(slot) = &e.slot {
                slot.kill(&mut wake);
            }
        }
        self.shared.waiting.store(0, Relaxed);
        drop(entries);
        for w in wake {
            crate::wake::wake(w);
        }
    }
}

impl fmt::Debug for Epoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Epoll")
            .field("epfd", &self.shared.epfd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for EpollUnparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpollUnparker").finish_non_exhaustive()
    }
}

impl fmt::Debug for EpollHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpollHandle").finish_non_exhaustive()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .field("seen", &self.seen())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Readiness<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("fd", &self.reg.fd)
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready")
            .field("fd", &self.fd.as_raw_fd())
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::task::Wake;
    use std::time::Instant;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    fn pipe() -> (Arc<OwnedFd>, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array on success.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }).unwrap();
        // SAFETY: fresh descriptors owned by nothing else.
        unsafe {
            (
                Arc::new(OwnedFd::from_raw_fd(fds[0])),
                OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    fn write_byte(fd: &OwnedFd) {
        // SAFETY: writes one byte from a live array.
        let n = unsafe { libc::write(fd.as_raw_fd(), [7u8].as_ptr().cast(), 1) };
        assert_eq!(n, 1);
    }

    #[test]
    fn token_before_park_returns_at_once_and_is_consumed() {
        let mut e = Epoll::new().unwrap();
        e.unparker().unpark();
        e.unparker().unpark();
        e.park(None).unwrap();
        // The second unpark merged into the first: this one times out.
        e.park(Some(Duration::from_micros(100))).unwrap();
        assert!(!e.shared.handshake.is_parked());
    }

    #[test]
    fn unpark_from_another_thread_ends_an_untimed_park() {
        for _ in 0..200 {
            let mut e = Epoll::new().unwrap();
            let u = e.unparker();
            let t = std::thread::spawn(move || u.unpark());
            e.park(None).unwrap();
            t.join().unwrap();
        }
    }

    #[test]
    fn a_timed_park_is_never_early() {
        let mut e = Epoll::new().unwrap();
        for us in [50u64, 250, 1500] {
            let d = Duration::from_micros(us);
            let start = Instant::now();
            e.park(Some(d)).unwrap();
            assert!(start.elapsed() >= d, "woke before {d:?}");
        }
    }

    #[test]
    fn a_rounded_up_millisecond_wait_is_never_early() {
        let mut events = Vec::with_capacity(4);
        let e = Epoll::new().unwrap();
        NO_PWAIT2.store(true, Relaxed);
        let d = Duration::from_micros(1_200);
        let start = Instant::now();
        epoll_wait(e.shared.epfd.as_raw_fd(), &mut events, 4, Some(d));
        NO_PWAIT2.store(false, Relaxed);
        assert!(start.elapsed() >= d);
    }

    #[test]
    fn readiness_wakes_the_waiter_and_a_second_wait_rearms() {
        let mut e = Epoll::new().unwrap();
        let (r, w) = pipe();
        for round in 0..3 {
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let mut cx = Context::from_waker(&waker);
            let mut fut = Box::pin(ready(e.handle(), r.clone(), libc::POLLIN));
            assert!(fut.as_mut().poll(&mut cx).is_pending(), "round {round}");
            e.park(Some(Duration::ZERO)).unwrap();
            assert!(!flag.0.load(SeqCst));
            write_byte(&w);
            e.park(Some(Duration::from_secs(5))).unwrap();
            assert!(flag.0.load(SeqCst), "round {round}: not woken");
            assert!(fut.as_mut().poll(&mut cx).is_ready());
            let mut b = [0u8; 8];
            // SAFETY: reads into a live 8-byte buffer.
            let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
            assert_eq!(n, 1);
        }
        assert_eq!(e.shared.waiting.load(SeqCst), 0);
    }

    #[test]
    fn a_read_and_a_write_wait_share_one_descriptor() {
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let rflag = Arc::new(Flag(AtomicBool::new(false)));
        let rwaker = Waker::from(rflag.clone());
        let mut rfut = Box::pin(ready(e.handle(), a.clone(), libc::POLLIN));
        assert!(
            rfut.as_mut()
                .poll(&mut Context::from_waker(&rwaker))
                .is_pending()
        );
        // Writable at once: the write wait fires, the read wait stays armed.
        let wflag = Arc::new(Flag(AtomicBool::new(false)));
        let wwaker = Waker::from(wflag.clone());
        let mut wfut = Box::pin(ready(e.handle(), a.clone(), libc::POLLOUT));
        let _ = wfut.as_mut().poll(&mut Context::from_waker(&wwaker));
        e.park(Some(Duration::from_secs(5))).unwrap();
        assert!(wflag.0.load(SeqCst));
        assert!(!rflag.0.load(SeqCst));
        write_byte(&b);
        e.park(Some(Duration::from_secs(5))).unwrap();
        assert!(rflag.0.load(SeqCst));
    }

    #[test]
    fn a_dropped_wait_is_deregistered() {
        let mut e = Epoll::new().unwrap();
        let (r, w) = pipe();
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut fut = Box::pin(ready(e.handle(), r.clone(), libc::POLLIN));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        drop(fut);
        assert_eq!(e.shared.waiting.load(SeqCst), 0);
        // The table no longer holds the descriptor open.
        assert_eq!(Arc::strong_count(&r), 1);
        write_byte(&w);
        // The stale event is ignored.
        e.park(Some(Duration::from_millis(1))).unwrap();
    }

    #[test]
    fn a_reused_descriptor_number_is_armed_again() {
        let mut e = Epoll::new().unwrap();
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut cx = Context::from_waker(&waker);
        let (r, w) = pipe();
        let number = r.as_raw_fd();
        let mut fut = Box::pin(ready(e.handle(), r.clone(), libc::POLLIN));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        // A wait dropped while armed, then its descriptor closed: the number is free.
        drop(fut);
        drop((r, w));
        let (r2, w2) = pipe();
        assert_eq!(r2.as_raw_fd(), number, "the lowest free number is reused");
        let mut fut = Box::pin(ready(e.handle(), r2.clone(), libc::POLLIN));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        write_byte(&w2);
        e.park(Some(Duration::from_secs(5))).unwrap();
        assert!(
            fut.as_mut().poll(&mut cx).is_ready(),
            "the new file's event came"
        );
    }

    fn socketpair() -> (Arc<OwnedFd>, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two descriptors into the array on success.
        cvt(unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                0,
                fds.as_mut_ptr(),
            )
        })
        .unwrap();
        // SAFETY: fresh descriptors owned by nothing else.
        unsafe {
            (
                Arc::new(OwnedFd::from_raw_fd(fds[0])),
                OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    /// `read(2)` of up to 64 bytes: the count, or -1 (`EAGAIN` when empty).
    fn read_some(fd: &OwnedFd) -> isize {
        let mut b = [0u8; 64];
        // SAFETY: reads into a live 64-byte buffer.
        unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 64) }
    }

    #[test]
    fn a_registration_waits_after_would_block_and_wakes_on_the_next_event() {
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        for round in 0..3 {
            let seen = reg.seen();
            assert_eq!(read_some(&a), -1, "round {round}: nothing to read yet");
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let mut cx = Context::from_waker(&waker);
            let mut fut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
            e.park(Some(Duration::ZERO)).unwrap();
            assert!(fut.as_mut().poll(&mut cx).is_pending(), "round {round}");
            assert_eq!(e.shared.waiting.load(SeqCst), 1);
            write_byte(&b);
            e.park(Some(Duration::from_secs(5))).unwrap();
            assert!(flag.0.load(SeqCst), "round {round}: not woken");
            assert!(fut.as_mut().poll(&mut cx).is_ready());
            assert_eq!(read_some(&a), 1);
        }
        assert_eq!(e.shared.waiting.load(SeqCst), 0);
    }

    #[test]
    fn a_registration_stays_registered_across_waits() {
        // The kernel's registration stays: a wait after `WouldBlock` touches only the
        // slot, and the eventfd aside the epoll reports nothing while nobody writes.
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        e.park(Some(Duration::from_millis(1))).unwrap(); // the registration's first event
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..3 {
            let seen = reg.seen();
            assert_eq!(read_some(&a), -1);
            let mut fut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            write_byte(&b);
            e.park(Some(Duration::from_secs(5))).unwrap();
            assert!(fut.as_mut().poll(&mut cx).is_ready());
            assert_eq!(read_some(&a), 1);
        }
        // Still the one registration: an ADD of the number is refused as a duplicate.
        let r = e
            .shared
            .ctl(libc::EPOLL_CTL_ADD, a.as_raw_fd(), PERSISTENT_EVENTS);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EEXIST));
    }

    #[test]
    fn an_event_after_the_snapshot_is_not_cleared() {
        // The data came (and its event was dispatched) between the snapshot and the
        // syscall's `WouldBlock` as the wait sees it: the wait must not sleep on it.
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        e.park(Some(Duration::from_millis(1))).unwrap();
        let seen = reg.seen();
        write_byte(&b);
        e.park(Some(Duration::from_secs(5))).unwrap();
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut fut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        );
    }

    #[test]
    fn a_read_and_a_write_wait_on_one_registration() {
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        e.park(Some(Duration::from_millis(1))).unwrap();
        let rflag = Arc::new(Flag(AtomicBool::new(false)));
        let rwaker = Waker::from(rflag.clone());
        let seen = reg.seen();
        assert_eq!(read_some(&a), -1);
        let mut rfut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
        assert!(
            rfut.as_mut()
                .poll(&mut Context::from_waker(&rwaker))
                .is_pending()
        );
        // Writable since the registration: the write wait returns at once.
        let wwaker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut wfut = Box::pin(reg.ready(libc::POLLOUT, None));
        assert!(
            wfut.as_mut()
                .poll(&mut Context::from_waker(&wwaker))
                .is_ready()
        );
        assert!(!rflag.0.load(SeqCst));
        write_byte(&b);
        e.park(Some(Duration::from_secs(5))).unwrap();
        assert!(rflag.0.load(SeqCst));
    }

    #[test]
    fn a_one_shot_wait_on_a_registered_descriptor_keeps_it_persistent() {
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        e.park(Some(Duration::from_millis(1))).unwrap();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(ready(e.handle(), a.clone(), libc::POLLIN));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        write_byte(&b);
        e.park(Some(Duration::from_secs(5))).unwrap();
        assert!(flag.0.load(SeqCst), "the edge woke the one-shot waiter");
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        // Already readable: a new one-shot wait returns at once.
        let mut fut = Box::pin(ready(e.handle(), a.clone(), libc::POLLIN));
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        assert_eq!(read_some(&a), 1);
        // The registration still reports edges (it was not turned one-shot).
        let seen = reg.seen();
        assert_eq!(read_some(&a), -1);
        let mut rfut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
        assert!(rfut.as_mut().poll(&mut cx).is_pending());
        write_byte(&b);
        e.park(Some(Duration::from_secs(5))).unwrap();
        assert!(rfut.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_dropped_registration_leaves_the_epoll_and_its_number_registers_again() {
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let number = a.as_raw_fd();
        let reg = e.handle().register_fd(&*a).unwrap();
        drop(reg);
        // Deregistered while open: the number is free in this epoll.
        let r = e.shared.ctl(libc::EPOLL_CTL_MOD, number, PERSISTENT_EVENTS);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert!(e.shared.table.lock().is_empty());
        drop(b);
        // A new socket at the same number. Not by closing `a` and hoping the kernel hands
        // the number out again: other tests of this process open descriptors at the same
        // time and can take it first. `dup2` closes the old socket and puts the new one in
        // its place in one step; `a` then owns the number, now the new socket.
        let (fresh, b2) = socketpair();
        // SAFETY: both numbers are open descriptors this test owns; `dup2` replaces the
        // one `a` owns, which `a` goes on owning (and closes when dropped).
        let r = unsafe { libc::dup2(fresh.as_raw_fd(), number) };
        assert_eq!(r, number);
        drop(fresh);
        let a2 = a;
        let reg = e.handle().register_fd(&*a2).unwrap();
        e.park(Some(Duration::from_millis(1))).unwrap();
        let seen = reg.seen();
        assert_eq!(read_some(&a2), -1);
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        write_byte(&b2);
        e.park(Some(Duration::from_secs(5))).unwrap();
        assert!(
            fut.as_mut().poll(&mut cx).is_ready(),
            "the new socket's event"
        );
    }

    #[test]
    fn a_dropped_wait_leaves_the_registration() {
        let mut e = Epoll::new().unwrap();
        let (a, _b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        e.park(Some(Duration::from_millis(1))).unwrap();
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let seen = reg.seen();
        let mut fut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        assert_eq!(e.shared.waiting.load(SeqCst), 1);
        drop(fut);
        assert_eq!(e.shared.waiting.load(SeqCst), 0);
        assert!(reg.slot.waiters.lock().list.is_empty());
    }

    #[test]
    fn a_dropped_epoll_ends_the_waits_of_its_registrations() {
        let e = Epoll::new().unwrap();
        let (a, _b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let seen = reg.seen();
        let mut fut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(reg.is_alive());
        drop(e);
        assert!(flag.0.load(SeqCst), "woken by the drop");
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        assert!(!reg.is_alive());
    }

    #[test]
    fn a_stalled_owners_registration_events_are_reaped_by_another_thread() {
        let mut e = Epoll::new().unwrap();
        let (a, b) = socketpair();
        let reg = e.handle().register_fd(&*a).unwrap();
        e.park(Some(Duration::ZERO)).unwrap();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let seen = reg.seen();
        assert_eq!(read_some(&a), -1);
        let mut fut = Box::pin(reg.ready(libc::POLLIN, Some(seen)));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        write_byte(&b);
        // The owner does not dispatch (a long poll): once `STALL` has passed, another
        // thread takes the event.
        let h = e.handle();
        std::thread::sleep(STALL + Duration::from_millis(1));
        assert!(std::thread::spawn(move || h.reap_stalled()).join().unwrap() > 0);
        assert!(flag.0.load(SeqCst));
    }

    #[test]
    fn current_is_the_enabled_epoll_of_this_thread() {
        assert!(std::thread::spawn(|| current().is_none()).join().unwrap());
        let mut e = Epoll::new().unwrap();
        e.enable();
        assert!(Arc::ptr_eq(&current().unwrap().shared, &e.shared));
        drop(e);
        assert!(current().is_none());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use crate::handshake::Handshake;
    use crate::loom::sync::{self, Arc, Condvar, Mutex};

    /// An abstract eventfd: a counter that `signal` bumps and `wait` blocks on and drains.
    struct EventFd {
        count: Mutex<()>,
        set: crate::loom::sync::AtomicUsize,
        cv: Condvar,
    }

    impl EventFd {
        fn new() -> Self {
            EventFd {
                count: Mutex::new(()),
                set: crate::loom::sync::AtomicUsize::new(0),
                cv: Condvar::new(),
            }
        }
        fn signal(&self) {
            use crate::loom::sync::Ordering::SeqCst;
            let _g = sync::lock(&self.count);
            self.set.store(1, SeqCst);
            self.cv.notify_one();
        }
        /// An untimed `epoll_wait` on the eventfd alone.
        fn wait(&self) {
            use crate::loom::sync::Ordering::SeqCst;
            let mut g = sync::lock(&self.count);
            while self.set.load(SeqCst) == 0 {
                sync::wait(&self.cv, &mut g);
            }
            self.set.store(0, SeqCst);
        }
    }

    /// No lost wake-up: an unpark sent to a thread that parks without a timeout lets it
    /// return, whatever the interleaving.
    #[test]
    fn epoll_park_unpark_no_lost_wakeup() {
        loom::model(|| {
            let hs = Arc::new(Handshake::new());
            let efd = Arc::new(EventFd::new());
            let (h2, e2) = (hs.clone(), efd.clone());
            let t = loom::thread::spawn(move || h2.unpark(|| e2.signal()));
            hs.park(|| efd.wait());
            t.join().unwrap();
        });
    }

    /// A token left while the owner was awake is consumed by the next park, which does not
    /// block; a second unpark after that park is seen by the park after it.
    #[test]
    fn epoll_two_parks_two_unparks() {
        loom::model(|| {
            let hs = Arc::new(Handshake::new());
            let efd = Arc::new(EventFd::new());
            let gate = Arc::new(crate::loom::sync::AtomicUsize::new(0));
            let (h2, e2, g2) = (hs.clone(), efd.clone(), gate.clone());
            let t = loom::thread::spawn(move || {
                use crate::loom::sync::Ordering::SeqCst;
                h2.unpark(|| e2.signal());
                while g2.load(SeqCst) == 0 {
                    loom::thread::yield_now();
                }
                h2.unpark(|| e2.signal());
            });
            hs.park(|| efd.wait());
            gate.store(1, crate::loom::sync::Ordering::SeqCst);
            hs.park(|| efd.wait());
            t.join().unwrap();
        });
    }
}
