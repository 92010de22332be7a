//! The compiled catalog against the domain's own rules: for random sites and
//! needs, a site is an option exactly when the domain says every hard
//! constraint holds, at exactly the domain's distance.

use proptest::prelude::*;
use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::geo::{Location, RegionCode};
use refer_domain::ids::{DonationId, ProviderId};
use refer_domain::kinds::{NeedKind, ResourceKind, ServiceKind};
use refer_domain::need::Target;
use refer_domain::profile::{Accessibility, AgeBand, Gender, Profile};
use refer_domain::request::{Constraints, NeedSpec, Urgency};
use refer_domain::sample::{languages, location, NIGHT};
use refer_domain::time::{Hours, TimeWindow, Weekday, WeeklySlot};
use refer_domain::Timestamp;
use refer_matching::{Catalog, Offer, Site};
use std::collections::BTreeSet;

const LANGS: [&str; 4] = ["en", "es", "fr", "tl"];
const REGIONS: [&str; 3] = ["R-A", "R-B", "R-C"];
const AGES: [AgeBand; 2] = [AgeBand::Juvenile, AgeBand::Adult];
const GENDERS: [Gender; 3] = [Gender::Female, Gender::Male, Gender::NonBinary];
const ACCESS: [Accessibility; 2] = [Accessibility::Wheelchair, Accessibility::ServiceAnimal];

fn pick<T: Copy + Ord>(all: &[T], mask: u8) -> BTreeSet<T> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| *t)
        .collect()
}

fn langs(mask: u8) -> BTreeSet<refer_domain::profile::Language> {
    let codes: Vec<&str> = LANGS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect();
    languages(&codes)
}

/// A point within about 150 km of (40, -74), in one of three regions.
fn place() -> impl Strategy<Value = Location> {
    (-120i32..120, -120i32..120, 0usize..3).prop_map(|(dlat, dlon, r)| {
        location(
            40.0 + f64::from(dlat) / 100.0,
            -74.0 + f64::from(dlon) / 100.0,
            REGIONS[r],
        )
    })
}

fn site(index: usize) -> impl Strategy<Value = Site> {
    (
        (1u8..4, 1u8..8, 1u8..16, 0u8..4),
        (0u8..3, 1u8..8, 1u32..200),
        place(),
        (any::<bool>(), 0u8..3, 0u16..1440, 1u32..4),
    )
        .prop_map(
            move |((ages, genders, l, access), (area, regions, radius), location, offer)| {
                let (hotel, day, open, max) = offer;
                let service_area = match area {
                    0 => ServiceArea::Anywhere,
                    1 => ServiceArea::Regions(
                        pick(&[0usize, 1, 2], regions)
                            .into_iter()
                            .map(|r| RegionCode::new(REGIONS[r]).expect("valid"))
                            .collect(),
                    ),
                    _ => ServiceArea::RadiusKm(radius),
                };
                let (target, offer) = if hotel {
                    let offer = Offer::Resource {
                        kind: ResourceKind::HotelRoomNight,
                        window: TimeWindow {
                            start: Timestamp(NIGHT.0 - i64::from(open) * 60_000),
                            end: Timestamp(NIGHT.0 + i64::from(day) * 3_600_000),
                        },
                        max_units_per_need: (max < 3).then_some(max),
                    };
                    (Target::Donation(DonationId::from_u128(index as u128)), offer)
                } else {
                    let hours = match day {
                        0 => Hours::Always,
                        _ => Hours::Weekly {
                            utc_offset_minutes: -300,
                            slots: vec![WeeklySlot {
                                day: [Weekday::Thu, Weekday::Fri][usize::from(day) - 1],
                                open,
                                close: (open + 600) % 1440,
                            }],
                        },
                    };
                    let offer = Offer::Service {
                        service: ServiceKind::ShelterBed,
                        hours,
                    };
                    (Target::Provider(ProviderId::from_u128(index as u128)), offer)
                };
                Site {
                    target,
                    offer,
                    location,
                    eligibility: Eligibility {
                        age_bands: pick(&AGES, ages),
                        genders: pick(&GENDERS, genders),
                        languages: langs(l),
                        accessibility: pick(&ACCESS, access),
                        service_area,
                    },
                }
            },
        )
}

fn need() -> impl Strategy<Value = NeedSpec> {
    (
        (0usize..2, 0usize..3, 1u8..16, 0u8..4, 1u16..4),
        place(),
        (prop::option::of(1u32..250), 0u8..8),
    )
        .prop_map(|((age, gender, l, access, party), origin, (max, avoid))| NeedSpec {
            kind: NeedKind::Shelter,
            urgency: Urgency::Immediate,
            profile: Profile {
                age_band: AGES[age],
                gender: GENDERS[gender],
                languages: langs(l),
                accessibility: pick(&ACCESS, access),
                party_size: party,
            },
            constraints: Constraints {
                origin,
                max_distance_km: max,
                avoid_regions: pick(&[0usize, 1, 2], avoid)
                    .into_iter()
                    .map(|r| RegionCode::new(REGIONS[r]).expect("valid"))
                    .collect(),
                needed_by: None,
            },
            units_per_person: 1,
        })
}

/// The hard constraints as the domain states them, one site at a time.
fn domain_allows(site: &Site, spec: &NeedSpec, free: u32, exclude: &[Target]) -> bool {
    let (open, max) = match &site.offer {
        Offer::Service { hours, .. } => (hours.is_open(NIGHT), u32::MAX),
        Offer::Resource {
            window,
            max_units_per_need,
            ..
        } => (window.contains(NIGHT), max_units_per_need.unwrap_or(u32::MAX)),
    };
    site.offer.serves(spec.kind)
        && free >= spec.units()
        && spec.units() <= max
        && open
        && spec.constraints.allows_site(&site.location)
        && site
            .eligibility
            .admits(&spec.profile, &spec.constraints.origin, &site.location)
            .is_ok()
        && !exclude.contains(&site.target)
}

fn sites() -> impl Strategy<Value = Vec<Site>> {
    (1usize..25).prop_flat_map(|n| (0..n).map(site).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn a_site_is_an_option_exactly_when_the_domain_allows_it(
        sites in sites(),
        spec in need(),
        free in prop::collection::vec(0u32..4, 25),
        excluded in 0usize..30,
    ) {
        let exclude: Vec<Target> = sites.get(excluded).map(|s| s.target).into_iter().collect();
        let catalog = Catalog::new(sites.clone());
        let query = catalog.query(&spec, &exclude);
        let options = catalog.options(&query, NIGHT, |i| free[i]);

        let mut expected: Vec<(usize, u32)> = sites
            .iter()
            .enumerate()
            .filter(|(i, site)| domain_allows(site, &spec, free[*i], &exclude))
            .map(|(i, site)| (i, spec.constraints.distance_km(&site.location.point)))
            .collect();
        expected.sort_by_key(|(i, km)| (*km, *i));
        prop_assert_eq!(&options, &expected);

        // The online rule picks one of the nearest options.
        let nearest = catalog.nearest(&query, NIGHT, |i| free[i]);
        match options.first() {
            None => prop_assert_eq!(nearest, None),
            Some((_, km)) => {
                let (site, got) = nearest.expect("an option exists");
                prop_assert_eq!(got, *km);
                prop_assert!(options.contains(&(site, got)));
            }
        }
    }
}
