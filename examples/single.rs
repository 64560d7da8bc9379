//! The article's basics — `fetchData(callback)`, a promise, `async function hello()` — in
//! the three styles. Prints what the article prints, with the service's value.
//!
//! ```text
//! cargo run --example single
//! ```

use weft::promise::PromiseExt;
use weft_patterns::{Kind, SvcError, Weft, svc, svc_cb};

fn main() {
    let rt = weft::Runtime::new().expect("runtime");
    let kind = Kind::TIMER;

    println!("-- callback --");
    let (tx, rx) = std::sync::mpsc::channel();
    rt.handle().defer(move || {
        println!("Start");
        // fetchData((result) => console.log("Received:", result));
        svc_cb(kind, 1, move |r: Result<u64, SvcError>| {
            println!("Received: {}", r.unwrap());
            tx.send(()).unwrap();
        });
        println!("End");
    });
    rx.recv().unwrap();

    println!("-- combinator --");
    rt.block_on(
        // fetchData().then((data) => console.log(data)).catch(console.error)
        svc(kind, 1)
            .map_ok(|data| println!("Received: {data}"))
            .catch(|e| {
                eprintln!("{e}");
                Ok::<(), SvcError>(())
            }),
    )
    .unwrap();

    println!("-- async_fn --");
    rt.block_on(async {
        // async function hello() { return "Hello"; }  hello().then(console.log)
        async fn hello() -> &'static str {
            "Hello"
        }
        println!("{}", hello().await);
        match weft_patterns::patterns::single::async_fn(Weft, kind, 1).await {
            Ok(data) => println!("Received: {data}"),
            Err(e) => eprintln!("Failed: {e}"),
        }
    });
}
