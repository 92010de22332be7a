//! Time is an input of the domain, never read from a clock here.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};

const MINUTES_PER_DAY: i64 = 24 * 60;
const MINUTES_PER_WEEK: i64 = 7 * MINUTES_PER_DAY;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }
    /// Minutes since the Unix epoch, floored (also before 1970).
    pub const fn epoch_minutes(self) -> i64 {
        self.0.div_euclid(60_000)
    }
}

/// A half-open interval `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl TimeWindow {
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self, DomainError> {
        let window = Self { start, end };
        window.validate("window")?;
        Ok(window)
    }
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        if self.start >= self.end {
            return Err(DomainError::invalid(field, "start must be before end"));
        }
        Ok(())
    }
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// The most weekly openings a site lists.
pub const MAX_SLOTS: usize = 64;

/// Days of the week, Monday first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];
    fn index(self) -> i64 {
        self as i64
    }
}

/// One weekly opening, in the site's local time. `close <= open` means it runs
/// past midnight into the next day (a night shelter open 18:00 to 08:00).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklySlot {
    pub day: Weekday,
    /// Minutes after local midnight, `0..1440`.
    pub open: u16,
    /// Minutes after local midnight, `0..=1440`.
    pub close: u16,
}

/// When a site takes referrals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hours {
    /// 24/7 intake: the case that matters at 2 a.m.
    Always,
    Weekly {
        /// Local time minus UTC, in minutes (-720..=840).
        utc_offset_minutes: i16,
        slots: Vec<WeeklySlot>,
    },
}

impl Hours {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        if let Hours::Weekly {
            utc_offset_minutes,
            slots,
        } = self
        {
            if !(-720..=840).contains(utc_offset_minutes) {
                return Err(DomainError::invalid(
                    format!("{field}.utc_offset_minutes"),
                    "must be between -720 and 840",
                ));
            }
            if slots.is_empty() || slots.len() > MAX_SLOTS {
                return Err(DomainError::invalid(
                    format!("{field}.slots"),
                    format!("must hold 1 to {MAX_SLOTS} openings (use always for 24/7)"),
                ));
            }
            for (i, slot) in slots.iter().enumerate() {
                let at = format!("{field}.slots[{i}]");
                if slot.open >= 1440 {
                    return Err(DomainError::invalid(format!("{at}.open_minute"), "must be 0 to 1439"));
                }
                if slot.close > 1440 {
                    return Err(DomainError::invalid(format!("{at}.close_minute"), "must be 0 to 1440"));
                }
                if slot.open == slot.close {
                    return Err(DomainError::invalid(
                        format!("{at}.close_minute"),
                        "must differ from open_minute (an earlier close runs past midnight; use always for 24 hours)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the site takes referrals at instant `t`.
    pub fn is_open(&self, t: Timestamp) -> bool {
        match self {
            Hours::Always => true,
            Hours::Weekly {
                utc_offset_minutes,
                slots,
            } => {
                let local = t.epoch_minutes() + i64::from(*utc_offset_minutes);
                // 1970-01-01 was a Thursday (index 3 from Monday).
                let minute_of_week = (local + 3 * MINUTES_PER_DAY).rem_euclid(MINUTES_PER_WEEK);
                slots.iter().any(|slot| {
                    let start = slot.day.index() * MINUTES_PER_DAY + i64::from(slot.open);
                    let mut end = slot.day.index() * MINUTES_PER_DAY + i64::from(slot.close);
                    if slot.close <= slot.open {
                        end += MINUTES_PER_DAY;
                    }
                    let inside = |m: i64| start <= m && m < end;
                    inside(minute_of_week) || inside(minute_of_week + MINUTES_PER_WEEK)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26 was a Thursday; this is 00:00 UTC that day.
    const THU_MIDNIGHT_UTC: i64 = 1_795_651_200_000;

    fn at(day_offset: i64, hour: i64, minute: i64) -> Timestamp {
        Timestamp(THU_MIDNIGHT_UTC + ((day_offset * 24 + hour) * 60 + minute) * 60_000)
    }

    #[test]
    fn always_is_open_at_any_time() {
        assert!(Hours::Always.is_open(at(0, 2, 0)));
        assert!(Hours::Always.is_open(Timestamp(-5)));
    }

    #[test]
    fn weekly_slot_respects_day_and_minutes() {
        let hours = Hours::Weekly {
            utc_offset_minutes: 0,
            slots: vec![WeeklySlot {
                day: Weekday::Thu,
                open: 9 * 60,
                close: 17 * 60,
            }],
        };
        assert!(hours.is_open(at(0, 9, 0)));
        assert!(hours.is_open(at(0, 16, 59)));
        assert!(!hours.is_open(at(0, 17, 0)));
        assert!(!hours.is_open(at(0, 8, 59)));
        assert!(!hours.is_open(at(1, 10, 0)), "Friday is closed");
        assert!(hours.is_open(at(7, 10, 0)), "next Thursday is open");
    }

    #[test]
    fn overnight_slot_runs_past_midnight_and_across_the_week_end() {
        let hours = Hours::Weekly {
            utc_offset_minutes: 0,
            slots: vec![WeeklySlot {
                day: Weekday::Sun,
                open: 18 * 60,
                close: 8 * 60,
            }],
        };
        // Sunday 2026-11-29 is day offset 3; Monday 02:00 is offset 4.
        assert!(hours.is_open(at(3, 23, 0)));
        assert!(hours.is_open(at(4, 2, 0)), "Monday 2 a.m. is inside Sunday's night");
        assert!(!hours.is_open(at(4, 8, 0)));
    }

    #[test]
    fn utc_offset_shifts_local_time() {
        // Open 09:00-17:00 local at UTC-8: 17:00 UTC is 09:00 local.
        let hours = Hours::Weekly {
            utc_offset_minutes: -480,
            slots: vec![WeeklySlot {
                day: Weekday::Thu,
                open: 9 * 60,
                close: 17 * 60,
            }],
        };
        assert!(!hours.is_open(at(0, 10, 0)));
        assert!(hours.is_open(at(0, 17, 0)));
    }

    #[test]
    fn invalid_hours_name_the_field() {
        let hours = Hours::Weekly {
            utc_offset_minutes: 0,
            slots: vec![WeeklySlot {
                day: Weekday::Mon,
                open: 600,
                close: 600,
            }],
        };
        let err = hours.validate("hours").unwrap_err();
        assert_eq!(err.field(), Some("hours.slots[0].close_minute"));
    }
}
