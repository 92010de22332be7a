//! Whole instances: beds anchor bundles, groups stay together or apart,
//! priorities hold, and the JSON format is what docs/matching.md shows.

use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::ids::{GroupId, NeedId, PlacementId, ProviderId};
use refer_domain::kinds::{NeedKind, ServiceKind};
use refer_domain::need::{GroupMembership, Target};
use refer_domain::profile::{AgeBand, Gender};
use refer_domain::request::{Cohesion, Constraints, NeedSpec, Urgency};
use refer_domain::sample::{adult_woman, languages, location, NIGHT};
use refer_domain::time::Hours;
use refer_matching::scenario::Scenario;
use refer_matching::{Earlier, Instance, Mode, OpenNeed, ProviderSite};
use std::collections::{BTreeMap, BTreeSet};

fn site(id: u128, lat: f64, free: &[(ServiceKind, u32)], ages: &[AgeBand]) -> ProviderSite {
    ProviderSite {
        id: ProviderId::from_u128(id),
        location: location(lat, -118.0, "US-06-037"),
        hours: Hours::Always,
        eligibility: Eligibility {
            age_bands: ages.iter().copied().collect(),
            genders: [Gender::Female].into(),
            languages: languages(&["en", "es"]),
            accessibility: BTreeSet::new(),
            service_area: ServiceArea::Anywhere,
        },
        free: free.iter().copied().collect::<BTreeMap<_, _>>(),
        as_of: free.iter().map(|(s, _)| (*s, NIGHT)).collect(),
    }
}

fn need(id: u128, person: u128, kind: NeedKind, age: AgeBand, group: Option<(u128, Cohesion)>) -> OpenNeed {
    let mut profile = adult_woman();
    profile.age_band = age;
    OpenNeed {
        id: NeedId::from_u128(id),
        placement: PlacementId::from_u128(person),
        group: group.map(|(g, cohesion)| GroupMembership {
            group: GroupId::from_u128(g),
            cohesion,
            people: 2,
        }),
        spec: NeedSpec {
            kind,
            urgency: Urgency::Immediate,
            profile,
            constraints: Constraints {
                origin: location(34.0, -118.0, "US-06-037"),
                max_distance_km: Some(200),
                avoid_regions: BTreeSet::new(),
                needed_by: None,
            },
            units_per_person: 1,
        },
        exclude: Vec::new(),
        earlier: Earlier::default(),
        standing: Default::default(),
    }
}

fn target(solution: &refer_matching::Solution, need: u128) -> Option<Target> {
    solution
        .placements
        .iter()
        .find(|p| p.need == NeedId::from_u128(need))
        .and_then(|p| p.target)
}

fn provider(id: u128) -> Option<Target> {
    Some(Target::Provider(ProviderId::from_u128(id)))
}

const ADULT: &[AgeBand] = &[AgeBand::Adult];

#[test]
fn counseling_is_chosen_near_the_bed_not_near_where_the_person_was_found() {
    // The bed is 0.3 degrees (33 km) north; one clinic is where she was
    // found, the other next to the bed.
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(1, 34.3, &[(ServiceKind::ShelterBed, 1)], ADULT),
            site(2, 34.0, &[(ServiceKind::Counseling, 1)], ADULT),
            site(3, 34.31, &[(ServiceKind::Counseling, 1)], ADULT),
        ],
        donations: vec![],
        needs: vec![
            need(10, 100, NeedKind::Shelter, AgeBand::Adult, None),
            need(11, 100, NeedKind::Counseling, AgeBand::Adult, None),
        ],
    };
    let solution = instance.solve(Mode::Batch);
    assert_eq!(target(&solution, 10), provider(1));
    assert_eq!(target(&solution, 11), provider(3));
    assert!(solution.metrics.bundle_spread_km <= 2, "{:?}", solution.metrics);
}

#[test]
fn a_group_asked_to_stay_together_is_moved_to_one_site_that_fits_all() {
    // The nearest site has one bed; a farther one has two.
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(1, 34.05, &[(ServiceKind::ShelterBed, 1)], ADULT),
            site(2, 34.5, &[(ServiceKind::ShelterBed, 2)], ADULT),
        ],
        donations: vec![],
        needs: vec![
            need(
                10,
                100,
                NeedKind::Shelter,
                AgeBand::Adult,
                Some((7, Cohesion::KeepTogether)),
            ),
            need(
                11,
                101,
                NeedKind::Shelter,
                AgeBand::Adult,
                Some((7, Cohesion::KeepTogether)),
            ),
        ],
    };
    let solution = instance.solve(Mode::Batch);
    assert_eq!(target(&solution, 10), provider(2));
    assert_eq!(target(&solution, 11), provider(2));
    assert_eq!(solution.metrics.groups_split, 0);
    assert_eq!(solution.metrics.placed, 2);
}

#[test]
fn a_group_asked_to_stay_apart_never_shares_a_site() {
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(1, 34.05, &[(ServiceKind::ShelterBed, 2)], ADULT),
            site(2, 34.5, &[(ServiceKind::ShelterBed, 1)], ADULT),
        ],
        donations: vec![],
        needs: vec![
            need(
                10,
                100,
                NeedKind::Shelter,
                AgeBand::Adult,
                Some((7, Cohesion::KeepApart)),
            ),
            need(
                11,
                101,
                NeedKind::Shelter,
                AgeBand::Adult,
                Some((7, Cohesion::KeepApart)),
            ),
        ],
    };
    for mode in [Mode::Batch, Mode::Greedy] {
        let solution = instance.solve(mode);
        let (a, b) = (target(&solution, 10), target(&solution, 11));
        assert!(a.is_some() && b.is_some() && a != b, "{mode:?}: {a:?} {b:?}");
    }
}

#[test]
fn keeping_apart_never_costs_a_higher_tier_its_only_site() {
    // Given a group kept apart: a soon adult (first in line) and an
    // immediate juvenile; site 1 takes both ages, site 2 adults only.
    let both = &[AgeBand::Juvenile, AgeBand::Adult];
    let mut adult = need(
        10,
        100,
        NeedKind::Shelter,
        AgeBand::Adult,
        Some((7, Cohesion::KeepApart)),
    );
    adult.spec.urgency = Urgency::Soon;
    let juvenile = need(
        11,
        101,
        NeedKind::Shelter,
        AgeBand::Juvenile,
        Some((7, Cohesion::KeepApart)),
    );
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(1, 34.05, &[(ServiceKind::ShelterBed, 2)], both),
            site(2, 34.5, &[(ServiceKind::ShelterBed, 1)], ADULT),
        ],
        donations: vec![],
        needs: vec![adult, juvenile],
    };
    // When solved, then the juvenile keeps the only site for minors, the
    // adult goes to the other, and both are placed.
    let solution = instance.solve(Mode::Batch);
    assert_eq!(target(&solution, 11), provider(1));
    assert_eq!(target(&solution, 10), provider(2));
    assert_eq!(solution.metrics.placed, 2);
    assert_eq!(solution.max_placeable, 2);
    assert_eq!(solution.metrics.priority_violations, 0);
}

#[test]
fn a_member_kept_apart_never_joins_a_site_where_a_mate_was_placed_before() {
    // Given one mate already placed at the nearest site (an earlier commit).
    let mut late = need(
        11,
        101,
        NeedKind::Shelter,
        AgeBand::Adult,
        Some((7, Cohesion::KeepApart)),
    );
    late.earlier.mates = vec![provider(1).unwrap()];
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(1, 34.05, &[(ServiceKind::ShelterBed, 3)], ADULT),
            site(2, 34.5, &[(ServiceKind::ShelterBed, 1)], ADULT),
        ],
        donations: vec![],
        needs: vec![late.clone()],
    };
    for mode in [Mode::Batch, Mode::Greedy] {
        assert_eq!(target(&instance.solve(mode), 11), provider(2), "{mode:?}");
    }
    // Without room elsewhere, it waits rather than join the mate.
    let mut full = instance.clone();
    full.providers.truncate(1);
    assert_eq!(target(&full.solve(Mode::Batch), 11), None);
    assert_eq!(full.solve(Mode::Batch).max_placeable, 0);
}

#[test]
fn a_member_kept_together_joins_the_site_where_a_mate_was_placed_before() {
    // Given a mate at the farther site, which has room.
    let mut late = need(
        11,
        101,
        NeedKind::Shelter,
        AgeBand::Adult,
        Some((7, Cohesion::KeepTogether)),
    );
    late.earlier.mates = vec![provider(2).unwrap()];
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(1, 34.05, &[(ServiceKind::ShelterBed, 3)], ADULT),
            site(2, 34.5, &[(ServiceKind::ShelterBed, 1)], ADULT),
        ],
        donations: vec![],
        needs: vec![late],
    };
    assert_eq!(target(&instance.solve(Mode::Batch), 11), provider(2));
}

#[test]
fn the_rest_of_a_bundle_is_measured_from_a_bed_placed_before() {
    // Given the person's bed already placed 33 km north; counseling near it
    // and near where she was found.
    let mut counseling = need(11, 100, NeedKind::Counseling, AgeBand::Adult, None);
    counseling.earlier.bed = Some(location(34.3, -118.0, "US-06-037").point);
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(2, 34.0, &[(ServiceKind::Counseling, 1)], ADULT),
            site(3, 34.31, &[(ServiceKind::Counseling, 1)], ADULT),
        ],
        donations: vec![],
        needs: vec![counseling],
    };
    assert_eq!(target(&instance.solve(Mode::Batch), 11), provider(3));
}

#[test]
fn greedy_lets_an_adult_take_the_only_bed_for_minors_and_batch_does_not() {
    // The adult arrives first; the nearest site takes both ages, the other adults only.
    let both = &[AgeBand::Juvenile, AgeBand::Adult];
    let instance = Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: vec![
            site(1, 34.05, &[(ServiceKind::ShelterBed, 1)], both),
            site(2, 34.5, &[(ServiceKind::ShelterBed, 1)], ADULT),
        ],
        donations: vec![],
        needs: vec![
            need(10, 100, NeedKind::Shelter, AgeBand::Adult, None),
            need(11, 101, NeedKind::Shelter, AgeBand::Juvenile, None),
        ],
    };
    let greedy = instance.solve(Mode::Greedy);
    assert_eq!(greedy.metrics.placed, 1);
    assert_eq!(greedy.metrics.priority_violations, 1);
    let batch = instance.solve(Mode::Batch);
    assert_eq!(batch.metrics.placed, 2);
    assert_eq!(batch.metrics.priority_violations, 0);
    assert_eq!(batch.max_placeable, 2);
}

#[test]
fn on_realistic_instances_the_batch_never_breaks_priority_and_is_deterministic() {
    for seed in 1..=5 {
        let instance = Scenario::operation_night(seed).instance();
        instance.validate().expect("generated instances are valid");
        let batch = instance.solve(Mode::Batch);
        let greedy = instance.solve(Mode::Greedy);
        assert_eq!(batch.metrics.priority_violations, 0, "seed {seed}: {:?}", batch.metrics);
        assert!(batch.metrics.placed <= batch.max_placeable);
        assert!(
            batch.metrics.placed_by_tier >= greedy.metrics.placed_by_tier,
            "seed {seed}: batch {:?} greedy {:?}",
            batch.metrics,
            greedy.metrics
        );
        assert_eq!(instance.solve(Mode::Batch), batch, "deterministic");
    }
}

/// The example in docs/matching.md solves to the output printed there.
#[test]
fn the_documented_example_solves_as_documented() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/matching.md")).expect("docs");
    let block = |marker: &str| -> String {
        let start = docs
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} in docs/matching.md"));
        let body = &docs[start..];
        let open = body.find("```json\n").expect("a json block") + "```json\n".len();
        let close = body[open..].find("```").expect("closed block");
        body[open..open + close].to_owned()
    };
    let instance: Instance = serde_json::from_str(&block("<!-- example instance -->")).expect("example parses");
    instance.validate().expect("example is valid");
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/instance.json"
    ))
    .expect("docs/examples/instance.json");
    assert_eq!(
        serde_json::from_str::<Instance>(&file).expect("parses"),
        instance,
        "the file is the example"
    );
    let expected: serde_json::Value = serde_json::from_str(&block("<!-- example output -->")).expect("output parses");
    let solved = serde_json::to_value(instance.solve(Mode::Batch)).expect("serialises");
    assert_eq!(solved, expected);
}

#[test]
fn bad_input_names_the_field() {
    let mut instance = Scenario::operation_night(1).instance();
    instance.needs[2].spec.profile.languages.clear();
    let error = instance.validate().expect_err("no language");
    assert!(error.to_string().contains("needs[2].spec.profile.languages"), "{error}");
    let mut instance = Scenario::operation_night(1).instance();
    instance.providers[3].id = instance.providers[1].id;
    let error = instance.validate().expect_err("duplicate");
    assert!(error.to_string().contains("providers[3].id"), "{error}");
    let mut instance = Scenario::operation_night(1).instance();
    instance.fresh_for_secs = Some(0);
    let error = instance.validate().expect_err("no freshness");
    assert!(error.to_string().contains("fresh_for_secs"), "{error}");
    let mut instance = Scenario::operation_night(1).instance();
    let offered: BTreeSet<ServiceKind> = instance.providers[0].free.keys().copied().collect();
    let other = [ServiceKind::Legal, ServiceKind::Medical, ServiceKind::Counseling]
        .into_iter()
        .find(|s| !offered.contains(s))
        .expect("a service the first site does not offer");
    instance.providers[0].as_of.insert(other, NIGHT);
    let error = instance.validate().expect_err("as_of of nothing");
    assert!(error.to_string().contains("providers[0].as_of"), "{error}");
}

/// Scarce capacity and large groups, many seeds: no two members of a group
/// kept apart ever share a site for one kind of need, in either mode.
#[test]
fn on_scarce_generated_instances_kept_apart_members_never_share_a_site() {
    let mut kept_apart = 0;
    for seed in 1..=40 {
        let scenario = Scenario {
            providers: 30,
            donations: 4,
            people: 30,
            group_size: 6,
            capacity_factor: 0.3,
            ..Scenario::operation_night(seed)
        };
        let instance = scenario.instance();
        for mode in [Mode::Batch, Mode::Greedy] {
            let solution = instance.solve(mode);
            let mut seen = BTreeSet::new();
            for (need, placement) in instance.needs.iter().zip(&solution.placements) {
                let (Some(group), Some(target)) = (need.group, placement.target) else {
                    continue;
                };
                if group.cohesion == Cohesion::KeepApart {
                    kept_apart += 1;
                    assert!(
                        seen.insert((group.group, need.spec.kind, target)),
                        "seed {seed} {mode:?}: two of group {:?} at {target:?}",
                        group.group
                    );
                }
            }
            assert!(
                solution.metrics.placed <= solution.max_placeable,
                "seed {seed} {mode:?}"
            );
        }
    }
    assert!(kept_apart > 50, "the instances place kept-apart members ({kept_apart})");
}

/// A site whose capacity was declared `hours` before the night.
fn declared_ago(mut site: ProviderSite, hours: i64) -> ProviderSite {
    for at in site.as_of.values_mut() {
        *at = NIGHT.plus_secs(-hours * 3600);
    }
    site
}

fn beds_at(sites: Vec<ProviderSite>, needs: Vec<OpenNeed>) -> Instance {
    Instance {
        now: NIGHT,
        fresh_for_secs: None,
        providers: sites,
        donations: vec![],
        needs,
    }
}

#[test]
fn a_fresh_site_wins_a_tie_with_a_stale_one_even_a_little_farther() {
    // Given two shelters with a bed each, the nearer one's count set three
    // days ago (stale under the default 24 hours), the other's an hour ago.
    let instance = beds_at(
        vec![
            declared_ago(site(1, 34.01, &[(ServiceKind::ShelterBed, 1)], ADULT), 72),
            declared_ago(site(2, 34.2, &[(ServiceKind::ShelterBed, 1)], ADULT), 1),
        ],
        vec![need(10, 100, NeedKind::Shelter, AgeBand::Adult, None)],
    );
    // When one person needs a bed, in batch and in greedy mode alike,
    // then she goes to the fresh bed, and the distance reported is real.
    for mode in [Mode::Batch, Mode::Greedy] {
        let solution = instance.solve(mode);
        assert_eq!(target(&solution, 10), provider(2), "{mode:?}");
        assert_eq!(solution.metrics.placed_stale, 0, "{mode:?}");
        assert!(solution.metrics.total_km < 30, "{mode:?}: {:?}", solution.metrics);
    }
    // Under a limit of a week, both are fresh: the nearer one wins.
    let week = Instance {
        fresh_for_secs: Some(7 * 24 * 3600),
        ..instance.clone()
    };
    assert_eq!(target(&week.solve(Mode::Batch), 10), provider(1));
}

#[test]
fn a_stale_site_still_places_when_it_is_the_only_option() {
    let instance = beds_at(
        vec![declared_ago(site(1, 34.01, &[(ServiceKind::ShelterBed, 1)], ADULT), 72)],
        vec![need(10, 100, NeedKind::Shelter, AgeBand::Adult, None)],
    );
    let solution = instance.solve(Mode::Batch);
    assert_eq!(target(&solution, 10), provider(1));
    assert_eq!(solution.metrics.placed_stale, 1);
}

#[test]
fn freshness_never_costs_a_placement_nor_outranks_priority() {
    // One fresh bed that both a juvenile and an adult could use, and one
    // stale bed only the adult may use: both are placed (the adult on the
    // stale bed), never the adult on the fresh bed and the juvenile left out.
    let instance = beds_at(
        vec![
            declared_ago(
                site(
                    1,
                    34.01,
                    &[(ServiceKind::ShelterBed, 1)],
                    &[AgeBand::Juvenile, AgeBand::Adult],
                ),
                1,
            ),
            declared_ago(site(2, 34.02, &[(ServiceKind::ShelterBed, 1)], ADULT), 72),
        ],
        vec![
            need(10, 100, NeedKind::Shelter, AgeBand::Adult, None),
            need(11, 101, NeedKind::Shelter, AgeBand::Juvenile, None),
        ],
    );
    let solution = instance.solve(Mode::Batch);
    assert_eq!(target(&solution, 11), provider(1));
    assert_eq!(target(&solution, 10), provider(2));
    assert_eq!(solution.metrics.placed, 2);
    assert_eq!(solution.metrics.placed_stale, 1);
}

#[test]
fn freshness_keeps_the_counts_per_tier_and_all_stale_places_as_all_fresh() {
    // Scenario instances with a third of their capacity stale: the counts
    // per tier are those of the same instance with everything fresh, and no
    // more needs are placed on stale capacity than must be.
    for seed in 1..=6 {
        let fresh = Scenario {
            capacity_factor: 0.4,
            ..Scenario::operation_night(seed)
        }
        .instance();
        let mixed = Scenario {
            capacity_factor: 0.4,
            stale_share: 0.33,
            ..Scenario::operation_night(seed)
        }
        .instance();
        assert_eq!(fresh.needs, mixed.needs, "the same needs");
        let a = fresh.solve(Mode::Batch);
        let b = mixed.solve(Mode::Batch);
        assert_eq!(a.metrics.placed_by_tier, b.metrics.placed_by_tier, "seed {seed}");
        assert_eq!(a.metrics.placed_stale, 0);
        // Every provider stale and no donation (never stale) to prefer:
        // the placements are those of everything fresh.
        let fresh = Instance {
            donations: vec![],
            ..fresh
        };
        let all_stale = Instance {
            fresh_for_secs: Some(60),
            ..fresh.clone()
        };
        let c = all_stale.solve(Mode::Batch);
        assert_eq!(c.placements, fresh.solve(Mode::Batch).placements, "seed {seed}");
        assert_eq!(c.metrics.placed_stale, c.metrics.placed);
    }
}
