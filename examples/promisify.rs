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
use weft_patterns::patterns::promisify::{self, Fail};
use weft_patterns::{Kind, SvcError, Weft};

/// The `.then(..).catch(..)` at the end of the article's chain.
fn show(out: Result<(u64, u64), SvcError>) {
    match out {
        Ok((content, saved)) => println!("Received: {content}, saved: {saved}"),
        Err(error) => println!("Error: {error}"),
    }
}

/// Runs a callback-style op on the runtime and waits for its outcome.
fn callback_op<T: Send + 'static>(
    rt: &Runtime,
    op: impl FnOnce(Box<dyn FnOnce(T) + Send>) + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    rt.handle()
        .defer(move || op(Box::new(move |out| tx.send(out).unwrap())));
    rx.recv().unwrap()
}

fn main() {
    let rt = Runtime::new().unwrap();
    let kind = Kind::Ready;

    println!("-- callback --");
    for fail in [Fail::Neither, Fail::Promisified] {
        show(callback_op(&rt, move |done| {
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
