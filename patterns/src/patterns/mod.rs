//! The patterns, one module each, in the article's order. Every module holds the three
//! implementations side by side — `callback`, `combinator`, `async_fn` — as free functions
//! that read like the article's snippets, and a [`Case`](crate::Case) impl per benchmarked
//! case that wires them to the harness.

use crate::Runner;

pub mod all;
pub mod all_fail_fast;
pub mod all_settled;
pub mod any;
pub mod chain;
pub mod error_chain;
pub mod event_order;
pub mod iterate;
pub mod load_app;
pub mod mixed;
pub mod promisify;
pub mod race;
pub mod retry;
pub mod seq_vs_par;
pub mod single;
pub mod timeout;

/// The type-erased entries of a module's cases: `entries![CaseA, CaseB]`.
macro_rules! entries {
    ($($case:ty),* $(,)?) => {
        /// This module's cases, for the registry.
        pub(crate) fn entries() -> Vec<&'static dyn crate::Runner> {
            vec![$({
                static ENTRY: crate::harness::Entry<$case> = crate::harness::Entry::new();
                &ENTRY as &'static dyn crate::Runner
            }),*]
        }
    };
}
pub(crate) use entries;

/// Every case, in table order.
pub(crate) fn registry() -> Vec<&'static dyn Runner> {
    let mut all = Vec::new();
    all.extend(single::entries());
    all.extend(chain::entries());
    all.extend(error_chain::entries());
    all.extend(all::entries());
    all.extend(all_fail_fast::entries());
    all.extend(all_settled::entries());
    all.extend(race::entries());
    all.extend(any::entries());
    all.extend(promisify::entries());
    all.extend(retry::entries());
    all.extend(timeout::entries());
    all.extend(seq_vs_par::entries());
    all.extend(iterate::entries());
    all.extend(event_order::entries());
    all.extend(mixed::entries());
    all.extend(load_app::entries());
    all
}
