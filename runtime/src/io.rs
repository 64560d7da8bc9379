//! The choice of I/O driver: a worker's own io_uring, or — when io_uring is unavailable
//! or disabled — the fallback, an epoll instance per worker with file operations on the
//! blocking pool. The drivers themselves are assembled in `driver.rs`.
//!
//! A runtime asks for one ring per worker ([`UringMode::Auto`], the default). If the kernel
//! refuses (old kernel, seccomp, `kernel.io_uring_disabled`, locked-memory limit), `Auto`
//! falls back for every worker and says why, once, on stderr; [`UringMode::Required`] makes
//! that a `Builder::build` error naming the cause and the fix; [`UringMode::Disabled`] never
//! tries. The `WEFT_IO_DRIVER` environment variable (`uring`, `fallback` or `auto`)
//! overrides the builder, for users and CI.

use std::io;

/// The environment variable that chooses the I/O driver: `uring` (require io_uring),
/// `fallback` (never use it) or `auto`.
pub const IO_DRIVER_ENV: &str = "WEFT_IO_DRIVER";

/// Whether a runtime uses io_uring; see [`Builder::io_uring`](crate::Builder::io_uring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UringMode {
    /// Use io_uring if the kernel allows it, else fall back and say why on stderr.
    #[default]
    Auto,
    /// Use io_uring or fail to build, with an error naming the cause and the fix.
    Required,
    /// Never use io_uring: workers park in `epoll_pwait2`, sockets and pipes wait for
    /// readiness on a worker's epoll, and file operations run on the blocking pool.
    Disabled,
}

impl UringMode {
    /// The builder's choice, unless `WEFT_IO_DRIVER` says otherwise.
    pub(crate) fn resolve(self) -> io::Result<UringMode> {
        match std::env::var(IO_DRIVER_ENV) {
            Err(_) => Ok(self),
            Ok(v) => match v.trim() {
                "uring" | "io_uring" => Ok(UringMode::Required),
                "fallback" => Ok(UringMode::Disabled),
                "auto" | "" => Ok(UringMode::Auto),
                other => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{IO_DRIVER_ENV}={other:?}: expected `uring`, `fallback` or `auto`"),
                )),
            },
        }
    }
}
