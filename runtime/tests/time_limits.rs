//! Intervals at the edges of the clock: periods too long to add to an `Instant`, and more
//! missed periods than fit in a `u32`.

mod common;

use std::time::{Duration, Instant};

use weft_runtime::Runtime;
use weft_runtime::time::{MissedTickBehavior, interval, interval_at, timeout};

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn interval_of_duration_max_ticks_once_then_not_again() {
    common::hang_guard();
    let rt = rt();
    rt.block_on(async {
        for missed in [
            MissedTickBehavior::Burst,
            MissedTickBehavior::Delay,
            MissedTickBehavior::Skip,
        ] {
            let mut iv = interval(Duration::MAX);
            iv.set_missed_tick_behavior(missed);
            iv.tick().await;
            assert!(timeout(Duration::from_millis(5), iv.tick()).await.is_err());
            iv.reset();
            assert!(timeout(Duration::from_millis(5), iv.tick()).await.is_err());
        }
    });
}

#[test]
fn skip_with_more_than_u32_max_missed_periods_never_schedules_in_the_past() {
    common::hang_guard();
    let Some(start) = Instant::now().checked_sub(Duration::from_secs(10)) else {
        return; // the clock's epoch is less than 10 s ago: nothing to miss
    };
    let rt = rt();
    rt.block_on(async {
        // 10 s behind a 1 ns schedule: 10^10 missed periods, more than u32::MAX.
        let mut iv = interval_at(start, Duration::from_nanos(1));
        iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let before = Instant::now();
        assert_eq!(iv.tick().await, start);
        let next = iv.tick().await;
        assert!(
            next >= before,
            "Skip scheduled a tick {:?} before the first one was taken",
            before - next
        );
    });
}
