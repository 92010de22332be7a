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

mod linked;

pub use linked::{publish_linked, Link};
use serde::{Serialize, Serializer};
use std::collections::BTreeSet;
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
    /// Tables said to hold the same figures do not (a report's mistake).
    Links(String),
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "a table needs at least one row and one column"),
            Self::Rows { cells, labels } => write!(f, "{cells} rows of cells for {labels} row labels"),
            Self::Ragged { row, cells, columns } => {
                write!(f, "row {row} holds {cells} cells for {columns} columns")
            }
            Self::Links(why) => write!(f, "linked tables disagree: {why}"),
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

/// Publishes `table` under the three rules at the top (a table linked to
/// no other: see [`publish_linked`] for a report's tables together).
pub fn publish(table: &Table) -> Result<Published, ShapeError> {
    Ok(publish_linked(std::slice::from_ref(table), &[])?.remove(0))
}

/// Rules 1 and 2, for every figure in the network's order.
pub(crate) fn primary(table: &Table) -> Vec<Shown> {
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
