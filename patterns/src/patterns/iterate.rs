//! `iterate`: not written yet.

super::entries!();
