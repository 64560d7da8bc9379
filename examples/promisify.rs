//! Turning callbacks into promises: the article's `readFileAsPromise`, and the reverse,
//! `util.callbackify` — in the three styles.
//!
//! ```js
//! readFileAsPromise("notes.txt")
//!   .then((content) => console.log(content))
//!   .catch((error) => console.error(error));
//! ```
//!
//! Each style reads through the promisified callback API (`x = 1`), then saves through the
//! callbackified future API (`x + 1`); the second run makes the read fail.
//!
//! ```text
//! cargo run --example promisify
//! ```

use weft::Runtime;
use weft_patterns::harness::await_callback;
use weft_patterns::patterns::promisify::{self, Fail};
use weft_patterns::{Kind, SvcError, Weft};

/// The `.then(..).catch(..)` at the end of the article's chain.
fn show(out: Result<(u64, u64), SvcError>) {
    match out {
        Ok((content, saved)) => println!("Received: {content}, saved: {saved}"),
        Err(error) => println!("Error: {error}"),
    }
}

fn main() {
    let rt = Runtime::new().unwrap();
    let kind = Kind::Ready;

    println!("-- callback --");
    for fail in [Fail::Neither, Fail::Promisified] {
        show(await_callback(&rt, move |done| {
            promisify::callback(kind, 1, fail, done)
        }));
    }

    println!("-- combinator --");
    for fail in [Fail::Neither, Fail::Promisified] {
        show(rt.block_on(promisify::combinator(kind, 1, fail)));
    }

    println!("-- async_fn --");
    for fail in [Fail::Neither, Fail::Promisified] {
        show(rt.block_on(promisify::async_fn(Weft, kind, 1, fail)));
    }
}
