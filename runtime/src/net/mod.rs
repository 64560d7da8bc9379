//! Sockets: TCP ([`TcpListener`], [`TcpStream`], [`TcpSocket`]), UDP ([`UdpSocket`]) and
//! Unix ([`UnixListener`], [`UnixStream`], [`UnixDatagram`]; paths and abstract names),
//! with tokio's names and owned buffers: every read, write, send and receive takes any
//! [`IoBufMut`](crate::buf::IoBufMut) or [`IoBuf`](crate::buf::IoBuf) (`Vec<u8>`,
//! `Box<[u8]>`, `&'static [u8]`, a [`Slice`](crate::buf::Slice), `bytes` types) and gives
//! it back in a [`BufResult`](crate::buf::BufResult); `readv`/`writev` take a `Vec` of
//! them.
//!
//! Every method takes `&self`; every type is `Send + Sync + Unpin + 'static`, so a stream
//! may be read by one task and written by another, on any workers (work stealing moves
//! tasks with sockets like any other).
//!
//! # How an operation runs
//!
//! On a thread that owns a ring (a worker), stream reads and writes, vectored reads and
//! writes, accept and connect are the reactor's socket ops (`weft_reactor::op::{recv,
//! send, recvmsg, sendmsg, accept, connect}`; `MSG_NOSIGNAL` on every send), submitted on
//! the ring of the thread polling at that moment (looked up each time, never cached, since
//! a task may be stolen between two ops) and batched with that ring's other submissions.
//! Datagrams, and every operation on the fallback driver or a thread without a ring (a
//! `block_on` thread), use non-blocking sockets: the syscall at once, and on `EAGAIN` a
//! wait for readiness, then the syscall again. On the fallback a socket registers once,
//! edge-triggered, with the epoll of the worker that first waits on it, and its waits
//! (from any thread) use the readiness that registration caches
//! (`weft_reactor::epoll`, "Cached readiness"); a socket not registered waits as
//! [`process`](crate::process) pipes do: a one-shot `POLL_ADD` on the polling thread's
//! ring, or the process-wide readiness thread on a `block_on` thread (`poller.rs`). A
//! socket may move between threads and runtimes of either kind.
//!
//! # Syscalls per round trip, and what stands between weft and twice tokio
//!
//! Counted with `strace -c -f` on the `tcp_echo` bench's setup and 5 batches (32 000
//! 64-byte round trips over 64 connections, 2 workers), the setup alone subtracted
//! (`WEFT_NET_COUNT=weft|tokio|weft_fallback WEFT_NET_BATCHES=5 strace -c -f
//! target/release/deps/net-*`, see `benches/net.rs`):
//!
//! | | syscalls per round trip | which |
//! |---|---|---|
//! | weft, ring | 0.085 | `io_uring_enter` (about 50 socket ops per enter) |
//! | tokio | 6.1 | `recvfrom` ×2 (one `EAGAIN`), `sendto`, `epoll_wait` |
//! | weft, fallback | 6.08 | `recvfrom` ×4 (two `EAGAIN`), `sendto` ×2, `epoll_pwait2` 0.09 (client and server) |
//!
//! So syscalls are no longer what weft pays on the ring: a round trip costs four ring ops
//! and their completions, each waiting for its worker's next return from the kernel
//! (`COOP_TASKRUN`: the kernel posts a socket's completion as task work run when the
//! owner next enters or leaves the kernel), then an op-table slot, a waker and an `Arc`
//! clone of the descriptor per op. The kernel's TCP path is most of the cost, for both
//! runtimes. CPU samples (`perf record -e cpu-clock`, the count mode above, 2 workers):
//!
//! | | kernel | of which `tcp_sendmsg` (and the loopback receive it runs) | user space |
//! |---|---|---|---|
//! | weft, ring | 84% | 57% | 16% (weft 14%, libc 1.5%) |
//! | tokio | 86.5% | 61% | 13.5% |
//!
//! CPU time per round trip on a loaded machine (`task-clock`, same run): weft 19.8 µs,
//! tokio 22.6 µs, weft's fallback 24.2 µs. User-space instructions per round trip on the
//! fallback (callgrind, where io_uring is unavailable): about 4 700, tokio 4 041. So twice
//! tokio's rate would need a round trip cheaper than the kernel's TCP work alone, which
//! both pay in full; what is left to take off is weft's own share:
//! - io_uring's own code, about 8% of the samples (arming the receive's poll, task work,
//!   completions), and `fget`/`fput` per op, 2%: registered (fixed) descriptors would
//!   save the second, at the price of a slot per socket in every ring it is used on.
//! - Two of the four wakes per round trip are for a `SEND` that completed at once. A
//!   non-blocking `send(2)` tried before the ring's `SEND` saves them but measured
//!   slower, same binary, interleaved rounds on a loaded machine (medians of three:
//!   `tcp_echo` CPU time 1.25x and wall-clock 1.26x the ring `SEND`'s; `tcp_echo_4k`
//!   1.12x and 1.11x): the ring sends many connections' messages in one enter, and a
//!   syscall each costs more than the wake it saves. Not kept.
//! - A multishot `RECV` with provided buffers (one armed receive per connection) measured
//!   no cheaper (`WEFT_RECV_MULTISHOT`, ARCHITECTURE.md). Linking a connection's `RECV`
//!   to its `SEND` is out of the owned-buffer API's reach: the echo awaits one before it
//!   starts the other, with the same buffer.
//!
//! Listeners accept one-shot by default: the multishot accept (`WEFT_ACCEPT=multishot`,
//! `ring.rs`) measured slower on `accept_connect`, since it returns no peer address and
//! each connection then costs a `getpeername(2)`. The fallback's figure is with each
//! socket registered once on a worker's epoll (8.08 with a one-shot registration re-armed
//! per wait, 12.1 on the process-wide poller thread before that).
//!
//! # Cancellation, and no received byte is lost
//!
//! Dropping an operation's future cancels it and leaves the socket usable: a readiness
//! wait is removed, a ring op is abandoned to the ring, which keeps its buffer and a clone
//! of the descriptor until the kernel's completion. A receive that completes after its
//! future was dropped hands the bytes it received to the socket's stash, and the next
//! read returns them first (a read waits until every abandoned receive has completed, so
//! bytes come out in the order they arrived). An accept that completes after its future
//! was dropped queues its connection in the listener for the next accept. A readiness
//! wait takes no bytes at all.
//! Only [`TcpStream::read_exact`], dropped after some bytes reached its buffer, loses
//! those, as its docs say. A dropped write may have sent some of its bytes.
//!
//! # Poll-based I/O (features `tokio-io`, `futures-io`, `hyper`)
//!
//! [`TcpStream`], its halves and [`UnixStream`] (and `&` of each) implement
//! `tokio::io::{AsyncRead, AsyncWrite}`, `futures_io::{AsyncRead, AsyncWrite}` and
//! `hyper::rt::{Read, Write}`, for tokio-util codecs, hyper and hyper-util's `TokioIo`. A
//! poll read's `RECV` and the bytes beyond the caller's buffer live in the stream, not in
//! the caller's future, so a read that is not polled again loses nothing, and owned-buffer
//! and poll reads mix in order. A poll write copies the bytes, queues a `SEND` and reports
//! them accepted; `poll_flush` waits for it, and `poll_shutdown` flushes before it shuts
//! the writing side (the inherent `shutdown` does not wait: flush first). The trade-offs
//! are in `poll_io.rs`. The inherent owned-buffer methods take precedence over the traits'
//! extension methods of the same names (`read`, `write_all`): call those through the trait
//! (`AsyncReadExt::read(&mut stream, &mut buf)`).
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
mod half;
mod poll_io;
mod ring;
mod socket;
mod tcp;
mod udp;
pub mod unix;

pub(crate) use addr::SockAddr;
pub(crate) use ring::Stash;
pub(crate) use socket::Socket;
pub use tcp::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
