//! The batch solver against an independent exact solver: brute force over
//! every assignment of small random instances, keep-apart classes included.

use proptest::prelude::*;
use refer_matching::{
    party_combinations, solve_batch, solve_batch_exact, solve_batch_within, Assignment, Need, Problem, Score,
};

fn brute_force(problem: &Problem) -> Score {
    fn go(problem: &Problem, i: usize, left: &mut Vec<u32>, current: &mut Assignment, best: &mut Option<Score>) {
        if i == problem.needs.len() {
            let score = problem.score(current);
            if best.is_none_or(|b| score > b) {
                *best = Some(score);
            }
            return;
        }
        current[i] = None;
        go(problem, i + 1, left, current, best);
        let need = &problem.needs[i];
        for &(source, _) in &need.options {
            let mate_there = need.apart.is_some_and(|class| {
                (0..i).any(|j| current[j] == Some(source) && problem.needs[j].apart == Some(class))
            });
            if left[source] >= need.units && !mate_there {
                left[source] -= need.units;
                current[i] = Some(source);
                go(problem, i + 1, left, current, best);
                left[source] += need.units;
            }
        }
        current[i] = None;
    }
    let mut best = None;
    go(
        problem,
        0,
        &mut problem.capacity.clone(),
        &mut vec![None; problem.needs.len()],
        &mut best,
    );
    best.expect("the empty assignment is always feasible")
}

/// Random problems; `classes` keep-apart classes (0: none), which about
/// half the needs belong to.
fn problem(max_units: u32, classes: u32) -> impl Strategy<Value = Problem> {
    (1usize..5).prop_flat_map(move |sources| {
        let need = (
            0u8..6,
            1..=max_units,
            prop::collection::btree_map(0..sources, 0u32..60, 0..=sources),
            0..=2 * classes,
        )
            .prop_map(move |(tier, units, options, class)| Need {
                tier,
                units,
                options: options.into_iter().collect(),
                apart: (class < classes).then_some(class),
            });
        (
            prop::collection::vec(0u32..4, sources),
            prop::collection::vec(need, 1..8),
        )
            .prop_map(|(capacity, needs)| Problem { capacity, needs })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_batch_equals_the_true_optimum_for_people_alone(p in problem(1, 0)) {
        let assignment = solve_batch(&p);
        prop_assert!(p.feasible(&assignment));
        prop_assert_eq!(p.score(&assignment), brute_force(&p));
        prop_assert_eq!(solve_batch(&p), assignment, "deterministic");
    }

    #[test]
    fn with_parties_the_batch_is_the_true_optimum(p in problem(4, 0)) {
        let assignment = solve_batch(&p);
        prop_assert!(p.feasible(&assignment), "never split, never over capacity");
        // Enumerated up to the limit, branch and bound beyond: exact either way.
        prop_assert!(party_combinations(&p) > 0);
        prop_assert_eq!(p.score(&assignment), brute_force(&p));
    }

    #[test]
    fn keep_apart_is_a_constraint_and_the_batch_stays_the_true_optimum(p in problem(1, 2)) {
        let assignment = solve_batch(&p);
        prop_assert!(p.feasible(&assignment), "no two of one class at one source");
        prop_assert_eq!(p.score(&assignment), brute_force(&p));
    }

    #[test]
    fn keep_apart_parties_are_optimal_and_always_kept_apart(p in problem(3, 2)) {
        let assignment = solve_batch(&p);
        prop_assert!(p.feasible(&assignment), "never split, never over capacity, never together");
        // Enumerated up to the limit, branch and bound beyond: exact either way.
        prop_assert!(party_combinations(&p) > 0);
        prop_assert_eq!(p.score(&assignment), brute_force(&p));
    }
}

/// Problems with many parties, beyond the enumeration, small enough for
/// brute force: the branch and bound must reach the true optimum.
fn party_heavy(classes: u32) -> impl Strategy<Value = Problem> {
    (2usize..5).prop_flat_map(move |sources| {
        let need = (
            0u8..6,
            prop_oneof![1 => Just(1u32), 2 => 2u32..=3],
            prop::collection::btree_map(0..sources, 0u32..60, 1..=sources),
            0..=2 * classes,
        )
            .prop_map(move |(tier, units, options, class)| Need {
                tier,
                units,
                options: options.into_iter().collect(),
                apart: (class < classes).then_some(class),
            });
        (
            prop::collection::vec(0u32..7, sources),
            prop::collection::vec(need, 4..9),
        )
            .prop_map(|(capacity, needs)| Problem { capacity, needs })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn branch_and_bound_reaches_the_true_optimum_with_many_parties(p in party_heavy(0)) {
        let (assignment, proven) = solve_batch_exact(&p);
        prop_assert!(proven);
        prop_assert!(p.feasible(&assignment), "never split, never over capacity");
        prop_assert_eq!(p.score(&assignment), brute_force(&p));
        // The bounded search (what the matcher runs) is never worse than
        // the greedy placement it starts from, and exact when it finishes.
        let (bounded, finished) = solve_batch_within(&p, 3);
        prop_assert!(p.feasible(&bounded));
        if finished {
            prop_assert_eq!(p.score(&bounded), brute_force(&p));
        }
    }

    #[test]
    fn branch_and_bound_keeps_parties_apart_and_optimal(p in party_heavy(2)) {
        let (assignment, proven) = solve_batch_exact(&p);
        prop_assert!(proven);
        prop_assert!(p.feasible(&assignment), "never split, never over capacity, never together");
        prop_assert_eq!(p.score(&assignment), brute_force(&p));
    }
}
