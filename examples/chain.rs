//! Promise chaining and callback hell: `step1..step4`, each fed the previous result — the
//! pyramid, the `.then` chain and the four `await`s.
//!
//! ```text
//! cargo run --example chain
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::chain;
use weft_patterns::{Kind, Weft};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::Ready;

    println!("-- callback (nested: the pyramid of doom) --");
    print(await_callback(&rt, move |done| {
        chain::callback_nested(kind, 1, done)
    }));

    println!("-- callback (flattened with waterfall) --");
    print(await_callback(&rt, move |done| {
        chain::callback(kind, 1, done)
    }));

    println!("-- combinator: step1().then(step2).then(step3).then(step4) --");
    print(rt.block_on(chain::combinator(kind, 1)));

    println!("-- async_fn: const r1 = await step1(); ... --");
    print(rt.block_on(chain::async_fn(Weft, kind, 1)));
}

fn print(r: Result<u64, weft_patterns::SvcError>) {
    match r {
        Ok(r4) => println!("{r4}"),
        Err(e) => eprintln!("Error: {e}"),
    }
}
