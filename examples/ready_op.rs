//! The cost of one `ready` op, the floor under `compare`'s `single/ready` row: one task
//! awaiting, one after another, futures that wake their task once and complete on the next
//! poll (as the patterns' `ready` service call does, without its counters).
//!
//! ```text
//! cargo run --release --example ready_op -- [OPS] [WORKERS] [MODE]   # default 2 000 000, 1, one
//! ```
//!
//! `MODE` is what runs the ops:
//!
//! - `one`: a single task, one op after another (the `single/ready` row at 1 in flight);
//! - `yield`: 200 tasks that share the ops, so every self-wake re-queues behind the other
//!   tasks, spawned from a task (so onto its worker);
//! - `yield_remote`: the same 200 tasks spawned from outside the runtime, through the global
//!   queue, as `scheduler/yield_many` spawns them;
//! - `burst`: a task spawns 1 000 tasks of one op each and waits for them all, again and
//!   again (the shape of `mixed/ready` at 1 in flight: one emit spawns 1 000 handlers).
//!
//! It prints nanoseconds per op, and the parks, steals and spills per 1 000 ops (how often a
//! worker went idle, how many tasks one took from another, and how often a push found a
//! local queue over its bound and moved the older half to the global queue), and each
//! worker's share of the polls (how evenly the workers split the ops). For instructions per op, run it
//! under callgrind with two op counts and divide the difference of the totals by the
//! difference of the counts (the runtime's start and stop cancel out):
//!
//! ```text
//! export WEFT_IO_DRIVER=fallback
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ready_op 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ready_op 200000
//! ```
//!
//! `WEFT_IO_DRIVER=fallback` because under valgrind (3.19) a runtime on io_uring runs its
//! ops and then never exits (see `ci/valgrind.sh`); the ops' path is the same but for
//! the maintenance park's syscall.
//!
//! Where the instructions of one op go (callgrind, `one` mode, 1 worker, the fallback,
//! commit 167b027: 205 per op; `callgrind_annotate --inclusive=yes`): the re-poll's
//! `Schedule::repoll` 104 (of them `WorkerCx::watch_own_wheel`, the check for new timers or
//! ring ops, 41; the rest its queue and countdown checks and counters), the task's own
//! future 30, `wake_by_ref` (the self-wake recorded in the context) 11, the worker loop's
//! zero-timeout park every 61 ticks 12, and the rest (about 48) `raw::poll`'s poll guard
//! and state load and the loop's turn every 61 ticks. No atomic read-modify-write and no
//! queue operation remain on the path of an op: the re-poll (`task/state.rs`, "Re-polls")
//! skips both.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Pending once (after waking its task), then ready.
struct ReadyOnce(bool);

impl Future for ReadyOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// `n` ready ops, one after another.
async fn ops(n: u64) {
    for _ in 0..n {
        black_box(ReadyOnce(false)).await;
    }
}

/// Tasks of the `yield` mode.
const YIELD_TASKS: u64 = 200;
/// Tasks per burst of the `burst` mode.
const BURST: u64 = 1_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let ops_n: u64 = args.next().map_or(2_000_000, |a| a.parse().expect("OPS"));
    let workers: usize = args.next().map_or(1, |a| a.parse().expect("WORKERS"));
    let mode = args.next().unwrap_or_else(|| "one".to_string());
    let rt = weft::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    let before = rt.metrics().total();
    let polls_before: Vec<u64> = rt.metrics().workers().iter().map(|w| w.polls).collect();
    let elapsed = if mode == "yield_remote" {
        let start = Instant::now();
        let hs: Vec<_> = (0..YIELD_TASKS)
            .map(|_| rt.spawn(ops(ops_n / YIELD_TASKS)))
            .collect();
        for h in hs {
            rt.block_on(h).expect("a yielding task");
        }
        start.elapsed()
    } else {
        rt.block_on(async move {
            weft::spawn(async move {
                let start = Instant::now();
                match mode.as_str() {
                    "one" => ops(ops_n).await,
                    "yield" => {
                        let hs: Vec<_> = (0..YIELD_TASKS)
                            .map(|_| weft::spawn(ops(ops_n / YIELD_TASKS)))
                            .collect();
                        for h in hs {
                            h.await.expect("a yielding task");
                        }
                    }
                    "burst" => {
                        for _ in 0..ops_n / BURST {
                            let hs: Vec<_> = (0..BURST).map(|_| weft::spawn(ops(1))).collect();
                            for h in hs {
                                h.await.expect("a burst task");
                            }
                        }
                    }
                    other => panic!("MODE {other:?}: expected one, yield, yield_remote or burst"),
                }
                start.elapsed()
            })
            .await
            .expect("the task")
        })
    };
    let after = rt.metrics().total();
    let polls: Vec<u64> = rt.metrics().workers().iter().map(|w| w.polls).collect();
    let polled: Vec<u64> = polls
        .iter()
        .zip(&polls_before)
        .map(|(a, b)| a - b)
        .collect();
    let all = polled.iter().sum::<u64>().max(1) as f64;
    let shares: Vec<String> = polled
        .iter()
        .map(|&p| format!("{:.0}%", p as f64 * 100.0 / all))
        .collect();
    let per_k = |n: u64| n as f64 * 1000.0 / ops_n as f64;
    println!(
        "{ops_n} ready ops on {workers} worker(s): {:.1} ns/op, {:.2} parks, {:.2} steals and \
         {:.2} spills per 1 000 ops; polls per worker {}",
        elapsed.as_nanos() as f64 / ops_n as f64,
        per_k(after.parks - before.parks),
        per_k(after.steals - before.steals),
        per_k(after.overflows - before.overflows),
        shares.join("/"),
    );
}
