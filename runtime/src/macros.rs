//! `select!`, `join!`, `try_join!`, `pin!` and `task_local!`, and what their expansions call.
//!
//! `select!`, `join!` and `try_join!` forward to the procedural macros of `weft-macros`,
//! with `$crate` as their first token tree so that the expansion names this crate by a
//! hygienic path whatever the caller calls it (see `weft-macros` for the expansions).
//! `pin!` and `task_local!` are plain declarative macros.

/// Waits on several futures at once and runs the branch of the first to finish; the others
/// are dropped before that branch's body runs.
///
/// ```text
/// select! {
///     [biased;]
///     <pattern> = <future> [, if <precondition>] => <body>,
///     ...
///     [else => <body>]
/// }
/// ```
///
/// 1. Every precondition is evaluated; a false one disables its branch.
/// 2. Every future expression is evaluated (disabled branches' too) and pinned.
/// 3. The enabled futures are polled, starting from a random branch on each poll (so no
///    branch starves another), or from the first with `biased;`. The first to finish whose
///    output matches its pattern wins; an output that does not match disables its branch
///    and the others keep going.
/// 4. When every branch is disabled, the `else` body runs; without `else`, `select!`
///    panics.
///
/// The bodies run outside any closure: `return`, `?`, `break` and `continue` in them act on
/// the surrounding code. A future is polled in place, so one that must survive several
/// `select!`s (a loop) is created outside it and passed as `&mut fut` (pin it first with
/// [`pin!`](crate::pin) if it is not `Unpin`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let slow = weft_runtime::time::sleep(Duration::from_secs(60));
///     let fast = weft_runtime::spawn(async { 7 });
///     let got = weft_runtime::select! {
///         _ = slow => 0,
///         Ok(v) = fast => v,
///     };
///     assert_eq!(got, 7);
///
///     // A precondition and `else`: the only branch is disabled.
///     let ready = false;
///     let n = weft_runtime::select! {
///         v = async { 1 }, if ready => v,
///         else => -1,
///     };
///     assert_eq!(n, -1);
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($input:tt)*) => {
        $crate::__macro_support::select_engine!(($crate) $($input)*)
    };
}

/// Polls several futures concurrently on the current task and returns all their outputs
/// as a tuple, once every one has finished. Each future is dropped as soon as it finishes.
///
/// The futures run on the task that awaits `join!`, not as separate tasks: use
/// [`spawn`](crate::spawn) for parallelism.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// let (a, b, c) = rt.block_on(async {
///     weft_runtime::join!(async { 1 }, async { "two" }, weft_runtime::spawn(async { 3.0 }))
/// });
/// assert_eq!((a, b, c.unwrap()), (1, "two", 3.0));
/// ```
#[macro_export]
macro_rules! join {
    ($($input:tt)*) => {
        $crate::__macro_support::join_engine!(($crate) $($input)*)
    };
}

/// Like [`join!`], for futures whose outputs are `Result<_, E>` with the same `E`: gives
/// `Ok((a, b, ...))` when all succeed, or the first `Err` as soon as one fails, dropping
/// the futures still running.
///
/// # Examples
///
/// ```
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let ok = weft_runtime::try_join!(async { Ok::<_, String>(1) }, async { Ok(2) });
///     assert_eq!(ok, Ok((1, 2)));
///
///     let err = weft_runtime::try_join!(
///         std::future::pending::<Result<(), String>>(),
///         async { Err::<(), _>("failed".to_string()) },
///     );
///     assert_eq!(err, Err("failed".to_string()));
/// });
/// ```
#[macro_export]
macro_rules! try_join {
    ($($input:tt)*) => {
        $crate::__macro_support::try_join_engine!(($crate) $($input)*)
    };
}

/// Pins values on the stack: `pin!(a, b)` shadows each variable with a `Pin<&mut _>` to
/// it, and `pin! { let x = expr; }` pins the value of an expression. A pinned future can
/// be polled by reference (`(&mut fut).await`, or `&mut fut` in [`select!`]) again and
/// again without being moved.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let deadline = weft_runtime::time::sleep(Duration::from_millis(20));
///     weft_runtime::pin!(deadline);
///     let mut ticks = 0;
///     loop {
///         weft_runtime::select! {
///             _ = &mut deadline => break,
///             _ = weft_runtime::task::yield_now() => ticks += 1,
///         }
///     }
///     assert!(ticks > 0);
///
///     weft_runtime::pin! {
///         let answer = async { 42 };
///     }
///     assert_eq!(answer.as_mut().await, 42);
/// });
/// ```
#[macro_export]
macro_rules! pin {
    ($($x:ident),* $(,)?) => {
        $( let mut $x = ::core::pin::pin!($x); )*
    };
    ($(let $x:ident = $init:expr;)*) => {
        $( let mut $x = ::core::pin::pin!($init); )*
    };
}

/// What the macros' expansions call; not a public API.
#[doc(hidden)]
pub mod __macro_support {
    pub use weft_macros::join as join_engine;
    pub use weft_macros::select as select_engine;
    pub use weft_macros::try_join as try_join_engine;

    use std::cell::Cell;

    /// A random number in `0..n` (`n > 0`), from a per-thread xorshift64* generator (the
    /// thread context's `rng`) seeded from std's random hasher keys: a few instructions, no
    /// atomic, no lock. During thread-local destruction, from a fresh seed each call.
    pub fn thread_rng_n(n: u32) -> u32 {
        let step = |rng: &Cell<u64>| {
            let mut x = rng.get();
            if x == 0 {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(rng as *const Cell<u64> as usize);
                x = h.finish() | 1;
            }
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            rng.set(x);
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
            ((r * u64::from(n)) >> 32) as u32
        };
        crate::context::with(|cx| step(cx.rng())).unwrap_or_else(|| step(&Cell::new(0)))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn thread_rng_n_stays_in_range_and_covers_it() {
            let mut seen = [0u32; 5];
            for _ in 0..10_000 {
                seen[super::thread_rng_n(5) as usize] += 1;
            }
            assert!(seen.iter().all(|&c| c > 0), "{seen:?}");
            assert_eq!(super::thread_rng_n(1), 0);
        }
    }
}
