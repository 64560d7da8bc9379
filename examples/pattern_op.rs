//! One row of `compare`, run once: for the instruction count of a pattern's op in one style.
//!
//! ```text
//! cargo run --release --example pattern_op -- CASE KIND STYLE [INFLIGHT] [OPS] [WORKERS]
//! # e.g. pattern_op single ready callback 1 100000 1     (defaults: 1 in flight, 100 000 ops, 1 worker)
//! ```
//!
//! `STYLE` is `callback`, `combinator` or `async_fn`; `KIND` as `compare --kind` takes it.
//! It prints the nanoseconds per op. For instructions per op, run it under callgrind with two
//! op counts and divide the difference of the totals by the difference of the counts (the
//! runtime's start and stop cancel out):
//!
//! ```text
//! export WEFT_IO_DRIVER=fallback   # under valgrind a runtime on io_uring never exits
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/pattern_op single ready callback 1 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/pattern_op single ready callback 1 200000
//! ```

use weft_patterns::{Kind, Style, harness};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: pattern_op CASE KIND STYLE [INFLIGHT] [OPS] [WORKERS]";
    let case_id = args.next().expect(usage);
    let kind = args.next().expect(usage);
    let style = args.next().expect(usage);
    let inflight: usize = args.next().map_or(1, |a| a.parse().expect("INFLIGHT"));
    let ops: u64 = args.next().map_or(100_000, |a| a.parse().expect("OPS"));
    let workers: usize = args.next().map_or(1, |a| a.parse().expect("WORKERS"));
    let case = weft_patterns::case(&case_id)
        .unwrap_or_else(|| panic!("no case {case_id:?}; see `compare --filter`"));
    let kind = Kind::parse(&kind).unwrap_or_else(|| panic!("no kind {kind:?}"));
    let style = match style.as_str() {
        "callback" => Style::Callback,
        "combinator" => Style::Combinator,
        "async_fn" => Style::AsyncFn,
        other => panic!("STYLE {other:?}: expected callback, combinator or async_fn"),
    };
    let rt = harness::weft_runtime(workers);
    let (elapsed, n) = case.run_weft(&rt, style, kind, inflight, ops);
    println!(
        "{case_id}/{kind} {} x{inflight} on {workers} worker(s): {n} ops, {:.1} ns/op",
        style.name(),
        elapsed.as_nanos() as f64 / n as f64
    );
}
