//! `fetchWithRetry(url, 3)`: attempts 1 and 2 fail and attempt 3 succeeds; then a service
//! that never recovers, where the last attempt's error comes back.
//!
//! ```text
//! cargo run --example retry
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::retry::{self, Outcome};
use weft_patterns::{Kind, SvcError, Weft};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::Ready;

    println!("-- callback --");
    print(await_callback(&rt, move |done| {
        retry::callback(kind, 1, done)
    }));

    println!("-- combinator --");
    print(rt.block_on(retry::combinator(kind, 1)));

    println!("-- async_fn --");
    print(rt.block_on(retry::async_fn(Weft, kind, 1)));
}

fn print(out: Outcome) {
    show(out.third_succeeds);
    show(out.all_fail);
    println!("({} service calls)", out.calls);
}

/// `fetchWithRetry(url).then(console.log).catch(console.error)`.
fn show(r: Result<u64, SvcError>) {
    match r {
        Ok(data) => println!("Data: {data}"),
        Err(e) => println!("Error: {e}"),
    }
}
