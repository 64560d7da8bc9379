//! A cache hint for the loops that touch many cold blocks in a row: the wheel's free list,
//! the tasks behind a batch of fired timers.
//!
//! Each such block costs a cache miss, and a loop that does little else per block waits for
//! them one after another (a locked read-modify-write on each task's state word, or the
//! load of the next link, orders every miss after the one before). Asking for a block's line
//! as soon as its address is known, a step or a batch ahead of its use, lets the misses
//! overlap.

/// Asks the processor to bring the cache line holding `p` close (into every cache level),
/// without waiting for it. A hint only: it reads nothing the program can observe, never
/// faults, and any address is allowed (a dangling or null one included); on targets other
/// than x86-64 it does nothing.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint with no architectural effect: it cannot fault and
    // reads nothing visible, whatever the address; SSE, which it needs, is part of the
    // x86-64 baseline, so the instruction exists on every x86-64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
