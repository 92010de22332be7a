//! Matching split by region, given-when-then: a partition's matcher keeps
//! only the providers, donations and needs of its regions, and plans only
//! for those.

mod kit;

use kit::{given_in, proposals, provider, requested};
use refer_domain::geo::RegionCode;
use refer_domain::ids::{NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{NeedRequest, Target};
use refer_domain::provider::{ProviderEvent, ProviderProfile};
use refer_domain::sample::{self, NIGHT};
use refer_domain::Event;
use refer_matching::planner::{Decision, Partition};
use std::collections::BTreeMap;
use uuid::Uuid;

const BED: ServiceKind = ServiceKind::ShelterBed;
const LOS_ANGELES: &str = "US-06-037";
const SAN_FRANCISCO: &str = "US-06-075";

fn partition(name: &str, regions: &[&str]) -> Partition {
    Partition::of(name, regions.iter().map(|r| RegionCode::new(*r).unwrap()).collect())
}

fn south() -> Partition {
    partition("south", &[LOS_ANGELES])
}

fn north() -> Partition {
    partition("north", &[SAN_FRANCISCO])
}

fn shelter_in(lat: f64, lon: f64, region: &str) -> ProviderProfile {
    let mut p = sample::shelter(OrgId::from_u128(1));
    p.location = sample::location(lat, lon, region);
    p
}

fn bed_need_from(person: u128, lat: f64, lon: f64, region: &str) -> NeedRequest {
    let mut request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(person), None);
    request.spec.constraints.origin = sample::location(lat, lon, region);
    request
}

/// A shelter in each city with two beds, and a person needing a bed in each.
fn two_cities() -> Vec<(Uuid, Event)> {
    let mut events = provider(
        ProviderId::from_u128(1),
        shelter_in(34.05, -118.24, LOS_ANGELES),
        &[(BED, 2)],
    );
    events.extend(provider(
        ProviderId::from_u128(2),
        shelter_in(37.77, -122.42, SAN_FRANCISCO),
        &[(BED, 2)],
    ));
    events.push(requested(
        NeedId::from_u128(10),
        bed_need_from(10, 33.77, -118.19, LOS_ANGELES),
    ));
    events.push(requested(
        NeedId::from_u128(20),
        bed_need_from(20, 37.70, -122.40, SAN_FRANCISCO),
    ));
    events
}

#[test]
fn each_partition_proposes_its_own_needs_to_its_own_sites() {
    // Given both cities' shelters and needs, seen by the matcher of each half
    // and by a matcher of the whole map.
    let expect = |pairs: &[(u128, u128)]| -> BTreeMap<NeedId, Target> {
        pairs
            .iter()
            .map(|(need, site)| (NeedId::from_u128(*need), Target::Provider(ProviderId::from_u128(*site))))
            .collect()
    };
    // When each plans, then each proposes exactly its own need, at its own site.
    let south_plan = given_in(south(), two_cities()).at(NIGHT).plan();
    assert_eq!(proposals(&south_plan), expect(&[(10, 1)]));
    let north_plan = given_in(north(), two_cities()).at(NIGHT).plan();
    assert_eq!(proposals(&north_plan), expect(&[(20, 2)]));
    // And together they decide what one matcher of the whole map decides.
    let whole_plan = given_in(Partition::whole(), two_cities()).at(NIGHT).plan();
    assert_eq!(proposals(&whole_plan), expect(&[(10, 1), (20, 2)]));
}

#[test]
fn a_partition_keeps_nothing_of_what_lies_elsewhere_even_after_a_restart() {
    // Given the north's matcher, folding the south's shelter, its capacity
    // changes, and the south's need.
    let mut planner = given_in(north(), two_cities());
    planner.fold([(
        ProviderId::from_u128(1).as_uuid(),
        Event::Provider(ProviderEvent::CapacitySet {
            service: BED,
            declared: 9,
        }),
    )]);
    // Then it kept only the north's shelter and need.
    assert_eq!(
        planner.state.providers.keys().copied().collect::<Vec<_>>(),
        [ProviderId::from_u128(2)]
    );
    assert_eq!(
        planner.state.needs.keys().copied().collect::<Vec<_>>(),
        [NeedId::from_u128(20)]
    );
    // And after a restart it still plans for the north alone.
    let plan = planner.restart().at(NIGHT).plan();
    assert_eq!(
        proposals(&plan).into_keys().collect::<Vec<_>>(),
        [NeedId::from_u128(20)]
    );
    assert_eq!(planner.state.partition(), &north());
}

#[test]
fn a_need_whose_only_fitting_site_lies_in_another_partition_waits_in_its_own() {
    // Given a person in Los Angeles who must be moved out of the county, up
    // to 700 km: only the San Francisco shelter fits.
    let mut must_leave = bed_need_from(30, 33.77, -118.19, LOS_ANGELES);
    must_leave.spec.constraints.max_distance_km = Some(700);
    must_leave.spec.constraints.avoid_regions = [RegionCode::new(LOS_ANGELES).unwrap()].into();
    let mut events = two_cities();
    let need = NeedId::from_u128(30);
    events.push(requested(need, must_leave));
    // When the south's matcher plans, then the need is waitlisted there:
    // the north's sites are not the south's to offer.
    let plan = given_in(south(), events.clone()).at(NIGHT).plan();
    assert!(
        plan.contains(&Decision::Waitlist {
            need,
            attempt: 0,
            held_until: None
        }),
        "waitlisted in the south: {plan:?}"
    );
    assert!(!proposals(&plan).contains_key(&need));
    // And the north never sees it.
    let plan = given_in(north(), events.clone()).at(NIGHT).plan();
    assert!(plan.iter().all(|d| d.need() != Some(need)), "{plan:?}");
    // A matcher of a partition holding both counties places it in San Francisco.
    let both = partition("california", &[LOS_ANGELES, SAN_FRANCISCO]);
    let plan = given_in(both, events).at(NIGHT).plan();
    assert_eq!(
        proposals(&plan).get(&need),
        Some(&Target::Provider(ProviderId::from_u128(2)))
    );
}

#[test]
fn each_partition_has_its_own_lease() {
    assert_eq!(Partition::whole().lease(), "matcher");
    assert_eq!(north().lease(), "matcher-north");
    assert_ne!(north().lease(), south().lease());
}
