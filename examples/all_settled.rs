//! `Promise.allSettled`: 100 calls, every tenth fails, and every outcome comes back in
//! order.
//!
//! ```text
//! cargo run --example all_settled
//! ```

use weft_patterns::harness::await_callback;
use weft_patterns::patterns::all_settled;
use weft_patterns::{Kind, SvcError, Weft};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::Ready;

    println!("-- callback --");
    print(await_callback(&rt, move |done| {
        all_settled::callback(kind, 1, done)
    }));

    println!("-- combinator --");
    print(rt.block_on(all_settled::combinator(kind, 1)));

    println!("-- async_fn --");
    print(rt.block_on(all_settled::async_fn(Weft, kind, 1)));
}

/// `.then((results) => console.log(results))`, abridged: the first two results, the first
/// rejection, and which calls were rejected.
fn print(results: Vec<Result<u64, SvcError>>) {
    let show = |i: usize| match &results[i] {
        Ok(value) => println!("[{i}] {{ status: 'fulfilled', value: {value} }}"),
        Err(reason) => println!("[{i}] {{ status: 'rejected', reason: '{reason}' }}"),
    };
    let rejected: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].is_err())
        .collect();
    show(0);
    show(1);
    println!("...");
    show(rejected[0]);
    println!("...");
    println!(
        "({} fulfilled; rejected: {rejected:?})",
        results.len() - rejected.len()
    );
}
