//! `retry`: not written yet.

super::entries!();
