//! weft's procedural macros. Use them through the `weft` facade (`#[weft::main]`,
//! `#[weft::test]`, `weft::select!`, `weft::join!`, `weft::try_join!`) or through
//! `weft-runtime`, which re-exports them; this crate names no runtime itself. (The
//! examples run as doctests of those re-exports: this crate cannot depend on the runtime.)
//!
//! # Design
//!
//! - The attribute macros rewrite `async fn` into a plain `fn` that builds a runtime with
//!   `Runtime::builder()` and `block_on`s the body. The runtime is reached through the path
//!   `weft` (not `::weft`), so a crate may say `use weft_runtime as weft;`, or pass
//!   `crate = "path"`. Misuse is a `compile_error!` spanned on the offending tokens.
//! - `select!`, `join!` and `try_join!` are declarative macros in `weft-runtime` that forward
//!   here with `$crate` as their first token tree, so the generated code names the runtime
//!   by a hygienic path; what they expand to uses `::core` and that path only.
//! - Every expansion is safe code: futures are pinned with `::core::pin::pin!`, outputs are
//!   kept in `Option`s beside them, and the branch bodies of `select!` run outside the
//!   polling closure, so `return`, `?` and `break` in them act on the caller.
//!
//! Alternative rejected: `macro_rules!` for `select!` and `join!` alone, as a tt-muncher.
//! Counting branches, numbering the output enum's variants and cleaning patterns of `mut`
//! and `ref` is slow to expand and gives poor errors; `syn` does each in a few lines.

use proc_macro::TokenStream;

mod entry;
mod join;
mod select;

/// Marks `async fn main` as the program's entry point: it builds a weft runtime and runs
/// the body on it with `block_on`.
///
/// Arguments (all optional, comma-separated):
/// - `worker_threads = N`: the number of workers (an integer ≥ 1); default: the builder's
///   (`WEFT_WORKER_THREADS`, else one per CPU);
/// - `io = "uring" | "fallback" | "auto"`: `Builder::io_uring` with `UringMode::Required`,
///   `Disabled` or `Auto`; the `WEFT_IO_DRIVER` variable still overrides it;
/// - `crate = "path"`: where the runtime crate is (default `weft`).
///
/// ```text
/// #[weft::main(worker_threads = 2)]
/// async fn main() {
///     let h = weft::spawn(async { 40 + 2 });
///     assert_eq!(h.await.unwrap(), 42);
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on a fresh weft runtime; takes the arguments of [`main`]. The
/// test may return `Result<(), E>` like any `#[test]`.
///
/// ```text
/// #[weft::test(worker_threads = 1, io = "fallback")]
/// async fn adds() -> Result<(), weft::JoinError> {
///     assert_eq!(weft::spawn(async { 1 + 1 }).await?, 2);
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Test, args.into(), item.into()).into()
}

/// The engine of `weft::select!`; takes `(runtime path)` and then the `select!` input.
#[doc(hidden)]
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    select::expand(input.into()).into()
}

/// The engine of `weft::join!`; takes `(runtime path)` and then the futures.
#[doc(hidden)]
#[proc_macro]
pub fn join(input: TokenStream) -> TokenStream {
    join::expand(input.into(), false).into()
}

/// The engine of `weft::try_join!`; takes `(runtime path)` and then the futures.
#[doc(hidden)]
#[proc_macro]
pub fn try_join(input: TokenStream) -> TokenStream {
    join::expand(input.into(), true).into()
}
