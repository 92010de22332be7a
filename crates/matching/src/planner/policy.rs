//! The policy that protects the urgent (docs/matching.md): a reserve of
//! units for the urgent needs the night is expected to bring, sized from
//! the urgent needs seen lately, and bounded waits for soon and routine
//! needs while that reserve is short.
//!
//! Each plan, the needs first seen in the last `lookback_secs` are the
//! forecast's sample: as many urgent people as their immediate needs give
//! at the rate they came, with profiles drawn from every need seen, are
//! expected (`Policy::forecast`). They join the batch as `Standing::Forecast` (never placed for
//! real): the needs decided now are placed first, as before, but among
//! their best placements the one that leaves the most for the forecast is
//! taken (an adult goes to the adults-only shelter and leaves the bed that
//! takes minors). A soon or routine need first seen less than its tier's
//! `hold_back_secs` ago is `Standing::HeldBack`: it ranks below the
//! forecast, so it takes a unit only if the reserve can spare it, and
//! otherwise waits (waitlisted, with the instant its wait ends) until its
//! wait ends, a unit it could use is freed, or the forecast shrinks as the
//! urgent arrivals thin out. Once its wait ended it is decided now, in its
//! tier, like any other need. Every wait is bounded, and no need is held
//! back at the end of the night: waits end while the night goes on.

use crate::TIERS;
use refer_domain::request::{NeedSpec, Urgency};
use refer_domain::{Freshness, Timestamp};

/// The shortest span an arrival rate is measured over (seconds): a burst
/// in the first minutes does not make the night look endless.
pub const MIN_SPAN_SECS: i64 = 15 * 60;

/// The most forecast needs one plan adds (its cost bound).
pub const MAX_FORECAST: usize = 512;

/// The policy's settings. `Policy::default()` protects the urgent;
/// `Policy::arrival_order()` is the planner before it (nothing held back,
/// no forecast).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long a need of each tier (immediate juvenile first) may be held
    /// back, in seconds, from when the matcher first saw it; 0: never.
    pub hold_back_secs: [i64; TIERS],
    /// The immediate needs first seen this long before a plan are its
    /// forecast; 0: no forecast.
    pub lookback_secs: i64,
    /// The coalition's freshness limit: capacity declared longer ago is
    /// stale, and fresh capacity is preferred to it at equal priority.
    pub freshness: Freshness,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            hold_back_secs: [0, 0, 2 * 3600, 2 * 3600, 4 * 3600, 4 * 3600],
            lookback_secs: 2 * 3600,
            freshness: Freshness::default(),
        }
    }
}

impl Policy {
    /// Every need decided as it comes, no forecast: the planner before the
    /// policy (the night replay's comparison).
    pub fn arrival_order() -> Self {
        Self {
            hold_back_secs: [0; TIERS],
            lookback_secs: 0,
            freshness: Freshness::default(),
        }
    }

    /// How many times the urgent needs seen lately are expected again: the
    /// rate they came at over the longest wait a need held back may have
    /// left. The rate counts from when the matcher started observing (at
    /// least `MIN_SPAN_SECS`, so a burst in its first minutes does not make
    /// the night look endless, and no longer than the lookback); at most
    /// `MAX_FORECAST` needs in all. Before the matcher has observed for
    /// `MIN_SPAN_SECS` it knows no rate yet: with nothing seen, it keeps
    /// one copy of whatever comes, and soon and routine needs that compete
    /// with it wait.
    pub fn forecast_copies(&self, observing_since: Option<Timestamp>, now: Timestamp, seen: usize) -> u32 {
        let Some(since) = observing_since.filter(|_| seen > 0 && self.lookback_secs > 0) else {
            return 0;
        };
        let span = ((now.0 - since.0) / 1000).clamp(MIN_SPAN_SECS, self.lookback_secs.max(MIN_SPAN_SECS));
        let horizon = self.hold_back_secs.iter().copied().max().unwrap_or(0);
        let copies = (horizon + span - 1) / span;
        copies.clamp(1, (MAX_FORECAST / seen).max(1) as i64) as u32
    }

    /// The urgent needs expected: as many people as the immediate needs of
    /// `sample` times `forecast_copies`, each one person, immediate, from
    /// anywhere (no distance limit, no region avoided: the reserve is of
    /// who may use a unit, not of where they were). Their profiles (kind,
    /// age, gender, languages, accessibility) are drawn evenly from every
    /// need of `sample`, of any tier: the rate comes from the urgent needs
    /// alone, but a night's few urgent needs of the last hours miss
    /// profiles that later urgent needs have, and a reserve that cannot
    /// serve them lets soon and routine needs take the units they will
    /// want (the night replay: 86.8% of hindsight priority-weighted on
    /// scarce nights with immediate profiles alone, 89.7% with every
    /// tier's). `sample` is the needs first seen within the lookback, in
    /// the order seen.
    pub fn forecast(&self, observing_since: Option<Timestamp>, now: Timestamp, sample: &[&NeedSpec]) -> Vec<NeedSpec> {
        let urgent = sample.iter().filter(|s| s.urgency == Urgency::Immediate);
        let copies = self.forecast_copies(observing_since, now, urgent.clone().count()) as usize;
        let urgent_people: usize = urgent.map(|s| usize::from(s.profile.party_size.max(1))).sum();
        let total = copies * urgent_people;
        let people: Vec<NeedSpec> = sample
            .iter()
            .flat_map(|spec| {
                let mut person = (*spec).clone();
                person.urgency = Urgency::Immediate;
                person.profile.party_size = 1;
                person.constraints.max_distance_km = None;
                person.constraints.avoid_regions.clear();
                std::iter::repeat_n(person, usize::from(spec.profile.party_size.max(1)))
            })
            .collect();
        if people.is_empty() {
            return Vec::new();
        }
        (0..total).map(|j| people[j * people.len() / total].clone()).collect()
    }

    /// How long a need of `tier` may be held back (seconds).
    pub fn hold_back(&self, tier: u8) -> i64 {
        self.hold_back_secs[usize::from(tier).min(TIERS - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refer_domain::ids::{OrgId, PlacementId};
    use refer_domain::kinds::NeedKind;
    use refer_domain::profile::AgeBand;
    use refer_domain::sample::{self, NIGHT};

    fn spec(kind: NeedKind, urgency: Urgency, age: AgeBand, party: u16) -> NeedSpec {
        let mut spec = sample::shelter_need(OrgId::from_u128(1), PlacementId::from_u128(1), None).spec;
        spec.kind = kind;
        spec.urgency = urgency;
        spec.profile.age_band = age;
        spec.profile.party_size = party;
        spec
    }

    /// Given one urgent adult and two soon needs of other profiles seen in
    /// the last half hour, the forecast expects as many urgent people as
    /// the urgent rate gives, drawn evenly from all three profiles, each
    /// one immediate person from anywhere.
    #[test]
    fn the_forecast_counts_urgent_arrivals_and_draws_every_profile_seen() {
        let policy = Policy::default();
        let since = NIGHT.plus_secs(-30 * 60);
        let urgent = spec(NeedKind::Shelter, Urgency::Immediate, AgeBand::Adult, 1);
        let juvenile = spec(NeedKind::Shelter, Urgency::Soon, AgeBand::Juvenile, 1);
        let family = spec(NeedKind::Medical, Urgency::Routine, AgeBand::Adult, 2);
        let forecast = policy.forecast(Some(since), NIGHT, &[&urgent, &juvenile, &family]);
        // One urgent person in 30 minutes, over the 4-hour longest wait.
        assert_eq!(forecast.len(), 8);
        assert!(forecast.iter().all(|f| f.urgency == Urgency::Immediate
            && f.profile.party_size == 1
            && f.constraints.max_distance_km.is_none()
            && f.constraints.avoid_regions.is_empty()));
        let juveniles = forecast
            .iter()
            .filter(|f| f.profile.age_band == AgeBand::Juvenile)
            .count();
        let medical = forecast.iter().filter(|f| f.kind == NeedKind::Medical).count();
        // Four people seen (the family counts twice): two of eight each.
        assert_eq!((juveniles, medical), (2, 4));
        // No urgent need seen: nothing expected, whatever else came.
        assert!(policy.forecast(Some(since), NIGHT, &[&juvenile, &family]).is_empty());
        assert!(Policy::arrival_order()
            .forecast(Some(since), NIGHT, &[&urgent])
            .is_empty());
    }
}
