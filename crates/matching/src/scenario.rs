//! Seeded, realistic instances for the quality report and the benchmarks.
//!
//! The mix follows what task forces report: most survivor beds are for
//! women only and adults only, about a third serve minors, very few serve
//! men; most people recovered are women, many are minors, many speak
//! Spanish or another language than English. The same seed gives the same
//! instance on every machine.

use crate::instance::{DonatedResource, Instance, OpenNeed, ProviderSite};
use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::geo::{GeoPoint, Location, RegionCode};
use refer_domain::ids::{DonationId, GroupId, NeedId, PlacementId, ProviderId};
use refer_domain::kinds::{NeedKind, ResourceKind, ServiceKind};
use refer_domain::need::GroupMembership;
use refer_domain::profile::{Accessibility, AgeBand, Gender, Language, Profile};
use refer_domain::request::{Cohesion, Constraints, NeedSpec, Urgency};
use refer_domain::time::{Hours, TimeWindow, Weekday, WeeklySlot};
use refer_domain::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// splitmix64: tiny, fast, and the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The size and shape of an instance.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub providers: usize,
    pub donations: usize,
    pub people: usize,
    /// People come in groups of up to this many (1: everyone alone).
    pub group_size: usize,
    /// The area, in degrees: (south, west, north, east).
    pub area: (f64, f64, f64, f64),
    /// Free units are scaled by this (below 1: capacity is short).
    pub capacity_factor: f64,
    /// The share of provider services whose capacity was declared three
    /// days ago (stale under the default limit); the rest an hour ago.
    pub stale_share: f64,
}

/// 2026-11-26 02:00 UTC, a Thursday night: when the operation's people arrive.
pub const NIGHT: Timestamp = Timestamp(1_795_658_400_000);

const OTHER_LANGUAGES: [&str; 6] = ["tl", "ko", "vi", "zh", "ar", "ru"];

fn language(code: &str) -> Language {
    Language::new(code).expect("scenario languages are valid")
}

impl Scenario {
    /// One night's operation in one metropolitan area.
    pub fn operation_night(seed: u64) -> Self {
        Self {
            seed,
            providers: 300,
            donations: 20,
            people: 15,
            group_size: 15,
            area: (33.5, -118.8, 34.5, -117.6),
            capacity_factor: 1.0,
            stale_share: 0.0,
        }
    }

    /// A region's open needs re-optimised together.
    pub fn regional(seed: u64) -> Self {
        Self {
            seed,
            providers: 3_000,
            donations: 200,
            people: 300,
            group_size: 4,
            area: (32.5, -122.0, 38.0, -116.0),
            capacity_factor: 0.5,
            stale_share: 0.0,
        }
    }

    /// The whole country.
    pub fn national(seed: u64) -> Self {
        Self {
            seed,
            providers: 100_000,
            donations: 5_000,
            people: 4_000,
            group_size: 4,
            area: (30.0, -122.0, 47.0, -75.0),
            capacity_factor: 0.5,
            stale_share: 0.0,
        }
    }

    fn region_of(&self, lat: f64, lon: f64) -> RegionCode {
        let (south, west, _, _) = self.area;
        let (row, col) = (((lat - south) / 0.5) as i64, ((lon - west) / 0.5) as i64);
        RegionCode::new(format!("R-{row}-{col}")).expect("scenario regions are valid")
    }

    fn location(&self, rng: &mut Rng) -> Location {
        let (south, west, north, east) = self.area;
        let point = GeoPoint::new(rng.between(south, north), rng.between(west, east)).expect("in range");
        Location {
            region: self.region_of(point.lat(), point.lon()),
            point,
        }
    }

    fn site_languages(rng: &mut Rng) -> BTreeSet<Language> {
        let mut languages = BTreeSet::from([language("en")]);
        if rng.chance(0.5) {
            languages.insert(language("es"));
        }
        for code in OTHER_LANGUAGES {
            if rng.chance(0.1) {
                languages.insert(language(code));
            }
        }
        languages
    }

    /// A survivor bed's rules: mostly women-only and adults-only.
    fn bed_eligibility(&self, rng: &mut Rng, location: &Location) -> Eligibility {
        let genders = match rng.below(100) {
            0..85 => BTreeSet::from([Gender::Female]),
            85..95 => BTreeSet::from([Gender::Female, Gender::NonBinary]),
            95..98 => BTreeSet::from([Gender::Male]),
            _ => BTreeSet::from([Gender::Female, Gender::Male, Gender::NonBinary]),
        };
        let age_bands = match rng.below(100) {
            0..67 => BTreeSet::from([AgeBand::Adult]),
            67..85 => BTreeSet::from([AgeBand::Juvenile]),
            _ => BTreeSet::from([AgeBand::Juvenile, AgeBand::Adult]),
        };
        Eligibility {
            age_bands,
            genders,
            languages: Self::site_languages(rng),
            accessibility: Self::site_accessibility(rng),
            service_area: self.service_area(rng, location),
        }
    }

    fn site_accessibility(rng: &mut Rng) -> BTreeSet<Accessibility> {
        let mut offered = BTreeSet::new();
        if rng.chance(0.3) {
            offered.insert(Accessibility::Wheelchair);
        }
        if rng.chance(0.1) {
            offered.insert(Accessibility::ServiceAnimal);
        }
        offered
    }

    fn service_area(&self, rng: &mut Rng, location: &Location) -> ServiceArea {
        match rng.below(10) {
            0..7 => ServiceArea::Anywhere,
            7..9 => ServiceArea::RadiusKm(150),
            _ => ServiceArea::Regions(BTreeSet::from([location.region.clone()])),
        }
    }

    fn open_to_all(rng: &mut Rng) -> Eligibility {
        Eligibility {
            age_bands: BTreeSet::from([AgeBand::Juvenile, AgeBand::Adult]),
            genders: BTreeSet::from([Gender::Female, Gender::Male, Gender::NonBinary]),
            languages: Self::site_languages(rng),
            accessibility: Self::site_accessibility(rng),
            service_area: ServiceArea::Anywhere,
        }
    }

    fn hours(rng: &mut Rng) -> Hours {
        if rng.chance(0.8) {
            return Hours::Always;
        }
        let slots = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
            .into_iter()
            .map(|day| WeeklySlot {
                day,
                open: 8 * 60,
                close: 18 * 60,
            })
            .collect();
        Hours::Weekly {
            utc_offset_minutes: -480,
            slots,
        }
    }

    fn units(&self, rng: &mut Rng, most: u64) -> u32 {
        ((1 + rng.below(most)) as f64 * self.capacity_factor).round() as u32
    }

    pub fn instance(&self) -> Instance {
        let mut rng = Rng::new(self.seed);
        let mut ages = Rng::new(self.seed ^ 0x00A6_E50F_CA9A_C17E);
        let mut providers = Vec::with_capacity(self.providers);
        for i in 0..self.providers {
            let location = self.location(&mut rng);
            let mut free = BTreeMap::new();
            // About 70% of sites are shelters; the rest offer services only.
            let eligibility = if rng.chance(0.7) {
                free.insert(ServiceKind::ShelterBed, self.units(&mut rng, 8));
                self.bed_eligibility(&mut rng, &location)
            } else {
                Self::open_to_all(&mut rng)
            };
            for (service, p) in [
                (ServiceKind::Counseling, 0.5),
                (ServiceKind::Medical, 0.3),
                (ServiceKind::Legal, 0.3),
            ] {
                if rng.chance(p) {
                    free.insert(service, self.units(&mut rng, 6));
                }
            }
            if free.is_empty() {
                free.insert(ServiceKind::Counseling, self.units(&mut rng, 6));
            }
            // Ages drawn apart, so the rest of the instance is the same
            // whatever share is stale.
            let as_of = free
                .keys()
                .map(|s| {
                    let hours = if ages.chance(self.stale_share) { 72 } else { 1 };
                    (*s, NIGHT.plus_secs(-hours * 3600))
                })
                .collect();
            providers.push(ProviderSite {
                id: ProviderId::from_u128(0x1000_0000 + i as u128),
                location,
                hours: Self::hours(&mut rng),
                eligibility,
                free,
                as_of,
            });
        }
        let donations = (0..self.donations)
            .map(|i| {
                let hotel = rng.chance(0.6);
                DonatedResource {
                    id: DonationId::from_u128(0x2000_0000 + i as u128),
                    kind: if hotel {
                        ResourceKind::HotelRoomNight
                    } else {
                        ResourceKind::Vehicle
                    },
                    location: self.location(&mut rng),
                    window: TimeWindow {
                        start: Timestamp(NIGHT.0 - 86_400_000),
                        end: Timestamp(NIGHT.0 + 7 * 86_400_000),
                    },
                    max_units_per_need: hotel.then_some(3),
                    eligibility: Self::open_to_all(&mut rng),
                    free: self.units(&mut rng, 10),
                }
            })
            .collect();
        let needs = self.needs(&mut rng);
        Instance {
            now: NIGHT,
            fresh_for_secs: None,
            providers,
            donations,
            needs,
        }
    }

    fn person(rng: &mut Rng) -> Profile {
        let gender = match rng.below(100) {
            0..80 => Gender::Female,
            80..95 => Gender::Male,
            _ => Gender::NonBinary,
        };
        let mut languages = BTreeSet::new();
        match rng.below(10) {
            0..4 => languages.insert(language("en")),
            4..8 => languages.insert(language("es")),
            _ => languages.insert(language(OTHER_LANGUAGES[rng.below(6) as usize])),
        };
        if rng.chance(0.3) {
            languages.insert(language("en"));
        }
        let mut accessibility = BTreeSet::new();
        if rng.chance(0.05) {
            accessibility.insert(Accessibility::Wheelchair);
        }
        Profile {
            age_band: if rng.chance(0.3) {
                AgeBand::Juvenile
            } else {
                AgeBand::Adult
            },
            gender,
            languages,
            accessibility,
            party_size: if rng.chance(0.1) { 2 + rng.below(2) as u16 } else { 1 },
        }
    }

    fn needs(&self, rng: &mut Rng) -> Vec<OpenNeed> {
        let mut needs = Vec::new();
        let mut person = 0usize;
        let mut group = 0u128;
        while person < self.people {
            let size = (1 + rng.below(self.group_size as u64) as usize).min(self.people - person);
            group += 1;
            let cohesion = match rng.below(10) {
                0..6 => Cohesion::NoPreference,
                6..8 => Cohesion::KeepTogether,
                _ => Cohesion::KeepApart,
            };
            // Everyone of one group was recovered at one place.
            let origin = self.location(rng);
            let urgency = match rng.below(10) {
                0..6 => Urgency::Immediate,
                6..9 => Urgency::Soon,
                _ => Urgency::Routine,
            };
            for _ in 0..size {
                let profile = Self::person(rng);
                let constraints = Constraints {
                    origin: origin.clone(),
                    max_distance_km: Some(80 + 20 * rng.below(12) as u32),
                    avoid_regions: if rng.chance(0.3) {
                        BTreeSet::from([origin.region.clone()])
                    } else {
                        BTreeSet::new()
                    },
                    needed_by: None,
                };
                let placement = PlacementId::from_u128(0x3000_0000 + person as u128);
                let mut kinds = vec![NeedKind::Shelter];
                for (kind, p) in [
                    (NeedKind::Counseling, 0.6),
                    (NeedKind::Medical, 0.4),
                    (NeedKind::Legal, 0.3),
                    (NeedKind::Transport, 0.2),
                ] {
                    if rng.chance(p) {
                        kinds.push(kind);
                    }
                }
                for kind in kinds {
                    needs.push(OpenNeed {
                        id: NeedId::from_u128(0x4000_0000 + needs.len() as u128),
                        placement,
                        group: (size > 1).then_some(GroupMembership {
                            group: GroupId::from_u128(0x5000_0000 + group),
                            cohesion,
                            people: size as u16,
                        }),
                        spec: NeedSpec {
                            kind,
                            urgency,
                            profile: profile.clone(),
                            constraints: constraints.clone(),
                            units_per_person: 1,
                        },
                        exclude: Vec::new(),
                        earlier: Default::default(),
                        standing: Default::default(),
                    });
                }
                person += 1;
            }
        }
        needs
    }
}

/// A synthetic batch (the benchmarks' instances): `needs` people alone
/// against `sources` sites with 1-4 free units, each need eligible at about
/// `eligible` random sites at 0-79 km, in random tiers.
pub fn synthetic_problem(needs: usize, sources: usize, eligible: usize, seed: u64) -> crate::Problem {
    let mut rng = Rng::new(seed);
    let capacity = (0..sources).map(|_| 1 + rng.below(4) as u32).collect();
    let needs = (0..needs)
        .map(|_| {
            let mut options: Vec<(usize, u32)> = (0..eligible)
                .map(|_| (rng.below(sources as u64) as usize, rng.below(80) as u32))
                .collect();
            options.sort();
            options.dedup_by_key(|(s, _)| *s);
            crate::Need {
                tier: rng.below(6) as u8,
                units: 1,
                options,
                apart: None,
            }
        })
        .collect();
    crate::Problem { capacity, needs }
}
