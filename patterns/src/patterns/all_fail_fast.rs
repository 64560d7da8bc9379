//! `all_fail_fast`: not written yet.

super::entries!();
