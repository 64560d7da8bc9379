//! The whole `weft::fs` surface — metadata, directories, links, renames, copies,
//! permissions, `read_dir`, and the `File` and `OpenOptions` extras — against std's answer
//! for the same file, and on bad input: missing paths, a file where a directory is
//! expected and the reverse, existing targets, permission denied (a child process run as
//! `nobody`), NUL bytes, and a rename across file systems. The suite runs again with
//! `WEFT_IO_DRIVER=fallback` (`.ci/run`), so each answer is checked on both backends.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use weft_runtime::Runtime;
use weft_runtime::fs::{self, File, OpenOptions};

/// Every allocation of 4 KiB or more is 4 KiB-aligned in this test binary, so that a
/// `Vec::with_capacity(4096)` satisfies `O_DIRECT`'s alignment. The rule depends only on
/// the layout, so `dealloc` sees the same alignment `alloc` used.
struct PageAligned;

fn page_layout(layout: Layout) -> Layout {
    if layout.size() >= 4096 {
        Layout::from_size_align(layout.size(), layout.align().max(4096)).unwrap()
    } else {
        layout
    }
}

// SAFETY: forwards to `System` with a layout that is valid (same size, a larger power of
// two alignment) and the same for the matching `dealloc`.
unsafe impl GlobalAlloc for PageAligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout has a non-zero size; so has the adjusted one.
        unsafe { System.alloc(page_layout(layout)) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with `page_layout(layout)`.
        unsafe { System.dealloc(ptr, page_layout(layout)) }
    }
}

#[global_allocator]
static ALLOC: PageAligned = PageAligned;

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// A directory unique to this process and call under `base`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        TempDir::under(&std::env::temp_dir(), name)
    }

    fn under(base: &Path, name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, SeqCst);
        let p = base.join(format!("weft-fs-api-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts `e` has `kind` and names every path in `paths`.
#[track_caller]
fn assert_err(e: io::Error, kind: ErrorKind, paths: &[&Path]) {
    assert_eq!(e.kind(), kind, "{e}");
    for p in paths {
        assert!(
            e.to_string().contains(&*p.to_string_lossy()),
            "{e} does not name {}",
            p.display()
        );
    }
}

/// Runs `f` in a fresh runtime, on a worker (where the ring is) and in `block_on`.
fn both_threads<F, Fut>(f: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = rt();
    rt.block_on(f());
    let f = std::sync::Arc::new(f);
    rt.block_on(async move { weft_runtime::spawn(async move { f().await }).await.unwrap() });
}

#[test]
fn metadata_matches_std() {
    both_threads(|| async {
        let dir = TempDir::new("meta");
        let file = dir.join("f");
        std::fs::write(&file, [7u8; 1234]).unwrap();
        std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
        for (path, follow) in [
            (file.clone(), true),
            (dir.0.clone(), true),
            (dir.join("link"), true),
            (dir.join("link"), false),
        ] {
            let (ours, theirs) = if follow {
                (
                    fs::metadata(&path).await.unwrap(),
                    std::fs::metadata(&path).unwrap(),
                )
            } else {
                let m = fs::symlink_metadata(&path).await.unwrap();
                (m, std::fs::symlink_metadata(&path).unwrap())
            };
            assert_eq!(ours.len(), theirs.len());
            assert_eq!(ours.is_file(), theirs.is_file());
            assert_eq!(ours.is_dir(), theirs.is_dir());
            assert_eq!(ours.is_symlink(), theirs.is_symlink());
            assert_eq!(ours.file_type().is_file(), theirs.file_type().is_file());
            assert_eq!(ours.file_type().is_dir(), theirs.file_type().is_dir());
            assert_eq!(
                ours.file_type().is_symlink(),
                theirs.file_type().is_symlink()
            );
            assert_eq!(ours.permissions(), theirs.permissions());
            assert_eq!(ours.modified().unwrap(), theirs.modified().unwrap());
            assert_eq!(ours.accessed().unwrap(), theirs.accessed().unwrap());
            match (ours.created(), theirs.created()) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(_)) => assert_eq!(a.kind(), ErrorKind::Unsupported),
                (a, b) => panic!("created: ours {a:?}, std's {b:?}"),
            }
            assert_eq!(ours.mode(), theirs.mode());
            assert_eq!(ours.uid(), theirs.uid());
            assert_eq!(ours.gid(), theirs.gid());
            assert_eq!(ours.ino(), theirs.ino());
            assert_eq!(ours.dev(), theirs.dev());
            assert_eq!(ours.nlink(), theirs.nlink());
            assert_eq!(ours.blksize(), theirs.blksize());
            assert_eq!(ours.blocks(), theirs.blocks());
            assert_eq!(ours.ctime(), theirs.ctime());
        }
        assert!(
            fs::symlink_metadata(dir.join("link"))
                .await
                .unwrap()
                .is_symlink()
        );
        assert!(fs::metadata(dir.join("link")).await.unwrap().is_file());

        let f = File::open(&file).await.unwrap();
        let m = f.metadata().await.unwrap();
        assert_eq!(m.len(), 1234);
        assert_eq!(m.ino(), std::fs::metadata(&file).unwrap().ino());
        assert!(m.is_file());
    });
}

#[test]
fn metadata_bad_input() {
    both_threads(|| async {
        let dir = TempDir::new("meta-bad");
        let file = dir.join("f");
        std::fs::write(&file, "x").unwrap();
        let missing = dir.join("missing");
        assert_err(
            fs::metadata(&missing).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&missing],
        );
        assert_err(
            fs::symlink_metadata(&missing).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&missing],
        );
        let under_file = file.join("x");
        assert_err(
            fs::metadata(&under_file).await.unwrap_err(),
            ErrorKind::NotADirectory,
            &[&under_file],
        );
        let nul = PathBuf::from("/tmp/weft\0nul");
        assert_err(
            fs::metadata(&nul).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&nul],
        );
        assert_err(
            fs::create_dir(&nul).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&nul],
        );
        assert_err(
            fs::remove_file(&nul).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&nul],
        );
        assert_err(
            fs::rename(&file, &nul).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&file],
        );
        assert_err(
            File::open(&nul).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&nul],
        );

        assert!(fs::try_exists(&file).await.unwrap());
        assert!(!fs::try_exists(&missing).await.unwrap());
        assert_err(
            fs::try_exists(&under_file).await.unwrap_err(),
            ErrorKind::NotADirectory,
            &[&under_file],
        );
    });
}

#[test]
fn directories() {
    both_threads(|| async {
        let dir = TempDir::new("dirs");
        let d = dir.join("d");
        fs::create_dir(&d).await.unwrap();
        assert!(std::fs::metadata(&d).unwrap().is_dir());
        assert_err(
            fs::create_dir(&d).await.unwrap_err(),
            ErrorKind::AlreadyExists,
            &[&d],
        );
        let orphan = dir.join("no/parent");
        assert_err(
            fs::create_dir(&orphan).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&orphan],
        );

        let deep = dir.join("a/b/c");
        fs::create_dir_all(&deep).await.unwrap();
        fs::create_dir_all(&deep).await.unwrap();
        assert!(std::fs::metadata(&deep).unwrap().is_dir());
        let file = dir.join("f");
        std::fs::write(&file, "x").unwrap();
        let through_file = file.join("sub");
        assert!(fs::create_dir_all(&through_file).await.is_err());

        // A directory where a file is expected, and the reverse.
        assert_err(
            fs::remove_file(&d).await.unwrap_err(),
            ErrorKind::IsADirectory,
            &[&d],
        );
        assert_err(
            fs::remove_dir(&file).await.unwrap_err(),
            ErrorKind::NotADirectory,
            &[&file],
        );
        let a = dir.join("a");
        assert_err(
            fs::remove_dir(&a).await.unwrap_err(),
            ErrorKind::DirectoryNotEmpty,
            &[&a],
        );
        fs::remove_dir(&d).await.unwrap();
        assert!(!d.exists());
        assert_err(
            fs::remove_dir(&d).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&d],
        );
        fs::remove_file(&file).await.unwrap();
        assert!(!file.exists());
        assert_err(
            fs::remove_file(&file).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&file],
        );

        fs::remove_dir_all(&a).await.unwrap();
        assert!(!a.exists());
        assert_err(
            fs::remove_dir_all(&a).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&a],
        );
    });
}

#[test]
fn renames_and_links() {
    both_threads(|| async {
        let dir = TempDir::new("links");
        let a = dir.join("a");
        let b = dir.join("b");
        std::fs::write(&a, "contents").unwrap();
        fs::rename(&a, &b).await.unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "contents");
        assert_err(
            fs::rename(&a, &b).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&a, &b],
        );
        // Replaces an existing file.
        std::fs::write(&a, "new").unwrap();
        fs::rename(&a, &b).await.unwrap();
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new");
        // A directory onto a file, and a file onto a directory.
        let d = dir.join("d");
        std::fs::create_dir(&d).unwrap();
        assert_err(
            fs::rename(&d, &b).await.unwrap_err(),
            ErrorKind::NotADirectory,
            &[&d, &b],
        );
        assert_err(
            fs::rename(&b, &d).await.unwrap_err(),
            ErrorKind::IsADirectory,
            &[&b, &d],
        );

        let hard = dir.join("hard");
        fs::hard_link(&b, &hard).await.unwrap();
        assert_eq!(fs::metadata(&b).await.unwrap().nlink(), 2);
        assert_eq!(
            fs::metadata(&hard).await.unwrap().ino(),
            fs::metadata(&b).await.unwrap().ino()
        );
        assert_err(
            fs::hard_link(&b, &hard).await.unwrap_err(),
            ErrorKind::AlreadyExists,
            &[&b, &hard],
        );
        assert_err(
            fs::hard_link(&a, dir.join("x")).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&a],
        );

        let soft = dir.join("soft");
        fs::symlink("b", &soft).await.unwrap();
        assert_eq!(fs::read_link(&soft).await.unwrap(), Path::new("b"));
        assert_eq!(fs::read_to_string(&soft).await.unwrap(), "new");
        assert_err(
            fs::symlink("b", &soft).await.unwrap_err(),
            ErrorKind::AlreadyExists,
            &[&soft],
        );
        assert_err(
            fs::read_link(&b).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&b],
        );
        assert_err(
            fs::read_link(&a).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&a],
        );

        assert_eq!(
            fs::canonicalize(&soft).await.unwrap(),
            std::fs::canonicalize(&b).unwrap()
        );
        let dotted = dir.0.join("d/../b");
        assert_eq!(
            fs::canonicalize(&dotted).await.unwrap(),
            std::fs::canonicalize(&b).unwrap()
        );
        assert_err(
            fs::canonicalize(&a).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&a],
        );

        let copied = dir.join("copied");
        assert_eq!(fs::copy(&b, &copied).await.unwrap(), 3);
        assert_eq!(std::fs::read(&copied).unwrap(), b"new");
        assert_err(
            fs::copy(&a, &copied).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&a, &copied],
        );
        assert_err(
            fs::copy(&d, dir.join("y")).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&d],
        );
    });
}

/// A rename from /tmp to /dev/shm crosses file systems: `EXDEV`, `CrossesDevices`.
#[test]
fn rename_across_devices() {
    let shm = Path::new("/dev/shm");
    let tmp_dev = std::fs::metadata(std::env::temp_dir()).unwrap().dev();
    if !shm.is_dir() || std::fs::metadata(shm).unwrap().dev() == tmp_dev {
        println!("skipped: /dev/shm is missing or on the temp dir's file system");
        return;
    }
    both_threads(|| async {
        let here = TempDir::new("xdev");
        let there = TempDir::under(Path::new("/dev/shm"), "xdev");
        let from = here.join("f");
        let to = there.join("f");
        std::fs::write(&from, "x").unwrap();
        let e = fs::rename(&from, &to).await.unwrap_err();
        let raw = std::error::Error::source(e.get_ref().unwrap())
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error);
        assert_eq!(raw, Some(libc::EXDEV), "{e}");
        assert_err(e, ErrorKind::CrossesDevices, &[&from, &to]);
        let link = there.join("hard");
        assert_err(
            fs::hard_link(&from, &link).await.unwrap_err(),
            ErrorKind::CrossesDevices,
            &[&from, &link],
        );
        assert!(from.exists());
    });
}

#[test]
fn read_dir_lists_every_entry_in_batches() {
    both_threads(|| async {
        let dir = TempDir::new("readdir");
        let mut want: Vec<String> = (0..300).map(|i| format!("e{i:03}")).collect();
        for name in &want[..299] {
            std::fs::write(dir.join(name), name).unwrap();
        }
        std::fs::create_dir(dir.join(&want[299])).unwrap();
        let mut got = Vec::new();
        let mut entries = fs::read_dir(&dir.0).await.unwrap();
        loop {
            // Every few entries, a call dropped mid-batch: no entry may be lost.
            if got.len() % 50 == 7 {
                let step = weft_runtime::time::timeout(Duration::ZERO, entries.next_entry());
                if let Ok(next) = step.await {
                    match next.unwrap() {
                        Some(e) => got.push(e),
                        None => break,
                    }
                    continue;
                }
            }
            match entries.next_entry().await.unwrap() {
                Some(e) => got.push(e),
                None => break,
            }
        }
        assert!(entries.next_entry().await.unwrap().is_none());
        let mut names: Vec<String> = got
            .iter()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        want.sort();
        assert_eq!(names, want);
        for e in &got {
            assert_eq!(e.path(), dir.0.join(e.file_name()));
            let is_dir = e.file_name() == *want[299];
            assert_eq!(e.file_type().await.unwrap().is_dir(), is_dir);
            let m = e.metadata().await.unwrap();
            assert_eq!(m.is_dir(), is_dir);
            if !is_dir {
                assert_eq!(m.len(), 4);
            }
        }

        let file = dir.join("e000");
        assert_err(
            fs::read_dir(&file).await.unwrap_err(),
            ErrorKind::NotADirectory,
            &[&file],
        );
        let missing = dir.join("missing");
        assert_err(
            fs::read_dir(&missing).await.unwrap_err(),
            ErrorKind::NotFound,
            &[&missing],
        );
        let mut empty = fs::read_dir(dir.join(&want[299])).await.unwrap();
        assert!(empty.next_entry().await.unwrap().is_none());
    });
}

#[test]
fn permissions() {
    both_threads(|| async {
        let dir = TempDir::new("perm");
        let p = dir.join("f");
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .await
            .unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))
            .await
            .unwrap();
        assert_eq!(
            fs::metadata(&p).await.unwrap().permissions().mode() & 0o777,
            0o640
        );
        f.set_permissions(std::fs::Permissions::from_mode(0o604))
            .await
            .unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o604);
        let missing = dir.join("missing");
        assert_err(
            fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o600))
                .await
                .unwrap_err(),
            ErrorKind::NotFound,
            &[&missing],
        );
    });
}

#[test]
fn file_extras() {
    both_threads(|| async {
        let dir = TempDir::new("file");
        let p = dir.join("f");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&p)
            .await
            .unwrap();
        let (res, _) = f.write_all_at(b"hello".to_vec(), 0).await;
        res.unwrap();
        assert_eq!(f.as_raw_fd(), f.as_fd().as_raw_fd());
        let std_meta = std::fs::metadata(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
        assert_eq!(std_meta.ino(), std::fs::metadata(&p).unwrap().ino());

        let clone = f.try_clone().await.unwrap();
        assert_ne!(clone.as_raw_fd(), f.as_raw_fd());
        assert_eq!(clone.path(), f.path());
        clone.set_len(2).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 2);
        clone.close().await.unwrap();

        let mut std_file = f.into_std().await;
        let mut s = String::new();
        io::Read::read_to_string(&mut std_file, &mut s).unwrap();
        assert_eq!(s, "he");

        let ro = File::open(&p).await.unwrap();
        assert_err(
            ro.set_len(0).await.unwrap_err(),
            ErrorKind::InvalidInput,
            &[&p],
        );
    });
}

/// `custom_flags(O_DIRECT)` with 4 KiB-aligned buffers (this binary's allocator aligns
/// them), on the first of the temp dir, /var/tmp and /dev/shm that takes `O_DIRECT`.
#[test]
fn custom_flags_o_direct() {
    both_threads(|| async {
        let mut tried = Vec::new();
        for base in [std::env::temp_dir(), "/var/tmp".into(), "/dev/shm".into()] {
            if !base.is_dir() {
                continue;
            }
            let dir = TempDir::under(&base, "direct");
            let p = dir.join("f");
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .custom_flags(libc::O_DIRECT)
                .open(&p)
                .await;
            let f = match opened {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::InvalidInput => {
                    tried.push(format!("{}: {e}", base.display()));
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            // The flag reached the kernel.
            // SAFETY: F_GETFL on a descriptor the File keeps open.
            let fl = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
            assert_ne!(fl & libc::O_DIRECT, 0);
            let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
            assert_eq!(data.as_ptr() as usize % 4096, 0);
            let (res, _) = f.write_all_at(data.clone(), 4096).await;
            res.unwrap();
            let buf = Vec::with_capacity(4096);
            assert_eq!(buf.as_ptr() as usize % 4096, 0);
            let (res, buf) = f.read_exact_at(buf, 4096).await;
            res.unwrap();
            assert_eq!(buf, data);
            f.close().await.unwrap();
            return;
        }
        println!("skipped: no file system here takes O_DIRECT: {tried:?}");
    });
}

/// Permission denied, for real: a child process of this test binary, run as `nobody`
/// (`setpriv`), works on a root-owned directory it may not enter or change.
#[test]
fn permission_denied_as_nobody() {
    if let Ok(dir) = std::env::var("WEFT_FS_API_CHILD") {
        return child_checks(Path::new(&dir));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: not root, cannot switch to nobody");
        return;
    }
    let dir = TempDir::new("eacces");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let closed = dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::write(closed.join("f"), "x").unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("f"), "x").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "--exact",
            "permission_denied_as_nobody",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WEFT_FS_API_CHILD", &dir.0)
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: setpriv did not run: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("child checks passed"), "{stdout}");
}

fn child_checks(dir: &Path) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    both_threads({
        let dir = dir.to_path_buf();
        move || {
            let dir = dir.clone();
            async move {
                let denied = ErrorKind::PermissionDenied;
                let closed = dir.join("closed");
                let inner = closed.join("f");
                assert_err(fs::metadata(&inner).await.unwrap_err(), denied, &[&inner]);
                assert_err(fs::try_exists(&inner).await.unwrap_err(), denied, &[&inner]);
                assert_err(fs::read_dir(&closed).await.unwrap_err(), denied, &[&closed]);
                let f = dir.join("f");
                let sub = dir.join("sub");
                let new = dir.join("new");
                assert_err(fs::create_dir(&new).await.unwrap_err(), denied, &[&new]);
                assert_err(fs::remove_file(&f).await.unwrap_err(), denied, &[&f]);
                assert_err(fs::remove_dir(&sub).await.unwrap_err(), denied, &[&sub]);
                assert_err(fs::rename(&f, &new).await.unwrap_err(), denied, &[&f, &new]);
                assert_err(fs::symlink(&f, &new).await.unwrap_err(), denied, &[&new]);
                let mine = std::env::temp_dir().join(format!("weft-nobody-{}", std::process::id()));
                std::fs::write(&mine, "x").unwrap();
                let link = dir.join("link");
                let e = fs::hard_link(&mine, &link).await.unwrap_err();
                std::fs::remove_file(&mine).unwrap();
                assert_err(e, denied, &[&mine, &link]);
                assert_err(
                    fs::set_permissions(&f, std::fs::Permissions::from_mode(0o777))
                        .await
                        .unwrap_err(),
                    ErrorKind::PermissionDenied,
                    &[&f],
                );
                assert_err(File::create(&f).await.unwrap_err(), denied, &[&f]);
            }
        }
    });
    println!("child checks passed");
}
