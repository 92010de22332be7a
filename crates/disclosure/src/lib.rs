//! The one step every figure goes through before it leaves the coalition
//! (an export, a public page, a media pack): "generalizations based on
//! numerous cases", never a cell small enough to point at a person.
//!
//! A [`Table`] of counts (rows by columns, e.g. unmet need by kind and
//! region) is published with its row, column and grand totals, under three
//! rules (docs/reports.md, "Safe to publish"):
//!
//! 1. a count under [`SMALLEST_COUNT`] is shown as "< 5";
//! 2. a figure drawn from fewer than [`FEWEST_PROVIDERS`] providers is
//!    suppressed;
//! 3. complementary suppression: more figures are suppressed until no
//!    hidden figure can be worked out exactly from what is shown (the
//!    published cells, the totals, and the "< 5" bounds).
//!
//! Rule 3 is checked exactly. A table and its totals are a circulation
//! (source → row → column → sink → source: each cell a flow from its row to
//! its column, each total the flow into its row or out of its column, the
//! grand total the flow back). A hidden figure can be worked out exactly
//! when every circulation that agrees with what is shown gives it the same
//! value; otherwise two such circulations differ by a cycle through it, and
//! then by one that changes each figure by one (integral flows). So a
//! hidden figure is safe exactly when a cycle through it exists in the
//! residual graph of the true values, each hidden figure free to move
//! within what is shown of it: [`Published`] never holds an unsafe one.

use serde::{Serialize, Serializer};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;

/// Counts under this are never shown: they appear as "< 5".
pub const SMALLEST_COUNT: u64 = 5;
/// A figure drawn from fewer providers than this is never shown.
pub const FEWEST_PROVIDERS: usize = 3;

/// One figure before publishing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figure {
    pub count: u64,
    /// The providers it is drawn from (any stable ids), when it describes
    /// providers' work (placements made, beds offered); `None` when it does
    /// not (needs requested). A total whose cells all are is drawn from the
    /// union of theirs; one that mixes in other figures is not (a hidden
    /// cell of it is kept from being subtracted out by rule 3).
    pub providers: Option<BTreeSet<u64>>,
}

impl Figure {
    pub fn count(count: u64) -> Self {
        Self { count, providers: None }
    }

    pub fn from_providers(count: u64, providers: impl IntoIterator<Item = u64>) -> Self {
        Self {
            count,
            providers: Some(providers.into_iter().collect()),
        }
    }
}

/// Counts by row and column, with their labels, before publishing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub title: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<Figure>>,
}

/// A table that cannot be published: its shape is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// No row or no column: nothing to publish.
    Empty,
    /// The cells hold a different number of rows than there are labels.
    Rows { cells: usize, labels: usize },
    /// A row holds a different number of cells than there are columns.
    Ragged { row: usize, cells: usize, columns: usize },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "a table needs at least one row and one column"),
            Self::Rows { cells, labels } => write!(f, "{cells} rows of cells for {labels} row labels"),
            Self::Ragged { row, cells, columns } => {
                write!(f, "row {row} holds {cells} cells for {columns} columns")
            }
        }
    }
}

impl std::error::Error for ShapeError {}

/// How a figure is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Count(u64),
    /// A count from 0 to 4.
    UnderFive,
    /// Hidden to protect another figure, or drawn from too few providers:
    /// any count.
    Suppressed,
}

impl Shown {
    pub fn is_hidden(self) -> bool {
        !matches!(self, Self::Count(_))
    }

    /// What a reader of the published table knows of the figure.
    fn bounds(self) -> (u64, u64) {
        match self {
            Self::Count(n) => (n, n),
            Self::UnderFive => (0, SMALLEST_COUNT - 1),
            Self::Suppressed => (0, u64::MAX),
        }
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::UnderFive => write!(f, "< {SMALLEST_COUNT}"),
            Self::Suppressed => write!(f, "suppressed"),
        }
    }
}

/// A count as a JSON number; a hidden figure as its words.
impl Serialize for Shown {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Count(n) => serializer.serialize_u64(*n),
            hidden => serializer.collect_str(hidden),
        }
    }
}

/// A table as it may leave the coalition: no count behind a hidden figure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Published {
    pub title: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub cells: Vec<Vec<Shown>>,
    pub row_totals: Vec<Shown>,
    pub column_totals: Vec<Shown>,
    pub total: Shown,
}

impl Published {
    /// The table as CSV: a header of the columns and "total", a line per
    /// row with its total, and a last line of the totals.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, label: &str, values: &mut dyn Iterator<Item = String>| {
            out.push_str(&csv_field(label));
            for value in values {
                out.push(',');
                out.push_str(&csv_field(&value));
            }
            out.push('\n');
        };
        line(
            &mut out,
            &self.title,
            &mut self.columns.iter().cloned().chain(["total".to_owned()]),
        );
        for (label, (cells, total)) in self.rows.iter().zip(self.cells.iter().zip(&self.row_totals)) {
            line(&mut out, label, &mut cells.iter().chain([total]).map(Shown::to_string));
        }
        line(
            &mut out,
            "total",
            &mut self.column_totals.iter().chain([&self.total]).map(Shown::to_string),
        );
        out
    }
}

/// A table with every count shown and its totals: the same form as a
/// published one, for the coalition's own eyes only (never to leave it).
pub fn unpublished(t: &Table) -> Published {
    let count = Shown::Count;
    let columns = t.columns.len();
    Published {
        title: t.title.clone(),
        rows: t.rows.clone(),
        columns: t.columns.clone(),
        cells: t
            .cells
            .iter()
            .map(|r| r.iter().map(|f| count(f.count)).collect())
            .collect(),
        row_totals: t.cells.iter().map(|r| count(r.iter().map(|f| f.count).sum())).collect(),
        column_totals: (0..columns)
            .map(|j| count(t.cells.iter().map(|r| r[j].count).sum()))
            .collect(),
        total: count(t.cells.iter().flatten().map(|f| f.count).sum()),
    }
}

/// A field quoted when it holds a separator, a quote or a line break (RFC 4180).
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The table as the circulation described at the top: every figure (cells,
/// then row totals, column totals, the grand total) an edge between nodes
/// 0 (source), 1 (sink), 2.. (rows) and 2+rows.. (columns).
struct Network {
    /// (from, to, true count) of each figure.
    edges: Vec<(usize, usize, u64)>,
    nodes: usize,
}

impl Network {
    fn of(table: &Table) -> Self {
        let (rows, columns) = (table.rows.len(), table.columns.len());
        let row = |i: usize| 2 + i;
        let column = |j: usize| 2 + rows + j;
        let mut edges = Vec::with_capacity(rows * columns + rows + columns + 1);
        for (i, cells) in table.cells.iter().enumerate() {
            for (j, cell) in cells.iter().enumerate() {
                edges.push((row(i), column(j), cell.count));
            }
        }
        for (i, cells) in table.cells.iter().enumerate() {
            edges.push((0, row(i), cells.iter().map(|c| c.count).sum()));
        }
        for j in 0..columns {
            edges.push((column(j), 1, table.cells.iter().map(|r| r[j].count).sum()));
        }
        let total = table.cells.iter().flatten().map(|c| c.count).sum();
        edges.push((1, 0, total));
        Self {
            edges,
            nodes: 2 + rows + columns,
        }
    }

    /// Whether what `shown` shows pins figure `e` to its true count: no
    /// cycle through it in the residual graph.
    fn pins(&self, shown: &[Shown], e: usize) -> bool {
        let (from, to, count) = self.edges[e];
        let (low, high) = shown[e].bounds();
        let can_rise = count < high && self.reaches(shown, e, to, from);
        let can_fall = count > low && self.reaches(shown, e, from, to);
        !can_rise && !can_fall
    }

    /// Whether `goal` is reachable from `start` by moving hidden figures
    /// other than `skip` within their bounds.
    fn reaches(&self, shown: &[Shown], skip: usize, start: usize, goal: usize) -> bool {
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); self.nodes];
        for (f, &(from, to, count)) in self.edges.iter().enumerate() {
            if f == skip || !shown[f].is_hidden() {
                continue;
            }
            let (low, high) = shown[f].bounds();
            if count < high {
                next[from].push(to);
            }
            if count > low {
                next[to].push(from);
            }
        }
        let mut seen = vec![false; self.nodes];
        let mut queue = VecDeque::from([start]);
        seen[start] = true;
        while let Some(node) = queue.pop_front() {
            if node == goal {
                return true;
            }
            for &n in &next[node] {
                if !std::mem::replace(&mut seen[n], true) {
                    queue.push_back(n);
                }
            }
        }
        false
    }

    /// The first hidden figure `shown` pins, if any.
    fn first_pinned(&self, shown: &[Shown]) -> Option<usize> {
        (0..self.edges.len()).find(|&e| shown[e].is_hidden() && self.pins(shown, e))
    }

    /// The cheapest set of shown figures whose hiding opens a cycle
    /// through the pinned figure `e`, if any: a cheapest path round it (a
    /// hidden figure costs nothing to move, a shown one its count, a total
    /// more than any cell, which readers need most), one way or the other.
    fn cover(&self, shown: &[Shown], e: usize, cells: usize) -> Option<Vec<usize>> {
        let (from, to, count) = self.edges[e];
        let (low, high) = shown[e].bounds();
        let total: u64 = self.edges.iter().map(|f| f.2).sum();
        let cost = |f: usize| match shown[f].is_hidden() {
            true => 0,
            false => 1 + self.edges[f].2 + if f >= cells { total + 1 } else { 0 },
        };
        let mut ways = Vec::new();
        if count < high {
            ways.extend(self.cheapest_path(shown, e, to, from, cost));
        }
        if count > low {
            ways.extend(self.cheapest_path(shown, e, from, to, cost));
        }
        ways.into_iter()
            .min_by_key(|path| path.iter().map(|&f| cost(f)).sum::<u64>())
            .map(|path| path.into_iter().filter(|&f| !shown[f].is_hidden()).collect())
    }

    /// The cheapest path from `start` to `goal` (Dijkstra), as the figures
    /// it moves; a hidden figure moves within its bounds, a shown one would
    /// move anywhere once hidden (down only from above zero).
    fn cheapest_path(
        &self,
        shown: &[Shown],
        skip: usize,
        start: usize,
        goal: usize,
        cost: impl Fn(usize) -> u64,
    ) -> Option<Vec<usize>> {
        let mut arcs: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.nodes];
        for (f, &(from, to, count)) in self.edges.iter().enumerate() {
            if f == skip {
                continue;
            }
            let (low, high) = match shown[f] {
                Shown::Count(_) => Shown::Suppressed.bounds(),
                hidden => hidden.bounds(),
            };
            if count < high {
                arcs[from].push((to, f));
            }
            if count > low {
                arcs[to].push((from, f));
            }
        }
        let mut best = vec![u64::MAX; self.nodes];
        let mut via: Vec<Option<(usize, usize)>> = vec![None; self.nodes];
        let mut queue = std::collections::BinaryHeap::from([std::cmp::Reverse((0u64, start))]);
        best[start] = 0;
        while let Some(std::cmp::Reverse((d, node))) = queue.pop() {
            if d > best[node] {
                continue;
            }
            for &(next, f) in &arcs[node] {
                let through = d + cost(f);
                if through < best[next] {
                    best[next] = through;
                    via[next] = Some((node, f));
                    queue.push(std::cmp::Reverse((through, next)));
                }
            }
        }
        let mut path = Vec::new();
        let mut node = goal;
        while node != start {
            let (previous, f) = via[node]?;
            path.push(f);
            node = previous;
        }
        Some(path)
    }
}

/// Publishes `table` under the three rules at the top.
pub fn publish(table: &Table) -> Result<Published, ShapeError> {
    let (rows, columns) = (table.rows.len(), table.columns.len());
    if rows == 0 || columns == 0 {
        return Err(ShapeError::Empty);
    }
    if table.cells.len() != rows {
        return Err(ShapeError::Rows {
            cells: table.cells.len(),
            labels: rows,
        });
    }
    if let Some((row, cells)) = table.cells.iter().enumerate().find(|(_, c)| c.len() != columns) {
        return Err(ShapeError::Ragged {
            row,
            cells: cells.len(),
            columns,
        });
    }
    let network = Network::of(table);
    let mut shown: Vec<Shown> = primary(table);
    // Rule 3: while a hidden figure is pinned, hide the cheapest shown
    // figures that open a way round it; with no way left, drop the "< 5"
    // bounds (a way round always exists without them).
    while let Some(pinned) = network.first_pinned(&shown) {
        match network.cover(&shown, pinned, rows * columns) {
            Some(cover) if !cover.is_empty() => {
                for f in cover {
                    shown[f] = Shown::Suppressed;
                }
            }
            _ if shown.contains(&Shown::UnderFive) => {
                for s in shown.iter_mut().filter(|s| **s == Shown::UnderFive) {
                    *s = Shown::Suppressed;
                }
            }
            _ => unreachable!("every hidden figure is free to rise round the circulation"),
        }
    }
    let totals = shown.split_off(rows * columns);
    Ok(Published {
        title: table.title.clone(),
        rows: table.rows.clone(),
        columns: table.columns.clone(),
        cells: shown.chunks(columns).map(<[Shown]>::to_vec).collect(),
        row_totals: totals[..rows].to_vec(),
        column_totals: totals[rows..rows + columns].to_vec(),
        total: totals[rows + columns],
    })
}

/// Rules 1 and 2, for every figure in the network's order.
fn primary(table: &Table) -> Vec<Shown> {
    let columns = table.columns.len();
    let union = |figures: &mut dyn Iterator<Item = &Figure>| -> Figure {
        let mut total = Figure {
            count: 0,
            providers: Some(BTreeSet::new()),
        };
        for f in figures {
            total.count += f.count;
            total.providers = match (total.providers, &f.providers) {
                (Some(mut all), Some(ids)) => {
                    all.extend(ids);
                    Some(all)
                }
                _ => None,
            };
        }
        total
    };
    let cells = table.cells.iter().flatten().cloned();
    let row_totals = table.cells.iter().map(|r| union(&mut r.iter()));
    let column_totals = (0..columns).map(|j| union(&mut table.cells.iter().map(|r| &r[j])));
    let total = union(&mut table.cells.iter().flatten());
    cells
        .chain(row_totals)
        .chain(column_totals)
        .chain([total])
        .map(|f| {
            let few_providers = f.providers.as_ref().is_some_and(|p| p.len() < FEWEST_PROVIDERS);
            // Few providers first: "< 5" would still say something of
            // one shelter's work (at most 4).
            if few_providers {
                Shown::Suppressed
            } else if f.count < SMALLEST_COUNT {
                Shown::UnderFive
            } else {
                Shown::Count(f.count)
            }
        })
        .collect()
}

/// A moment (milliseconds since the Unix epoch, UTC) as the month it falls
/// in, "YYYY-MM": the finest date a published figure carries.
pub fn month_of(unix_ms: i64) -> String {
    // Days to a civil date (Howard Hinnant's days_from_civil, inverted).
    let days = unix_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_of_known_moments() {
        assert_eq!(month_of(0), "1970-01");
        // 2026-12-03T18:00:00Z
        assert_eq!(month_of(1_796_320_800_000), "2026-12");
        // 2024-02-29T23:59:59.999Z and a millisecond later
        assert_eq!(month_of(1_709_251_199_999), "2024-02");
        assert_eq!(month_of(1_709_251_200_000), "2024-03");
        assert_eq!(month_of(-1), "1969-12");
    }
}
