//! weft::signal: every delivery reaches every listener, deliveries between two `recv`s
//! coalesce, signals nobody listens for keep their default action, a handler installed
//! before weft's keeps being called, and `ctrl_c` completes on `SIGINT`.
//!
//! Each test raises its own signal (SIGUSR1, SIGURG, SIGWINCH, a real-time one) in this
//! process; SIGINT is raised only in
//! a child process (this binary, re-run with `WEFT_SIGNAL_CHILD` set), where its default
//! action cannot end the test harness.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use weft_runtime::signal::unix::{SignalKind, signal};
use weft_runtime::{Runtime, UringMode};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

fn raise(sig: libc::c_int) {
    // SAFETY: sends a signal to this process; the tests only raise signals that have a
    // handler installed (or that must end a child process).
    unsafe { libc::raise(sig) };
}

/// The current `sa_sigaction` of `sig` (`SIG_DFL` is 0).
fn disposition(sig: libc::c_int) -> usize {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null `act` only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

/// Re-runs this binary's ignored test `name` in a child process with `WEFT_SIGNAL_CHILD`
/// set, and returns its exit status.
fn run_child(name: &str) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WEFT_SIGNAL_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
}

fn is_child() -> bool {
    std::env::var_os("WEFT_SIGNAL_CHILD").is_some()
}

#[test]
fn every_sigusr1_reaches_every_listener() {
    common::hang_guard();
    // Both drivers: the ring where the kernel allows it, and the fallback.
    for mode in [UringMode::Auto, UringMode::Disabled] {
        let rt = Runtime::builder()
            .worker_threads(2)
            .io_uring(mode)
            .build()
            .unwrap();
        sigusr1_rounds(rt);
    }
}

fn sigusr1_rounds(rt: Runtime) {
    let listeners = 4;
    let rounds = common::scaled(300, 20);
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..listeners).map(|_| AtomicUsize::new(0)).collect());
    common::watchdog("sigusr1 rounds", move || {
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for i in 0..listeners {
                // Made here, before the first raise, so no listener misses it.
                let mut s = signal(SignalKind::user_defined1()).unwrap();
                let counts = counts.clone();
                tasks.push(weft_runtime::spawn(async move {
                    for _ in 0..rounds {
                        assert_eq!(s.recv().await, Some(()));
                        counts[i].fetch_add(1, SeqCst);
                    }
                }));
            }
            for round in 1..=rounds {
                if round % 2 == 0 {
                    raise(libc::SIGUSR1);
                } else {
                    // SAFETY: a process-directed SIGUSR1, which has weft's handler.
                    unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
                }
                // Lock-step: the next delivery goes out only once every listener has
                // counted this one, so a lost delivery shows as a listener stuck here.
                while counts.iter().any(|c| c.load(SeqCst) < round) {
                    weft_runtime::time::sleep(Duration::from_millis(1)).await;
                }
            }
            for t in tasks {
                t.await.unwrap();
            }
            for c in counts.iter() {
                assert_eq!(c.load(SeqCst), rounds);
            }
        })
    });
}

#[test]
fn deliveries_between_two_recvs_coalesce_and_none_is_lost() {
    // SIGURG (default: ignored), which only this test raises.
    common::hang_guard();
    let mut s = signal(SignalKind::from_raw(libc::SIGURG)).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    // Nothing delivered since the listener was made.
    assert!(s.poll_recv(&mut cx).is_pending());
    for _ in 0..3 {
        raise(libc::SIGURG);
    }
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Some(())));
    assert!(s.poll_recv(&mut cx).is_pending());
    raise(libc::SIGURG);
    assert_eq!(s.poll_recv(&mut cx), Poll::Ready(Some(())));
}

#[test]
fn a_signal_nobody_listens_for_keeps_its_default() {
    common::hang_guard();
    let _usr1 = signal(SignalKind::user_defined1()).unwrap();
    assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
    let status = run_child("child_listens_for_usr1_and_raises_usr2");
    assert_eq!(status.signal(), Some(libc::SIGUSR2), "{status:?}");
}

#[test]
#[ignore = "run by a_signal_nobody_listens_for_keeps_its_default in a child process"]
fn child_listens_for_usr1_and_raises_usr2() {
    if !is_child() {
        return;
    }
    let rt = rt(1);
    rt.block_on(async {
        let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
        raise(libc::SIGUSR1);
        usr1.recv().await;
    });
    raise(libc::SIGUSR2);
    // Not reached: SIGUSR2's default action ends the process.
    std::process::exit(0);
}

#[test]
fn ctrl_c_completes_on_sigint() {
    common::hang_guard();
    let status = run_child("child_waits_for_ctrl_c");
    assert!(status.success(), "{status:?}");
}

#[test]
#[ignore = "run by ctrl_c_completes_on_sigint in a child process"]
fn child_waits_for_ctrl_c() {
    if !is_child() {
        return;
    }
    let rt = rt(2);
    rt.block_on(async {
        let waiter = weft_runtime::spawn(weft_runtime::signal::ctrl_c());
        // Raise only once the handler is in: before that, SIGINT would end the child.
        while disposition(libc::SIGINT) == libc::SIG_DFL {
            weft_runtime::time::sleep(Duration::from_millis(1)).await;
        }
        raise(libc::SIGINT);
        waiter.await.unwrap().unwrap();
    });
}

static EARLIER_HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn earlier_handler(_: libc::c_int) {
    EARLIER_HANDLER_CALLS.fetch_add(1, SeqCst);
}

#[test]
fn a_handler_installed_before_weft_keeps_being_called() {
    common::hang_guard();
    // SAFETY: installs an async-signal-safe handler (one atomic add) for SIGWINCH, which
    // only this test uses.
    unsafe { libc::signal(libc::SIGWINCH, earlier_handler as *const () as usize) };
    let rt = rt(1);
    rt.block_on(async {
        let mut s = signal(SignalKind::window_change()).unwrap();
        raise(libc::SIGWINCH);
        s.recv().await;
    });
    assert_eq!(EARLIER_HANDLER_CALLS.load(SeqCst), 1);
}

#[test]
fn signals_that_cannot_be_handled_are_invalid_input_naming_them() {
    common::hang_guard();
    for sig in [0, -1, 65, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
        let e = signal(SignalKind::from_raw(sig)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{sig}: {e}");
        assert!(e.to_string().contains(&sig.to_string()), "{sig}: {e}");
    }
}

#[test]
fn a_listener_works_outside_any_runtime() {
    common::hang_guard();
    // A real-time signal only this test uses.
    let sig = libc::SIGRTMIN() + 4;
    let mut s = signal(SignalKind::from_raw(sig)).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: `sig` has weft's handler (installed above, before this thread ran).
        unsafe { libc::kill(libc::getpid(), sig) };
    });
    common::watchdog("recv outside a runtime", move || {
        assert_eq!(common::block_on_plain(s.recv()), Some(()));
    });
    t.join().unwrap();
}
