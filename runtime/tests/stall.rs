//! A worker stalled in a task that never yields does not hold its timers hostage: an idle
//! worker takes over the stalled wheel's due timers and runs the tasks they wake.
//!
//! No assertion compares durations: the stalling task spins until the timer's task has run
//! (an atomic flag) and gives up only after a hang limit, reporting whether it was released.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use common::{hang_guard, wait_until, watchdog};
use weft_runtime::time::{self, Sleep};
use weft_runtime::Runtime;

/// How long the stalling task spins before it gives up: a hang limit, far beyond the few
/// milliseconds a take-over needs.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Spins without yielding until `flag` is set or [`GIVE_UP`] passes; `true` if released.
fn spin_until(flag: &AtomicBool) -> bool {
    let start = Instant::now();
    while !flag.load(SeqCst) {
        if start.elapsed() > GIVE_UP {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// Polls `sleep` once with a no-op waker, filing its timer in the calling worker's wheel.
fn register_here(sleep: &mut Sleep) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(sleep).poll(&mut cx).is_pending());
}

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn a_stalled_workers_timer_wakes_a_task_on_another_worker() {
    hang_guard();
    let released = watchdog("stalled timer", || {
        let rt = rt();
        let slot: Arc<Mutex<Option<Sleep>>> = Arc::new(Mutex::new(None));
        let done = Arc::new(AtomicBool::new(false));
        // The stalling task files a timer in its own worker's wheel, hands it over, and
        // spins until the task awaiting that timer has finished.
        let staller = {
            let (slot, done) = (slot.clone(), done.clone());
            rt.spawn(async move {
                let mut sleep = time::sleep(Duration::from_millis(5));
                register_here(&mut sleep);
                *slot.lock().unwrap() = Some(sleep);
                spin_until(&done)
            })
        };
        wait_until("the timer is filed", || slot.lock().unwrap().is_some());
        let sleep = slot.lock().unwrap().take().unwrap();
        // Runs on the other worker (the first one is spinning); its waker replaces the
        // no-op one in the stalled wheel.
        let sleeper = {
            let done = done.clone();
            rt.spawn(async move {
                sleep.await;
                done.store(true, SeqCst);
            })
        };
        let released = rt.block_on(staller).unwrap();
        rt.block_on(sleeper).unwrap();
        released
    });
    assert!(released, "the timer stayed on the stalled worker's wheel");
}

#[test]
fn a_timer_filed_just_before_the_stall_fires_while_its_worker_spins() {
    hang_guard();
    // The timer is filed by a task that ran from the stalling worker's LIFO slot, so no
    // other worker was woken for it: filing it must make sure some idle worker watches.
    let released = watchdog("timer filed before the stall", || {
        let rt = rt();
        let done = Arc::new(AtomicBool::new(false));
        let staller = {
            let done = done.clone();
            rt.spawn(async move {
                let flag = Waker::from(Arc::new(Flag(done.clone())));
                let sleep = weft_runtime::spawn(async move {
                    let mut sleep = time::sleep(Duration::from_millis(3));
                    let mut cx = Context::from_waker(&flag);
                    assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
                    // Handed back in a tuple, to be kept (not awaited) while the worker spins.
                    (sleep,)
                })
                .await
                .unwrap();
                let released = spin_until(&done);
                drop(sleep.0);
                released
            })
        };
        rt.block_on(staller).unwrap()
    });
    assert!(released, "the timer stayed on the stalled worker's wheel");
}

struct Flag(Arc<AtomicBool>);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}
