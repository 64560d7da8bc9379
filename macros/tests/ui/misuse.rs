// Each function misuses an attribute once; the compile-fail test checks the messages in
// misuse.stderr. Compiled as a library, so no `main` is needed.

#[weft_macros::main]
fn not_async() {}

#[weft_macros::main]
async fn takes_arguments(n: u32) {}

#[weft_macros::test(workers = 2)]
async fn unknown_argument() {}

#[weft_macros::test(worker_threads = "two")]
async fn worker_threads_not_an_integer() {}

#[weft_macros::test(worker_threads = 0)]
async fn zero_workers() {}

#[weft_macros::main(io = uring)]
async fn io_not_a_string() {}

#[weft_macros::test(io = "epoll")]
async fn unknown_io_driver() {}

#[weft_macros::test(flavor)]
async fn not_key_value() {}

#[weft_macros::test]
#[test]
async fn two_test_attributes() {}

#[weft_macros::main]
async fn generic<T>() {}

#[weft_macros::test(crate = "not a path")]
async fn bad_crate_path() {}
