//! `event_order`: not written yet.

super::entries!();
