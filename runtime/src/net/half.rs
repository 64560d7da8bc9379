//! The owned halves of a stream, written once for TCP and Unix streams: `owned_halves!`
//! defines `OwnedReadHalf`, `OwnedWriteHalf` and the `split` that `into_split` calls, in
//! the module that invokes it, with docs that name that module's stream type. A macro
//! rather than a generic struct, so that each module keeps its own concrete public types
//! (`weft::net::OwnedReadHalf`, `weft::net::unix::OwnedReadHalf`), their docs, and
//! `peer_addr`/`local_addr` returning its own address type.
//!
//! Dropping a writing half shuts down the writing side once the bytes that poll-based
//! writes accepted are sent (`Socket::shutdown_write_when_sent`; at once when there are
//! none, which is always the case for a Unix half, which has no poll-based writes).

/// `owned_halves!(Stream, std stream type, address type, "doc of the write half")`.
macro_rules! owned_halves {
    ($stream:ident, $std:ty, $addr:ty, $write_doc:literal) => {
        #[doc = concat!("The reading half of a [`", stringify!($stream), "`], from [`",
                                                            stringify!($stream), "::into_split`].")]
        pub struct OwnedReadHalf {
            pub(super) sock: Socket,
        }

        impl OwnedReadHalf {
            #[doc = concat!("As [`", stringify!($stream), "::read`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::read`].")]
            pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
                self.sock.recv(buf, 0).await
            }

            #[doc = concat!("As [`", stringify!($stream), "::read_exact`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::read_exact`].")]
            pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
                self.sock.recv_exact(buf).await
            }

            #[doc = concat!("As [`", stringify!($stream), "::peek`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::read`].")]
            pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
                self.sock.recv(buf, libc::MSG_PEEK).await
            }

            #[doc = concat!("As [`", stringify!($stream), "::readv`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::read`].")]
            pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
                self.sock.recv_vectored(bufs).await
            }

            /// The peer's address.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::peer_addr`].")]
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.sock.with_std(|s: &$std| s.peer_addr())
            }
        }

        #[doc = concat!("The writing half of a [`", stringify!($stream), "`], from [`",
                                                            stringify!($stream), "::into_split`].")]
        #[doc = $write_doc]
        pub struct OwnedWriteHalf {
            pub(super) sock: Socket,
        }

        impl OwnedWriteHalf {
            #[doc = concat!("As [`", stringify!($stream), "::write`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::write`].")]
            pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
                self.sock.send(buf, 0).await
            }

            #[doc = concat!("As [`", stringify!($stream), "::write_all`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::write`].")]
            pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
                self.sock.send_all(buf).await
            }

            #[doc = concat!("As [`", stringify!($stream), "::writev`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::write`].")]
            pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
                self.sock.send_vectored(bufs).await
            }

            /// Shuts down the writing side now.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::shutdown`].")]
            pub fn shutdown(&self) -> io::Result<()> {
                self.sock.shutdown(Shutdown::Write)
            }

            /// The local address of the connection.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($stream), "::local_addr`].")]
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.sock.with_std(|s: &$std| s.local_addr())
            }
        }

        impl Drop for OwnedWriteHalf {
            fn drop(&mut self) {
                self.sock.shutdown_write_when_sent();
            }
        }

        /// The halves of a stream's socket (`into_split`).
        fn split(sock: Socket) -> (OwnedReadHalf, OwnedWriteHalf) {
            (
                OwnedReadHalf { sock: sock.clone() },
                OwnedWriteHalf { sock },
            )
        }
    };
}
pub(crate) use owned_halves;
