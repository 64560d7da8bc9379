//! `any`: not written yet.

super::entries!();
