//! `load_app`: not written yet.

super::entries!();
