//! The facade's macros as a user sees them: `#[weft::main]`, `#[weft::test]` with their
//! arguments, `-> Result` tests, and `select!`/`join!`/`try_join!`/`pin!`/`task_local!`
//! through `weft::`.

use std::time::Duration;

#[weft::main(worker_threads = 2)]
async fn entry_point() -> usize {
    let h = weft::spawn(async { weft::Handle::current().metrics().num_workers() });
    h.await.unwrap()
}

#[test]
fn main_builds_a_runtime_with_the_requested_workers() {
    assert_eq!(entry_point(), 2);
}

#[weft::main(io = "fallback")]
async fn fallback_entry() -> bool {
    weft::Handle::current().metrics().io_uring()
}

#[test]
fn main_io_fallback_disables_io_uring() {
    let on_ring = fallback_entry();
    // `WEFT_IO_DRIVER` overrides the attribute, as it does the builder.
    if std::env::var_os("WEFT_IO_DRIVER").is_none() {
        assert!(!on_ring);
    }
}

#[weft::test]
async fn a_plain_test_runs_on_a_runtime() {
    assert_eq!(weft::spawn(async { 21 * 2 }).await.unwrap(), 42);
}

#[weft::test(worker_threads = 1, io = "auto")]
async fn a_test_may_return_result() -> Result<(), weft::JoinError> {
    let v = weft::spawn(async { 5 }).await?;
    assert_eq!(v, 5);
    Ok(())
}

#[weft::test(crate = "weft")]
async fn question_mark_converts_into_the_test_error() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = "17".parse()?;
    weft::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(n, 17);
    Ok(())
}

weft::task_local! {
    static TRACE: &'static str;
}

#[weft::test(worker_threads = 2)]
async fn the_declarative_macros_through_the_facade() {
    let (a, b) = weft::join!(async { 1 }, TRACE.scope("t", async { TRACE.get() }));
    assert_eq!((a, b), (1, "t"));
    let sum = weft::try_join!(async { Ok::<_, ()>(1) }, async { Ok(2) }).map(|(x, y)| x + y);
    assert_eq!(sum, Ok(3));
    let sleep = weft::time::sleep(Duration::from_secs(60));
    weft::pin!(sleep);
    let got = weft::select! {
        _ = &mut sleep => "slept",
        v = async { "first" } => v,
    };
    assert_eq!(got, "first");
    let mut set = weft::task::JoinSet::new();
    set.spawn(async { weft::task::id() });
    let (id, inner) = set.join_next_with_id().await.unwrap().unwrap();
    assert_eq!(id, inner);
}
