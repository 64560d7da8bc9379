//! `IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT` (Linux 5.19+): one submission that
//! accepts connection after connection, each handed to an [`AcceptSink`] on the reaping
//! thread, until the kernel ends it (an error, or a cancel from dropping the
//! [`Multishot`](super::multishot::Multishot) handle).
//!
//! No peer address comes back (the kernel would write every one into the same buffer);
//! ask the socket (`getpeername(2)`). [`supported`] says whether the kernel has the flag;
//! where it does not, use the one-shot [`Accept`](super::accept::Accept).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use io_uring::{opcode, squeue, types};

use super::CqeResult;
use super::multishot::MultishotOperation;

/// Receives what a multishot accept accepts. It must take ownership of every connection
/// (queue it, or drop it to close it): nobody else sees them.
pub trait AcceptSink: Send + Sync + 'static {
    /// One completion: a new connection, or the error that ended the accept. `last` is
    /// `true` on the final completion (the accept is over; a connection may come with it).
    fn accepted(&self, conn: io::Result<OwnedFd>, last: bool);
}

/// A multishot `accept4(fd, NULL, NULL, flags)`; see the module docs.
#[derive(Debug)]
pub struct AcceptMulti<F, S> {
    fd: F,
    flags: i32,
    sink: S,
}

impl<F: AsRawFd + Send + Sync + 'static, S: AcceptSink> AcceptMulti<F, S> {
    /// A multishot accept on the listening socket `fd` (kept open while the kernel may
    /// accept), each new socket made with `flags`, handed to `sink`.
    pub fn new(fd: F, flags: i32, sink: S) -> AcceptMulti<F, S> {
        AcceptMulti { fd, flags, sink }
    }
}

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;
static SUPPORTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether the running kernel accepts `IORING_ACCEPT_MULTISHOT`: its release is 5.19 or
/// later (the opcode probe cannot tell a flag), and no multishot accept has been refused
/// with `EINVAL`. Decided once per process.
pub fn supported() -> bool {
    match SUPPORTED.load(Relaxed) {
        YES => true,
        NO => false,
        _ => {
            let yes = release_at_least(5, 19);
            SUPPORTED.store(if yes { YES } else { NO }, Relaxed);
            yes
        }
    }
}

/// Parses `uname(2)`'s release ("6.8.0-51-generic") as major.minor.
pub(crate) fn release_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: all-zero bytes are a valid `utsname` (arrays of chars).
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable `utsname`.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return false;
    }
    let release: String = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

// SAFETY: the entry names no memory (no address buffer) and only `fd`, which the operation
// keeps open until its last completion.
unsafe impl<F: AsRawFd + Send + Sync + 'static, S: AcceptSink> MultishotOperation
    for AcceptMulti<F, S>
{
    fn sqe(&mut self) -> squeue::Entry {
        opcode::AcceptMulti::new(types::Fd(self.fd.as_raw_fd()))
            .flags(self.flags)
            .build()
    }

    fn each(&self, cqe: CqeResult, last: bool) {
        let conn = cqe.result.map(|fd| {
            // SAFETY: a successful accept returns a new descriptor that nothing else
            // knows of; this is its only owner.
            unsafe { OwnedFd::from_raw_fd(fd as i32) }
        });
        if let Err(e) = &conn {
            if e.raw_os_error() == Some(libc::EINVAL) {
                // A kernel without the multishot flag refuses the entry.
                SUPPORTED.store(NO, Relaxed);
            }
        }
        self.sink.accepted(conn, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Driver;
    use crate::op::multishot::Multishot;
    use crate::uring::Uring;
    use parking_lot::Mutex;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn parses_the_release() {
        assert!(release_at_least(2, 6));
        assert!(!release_at_least(999, 0));
    }

    #[derive(Default)]
    struct Seen {
        conns: Vec<OwnedFd>,
        errors: Vec<io::Error>,
        last: bool,
        dropped: bool,
    }

    struct Sink(Arc<Mutex<Seen>>);
    impl AcceptSink for Sink {
        fn accepted(&self, conn: io::Result<OwnedFd>, last: bool) {
            let mut s = self.0.lock();
            match conn {
                Ok(fd) => s.conns.push(fd),
                Err(e) => s.errors.push(e),
            }
            s.last |= last;
        }
    }
    impl Drop for Sink {
        fn drop(&mut self) {
            self.0.lock().dropped = true;
        }
    }

    fn park_until(ring: &mut Uring, mut done: impl FnMut() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < give_up, "the ring never delivered");
            ring.park(Some(Duration::from_millis(20))).unwrap();
        }
    }

    #[test]
    fn accepts_many_then_ends_on_cancel_and_drops_the_op() {
        assert!(supported(), "this test needs Linux 5.19+");
        let mut ring = Uring::new(16).unwrap_or_else(|e| panic!("this test needs io_uring: {e}"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let fd = OwnedFd::from(listener.try_clone().unwrap());
        let op = AcceptMulti::new(fd, libc::SOCK_CLOEXEC, Sink(seen.clone()));
        let Ok(handle) = Multishot::submit(op) else {
            panic!("this thread owns a ring")
        };
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        park_until(&mut ring, || seen.lock().conns.len() == 3);
        assert!(
            handle.is_live(),
            "one submission, still armed after 3 accepts"
        );
        assert_eq!(ring.in_flight(), 1);
        assert!(!seen.lock().last);
        drop(handle);
        park_until(&mut ring, || seen.lock().dropped);
        let s = seen.lock();
        assert!(s.last, "the cancel's completion is the last");
        assert_eq!(s.errors.len(), 1);
        assert_eq!(s.errors[0].raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(
            ring.in_flight(),
            0,
            "the slot is freed at the last completion"
        );
        drop(clients);
    }
}
