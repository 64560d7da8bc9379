//! A runtime does not survive `fork`: in the child, `spawn`, `defer`, `spawn_blocking` and
//! `block_on` panic with a message naming the fork, and dropping the runtime returns (it
//! leaks) instead of waiting for worker threads the child does not have. The parent's
//! runtime is unaffected.
//!
//! The child does nothing else: building a new runtime there would take locks (parking_lot's
//! parking table, the allocator's) that a parent thread may have held at the fork, which is
//! why POSIX allows only async-signal-safe calls in such a child.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use weft_runtime::Runtime;

/// Whether `f` panics with a message that names the fork.
fn refuses(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("");
            msg.contains("fork")
        }
    }
}

/// The child's checks; its exit status is the number of the first that failed.
fn child(rt: Runtime) -> i32 {
    // A hang in the child ends it with SIGALRM, which the parent reports.
    // SAFETY: `alarm` only arms a timer for this process.
    unsafe { libc::alarm(30) };
    std::panic::set_hook(Box::new(|_| {}));
    if !refuses(|| drop(rt.spawn(async { 1 }))) {
        return 1;
    }
    if !refuses(|| rt.block_on(async {})) {
        return 2;
    }
    if !refuses(|| rt.handle().defer(|| {})) {
        return 3;
    }
    if !refuses(|| drop(rt.spawn_blocking(|| 1))) {
        return 4;
    }
    let handle = rt.handle().clone();
    if !refuses(|| handle.block_on(async {})) {
        return 5;
    }
    // Must return: the workers it would wait for are not in this process.
    drop(rt);
    drop(handle);
    0
}

#[test]
fn runtime_refuses_to_run_in_a_forked_child_and_drops_without_hanging() {
    common::hang_guard();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    // The workers are up and have run something before the fork.
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    // SAFETY: the child runs only `child`, then `_exit`s without running the parent's
    // destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(|| child(rt))).unwrap_or(100);
        // SAFETY: ends the child at once, as a forked child of a threaded process should.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a live out-parameter.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit (signal {}: SIGALRM means it hung)",
        libc::WTERMSIG(status)
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "child check failed");
    // The parent's runtime still works.
    assert_eq!(rt.block_on(rt.spawn(async { 2 })).unwrap(), 2);
}
