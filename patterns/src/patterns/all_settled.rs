//! `all_settled`: not written yet.

super::entries!();
