//! Async iteration: the `forEach` bug, then the two fixes — a sequential loop and
//! `Promise.all` — and the bounded version users reach for next (8 at a time).
//!
//! ```js
//! users.forEach(async (user) => { await saveUser(user); });   // nobody waits
//! for (const user of users) { await saveUser(user); }         // one at a time
//! await Promise.all(users.map((user) => saveUser(user)));     // all at once
//! ```
//!
//! ```text
//! cargo run --example iterate
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use weft::Runtime;
use weft::promise::PromiseExt;
use weft_patterns::harness::await_callback;
use weft_patterns::patterns::iterate;
use weft_patterns::{Kind, SvcError, Weft, svc, svc_cb};

const USERS: usize = 3;
const KIND: Kind = Kind::Ready;

/// What the fixed loops print.
fn show(name: &str, out: Result<Vec<u64>, SvcError>) {
    match out {
        Ok(saved) if saved.len() <= USERS => println!("{name}: saved {saved:?}"),
        Ok(saved) => println!(
            "{name}: saved {} users: [{}, ..., {}]",
            saved.len(),
            saved[0],
            saved[saved.len() - 1]
        ),
        Err(e) => println!("{name}: failed: {e}"),
    }
}

/// `saveUser`'s side effect in the buggy loops: counts and prints the save.
fn saved(count: &AtomicUsize, user: u64) {
    count.fetch_add(1, SeqCst);
    println!("  saved user {user}");
}

/// The bug's punchline, printed on the worker right after the loop: nothing is saved yet.
/// (One worker: the saves cannot run before the loop's callback or task yields.)
fn loop_done(count: &AtomicUsize) {
    println!(
        "forEach: loop done, {} of {USERS} users saved",
        count.load(SeqCst)
    );
}

/// Gives the forgotten saves time to happen (and print) afterwards.
fn wait_for_stragglers() {
    std::thread::sleep(Duration::from_millis(20));
}

fn main() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let users = || 0..USERS as u64;

    println!("-- callback --");
    let count = Arc::new(AtomicUsize::new(0));
    await_callback(&rt, move |done| {
        users().for_each(|user| {
            let c = count.clone();
            svc_cb(KIND, user, move |_: Result<u64, SvcError>| saved(&c, user));
        });
        loop_done(&count);
        done(());
    });
    wait_for_stragglers();
    show(
        "for..of",
        await_callback(&rt, |done| iterate::callback_seq(KIND, 0, USERS, done)),
    );
    show(
        "Promise.all",
        await_callback(&rt, |done| iterate::callback_par(KIND, 0, USERS, done)),
    );
    let out = await_callback(&rt, |done| iterate::callback_bounded(KIND, 0, 100, 8, done));
    show("8 at a time", out);

    println!("-- combinator --");
    let count = Arc::new(AtomicUsize::new(0));
    let op = std::future::ready(()).map(move |()| {
        users().for_each(|user| {
            let c = count.clone();
            weft::spawn(svc(KIND, user).map(move |_| saved(&c, user))); // never awaited
        });
        loop_done(&count);
    });
    rt.block_on(rt.spawn(op)).unwrap();
    wait_for_stragglers();
    show(
        "for..of",
        rt.block_on(iterate::combinator_seq(KIND, 0, USERS)),
    );
    show(
        "Promise.all",
        rt.block_on(iterate::combinator_par(KIND, 0, USERS)),
    );
    show(
        "8 at a time",
        rt.block_on(iterate::combinator_bounded(KIND, 0, 100, 8)),
    );

    println!("-- async_fn --");
    let count = Arc::new(AtomicUsize::new(0));
    let op = async move {
        users().for_each(|user| {
            let c = count.clone();
            weft::spawn(async move {
                let _ = svc(KIND, user).await;
                saved(&c, user);
            });
        });
        loop_done(&count);
    };
    rt.block_on(rt.spawn(op)).unwrap();
    wait_for_stragglers();
    show(
        "for..of",
        rt.block_on(iterate::async_fn_seq(Weft, KIND, 0, USERS)),
    );
    show(
        "Promise.all",
        rt.block_on(iterate::async_fn_par(Weft, KIND, 0, USERS)),
    );
    show(
        "8 at a time",
        rt.block_on(iterate::async_fn_bounded(Weft, KIND, 0, 100, 8)),
    );
}
