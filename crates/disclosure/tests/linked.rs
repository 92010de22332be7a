//! A report's tables read together, as the outside attack on the published
//! month did: two breakdowns of the same unmet needs (by region, by
//! gender) and the outcome table whose unmet columns add up to them. The
//! reader here searches, by brute force and sharing nothing with the
//! library, every set of tables that agrees with all that is published and
//! with how the tables are related; a hidden figure it finds the same in
//! every such set is worked out.

use proptest::prelude::*;
use refer_disclosure::*;
use std::collections::BTreeSet;

/// What links a table to the others, read off a candidate of it.
type Key = dyn Fn(&[Vec<u64>]) -> Vec<u64>;
/// An unmet need: its kind, region, gender and status (waiting or open).
type Need = (usize, usize, usize, usize);

/// What a reader knows of a shown figure: the counts it allows.
fn allows(shown: Shown, count: u64) -> bool {
    match shown {
        Shown::Count(n) => n == count,
        Shown::UnderFive => count < SMALLEST_COUNT,
        Shown::Suppressed => true,
    }
}

/// Every figure of `cells`: cells row by row, row totals, column totals, total.
fn figures(cells: &[Vec<u64>]) -> Vec<u64> {
    let rows: Vec<u64> = cells.iter().map(|r| r.iter().sum()).collect();
    let columns: Vec<u64> = (0..cells[0].len()).map(|j| cells.iter().map(|r| r[j]).sum()).collect();
    let mut all: Vec<u64> = cells.iter().flatten().copied().collect();
    all.extend(&rows);
    all.extend(&columns);
    all.push(rows.iter().sum());
    all
}

fn shown_figures(p: &Published) -> Vec<Shown> {
    let mut all: Vec<Shown> = p.cells.iter().flatten().copied().collect();
    all.extend(&p.row_totals);
    all.extend(&p.column_totals);
    all.push(p.total);
    all
}

/// Every table near `truth` (hidden cells within `reach`) that agrees with
/// `published`, each with the key that links it to the others.
fn candidates(truth: &[Vec<u64>], published: &Published, reach: u64, key: &Key) -> Vec<(Vec<u64>, Vec<u64>)> {
    let shown = shown_figures(published);
    let hidden: Vec<(usize, usize)> = (0..truth.len())
        .flat_map(|i| (0..truth[0].len()).map(move |j| (i, j)))
        .filter(|&(i, j)| published.cells[i][j].is_hidden())
        .collect();
    let mut found = Vec::new();
    let mut candidate = truth.to_vec();
    fn search(
        k: usize,
        hidden: &[(usize, usize)],
        truth: &[Vec<u64>],
        reach: u64,
        candidate: &mut Vec<Vec<u64>>,
        visit: &mut dyn FnMut(&[Vec<u64>]),
    ) {
        let Some(&(i, j)) = hidden.get(k) else {
            visit(candidate);
            return;
        };
        let t = truth[i][j];
        for v in t.saturating_sub(reach)..=t + reach {
            candidate[i][j] = v;
            search(k + 1, hidden, truth, reach, candidate, visit);
        }
        candidate[i][j] = t;
    }
    search(0, &hidden, truth, reach, &mut candidate, &mut |c| {
        let all = figures(c);
        if all.iter().zip(&shown).all(|(&n, &s)| allows(s, n)) {
            found.push((key(c), all));
        }
    });
    found
}

/// The hidden figures of each table that a reader works out, given that
/// every table's key (what links it to the others) must agree.
fn pinned(truths: &[Vec<Vec<u64>>], published: &[Published], keys: &[&Key]) -> Vec<(usize, usize)> {
    let reach = 1;
    let all: Vec<Vec<(Vec<u64>, Vec<u64>)>> = (0..truths.len())
        .map(|t| candidates(&truths[t], &published[t], reach, keys[t]))
        .collect();
    let keys_of = |t: usize| all[t].iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>();
    let mut common = keys_of(0);
    for t in 1..truths.len() {
        common = common.intersection(&keys_of(t)).cloned().collect();
    }
    let mut out = Vec::new();
    for t in 0..truths.len() {
        let truth = figures(&truths[t]);
        let mut moved = BTreeSet::new();
        for (key, figs) in &all[t] {
            if common.contains(key) {
                moved.extend((0..truth.len()).filter(|&f| figs[f] != truth[f]));
            }
        }
        for (f, s) in shown_figures(&published[t]).iter().enumerate() {
            if s.is_hidden() && !moved.contains(&f) {
                out.push((t, f));
            }
        }
    }
    out
}

fn table(title: &str, rows: usize, columns: &[&str], cells: &[Vec<u64>]) -> Table {
    Table {
        title: title.into(),
        rows: (0..rows).map(|i| format!("kind {i}")).collect(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        cells: cells
            .iter()
            .map(|r| r.iter().map(|&n| Figure::count(n)).collect())
            .collect(),
    }
}

/// Unmet needs, each with its kind, region, gender and status; and the
/// placed needs of each kind: the three tables they make.
fn report(unmet: &[Need], placed: &[u64]) -> Vec<Vec<Vec<u64>>> {
    let kinds = placed.len();
    let mut by_region = vec![vec![0; 2]; kinds];
    let mut by_gender = vec![vec![0; 2]; kinds];
    let mut outcomes: Vec<Vec<u64>> = placed.iter().map(|&p| vec![p, 0, 0]).collect();
    for &(kind, region, gender, status) in unmet {
        by_region[kind][region] += 1;
        by_gender[kind][gender] += 1;
        outcomes[kind][1 + status] += 1;
    }
    vec![outcomes, by_region, by_gender]
}

fn links() -> Vec<Link> {
    vec![
        Link::SameRows(vec![1, 2]),
        Link::Part {
            table: 0,
            columns: vec![1, 2],
            of: Some(1),
        },
    ]
}

/// The keys linking the three tables: each unmet breakdown's row totals,
/// and the outcome table's unmet columns added up by row.
fn row_totals(c: &[Vec<u64>]) -> Vec<u64> {
    c.iter().map(|r| r.iter().sum()).collect()
}
fn unmet_of_outcomes(c: &[Vec<u64>]) -> Vec<u64> {
    c.iter().map(|r| r[1] + r[2]).collect()
}
const KEYS: [&Key; 3] = [&unmet_of_outcomes, &row_totals, &row_totals];

fn tables_of(truths: &[Vec<Vec<u64>>]) -> Vec<Table> {
    let kinds = truths[0].len();
    vec![
        table(
            "needs by kind and outcome",
            kinds,
            &["placed", "waiting", "open"],
            &truths[0],
        ),
        table("unmet need by kind and region", kinds, &["north", "south"], &truths[1]),
        table("unmet need by kind and gender", kinds, &["female", "male"], &truths[2]),
    ]
}

#[test]
fn two_small_totals_that_another_table_says_make_eight_are_protected_together() {
    // Eight unmet needs of one kind: four women, four men, all in the
    // north; published a table at a time, the gender table hides its
    // grand total but the region table shows it.
    let unmet: Vec<Need> = (0..8).map(|i| (0, 0, i % 2, 0)).collect();
    let truths = report(&unmet, &[30, 40]);
    let tables = tables_of(&truths);
    let alone: Vec<Published> = tables.iter().map(|t| publish(t).unwrap()).collect();
    assert_eq!(alone[2].column_totals, vec![Shown::UnderFive, Shown::UnderFive]);
    assert!(
        pinned(&truths, &alone, &KEYS).contains(&(2, 2 * 2 + 2)),
        "the reader works out the women's total from the region table"
    );
    let together = publish_linked(&tables, &links()).unwrap();
    assert_eq!(pinned(&truths, &together, &KEYS), Vec::<(usize, usize)>::new());
    // The same figure is shown alike in each table that holds it.
    assert_eq!(together[1].total, together[2].total);
    assert_eq!(together[1].row_totals, together[2].row_totals);
}

#[test]
fn tables_that_disagree_with_their_links_are_refused() {
    let truths = report(&[(0, 0, 0, 0)], &[5, 5]);
    let mut tables = tables_of(&truths);
    tables[2].cells[1][1] = Figure::count(3);
    assert!(matches!(publish_linked(&tables, &links()), Err(ShapeError::Links(_))));
}

fn unmet_needs() -> impl Strategy<Value = (Vec<Need>, Vec<u64>)> {
    (1usize..=2).prop_flat_map(|kinds| {
        (
            proptest::collection::vec((0..kinds, 0usize..2, 0usize..2, 0usize..2), 0..14),
            proptest::collection::vec(prop_oneof![0u64..5, 5u64..20], kinds),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    /// Given any month's unmet needs, when the three tables are published
    /// together, then no hidden figure of any can be worked out from all of
    /// them, every shown figure is its true count and at least 5, and a
    /// figure two tables hold is shown alike in both.
    #[test]
    fn no_hidden_figure_is_worked_out_from_the_tables_together((unmet, placed) in unmet_needs()) {
        let truths = report(&unmet, &placed);
        let tables = tables_of(&truths);
        let published = publish_linked(&tables, &links()).unwrap();
        for (t, p) in published.iter().enumerate() {
            for (shown, count) in shown_figures(p).into_iter().zip(figures(&truths[t])) {
                if let Shown::Count(n) = shown {
                    prop_assert_eq!(n, count);
                    prop_assert!(n >= SMALLEST_COUNT);
                }
            }
        }
        prop_assert_eq!(&published[1].row_totals, &published[2].row_totals);
        prop_assert_eq!(published[1].total, published[2].total);
        prop_assert_eq!(pinned(&truths, &published, &KEYS), Vec::<(usize, usize)>::new());
    }
}

#[test]
fn with_nothing_unmet_the_outcome_table_is_protected_knowing_it() {
    // No unmet need: the breakdowns are not published, and their absence
    // says every unmet column is zero. Placed and the row totals then give
    // each other away unless one is hidden.
    let truths = report(&[], &[0, 7]);
    let outcomes = tables_of(&truths).remove(0);
    let links = [Link::Part {
        table: 0,
        columns: vec![1, 2],
        of: None,
    }];
    let published = publish_linked(std::slice::from_ref(&outcomes), &links)
        .unwrap()
        .remove(0);
    // The reader knows the unmet columns are 0 and searches with that.
    let truth = figures(&truths[0]);
    let mut moved = BTreeSet::new();
    for (key, figs) in candidates(&truths[0], &published, 2, &unmet_of_outcomes) {
        if key.iter().all(|&n| n == 0) {
            moved.extend((0..truth.len()).filter(|&f| figs[f] != truth[f]));
        }
    }
    let shown = shown_figures(&published);
    let known_zero = |f: usize| f < 2 * 3 && !f.is_multiple_of(3) || f == 2 * 3 + 2 + 1 || f == 2 * 3 + 2 + 2;
    for (f, s) in shown.iter().enumerate() {
        if s.is_hidden() && !known_zero(f) {
            assert!(moved.contains(&f), "figure {f} is worked out: {published:?}");
        }
    }
    // Published alone, unaware, its grand total equals the placed total.
    let alone = publish(&outcomes).unwrap();
    let mut alone_moved = BTreeSet::new();
    for (key, figs) in candidates(&truths[0], &alone, 2, &unmet_of_outcomes) {
        if key.iter().all(|&n| n == 0) {
            alone_moved.extend((0..truth.len()).filter(|&f| figs[f] != truth[f]));
        }
    }
    let grand = shown.len() - 1;
    assert!(alone.total.is_hidden() && !alone_moved.contains(&grand), "{alone:?}");
}
