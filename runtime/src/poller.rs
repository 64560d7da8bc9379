//! The process-wide readiness thread: one thread in `poll(2)`, started on first use, that
//! serves what no worker's driver waits on — the signal pipe for [`signal`](crate::signal)
//! (on every driver), orphaned children, and the socket, pipe and pidfd waits of threads
//! that are not workers (a `block_on` thread owns neither a ring nor an epoll).
//!
//! # Protocol
//!
//! 1. A waiter registers `(fd, events)` with a one-shot interest and kicks the thread
//!    through its eventfd; the registration holds a clone of the fd's `Arc`, so the thread
//!    never polls a closed (or reused) descriptor.
//! 2. The thread builds its `pollfd` list from the table (eventfd, signal pipe, then every
//!    registration) and sleeps in `poll(2)` with no timeout.
//! 3. When an fd is ready, its registration leaves the table, its interest is marked fired
//!    and its waker woken; a readable signal pipe is drained and
//!    `signal::unix::dispatch` wakes the listeners whose counters moved.
//!    A dropped waiter removes its registration and kicks the thread.
//! 4. An orphaned child (a [`Child`](crate::process::Child) dropped before it was
//!    reaped) is a registration too: when its pidfd becomes readable the thread reaps it,
//!    so no zombie is left and no thread is spent per child.
//!
//! The thread holds no runtime and is never joined: a runtime's drop does not wait on it,
//! and it does not keep the process alive (the process ends when `main` returns). It costs
//! one thread for the process's life, not a blocking-pool slot.
//!
//! Rejected: a `poll(2)` call on the blocking pool per wait (a child that never exits
//! would hold a pool thread forever, and a runtime's drop waits for its pool). Fallback
//! workers do not come here: each parks on its own epoll (`weft_reactor::epoll`), where
//! the waits polled on it register, so a wait costs no thread hop. A `block_on` thread
//! keeps this thread rather than an epoll of its own: what it registered would be served
//! only while it sits in `block_on`, and a future polled there may move to a task.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// The thread's shared state.
pub(crate) struct Poller {
    /// Written to wake the thread after the table changed.
    kick: OwnedFd,
    /// The signal pipe's read end (the write end is the signal handler's).
    sig_read: OwnedFd,
    /// The signal pipe's write end; see [`Poller::signal_write_fd`].
    sig_write: OwnedFd,
    table: Mutex<Table>,
}

struct Table {
    next: u64,
    entries: HashMap<u64, Entry>,
}

enum Entry {
    /// A one-shot wait for readiness.
    Wait {
        fd: Arc<OwnedFd>,
        events: i16,
        interest: Arc<Interest>,
    },
    /// A child nobody waits for: reaped when its pidfd is readable.
    Orphan {
        pidfd: Arc<OwnedFd>,
        child: std::process::Child,
    },
}

/// What a registration and its waiter share.
struct Interest {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Poller {
    /// The process's poller, started on first call.
    ///
    /// # Errors
    ///
    /// If the eventfd, the pipe or the thread cannot be created (descriptor or thread
    /// limits); a later call tries again.
    pub(crate) fn get() -> io::Result<&'static Poller> {
        static POLLER: OnceLock<&'static Poller> = OnceLock::new();
        static INIT: Mutex<()> = Mutex::new(());
        if let Some(p) = POLLER.get() {
            return Ok(p);
        }
        let _g = INIT.lock();
        if let Some(p) = POLLER.get() {
            return Ok(p);
        }
        let p: &'static Poller = Box::leak(Box::new(Poller::new()?));
        std::thread::Builder::new()
            .name("weft-poller".into())
            .spawn(move || p.run())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start weft-poller: {e}")))?;
        let _ = POLLER.set(p);
        Ok(p)
    }

    fn new() -> io::Result<Poller> {
        // SAFETY: eventfd(2) returns a new descriptor or -1 (checked by `cvt`).
        let kick = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `kick` is a fresh descriptor nothing else owns.
        let kick = unsafe { OwnedFd::from_raw_fd(kick) };
        let mut fds = [0; 2];
        // SAFETY: pipe2(2) writes two descriptors into the 2-element array on success.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        // SAFETY: both are fresh descriptors from pipe2, owned by nothing else.
        let (sig_read, sig_write) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Poller {
            kick,
            sig_read,
            sig_write,
            table: Mutex::new(Table {
                next: 0,
                entries: HashMap::new(),
            }),
        })
    }

    /// Where the signal handler writes a byte after counting a delivery. It lives as long
    /// as the process (the poller is never freed).
    pub(crate) fn signal_write_fd(&self) -> RawFd {
        self.sig_write.as_raw_fd()
    }

    fn kick(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. EAGAIN (counter
        // saturated) means a wake-up is pending anyway.
        unsafe { libc::write(self.kick.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn insert(&self, entry: Entry) -> u64 {
        let token = {
            let mut t = self.table.lock();
            let token = t.next;
            t.next += 1;
            t.entries.insert(token, entry);
            token
        };
        self.kick();
        token
    }

    fn remove(&self, token: u64) {
        let removed = self.table.lock().entries.remove(&token);
        if removed.is_some() {
            self.kick();
        }
        drop(removed);
    }

    /// Hands `child` (not yet reaped) to the thread, which reaps it once it exits.
    pub(crate) fn adopt(&self, pidfd: Arc<OwnedFd>, child: std::process::Child) {
        self.insert(Entry::Orphan { pidfd, child });
    }

    /// Steps 2 and 3 of the module docs, forever.
    fn run(&self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut tokens: Vec<u64> = Vec::new();
        let mut wake: Vec<Waker> = Vec::new();
        let pollfd = |fd: RawFd, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        loop {
            fds.clear();
            tokens.clear();
            fds.push(pollfd(self.kick.as_raw_fd(), libc::POLLIN));
            fds.push(pollfd(self.sig_read.as_raw_fd(), libc::POLLIN));
            {
                let t = self.table.lock();
                for (&token, e) in &t.entries {
                    let (fd, events) = match e {
                        Entry::Wait { fd, events, .. } => (fd.as_raw_fd(), *events),
                        Entry::Orphan { pidfd, .. } => (pidfd.as_raw_fd(), libc::POLLIN),
                    };
                    fds.push(pollfd(fd, events));
                    tokens.push(token);
                }
            }
            // A removed registration's `Arc` may close its descriptor only after the kick
            // that ends this call.
            // SAFETY: `fds` is a live array of `fds.len()` pollfds; every descriptor in it
            // is kept open by the table (or is the poller's own) until this call returns.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                // EINTR (a signal landed on this thread) or ENOMEM: look again.
                continue;
            }
            let mut buf = [0u8; 64];
            if fds[0].revents != 0 {
                // SAFETY: reads at most 8 bytes into a live 64-byte buffer.
                unsafe { libc::read(self.kick.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            }
            if fds[1].revents != 0 {
                // SAFETY: reads at most 64 bytes into a live 64-byte buffer (nonblocking).
                while unsafe { libc::read(self.sig_read.as_raw_fd(), buf.as_mut_ptr().cast(), 64) }
                    > 0
                {}
                crate::signal::unix::dispatch();
            }
            let mut reaped = Vec::new();
            {
                let mut t = self.table.lock();
                for (i, &token) in tokens.iter().enumerate() {
                    if fds[i + 2].revents == 0 {
                        continue;
                    }
                    match t.entries.remove(&token) {
                        Some(Entry::Wait { interest, fd, .. }) => {
                            interest.fired.store(true, SeqCst);
                            if let Some(w) = interest.waker.lock().take() {
                                wake.push(w);
                            }
                            reaped.push(fd);
                        }
                        Some(Entry::Orphan { pidfd, mut child }) => match child.try_wait() {
                            Ok(None) => {
                                t.entries.insert(token, Entry::Orphan { pidfd, child });
                            }
                            // Reaped, or not ours to reap any more (ECHILD): done.
                            _ => reaped.push(pidfd),
                        },
                        None => {}
                    }
                }
            }
            // Descriptors are closed and tasks woken outside the table's lock.
            drop(reaped);
            for w in wake.drain(..) {
                // Caught: a panicking waker must not end the thread every waiter relies on.
                weft_reactor::wake::wake(w);
            }
        }
    }
}

/// Waits until `fd` reports one of `events` (`POLLIN`, `POLLOUT`; errors and hang-ups
/// count as ready) through the poller thread.
pub(crate) fn ready(fd: Arc<OwnedFd>, events: i16) -> Ready {
    Ready {
        fd: Some(fd),
        events,
        token: None,
        interest: Arc::new(Interest {
            fired: AtomicBool::new(false),
            waker: Mutex::new(None),
        }),
    }
}

/// See [`ready`].
pub(crate) struct Ready {
    fd: Option<Arc<OwnedFd>>,
    events: i16,
    token: Option<u64>,
    interest: Arc<Interest>,
}

impl Future for Ready {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.interest.fired.load(SeqCst) {
            self.token = None;
            return Poll::Ready(Ok(()));
        }
        *self.interest.waker.lock() = Some(cx.waker().clone());
        if self.token.is_none() {
            let poller = Poller::get()?;
            let fd = self.fd.take().expect("registered once");
            let token = poller.insert(Entry::Wait {
                fd,
                events: self.events,
                interest: self.interest.clone(),
            });
            self.token = Some(token);
        }
        if self.interest.fired.load(SeqCst) {
            self.token = None;
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        if let Some(token) = self.token {
            if !self.interest.fired.load(SeqCst) {
                // A registered `Ready` means the poller started, so this cannot fail.
                if let Ok(p) = Poller::get() {
                    p.remove(token);
                }
            }
        }
    }
}
