//! `Promise.all`: the dashboard — user, notifications and activity loaded together, the
//! results in input order — in the three styles.
//!
//! ```text
//! cargo run --example promise_all
//! ```

use std::time::Instant;

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::all;
use weft_patterns::{Kind, SvcError, Weft};

fn show(label: &str, start: Instant, r: Result<Vec<u64>, SvcError>) {
    match r {
        Ok(v) => println!(
            "{label}: user {} notifications {} activity {} ({:.1} ms)",
            v[0],
            v[1],
            v[2],
            start.elapsed().as_secs_f64() * 1e3
        ),
        Err(e) => eprintln!("Dashboard failed: {e}"),
    }
}

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    // Each call takes 1 ms; together they take about 1 ms, not 3.
    let kind = Kind::TIMER;

    println!("-- callback --");
    let start = Instant::now();
    let r = await_callback(&rt, move |done| all::callback(kind, 1, 3, done));
    show("callback", start, r);

    println!("-- combinator --");
    let start = Instant::now();
    show("combinator", start, rt.block_on(all::combinator_3(kind, 1)));

    println!("-- async_fn --");
    let start = Instant::now();
    show(
        "async_fn",
        start,
        rt.block_on(all::async_fn_3(Weft, kind, 1)),
    );
}
