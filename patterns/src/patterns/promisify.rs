//! `promisify`: not written yet.

super::entries!();
