//! Mixing styles: an event listener — a callback — that runs async code.
//!
//! ```js
//! button.addEventListener("click", async () => {
//!   try {
//!     const result = await save();
//!     console.log(result);
//!   } catch (error) {
//!     console.error(error);
//!   }
//! });
//! ```
//!
//! Three clicks per style; each listener call saves (`svc`) and logs the result.
//!
//! ```text
//! cargo run --example mixed
//! ```

use weft::Runtime;
use weft_patterns::harness::await_callback;
use weft_patterns::patterns::mixed::{self, Handled};
use weft_patterns::{Kind, SvcError, Weft};

/// The listener's `console.log(result)` / `console.error(error)`.
fn log(r: &Result<u64, SvcError>) {
    match r {
        Ok(result) => println!("{result}"),
        Err(error) => println!("Error: {error}"),
    }
}

fn report(h: Handled) {
    println!("{} clicks handled", h.count);
}

fn main() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let clicks = 3;

    println!("-- callback --");
    report(await_callback(&rt, move |done| {
        mixed::callback(Kind::Ready, 1, clicks, log, done)
    }));

    println!("-- combinator --");
    let op = rt.spawn(mixed::combinator(Kind::Ready, 1, clicks, log));
    report(rt.block_on(op).unwrap());

    println!("-- async_fn --");
    let op = rt.spawn(mixed::async_fn(Weft, Kind::Ready, 1, clicks, log));
    report(rt.block_on(op).unwrap());
}
