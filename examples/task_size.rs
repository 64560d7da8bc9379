//! The size of one spawned task's heap allocation, weft beside tokio.
//!
//! ```text
//! cargo run --release --example task_size
//! ```
//!
//! Two figures for weft: the static one, `weft::task::allocation_size::<F>()`, and the
//! measured one. The measured figures come from a counting `#[global_allocator]` (wrapping
//! `System`) that records every allocation made on one thread while a flag is set: the
//! flag is set around one `spawn` of the future, called from inside a task on a
//! 2-worker runtime, after a warm-up of spawns that lets lazily grown structures (queues,
//! task lists) reach their steady state. What is printed is every allocation that one
//! `spawn` made (size and alignment), and their total. A weft cell that fits a class of
//! the per-thread block cache (up to 248 bytes) comes from it after the warm-up, so its
//! measured figure is no allocation at all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Allocations recorded at most per measured spawn.
const MAX_RECORDS: usize = 16;
/// Empty spawns before the measured one.
const WARM_UP: usize = 10_000;
/// Measured spawns per future (each must allocate the same).
const SAMPLES: usize = 8;

struct Counting;

static RECORDED: AtomicUsize = AtomicUsize::new(0);
static SIZES: [AtomicUsize; MAX_RECORDS] = [const { AtomicUsize::new(0) }; MAX_RECORDS];
static ALIGNS: [AtomicUsize; MAX_RECORDS] = [const { AtomicUsize::new(0) }; MAX_RECORDS];

thread_local! {
    /// Set on the measuring thread only, so other threads' allocations are not counted.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

fn record(layout: Layout) {
    if RECORDING.try_with(Cell::get).unwrap_or(false) {
        let i = RECORDED.fetch_add(1, Relaxed);
        if i < MAX_RECORDS {
            SIZES[i].store(layout.size(), Relaxed);
            ALIGNS[i].store(layout.align(), Relaxed);
        }
    }
}

// SAFETY: every call is forwarded to `System` unchanged; recording only touches atomics and
// a const-initialised thread-local `Cell` (neither allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growth counts as an allocation of the new size.
        // SAFETY: `new_size` is non-zero and fits `isize` with this alignment, by the
        // caller's contract.
        record(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        // SAFETY: as for `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocations one call of `spawn` made on this thread, as `(size, align)`.
fn measure<T>(spawn: impl FnOnce() -> T) -> (T, Vec<(usize, usize)>) {
    RECORDED.store(0, Relaxed);
    RECORDING.with(|r| r.set(true));
    let out = spawn();
    RECORDING.with(|r| r.set(false));
    let n = RECORDED.load(Relaxed);
    assert!(n <= MAX_RECORDS, "{n} allocations in one spawn");
    let allocs = (0..n)
        .map(|i| (SIZES[i].load(Relaxed), ALIGNS[i].load(Relaxed)))
        .collect();
    (out, allocs)
}

/// Checks that every sample allocated the same and returns that.
fn same(samples: Vec<Vec<(usize, usize)>>) -> Vec<(usize, usize)> {
    let first = samples[0].clone();
    for s in &samples {
        assert_eq!(s, &first, "spawns allocated differently: {samples:?}");
    }
    first
}

fn describe(allocs: &[(usize, usize)]) -> String {
    let total: usize = allocs.iter().map(|a| a.0).sum();
    let each: Vec<String> = allocs
        .iter()
        .map(|(size, align)| format!("{size} B (align {align})"))
        .collect();
    format!(
        "{total} B in {} allocation(s): {}",
        allocs.len(),
        if each.is_empty() {
            "-".to_string()
        } else {
            each.join(", ")
        }
    )
}

/// The same future type as `make` returns, for `allocation_size`.
fn weft_static_size<F: Future>(_make: fn() -> F) -> usize {
    weft::task::allocation_size::<F>()
}

fn size_of_future<F: Future>(_make: fn() -> F) -> usize {
    std::mem::size_of::<F>()
}

// Literally `async {}` (the figure asked for), not an `async fn`.
#[allow(clippy::manual_async_fn)]
fn empty() -> impl Future<Output = ()> + Send + 'static {
    async {}
}

fn captures_256() -> impl Future<Output = ()> + Send + 'static {
    let buf = [7u8; 256];
    async move {
        std::hint::black_box(&buf);
    }
}

/// Spawns from inside a weft task: warm-up, then `SAMPLES` measured spawns of `make()`.
fn weft_measure<F>(make: fn() -> F) -> Vec<(usize, usize)>
where
    F: Future<Output = ()> + Send + 'static,
{
    let rt = weft::Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("weft runtime");
    let task = rt.spawn(async move {
        for _ in 0..WARM_UP {
            weft::spawn(async {}).await.unwrap();
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let fut = make();
            let (handle, allocs) = measure(|| weft::spawn(fut));
            samples.push(allocs);
            handle.await.unwrap();
        }
        samples
    });
    same(rt.block_on(task).unwrap())
}

/// As `weft_measure`, on a tokio multi-thread runtime.
fn tokio_measure<F>(make: fn() -> F) -> Vec<(usize, usize)>
where
    F: Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let task = rt.spawn(async move {
        for _ in 0..WARM_UP {
            tokio::spawn(async {}).await.unwrap();
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let fut = make();
            let (handle, allocs) = measure(|| tokio::spawn(fut));
            samples.push(allocs);
            handle.await.unwrap();
        }
        samples
    });
    same(rt.block_on(task).unwrap())
}

fn report<F>(what: &str, make: fn() -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    println!("{what} (size_of future = {} B)", size_of_future(make));
    println!(
        "  weft  allocation_size::<F>() : {} B",
        weft_static_size(make)
    );
    println!(
        "  weft  measured per spawn     : {}",
        describe(&weft_measure(make))
    );
    println!(
        "  tokio measured per spawn     : {}",
        describe(&tokio_measure(make))
    );
}

fn main() {
    println!(
        "one spawn from inside a task, 2 workers, after {WARM_UP} warm-up spawns, \
         {SAMPLES} identical samples each ({} {})",
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    report("async {}", empty);
    report("async move { black_box(&[u8; 256]) }", captures_256);
}
