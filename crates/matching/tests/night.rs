//! The night replay: random nights through the live planner (protecting
//! the urgent, and in arrival order), greedy and hindsight. No safety rule
//! is ever broken, no need is left waiting beside a unit it could use, the
//! hindsight is never beaten, and protecting the urgent places more of the
//! urgent than arrival order over the nights of a run. No timing.

use proptest::prelude::*;
use refer_matching::night::{Night, NightKind};
use refer_matching::planner::Policy;

fn kind() -> impl Strategy<Value = NightKind> {
    prop_oneof![
        Just(NightKind::Scarce),
        Just(NightKind::Ample),
        Just(NightKind::Operation)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn no_safety_rule_is_ever_broken_over_a_night(kind in kind(), seed in any::<u64>(), people in 20usize..45) {
        let night = Night::sized(kind, seed, people);
        let hindsight = night.hindsight();
        for (name, outcome) in [
            ("protecting", night.live(Policy::default())),
            ("arrival order", night.live(Policy::arrival_order())),
            ("greedy", night.greedy()),
            ("hindsight", hindsight.clone()),
        ] {
            prop_assert_eq!(outcome.unsafe_placements, 0, "{}: eligibility, distance, regions, keep-apart", name);
            prop_assert_eq!(outcome.idle_while_waiting, 0, "{}: a need waits beside a unit it could use", name);
            if hindsight.proven {
                // Per tier, then distance: nothing beats the optimum.
                let key = |o: &refer_matching::night::Outcome| o.placed_by_tier;
                prop_assert!(key(&outcome) <= key(&hindsight), "{}: {:?} beats hindsight {:?}", name, outcome, hindsight);
            }
        }
    }
}

/// Over a few scarce nights, protecting the urgent gives a higher
/// priority-weighted outcome than arrival order (a comparison of counts,
/// never of time).
#[test]
fn protecting_the_urgent_beats_arrival_order_on_scarce_nights() {
    let (mut protecting, mut arrival) = (0, 0);
    for seed in 1..=4 {
        let night = Night::sized(NightKind::Scarce, seed, 60);
        protecting += night.live(Policy::default()).weighted();
        arrival += night.live(Policy::arrival_order()).weighted();
    }
    assert!(protecting > arrival, "protecting {protecting}, arrival order {arrival}");
}
