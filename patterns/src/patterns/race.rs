//! `race`: not written yet.

super::entries!();
