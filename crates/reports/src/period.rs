//! A report's period: whole months, so a published figure never says which
//! day (and two reports never overlap by part of a month).

use refer_disclosure::month_of;
use refer_domain::Timestamp;
use std::fmt;

/// From the first instant of one month to the first of the month after
/// another (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

/// A period that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeriodError {
    /// Not `YYYY-MM` with a month from 01 to 12, from [`FIRST_YEAR`] to
    /// [`LAST_YEAR`].
    Month(String),
    /// The last month comes before the first.
    Backwards { first: String, last: String },
}

impl fmt::Display for PeriodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A long value is not repeated whole: the error must stay small.
            Self::Month(m) if m.chars().count() > 16 => {
                let start: String = m.chars().take(16).collect();
                write!(
                    f,
                    "{start:?}... ({} characters) is no month: write it YYYY-MM (2026-12)",
                    m.chars().count()
                )
            }
            Self::Month(m) => write!(f, "{m:?} is no month: write it YYYY-MM (2026-12)"),
            Self::Backwards { first, last } => write!(f, "the period ends ({last}) before it starts ({first})"),
        }
    }
}

impl std::error::Error for PeriodError {}

impl Period {
    /// The months `first` to `last`, both included ("2026-11", "2026-12").
    pub fn months(first: &str, last: &str) -> Result<Self, PeriodError> {
        let (fy, fm) = parse(first)?;
        let (ly, lm) = parse(last)?;
        if (ly, lm) < (fy, fm) {
            return Err(PeriodError::Backwards {
                first: first.to_owned(),
                last: last.to_owned(),
            });
        }
        let (ny, nm) = if lm == 12 { (ly + 1, 1) } else { (ly, lm + 1) };
        Ok(Self {
            start: Timestamp::from_millis(month_start(fy, fm)),
            end: Timestamp::from_millis(month_start(ny, nm)),
        })
    }

    /// The month `at` falls in.
    pub fn month_of(at: Timestamp) -> Self {
        let month = month_of(at.millis());
        Self::months(&month, &month).expect("month_of writes a month")
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    pub fn first_month(&self) -> String {
        month_of(self.start.millis())
    }

    pub fn last_month(&self) -> String {
        month_of(self.end.millis() - 1)
    }

    /// Each month of the period, in order.
    pub fn each_month(&self) -> Vec<Period> {
        let mut months = Vec::new();
        let mut start = self.start;
        while start < self.end {
            let month = Self::month_of(start);
            start = month.end;
            months.push(month);
        }
        months
    }
}

/// The years a report may cover: those the services' timestamps can hold
/// (epoch milliseconds from 2000 to 2200).
pub const FIRST_YEAR: i64 = 2000;
pub const LAST_YEAR: i64 = 2199;

fn parse(month: &str) -> Result<(i64, i64), PeriodError> {
    let bad = || PeriodError::Month(month.to_owned());
    let (year, m) = month.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(year, 4) || !digits(m, 2) {
        return Err(bad());
    }
    let (year, m): (i64, i64) = (year.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Err(bad());
    }
    Ok((year, m))
}

/// Milliseconds at the first instant of `month` of `year`, UTC (Howard
/// Hinnant's days_from_civil).
fn month_start(year: i64, month: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_runs_from_its_first_month_to_the_end_of_its_last() {
        let p = Period::months("2026-11", "2026-12").unwrap();
        // 2026-11-01T00:00Z and 2027-01-01T00:00Z
        assert_eq!(p.start.millis(), 1_793_491_200_000);
        assert_eq!(p.end.millis(), 1_798_761_600_000);
        assert!(p.contains(Timestamp::from_millis(1_798_761_599_999)));
        assert!(!p.contains(Timestamp::from_millis(1_798_761_600_000)));
        assert_eq!((p.first_month(), p.last_month()), ("2026-11".into(), "2026-12".into()));
        assert_eq!(
            Period::month_of(Timestamp::from_millis(1_796_320_800_000)).first_month(),
            "2026-12"
        );
    }

    #[test]
    fn a_period_is_its_months_in_order_across_a_new_year() {
        let p = Period::months("2026-11", "2027-02").unwrap();
        let months: Vec<String> = p.each_month().iter().map(Period::first_month).collect();
        assert_eq!(months, ["2026-11", "2026-12", "2027-01", "2027-02"]);
        let each = p.each_month();
        assert_eq!((each[0].start, each[3].end), (p.start, p.end));
        assert!(each.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn a_period_that_is_no_month_or_runs_backwards_is_refused() {
        for bad in [
            "2026-13", "2026-1", "26-12", "2026/12", "", "2026-00", "0000-01", "1999-12", "2200-01", "9999-12",
        ] {
            assert_eq!(Period::months(bad, bad), Err(PeriodError::Month(bad.into())), "{bad}");
        }
        assert!(
            Period::months("2000-01", "2199-12").is_ok(),
            "the first and last months there are"
        );
        // A long value is named by its start and its length, not repeated.
        let long = "y".repeat(16_000);
        let said = Period::months(&long, &long).unwrap_err().to_string();
        assert!(said.len() < 120 && said.contains("16000 characters"), "{said}");
        assert!(matches!(
            Period::months("2026-12", "2026-11"),
            Err(PeriodError::Backwards { .. })
        ));
    }
}
