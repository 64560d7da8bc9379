//! Which I/O driver a thread parks on: its own io_uring, or — when io_uring is unavailable
//! or disabled — a plain thread parker, with file operations on the blocking pool.
//!
//! A runtime asks for one ring per worker ([`UringMode::Auto`], the default). If the kernel
//! refuses (old kernel, seccomp, `kernel.io_uring_disabled`, locked-memory limit), `Auto`
//! falls back for every worker and says why, once, on stderr; [`UringMode::Required`] makes
//! that a `Builder::build` error naming the cause and the fix; [`UringMode::Disabled`] never
//! tries. The `WEFT_IO_DRIVER` environment variable (`uring`, `fallback` or `auto`)
//! overrides the builder, for users and CI.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use weft_reactor::uring::{Uring, UringHandle, UringUnparker};
use weft_reactor::{Driver, ThreadParker, ThreadUnparker, Unpark};

/// The environment variable that chooses the I/O driver: `uring` (require io_uring),
/// `fallback` (never use it) or `auto`.
pub const IO_DRIVER_ENV: &str = "WEFT_IO_DRIVER";

/// Submission-queue slots per ring (the completion queue has twice as many).
const RING_ENTRIES: u32 = 256;

/// Whether a runtime uses io_uring; see [`Builder::io_uring`](crate::Builder::io_uring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UringMode {
    /// Use io_uring if the kernel allows it, else fall back and say why on stderr.
    #[default]
    Auto,
    /// Use io_uring or fail to build, with an error naming the cause and the fix.
    Required,
    /// Never use io_uring: workers park on a condition variable and file operations run on
    /// the blocking pool.
    Disabled,
}

impl UringMode {
    /// The builder's choice, unless `WEFT_IO_DRIVER` says otherwise.
    pub(crate) fn resolve(self) -> io::Result<UringMode> {
        match std::env::var(IO_DRIVER_ENV) {
            Err(_) => Ok(self),
            Ok(v) => match v.trim() {
                "uring" | "io_uring" => Ok(UringMode::Required),
                "fallback" => Ok(UringMode::Disabled),
                "auto" | "" => Ok(UringMode::Auto),
                other => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{IO_DRIVER_ENV}={other:?}: expected `uring`, `fallback` or `auto`"),
                )),
            },
        }
    }
}

/// A thread's I/O driver.
pub(crate) enum IoDriver {
    Uring(Uring),
    Park(ThreadParker),
}

/// Wakes an [`IoDriver`].
#[derive(Clone, Debug)]
pub(crate) enum IoUnparker {
    Uring(UringUnparker),
    Park(ThreadUnparker),
}

impl Unpark for IoUnparker {
    fn unpark(&self) {
        match self {
            IoUnparker::Uring(u) => u.unpark(),
            IoUnparker::Park(u) => u.unpark(),
        }
    }
}

impl Driver for IoDriver {
    type Unpark = IoUnparker;

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            IoDriver::Uring(d) => d.park(timeout),
            IoDriver::Park(d) => d.park(timeout),
        }
    }

    fn unparker(&self) -> IoUnparker {
        match self {
            IoDriver::Uring(d) => IoUnparker::Uring(d.unparker()),
            IoDriver::Park(d) => IoUnparker::Park(d.unparker()),
        }
    }
}

impl IoDriver {
    /// The ring, if this driver has one.
    pub(crate) fn ring(&self) -> Option<UringHandle> {
        match self {
            IoDriver::Uring(d) => Some(d.handle()),
            IoDriver::Park(_) => None,
        }
    }

    /// Makes the calling thread the owner of the ring (workers call this first thing).
    pub(crate) fn enable(&mut self) -> io::Result<()> {
        match self {
            IoDriver::Uring(d) => d.enable(),
            IoDriver::Park(_) => Ok(()),
        }
    }
}

impl fmt::Debug for IoDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoDriver::Uring(d) => d.fmt(f),
            IoDriver::Park(d) => d.fmt(f),
        }
    }
}

/// One (disabled) ring per worker, or parkers: see the module docs.
pub(crate) fn worker_drivers(n: usize, mode: UringMode) -> io::Result<Vec<IoDriver>> {
    let parkers = |n| {
        (0..n)
            .map(|_| IoDriver::Park(ThreadParker::new()))
            .collect()
    };
    if mode == UringMode::Disabled {
        return Ok(parkers(n));
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
                return Ok(parkers(n));
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
            "weft: {e}; falling back to the thread-parker driver (file I/O on the blocking \
             pool). Set {IO_DRIVER_ENV}=fallback to choose it without this message."
        );
    }
}

thread_local! {
    /// The ring this thread owns and parks on, if any.
    static RING: RefCell<Option<UringHandle>> = const { RefCell::new(None) };
}

/// Makes `ring` this thread's ring until the guard drops.
pub(crate) fn set_thread_ring(ring: Option<UringHandle>) -> ThreadRingGuard {
    ThreadRingGuard(RING.with(|r| std::mem::replace(&mut *r.borrow_mut(), ring)))
}

pub(crate) struct ThreadRingGuard(Option<UringHandle>);

impl Drop for ThreadRingGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        let old = RING.with(|r| std::mem::replace(&mut *r.borrow_mut(), prev));
        drop(old);
    }
}
