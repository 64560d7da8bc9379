//! TCP: [`TcpListener`], [`TcpStream`] and its owned halves, and the [`TcpSocket`] builder.

use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::time::Duration;

use weft_reactor::buf::{BufResult, IoBuf, IoBufMut};

use super::addr::{SockAddr, each_addr, with_addr};
use super::half::owned_halves;
use super::socket::Socket;

/// The backlog `TcpListener::bind` asks for (the kernel caps it at `somaxconn`).
const BACKLOG: u32 = 1024;

fn family(addr: &SocketAddr) -> libc::c_int {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// A TCP socket listening for connections.
///
/// # Examples
///
/// ```
/// use weft_runtime::net::{TcpListener, TcpStream};
///
/// weft_runtime::Runtime::new()?.block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = weft_runtime::spawn(async move {
///         let s = TcpStream::connect(addr).await?;
///         let (r, _) = s.write_all(b"hi".to_vec()).await;
///         r
///     });
///     let (server, _peer) = listener.accept().await?;
///     let (r, buf) = server.read_exact(Vec::with_capacity(2)).await;
///     r?;
///     assert_eq!(buf, b"hi");
///     client.await.unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    sock: Socket,
}

impl TcpListener {
    /// Binds to `addr` (each resolved address in turn, until one binds) with
    /// `SO_REUSEADDR` set, and listens.
    ///
    /// # Errors
    ///
    /// The last address's error, naming it: [`AddrInUse`](io::ErrorKind::AddrInUse) when
    /// another socket holds it; [`InvalidInput`](io::ErrorKind::InvalidInput) when `addr`
    /// resolves to nothing.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| async move {
            let s = TcpSocket::new_for(&a)?;
            s.set_reuseaddr(true)?;
            s.bind(a)?;
            s.listen(BACKLOG)
        })
        .await
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Errors
    ///
    /// The system's error for `accept4(2)` (such as `EMFILE` when out of descriptors).
    ///
    /// # Cancellation
    ///
    /// Dropping the future before it completes loses no connection: one that arrives
    /// stays queued for the next `accept` (on a worker's ring, where the kernel may have
    /// accepted it for the dropped future, the listener keeps it for the next `accept`).
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (sock, peer) = self.sock.accept().await?;
        Ok((TcpStream { sock }, peer.as_inet()?))
    }

    /// The address the listener is bound to (with the port the kernel chose for port 0).
    ///
    /// # Errors
    ///
    /// The system's error for `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .with_std(|l: &std::net::TcpListener| l.local_addr())
    }

    /// Takes over a listening std socket (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            sock: Socket::from_owned(OwnedFd::from(listener))?,
        })
    }

    /// The std listener, in blocking mode.
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed or (while a dropped `accept` still
    /// holds it on a ring) it cannot be duplicated.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.sock.into_owned()?.into())
    }
}

/// A TCP connection.
///
/// Every method takes `&self`, so one task may read while another writes (share it in
/// an `Arc`, or [`into_split`](TcpStream::into_split) it). Reads and writes take and give
/// back an owned buffer, like [`fs::File`](crate::fs::File).
///
/// # Cancellation
///
/// Dropping a pending operation cancels it and leaves the stream usable. A read dropped
/// before it completes loses no byte: what the kernel still delivered for it is kept for
/// the next read (see the [module docs](super)). A dropped write may have sent part of its
/// buffer.
pub struct TcpStream {
    pub(super) sock: Socket,
}

impl TcpStream {
    /// A stream over a connected socket (`callback::net::connect`).
    pub(crate) fn from_socket(sock: Socket) -> TcpStream {
        TcpStream { sock }
    }

    /// The socket under the stream (`callback::net`).
    pub(crate) fn socket(&self) -> &Socket {
        &self.sock
    }

    /// Connects to `addr`, trying each resolved address in turn, as std does.
    ///
    /// # Errors
    ///
    /// The last address's error, naming it:
    /// [`ConnectionRefused`](io::ErrorKind::ConnectionRefused) when nothing listens there.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(
            addr,
            |a| async move { TcpSocket::new_for(&a)?.connect(a).await },
        )
        .await
    }

    /// Reads up to `buf.bytes_total()` bytes (a `Vec`'s capacity) into the front of `buf`
    /// (its old contents do not matter) and returns how many, with the buffer (its
    /// initialised length, a `Vec`'s `len()`, set to that number). `Ok(0)` means the peer
    /// shut down its writing side, or `buf` has no room. Any [`IoBufMut`] will do:
    /// `Vec<u8>`, `Box<[u8]>`, a [`Slice`](crate::buf::Slice) of one, `bytes::BytesMut`.
    ///
    /// # Errors
    ///
    /// The system's error for `recv(2)`: [`ConnectionReset`](io::ErrorKind::ConnectionReset)
    /// when the peer reset the connection.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.recv(buf, 0).await
    }

    /// Reads exactly `buf.bytes_total()` bytes (a `Vec`'s capacity) into `buf`.
    ///
    /// # Errors
    ///
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) if the stream ends first (the
    /// bytes read are in the returned buffer), or as [`read`](TcpStream::read).
    ///
    /// # Cancellation
    ///
    /// Dropping the future loses the bytes it had already read into its buffer.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        self.sock.recv_exact(buf).await
    }

    /// Like [`read`](TcpStream::read), but leaves the bytes in the socket (`MSG_PEEK`).
    ///
    /// # Errors
    ///
    /// As [`read`](TcpStream::read).
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.recv(buf, libc::MSG_PEEK).await
    }

    /// Writes some of `buf`'s initialised bytes (a `Vec`'s `len()`; at least one byte
    /// unless it is empty) and returns how many, with the buffer. Never raises `SIGPIPE`.
    /// Any [`IoBuf`] will do, `&'static [u8]` and `&'static str` too.
    ///
    /// # Errors
    ///
    /// The system's error for `send(2)`: [`BrokenPipe`](io::ErrorKind::BrokenPipe) once
    /// the connection is shut down for writing, `ConnectionReset` after a reset.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.send(buf, 0).await
    }

    /// Writes all of `buf` and gives it back.
    ///
    /// # Errors
    ///
    /// As [`write`](TcpStream::write); how much was written before the error is not
    /// reported.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.sock.send_all(buf).await
    }

    /// Reads into `bufs` in order (one `recvmsg(2)`, a ring `RECVMSG` on a worker), each
    /// from its start up to its `bytes_total()`, and returns how many bytes in all, with
    /// the buffers (each one's initialised length set to what it got: the first ones full,
    /// the last ones empty). `Ok(0)` means end of stream, or no room.
    ///
    /// # Errors
    ///
    /// As [`read`](TcpStream::read).
    ///
    /// # Cancellation
    ///
    /// As [`read`](TcpStream::read): no received byte is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::net::{TcpListener, TcpStream};
    ///
    /// weft_runtime::Runtime::new()?.block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").await?;
    ///     let client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     let (r, _) = client.writev(vec![&b"head"[..], &b"er"[..]]).await;
    ///     assert_eq!(r?, 6);
    ///     let mut got = Vec::new();
    ///     while got.len() < 6 {
    ///         let (r, bufs) = server.readv(vec![Vec::with_capacity(4), Vec::with_capacity(4)]).await;
    ///         r?;
    ///         got.extend(bufs.concat());
    ///     }
    ///     assert_eq!(got, b"header");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.sock.recv_vectored(bufs).await
    }

    /// Writes some of the initialised bytes of `bufs`, in order (one `sendmsg(2)`, a ring
    /// `SENDMSG` on a worker), and returns how many, with the buffers. Never raises
    /// `SIGPIPE`.
    ///
    /// # Errors
    ///
    /// As [`write`](TcpStream::write).
    ///
    /// # Examples
    ///
    /// See [`readv`](TcpStream::readv).
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.sock.send_vectored(bufs).await
    }

    /// Shuts down the reading side, the writing side (the peer reads end of stream) or
    /// both.
    ///
    /// # Errors
    ///
    /// The system's error for `shutdown(2)` (`NotConnected` once the peer is gone).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    ///
    /// # Errors
    ///
    /// The system's error for `setsockopt(2)`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.sock
            .with_std(|s: &std::net::TcpStream| s.set_nodelay(on))
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockopt(2)`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.sock.with_std(|s: &std::net::TcpStream| s.nodelay())
    }

    /// Sets the IP time-to-live of outgoing packets.
    ///
    /// # Errors
    ///
    /// The system's error for `setsockopt(2)` (`InvalidInput` above 255).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.with_std(|s: &std::net::TcpStream| s.set_ttl(ttl))
    }

    /// The IP time-to-live of outgoing packets.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockopt(2)`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock.with_std(|s: &std::net::TcpStream| s.ttl())
    }

    /// Sets `SO_LINGER`: with `Some(d)`, closing waits up to `d` for unsent data (with
    /// `Some(Duration::ZERO)`, closing resets the connection); `None` closes in the
    /// background.
    ///
    /// # Errors
    ///
    /// The system's error for `setsockopt(2)`.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let l = libc::linger {
            l_onoff: linger.is_some() as libc::c_int,
            l_linger: linger.map_or(0, |d| d.as_secs().min(libc::c_int::MAX as u64) as _),
        };
        self.sock.setsockopt(libc::SOL_SOCKET, libc::SO_LINGER, l)
    }

    /// The `SO_LINGER` setting, in whole seconds.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockopt(2)`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        let l: libc::linger = self.sock.getsockopt(libc::SOL_SOCKET, libc::SO_LINGER)?;
        Ok((l.l_onoff != 0).then(|| Duration::from_secs(l.l_linger as u64)))
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// The system's error for `getpeername(2)` (`NotConnected` once the peer is gone).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with_std(|s: &std::net::TcpStream| s.peer_addr())
    }

    /// The local address of the connection.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with_std(|s: &std::net::TcpStream| s.local_addr())
    }

    /// Splits the stream into a reading and a writing half, each `Send` and usable from
    /// its own task (on any worker). Dropping the writing half shuts down the writing
    /// side; the descriptor closes when both halves are gone.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split(self.sock)
    }

    /// Takes over a connected std stream (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            sock: Socket::from_owned(OwnedFd::from(stream))?,
        })
    }

    /// The std stream, in blocking mode.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) while the stream holds bytes that a
    /// cancelled read received (read them first); the system's error if the descriptor's
    /// flags cannot be changed or (while a dropped operation still holds it on a ring) it
    /// cannot be duplicated.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Ok(self.sock.into_owned()?.into())
    }
}

owned_halves!(
    TcpStream,
    std::net::TcpStream,
    SocketAddr,
    "Dropping it shuts down the writing side (the peer reads end of stream), after the \
     bytes that poll-based writes (the I/O trait features) accepted are sent."
);

/// A TCP socket not yet listening or connected, to set options first (tokio's builder).
///
/// # Examples
///
/// ```
/// use weft_runtime::net::TcpSocket;
///
/// weft_runtime::Runtime::new()?.block_on(async {
///     let s = TcpSocket::new_v4()?;
///     s.set_reuseaddr(true)?;
///     s.bind("127.0.0.1:0".parse().unwrap())?;
///     let listener = s.listen(128)?;
///     assert_ne!(listener.local_addr()?.port(), 0);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpSocket {
    sock: Socket,
}

impl TcpSocket {
    /// A new IPv4 TCP socket.
    ///
    /// # Errors
    ///
    /// The system's error for `socket(2)` (such as `EMFILE`).
    pub fn new_v4() -> io::Result<TcpSocket> {
        Ok(TcpSocket {
            sock: Socket::new(libc::AF_INET, libc::SOCK_STREAM)?,
        })
    }

    /// A new IPv6 TCP socket.
    ///
    /// # Errors
    ///
    /// As [`new_v4`](TcpSocket::new_v4).
    pub fn new_v6() -> io::Result<TcpSocket> {
        Ok(TcpSocket {
            sock: Socket::new(libc::AF_INET6, libc::SOCK_STREAM)?,
        })
    }

    fn new_for(addr: &SocketAddr) -> io::Result<TcpSocket> {
        Ok(TcpSocket {
            sock: Socket::new(family(addr), libc::SOCK_STREAM)?,
        })
    }

    /// Sets `SO_REUSEADDR` (bind to a port whose old connections linger in `TIME_WAIT`).
    ///
    /// # Errors
    ///
    /// The system's error for `setsockopt(2)`.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        self.sock
            .setsockopt(libc::SOL_SOCKET, libc::SO_REUSEADDR, on as libc::c_int)
    }

    /// Sets `SO_REUSEPORT` (several sockets share one port; the kernel spreads
    /// connections over them).
    ///
    /// # Errors
    ///
    /// The system's error for `setsockopt(2)`.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        self.sock
            .setsockopt(libc::SOL_SOCKET, libc::SO_REUSEPORT, on as libc::c_int)
    }

    /// Binds to `addr`.
    ///
    /// # Errors
    ///
    /// The system's error for `bind(2)`, naming the address:
    /// [`AddrInUse`](io::ErrorKind::AddrInUse) when another socket holds it.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.sock
            .bind(&SockAddr::from_inet(&addr))
            .map_err(|e| with_addr(e, "bind", addr))
    }

    /// Starts listening, with room for `backlog` connections not yet accepted.
    ///
    /// # Errors
    ///
    /// The system's error for `listen(2)`.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        self.sock.listen(backlog)?;
        Ok(TcpListener { sock: self.sock })
    }

    /// Connects to `addr`.
    ///
    /// # Errors
    ///
    /// The system's error, naming the address:
    /// [`ConnectionRefused`](io::ErrorKind::ConnectionRefused) when nothing listens there.
    ///
    /// # Cancellation
    ///
    /// Dropping the future drops the socket, which abandons the connection attempt.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        self.sock
            .connect(&SockAddr::from_inet(&addr))
            .await
            .map_err(|e| with_addr(e, "connect to", addr))?;
        Ok(TcpStream { sock: self.sock })
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .with_std(|s: &std::net::TcpListener| s.local_addr())
    }
}

macro_rules! fd_traits {
    ($($t:ty),*) => {$(
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.sock.raw()
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.sock.fd())
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("fd", &self.sock.raw()).finish()
            }
        }
    )*};
}
pub(crate) use fd_traits;

fd_traits!(
    TcpListener,
    TcpStream,
    OwnedReadHalf,
    OwnedWriteHalf,
    TcpSocket
);
