//! The article's complete example: `loadApp`, with `try`/`catch`/`finally` — once with
//! both calls succeeding, once with `fetchNotifications` failing. "Loading complete" is
//! printed exactly once either way.
//!
//! ```text
//! cargo run --example load_app
//! ```

use std::time::Duration;

use weft::Runtime;
use weft_patterns::harness::await_callback;
use weft_patterns::patterns::load_app::{self, App, Ui};
use weft_patterns::{Kind, SvcError, Weft};

/// The article's `console`.
#[derive(Clone, Copy)]
struct Console;

impl Ui for Console {
    fn loading(&self) {
        println!("Loading app...");
    }

    fn loaded(&self, app: &App) {
        println!("User: {{ id: {} }}", app.user);
        println!("Notifications: {}", app.notifications);
    }

    fn failed(&self, error: &SvcError) {
        println!("App failed to load: {error}");
    }

    fn complete(&self) {
        println!("Loading complete");
    }
}

fn main() {
    let rt = Runtime::new().unwrap();
    let kind = Kind::Timer(Duration::from_millis(5));

    println!("-- callback --");
    for fail in [false, true] {
        await_callback(&rt, move |done| {
            load_app::callback(kind, 1, fail, Console, done)
        })
        .ok();
    }

    println!("-- combinator --");
    for fail in [false, true] {
        rt.block_on(load_app::combinator(kind, 1, fail, Console))
            .ok();
    }

    println!("-- async_fn --");
    for fail in [false, true] {
        rt.block_on(load_app::load_app(Weft, kind, 1, fail, Console))
            .ok();
    }
}
