//! Errors in a chain: step 3 of `step1..step4` fails, step 4 never runs, the handler sees
//! the error once and the cleanup runs once — error-first callbacks, `.catch().finally()`,
//! and `try/catch/finally`.
//!
//! ```text
//! cargo run --example error_chain
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::error_chain::{self, Outcome};
use weft_patterns::{Kind, Weft};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::Ready;

    println!("-- callback --");
    print(await_callback(&rt, move |done| {
        error_chain::callback(kind, 1, done)
    }));

    println!("-- combinator --");
    print(rt.block_on(error_chain::combinator(kind, 1)));

    println!("-- async_fn --");
    print(rt.block_on(error_chain::async_fn(Weft, kind, 1)));
}

/// `.catch((error) => console.error("Error:", error)).finally(() => console.log("Done"))`,
/// as the op recorded it.
fn print(out: Outcome) {
    match out.result {
        Ok(r4) => println!("{r4}"),
        Err(e) => println!("Error: {e}"),
    }
    for _ in 0..out.cleanup_runs {
        println!("Done");
    }
    println!(
        "(steps run: {} of {}, handler calls: {}, cleanup runs: {})",
        out.steps_run,
        error_chain::STEPS,
        out.handler_calls,
        out.cleanup_runs
    );
}
