//! What intake asks for: needs, bundled per person, grouped per operation.

use crate::error::DomainError;
use crate::geo::{GeoPoint, Location, RegionCode};
use crate::ids::{GroupId, NeedId, PlacementId};
use crate::kinds::NeedKind;
use crate::profile::Profile;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How soon a need must be met. Ordered most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Urgency {
    /// Tonight: a person without a safe place right now.
    Immediate,
    /// Within days.
    Soon,
    Routine,
}

/// Hard limits on where a need may be met.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraints {
    /// Where the person is now (coarse).
    pub origin: Location,
    pub max_distance_km: Option<u32>,
    /// Regions the person must not be placed in, for example where the trafficker is.
    pub avoid_regions: BTreeSet<RegionCode>,
    /// The need is useless after this instant.
    pub needed_by: Option<Timestamp>,
}

/// The most regions a person may be kept out of.
pub const MAX_AVOID_REGIONS: usize = 64;

impl Constraints {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        self.origin.validate(&format!("{field}.origin"))?;
        if let Some(km) = self.max_distance_km {
            if km == 0 || km > 5_000 {
                return Err(DomainError::invalid(
                    format!("{field}.max_distance_km"),
                    "must be 1 to 5000",
                ));
            }
        }
        if self.avoid_regions.len() > MAX_AVOID_REGIONS {
            return Err(DomainError::invalid(
                format!("{field}.avoid_regions"),
                format!("at most {MAX_AVOID_REGIONS} regions"),
            ));
        }
        for region in &self.avoid_regions {
            region.validate(&format!("{field}.avoid_regions"))?;
        }
        Ok(())
    }

    /// Whether a site at `site` satisfies the place constraints.
    pub fn allows_site(&self, site: &Location) -> bool {
        !self.avoid_regions.contains(&site.region)
            && self
                .max_distance_km
                .is_none_or(|max| self.origin.point.distance_km(&site.point) <= max)
    }

    pub fn distance_km(&self, site: &GeoPoint) -> u32 {
        self.origin.point.distance_km(site)
    }
}

/// One kind of help for one person or party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedSpec {
    pub kind: NeedKind,
    pub urgency: Urgency,
    pub profile: Profile,
    pub constraints: Constraints,
    /// Units wanted per person (room-nights, for example); 1 for most needs.
    pub units_per_person: u16,
}

/// The most units a need may ask for per person (a hotel stay of two weeks).
pub const MAX_UNITS_PER_PERSON: u16 = 14;

impl NeedSpec {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        self.profile.validate(&format!("{field}.profile"))?;
        self.constraints.validate(&format!("{field}.constraints"))?;
        if self.units_per_person == 0 || self.units_per_person > MAX_UNITS_PER_PERSON {
            return Err(DomainError::invalid(
                format!("{field}.units_per_person"),
                format!("must be 1 to {MAX_UNITS_PER_PERSON}"),
            ));
        }
        Ok(())
    }

    /// Units the need occupies: party size times units per person.
    pub fn units(&self) -> u32 {
        u32::from(self.profile.party_size) * u32::from(self.units_per_person)
    }
}

/// The bundle of needs of one person (or party), placed as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRequest {
    pub placement: PlacementId,
    pub profile: Profile,
    pub constraints: Constraints,
    pub urgency: Urgency,
    /// Each need with the id the shell chose for it.
    pub needs: Vec<(NeedId, NeedKind)>,
}

/// The most needs in one person's bundle.
pub const MAX_NEEDS_PER_PERSON: usize = 8;

impl PlacementRequest {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        self.profile.validate(&format!("{field}.profile"))?;
        self.constraints.validate(&format!("{field}.constraints"))?;
        if self.needs.is_empty() || self.needs.len() > MAX_NEEDS_PER_PERSON {
            return Err(DomainError::invalid(
                format!("{field}.needs"),
                format!("must hold 1 to {MAX_NEEDS_PER_PERSON} needs"),
            ));
        }
        let kinds: BTreeSet<_> = self.needs.iter().map(|(_, kind)| kind).collect();
        if kinds.len() != self.needs.len() {
            return Err(DomainError::invalid(format!("{field}.needs"), "lists a kind twice"));
        }
        let ids: BTreeSet<_> = self.needs.iter().map(|(id, _)| id).collect();
        if ids.len() != self.needs.len() {
            return Err(DomainError::invalid(format!("{field}.needs"), "repeats a need id"));
        }
        Ok(())
    }

    /// A group's people must be in one region: a group is matched as a
    /// whole (kept together or apart) by the one matcher whose partition
    /// holds that region. Names the first person in another region
    /// (`<field>[i].constraints.origin.region`).
    pub fn one_origin<'a>(people: impl IntoIterator<Item = &'a Self>, field: &str) -> Result<(), DomainError> {
        let mut people = people.into_iter().enumerate();
        let Some((_, first)) = people.next() else { return Ok(()) };
        let region = &first.constraints.origin.region;
        match people.find(|(_, p)| p.constraints.origin.region != *region) {
            None => Ok(()),
            Some((i, _)) => Err(DomainError::invalid(
                format!("{field}[{i}].constraints.origin.region"),
                format!("must be {region}, the region of {field}[0]: a group is matched in one region"),
            )),
        }
    }

    /// Splits the bundle into one spec per need.
    pub fn specs(&self) -> impl Iterator<Item = (NeedId, NeedSpec)> + '_ {
        self.needs.iter().map(|(id, kind)| {
            (
                *id,
                NeedSpec {
                    kind: *kind,
                    urgency: self.urgency,
                    profile: self.profile.clone(),
                    constraints: self.constraints.clone(),
                    units_per_person: 1,
                },
            )
        })
    }
}

/// Whether people recovered together should be placed together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cohesion {
    NoPreference,
    KeepTogether,
    /// Keep apart, for example when one may exert control over the others.
    KeepApart,
}

/// Several people recovered together (one operation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRequest {
    pub group: GroupId,
    pub cohesion: Cohesion,
    pub people: Vec<PlacementRequest>,
}

/// The most people in one group request (one operation recovered 15).
pub const MAX_GROUP_SIZE: usize = 100;

impl GroupRequest {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.people.is_empty() || self.people.len() > MAX_GROUP_SIZE {
            return Err(DomainError::invalid(
                "people",
                format!("must hold 1 to {MAX_GROUP_SIZE} people"),
            ));
        }
        for (i, person) in self.people.iter().enumerate() {
            person.validate(&format!("people[{i}]"))?;
        }
        let placements: BTreeSet<_> = self.people.iter().map(|p| p.placement).collect();
        let needs: BTreeSet<_> = self
            .people
            .iter()
            .flat_map(|p| p.needs.iter().map(|(id, _)| id))
            .collect();
        let need_count: usize = self.people.iter().map(|p| p.needs.len()).sum();
        if placements.len() != self.people.len() || needs.len() != need_count {
            return Err(DomainError::invalid("people", "repeats a placement or need id"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn person(placement: u128, needs: &[(u128, NeedKind)]) -> PlacementRequest {
        let need = sample::shelter_need(crate::ids::OrgId::from_u128(1), PlacementId::from_u128(placement), None);
        PlacementRequest {
            placement: PlacementId::from_u128(placement),
            profile: need.spec.profile,
            constraints: need.spec.constraints,
            urgency: Urgency::Immediate,
            needs: needs.iter().map(|(id, kind)| (NeedId::from_u128(*id), *kind)).collect(),
        }
    }

    #[test]
    fn a_bundle_splits_into_one_spec_per_need_sharing_the_profile() {
        let request = person(
            1,
            &[
                (10, NeedKind::Shelter),
                (11, NeedKind::Medical),
                (12, NeedKind::Transport),
            ],
        );
        request.validate("person").unwrap();
        let specs: Vec<_> = request.specs().collect();
        assert_eq!(specs.len(), 3);
        assert!(specs
            .iter()
            .all(|(_, s)| s.profile == request.profile && s.units() == 1));
        assert_eq!(specs[2].1.kind, NeedKind::Transport);
    }

    #[test]
    fn a_bundle_may_not_repeat_a_kind_or_be_empty() {
        let twice = person(1, &[(10, NeedKind::Shelter), (11, NeedKind::Shelter)]);
        assert_eq!(twice.validate("person").unwrap_err().field(), Some("person.needs"));
        assert_eq!(
            person(1, &[]).validate("person").unwrap_err().field(),
            Some("person.needs")
        );
    }

    #[test]
    fn a_group_names_the_person_whose_field_is_invalid_and_refuses_shared_ids() {
        let mut group = GroupRequest {
            group: GroupId::from_u128(9),
            cohesion: Cohesion::KeepApart,
            people: vec![
                person(1, &[(10, NeedKind::Shelter)]),
                person(2, &[(20, NeedKind::Shelter)]),
            ],
        };
        group.validate().unwrap();
        group.people[1].profile.party_size = 0;
        assert_eq!(
            group.validate().unwrap_err().field(),
            Some("people[1].profile.party_size")
        );
        group.people[1] = person(1, &[(21, NeedKind::Shelter)]);
        assert_eq!(group.validate().unwrap_err().field(), Some("people"));
    }

    #[test]
    fn place_constraints_avoid_regions_and_cap_distance() {
        let c = sample::shelter_need(crate::ids::OrgId::from_u128(1), PlacementId::from_u128(1), None)
            .spec
            .constraints;
        assert!(
            c.allows_site(&sample::location(34.05, -118.24, "US-06-037")),
            "LA is ~35 km away"
        );
        assert!(
            !c.allows_site(&sample::location(33.80, -117.90, "US-06-059")),
            "the avoided county"
        );
        assert!(
            !c.allows_site(&sample::location(32.72, -117.16, "US-06-073")),
            "San Diego is too far"
        );
    }

    #[test]
    fn a_group_is_in_one_region() {
        // Given three people recovered together, one of them elsewhere.
        let mut people = [1, 2, 3].map(|p| person(p, &[(p * 10, NeedKind::Shelter)]));
        assert_eq!(PlacementRequest::one_origin(&people, "people"), Ok(()));
        people[2].constraints.origin = sample::location(37.77, -122.42, "US-06-075");
        // Then the group is refused, naming the person in another region.
        let err = PlacementRequest::one_origin(&people, "people").unwrap_err();
        assert_eq!(err.field(), Some("people[2].constraints.origin.region"));
        assert!(err.to_string().contains("must be US-06-037"), "{err}");
        assert_eq!(PlacementRequest::one_origin(&people[..1], "people"), Ok(()));
    }

    #[test]
    fn party_size_multiplies_units() {
        let mut spec = sample::shelter_need(crate::ids::OrgId::from_u128(1), PlacementId::from_u128(1), None).spec;
        spec.profile.party_size = 3;
        assert_eq!(spec.units(), 3, "a mother with two children needs three beds");
    }
}
