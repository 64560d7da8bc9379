//! `seq_vs_par`: not written yet.

super::entries!();
