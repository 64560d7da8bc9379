//! Thread hooks: `on_thread_start`/`on_thread_stop` run once per worker and blocking
//! thread, and a hook that panics neither hangs the runtime nor loses its tasks.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{watchdog, watchdog_within};
use weft_runtime::Runtime;

/// Building and dropping a runtime takes milliseconds; a hang is declared after this.
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn hooks_run_once_per_thread() {
    common::hang_guard();
    let names = Arc::new(Mutex::new(Vec::new()));
    let stops = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder()
        .worker_threads(3)
        .thread_name("hooked")
        .on_thread_start({
            let names = names.clone();
            move || {
                let name = std::thread::current().name().unwrap_or("").to_string();
                names.lock().unwrap().push(name);
            }
        })
        .on_thread_stop({
            let stops = stops.clone();
            move || {
                stops.fetch_add(1, SeqCst);
            }
        })
        .build()
        .unwrap();
    // A blocking job starts one pool thread, which runs the hooks too.
    assert_eq!(rt.block_on(rt.spawn_blocking(|| 1)).unwrap(), 1);
    common::wait_until("4 starts", || names.lock().unwrap().len() == 4);
    assert_eq!(stops.load(SeqCst), 0);
    watchdog("drop", move || drop(rt));
    assert_eq!(stops.load(SeqCst), 4);
    let mut names = names.lock().unwrap().clone();
    names.sort();
    assert_eq!(
        names,
        ["hooked-0", "hooked-1", "hooked-2", "hooked-blocking"]
    );
}

#[test]
fn a_panicking_on_thread_start_hook_does_not_hang_the_runtime() {
    common::hang_guard();
    common::quiet_expected_panics();
    // Whatever `build` answers, it must answer, and dropping what it built must return.
    let outcome = watchdog_within("build and drop with a panicking start hook", LIMIT, || {
        let built = Runtime::builder()
            .worker_threads(2)
            .on_thread_start(|| panic!("[expected] start hook"))
            .build();
        match built {
            Ok(rt) => {
                drop(rt);
                "built".to_string()
            }
            Err(e) => e.to_string(),
        }
    });
    // The worker's setup did not happen: build refuses, naming the hook and its message.
    assert!(
        outcome.contains("hook panicked") && outcome.contains("[expected] start hook"),
        "{outcome}"
    );
}

#[test]
fn a_panicking_on_thread_start_hook_of_a_blocking_thread_does_not_hang_the_runtime() {
    common::hang_guard();
    common::quiet_expected_panics();
    // The hook panics only on blocking-pool threads.
    let result = watchdog_within("blocking job with a panicking start hook", LIMIT, || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .thread_name("w")
            .on_thread_start(|| {
                if std::thread::current().name() == Some("w-blocking") {
                    panic!("[expected] blocking start hook");
                }
            })
            .build()
            .unwrap();
        let j = rt.spawn_blocking(|| 5);
        // The job either runs somewhere or reports an error; it must not wait forever.
        let r = rt.block_on(j).map_err(|e| e.to_string());
        drop(rt);
        r
    });
    let _ = result;
}
