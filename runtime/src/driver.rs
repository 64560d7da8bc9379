//! A worker's drivers, assembled in one place: which I/O driver it parks on, its timing
//! wheel around that, and the handle that wakes it.
//!
//! 1. [`worker_drivers`] resolves the mode ([`UringMode`](crate::UringMode), overridden by
//!    `WEFT_IO_DRIVER`) and builds one I/O driver per worker: a ring
//!    ([`Uring::new_disabled`], enabled later by its worker), or — with io_uring disabled,
//!    or refused by the kernel under `Auto` (the reason said once on stderr) — an epoll
//!    instance ([`Epoll`]). `Required` turns a refusal into a build error naming the cause
//!    and the fix.
//! 2. Each I/O driver is wrapped in its worker's [`TimeDriver`] (the wheel), which parks
//!    the I/O driver with the exact time to the earliest deadline: an `EXT_ARG` timespec
//!    on a ring, an `epoll_pwait2` timespec on the fallback, both in nanoseconds.
//! 3. [`enable`](IoDriver::enable), called first thing on the worker's own thread, makes
//!    that thread the ring's owner (where its ops are submitted) or the epoll's (where
//!    readiness waits polled there register).
//!
//! Fallback file operations run on the blocking pool (`fs/backend/blocking.rs`); sockets,
//! pipes and pidfds wait for readiness on a worker's epoll (a socket on the one it first
//! waited on, registered once; pipes and pidfds on the polling worker's); a `block_on`
//! thread (no driver of its own) waits on a socket's registration if it has one, else on
//! the process-wide poller thread (`poller.rs`).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use weft_reactor::epoll::{Epoll, EpollHandle, EpollUnparker};
use weft_reactor::uring::{Uring, UringHandle, UringUnparker};
use weft_reactor::{Driver, TimeDriver, Unpark};

use crate::io::{IO_DRIVER_ENV, UringMode};

/// Submission-queue slots per ring (the completion queue has twice as many).
const RING_ENTRIES: u32 = 256;

/// What a worker parks on: its timing wheel around its I/O driver.
pub(crate) type WorkerDriver = TimeDriver<IoDriver>;

/// A worker's I/O driver.
pub(crate) enum IoDriver {
    Uring(Uring),
    Epoll(Epoll),
}

/// Wakes an [`IoDriver`].
#[derive(Clone, Debug)]
pub(crate) enum IoUnparker {
    Uring(UringUnparker),
    Epoll(EpollUnparker),
}

impl Unpark for IoUnparker {
    fn unpark(&self) {
        match self {
            IoUnparker::Uring(u) => u.unpark(),
            IoUnparker::Epoll(u) => u.unpark(),
        }
    }
}

impl Driver for IoDriver {
    type Unpark = IoUnparker;

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            IoDriver::Uring(d) => d.park(timeout),
            IoDriver::Epoll(d) => d.park(timeout),
        }
    }

    fn unparker(&self) -> IoUnparker {
        match self {
            IoDriver::Uring(d) => IoUnparker::Uring(d.unparker()),
            IoDriver::Epoll(d) => IoUnparker::Epoll(d.unparker()),
        }
    }
}

impl IoDriver {
    /// The ring, if this driver has one.
    pub(crate) fn ring(&self) -> Option<UringHandle> {
        match self {
            IoDriver::Uring(d) => Some(d.handle()),
            IoDriver::Epoll(_) => None,
        }
    }

    /// The epoll, if this driver is one.
    pub(crate) fn epoll(&self) -> Option<EpollHandle> {
        match self {
            IoDriver::Uring(_) => None,
            IoDriver::Epoll(d) => Some(d.handle()),
        }
    }

    /// Step 3: makes the calling thread the owner of the ring or the epoll.
    pub(crate) fn enable(&mut self) -> io::Result<()> {
        match self {
            IoDriver::Uring(d) => d.enable(),
            IoDriver::Epoll(d) => {
                d.enable();
                Ok(())
            }
        }
    }
}

impl fmt::Debug for IoDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoDriver::Uring(d) => d.fmt(f),
            IoDriver::Epoll(d) => d.fmt(f),
        }
    }
}

/// Steps 1 and 2 for `n` workers; see the module docs.
pub(crate) fn worker_drivers(n: usize, mode: UringMode) -> io::Result<Vec<WorkerDriver>> {
    Ok(io_drivers(n, mode)?
        .into_iter()
        .map(TimeDriver::new)
        .collect())
}

fn io_drivers(n: usize, mode: UringMode) -> io::Result<Vec<IoDriver>> {
    let epolls = |n| (0..n).map(|_| Epoll::new().map(IoDriver::Epoll)).collect();
    if mode == UringMode::Disabled {
        return epolls(n);
    }
    let mut rings = Vec::with_capacity(n);
    for _ in 0..n {
        match Uring::new_disabled(RING_ENTRIES) {
            Ok(r) => rings.push(IoDriver::Uring(r)),
            Err(e) if mode == UringMode::Required => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "weft: io_uring is required (Builder::io_uring or \
                         {IO_DRIVER_ENV}=uring) but unavailable: {e}; to run without it, \
                         use UringMode::Auto or set {IO_DRIVER_ENV}=fallback"
                    ),
                ));
            }
            Err(e) => {
                report_fallback(&e);
                return epolls(n);
            }
        }
    }
    Ok(rings)
}

static REPORTED: AtomicBool = AtomicBool::new(false);

/// Says once per process why the fallback driver is in use.
fn report_fallback(e: &io::Error) {
    if !REPORTED.swap(true, Relaxed) {
        eprintln!(
            "weft: {e}; falling back to the epoll driver (file I/O on the blocking pool). \
             Set {IO_DRIVER_ENV}=fallback to choose it without this message."
        );
    }
}
