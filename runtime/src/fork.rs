//! Runtimes across `fork(2)`.
//!
//! `fork` copies only the calling thread. In the child, a runtime built before the fork has
//! no workers and no blocking threads, its locks are in whatever state the parent's threads
//! left them, and its rings are the parent's (a cancel sent from the child would cancel the
//! parent's operations). So it is unusable there, and says so:
//!
//! - `spawn`, `defer`, `spawn_blocking` and `block_on` (on the `Runtime` or any `Handle`)
//!   panic with a message naming the fork;
//! - dropping it (or `shutdown_timeout`) leaks it: no waiting for workers that do not
//!   exist, no joins, no ring teardown. The memory is the child's to lose, once.
//!
//! A child that only `exec`s or `_exit`s never notices. Building a new runtime in the child
//! is as sound as any other work in the child of a threaded process: only if no other parent
//! thread could have held a lock it takes (POSIX allows the child async-signal-safe calls
//! only), so fork before starting runtimes, or `exec`. (tokio leaves all of this undefined.)
//!
//! Detection: a `pthread_atfork` child handler, registered when the first runtime is built,
//! bumps a process-wide generation, and each runtime records the generation it was built
//! in. Checking costs one relaxed load, no `getpid` call, so `spawn` can afford it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bumped in the child of every `fork`.
static GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn in_child() {
    // One atomic add: async-signal-safe, as an atfork child handler must be.
    GENERATION.fetch_add(1, Relaxed);
}

/// How many forks this process descends from (since the first runtime was built): a value
/// that changes in every forked child.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Relaxed)
}

/// Which process a runtime was built in.
pub(crate) struct BuiltIn {
    generation: u64,
    pid: u32,
}

impl BuiltIn {
    /// The current process, registering the fork handler on first use.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` if the handler cannot be registered (`pthread_atfork`'s only failure).
    pub(crate) fn here() -> io::Result<BuiltIn> {
        static REGISTERED: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
        // SAFETY: `in_child` is a plain `extern "C" fn` with no captured state that stays
        // valid for the life of the process, and it only performs an atomic add.
        let rc =
            *REGISTERED.get_or_init(|| unsafe { libc::pthread_atfork(None, None, Some(in_child)) });
        if rc != 0 {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "weft: could not register the fork handler that makes a runtime refuse to \
                     run in a forked child (pthread_atfork: {})",
                    io::Error::from_raw_os_error(rc)
                ),
            ));
        }
        Ok(BuiltIn {
            generation: GENERATION.load(Relaxed),
            pid: std::process::id(),
        })
    }

    /// Whether this is a child forked after the runtime was built.
    #[inline]
    pub(crate) fn is_forked(&self) -> bool {
        GENERATION.load(Relaxed) != self.generation
    }

    /// Panics if this is a forked child; `what` names the refused call.
    #[inline]
    #[track_caller]
    pub(crate) fn check(&self, what: &str) {
        if self.is_forked() {
            self.refuse(what)
        }
    }

    #[cold]
    #[track_caller]
    fn refuse(&self, what: &str) -> ! {
        panic!(
            "weft: `{what}` on a runtime built in process {} before a fork: this is the \
             forked child (process {}), where the runtime's worker threads do not exist, so \
             it cannot run anything (fork before starting a runtime, or exec in the child)",
            self.pid,
            std::process::id()
        )
    }
}
