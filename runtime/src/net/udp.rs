//! UDP: [`UdpSocket`].

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;

use weft_reactor::buf::{BufResult, IoBuf, IoBufMut};

use super::addr::{SockAddr, each_addr, with_addr};
use super::socket::Socket;
use super::tcp::fd_traits;

/// A UDP socket.
///
/// Every method takes `&self`, so one task may receive while another sends. Sends and
/// receives take and give back an owned buffer; a receive fills up to the buffer's
/// capacity, and a datagram longer than that is truncated (the rest is discarded, as
/// `recv(2)` does).
///
/// # Examples
///
/// ```
/// use weft_runtime::net::UdpSocket;
///
/// weft_runtime::Runtime::new()?.block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await?;
///     let b = UdpSocket::bind("127.0.0.1:0").await?;
///     let (r, _) = a.send_to(b"ping".to_vec(), b.local_addr()?).await;
///     r?;
///     let (r, buf) = b.recv_from(Vec::with_capacity(16)).await;
///     let (n, from) = r?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    sock: Socket,
}

impl UdpSocket {
    /// Binds to `addr` (each resolved address in turn, until one binds).
    ///
    /// # Errors
    ///
    /// The last address's error, naming it: [`AddrInUse`](io::ErrorKind::AddrInUse) when
    /// another socket holds it.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |a| async move {
            let domain = if a.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            let sock = Socket::new(domain, libc::SOCK_DGRAM)?;
            sock.bind(&SockAddr::from_inet(&a))
                .map_err(|e| with_addr(e, "bind", a))?;
            Ok(UdpSocket { sock })
        })
        .await
    }

    /// Sets the default peer: [`send`](UdpSocket::send) goes there, and only its
    /// datagrams are received.
    ///
    /// # Errors
    ///
    /// The last resolved address's error, naming it.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |a| async move {
            self.sock
                .connect(&SockAddr::from_inet(&a))
                .await
                .map_err(|e| with_addr(e, "connect to", a))
        })
        .await
    }

    /// Sends `buf` as one datagram to the connected peer; returns the bytes sent, with
    /// the buffer.
    ///
    /// # Errors
    ///
    /// The system's error for `send(2)`: `ConnectionRefused` when an earlier datagram
    /// to the peer was refused (ICMP port unreachable), `NotConnected` without
    /// [`connect`](UdpSocket::connect).
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let (r, buf) = self.sock.send_dgram(buf).await;
        let r = r.map_err(|e| {
            if e.raw_os_error() == Some(libc::EDESTADDRREQ) {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "send on a UDP socket with no peer: connect first, or use send_to",
                )
            } else {
                e
            }
        });
        (r, buf)
    }

    /// Receives one datagram from the connected peer into `buf` (up to its capacity; the
    /// length is set to the bytes received).
    ///
    /// # Errors
    ///
    /// The system's error for `recv(2)`.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.sock.recv_dgram(buf, 0).await
    }

    /// Sends `buf` as one datagram to `addr` (its first resolved address).
    ///
    /// # Errors
    ///
    /// The system's error for `sendto(2)`, naming the address;
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if `addr` resolves to nothing.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: impl ToSocketAddrs) -> BufResult<usize, B> {
        let target = match addr.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            Ok(None) => {
                let e = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "send_to: the address resolved to no socket address",
                );
                return (Err(e), buf);
            }
            Err(e) => return (Err(e), buf),
        };
        let r = self
            .sock
            .send_to(&buf, &SockAddr::from_inet(&target))
            .await
            .map_err(|e| with_addr(e, "send to", target));
        (r, buf)
    }

    /// Receives one datagram into `buf` (up to its capacity; the length is set to the
    /// bytes received), with the sender's address.
    ///
    /// # Errors
    ///
    /// The system's error for `recvfrom(2)`.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (r, buf) = self.sock.recv_from(buf).await;
        (r.and_then(|(n, a)| Ok((n, a.as_inet()?))), buf)
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with_std(|s: &std::net::UdpSocket| s.local_addr())
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](UdpSocket::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.with_std(|s: &std::net::UdpSocket| s.peer_addr())
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// The system's error for `setsockopt(2)`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock
            .with_std(|s: &std::net::UdpSocket| s.set_broadcast(on))
    }

    /// Sets the IP time-to-live of outgoing datagrams.
    ///
    /// # Errors
    ///
    /// The system's error for `setsockopt(2)`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.with_std(|s: &std::net::UdpSocket| s.set_ttl(ttl))
    }

    /// The IP time-to-live of outgoing datagrams.
    ///
    /// # Errors
    ///
    /// The system's error for `getsockopt(2)`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock.with_std(|s: &std::net::UdpSocket| s.ttl())
    }

    /// Takes over a std socket (switching it to non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            sock: Socket::from_owned(OwnedFd::from(socket))?,
        })
    }

    /// The std socket, in blocking mode.
    ///
    /// # Errors
    ///
    /// If the descriptor's flags cannot be changed or it cannot be duplicated.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        Ok(self.sock.into_owned()?.into())
    }
}

fd_traits!(UdpSocket);
