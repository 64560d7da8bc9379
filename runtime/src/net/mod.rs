//! Sockets: TCP ([`TcpListener`], [`TcpStream`], [`TcpSocket`]), UDP ([`UdpSocket`]) and
//! Unix streams ([`UnixListener`], [`UnixStream`]), with tokio's names and owned buffers.
//!
//! Every method takes `&self`; every type is `Send + Sync + Unpin + 'static`, so a stream
//! may be read by one task and written by another, on any workers (work stealing moves
//! tasks with sockets like any other).
//!
//! # How an operation runs
//!
//! Stream reads and writes, on a thread that owns a ring (a worker), are ring ops
//! (`ring.rs`): a `RECV` into the spare capacity of the read's buffer, a `SEND` from the
//! write's buffer (`MSG_NOSIGNAL`), submitted on the ring of the thread polling at that
//! moment (looked up each time, never cached, since a task may be stolen between two ops)
//! and batched with that ring's other submissions. Everything else — accept, connect,
//! datagrams, and every operation on the fallback driver or a thread without a ring —
//! uses non-blocking sockets: the syscall at once, and on `EAGAIN` a wait for readiness
//! (the one [`process`](crate::process) pipes use: a one-shot `POLL_ADD` on the polling
//! thread's ring, or the process-wide readiness thread, `poller.rs`), then the syscall
//! again. A socket may move between threads and runtimes of either kind.
//!
//! # Cancellation, and no received byte is lost
//!
//! Dropping an operation's future cancels it and leaves the socket usable: a readiness
//! wait is removed, a ring op is abandoned to the ring, which keeps its buffer and a clone
//! of the descriptor until the kernel's completion. A `RECV` that completes after its
//! future was dropped hands the bytes it received to the socket's stash, and the next
//! read returns them first (a read waits until every abandoned `RECV` has completed, so
//! bytes come out in the order they arrived). A readiness wait takes no bytes at all.
//! Only [`TcpStream::read_exact`], dropped after some bytes reached its buffer, loses
//! those, as its docs say. A dropped write may have sent some of its bytes.
//!
//! # Errors
//!
//! The system's errors, with their kinds: a peer reset is
//! [`ConnectionReset`](std::io::ErrorKind::ConnectionReset), a refused connect
//! [`ConnectionRefused`](std::io::ErrorKind::ConnectionRefused); a failed `bind` or
//! `connect` names the address.

mod addr;
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
mod compat;
mod poll_io;
mod ring;
mod socket;
mod tcp;
mod udp;
mod unix;

pub(crate) use addr::SockAddr;
pub(crate) use ring::Stash;
pub(crate) use socket::Socket;
pub use tcp::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
