//! Unix domain sockets: [`UnixListener`] and [`UnixStream`].

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::addr::{with_addr, SockAddr};
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
    pub async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        self.sock.recv(buf, 0).await
    }

    /// As [`TcpStream::read_exact`](super::TcpStream::read_exact).
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the stream ends first, or as [`read`](UnixStream::read).
    pub async fn read_exact(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.sock.recv_exact(buf).await
    }

    /// As [`TcpStream::write`](super::TcpStream::write); never raises `SIGPIPE`.
    ///
    /// # Errors
    ///
    /// The system's error for `send(2)` (`BrokenPipe` once the peer is gone).
    pub async fn write(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        self.sock.send(buf, 0).await
    }

    /// As [`TcpStream::write_all`](super::TcpStream::write_all).
    ///
    /// # Errors
    ///
    /// As [`write`](UnixStream::write).
    pub async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.sock.send_all(buf).await
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

fd_traits!(UnixListener, UnixStream);
