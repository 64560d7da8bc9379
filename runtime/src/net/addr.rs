//! Socket addresses in the kernel's layout, and back.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A `sockaddr_storage` and how many of its bytes are the address.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl SockAddr {
    pub(crate) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: all-zero bytes are a valid `sockaddr_storage` (plain integers).
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The reactor's form of this address (what its `ACCEPT` and `CONNECT` ops use).
    pub(crate) fn raw(&self) -> weft_reactor::op::accept::RawAddr {
        weft_reactor::op::accept::RawAddr {
            storage: self.storage,
            len: self.len,
        }
    }

    pub(crate) fn from_raw(raw: weft_reactor::op::accept::RawAddr) -> SockAddr {
        SockAddr {
            storage: raw.storage,
            len: raw.len,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    pub(crate) fn family(&self) -> libc::c_int {
        self.storage.ss_family as libc::c_int
    }

    pub(crate) fn from_inet(addr: &SocketAddr) -> SockAddr {
        let mut a = SockAddr::empty();
        match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: a `sockaddr_in` fits in (and may be written over the start of) a
                // `sockaddr_storage`, which is aligned for every address type.
                unsafe { std::ptr::write(a.as_mut_ptr().cast(), sin) };
                a.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: as above, for `sockaddr_in6`.
                unsafe { std::ptr::write(a.as_mut_ptr().cast(), sin6) };
                a.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        a
    }

    /// The IP address this holds, if it is one.
    pub(crate) fn as_inet(&self) -> io::Result<SocketAddr> {
        match self.family() {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a `sockaddr_in`; the storage
                // is aligned for it.
                let sin: &libc::sockaddr_in = unsafe { &*self.as_ptr().cast() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a `sockaddr_in6`.
                let sin6: &libc::sockaddr_in6 = unsafe { &*self.as_ptr().cast() };
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            f => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("address family {f} is not an IP family"),
            )),
        }
    }

    /// The Unix socket address this holds (a path, an abstract name, or unnamed).
    pub(crate) fn as_unix(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::SocketAddr as UnixAddr;

        let base = mem::offset_of!(libc::sockaddr_un, sun_path);
        // An unnamed sender (a socketpair's peer) may come back with no address at all.
        let unnamed = (self.len as usize) <= base;
        if !unnamed && self.family() != libc::AF_UNIX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("address family {} is not AF_UNIX", self.family()),
            ));
        }
        let len = (self.len as usize).saturating_sub(base);
        if unnamed {
            // std has no constructor for an unnamed address: take one from the kernel once.
            static UNNAMED: std::sync::OnceLock<io::Result<UnixAddr>> = std::sync::OnceLock::new();
            return match UNNAMED
                .get_or_init(|| std::os::unix::net::UnixDatagram::unbound()?.local_addr())
            {
                Ok(a) => Ok(a.clone()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
        }
        // SAFETY: the family says the storage holds a `sockaddr_un`, and it is aligned for it.
        let sun: &libc::sockaddr_un = unsafe { &*self.as_ptr().cast() };
        let path: Vec<u8> = sun.sun_path[..len.min(sun.sun_path.len())]
            .iter()
            .map(|&c| c as u8)
            .collect();
        if path[0] == 0 {
            UnixAddr::from_abstract_name(&path[1..])
        } else {
            // A path's length may count its terminating NUL.
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            UnixAddr::from_pathname(Path::new(std::ffi::OsStr::from_bytes(&path[..end])))
        }
    }

    /// A Unix socket address: a path, or an abstract name when the path's first byte is
    /// NUL (Linux).
    pub(crate) fn from_path(path: &Path) -> io::Result<SockAddr> {
        let bytes = path.as_os_str().as_bytes();
        let mut a = SockAddr::empty();
        // SAFETY: a `sockaddr_un` fits in a `sockaddr_storage`, which is aligned for it;
        // the storage is all zero, a valid `sockaddr_un`.
        let sun: &mut libc::sockaddr_un = unsafe { &mut *a.as_mut_ptr().cast() };
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let abstract_name = bytes.first() == Some(&0);
        // A path needs room for its terminating NUL; an abstract name has none.
        let room = sun.sun_path.len() - usize::from(!abstract_name);
        if bytes.is_empty() || bytes.len() > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "Unix socket path {path:?}: {} bytes, must be 1 to {room}",
                    bytes.len()
                ),
            ));
        }
        if !abstract_name && bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Unix socket path {path:?} contains a NUL byte"),
            ));
        }
        for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let base = mem::offset_of!(libc::sockaddr_un, sun_path);
        a.len = (base + bytes.len() + usize::from(!abstract_name)) as libc::socklen_t;
        Ok(a)
    }
}

/// Resolves `addr` and calls `f` with each address in turn until one succeeds; the last
/// error otherwise, or `InvalidInput` if it resolves to nothing.
///
/// Resolution is std's: an IP address parses without a syscall, a host name is looked up
/// on the calling thread.
pub(crate) async fn each_addr<A: ToSocketAddrs, T, F, Fut>(addr: A, mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let mut last = None;
    for a in addrs {
        match f(a).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to no socket address",
        )
    }))
}

/// `e`, with a message that names `what` and `addr`; the kind is kept.
pub(crate) fn with_addr(e: io::Error, what: &str, addr: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {addr}: {e}"))
}
