//! The cost of one `ready` op, the floor under `compare`'s `single/ready` row: one task
//! awaiting, one after another, futures that wake their task once and complete on the next
//! poll (as the patterns' `ready` service call does, without its counters).
//!
//! ```text
//! cargo run --release --example ready_op -- [OPS] [WORKERS]   # default 2 000 000, 1
//! ```
//!
//! It prints nanoseconds per op. For instructions per op, run it under callgrind with two
//! op counts and divide the difference of the totals by the difference of the counts (the
//! runtime's start and stop cancel out):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ready_op 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ready_op 200000
//! ```

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

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: u64 = args.next().map_or(2_000_000, |a| a.parse().expect("OPS"));
    let workers: usize = args.next().map_or(1, |a| a.parse().expect("WORKERS"));
    let rt = weft::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    let elapsed = rt.block_on(async move {
        weft::spawn(async move {
            let start = Instant::now();
            for _ in 0..ops {
                black_box(ReadyOnce(false)).await;
            }
            start.elapsed()
        })
        .await
        .expect("the task")
    });
    println!(
        "{ops} ready ops on {workers} worker(s): {:.1} ns/op",
        elapsed.as_nanos() as f64 / ops as f64
    );
}
