//! Every case, every kind the contract lists: the three styles produce identical outcomes
//! (values, errors, counts of effects), on one worker and on two.

use weft_patterns::{Kind, Runner, cases};

/// Whether a case's outcome in some style rests on timing: every timer kind, and
/// `event_order`, whose future styles log `C` before `B` only if the worker polls the ready
/// call again within the 1 ms of `B`'s timer (see `patterns/event_order.rs`: a worker
/// descheduled for longer than that between the two polls sees the timer first, and logs
/// `ADBC`). That case runs on one worker only, with the `ready` kind, so the timer kinds'
/// longer delays cannot help it: on a loaded machine (load ~40, the fallback driver) it made
/// `styles_agree_on_one_worker` fail once.
fn rests_on_timing(case: &dyn Runner, kind: Kind) -> bool {
    matches!(kind, Kind::Timer(_)) || case.id() == "event_order"
}

/// The three styles' outcomes of one case; for a case whose outcome rests on timing
/// ([`rests_on_timing`]), run again (at most 20 times) while the styles disagree.
///
/// A timer case's outcome is fixed by its deadlines only if the runtime observes each
/// deadline before the next one passes (the patterns space them 1 d apart). A worker held
/// off the CPU for longer — a loaded machine — can see two deadlines passed at once, and
/// then a future `race` takes the first ready child in input order while the callbacks
/// settle in firing order: that run compares nothing. A style that is wrong disagrees on
/// every run, so a disagreement that persists for 20 runs fails.
fn agreeing_outcomes(case: &dyn Runner, rt: &weft::Runtime, kind: Kind, x: u64) -> [String; 3] {
    let mut outs = case.outcomes(rt, kind, x);
    if rests_on_timing(case, kind) {
        for _ in 1..20 {
            if outs[0] == outs[2] && outs[1] == outs[2] {
                break;
            }
            outs = case.outcomes(rt, kind, x);
        }
    }
    outs
}

fn check(workers: usize) {
    let rt = weft::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap();
    for case in cases() {
        if case.one_worker_only() && workers > 1 {
            continue;
        }
        for &kind in case.kinds() {
            // Timer cases at 10 ms rather than 1: a future `race` takes the first child it
            // finds ready in input order, so a worker held off the CPU for ~2 ms on a busy
            // machine could see two 1 ms-apart timers ready at once and pick a different
            // winner than the callbacks, which settle in firing order. The patterns scale
            // their delays with the kind's duration.
            let kind = match kind {
                Kind::Timer(_) => Kind::timer_ms(10),
                k => k,
            };
            for x in [0u64, 7, 16_383, 1 << 40] {
                let [cb, comb, af] = agreeing_outcomes(case, &rt, kind, x);
                assert_eq!(
                    cb,
                    af,
                    "{} / {kind}: callback differs from async_fn (x = {x})",
                    case.id()
                );
                assert_eq!(
                    comb,
                    af,
                    "{} / {kind}: combinator differs from async_fn (x = {x})",
                    case.id()
                );
            }
        }
    }
}

#[test]
fn styles_agree_on_one_worker() {
    check(1);
}

#[test]
fn styles_agree_on_two_workers() {
    check(2);
}

#[test]
fn every_contract_pattern_has_a_case() {
    let ids: Vec<_> = cases().iter().map(|c| c.id()).collect();
    let mut seen = std::collections::HashSet::new();
    for id in &ids {
        assert!(seen.insert(*id), "duplicate case id {id}");
    }
}
