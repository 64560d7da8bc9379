//! One row of the comparison in one style, for profilers: runs `OPS` ops of a case with
//! `INFLIGHT` in flight on a weft runtime of `WORKERS` workers, through the same harness as
//! `compare` and `benches/patterns.rs`, and prints nanoseconds per op.
//!
//! ```text
//! cargo run --release -p weft-patterns --example row -- CASE KIND STYLE [OPS] [INFLIGHT] [WORKERS]
//! cargo run --release -p weft-patterns --example row -- par ready callback 100000 1 1
//! ```
//!
//! `STYLE` is `callback`, `combinator` or `async_fn`; the defaults are 100 000 ops, 1 in
//! flight, 1 worker. For instructions per op, run it under callgrind with two op counts and
//! divide the difference of the totals by the difference of the counts (the runtime's start
//! and stop, and the data file's opening, cancel out):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/row par ready callback 20000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/row par ready callback 40000
//! ```

use std::process::exit;

use weft_patterns::harness::weft_runtime;
use weft_patterns::{Kind, Style, case};

fn usage() -> ! {
    eprintln!("usage: row CASE KIND STYLE [OPS] [INFLIGHT] [WORKERS]");
    exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        usage()
    }
    let Some(case) = case(&args[0]) else {
        eprintln!("no case {:?}", args[0]);
        exit(2)
    };
    let Some(kind) = Kind::parse(&args[1]) else {
        eprintln!("no kind {:?} (ready, file, timer, net)", args[1]);
        exit(2)
    };
    let style = match args[2].as_str() {
        "callback" => Style::Callback,
        "combinator" => Style::Combinator,
        "async_fn" => Style::AsyncFn,
        other => {
            eprintln!("no weft style {other:?} (callback, combinator, async_fn)");
            exit(2)
        }
    };
    let num = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("not a number: {a:?}");
                exit(2)
            })
        })
    };
    let (ops, inflight, workers) = (num(3, 100_000), num(4, 1), num(5, 1));
    if !case.kinds().contains(&kind) {
        eprintln!("{} has no {kind} row", case.id());
        exit(2)
    }
    let rt = weft_runtime(workers as usize);
    let (elapsed, ran) = case.run_weft(&rt, style, kind, inflight as usize, ops);
    println!(
        "{}/{kind} {} at {inflight} in flight on {workers} worker(s): {ran} ops, {:.1} ns/op",
        case.id(),
        style.name(),
        elapsed.as_secs_f64() * 1e9 / ran as f64
    );
}
