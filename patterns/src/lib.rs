//! The async JavaScript article's patterns, each written three ways in Rust — error-first
//! callbacks, future combinators, and `async fn` — doing the same work, so that what each
//! style costs can be measured.
//!
//! The contract (the service, the styles, what one op is) is `shared/PATTERNS.md`; this
//! crate follows it, and says where it deviates.
//!
//! - [`service`]: the mock service `svc(kind, x)` in its three faces, and the data file;
//!   [`net`]: the `net` kind's server, protocol and connection pool.
//! - [`Env`]: what the `async fn` style needs from a runtime, so it also runs on tokio.
//! - [`patterns`]: one module per pattern, its three implementations side by side.
//! - [`Case`] and [`cases`]: every pattern as the harness, the tests and the comparison see
//!   it; [`harness`]: how one measurement runs.
//!
//! # Examples
//!
//! ```
//! use weft_patterns::{patterns::chain::Chain, Case, Kind, Weft};
//!
//! let rt = weft::Runtime::new().unwrap();
//! let v = rt.block_on(Chain::async_fn(Weft, Kind::Ready, 1));
//! assert_eq!(v, Ok(weft_patterns::chain_value(Kind::Ready, 1, 4)));
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

mod case;
mod env;
pub mod harness;
pub mod net;
pub mod patterns;
pub mod service;

pub use case::{Case, Latch, LatchWait, Runner, Style};
#[cfg(feature = "tokio")]
pub use env::Tokio;
pub use env::{Env, TimedOut, Weft};
pub use service::{
    BLOCK_SIZE, BLOCKS, Kind, Svc, SvcError, SvcHandle, call, call_cb, data_file, expected, probe,
    step, svc, svc_cb, svc_fail, svc_fail_cb,
};

/// The value of a chain of `n` dependent calls starting from `x` (each step fed the previous
/// step's value).
pub fn chain_value(kind: Kind, x: u64, n: usize) -> u64 {
    (0..n).fold(x, |v, _| expected(kind, v))
}

/// Every case, in table order.
pub fn cases() -> Vec<&'static dyn Runner> {
    patterns::registry()
}

/// The case with this id.
pub fn case(id: &str) -> Option<&'static dyn Runner> {
    cases().into_iter().find(|c| c.id() == id)
}
