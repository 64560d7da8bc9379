//! Error-first callbacks, Rust-shaped: the first of the article's three styles.
//!
//! A callback here is a `FnOnce(Result<T, E>) + Send + 'static` — Node's `(err, value)`
//! pair as one `Result`, and `FnOnce`, so that the compiler already forbids calling one
//! callback twice. Everything in this module runs callbacks straight from the runtime's
//! queues and from reactor completions: no future and no task is made per operation.
//!
//! | JavaScript / Node | weft |
//! |---|---|
//! | `queueMicrotask(f)` | [`defer`] |
//! | `setTimeout(f, ms)` / `clearTimeout` | [`set_timeout`] / [`TimeoutHandle::cancel`] |
//! | `setInterval(f, ms)` / `clearInterval` | [`set_interval`] / [`IntervalHandle::cancel`] |
//! | `fs.open`, `fs.read`, `fs.readFile` | [`fs::open`], [`fs::read_at`], [`fs::read`] |
//! | `net.connect`, `socket.write`, `socket.on('data')` | [`net::connect`], [`net::write_all`], [`net::read`], [`net::read_exact`] |
//! | `async.series/parallel/waterfall/race/retry/timeout` | [`series`], [`parallel`], [`waterfall`], [`race`], [`retry`], [`timeout`] |
//! | `async.reflect` + `parallel`, `async.tryEach` | [`parallel_settled`], [`any`] |
//! | `async.mapLimit` | [`parallel_limit`] |
//!
//! # Ordering
//!
//! [`defer`] queues at the back of the current worker's local queue — the same FIFO that
//! woken and yielding tasks use — so a deferred callback runs after what is already queued
//! and before any timer the worker has not yet fired (timers fire when the worker parks, or
//! every `event_interval` ticks). That is the article's `A D C B`. On a runtime with one
//! worker this is a strict FIFO; with more, idle workers steal the oldest half of a busy
//! worker's queue (and a queue deeper than 4 096 entries spills its oldest half to the global
//! queue), so callbacks deferred one after the other may run out of order, and in parallel.
//!
//! While a composition helper ([`parallel`], [`parallel_settled`], [`any`], and the first
//! wave of [`parallel_limit`]) calls its operation functions, the callbacks they
//! defer are collected and queued as one entry when the helper's start returns: they run
//! one after another, in the order deferred, on the worker that takes the entry. So a
//! `parallel` of 100 `ready` operations costs one queue entry, not 100, and no idle worker
//! is woken to steal half of it. What the operations queue by other means meanwhile (a
//! task they wake) may run before those callbacks; everything queued before the helper was
//! called runs before them. A gather settled by such a run of callbacks finishes in the
//! call of its last part, as anywhere else; if one of its parts settles on another thread
//! meanwhile, it may finish only when that run of callbacks is over, so a callback must not
//! block its worker waiting for such a composite.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use weft_runtime::callback::{defer, set_timeout};
//!
//! let rt = weft_runtime::Runtime::builder().worker_threads(1).build()?;
//! let log = Arc::new(Mutex::new(String::new()));
//! let (tx, rx) = std::sync::mpsc::channel();
//! let l = log.clone();
//! rt.handle().defer(move || {
//!     l.lock().unwrap().push('A');
//!     let (l2, l3) = (l.clone(), l.clone());
//!     set_timeout(Duration::ZERO, move || {
//!         l2.lock().unwrap().push('B');
//!         tx.send(()).unwrap();
//!     });
//!     defer(move || l3.lock().unwrap().push('C'));
//!     l.lock().unwrap().push('D');
//! });
//! rx.recv().unwrap();
//! assert_eq!(*log.lock().unwrap(), "ADCB");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Once
//!
//! A single `FnOnce` cannot run twice. Where several operations race to finish one
//! composite (the helpers of this module), the final callback sits in a slot that is
//! emptied by whoever settles first; later outcomes find it empty and are dropped. [`Once`]
//! offers the same guarantee to user code.
//!
//! # Panics in callbacks
//!
//! A callback that panics is caught where the runtime calls it (the panic hook prints the
//! message as usual); the worker goes on. The composite it belonged to never completes,
//! exactly as a panicking task's `JoinHandle` would report a panic instead of a value.

mod compose;
pub mod fs;
mod gather;
mod held;
mod limit;
pub mod net;
mod race;
mod sequence;
#[cfg(all(test, not(loom)))]
mod test_util;
mod timer;

pub use compose::{
    Part, any, parallel, parallel_limit, parallel_settled, race, retry, series, timeout, waterfall,
};
pub use timer::{IntervalHandle, TimeoutHandle, set_interval, set_timeout};

pub(crate) use held::Held;

use std::fmt;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::task::Notified;

/// An error-first callback: anything that can be called once with a `Result`.
///
/// Every `FnOnce(Result<T, E>) + Send + 'static` closure is one; so is the [`Part`] the
/// composition helpers hand to each operation. APIs take `impl Callback<T, E>`, so a
/// closure and a `Part` pass through the same code without boxing.
///
/// # Examples
///
/// ```
/// use weft_runtime::callback::Callback;
///
/// fn twice(x: u64, cb: impl Callback<u64, String>) {
///     cb.call(Ok(x * 2));
/// }
/// twice(21, |r: Result<u64, String>| assert_eq!(r, Ok(42)));
/// ```
pub trait Callback<T, E>: Send + 'static {
    /// Delivers the outcome, consuming the callback.
    fn call(self, result: Result<T, E>);
}

impl<T, E, F> Callback<T, E> for F
where
    F: FnOnce(Result<T, E>) + Send + 'static,
{
    #[inline]
    fn call(self, result: Result<T, E>) {
        self(result)
    }
}

/// Something started that can be stopped: a pending timer, an operation in flight.
///
/// The helpers that cancel losers ([`race`], [`timeout`]) accept operations that return a
/// `Cancel`; an operation with nothing to stop returns `()`.
pub trait Cancel: Send + 'static {
    /// Stops the operation if it has not completed; its callback will then not run.
    fn cancel(self);
}

impl Cancel for () {
    fn cancel(self) {}
}

impl<C: Cancel> Cancel for Option<C> {
    fn cancel(self) {
        if let Some(c) = self {
            c.cancel()
        }
    }
}

/// Queues `f` on the current runtime's run queue: weft's `queueMicrotask`.
///
/// On a worker of the current runtime, `f` goes to the back of that worker's local queue,
/// behind the tasks and callbacks already queued there, and runs on the next pass of the
/// scheduler — never inline. From `block_on`, an entered thread (or a worker of another
/// runtime that entered this one) it goes to the global queue. It costs one allocation (the
/// closure and a 32-byte queue header, recycled per thread) and no atomic read-modify-write
/// on a worker; while a composition helper starts its operations, it is a write into that
/// helper's batch instead. See [the ordering rules](self#ordering).
///
/// # Panics
///
/// Outside a runtime, with a message saying how to get into one; use
/// [`Handle::defer`](crate::Handle::defer) from other threads.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     weft_runtime::callback::defer(move || tx.send("ran later").unwrap());
/// });
/// assert_eq!(rx.recv().unwrap(), "ran later");
/// ```
#[track_caller]
#[inline(always)]
pub fn defer<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    let batch = current_batch();
    if !batch.is_null() {
        // SAFETY: non-null, it is the innermost live `batched` frame's batch on this thread:
        // untouched by others while its `start` runs (we are inside it), unmoved until that
        // frame's `Flush` resets it (see `batched`).
        unsafe { (*batch).push(f) };
        return;
    }
    defer_now(f)
}

/// [`defer`] past any batch: straight onto the current runtime's queues.
///
/// Inlined, so that the closure is built in its cell (`deferred::new`); the queueing,
/// which does not depend on `F`, is a call of its own.
#[track_caller]
#[inline(always)]
fn defer_now<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    // What `Handle::defer` does, with the entry built before the context lookup: calling
    // `Handle::defer` from inside the lookup measured about 5% slower on a callback-heavy
    // pattern (`all_100/ready`, three runs each way), so it is not reused here.
    queue_now(crate::task::deferred::new(f))
}

/// Queues a deferred cell on the current runtime's queues: this worker's own if it is one
/// of that runtime's.
#[track_caller]
fn queue_now(entry: Notified) {
    let mut entry = Some(entry);
    crate::context::with_current(|h| h.schedule_task(entry.take().expect("unqueued"), true));
    if let Some(entry) = entry {
        // Dropped (with the closure) outside the context's borrow, before the panic.
        drop(entry);
        panic!("weft::callback::defer: {}", crate::scheduler::NO_RUNTIME)
    }
}

/// This thread's innermost running [`batched`] start's batch (the context's
/// `callback_batch`); null outside one.
fn current_batch() -> *mut Batch {
    crate::context::with(|cx| cx.callback_batch().get()).unwrap_or(ptr::null_mut())
}

/// Makes `batch` this thread's innermost batch (null: none).
fn set_current_batch(batch: *mut Batch) {
    let _ = crate::context::with(|cx| cx.callback_batch().set(batch));
}

/// The callbacks one [`batched`] start has deferred so far.
///
/// The first is a deferred cell of its own, as a `defer` outside a batch makes, so that a
/// batch of one costs what that `defer` would. The rest are written one after another into
/// `arena`, each as an [`ArenaEntry`] followed by the closure itself: no cell per callback,
/// and no cell to take from and give back to the cache for each. When the batch is
/// flushed, one queue entry takes the first cell and the arena and runs them all, in order
/// (see [`Calls`]).
///
/// # Invariants
///
/// - `cap` is 0 exactly when `arena` has no buffer, and otherwise its buffer's capacity;
///   `len <= cap` (`push`'s fast path writes at `len` on these alone).
/// - While the batch fills, `len` is the count of words written and the head's own count
///   is stale; [`seal`](Batch::seal) brings it up to date as the arena leaves the batch.
/// - `first` is `Some` whenever the arena has a buffer: the first callback always goes to
///   `first`.
pub(crate) struct Batch {
    first: Option<Notified>,
    arena: Arena,
    /// Words written to the arena: kept here while the batch fills, where `push` finds it
    /// without going through the arena's pointer, and written to its head when the arena
    /// is handed on (`Batch::seal`).
    len: usize,
    /// Words the arena's buffer has room for (0 without one).
    cap: usize,
    /// How many callbacks to make room for at once: the operations the helper starts.
    expect: usize,
}

/// Words of the block an [`Arena`] takes from the block cache (`pool.rs`) for a small
/// batch, its [`ArenaHead`] included: room for the callbacks after the first of a
/// composite of up to five parts (an entry and a four-word closure each, as `par` and
/// `all_3` defer), so that a small composite's batch costs a cached block, not a `malloc`
/// and a `free`. 31 words: the cache's largest class is 248 bytes, and the assertion below
/// keeps the block in it.
const BLOCK_WORDS: usize = 31;

/// The block of [`BLOCK_WORDS`].
type Block = [MaybeUninit<u64>; BLOCK_WORDS];
const _: () = assert!(
    crate::task::pool::Class::<Block>::CLASS.is_some(),
    "an arena's block comes from the block cache"
);

/// The start of an arena's buffer: how much of it is written, and what it is.
#[repr(C)]
struct ArenaHead {
    /// Words written after the head.
    len: usize,
    /// Words after the head.
    cap: usize,
    /// Whether the buffer is a block of the cache (else from the global allocator).
    in_block: bool,
}

/// Words an [`ArenaHead`] takes.
const HEAD_WORDS: usize = size_of::<ArenaHead>().div_ceil(size_of::<u64>());
const _: () = assert!(align_of::<ArenaHead>() <= align_of::<u64>() && HEAD_WORDS < BLOCK_WORDS);

/// The entries and closures of a batch, in words, back to back, in one buffer that starts
/// with its [`ArenaHead`]: a block of the cache while the batch is expected to be small and
/// fits it, else a buffer of the global allocator. The arena itself is one pointer, so
/// handing it from the batch to its queue entry moves one word. (It was four, and that
/// copy, a 16-byte load of words `push` had just stored one by one, stalled on the
/// stores: 11% of `any/ready`'s callback time in `perf`.)
///
/// # Invariants
///
/// - `head` is null, or the start of a buffer this arena owns and its drop frees: a block
///   from `pool::alloc::<Block>` (`in_block`, `cap` = `BLOCK_WORDS - HEAD_WORDS`), or an
///   allocation of the global allocator with [`Arena::layout`]`(cap)`.
/// - The `len` words after the head hold whole entries back to back, each an
///   [`ArenaEntry`] followed by its closure on the next word, written by [`Batch::push`]
///   (`len <= cap`). While a batch fills its arena, the batch's own `len` is the count
///   and the head's is brought up to it when the batch lets the arena go. Every closure
///   is at most word-aligned (`push` boxes any other into a cell first). An arena that
///   outgrows its buffer moves its words to a larger one, which moves the closures: Rust
///   values may be moved.
struct Arena {
    head: *mut ArenaHead,
}

// SAFETY: the arena owns its buffer (nothing else refers to it) and the words hold only
// closures that are `Send` (`Batch::push` takes only `FnOnce() + Send + 'static`); the
// buffer may be freed from any thread (`pool::free`, the global allocator).
unsafe impl Send for Arena {}

impl Arena {
    const fn new() -> Arena {
        Arena {
            head: ptr::null_mut(),
        }
    }

    /// Words written (0 for an arena without a buffer).
    #[inline]
    fn len(&self) -> usize {
        // SAFETY: a non-null head is the live start of our buffer.
        unsafe { self.head.as_ref() }.map_or(0, |h| h.len)
    }

    /// The first word after the head of the buffer at `head`.
    ///
    /// # Safety
    /// `head` is the non-null head of an arena's buffer.
    #[inline]
    unsafe fn words(head: *mut ArenaHead) -> *mut MaybeUninit<u64> {
        // SAFETY: the buffer holds `HEAD_WORDS` words of head and then its words.
        unsafe { head.cast::<MaybeUninit<u64>>().add(HEAD_WORDS) }
    }

    /// The layout of a heap buffer with `cap` words after its head.
    fn layout(cap: usize) -> std::alloc::Layout {
        std::alloc::Layout::array::<u64>(HEAD_WORDS + cap).expect("a batch's arena fits memory")
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // The closures in it were consumed or dropped by `Calls` (a `Batch` hands its arena
        // to one before it goes); what is left is the memory.
        let Some(head) = ptr::NonNull::new(self.head) else {
            return;
        };
        // SAFETY: the invariant: our live buffer, of the kind and size its head says; it is
        // freed once, here.
        unsafe {
            let h = head.as_ref();
            if h.in_block {
                crate::task::pool::free(head.cast::<Block>());
            } else {
                std::alloc::dealloc(head.as_ptr().cast(), Arena::layout(h.cap));
            }
        }
    }
}

/// The head of one closure in a batch's arena.
#[repr(C)]
struct ArenaEntry {
    /// Runs (`true`) or drops (`false`) the closure that follows, consuming it.
    call: unsafe fn(*mut MaybeUninit<u64>, bool),
    /// The closure's size in words.
    words: usize,
}

/// Words an [`ArenaEntry`] takes.
const ENTRY_WORDS: usize = size_of::<ArenaEntry>() / size_of::<u64>();
const _: () = assert!(
    size_of::<ArenaEntry>() % size_of::<u64>() == 0
        && align_of::<ArenaEntry>() <= align_of::<u64>()
);

/// Runs or drops the `F` at `at`.
///
/// # Safety
/// `at` holds an `F` written by [`Batch::push`], not yet consumed; it is consumed here.
unsafe fn call_entry<F: FnOnce() + Send + 'static>(at: *mut MaybeUninit<u64>, run: bool) {
    // SAFETY: the caller's contract: a live `F`, moved out once.
    let f = unsafe { at.cast::<F>().read() };
    if run {
        // A panicking callback is contained, as `deferred::run` contains one: the panic hook
        // has printed it, and the callbacks after it still run.
        let _ = panic::catch_unwind(AssertUnwindSafe(f));
    } else {
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(f)));
    }
}

impl Batch {
    fn new(expect: usize) -> Batch {
        Batch {
            first: None,
            arena: Arena::new(),
            len: 0,
            cap: 0,
            expect,
        }
    }

    /// The arena, its head's count brought up to date, for a [`Calls`] to run or drop; the
    /// batch keeps none.
    fn seal(&mut self) -> Arena {
        let arena = std::mem::replace(&mut self.arena, Arena::new());
        // SAFETY: a non-null head is the live start of the arena's buffer, ours alone.
        if let Some(h) = unsafe { arena.head.as_mut() } {
            h.len = self.len;
        }
        self.len = 0;
        self.cap = 0;
        arena
    }

    /// Collects `f`, after everything collected so far.
    ///
    /// Inlined, so that the caller's closure is built in the arena itself: built on the
    /// caller's stack and copied, a closure with a `bool` in it was stored in pieces and
    /// loaded back whole, and the load waited for the stores to retire (the copy was a
    /// third of `all_fail_fast/ready`'s callback time on this machine).
    #[inline]
    fn push<F: FnOnce() + Send + 'static>(&mut self, f: F) {
        if self.first.is_none() && self.arena.head.is_null() {
            self.first = Some(crate::task::deferred::new(f));
            return;
        }
        if align_of::<F>() > align_of::<u64>() {
            return self.push_cell(crate::task::deferred::new(f));
        }
        let need = ENTRY_WORDS + size_of::<F>().div_ceil(size_of::<u64>());
        let base = if self.len + need <= self.cap {
            let at = self.len;
            self.len = at + need;
            // SAFETY: `cap > 0`, so the arena has a buffer, and `at + need <= cap`: the
            // entry fits it.
            unsafe { Arena::words(self.arena.head).add(at) }
        } else {
            self.make_room(need)
        };
        // SAFETY: `base` starts `need` words reserved above for this entry alone; the words
        // are word-aligned, as are `ArenaEntry` and (checked above) `F`.
        unsafe {
            base.cast::<ArenaEntry>().write(ArenaEntry {
                call: call_entry::<F>,
                words: need - ENTRY_WORDS,
            });
            base.add(ENTRY_WORDS).cast::<F>().write(f);
        }
    }

    /// Reserves `need` words for an entry that does not fit the arena's room, and returns
    /// where they start. A batch's first entry in the arena takes a block of the cache if
    /// one per operation the helper starts fits it (the first callback is the cell in
    /// `first`), else a heap buffer, with room for one per operation, so that the usual
    /// batch allocates once. A batch that outgrows its buffer moves to one twice as large.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, need: usize) -> *mut MaybeUninit<u64> {
        const IN_BLOCK: usize = BLOCK_WORDS - HEAD_WORDS;
        let per_op = self.expect.saturating_sub(1).max(1);
        let old = self.arena.head;
        let len = self.len;
        if old.is_null() && per_op.saturating_mul(need) <= IN_BLOCK {
            let head = crate::task::pool::alloc::<Block>()
                .cast::<ArenaHead>()
                .as_ptr();
            // SAFETY: a fresh block, ours, large enough for the head.
            unsafe {
                head.write(ArenaHead {
                    len: 0,
                    cap: IN_BLOCK,
                    in_block: true,
                })
            };
            self.arena.head = head;
            self.cap = IN_BLOCK;
        } else {
            let cap = if old.is_null() {
                per_op.saturating_mul(need)
            } else {
                len.saturating_add(need).saturating_mul(2)
            };
            let layout = Arena::layout(cap);
            // SAFETY: the layout has a non-zero size (the head's words at least).
            let new = unsafe { std::alloc::alloc(layout) }.cast::<ArenaHead>();
            if new.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            // SAFETY: a fresh buffer of `HEAD_WORDS + cap` words, ours; the old one's
            // `len` words (if any) are copied over before it is freed, and nothing refers
            // to them there any more (the arena moves to `new` below).
            unsafe {
                new.write(ArenaHead {
                    len: 0,
                    cap,
                    in_block: false,
                });
                if !old.is_null() {
                    ptr::copy_nonoverlapping(Arena::words(old), Arena::words(new), len);
                }
            }
            // The old buffer goes with the old arena's drop, its closures now moved.
            drop(std::mem::replace(&mut self.arena, Arena { head: new }));
            self.cap = cap;
        }
        // `len + need <= cap` in each case (`need <= IN_BLOCK` for a block, as
        // `per_op >= 1`).
        self.len = len + need;
        // SAFETY: the arena has a buffer now, with room for the entry at `len`.
        unsafe { Arena::words(self.arena.head).add(len) }
    }

    /// Collects a call already in a cell (a flushed inner batch's only one).
    fn push_cell(&mut self, call: Notified) {
        if self.first.is_none() && self.arena.head.is_null() {
            self.first = Some(call);
            return;
        }
        self.push(move || call.run())
    }

    /// Queues the collected callbacks as one entry (one alone as itself), in order.
    fn flush(&mut self) {
        let first = self.first.take();
        if self.arena.head.is_null() {
            if let Some(call) = first {
                queue(call);
            }
            return;
        }
        let calls = Calls {
            arena: self.seal(),
            next: 0,
        };
        let flushed = Flushed { first, calls };
        // The cell holds the closure `move || flushed.run()`, which captures `flushed` alone
        // and so has its size and alignment.
        const {
            assert!(
                crate::task::deferred::pooled::<Flushed>(),
                "a flushed batch fits a cached deferred cell"
            )
        };
        // Into the outer batch, if there is one, so the order stays that of the `defer`
        // calls.
        defer(move || flushed.run())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // Only a batch that was never flushed holds calls still: drop them, once each.
        drop(Calls {
            arena: self.seal(),
            next: 0,
        });
    }
}

/// A flushed [`Batch`] of two callbacks or more, as one queue entry runs it.
///
/// The parts its calls settle hold their claims on a gather's block, to give them up
/// together (`held.rs`). Holding was first kept for batches of four or more, as `par/ready`
/// and `all_3/ready` (three parts) measured 5% slower holding; once a small batch's arena
/// was a cached block and closures were built in place, holding measured faster for them
/// too (best of 9 interleaved runs: `par` 0.93, `all_3` 0.94, `any` 0.89 of the time with
/// four), and every batch with an arena holds. `all_100/ready` is about 17% faster holding
/// than not.
struct Flushed {
    first: Option<Notified>,
    calls: Calls,
}

impl Flushed {
    fn run(self) {
        let _held = held::Scope::enter();
        if let Some(call) = self.first {
            // The call catches its own panic, so the rest still run.
            call.run();
        }
        self.calls.run();
    }
}

/// The arena of a flushed [`Batch`], run entry by entry; dropped unrun (at shutdown), it
/// drops the closures it still holds.
///
/// `Send` (it rides the run queues to any worker) because every closure in it is: `push`
/// takes only `FnOnce() + Send + 'static`.
struct Calls {
    arena: Arena,
    /// The word of the next entry to run or drop.
    next: usize,
}

impl Calls {
    fn run(mut self) {
        self.each(true);
    }

    /// Runs or drops every entry from `next` on.
    fn each(&mut self, run: bool) {
        while self.next < self.arena.len() {
            let at = self.next;
            // `Batch::push` wrote the entries back to back; `next` steps over each with its
            // own size, and moves past a closure before it is called, so however the call
            // ends, nobody consumes that closure again.
            // SAFETY: `next` is at an entry whose closure is unconsumed (above), inside the
            // arena's words (`at < len`, so the head is not null).
            unsafe {
                let base = Arena::words(self.arena.head).add(at);
                let entry = base.cast::<ArenaEntry>().read();
                self.next = at + ENTRY_WORDS + entry.words;
                (entry.call)(base.add(ENTRY_WORDS), run);
            }
        }
    }
}

impl Drop for Calls {
    fn drop(&mut self) {
        self.each(false);
    }
}

/// Runs `start` (a composite helper calling its operation functions) with this thread's
/// [`defer`]s collected, and queues them as one run-queue entry when it returns (or
/// unwinds): see [the ordering rules](self#ordering).
///
/// A `parallel` of 100 `ready` operations defers 100 callbacks from one loop; as one entry
/// they cost one queue push and pop, one pass of the worker loop and no wake-up of an idle
/// worker (which would steal half of them and hand the composite between cores), instead
/// of 100 of each. Outside a runtime nothing is collected, so a `defer` there panics as
/// usual.
pub(super) fn batched<R>(expect: usize, start: impl FnOnce() -> R) -> R {
    if crate::context::with_current(|_| ()).is_none() {
        return start();
    }
    /// Restores the outer batch and queues this one, on return and on unwind.
    struct Flush {
        outer: *mut Batch,
        batch: Batch,
    }
    impl Drop for Flush {
        fn drop(&mut self) {
            set_current_batch(self.outer);
            self.batch.flush();
        }
    }
    let mut flush = Flush {
        outer: current_batch(),
        batch: Batch::new(expect),
    };
    set_current_batch(&raw mut flush.batch);
    start()
}

/// Queues one collected call: into the outer batch, or onto the runtime's queues.
fn queue(call: Notified) {
    let batch = current_batch();
    if !batch.is_null() {
        // SAFETY: as in `defer`: the innermost live `batched` frame's batch.
        unsafe { (*batch).push_cell(call) };
        return;
    }
    let mut call = Some(call);
    crate::context::with_current(|h| h.schedule_task(call.take().expect("unqueued"), true));
    if call.is_some() {
        // `batched` collects only inside a runtime, and `start` left it as it found it.
        drop(call);
        panic!("weft::callback: {}", crate::scheduler::NO_RUNTIME)
    }
}

/// Defers delivering `result` to `cb`: the "never call a callback synchronously" rule of
/// Node APIs, as one call.
///
/// # Examples
///
/// ```
/// use weft_runtime::callback::resolve_later;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// rt.block_on(async move {
///     resolve_later(Ok::<_, ()>(5), move |r: Result<i32, ()>| tx.send(r).unwrap());
/// });
/// assert_eq!(rx.recv().unwrap(), Ok(5));
/// ```
#[track_caller]
pub fn resolve_later<T, E>(result: Result<T, E>, cb: impl Callback<T, E>)
where
    T: Send + 'static,
    E: Send + 'static,
{
    defer(move || cb.call(result))
}

/// A callback that may be reached from several places but runs at most once.
///
/// Clones share one slot: the first [`call`](Once::call) takes the callback out and runs
/// it; every later call (on any clone, from any thread) returns `false` and drops its
/// argument. The guarantee Node's `once()` wrappers give, enforced by the type.
///
/// # Examples
///
/// ```
/// use weft_runtime::callback::Once;
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// let once = Once::new(move |r: Result<u32, ()>| tx.send(r).unwrap());
/// let other = once.clone();
/// assert!(once.call(Ok(1)));
/// assert!(!other.call(Ok(2)));
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![Ok(1)]);
/// ```
pub struct Once<T, E> {
    slot: Arc<Mutex<Option<BoxedCallback<T, E>>>>,
}

type BoxedCallback<T, E> = Box<dyn FnOnce(Result<T, E>) + Send>;

impl<T, E> Once<T, E> {
    /// Wraps `cb`.
    pub fn new(cb: impl Callback<T, E>) -> Self {
        Once {
            slot: Arc::new(Mutex::new(Some(Box::new(move |r| cb.call(r))))),
        }
    }

    /// Runs the callback if nobody has; returns whether this call ran it.
    ///
    /// On an owned `Once` with [`Callback`] in scope, `once.call(r)` resolves to
    /// `Callback::call` (which consumes it and returns nothing); write
    /// `Once::call(&once, r)` there to get the `bool`.
    pub fn call(&self, result: Result<T, E>) -> bool {
        let cb = self.slot.lock().take();
        match cb {
            Some(cb) => {
                cb(result);
                true
            }
            None => false,
        }
    }

    /// Whether the callback has run (or is running).
    pub fn is_called(&self) -> bool {
        self.slot.lock().is_none()
    }
}

impl<T, E> Clone for Once<T, E> {
    fn clone(&self) -> Self {
        Once {
            slot: self.slot.clone(),
        }
    }
}

impl<T, E> fmt::Debug for Once<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once")
            .field("called", &self.is_called())
            .finish()
    }
}

impl<T: 'static, E: 'static> Callback<T, E> for Once<T, E> {
    fn call(self, result: Result<T, E>) {
        Once::call(&self, result);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};

    use super::{Batch, Calls};

    use crate::task::pool::tests::CountDrop;

    #[derive(Clone, Copy)]
    #[repr(align(32))]
    struct Aligned([u8; 32]);

    /// Pushes closures of many sizes (none, small, large, over-aligned) into a batch; each
    /// logs its index and the payload it carries.
    fn fill(batch: &mut Batch, log: &Arc<Mutex<Vec<(usize, u8)>>>, drops: &Arc<AtomicUsize>) {
        for i in 0..40 {
            let (l, d) = (log.clone(), CountDrop(drops.clone()));
            match i % 4 {
                0 => batch.push(move || {
                    let _d = d;
                    l.lock().unwrap().push((i, 0))
                }),
                1 => {
                    let p = [i as u8; 3];
                    batch.push(move || {
                        let _d = d;
                        l.lock().unwrap().push((i, p[2]))
                    })
                }
                2 => {
                    let p = [i as u8; 300];
                    batch.push(move || {
                        let _d = d;
                        l.lock().unwrap().push((i, p[299]))
                    })
                }
                _ => {
                    let p = Aligned([i as u8; 32]);
                    batch.push(move || {
                        let _d = d;
                        assert_eq!(&raw const p as usize % 32, 0);
                        l.lock().unwrap().push((i, p.0[31]))
                    })
                }
            }
        }
    }

    fn expected() -> Vec<(usize, u8)> {
        (0..40)
            .map(|i| (i, if i % 4 == 0 { 0 } else { i as u8 }))
            .collect()
    }

    /// A batch's calls, of every size and alignment, run once each, in the order pushed,
    /// with their captures intact; a panicking one does not stop the rest. Whatever the
    /// batch expected: in the heap from the start (40), in a block it outgrows (3), or a
    /// batch that expected one call.
    #[test]
    fn a_batch_runs_every_call_once_in_order() {
        for expect in [40, 3, 1] {
            let log = Arc::new(Mutex::new(Vec::new()));
            let drops = Arc::new(AtomicUsize::new(0));
            let mut batch = Batch::new(expect);
            fill(&mut batch, &log, &drops);
            batch.push(|| panic!("[expected] a batched callback panics"));
            let l = log.clone();
            batch.push(move || l.lock().unwrap().push((99, 99)));
            let first = batch.first.take().expect("the first call is a cell");
            first.run();
            Calls {
                arena: batch.seal(),
                next: 0,
            }
            .run();
            let mut want = expected();
            want.push((99, 99));
            assert_eq!(*log.lock().unwrap(), want, "expecting {expect}");
            assert_eq!(drops.load(SeqCst), 40, "expecting {expect}");
        }
    }

    /// A small batch stays in its block: its calls run in order, and one dropped unrun
    /// there, handed to its queue entry or never flushed, drops each once.
    #[test]
    fn a_small_batch_runs_from_its_block_or_drops_from_it() {
        for how in ["run", "drop the entry", "drop the batch"] {
            let log = Arc::new(Mutex::new(Vec::new()));
            let drops = Arc::new(AtomicUsize::new(0));
            let mut batch = Batch::new(3);
            for i in 0..3 {
                let (l, d) = (log.clone(), CountDrop(drops.clone()));
                batch.push(move || {
                    let _d = d;
                    l.lock().unwrap().push(i)
                });
            }
            // SAFETY: the batch has an arena (two calls after the first), alive.
            let in_block = unsafe { (*batch.arena.head).in_block };
            assert!(in_block, "two small calls go to a block");
            match how {
                "run" | "drop the entry" => {
                    let first = batch.first.take().expect("the first call is a cell");
                    let calls = Calls {
                        arena: batch.seal(),
                        next: 0,
                    };
                    if how == "run" {
                        first.run();
                        calls.run();
                    } else {
                        drop(first);
                        drop(calls);
                    }
                }
                _ => drop(batch),
            }
            let want: &[i32] = if how == "run" { &[0, 1, 2] } else { &[] };
            assert_eq!(*log.lock().unwrap(), want, "{how}");
            assert_eq!(drops.load(SeqCst), 3, "{how}");
        }
    }

    /// A batch dropped unrun (a runtime shut down with it queued) drops each call once and
    /// runs none.
    #[test]
    fn a_batch_dropped_unrun_drops_every_call_once() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let drops = Arc::new(AtomicUsize::new(0));
        let mut batch = Batch::new(4);
        fill(&mut batch, &log, &drops);
        drop(batch);
        assert!(log.lock().unwrap().is_empty());
        assert_eq!(drops.load(SeqCst), 40);
    }
}
