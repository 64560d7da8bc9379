//! The ecosystem's poll-based I/O traits for the streams, each a thin call into the
//! shared state machine of `poll_io.rs` (which says how reads keep every byte and why
//! writes copy):
//!
//! - `tokio-io`: `tokio::io::{AsyncRead, AsyncWrite}`;
//! - `futures-io`: `futures_io::{AsyncRead, AsyncWrite}`;
//! - `hyper`: `hyper::rt::{Read, Write}`.
//!
//! Read traits for [`TcpStream`], [`OwnedReadHalf`], [`UnixStream`] and their shared
//! references; write traits for [`TcpStream`], [`OwnedWriteHalf`], [`UnixStream`] and their
//! shared references (the state lives in the socket, so `&stream` reads and writes as
//! std's `&TcpStream` does).

#![allow(unused_imports)] // Each feature uses some of them.

use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::socket::Socket;
use super::tcp::{OwnedReadHalf, OwnedWriteHalf, TcpStream};
use super::unix::UnixStream;

/// The socket under a stream type.
trait AsSocket {
    fn socket(&self) -> &Socket;
}

macro_rules! as_socket {
    ($($t:ty),*) => {$(
        impl AsSocket for $t {
            fn socket(&self) -> &Socket {
                &self.sock
            }
        }
    )*};
}
as_socket!(TcpStream, OwnedReadHalf, OwnedWriteHalf, UnixStream);

impl<T: AsSocket> AsSocket for &T {
    fn socket(&self) -> &Socket {
        (**self).socket()
    }
}

fn poll_read(
    s: &Socket,
    cx: &mut Context<'_>,
    dst: &mut [MaybeUninit<u8>],
) -> Poll<io::Result<usize>> {
    let (state, fd, stash) = s.poll_parts();
    state.poll_read(fd, stash, cx, dst)
}

fn poll_write(
    s: &Socket,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let (state, fd, _) = s.poll_parts();
    state.poll_write(fd, cx, bufs)
}

fn poll_flush(s: &Socket, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let (state, fd, _) = s.poll_parts();
    state.poll_flush(fd, cx)
}

fn poll_shutdown(s: &Socket, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    ready!(poll_flush(s, cx))?;
    Poll::Ready(s.shutdown(Shutdown::Write))
}

/// `buf` as storage that may be uninitialised, for the reads that fill it.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has `u8`'s layout, and the reads only ever store
    // initialised bytes through it, so `buf` stays initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

#[cfg(feature = "tokio-io")]
mod tokio_io {
    use super::*;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    macro_rules! read {
        ($($t:ty),*) => {$(
            impl AsyncRead for $t {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut ReadBuf<'_>,
                ) -> Poll<io::Result<()>> {
                    // SAFETY: the read stores only initialised bytes in the unfilled part.
                    let dst = unsafe { buf.unfilled_mut() };
                    let n = ready!(poll_read(self.socket(), cx, dst))?;
                    // SAFETY: the read initialised the first `n` bytes of the unfilled part.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    Poll::Ready(Ok(()))
                }
            }
        )*};
    }

    macro_rules! write {
        ($($t:ty),*) => {$(
            impl AsyncWrite for $t {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    poll_write(self.socket(), cx, &[io::IoSlice::new(buf)])
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[io::IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    poll_write(self.socket(), cx, bufs)
                }

                fn is_write_vectored(&self) -> bool {
                    true
                }

                fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    poll_flush(self.socket(), cx)
                }

                fn poll_shutdown(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                ) -> Poll<io::Result<()>> {
                    poll_shutdown(self.socket(), cx)
                }
            }
        )*};
    }

    read!(
        TcpStream,
        &TcpStream,
        OwnedReadHalf,
        UnixStream,
        &UnixStream
    );
    write!(
        TcpStream,
        &TcpStream,
        OwnedWriteHalf, UnixStream, &UnixStream
    );
}

#[cfg(feature = "futures-io")]
mod futures {
    use super::*;
    use futures_io::{AsyncRead, AsyncWrite};

    macro_rules! read {
        ($($t:ty),*) => {$(
            impl AsyncRead for $t {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut [u8],
                ) -> Poll<io::Result<usize>> {
                    poll_read(self.socket(), cx, as_uninit(buf))
                }
            }
        )*};
    }

    macro_rules! write {
        ($($t:ty),*) => {$(
            impl AsyncWrite for $t {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    poll_write(self.socket(), cx, &[io::IoSlice::new(buf)])
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[io::IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    poll_write(self.socket(), cx, bufs)
                }

                fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    poll_flush(self.socket(), cx)
                }

                fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    poll_shutdown(self.socket(), cx)
                }
            }
        )*};
    }

    read!(
        TcpStream,
        &TcpStream,
        OwnedReadHalf,
        UnixStream,
        &UnixStream
    );
    write!(
        TcpStream,
        &TcpStream,
        OwnedWriteHalf, UnixStream, &UnixStream
    );
}

#[cfg(feature = "hyper")]
mod hyper_rt {
    use super::*;
    use ::hyper::rt::{Read, ReadBufCursor, Write};

    macro_rules! read {
        ($($t:ty),*) => {$(
            impl Read for $t {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    mut buf: ReadBufCursor<'_>,
                ) -> Poll<io::Result<()>> {
                    // SAFETY: the read stores only initialised bytes in the cursor's space.
                    let dst = unsafe { buf.as_mut() };
                    let n = ready!(poll_read(self.socket(), cx, dst))?;
                    // SAFETY: the read initialised the first `n` bytes of that space.
                    unsafe { buf.advance(n) };
                    Poll::Ready(Ok(()))
                }
            }
        )*};
    }

    macro_rules! write {
        ($($t:ty),*) => {$(
            impl Write for $t {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    poll_write(self.socket(), cx, &[io::IoSlice::new(buf)])
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[io::IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    poll_write(self.socket(), cx, bufs)
                }

                fn is_write_vectored(&self) -> bool {
                    true
                }

                fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    poll_flush(self.socket(), cx)
                }

                fn poll_shutdown(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                ) -> Poll<io::Result<()>> {
                    poll_shutdown(self.socket(), cx)
                }
            }
        )*};
    }

    read!(
        TcpStream,
        &TcpStream,
        OwnedReadHalf,
        UnixStream,
        &UnixStream
    );
    write!(
        TcpStream,
        &TcpStream,
        OwnedWriteHalf, UnixStream, &UnixStream
    );
}
