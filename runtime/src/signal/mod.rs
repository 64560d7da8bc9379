//! Asynchronous signal handling: [`ctrl_c`] and, on Unix, [`unix::signal`].
//!
//! A program asks for a signal by making a listener; from then on every delivery of that
//! signal to the process is counted, and each listener's [`recv`](unix::Signal::recv)
//! completes once for every delivery it has not yet seen (deliveries that land between two
//! `recv` calls coalesce into one, as the kernel coalesces pending signals). Any number of
//! listeners may watch one signal, and each sees every delivery. Signals nobody asked for
//! keep their disposition (default, ignored, or another library's handler).
//!
//! # Mechanism
//!
//! 1. The first listener for a signal installs a `sigaction` handler for it (kept for the
//!    life of the process). The handler does only async-signal-safe work: it increments
//!    the signal's atomic delivery counter, writes one byte to a non-blocking pipe (a full
//!    pipe already holds a pending wake-up) and calls the handler that was installed before
//!    it, if any, so that other libraries keep working.
//! 2. The process's readiness thread (`poller.rs`, one per process, started on first use)
//!    reads the pipe and, for every signal whose counter moved, wakes that signal's
//!    listeners.
//! 3. A listener compares the counter with the value it saw last: a larger one completes
//!    its `recv`. It registers its waker before checking the counter again, so a delivery
//!    racing the registration is never missed.
//!
//! This is the same on both drivers and on a `block_on` thread: signals are per process,
//! not per worker, so nothing here belongs to a worker's ring.
//!
//! Rejected: a `signalfd` (read on a ring or by the thread). It only receives a signal that
//! is *blocked in every thread of the process*; a signal not blocked in some thread — a
//! thread the user or a test harness started before the runtime, which a library cannot
//! reach — is delivered to that thread instead, and its default action (for `SIGINT` and
//! `SIGTERM`, termination) runs. A library cannot make that guarantee, so a handler that
//! counts and writes a pipe is the only correct choice.
//!
//! # Examples
//!
//! ```no_run
//! # let rt = weft_runtime::Runtime::new().unwrap();
//! # rt.block_on(async {
//! weft_runtime::signal::ctrl_c().await?;
//! println!("interrupted; shutting down");
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```

pub mod unix;

use std::io;

/// Completes at the next `SIGINT` (Ctrl-C in a terminal) delivered after this future is
/// first polled.
///
/// The first call installs weft's handler for `SIGINT`, which stays for the life of the
/// process: from then on Ctrl-C no longer ends the program by itself, so a program that
/// stops listening should exit on its own.
///
/// # Errors
///
/// If the handler cannot be installed, or the process's readiness thread cannot start
/// (descriptor or thread limits).
///
/// # Examples
///
/// ```no_run
/// # let rt = weft_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let work = weft_runtime::spawn(async { /* serve */ });
///     weft_runtime::signal::ctrl_c().await?;
///     work.abort();
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let mut s = unix::signal(unix::SignalKind::interrupt())?;
    s.recv().await;
    Ok(())
}
