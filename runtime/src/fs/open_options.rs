//! [`OpenOptions`]: how to open a [`File`].

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::with_path;
use super::{File, backend};

/// Options for opening a [`File`]: access mode, creation, truncation, permissions.
///
/// The same builder as [`std::fs::OpenOptions`] (with its Unix `mode`), except that
/// [`open`](OpenOptions::open) is `async`. Every option starts `false`; the mode starts at
/// `0o666` (before the process's umask).
///
/// # Examples
///
/// ```
/// use weft_runtime::fs::OpenOptions;
///
/// let path = std::env::temp_dir().join(format!("weft-doc-openoptions-{}", std::process::id()));
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let file = OpenOptions::new()
///         .write(true)
///         .create_new(true)
///         .mode(0o600)
///         .open(&path)
///         .await?;
///     let (res, _buf) = file.write_all_at(b"first\n".to_vec(), 0).await;
///     res?;
///     file.close().await?;
///
///     // Appending: positioned writes on an O_APPEND file go to the end on Linux.
///     let file = OpenOptions::new().append(true).open(&path).await?;
///     let (res, _buf) = file.write_all_at(b"second\n".to_vec(), 0).await;
///     res?;
///     file.close().await?;
///
///     assert_eq!(weft_runtime::fs::read_to_string(&path).await?, "first\nsecond\n");
///
///     // `create_new` refuses an existing file, and the error names it.
///     let err = OpenOptions::new().write(true).create_new(true).open(&path).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
///     assert!(err.to_string().contains(&*path.to_string_lossy()));
///     Ok::<(), std::io::Error>(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Options with everything off and mode `0o666`.
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.write = write;
        self
    }

    /// Open for appending (implies write access): every write goes to the end of the file.
    ///
    /// On Linux this holds for positioned writes too: [`File::write_at`] on a file opened
    /// with `append` ignores its offset and appends (`pwrite(2)`, BUGS).
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.append = append;
        self
    }

    /// Truncate an existing file to length 0 (needs write access).
    pub fn truncate(&mut self, truncate: bool) -> &mut Self {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (needs write or append access).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Create the file, failing with [`AlreadyExists`](io::ErrorKind::AlreadyExists) if it
    /// exists (atomically: `O_CREAT | O_EXCL`). Overrides [`create`](Self::create) and
    /// [`truncate`](Self::truncate).
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.create_new = create_new;
        self
    }

    /// The permission bits a newly created file gets (before the umask); default `0o666`.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Extra `open(2)` flags, or-ed into those the other options choose (`O_DIRECT`,
    /// `O_NOFOLLOW`, `O_NOATIME`, ...). The access-mode bits (`O_ACCMODE`) are ignored, as
    /// std ignores them: [`read`](Self::read) and [`write`](Self::write) set the access.
    ///
    /// With `O_DIRECT`, reads and writes need buffers, offsets and lengths aligned as the
    /// file system requires (often 512 bytes or 4 KiB), or fail with `EINVAL`.
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    /// Opens `path` with these options.
    ///
    /// # Errors
    ///
    /// The operating system's error, with its kind (`NotFound`, `PermissionDenied`,
    /// `AlreadyExists`, ...), and `InvalidInput` for a contradictory set of options (say,
    /// `create` without write access); the message names the path (see the
    /// [module docs](crate::fs#errors)).
    ///
    /// # Panics
    ///
    /// When polled outside a weft runtime.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_path_buf();
        match backend::open(path.clone(), self.clone()).await {
            Ok(fd) => Ok(File::from_parts(fd, path)),
            Err(e) => Err(with_path("open", &path, e)),
        }
    }

    /// `open(2)` flags and mode for these options, with std's validation: the same
    /// `InvalidInput` (`EINVAL`) where `std::fs::OpenOptions::open` would refuse them.
    pub(crate) fn open_flags(&self) -> io::Result<(i32, u32)> {
        let invalid = || Err(io::Error::from_raw_os_error(libc::EINVAL));
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return invalid(),
        };
        if !self.write && !self.append {
            if self.truncate || self.create || self.create_new {
                return invalid();
            }
        } else if self.append && self.truncate && !self.create_new {
            return invalid();
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        };
        let custom = self.custom_flags & !libc::O_ACCMODE;
        Ok((libc::O_CLOEXEC | access | creation | custom, self.mode))
    }

    /// The same options for `std::fs` (the blocking backend).
    pub(crate) fn to_std(&self) -> std::fs::OpenOptions {
        let mut o = std::fs::OpenOptions::new();
        o.read(self.read)
            .write(self.write)
            .append(self.append)
            .truncate(self.truncate)
            .create(self.create)
            .create_new(self.create_new)
            .mode(self.mode)
            .custom_flags(self.custom_flags);
        o
    }
}
