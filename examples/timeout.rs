//! Timeout via `Promise.race`: a 1 ms call under a 5 ms limit gives its value; a 5 ms call
//! under a 1 ms limit gives "Request timed out", and the call is cancelled.
//!
//! ```text
//! cargo run --example timeout
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::timeout::{self, Outcome};
use weft_patterns::{Kind, Weft};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::TIMER;

    println!("-- callback --");
    print(await_callback(&rt, move |done| {
        timeout::callback(kind, 1, done)
    }));

    println!("-- combinator --");
    print(rt.block_on(timeout::combinator(kind, 1)));

    println!("-- async_fn --");
    print(rt.block_on(timeout::async_fn(Weft, kind, 1)));
}

fn print((in_time, too_slow): (Outcome, Outcome)) {
    show("1 ms call, 5 ms limit", in_time);
    show("5 ms call, 1 ms limit", too_slow);
}

/// `fetchWithTimeout(url, ms).then(console.log).catch((e) => console.error(e.message))`.
fn show(what: &str, out: Outcome) {
    match out {
        Outcome::Value(data) => println!("{what}: Data: {data}"),
        Outcome::Failed(e) => println!("{what}: Error: {e}"),
        Outcome::TimedOut => println!("{what}: Error: Request timed out"),
    }
}
