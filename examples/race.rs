//! `Promise.race`: three calls of 3, 1 and 2 ms; the 1 ms one (call 1) settles first, and
//! the other two are cancelled.
//!
//! ```text
//! cargo run --example race
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::race;
use weft_patterns::{Kind, SvcError, Weft, expected};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::TIMER;

    println!("-- callback --");
    print(await_callback(&rt, move |done| {
        race::callback(kind, 1, done)
    }));

    println!("-- combinator --");
    print(rt.block_on(race::combinator(kind, 1)));

    println!("-- async_fn --");
    print(rt.block_on(race::async_fn(Weft, kind, 1)));
}

/// `.then((result) => console.log("First result:", result))`.
fn print(r: Result<u64, SvcError>) {
    let result = r.expect("no call fails");
    let call = (0..race::N)
        .find(|&i| expected(Kind::TIMER, 1 + i as u64) == result)
        .expect("one of the three calls");
    let ms = race::DELAYS[call];
    println!("First result: {result} (call {call}, the {ms} ms one)");
}
