//! The mock service every pattern calls: `svc(kind, x) -> Result<u64, SvcError>`.
//!
//! The stand-in for the article's `fetchUser`, `getPosts`, `readFile`: its value is a pure
//! function of `x` ([`expected`]), so every style must produce bit-identical results, and
//! its [`Kind`] says how the result arrives — through one pass of the scheduler, one 4 KiB
//! read through the reactor, a timer, or a request and reply over loopback TCP.
//!
//! Three faces of the same service:
//! - [`svc`] / [`svc_fail`]: a named, unboxed future ([`Svc`]) for the two future styles;
//! - [`svc_cb`] / [`svc_fail_cb`]: error-first callbacks for the callback style, returning a
//!   [`SvcHandle`] that cancels a pending timer call;
//! - [`Env::call`](crate::Env::call): the same future behind a trait, so that the
//!   `async fn` patterns also run on tokio as the baseline.
//!
//! # The data file
//!
//! `file` calls read block `x % BLOCKS` of a 64 MiB file of little-endian `u64` words, word
//! `w` holding `step(w)`. It is created once per machine (in the temp directory, written to
//! a temporary name and renamed, so concurrent processes never see half a file) and
//! opened once per process ([`data_file`]).

use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use weft::callback::{self, Callback, Cancel, TimeoutHandle};
use weft::fs::File;

/// Blocks in the data file.
pub const BLOCKS: u64 = 16_384;
/// Bytes per block (and per `file` call).
pub const BLOCK_SIZE: usize = 4096;
/// The data file's size: 64 MiB.
pub const DATA_SIZE: u64 = BLOCKS * BLOCK_SIZE as u64;
const WORDS_PER_BLOCK: u64 = (BLOCK_SIZE / 8) as u64;

/// The service's step: a 64-bit LCG (Knuth's MMIX constants).
///
/// ```
/// assert_eq!(weft_patterns::step(0), 1442695040888963407);
/// ```
#[inline]
pub const fn step(x: u64) -> u64 {
    x.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
}

/// The first word of block `b` of the data file.
#[inline]
pub const fn block_head(b: u64) -> u64 {
    step(b * WORDS_PER_BLOCK)
}

/// What `svc(kind, x)` returns when it succeeds.
///
/// ```
/// use weft_patterns::{expected, step, Kind};
/// assert_eq!(expected(Kind::Ready, 3), step(3));
/// ```
#[inline]
pub fn expected(kind: Kind, x: u64) -> u64 {
    match kind {
        Kind::File => step(x) ^ block_head(x % BLOCKS),
        Kind::Ready | Kind::Timer(_) | Kind::Net => step(x),
    }
}

/// How a service call's result arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Through exactly one pass of the scheduler: a future wakes itself and returns
    /// `Pending` once; a callback is deferred onto the run queue. Never inline.
    Ready,
    /// One 4 KiB read of block `x % BLOCKS` from the data file, through the reactor.
    File,
    /// After the duration, through the reactor's timers.
    Timer(Duration),
    /// One 9-byte request and its 9-byte reply over loopback TCP to the runtime's mock
    /// server, on a pooled persistent connection ([`crate::net`]).
    Net,
}

impl Kind {
    /// The contract's `timer` kind: 1 ms.
    pub const TIMER: Kind = Kind::Timer(Duration::from_millis(1));

    /// `timer` with another delay.
    pub const fn timer_ms(ms: u64) -> Kind {
        Kind::Timer(Duration::from_millis(ms))
    }

    /// The kind's name in tables: `ready`, `file`, `timer` (or `timer(5ms)`).
    pub fn name(&self) -> String {
        match self {
            Kind::Ready => "ready".into(),
            Kind::File => "file".into(),
            Kind::Net => "net".into(),
            Kind::Timer(d) if *d == Duration::from_millis(1) => "timer".into(),
            Kind::Timer(d) => format!("timer({}ms)", d.as_millis()),
        }
    }

    /// Parses a name written by [`name`](Kind::name) (`ready`, `file`, `timer`, `net`).
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "ready" => Some(Kind::Ready),
            "file" => Some(Kind::File),
            "timer" => Some(Kind::TIMER),
            "net" => Some(Kind::Net),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The service's failure: `svc_fail(kind, x)` fails with `SvcError(x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SvcError(pub u64);

impl fmt::Display for SvcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service call {} failed", self.0)
    }
}

impl std::error::Error for SvcError {}

// --- the data file -------------------------------------------------------------------------

/// Where the data file lives: `$WEFT_PATTERNS_DATA` or the temp directory.
pub fn data_path() -> PathBuf {
    match std::env::var_os("WEFT_PATTERNS_DATA") {
        Some(p) => PathBuf::from(p),
        None => std::env::temp_dir().join("weft-patterns-data-v1.bin"),
    }
}

fn data_is_valid(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    if f.metadata().map(|m| m.len()).unwrap_or(0) != DATA_SIZE {
        return false;
    }
    // Spot-check a few blocks' first and last words.
    [0, 1, 4095, BLOCKS - 1].iter().all(|&b| {
        let mut w = [0u8; 8];
        let last = b * WORDS_PER_BLOCK + WORDS_PER_BLOCK - 1;
        f.read_exact_at(&mut w, b * BLOCK_SIZE as u64).is_ok()
            && u64::from_le_bytes(w) == block_head(b)
            && f.read_exact_at(&mut w, last * 8).is_ok()
            && u64::from_le_bytes(w) == step(last)
    })
}

fn create_data(path: &std::path::Path) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut out = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        for w in 0..DATA_SIZE / 8 {
            out.write_all(&step(w).to_le_bytes())?;
        }
        out.flush()?;
    }
    std::fs::rename(&tmp, path)
}

/// The data file, created if missing (or wrong) and opened once per process.
///
/// # Panics
///
/// If the file cannot be created or opened: the `file` kind cannot run without it, and the
/// message names the path.
pub fn data_file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = data_path();
        if !data_is_valid(&path) {
            if let Err(e) = create_data(&path) {
                panic!("cannot create the data file {}: {e}", path.display());
            }
        }
        match std::fs::File::open(&path) {
            Ok(f) => File::from_std(f, path),
            Err(e) => panic!("cannot open the data file {}: {e}", path.display()),
        }
    })
}

/// The std twin of [`data_file`], for baselines that read with `pread`.
pub fn data_file_std() -> &'static std::sync::Arc<std::fs::File> {
    static FILE: OnceLock<std::sync::Arc<std::fs::File>> = OnceLock::new();
    FILE.get_or_init(|| {
        data_file();
        let path = data_path();
        match std::fs::File::open(&path) {
            Ok(f) => std::sync::Arc::new(f),
            Err(e) => panic!("cannot open the data file {}: {e}", path.display()),
        }
    })
}

/// Decodes a block read: the service's value for `x` from the block's bytes.
///
/// # Panics
///
/// If the read failed or came back short: the data file is broken, which no pattern can
/// report as a service error.
pub fn file_value(x: u64, read: (io::Result<usize>, Vec<u8>)) -> u64 {
    let (res, buf) = read;
    match res {
        Ok(n) if n >= 8 => {
            let head = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
            step(x) ^ head
        }
        Ok(n) => panic!(
            "short read of the data file: {n} bytes for block {}",
            x % BLOCKS
        ),
        Err(e) => panic!("reading the data file: {e}"),
    }
}

// --- probes (tests only) -------------------------------------------------------------------

static PROBE: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicU64 = AtomicU64::new(0);
static COMPLETED: AtomicU64 = AtomicU64::new(0);

/// Counts service calls started and completed, for tests that check cancelled work
/// stopped. Off by default (one relaxed load per call); process-wide, so tests that use it
/// must not run concurrently with each other.
pub mod probe {
    use super::*;

    /// Turns counting on and resets the counters.
    pub fn enable() {
        STARTED.store(0, Relaxed);
        COMPLETED.store(0, Relaxed);
        PROBE.store(true, Relaxed);
    }

    /// Turns counting off.
    pub fn disable() {
        PROBE.store(false, Relaxed);
    }

    /// Calls started since [`enable`].
    pub fn started() -> u64 {
        STARTED.load(Relaxed)
    }

    /// Calls that delivered a result (a future that returned `Ready`, a callback that was
    /// called) since [`enable`].
    pub fn completed() -> u64 {
        COMPLETED.load(Relaxed)
    }
}

#[inline]
fn count(c: &AtomicU64) {
    if PROBE.load(Relaxed) {
        c.fetch_add(1, Relaxed);
    }
}

/// Counts a call started (the tokio baseline's service uses it too).
#[inline]
pub(crate) fn count_started() {
    count(&STARTED)
}

/// Counts a call completed.
#[inline]
pub(crate) fn count_completed() {
    count(&COMPLETED)
}

#[inline]
pub(crate) fn outcome(kind: Kind, x: u64, fail: bool, value: u64) -> Result<u64, SvcError> {
    let _ = kind;
    count_completed();
    if fail { Err(SvcError(x)) } else { Ok(value) }
}

// --- the future ----------------------------------------------------------------------------

/// A started call of any kind but `ready`, producing its outcome (and counting it).
type Boxed = Pin<Box<dyn Future<Output = Result<u64, SvcError>> + Send>>;

/// Where a call is (of weft's [`Svc`], and of the tokio baseline's twin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not polled yet (a `ready` call), or not complete yet (any other).
    Fresh,
    /// A `ready` call that woke its task and returned `Pending` once.
    Yielded,
    /// Returned its outcome.
    Done,
}

/// The future of [`svc`] and [`svc_fail`].
///
/// A `ready` call is four words, built and polled by small inlined paths (its phase moves
/// from fresh to yielded to done; nothing is allocated or dropped), so that the service
/// adds next to nothing to the style that awaits it. Every other kind is one boxed future,
/// started when the call is made and polled out of line (the `file` read's and the `net`
/// exchange's futures are `async`, whose types cannot be named; the timer's `Sleep` is
/// boxed too, as the tokio baseline's is, so that it does not make every call five words
/// bigger).
#[must_use = "futures do nothing unless polled"]
pub struct Svc {
    /// `None` for a `ready` call.
    other: Option<Boxed>,
    x: u64,
    fail: bool,
    phase: Phase,
}

impl fmt::Debug for Svc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Svc")
            .field("ready", &self.other.is_none())
            .field("x", &self.x)
            .field("fail", &self.fail)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Calls the service: `Ok(expected(kind, x))`, arriving as `kind` says.
///
/// # Examples
///
/// ```
/// use weft_patterns::{expected, svc, Kind};
/// let rt = weft::Runtime::new().unwrap();
/// assert_eq!(rt.block_on(svc(Kind::Ready, 5)), Ok(expected(Kind::Ready, 5)));
/// ```
#[inline]
pub fn svc(kind: Kind, x: u64) -> Svc {
    call(kind, x, false)
}

/// Calls the service down the same path, taking the same time, and fails with
/// `SvcError(x)`.
#[inline]
pub fn svc_fail(kind: Kind, x: u64) -> Svc {
    call(kind, x, true)
}

/// [`svc`] or [`svc_fail`], by `fail`.
#[inline]
pub fn call(kind: Kind, x: u64, fail: bool) -> Svc {
    count_started();
    let other = match kind {
        Kind::Ready => None,
        _ => Some(start(kind, x, fail)),
    };
    Svc {
        other,
        x,
        fail,
        phase: Phase::Fresh,
    }
}

/// A call of any kind but `ready`, started: the timer set, the read made.
#[inline(never)]
fn start(kind: Kind, x: u64, fail: bool) -> Boxed {
    match kind {
        Kind::Ready => unreachable!("a ready call starts inline"),
        Kind::Timer(d) => {
            let sleep = weft::time::sleep(d);
            Box::pin(async move {
                sleep.await;
                outcome(kind, x, fail, step(x))
            })
        }
        Kind::File => {
            let pos = (x % BLOCKS) * BLOCK_SIZE as u64;
            let read = data_file().read_at(Vec::with_capacity(BLOCK_SIZE), pos);
            Box::pin(async move {
                let r = read.await;
                outcome(kind, x, fail, file_value(x, r))
            })
        }
        // The reply decides the outcome (and counts the call complete).
        Kind::Net => crate::net::weft_call(x, fail),
    }
}

impl Svc {
    /// Polls a call of any kind but `ready`.
    #[inline(never)]
    fn poll_other(&mut self, cx: &mut Context<'_>) -> Poll<Result<u64, SvcError>> {
        let other = self.other.as_mut().expect("a ready call is polled inline");
        let out = std::task::ready!(other.as_mut().poll(cx));
        self.phase = Phase::Done;
        self.other = None;
        Poll::Ready(out)
    }
}

impl Future for Svc {
    type Output = Result<u64, SvcError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.phase {
            Phase::Fresh if this.other.is_none() => {
                this.phase = Phase::Yielded;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Phase::Fresh => this.poll_other(cx),
            Phase::Yielded => {
                this.phase = Phase::Done;
                Poll::Ready(outcome(Kind::Ready, this.x, this.fail, step(this.x)))
            }
            Phase::Done => panic!("Svc polled after it completed"),
        }
    }
}

// --- the callbacks -------------------------------------------------------------------------

/// What [`svc_cb`] returns: a way to cancel the call. Only a pending `timer` call can be
/// stopped (its callback then never runs); `ready`, `file` and `net` calls run to
/// completion and a cancelled composite ignores their result.
#[derive(Debug)]
pub enum SvcHandle {
    /// Nothing to cancel.
    Running,
    /// A pending timer.
    Timer(TimeoutHandle),
}

impl Cancel for SvcHandle {
    fn cancel(self) {
        if let SvcHandle::Timer(t) = self {
            t.cancel();
        }
    }
}

/// Calls the service and delivers the outcome to `cb`: from the run queue (`ready`), from
/// the reactor's completion (`file`, `net`), or from a timer (`timer`). Never calls `cb`
/// inline.
///
/// # Examples
///
/// ```
/// use weft_patterns::{expected, svc_cb, Kind, SvcError};
/// let rt = weft::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     svc_cb(Kind::Ready, 5, move |r: Result<u64, SvcError>| tx.send(r).unwrap());
/// });
/// assert_eq!(rx.recv().unwrap(), Ok(expected(Kind::Ready, 5)));
/// ```
#[inline]
pub fn svc_cb(kind: Kind, x: u64, cb: impl Callback<u64, SvcError>) -> SvcHandle {
    call_cb(kind, x, false, cb)
}

/// [`svc_cb`] that fails with `SvcError(x)` after the same path and time.
#[inline]
pub fn svc_fail_cb(kind: Kind, x: u64, cb: impl Callback<u64, SvcError>) -> SvcHandle {
    call_cb(kind, x, true, cb)
}

/// [`svc_cb`] or [`svc_fail_cb`], by `fail`.
///
/// As with [`Svc`], a `ready` call is built by a small inlined path (its deferred closure
/// holds the callback, `x` and `fail`, nothing else), and every other kind starts out of
/// line.
#[inline]
pub fn call_cb(kind: Kind, x: u64, fail: bool, cb: impl Callback<u64, SvcError>) -> SvcHandle {
    count_started();
    match kind {
        Kind::Ready => {
            callback::defer(move || cb.call(outcome(Kind::Ready, x, fail, step(x))));
            SvcHandle::Running
        }
        _ => start_cb(kind, x, fail, cb),
    }
}

/// A callback call of any kind but `ready`, started: the timer set, the read made.
#[inline(never)]
fn start_cb(kind: Kind, x: u64, fail: bool, cb: impl Callback<u64, SvcError>) -> SvcHandle {
    match kind {
        Kind::Ready => unreachable!("a ready call starts inline"),
        Kind::Timer(d) => SvcHandle::Timer(callback::set_timeout(d, move || {
            cb.call(outcome(kind, x, fail, step(x)))
        })),
        Kind::File => {
            let pos = (x % BLOCKS) * BLOCK_SIZE as u64;
            callback::fs::read_at(data_file(), Vec::with_capacity(BLOCK_SIZE), pos, move |r| {
                cb.call(outcome(kind, x, fail, file_value(x, r)))
            });
            SvcHandle::Running
        }
        Kind::Net => {
            crate::net::weft_call_cb(x, fail, cb);
            SvcHandle::Running
        }
    }
}
