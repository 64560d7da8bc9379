//! Sequential vs parallel execution: the article's `loadSequentially` and
//! `loadInParallel`, with 10 ms calls — three delays one after the other, or one delay for
//! all three.
//!
//! ```text
//! cargo run --example seq_vs_par
//! ```

use std::time::{Duration, Instant};

use weft::Runtime;
use weft_patterns::harness::await_callback;
use weft_patterns::patterns::seq_vs_par::{self, Loaded};
use weft_patterns::{Kind, SvcError, Weft};

/// Prints what a load returned and how long it took.
fn report(name: &str, start: Instant, out: Result<Loaded, SvcError>) {
    let ms = start.elapsed().as_secs_f64() * 1e3;
    match out {
        Ok(l) => println!(
            "{name}: {ms:.1} ms {{ user: {}, orders: {}, settings: {} }}",
            l.user, l.orders, l.settings
        ),
        Err(e) => println!("{name}: {ms:.1} ms, failed: {e}"),
    }
}

fn main() {
    let rt = Runtime::new().unwrap();
    let kind = Kind::Timer(Duration::from_millis(10));

    println!("-- callback --");
    let t = Instant::now();
    let out = await_callback(&rt, move |done| seq_vs_par::callback_seq(kind, 1, done));
    report("loadSequentially", t, out);
    let t = Instant::now();
    let out = await_callback(&rt, move |done| seq_vs_par::callback_par(kind, 1, done));
    report("loadInParallel", t, out);

    println!("-- combinator --");
    let t = Instant::now();
    report(
        "loadSequentially",
        t,
        rt.block_on(seq_vs_par::combinator_seq(kind, 1)),
    );
    let t = Instant::now();
    report(
        "loadInParallel",
        t,
        rt.block_on(seq_vs_par::combinator_par(kind, 1)),
    );

    println!("-- async_fn --");
    let t = Instant::now();
    report(
        "loadSequentially",
        t,
        rt.block_on(seq_vs_par::load_sequentially(Weft, kind, 1)),
    );
    let t = Instant::now();
    report(
        "loadInParallel",
        t,
        rt.block_on(seq_vs_par::load_in_parallel(Weft, kind, 1)),
    );
}
