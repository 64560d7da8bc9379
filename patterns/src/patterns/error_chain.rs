//! `error_chain`: not written yet.

super::entries!();
