//! Sockets: TCP ([`TcpListener`], [`TcpStream`], [`TcpSocket`]), UDP ([`UdpSocket`]) and
//! Unix streams ([`UnixListener`], [`UnixStream`]), with tokio's names and owned buffers.
//!
//! Every method takes `&self`; every type is `Send + Sync + Unpin + 'static`, so a stream
//! may be read by one task and written by another, on any workers (work stealing moves
//! tasks with sockets like any other).
//!
//! # How an operation waits
//!
//! Sockets are non-blocking. An operation makes its syscall at once (`recv`, `send` with
//! `MSG_NOSIGNAL`, `accept4`, `connect`); on `EAGAIN` it waits for readiness and tries
//! again. The wait is the one [`process`](crate::process) pipes use (`process/ring.rs`):
//! a one-shot `POLL_ADD` on the ring of the thread polling at that moment (looked up
//! each time, never cached, since a task may be stolen between two waits), or — on the
//! fallback driver and threads without a ring — the process-wide readiness thread
//! (`poller.rs`). A dropped wait cancels cleanly: the ring op is abandoned to the ring
//! with the descriptor's `Arc` as its cleanup, the readiness registration is removed.
//!
//! # No received byte is lost
//!
//! Bytes leave the kernel only inside a `recv` syscall that returns them to the read
//! that made it, so a read future dropped while it waits has taken nothing: the next read
//! gets every byte. (A ring `RECV` submitted with the read's buffer would instead let a
//! cancelled read's bytes land in a buffer nobody reads, unless the stream kept them for
//! the next read.) Only [`TcpStream::read_exact`], dropped after some bytes arrived, loses
//! those, as its docs say.
//!
//! # Errors
//!
//! The system's errors, with their kinds: a peer reset is
//! [`ConnectionReset`](std::io::ErrorKind::ConnectionReset), a refused connect
//! [`ConnectionRefused`](std::io::ErrorKind::ConnectionRefused); a failed `bind` or
//! `connect` names the address.

mod addr;
mod socket;
mod tcp;
mod udp;
mod unix;

pub use tcp::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
