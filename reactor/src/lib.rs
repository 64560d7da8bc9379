//! weft-reactor: the part of weft that waits.
//!
//! This crate owns everything a worker thread blocks on: the park/unpark surface
//! ([`driver`]), the timer wheel ([`time`]), the io_uring ring ([`uring`]), the op layer
//! over it ([`op`]: one op future, one file per opcode, public as `weft::op` for opcodes
//! weft does not wrap), the owned-buffer traits the ops take ([`buf`]), the fallback's
//! epoll driver with its readiness waits ([`epoll`]), the guarded waking of user
//! wakers ([`wake`]) and a cache hint for loops over cold blocks ([`hint`]). It knows nothing of the scheduler:
//! only a [`Driver`] with `park(timeout)`, an [`Unpark`] handle, [`std::task::Waker`],
//! completion callbacks and [`op::Op`] futures cross the line to `weft-runtime`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use weft_reactor::{Driver, ThreadParker, Unpark};
//!
//! let mut parker = ThreadParker::new();
//! let unparker = parker.unparker();
//! std::thread::spawn(move || unparker.unpark());
//! // Returns once the other thread has unparked us (or after the timeout).
//! parker.park(Some(Duration::from_secs(5))).unwrap();
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

pub mod buf;
pub mod driver;
pub mod epoll;
mod handshake;
pub mod hint;
mod loom;
pub mod op;
pub mod time;
pub mod uring;
pub mod wake;

pub use driver::{Driver, ThreadParker, ThreadUnparker, Unpark};
pub use time::{TimeDriver, TimerHandle};
