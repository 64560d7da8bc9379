//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and its owned halves
//! ([`OwnedReadHalf`], [`OwnedWriteHalf`]), and [`UnixDatagram`]. Every address is a path
//! or, with a leading NUL byte, a Linux abstract name (no file; gone with its socket).

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use weft_reactor::buf::{BufResult, IoBuf, IoBufMut};

use super::addr::{SockAddr, with_addr};
use super::half::owned_halves;
use super::socket::Socket;
use super::tcp::fd_traits;

/// A Unix socket listening for connections, at a path or (with a leading NUL byte, on
/// Linux) an abstract name.
///
/// # Examples
///
/// ```
/// use weft_runtime::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("weft-doc-unix-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("sock");
/// weft_runtime::Runtime::new()?.block_on(async {
///     let listener = UnixListener::bind(&path)?;
///     let client = UnixStream::connect(&path).await?;
///     let (server, _) = listener.accept().await?;
///     let (r, _) = client.write_all(b"hi".to_vec()).await;
///     r?;
///     let (r, buf) = server.read_exact(Vec::with_capacity(2)).await;
///     r?;
///     assert_eq!(buf, b"hi");
///     Ok::<(), std::io::Error>(())
/// })?;
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    sock: Socket,
}

impl UnixListener {
    /// Binds to `path` and listens. Synchronous, as tokio's: binding a Unix socket never
    /// waits. A path's socket file stays after the listener is dropped (remove it).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for a path too long for
    /// `sockaddr_un` or with a NUL byte; the system's error for `bind(2)`, naming the
    /// path ([`AddrInUse`](io::ErrorKind::AddrInUse) when the file exists).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let addr = SockAddr::from_path(path)?;
        let sock = Socket::new(libc::AF_UNIX, libc::SOCK_STREAM)?;
        sock.bind(&addr)
            .map_err(|e| with_addr(e, "bind", path.display()))?;
        sock.listen(1024)?;
        Ok(UnixListener { sock })
    }

    /// Waits for a connection and returns it with the peer's address (usually unnamed).
    ///
    /// # Errors
    ///
    /// The system's error for `accept4(2)`.
    ///
    /// # Cancellation
    ///
    /// Dropping the future accepts nothing.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (sock, _) = self.sock.accept().await?;
        let stream = UnixStream { sock };
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .with_std(|l: &std::os::unix::net::UnixListener| l.local_addr())
    }

    /// Takes over a listening std socket (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            sock: Socket::from_owned(OwnedFd::from(listener))?,
        })
    }

    /// The std listener, in blocking mode.
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed or it cannot be duplicated.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        Ok(self.sock.into_owned()?.into())
    }
}

/// A Unix stream connection. Its methods are [`TcpStream`](super::TcpStream)'s, with the
/// same owned buffers and cancellation.
pub struct UnixStream {
    pub(super) sock: Socket,
}

impl UnixStream {
    /// Connects to the listener at `path` (or abstract name, with a leading NUL byte).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for a bad path; the system's error,
    /// naming the path: `NotFound` with no socket there, `ConnectionRefused` when nothing
    /// listens on it.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let addr = SockAddr::from_path(path)?;
        let sock = Socket::new(libc::AF_UNIX, libc::SOCK_STREAM)?;
        sock.connect(&addr)
            .await
            .map_err(|e| with_addr(e, "connect to", path.display()))?;
        Ok(UnixStream { sock })
    }

    /// A connected pair of unnamed sockets.
    ///
    /// # Errors
    ///
    /// The system's error for `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// As [`TcpStream::read`](super::TcpStream::read).
    ///
    /// # Errors
    ///
    /// The system's error for `recv(2)`.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.recv(buf, 0).await
    }

    /// As [`TcpStream::read_exact`](super::TcpStream::read_exact).
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the stream ends first, or as [`read`](UnixStream::read).
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        self.sock.recv_exact(buf).await
    }

    /// As [`TcpStream::write`](super::TcpStream::write); never raises `SIGPIPE`.
    ///
    /// # Errors
    ///
    /// The system's error for `send(2)` (`BrokenPipe` once the peer is gone).
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.send(buf, 0).await
    }

    /// As [`TcpStream::write_all`](super::TcpStream::write_all).
    ///
    /// # Errors
    ///
    /// As [`write`](UnixStream::write).
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.sock.send_all(buf).await
    }

    /// As [`TcpStream::peek`](super::TcpStream::peek).
    ///
    /// # Errors
    ///
    /// As [`read`](UnixStream::read).
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.recv(buf, libc::MSG_PEEK).await
    }

    /// As [`TcpStream::readv`](super::TcpStream::readv).
    ///
    /// # Errors
    ///
    /// As [`read`](UnixStream::read).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::net::UnixStream;
    ///
    /// weft_runtime::Runtime::new()?.block_on(async {
    ///     let (a, b) = UnixStream::pair()?;
    ///     let (r, _) = a.writev(vec![b"ab".to_vec(), b"cd".to_vec()]).await;
    ///     assert_eq!(r?, 4);
    ///     let (r, bufs) = b.readv(vec![Vec::with_capacity(3), Vec::with_capacity(3)]).await;
    ///     assert_eq!(r?, 4);
    ///     assert_eq!(bufs, [b"abc".to_vec(), b"d".to_vec()]);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.sock.recv_vectored(bufs).await
    }

    /// As [`TcpStream::writev`](super::TcpStream::writev).
    ///
    /// # Errors
    ///
    /// As [`write`](UnixStream::write).
    ///
    /// # Examples
    ///
    /// See [`readv`](UnixStream::readv).
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        self.sock.send_vectored(bufs).await
    }

    /// Splits the stream into a reading and a writing half, each `Send` and usable from
    /// its own task (on any worker). Dropping the writing half shuts down the writing
    /// side; the descriptor closes when both halves are gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_runtime::net::UnixStream;
    ///
    /// weft_runtime::Runtime::new()?.block_on(async {
    ///     let (a, b) = UnixStream::pair()?;
    ///     let (r, w) = a.into_split();
    ///     let writer = weft_runtime::spawn(async move { w.write_all("ping").await.0 });
    ///     let (res, buf) = b.read_exact(Vec::with_capacity(4)).await;
    ///     res?;
    ///     assert_eq!(buf, b"ping");
    ///     writer.await.unwrap()?;
    ///     drop(r);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split(self.sock)
    }

    /// Shuts down the reading side, the writing side or both.
    ///
    /// # Errors
    ///
    /// The system's error for `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// The system's error for `getpeername(2)`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .with_std(|s: &std::os::unix::net::UnixStream| s.peer_addr())
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .with_std(|s: &std::os::unix::net::UnixStream| s.local_addr())
    }

    /// Takes over a connected std stream (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            sock: Socket::from_owned(OwnedFd::from(stream))?,
        })
    }

    /// The std stream, in blocking mode.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) while the stream holds bytes that a
    /// cancelled read received (read them first); the system's error if the descriptor's
    /// flags cannot be changed or it cannot be duplicated.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        Ok(self.sock.into_owned()?.into())
    }
}

owned_halves!(
    UnixStream,
    std::os::unix::net::UnixStream,
    SocketAddr,
    "Dropping it shuts down the writing side (the peer reads end of stream)."
);

/// A Unix datagram socket: bound to a path or abstract name, or unbound; connected to a
/// default peer, or not. Datagrams keep their boundaries; a receive fills up to the
/// buffer's `bytes_total()` and a longer datagram is truncated (the rest is discarded, as
/// `recv(2)` does). Every method takes `&self`; sends never raise `SIGPIPE`.
///
/// # Examples
///
/// ```
/// use weft_runtime::net::UnixDatagram;
///
/// weft_runtime::Runtime::new()?.block_on(async {
///     let (a, b) = UnixDatagram::pair()?;
///     let (r, _) = a.send(&b"one"[..]).await;
///     r?;
///     let (r, buf) = b.recv(Vec::with_capacity(16)).await;
///     assert_eq!((r?, &buf[..]), (3, &b"one"[..]));
///
///     // An abstract name: no file, gone with the socket.
///     let name = format!("\0weft-doc-dgram-{}", std::process::id());
///     let server = UnixDatagram::bind(&name)?;
///     let client = UnixDatagram::unbound()?;
///     let (r, _) = client.send_to(b"two".to_vec(), &name).await;
///     r?;
///     let (r, buf) = server.recv_from(Vec::with_capacity(16)).await;
///     let (n, _from) = r?;
///     assert_eq!(&buf[..n], b"two");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    sock: Socket,
}

impl UnixDatagram {
    /// A socket bound to `path` (or an abstract name, with a leading NUL byte). A path's
    /// socket file stays after the socket is dropped (remove it).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for a path too long for
    /// `sockaddr_un` or with a NUL byte; the system's error for `bind(2)`, naming the
    /// path ([`AddrInUse`](io::ErrorKind::AddrInUse) when the file exists).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let addr = SockAddr::from_path(path)?;
        let sock = Socket::new(libc::AF_UNIX, libc::SOCK_DGRAM)?;
        sock.bind(&addr)
            .map_err(|e| with_addr(e, "bind", path.display()))?;
        Ok(UnixDatagram { sock })
    }

    /// A socket bound to no address: it can send (with [`send_to`](UnixDatagram::send_to),
    /// or after [`connect`](UnixDatagram::connect)), and receive replies only where the
    /// peer is connected to it.
    ///
    /// # Errors
    ///
    /// The system's error for `socket(2)`.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            sock: Socket::new(libc::AF_UNIX, libc::SOCK_DGRAM)?,
        })
    }

    /// A connected pair of unnamed sockets.
    ///
    /// # Errors
    ///
    /// The system's error for `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Sets the default peer, `path`: [`send`](UnixDatagram::send) goes there, and only
    /// its datagrams are received. Synchronous: a datagram connect never waits.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for a bad path; the system's error,
    /// naming the path (`NotFound` with no socket there, `ConnectionRefused` when the
    /// socket there is gone).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let addr = SockAddr::from_path(path)?;
        // SAFETY: reads `addr.len` bytes of `addr`'s storage.
        let r = unsafe { libc::connect(self.sock.raw(), addr.as_ptr(), addr.len) };
        if r == 0 {
            Ok(())
        } else {
            Err(with_addr(
                io::Error::last_os_error(),
                "connect to",
                path.display(),
            ))
        }
    }

    /// Sends `buf`'s initialised bytes as one datagram to the connected peer; returns the
    /// bytes sent, with the buffer.
    ///
    /// # Errors
    ///
    /// [`NotConnected`](io::ErrorKind::NotConnected) without a peer; the system's error
    /// for `send(2)` (`ConnectionRefused` once the peer is gone).
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let (r, buf) = self.sock.send_dgram(buf).await;
        let r = r.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "send on a Unix datagram socket with no peer: connect first, or use send_to",
                )
            } else {
                e
            }
        });
        (r, buf)
    }

    /// Receives one datagram into `buf` (up to its `bytes_total()`, a `Vec`'s capacity;
    /// its initialised length is set to the bytes received; a longer datagram is
    /// truncated).
    ///
    /// # Errors
    ///
    /// The system's error for `recv(2)`.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.recv_dgram(buf, 0).await
    }

    /// Sends `buf`'s initialised bytes as one datagram to the socket at `path` (or
    /// abstract name).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for a bad path; the system's error
    /// for `sendto(2)`, naming the path (`NotFound` with no socket there).
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        let path = path.as_ref();
        let addr = match SockAddr::from_path(path) {
            Ok(a) => a,
            Err(e) => return (Err(e), buf),
        };
        let r = self
            .sock
            .send_to(&buf, &addr)
            .await
            .map_err(|e| with_addr(e, "send to", path.display()));
        (r, buf)
    }

    /// Receives one datagram into `buf` (as [`recv`](UnixDatagram::recv)), with the
    /// sender's address (unnamed for an unbound sender).
    ///
    /// # Errors
    ///
    /// The system's error for `recvfrom(2)`.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (r, buf) = self.sock.recv_from(buf).await;
        (r.and_then(|(n, a)| Ok((n, a.as_unix()?))), buf)
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .with_std(|s: &std::os::unix::net::UnixDatagram| s.local_addr())
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](UnixDatagram::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .with_std(|s: &std::os::unix::net::UnixDatagram| s.peer_addr())
    }

    /// Shuts down the reading side, the writing side or both.
    ///
    /// # Errors
    ///
    /// The system's error for `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// Takes over a std socket (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            sock: Socket::from_owned(OwnedFd::from(socket))?,
        })
    }

    /// The std socket, in blocking mode.
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed or it cannot be duplicated.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        Ok(self.sock.into_owned()?.into())
    }
}

fd_traits!(
    UnixListener,
    UnixStream,
    OwnedReadHalf,
    OwnedWriteHalf,
    UnixDatagram
);
