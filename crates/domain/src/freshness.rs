//! How long a declared capacity is trusted as current.
//!
//! A bed count set on Monday is not Friday's: a coalition sets how long a
//! declaration stays fresh (24 hours unless it says otherwise). Capacity
//! older than that, or whose age is not known, is *stale*: still offered and
//! still matched, but shown with its age, its provider reminded, and the
//! matcher prefers fresh capacity to it at equal priority (docs/matching.md).

use crate::error::DomainError;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The coalition's freshness limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    limit_secs: i64,
}

impl Freshness {
    /// The limit when a coalition sets none.
    pub const DEFAULT_SECS: i64 = 24 * 3600;
    /// The accepted range: a minute to a year.
    pub const RANGE_SECS: std::ops::RangeInclusive<i64> = 60..=366 * 24 * 3600;

    pub fn new(limit_secs: i64) -> Result<Self, DomainError> {
        if Self::RANGE_SECS.contains(&limit_secs) {
            Ok(Self { limit_secs })
        } else {
            Err(DomainError::invalid(
                "fresh_for",
                "must be between one minute and 366 days",
            ))
        }
    }

    pub fn limit_secs(self) -> i64 {
        self.limit_secs
    }

    /// Whether capacity declared at `as_of` is stale at `now`: older than
    /// the limit, or of unknown age (`None`).
    pub fn is_stale(self, as_of: Option<Timestamp>, now: Timestamp) -> bool {
        match as_of {
            Some(at) => now.0.saturating_sub(at.0) > self.limit_secs.saturating_mul(1000),
            None => true,
        }
    }

    /// When capacity declared at `as_of` turns stale.
    pub fn stale_from(self, as_of: Timestamp) -> Timestamp {
        Timestamp(
            as_of
                .0
                .saturating_add(self.limit_secs.saturating_mul(1000))
                .saturating_add(1),
        )
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            limit_secs: Self::DEFAULT_SECS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    #[test]
    fn capacity_is_fresh_up_to_the_limit_and_stale_after_it() {
        let day = Freshness::default();
        assert!(!day.is_stale(Some(NOW), NOW));
        assert!(!day.is_stale(Some(NOW.plus_secs(-24 * 3600)), NOW));
        assert!(day.is_stale(Some(Timestamp(NOW.0 - 24 * 3600 * 1000 - 1)), NOW));
        assert_eq!(day.stale_from(NOW.plus_secs(-24 * 3600)), Timestamp(NOW.0 + 1));
        // A declaration from the future (a clock ahead) is not stale.
        assert!(!day.is_stale(Some(NOW.plus_secs(60)), NOW));
    }

    #[test]
    fn capacity_of_unknown_age_is_stale() {
        assert!(Freshness::default().is_stale(None, NOW));
    }

    #[test]
    fn a_limit_outside_a_minute_to_a_year_is_refused_naming_the_field() {
        for bad in [0, 59, 366 * 24 * 3600 + 1, -5] {
            let err = Freshness::new(bad).unwrap_err();
            assert!(err.to_string().contains("fresh_for"), "{err}");
        }
        assert_eq!(Freshness::new(3600).unwrap().limit_secs(), 3600);
    }
}
