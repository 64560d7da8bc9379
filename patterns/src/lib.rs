//! The article's patterns in three styles: callback, future combinator and `async fn`.
//!
//! Nothing here yet: the patterns arrive with the callback and combinator APIs (see the
//! README's status table). The contract they will follow is `shared/PATTERNS.md`.
