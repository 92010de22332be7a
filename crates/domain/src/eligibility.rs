//! Who a provider site or a donation serves.

use crate::error::DomainError;
use crate::geo::{Location, RegionCode};
use crate::profile::{Accessibility, AgeBand, Gender, Language, Profile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Where people must come from to be served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceArea {
    Anywhere,
    /// People whose origin lies in one of these regions.
    Regions(BTreeSet<RegionCode>),
    /// People whose origin lies within this many kilometres of the site.
    RadiusKm(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eligibility {
    pub age_bands: BTreeSet<AgeBand>,
    pub genders: BTreeSet<Gender>,
    /// Languages staff speak (or interpret) on site.
    pub languages: BTreeSet<Language>,
    /// Accessibility the site offers.
    pub accessibility: BTreeSet<Accessibility>,
    pub service_area: ServiceArea,
}

/// Why a profile is not eligible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    AgeBand,
    Gender,
    Language,
    Accessibility,
    ServiceArea,
}

/// The most languages a site lists.
pub const MAX_LANGUAGES: usize = 32;
/// The most regions a service area lists.
pub const MAX_REGIONS: usize = 256;

impl Eligibility {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        if self.age_bands.is_empty() {
            return Err(DomainError::invalid(
                format!("{field}.age_bands"),
                "must serve at least one age band",
            ));
        }
        if self.genders.is_empty() {
            return Err(DomainError::invalid(
                format!("{field}.genders"),
                "must serve at least one gender",
            ));
        }
        if self.languages.is_empty() || self.languages.len() > MAX_LANGUAGES {
            return Err(DomainError::invalid(
                format!("{field}.languages"),
                format!("must list 1 to {MAX_LANGUAGES} languages"),
            ));
        }
        for lang in &self.languages {
            lang.validate(&format!("{field}.languages"))?;
        }
        match &self.service_area {
            ServiceArea::Anywhere => {}
            ServiceArea::Regions(regions) => {
                if regions.is_empty() || regions.len() > MAX_REGIONS {
                    return Err(DomainError::invalid(
                        format!("{field}.regions.regions"),
                        format!("must list 1 to {MAX_REGIONS} regions"),
                    ));
                }
                for (i, region) in regions.iter().enumerate() {
                    region.validate(&format!("{field}.regions.regions[{i}]"))?;
                }
            }
            ServiceArea::RadiusKm(km) => {
                if *km == 0 || *km > 5_000 {
                    return Err(DomainError::invalid(
                        format!("{field}.service_area"),
                        "radius must be 1 to 5000 km",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks a person (and where they are) against the site at `site`.
    pub fn admits(&self, profile: &Profile, origin: &Location, site: &Location) -> Result<(), Ineligible> {
        if !self.age_bands.contains(&profile.age_band) {
            return Err(Ineligible::AgeBand);
        }
        if !self.genders.contains(&profile.gender) {
            return Err(Ineligible::Gender);
        }
        if self.languages.is_disjoint(&profile.languages) {
            return Err(Ineligible::Language);
        }
        if !profile.accessibility.is_subset(&self.accessibility) {
            return Err(Ineligible::Accessibility);
        }
        let in_area = match &self.service_area {
            ServiceArea::Anywhere => true,
            ServiceArea::Regions(regions) => regions.contains(&origin.region),
            ServiceArea::RadiusKm(km) => origin.point.distance_km(&site.point) <= *km,
        };
        if !in_area {
            return Err(Ineligible::ServiceArea);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::GeoPoint;

    fn loc(lat: f64, lon: f64, region: &str) -> Location {
        Location {
            point: GeoPoint::new(lat, lon).unwrap(),
            region: RegionCode::new(region).unwrap(),
        }
    }

    fn women_only_english() -> Eligibility {
        Eligibility {
            age_bands: [AgeBand::Adult].into(),
            genders: [Gender::Female].into(),
            languages: [Language::new("en").unwrap(), Language::new("es").unwrap()].into(),
            accessibility: [Accessibility::Wheelchair].into(),
            service_area: ServiceArea::RadiusKm(100),
        }
    }

    fn person(age_band: AgeBand, gender: Gender, lang: &str) -> Profile {
        Profile {
            age_band,
            gender,
            languages: [Language::new(lang).unwrap()].into(),
            accessibility: BTreeSet::new(),
            party_size: 1,
        }
    }

    #[test]
    fn admits_checks_each_rule_in_turn() {
        let e = women_only_english();
        let site = loc(34.05, -118.24, "US-06-037");
        let near = loc(34.10, -118.30, "US-06-037");
        let far = loc(37.77, -122.42, "US-06-075");
        assert_eq!(
            e.admits(&person(AgeBand::Adult, Gender::Female, "es"), &near, &site),
            Ok(())
        );
        assert_eq!(
            e.admits(&person(AgeBand::Juvenile, Gender::Female, "en"), &near, &site),
            Err(Ineligible::AgeBand)
        );
        assert_eq!(
            e.admits(&person(AgeBand::Adult, Gender::Male, "en"), &near, &site),
            Err(Ineligible::Gender)
        );
        assert_eq!(
            e.admits(&person(AgeBand::Adult, Gender::Female, "vi"), &near, &site),
            Err(Ineligible::Language)
        );
        assert_eq!(
            e.admits(&person(AgeBand::Adult, Gender::Female, "en"), &far, &site),
            Err(Ineligible::ServiceArea)
        );
        let mut blind = person(AgeBand::Adult, Gender::Female, "en");
        blind.accessibility.insert(Accessibility::VisualImpairment);
        assert_eq!(e.admits(&blind, &near, &site), Err(Ineligible::Accessibility));
    }

    #[test]
    fn empty_sets_are_invalid() {
        let mut e = women_only_english();
        e.genders.clear();
        assert_eq!(
            e.validate("eligibility").unwrap_err().field(),
            Some("eligibility.genders")
        );
    }
}
