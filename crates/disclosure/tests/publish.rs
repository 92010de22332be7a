//! The disclosure rules, tried as a reader of the published table would:
//! given what is shown (cells, totals, "< 5"), can a hidden figure be
//! worked out? The reader here searches every table that agrees with what
//! is shown near the true one, by brute force: it shares nothing with the
//! library's own check.

use proptest::prelude::*;
use refer_disclosure::*;
use std::collections::BTreeSet;

/// What a reader knows of a shown figure: the counts it allows.
fn allows(shown: Shown, count: u64) -> bool {
    match shown {
        Shown::Count(n) => n == count,
        Shown::UnderFive => count < SMALLEST_COUNT,
        Shown::Suppressed => true,
    }
}

/// The totals of `cells`: by row, by column, and the grand total.
fn totals(cells: &[Vec<u64>]) -> (Vec<u64>, Vec<u64>, u64) {
    let rows = cells.iter().map(|r| r.iter().sum()).collect();
    let columns = (0..cells[0].len()).map(|j| cells.iter().map(|r| r[j]).sum()).collect();
    (rows, columns, cells.iter().flatten().sum())
}

/// Every figure of `cells` in one list: cells row by row, row totals,
/// column totals, the grand total.
fn figures(cells: &[Vec<u64>]) -> Vec<u64> {
    let (rows, columns, total) = totals(cells);
    let mut all: Vec<u64> = cells.iter().flatten().copied().collect();
    all.extend(rows);
    all.extend(columns);
    all.push(total);
    all
}

fn shown_figures(p: &Published) -> Vec<Shown> {
    let mut all: Vec<Shown> = p.cells.iter().flatten().copied().collect();
    all.extend(&p.row_totals);
    all.extend(&p.column_totals);
    all.push(p.total);
    all
}

/// The figures (by their place in [`figures`]) that some table agreeing
/// with `published` gives another count than `truth` does; each hidden
/// cell is tried within `reach` of its true count.
fn movable(truth: &[Vec<u64>], published: &Published, reach: u64) -> BTreeSet<usize> {
    let shown = shown_figures(published);
    let columns = truth[0].len();
    let hidden: Vec<(usize, usize)> = (0..truth.len())
        .flat_map(|i| (0..columns).map(move |j| (i, j)))
        .filter(|&(i, j)| published.cells[i][j].is_hidden())
        .collect();
    let true_figures = figures(truth);
    let mut moved = BTreeSet::new();
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
            for (f, (n, t)) in all.iter().zip(&true_figures).enumerate() {
                if n != t {
                    moved.insert(f);
                }
            }
        }
    });
    moved
}

/// The hidden figures a reader can work out exactly.
fn pinned(truth: &[Vec<u64>], published: &Published) -> Vec<usize> {
    let hidden = shown_figures(published)
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_hidden())
        .map(|(f, _)| f)
        .collect::<Vec<_>>();
    let cells_hidden = hidden.iter().filter(|&&f| f < truth.len() * truth[0].len()).count();
    let reach = if cells_hidden <= 6 { 2 } else { 1 };
    let moved = movable(truth, published, reach);
    hidden.into_iter().filter(|f| !moved.contains(f)).collect()
}

fn table(cells: &[Vec<u64>]) -> Table {
    Table {
        title: "unmet need".into(),
        rows: (0..cells.len()).map(|i| format!("kind {i}")).collect(),
        columns: (0..cells[0].len()).map(|j| format!("region {j}")).collect(),
        cells: cells
            .iter()
            .map(|r| r.iter().map(|&n| Figure::count(n)).collect())
            .collect(),
    }
}

/// Only rules 1 and 2, as a naive publisher would stop.
fn primary_only(cells: &[Vec<u64>]) -> Published {
    let show = |n: u64| {
        if n < SMALLEST_COUNT {
            Shown::UnderFive
        } else {
            Shown::Count(n)
        }
    };
    let (rows, columns, total) = totals(cells);
    let t = table(cells);
    Published {
        title: t.title,
        rows: t.rows,
        columns: t.columns,
        cells: cells.iter().map(|r| r.iter().map(|&n| show(n)).collect()).collect(),
        row_totals: rows.into_iter().map(show).collect(),
        column_totals: columns.into_iter().map(show).collect(),
        total: show(total),
    }
}

#[test]
fn the_reader_works_out_a_small_cell_from_its_totals_when_only_small_cells_are_hidden() {
    // Given one small cell among large ones, hidden alone...
    let cells = vec![vec![2, 30, 40], vec![25, 35, 45], vec![50, 60, 70]];
    let naive = primary_only(&cells);
    // ...then its row total gives it away: the reader is able to.
    assert_eq!(pinned(&cells, &naive), vec![0]);
    // When published under the rules, it cannot.
    let published = publish(&table(&cells)).unwrap();
    assert_eq!(published.cells[0][0], Shown::UnderFive);
    assert_eq!(pinned(&cells, &published), Vec::<usize>::new());
}

#[test]
fn a_row_whose_hidden_cells_must_all_be_four_is_protected() {
    // Two cells "< 5" whose row leaves them 8 between them: both are 4.
    let cells = vec![vec![4, 4, 20], vec![20, 30, 40]];
    let naive = primary_only(&cells);
    assert_eq!(pinned(&cells, &naive), vec![0, 1]);
    let published = publish(&table(&cells)).unwrap();
    assert_eq!(pinned(&cells, &published), Vec::<usize>::new());
}

#[test]
fn a_table_of_large_counts_is_published_whole() {
    let cells = vec![vec![12, 30], vec![25, 35]];
    let published = publish(&table(&cells)).unwrap();
    assert_eq!(
        published.cells,
        vec![
            vec![Shown::Count(12), Shown::Count(30)],
            vec![Shown::Count(25), Shown::Count(35)]
        ]
    );
    assert_eq!(published.row_totals, vec![Shown::Count(42), Shown::Count(60)]);
    assert_eq!(published.column_totals, vec![Shown::Count(37), Shown::Count(65)]);
    assert_eq!(published.total, Shown::Count(102));
}

#[test]
fn a_figure_from_two_providers_is_suppressed_however_large() {
    // (Column 1 is costly to hide, so it is not a complement.)
    let mut t = table(&[vec![40, 300, 20], vec![25, 350, 45]]);
    t.cells[0][0] = Figure::from_providers(40, [1, 2]);
    t.cells[0][1] = Figure::from_providers(300, [3, 4, 5]);
    let published = publish(&t).unwrap();
    assert_eq!(published.cells[0][0], Shown::Suppressed);
    assert_eq!(published.cells[0][1], Shown::Count(300));
    assert_eq!(published.total, Shown::Count(780));
}

#[test]
fn exports_say_what_is_hidden_in_words() {
    let cells = vec![vec![2, 30, 40], vec![25, 35, 45], vec![50, 60, 70]];
    let mut t = table(&cells);
    t.rows[0] = "shelter, \"emergency\"".into();
    let published = publish(&t).unwrap();
    let json = serde_json::to_value(&published).unwrap();
    assert_eq!(json["cells"][0][0], "< 5");
    assert_eq!(json["total"], 357);
    let csv = published.to_csv();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("unmet need,region 0,region 1,region 2,total"));
    let first = lines.next().unwrap();
    assert!(first.starts_with("\"shelter, \"\"emergency\"\"\",< 5,"), "{first}");
    assert!(csv.contains("suppressed"), "{csv}");
    assert!(csv.lines().last().unwrap().starts_with("total,77,"), "{csv}");
}

#[test]
fn a_table_without_rows_or_with_ragged_rows_is_refused() {
    let mut t = table(&[vec![1, 2]]);
    t.rows.clear();
    assert_eq!(publish(&t), Err(ShapeError::Empty));
    let mut t = table(&[vec![1, 2], vec![3, 4]]);
    t.cells[1].pop();
    assert_eq!(
        publish(&t),
        Err(ShapeError::Ragged {
            row: 1,
            cells: 1,
            columns: 2
        })
    );
}

fn counts() -> impl Strategy<Value = u64> {
    // Mostly small: the cases that need protecting.
    prop_oneof![0u64..5, 0u64..5, 5u64..12, 12u64..40]
}

fn tables() -> impl Strategy<Value = Vec<Vec<u64>>> {
    (1usize..=3, 1usize..=3)
        .prop_flat_map(|(rows, columns)| proptest::collection::vec(proptest::collection::vec(counts(), columns), rows))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Given any table, when it is published, then every shown figure is its
    /// true count and at least 5, every small one is hidden, "< 5" is never
    /// shown for 5 or more, and no hidden figure can be worked out.
    #[test]
    fn no_hidden_figure_can_be_worked_out(cells in tables()) {
        let published = publish(&table(&cells)).unwrap();
        let truth = figures(&cells);
        for (shown, count) in shown_figures(&published).into_iter().zip(&truth) {
            match shown {
                Shown::Count(n) => {
                    prop_assert_eq!(n, *count);
                    prop_assert!(n >= SMALLEST_COUNT);
                }
                Shown::UnderFive => prop_assert!(*count < SMALLEST_COUNT),
                Shown::Suppressed => {}
            }
        }
        prop_assert_eq!(pinned(&cells, &published), Vec::<usize>::new());
    }

    /// Given figures drawn from providers, no shown one is drawn from fewer
    /// than 3, totals included (they draw from the union of their cells').
    #[test]
    fn no_shown_figure_is_drawn_from_fewer_than_three_providers(
        cells in tables(),
        seed in proptest::collection::vec(
            proptest::option::weighted(0.8, proptest::collection::btree_set(0u64..5, 0..4)),
            9,
        ),
    ) {
        let mut t = table(&cells);
        let mut sets = seed.into_iter().cycle();
        for row in &mut t.cells {
            for cell in row.iter_mut() {
                cell.providers = sets.next().flatten();
            }
        }
        let published = publish(&t).unwrap();
        // A total of cells that are all drawn from providers is drawn from
        // every provider of them; one mixing other figures is not.
        let union = |cells: &mut dyn Iterator<Item = &Figure>| {
            let mut all = BTreeSet::<u64>::new();
            for cell in cells {
                match &cell.providers {
                    Some(ids) => all.extend(ids),
                    None => return usize::MAX,
                }
            }
            all.len()
        };
        for (i, row) in t.cells.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                if !published.cells[i][j].is_hidden() {
                    prop_assert!(union(&mut std::iter::once(cell)) >= FEWEST_PROVIDERS);
                }
                // Not even "< 5": that too says something of one shelter.
                if union(&mut std::iter::once(cell)) < FEWEST_PROVIDERS {
                    prop_assert_eq!(published.cells[i][j], Shown::Suppressed);
                }
            }
            if !published.row_totals[i].is_hidden() {
                prop_assert!(union(&mut row.iter()) >= FEWEST_PROVIDERS);
            }
        }
        for j in 0..t.columns.len() {
            if !published.column_totals[j].is_hidden() {
                prop_assert!(union(&mut t.cells.iter().map(|r| &r[j])) >= FEWEST_PROVIDERS);
            }
        }
        prop_assert_eq!(pinned(&cells, &published), Vec::<usize>::new());
    }
}
