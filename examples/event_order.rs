//! The microtask queue: the article's `A D C B`, on a one-worker runtime.
//!
//! ```js
//! console.log("A");
//! setTimeout(() => { console.log("B"); }, 0);
//! Promise.resolve().then(() => { console.log("C"); });
//! console.log("D");
//! ```
//!
//! `C` — a ready continuation — runs before `B` — a zero-delay timer (1 ms, as Node
//! clamps it) — although `B` was scheduled first.
//!
//! ```text
//! cargo run --example event_order
//! ```

use weft::Runtime;
use weft_patterns::harness::await_callback;
use weft_patterns::patterns::event_order;
use weft_patterns::{Kind, Weft};

fn main() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let console = |s: &'static str| println!("{s}");

    println!("-- callback --");
    let _ = await_callback(&rt, move |done| {
        event_order::callback(Kind::Ready, 0, console, done)
    });

    println!("-- combinator --");
    let op = rt.spawn(event_order::combinator(Kind::Ready, 0, console));
    rt.block_on(op).unwrap().unwrap();

    println!("-- async_fn --");
    let op = rt.spawn(event_order::async_fn(Weft, Kind::Ready, 0, console));
    rt.block_on(op).unwrap().unwrap();
}
