//! `Promise.all` rejecting: 100 calls, the 51st (call 50) fails, and the error arrives as
//! soon as it happens — the futures drop the other calls, the callbacks ignore them.
//!
//! ```text
//! cargo run --example all_fail_fast
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::all_fail_fast;
use weft_patterns::{Kind, SvcError, Weft};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::TIMER;

    println!("-- callback --");
    print(await_callback(&rt, move |done| {
        all_fail_fast::callback(kind, 1, done)
    }));

    println!("-- combinator --");
    print(rt.block_on(all_fail_fast::combinator(kind, 1)));

    println!("-- async_fn --");
    print(rt.block_on(all_fail_fast::async_fn(Weft, kind, 1)));
}

/// `.then(([user, posts, settings]) => ...).catch((error) => console.error("One request
/// failed:", error))`.
fn print(r: Result<Vec<u64>, SvcError>) {
    match r {
        Ok(values) => println!("{} results", values.len()),
        Err(e) => println!("One request failed: {e}"),
    }
}
