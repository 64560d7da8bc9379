//! Errors that name the path: every error `weft::fs` returns goes through [`with_path`] once.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The inner error of every `io::Error` that `weft::fs` returns: the operation, the path,
/// and the original error as its [`source`](Error::source).
///
/// Private on purpose: callers see an `io::Error` whose kind is the original's and whose
/// message reads `"{op} {path}: {original}"`; the original (and so its raw OS error) is
/// reachable through `get_ref()` and `source()` without naming this type.
#[derive(Debug)]
pub(crate) struct PathError {
    op: &'static str,
    path: PathBuf,
    /// The second path of a two-path operation (`rename`, `copy`, the links).
    to: Option<PathBuf>,
    source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.to {
            None => write!(f, "{} {}: {}", self.op, self.path.display(), self.source),
            Some(to) => write!(
                f,
                "{} {} to {}: {}",
                self.op,
                self.path.display(),
                to.display(),
                self.source
            ),
        }
    }
}

impl Error for PathError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Wraps `e` as `io::Error::new(e.kind(), "{op} {path}: {e}")`, keeping `e` as the source.
pub(crate) fn with_path(op: &'static str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        PathError {
            op,
            path: path.to_path_buf(),
            to: None,
            source: e,
        },
    )
}

/// Wraps `e` as [`with_path`] does, naming both paths: `"{op} {from} to {to}: {e}"`.
pub(crate) fn with_paths(op: &'static str, from: &Path, to: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        PathError {
            op,
            path: from.to_path_buf(),
            to: Some(to.to_path_buf()),
            source: e,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_kind_message_and_source() {
        let e = with_path(
            "open",
            Path::new("/no/such"),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("open /no/such: "), "{e}");
        let raw = e
            .get_ref()
            .and_then(|inner| inner.source())
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error);
        assert_eq!(raw, Some(libc::ENOENT));
    }
}
