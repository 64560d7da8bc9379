//! `Promise.any`: of three calls the first two fail, and the third's value comes back;
//! when all three fail, one error holds all three.
//!
//! ```text
//! cargo run --example any
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::any::{self, AnyResult, Outcome};
use weft_patterns::{Kind, Weft};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::TIMER;

    println!("-- callback --");
    print(await_callback(&rt, move |done| {
        any::callback(kind, 1, done)
    }));

    println!("-- combinator --");
    print(rt.block_on(any::combinator(kind, 1)));

    println!("-- async_fn --");
    print(rt.block_on(any::async_fn(Weft, kind, 1)));
}

fn print(out: Outcome) {
    show(out.one_succeeds);
    show(out.all_fail);
}

/// `.then((result) => console.log("First success:", result))
///  .catch((error) => console.error("All failed"))`.
fn show(r: AnyResult) {
    match r {
        Ok(result) => println!("First success: {result}"),
        Err(errors) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            println!("All failed: [{}]", errors.join(", "));
        }
    }
}
