//! Helpers shared by the integration tests: drop-counting payloads, a tiny RNG, a hang
//! watchdog, a minimal executor-free `block_on`, and the stress scale knob.
//!
//! Not every test binary uses every helper.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// `WEFT_TEST_WATCHDOG_SCALE` (default 1): multiplies every hang limit, for slow
/// environments such as valgrind.
fn watchdog_scale() -> u32 {
    std::env::var("WEFT_TEST_WATCHDOG_SCALE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(1)
}

/// How long one watched operation may run before it is declared hung: 60 s, times
/// `WEFT_TEST_WATCHDOG_SCALE`. Only a hang detector: no assertion compares a duration.
pub fn watchdog_limit() -> Duration {
    Duration::from_secs(60) * watchdog_scale()
}

/// `WEFT_STRESS_SCALE` (a factor, default 1.0) applied to `n`, at least `min`.
///
/// `ci/valgrind.sh` sets it to 0.01 so that the stress tests finish under valgrind.
pub fn scaled(n: usize, min: usize) -> usize {
    let scale = std::env::var("WEFT_STRESS_SCALE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(min)
}

/// Per-item drop counters, so that "dropped exactly once" is checked for every payload,
/// not only in aggregate.
pub struct DropLog {
    per_item: Vec<AtomicU8>,
    total: AtomicUsize,
}

impl DropLog {
    pub fn new(n: usize) -> Arc<DropLog> {
        Arc::new(DropLog {
            per_item: (0..n).map(|_| AtomicU8::new(0)).collect(),
            total: AtomicUsize::new(0),
        })
    }

    pub fn total(&self) -> usize {
        self.total.load(SeqCst)
    }

    pub fn count(&self, id: usize) -> u8 {
        self.per_item[id].load(SeqCst)
    }

    /// Panics (with the first offending id) unless every item was dropped exactly once.
    #[track_caller]
    pub fn assert_each_once(&self) {
        for (id, c) in self.per_item.iter().enumerate() {
            let c = c.load(SeqCst);
            assert_eq!(
                c, 1,
                "payload {id} was dropped {c} times (expected exactly once)"
            );
        }
        assert_eq!(self.total(), self.per_item.len());
    }

    /// Panics unless no item was dropped yet.
    #[track_caller]
    pub fn assert_none(&self) {
        assert_eq!(self.total(), 0, "payloads dropped too early");
    }
}

/// A value that records its drop in a [`DropLog`].
pub struct Payload {
    id: usize,
    log: Arc<DropLog>,
}

impl Payload {
    pub fn new(log: &Arc<DropLog>, id: usize) -> Payload {
        Payload {
            id,
            log: log.clone(),
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.log.per_item[self.id].fetch_add(1, SeqCst);
        self.log.total.fetch_add(1, SeqCst);
    }
}

/// The simplest drop counter: one shared count.
#[derive(Clone)]
pub struct Counted(pub Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// xorshift64*: deterministic, no crate.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Runs `f` on its own thread and fails the test if it does not finish within
/// [`watchdog_limit`] (a hang, not a slow run). A panic in `f` is re-raised here.
#[track_caller]
pub fn watchdog<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    watchdog_within(what, watchdog_limit(), f)
}

/// [`watchdog`] with its own limit (times `WEFT_TEST_WATCHDOG_SCALE`), for operations that
/// take milliseconds when they work.
#[track_caller]
pub fn watchdog_within<R: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let limit = limit * watchdog_scale();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::Builder::new()
        .name(format!("watchdog:{what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => {
            t.join().unwrap();
            r
        }
        Ok(Err(payload)) => {
            let _ = t.join();
            std::panic::resume_unwind(payload)
        }
        Err(_) => panic!("{what}: hung (no result within {limit:?})"),
    }
}

/// Ends the whole test process if it is still running after 300 s (times
/// `WEFT_TEST_WATCHDOG_SCALE`): a hang anywhere, even in code no [`watchdog`] wraps, then
/// fails the run instead of blocking it forever. Every test calls it first; only the first
/// call starts the timer.
pub fn hang_guard() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let secs = 300 * u64::from(watchdog_scale());
        std::thread::Builder::new()
            .name("hang-guard".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_secs(secs));
                eprintln!("test process still running after {secs} s: a test hung; aborting");
                std::process::exit(124);
            })
            .unwrap();
    });
}

/// Spins (sleeping briefly) until `cond` holds; fails after [`watchdog_limit`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    let limit = watchdog_limit();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: never happened (hang)");
        std::thread::sleep(Duration::from_micros(200));
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` to completion on this thread without any runtime (for join handles that
/// outlive their runtime).
pub fn block_on_plain<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Polls `fut` once with a waker that does nothing.
pub fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

/// A one-shot event any number of tasks can await and any thread can fire.
#[derive(Clone, Default)]
pub struct Signal {
    inner: Arc<Mutex<(bool, Vec<Waker>)>>,
}

impl Signal {
    pub fn new() -> Signal {
        Signal::default()
    }

    pub fn fire(&self) {
        let ws = {
            let mut g = self.inner.lock().unwrap();
            g.0 = true;
            std::mem::take(&mut g.1)
        };
        for w in ws {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.inner.lock().unwrap().0
    }

    pub fn wait(&self) -> SignalWait {
        SignalWait(self.clone())
    }
}

pub struct SignalWait(Signal);

impl Future for SignalWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.0.inner.lock().unwrap();
        if g.0 {
            return Poll::Ready(());
        }
        if !g.1.iter().any(|w| w.will_wake(cx.waker())) {
            g.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A future that is pending forever and records how often it was polled.
pub struct PendingForever {
    pub polls: Arc<AtomicUsize>,
}

impl Future for PendingForever {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, SeqCst);
        Poll::Pending
    }
}

/// Installs (once per process) a panic hook that stays silent for panics whose message
/// starts with `"[expected]"`, so intentional panics do not flood the output; every other
/// panic is reported by the default hook.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str()))
                .unwrap_or("");
            if !msg.starts_with("[expected]") {
                default(info);
            }
        }));
    });
}

/// A flag with `SeqCst` everywhere, for readability.
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    pub fn new() -> Flag {
        Flag::default()
    }
    pub fn set(&self) {
        self.0.store(true, SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(SeqCst)
    }
}
