//! Example values for tests, benchmarks and demos: a night shelter, a hotel's
//! room donation and a person's need, all in Los Angeles County.

use crate::donation::DonationOffer;
use crate::eligibility::{Eligibility, ServiceArea};
use crate::geo::{GeoPoint, Location, RegionCode};
use crate::ids::{OrgId, PlacementId};
use crate::kinds::{NeedKind, ResourceKind, ServiceKind};
use crate::need::{GroupMembership, NeedRequest};
use crate::profile::{AgeBand, Gender, Language, Profile};
use crate::provider::ProviderProfile;
use crate::request::{Constraints, NeedSpec, Urgency};
use crate::time::{Hours, TimeWindow, Timestamp, Weekday, WeeklySlot};
use std::collections::BTreeSet;

/// 2026-11-26 02:00 UTC, a Thursday night.
pub const NIGHT: Timestamp = Timestamp(1_795_658_400_000);

pub fn location(lat: f64, lon: f64, region: &str) -> Location {
    Location {
        point: GeoPoint::new(lat, lon).expect("valid sample point"),
        region: RegionCode::new(region).expect("valid sample region"),
    }
}

pub fn languages(codes: &[&str]) -> BTreeSet<Language> {
    codes
        .iter()
        .map(|c| Language::new(*c).expect("valid sample language"))
        .collect()
}

/// An adult-only, women-only shelter with 24/7 intake (the most common kind).
pub fn shelter(org: OrgId) -> ProviderProfile {
    ProviderProfile {
        org,
        name: "Harbor House".into(),
        services: [ServiceKind::ShelterBed, ServiceKind::Counseling].into(),
        eligibility: Eligibility {
            age_bands: [AgeBand::Adult].into(),
            genders: [Gender::Female].into(),
            languages: languages(&["en", "es"]),
            accessibility: BTreeSet::new(),
            service_area: ServiceArea::Anywhere,
        },
        location: location(34.05, -118.24, "US-06-037"),
        hours: Hours::Always,
    }
}

/// Open on Thursdays from 09:00 to 17:00 UTC: closed at `NIGHT`, open
/// seven hours later.
pub fn thursday_day_hours() -> Hours {
    Hours::Weekly {
        utc_offset_minutes: 0,
        slots: vec![WeeklySlot {
            day: Weekday::Thu,
            open: 9 * 60,
            close: 17 * 60,
        }],
    }
}

/// Ten hotel room-nights over one week, at most three nights per person.
pub fn hotel_rooms(org: OrgId) -> DonationOffer {
    DonationOffer {
        org,
        kind: ResourceKind::HotelRoomNight,
        quantity: 10,
        window: TimeWindow {
            start: NIGHT.plus_secs(-3600),
            end: NIGHT.plus_secs(7 * 24 * 3600),
        },
        location: location(34.06, -118.30, "US-06-037"),
        max_units_per_need: Some(3),
        eligibility: Eligibility {
            age_bands: [AgeBand::Adult, AgeBand::Juvenile].into(),
            genders: [Gender::Female, Gender::Male, Gender::NonBinary].into(),
            languages: languages(&["en", "es", "ko", "tl"]),
            accessibility: BTreeSet::new(),
            service_area: ServiceArea::Anywhere,
        },
    }
}

pub fn adult_woman() -> Profile {
    Profile {
        age_band: AgeBand::Adult,
        gender: Gender::Female,
        languages: languages(&["es"]),
        accessibility: BTreeSet::new(),
        party_size: 1,
    }
}

/// A bed tonight for one adult woman, away from the county where she was found.
pub fn shelter_need(agency: OrgId, placement: PlacementId, group: Option<GroupMembership>) -> NeedRequest {
    NeedRequest {
        placement,
        group,
        agency,
        spec: NeedSpec {
            kind: NeedKind::Shelter,
            urgency: Urgency::Immediate,
            profile: adult_woman(),
            constraints: Constraints {
                origin: location(33.77, -118.19, "US-06-037"),
                max_distance_km: Some(80),
                avoid_regions: [RegionCode::new("US-06-059").expect("valid")].into(),
                needed_by: Some(NIGHT.plus_secs(6 * 3600)),
            },
            units_per_person: 1,
        },
    }
}
