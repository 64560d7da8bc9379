//! `timeout`: not written yet.

super::entries!();
