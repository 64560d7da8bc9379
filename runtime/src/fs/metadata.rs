//! [`Metadata`] and [`FileType`]: what `statx` (on a ring) or `std::fs::Metadata` (on the
//! blocking pool) says about a file, in one weft-owned type.

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime};

/// The type of a file: regular file, directory, symbolic link, or another kind.
///
/// The `S_IFMT` bits of the file's mode. Returned by [`Metadata::file_type`] and
/// [`DirEntry::file_type`](crate::fs::DirEntry::file_type).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileType {
    fmt: u32,
}

impl FileType {
    fn from_mode(mode: u32) -> FileType {
        FileType {
            fmt: mode & libc::S_IFMT,
        }
    }

    /// The same type from std's.
    pub(crate) fn from_std(ft: std::fs::FileType) -> FileType {
        let fmt = if ft.is_file() {
            libc::S_IFREG
        } else if ft.is_dir() {
            libc::S_IFDIR
        } else if ft.is_symlink() {
            libc::S_IFLNK
        } else if ft.is_fifo() {
            libc::S_IFIFO
        } else if ft.is_socket() {
            libc::S_IFSOCK
        } else if ft.is_block_device() {
            libc::S_IFBLK
        } else if ft.is_char_device() {
            libc::S_IFCHR
        } else {
            0
        };
        FileType { fmt }
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.fmt == libc::S_IFREG
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.fmt == libc::S_IFDIR
    }

    /// A symbolic link (only ever seen without following links: from
    /// [`symlink_metadata`](crate::fs::symlink_metadata) or a directory entry).
    pub fn is_symlink(&self) -> bool {
        self.fmt == libc::S_IFLNK
    }

    /// A named pipe.
    pub fn is_fifo(&self) -> bool {
        self.fmt == libc::S_IFIFO
    }

    /// A Unix domain socket.
    pub fn is_socket(&self) -> bool {
        self.fmt == libc::S_IFSOCK
    }

    /// A block device.
    pub fn is_block_device(&self) -> bool {
        self.fmt == libc::S_IFBLK
    }

    /// A character device.
    pub fn is_char_device(&self) -> bool {
        self.fmt == libc::S_IFCHR
    }
}

impl fmt::Debug for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.fmt {
            libc::S_IFREG => "file",
            libc::S_IFDIR => "dir",
            libc::S_IFLNK => "symlink",
            libc::S_IFIFO => "fifo",
            libc::S_IFSOCK => "socket",
            libc::S_IFBLK => "block_device",
            libc::S_IFCHR => "char_device",
            _ => "unknown",
        };
        f.debug_tuple("FileType").field(&name).finish()
    }
}

/// A timestamp as the kernel gives it: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timestamp {
    sec: i64,
    nsec: u32,
}

impl Timestamp {
    fn to_system_time(self) -> SystemTime {
        let nsec = Duration::from_nanos(u64::from(self.nsec));
        if self.sec >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(self.sec as u64) + nsec
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(self.sec.unsigned_abs()) + nsec
        }
    }

    fn of(time: io::Result<SystemTime>) -> Option<Timestamp> {
        let t = time.ok()?;
        Some(match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Timestamp {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                // Before the epoch: whole seconds down, nanoseconds up.
                let mut sec = -(d.as_secs() as i64);
                let mut nsec = d.subsec_nanos();
                if nsec > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - nsec;
                }
                Timestamp { sec, nsec }
            }
        })
    }
}

/// What the file system says about a file: its size, type, permissions, owner and times.
///
/// The counterpart of [`std::fs::Metadata`] with its Unix [`MetadataExt`] accessors as
/// methods. On a worker of a runtime with io_uring it comes from one `statx` on the
/// worker's ring; elsewhere from `std::fs::metadata` on the blocking pool. Either way the
/// same fields, and [`created`](Metadata::created) is an error where the file system
/// keeps no birth time.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let meta = rt.block_on(weft_runtime::fs::metadata("/"))?;
/// assert!(meta.is_dir());
/// assert_eq!(meta.ino(), std::os::unix::fs::MetadataExt::ino(&std::fs::metadata("/")?));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Metadata {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    ino: u64,
    dev: u64,
    rdev: u64,
    size: u64,
    blksize: u64,
    blocks: u64,
    accessed: Timestamp,
    modified: Timestamp,
    changed: Timestamp,
    /// `None` where the file system keeps no birth time.
    created: Option<Timestamp>,
}

impl Metadata {
    /// From the kernel's `struct statx` (asked for `STATX_BASIC_STATS | STATX_BTIME`).
    pub(crate) fn from_statx(s: &libc::statx) -> Metadata {
        let ts = |t: libc::statx_timestamp| Timestamp {
            sec: t.tv_sec,
            nsec: t.tv_nsec,
        };
        Metadata {
            mode: u32::from(s.stx_mode),
            uid: s.stx_uid,
            gid: s.stx_gid,
            nlink: u64::from(s.stx_nlink),
            ino: s.stx_ino,
            dev: libc::makedev(s.stx_dev_major, s.stx_dev_minor),
            rdev: libc::makedev(s.stx_rdev_major, s.stx_rdev_minor),
            size: s.stx_size,
            blksize: u64::from(s.stx_blksize),
            blocks: s.stx_blocks,
            accessed: ts(s.stx_atime),
            modified: ts(s.stx_mtime),
            changed: ts(s.stx_ctime),
            created: (s.stx_mask & libc::STATX_BTIME != 0).then(|| ts(s.stx_btime)),
        }
    }

    /// From std's (the blocking pool's answer).
    pub(crate) fn from_std(m: &std::fs::Metadata) -> Metadata {
        Metadata {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            nlink: m.nlink(),
            ino: m.ino(),
            dev: m.dev(),
            rdev: m.rdev(),
            size: m.size(),
            blksize: m.blksize(),
            blocks: m.blocks(),
            accessed: Timestamp {
                sec: m.atime(),
                nsec: m.atime_nsec() as u32,
            },
            modified: Timestamp {
                sec: m.mtime(),
                nsec: m.mtime_nsec() as u32,
            },
            changed: Timestamp {
                sec: m.ctime(),
                nsec: m.ctime_nsec() as u32,
            },
            created: Timestamp::of(m.created()),
        }
    }

    /// The size in bytes (of the link itself, for a symbolic link not followed).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.size
    }

    /// The file's type.
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// A symbolic link (see [`FileType::is_symlink`]).
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    /// The permission bits, as std's type (so `set_permissions` takes them back).
    pub fn permissions(&self) -> Permissions {
        Permissions::from_mode(self.mode)
    }

    /// The last modification of the contents (`mtime`).
    ///
    /// # Errors
    ///
    /// None on Linux; the `Result` is std's signature.
    pub fn modified(&self) -> io::Result<SystemTime> {
        Ok(self.modified.to_system_time())
    }

    /// The last access (`atime`; how often the kernel updates it depends on the mount).
    ///
    /// # Errors
    ///
    /// None on Linux; the `Result` is std's signature.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        Ok(self.accessed.to_system_time())
    }

    /// The creation (birth) time.
    ///
    /// # Errors
    ///
    /// [`Unsupported`](io::ErrorKind::Unsupported) where the file system does not record
    /// it.
    pub fn created(&self) -> io::Result<SystemTime> {
        self.created.map(Timestamp::to_system_time).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "this file system records no creation time",
            )
        })
    }

    /// The whole mode: type and permission bits (`st_mode`).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// The owner's user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The owner's group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The device the file lives on.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The device a device file stands for (0 for other files).
    pub fn rdev(&self) -> u64 {
        self.rdev
    }

    /// The number of hard links.
    pub fn nlink(&self) -> u64 {
        self.nlink
    }

    /// The preferred block size for I/O.
    pub fn blksize(&self) -> u64 {
        self.blksize
    }

    /// The number of 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The last status change (`ctime`), in seconds since the Unix epoch.
    pub fn ctime(&self) -> i64 {
        self.changed.sec
    }

    /// The nanoseconds of [`ctime`](Metadata::ctime).
    pub fn ctime_nsec(&self) -> i64 {
        i64::from(self.changed.nsec)
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("file_type", &self.file_type())
            .field("len", &self.size)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("ino", &self.ino)
            .field("modified", &self.modified)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_before_and_after_the_epoch() {
        for t in [
            SystemTime::UNIX_EPOCH + Duration::new(5, 7),
            SystemTime::UNIX_EPOCH - Duration::new(5, 7),
            SystemTime::UNIX_EPOCH,
        ] {
            assert_eq!(Timestamp::of(Ok(t)).unwrap().to_system_time(), t);
        }
    }
}
