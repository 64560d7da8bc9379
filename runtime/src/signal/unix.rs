//! Unix signals: [`signal`] makes a [`Signal`] listener for a [`SignalKind`].
//!
//! See the [parent module](super) for the mechanism (a counting `sigaction` handler, a
//! pipe, and the process's readiness thread) and why it is not a `signalfd`.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::poller::Poller;

/// Signal numbers 1 to 64 (Linux's `SIGRTMAX`).
const SLOTS: usize = 65;

/// One signal's state: written by the handler (counter), the readiness thread
/// (`dispatched`) and listeners (`listeners`).
struct Slot {
    /// Deliveries since the handler was installed (the handler's only write).
    delivered: AtomicU64,
    /// The counter's value at the last dispatch (readiness thread only).
    dispatched: AtomicU64,
    /// Whether weft's handler is installed (set under `INSTALL`).
    installed: AtomicBool,
    /// The handler that was installed before weft's, as `sa_sigaction` (0 = `SIG_DFL`,
    /// 1 = `SIG_IGN`: neither is called).
    prev: AtomicUsize,
    /// Whether `prev` takes `siginfo_t` (`SA_SIGINFO`).
    prev_siginfo: AtomicBool,
    /// Waiting listeners, by id.
    listeners: Mutex<Vec<(u64, Waker)>>,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            delivered: AtomicU64::new(0),
            dispatched: AtomicU64::new(0),
            installed: AtomicBool::new(false),
            prev: AtomicUsize::new(libc::SIG_DFL),
            prev_siginfo: AtomicBool::new(false),
            listeners: Mutex::new(Vec::new()),
        }
    }
}

static SLOT: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// Serialises handler installation.
static INSTALL: Mutex<()> = Mutex::new(());
/// The pipe the handler writes to (the readiness thread's); -1 until the first install.
static PIPE: AtomicI32 = AtomicI32::new(-1);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The signal handler: async-signal-safe work only (atomics, `write(2)`, a call to the
/// previous handler), and `errno` is preserved for the interrupted code.
extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid for the thread's
    // life.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(slot) = usize::try_from(sig).ok().and_then(|s| SLOT.get(s)) {
        slot.delivered.fetch_add(1, SeqCst);
        let fd = PIPE.load(SeqCst);
        if fd >= 0 {
            let b = sig as u8;
            // SAFETY: writes one byte from a live local to the poller's pipe, which lives
            // as long as the process. EAGAIN (pipe full) means a wake-up is pending.
            unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
        }
        let prev = slot.prev.load(SeqCst);
        if prev != libc::SIG_DFL && prev != libc::SIG_IGN {
            if slot.prev_siginfo.load(SeqCst) {
                // SAFETY: `prev` was installed with SA_SIGINFO, so it has this signature;
                // we pass on the kernel's arguments unchanged.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(prev) };
                f(sig, info, ctx);
            } else {
                // SAFETY: `prev` was installed without SA_SIGINFO: a plain handler.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev) };
                f(sig);
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Wakes the listeners of every signal whose counter moved since the last call. Called by
/// the readiness thread after it drained the pipe.
pub(crate) fn dispatch() {
    for slot in SLOT.iter() {
        if !slot.installed.load(SeqCst) {
            continue;
        }
        let now = slot.delivered.load(SeqCst);
        if slot.dispatched.swap(now, SeqCst) == now {
            continue;
        }
        let wakers = std::mem::take(&mut *slot.listeners.lock());
        for (_, w) in wakers {
            // A listener's waker may panic: it must not take the readiness thread down.
            weft_reactor::wake::wake(w);
        }
    }
}

/// A kind of signal, by number: the common ones by name, any other with
/// [`from_raw`](SignalKind::from_raw).
///
/// # Examples
///
/// ```
/// use weft_runtime::signal::unix::SignalKind;
///
/// assert_eq!(SignalKind::user_defined1().as_raw_value(), libc::SIGUSR1);
/// assert_eq!(SignalKind::from_raw(libc::SIGWINCH), SignalKind::window_change());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(libc::c_int);

impl SignalKind {
    /// The signal numbered `signum` (checked by [`signal`], not here).
    pub const fn from_raw(signum: libc::c_int) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw_value(&self) -> libc::c_int {
        self.0
    }

    /// `SIGALRM`: a timer set by `alarm(2)` expired.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGCHLD`: a child stopped or exited. ([`process`](crate::process) does not need
    /// it: children are watched through pidfds.)
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGHUP`: the terminal hung up (daemons read it as "reload").
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGINT`: Ctrl-C.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGPIPE`: a write to a pipe with no reader.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }

    /// `SIGQUIT`: Ctrl-\.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGTERM`: a polite request to end.
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGUSR1`.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGWINCH`: the terminal's size changed.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }
}

impl From<libc::c_int> for SignalKind {
    fn from(signum: libc::c_int) -> SignalKind {
        SignalKind(signum)
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalKind({})", self.0)
    }
}

/// Signals whose handling would break the process (or that cannot be caught).
fn forbidden(sig: libc::c_int) -> Option<&'static str> {
    Some(match sig {
        libc::SIGKILL => "SIGKILL cannot be caught",
        libc::SIGSTOP => "SIGSTOP cannot be caught",
        libc::SIGSEGV => "SIGSEGV reports a fault that must not be resumed",
        libc::SIGBUS => "SIGBUS reports a fault that must not be resumed",
        libc::SIGILL => "SIGILL reports a fault that must not be resumed",
        libc::SIGFPE => "SIGFPE reports a fault that must not be resumed",
        libc::SIGTRAP => "SIGTRAP belongs to debuggers",
        _ => return None,
    })
}

/// Installs weft's handler for `sig` once per process; see the parent module.
fn install(sig: libc::c_int) -> io::Result<()> {
    let slot = &SLOT[sig as usize];
    if slot.installed.load(SeqCst) {
        return Ok(());
    }
    let _g = INSTALL.lock();
    if slot.installed.load(SeqCst) {
        return Ok(());
    }
    let poller = Poller::get()?;
    PIPE.store(poller.signal_write_fd(), SeqCst);
    // SAFETY: a zeroed `sigaction` is a valid value (no handler, empty flags) that we fill
    // in below.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `sigaction` overwrites it with the old action.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler as *const () as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a live sigset_t owned by `new`.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // Mark installed first, so the first delivery after `sigaction` is dispatched.
    slot.installed.store(true, SeqCst);
    // SAFETY: both pointers are to live sigaction structs; `handler` does only
    // async-signal-safe work (see its docs).
    if unsafe { libc::sigaction(sig, &new, &mut old) } != 0 {
        slot.installed.store(false, SeqCst);
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot install a handler for signal {sig}: {e}"),
        ));
    }
    slot.prev_siginfo
        .store(old.sa_flags & libc::SA_SIGINFO != 0, SeqCst);
    slot.prev.store(old.sa_sigaction, SeqCst);
    Ok(())
}

/// Listens for `kind`: every delivery of it to the process from now on completes one
/// [`Signal::recv`] (deliveries between two `recv`s coalesce).
///
/// The first listener for a signal installs weft's handler for it, which stays for the
/// life of the process (a handler installed before keeps being called); signals nobody
/// listens for keep their disposition. Works inside or outside a runtime, on either driver.
///
/// # Errors
///
/// [`InvalidInput`](io::ErrorKind::InvalidInput) for a number out of range (1 to 64) or a
/// signal that cannot or must not be handled (`SIGKILL`, `SIGSTOP`, `SIGSEGV`, `SIGBUS`,
/// `SIGILL`, `SIGFPE`, `SIGTRAP`), naming it; the system's error if the handler or the
/// process's readiness thread cannot be set up.
///
/// # Examples
///
/// ```
/// use weft_runtime::signal::unix::{signal, SignalKind};
///
/// let rt = weft_runtime::Runtime::new()?;
/// rt.block_on(async {
///     let mut usr1 = signal(SignalKind::user_defined1())?;
///     // SAFETY: raising a signal at ourselves; a handler is installed for it.
///     unsafe { libc::raise(libc::SIGUSR1) };
///     usr1.recv().await;
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let sig = kind.0;
    if sig <= 0 || sig as usize >= SLOTS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {sig} is out of range (1 to {})", SLOTS - 1),
        ));
    }
    if let Some(why) = forbidden(sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {sig} cannot be listened for: {why}"),
        ));
    }
    install(sig)?;
    Ok(Signal {
        sig,
        id: NEXT_ID.fetch_add(1, SeqCst),
        seen: SLOT[sig as usize].delivered.load(SeqCst),
    })
}

/// A listener for one signal; see [`signal`].
pub struct Signal {
    sig: libc::c_int,
    id: u64,
    /// The delivery count this listener has consumed.
    seen: u64,
}

impl Signal {
    /// Waits for the next delivery not yet seen by this listener.
    ///
    /// Always `Some(())`: weft's signal handling never shuts down (the `Option` keeps
    /// tokio's signature). Cancel-safe: a dropped `recv` loses no delivery.
    pub async fn recv(&mut self) -> Option<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery not yet seen: `Ready(Some(()))` consumes every delivery
    /// so far, `Pending` stores `cx`'s waker.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let slot = &SLOT[self.sig as usize];
        let coop = std::task::ready!(crate::coop::poll_proceed(cx));
        let check = |me: &mut Signal| {
            let now = slot.delivered.load(SeqCst);
            if now != me.seen {
                me.seen = now;
                true
            } else {
                false
            }
        };
        if check(self) {
            coop.made_progress();
            return Poll::Ready(Some(()));
        }
        {
            let mut l = slot.listeners.lock();
            match l.iter_mut().find(|(id, _)| *id == self.id) {
                Some((_, w)) => w.clone_from(cx.waker()),
                None => l.push((self.id, cx.waker().clone())),
            }
        }
        if check(self) {
            coop.made_progress();
            return Poll::Ready(Some(()));
        }
        Poll::Pending
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        SLOT[self.sig as usize]
            .listeners
            .lock()
            .retain(|(id, _)| *id != self.id);
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("signal", &self.sig)
            .field("seen", &self.seen)
            .finish()
    }
}
