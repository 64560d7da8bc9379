//! `mixed`: not written yet.

super::entries!();
