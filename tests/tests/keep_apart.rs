//! Keep-apart through the real API: groups recovered together whose members
//! must not be housed together ("when one of them may exert control over
//! the others") arrive at once, over and over, against scarce sites. No two
//! members of one group are ever referred to one site, and the beds are
//! still all used: the optimum, not a repair.

use refer_domain::need::NeedEvent;
use refer_domain::Event;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as intake;
use refer_service::convert::id_pb;
use refer_service::testing::authed;
use refer_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

const LA: &str = "US-06-037";
const ROUNDS: usize = 8;
const SITES: usize = 3;
const BEDS: u32 = 3;
const GROUPS: usize = 4;
const MEMBERS: usize = 3;

fn location(lat: f64, lon: f64) -> pb::Location {
    pb::Location {
        point: Some(pb::GeoPoint { lat, lon }),
        region: LA.into(),
    }
}

/// A site that accepts every referral it gets, with `beds` free.
async fn accepting_site(c: &Coalition, i: usize, lat: f64, beds: u32) -> String {
    let id = id_pb(Uuid::new_v4());
    let token = provider_token(i);
    let spec = cap::ProviderSpec {
        org_id: String::new(),
        name: format!("Shelter {i}"),
        services: vec![pb::ServiceKind::ShelterBed as i32],
        eligibility: Some(pb::Eligibility {
            age_bands: vec![pb::AgeBand::Adult as i32],
            genders: vec![pb::Gender::Female as i32],
            languages: vec!["en".into()],
            accessibility: vec![],
            service_area: None,
        }),
        location: Some(location(lat, -118.25)),
        hours: Some(pb::Hours {
            always: true,
            ..Default::default()
        }),
    };
    let mut client = c.capacity.clone();
    let register = cap::RegisterProviderRequest {
        idempotency_key: format!("reg-{i}"),
        provider_id: id.clone(),
        spec: Some(spec),
    };
    client.register_provider(authed(&token, register)).await.unwrap();
    let set = cap::SetCapacityRequest {
        idempotency_key: format!("cap-{i}"),
        provider_id: id.clone(),
        service: pb::ServiceKind::ShelterBed as i32,
        declared: beds,
        expected_version: None,
    };
    client.set_capacity(authed(&token, set)).await.unwrap();
    accept_every_referral(c, i, id.clone());
    id
}

fn member(round: usize, group: usize, m: usize) -> intake::PersonRequest {
    intake::PersonRequest {
        case_reference: format!("R{round}-G{group}-M{m}"),
        profile: Some(pb::Profile {
            age_band: pb::AgeBand::Adult as i32,
            gender: pb::Gender::Female as i32,
            languages: vec!["en".into()],
            accessibility: vec![],
            party_size: 1,
        }),
        constraints: Some(pb::Constraints {
            origin: Some(location(34.0, -118.25)),
            max_distance_km: Some(30),
            avoid_regions: vec![],
            needed_by_ms: None,
        }),
        urgency: pb::Urgency::Immediate as i32,
        needs: vec![pb::NeedKind::Shelter as i32],
    }
}

#[tokio::test]
async fn concurrent_groups_kept_apart_never_share_a_site() {
    let c = Coalition::start(ROUNDS * SITES, 0).await;
    let mut group_of_need: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..ROUNDS {
        // Fresh sites within 30 km, three beds each: nine beds for twelve
        // people. In odd rounds the beds appear only after everyone waits,
        // so the waitlist is matched as one batch; in even rounds people are
        // matched one commit at a time as they arrive.
        let batch = round % 2 == 1;
        let mut sites = Vec::new();
        for s in 0..SITES {
            let i = round * SITES + s;
            let beds = if batch { 0 } else { BEDS };
            sites.push((i, accepting_site(&c, i, 34.0 + 0.05 * s as f64, beds).await));
        }
        // Four groups of three, requested at the same moment.
        let requests = (0..GROUPS).map(|g| {
            let mut client = c.intake.clone();
            let request = intake::RequestGroupRequest {
                idempotency_key: format!("round-{round}-group-{g}"),
                cohesion: intake::Cohesion::KeepApart as i32,
                people: (0..MEMBERS).map(|m| member(round, g, m)).collect(),
            };
            async move {
                client
                    .request_group(authed(INTAKE, request))
                    .await
                    .unwrap()
                    .into_inner()
            }
        });
        let groups = futures::future::join_all(requests).await;
        for group in &groups {
            for person in &group.people {
                for need in &person.needs {
                    group_of_need.insert(need.need_id.clone(), group.group_id.clone());
                }
            }
        }
        if batch {
            wait_until_all_wait(&c, &groups).await;
            for (i, id) in &sites {
                let set = cap::SetCapacityRequest {
                    idempotency_key: format!("beds-{i}"),
                    provider_id: id.clone(),
                    service: pb::ServiceKind::ShelterBed as i32,
                    declared: BEDS,
                    expected_version: None,
                };
                let mut client = c.capacity.clone();
                client.set_capacity(authed(&provider_token(*i), set)).await.unwrap();
            }
        }

        // Every bed is taken and the rest wait: the optimum places nine.
        let started = Instant::now();
        let placements = loop {
            let placements = placements_of(&c, &groups).await;
            let (accepted, waiting) = (
                count(&placements, intake::NeedStatus::Accepted),
                count(&placements, intake::NeedStatus::Waitlisted),
            );
            // Settled: every bed taken and the rest waiting (the beds of a
            // batch round may not have been seen yet while all wait).
            if accepted == SITES * BEDS as usize && accepted + waiting == GROUPS * MEMBERS {
                break placements;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "round {round}: {accepted} accepted, {waiting} waitlisted: every bed should be used"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        // What intake sees: each group's members at sites of their own.
        for group in &groups {
            let mut sites = BTreeSet::new();
            for person in &group.people {
                let placement = placements
                    .iter()
                    .find(|p| p.placement_id == person.placement_id)
                    .unwrap();
                for need in placement
                    .needs
                    .iter()
                    .filter(|n| n.status == intake::NeedStatus::Accepted as i32)
                {
                    let site = need.placed_with.clone().expect("accepted at a site");
                    assert!(
                        sites.insert(format!("{site:?}")),
                        "round {round}: two of a group at {site:?}"
                    );
                }
            }
        }

        // Those still waiting are cancelled before the next round.
        for need in placements.iter().flat_map(|p| &p.needs) {
            if need.status == intake::NeedStatus::Waitlisted as i32 {
                let cancel = intake::CancelNeedRequest {
                    idempotency_key: format!("cancel-{}", need.need_id),
                    need_id: need.need_id.clone(),
                };
                let mut client = c.intake.clone();
                client.cancel_need(authed(INTAKE, cancel)).await.unwrap();
            }
        }
    }

    // What the stream says: across every round, no site was ever proposed
    // two members of one group (each need is proposed once here: every site
    // accepts, and nothing expires).
    let commits = c
        .store
        .read_all(0, c.store.last_sequence().await.unwrap())
        .await
        .unwrap();
    let mut proposed: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for envelope in commits.iter().flat_map(|commit| &commit.events) {
        if let Event::Need(NeedEvent::Proposed(proposal)) = &envelope.event {
            let need = id_pb(envelope.aggregate.id);
            let group = group_of_need[&need].clone();
            proposed
                .entry((group, format!("{:?}", proposal.target)))
                .or_default()
                .insert(need);
        }
    }
    assert_eq!(
        proposed.values().map(BTreeSet::len).sum::<usize>(),
        ROUNDS * SITES * BEDS as usize
    );
    for ((group, site), needs) in &proposed {
        assert_eq!(needs.len(), 1, "group {group}: {needs:?} proposed to {site}");
    }
}

/// The current placements of everyone in `groups`, as intake sees them.
async fn placements_of(c: &Coalition, groups: &[intake::Group]) -> Vec<intake::Placement> {
    let mut placements = Vec::new();
    for person in groups.iter().flat_map(|g| &g.people) {
        let get = intake::GetPlacementRequest {
            placement_id: person.placement_id.clone(),
        };
        let mut client = c.intake.clone();
        placements.push(client.get_placement(authed(INTAKE, get)).await.unwrap().into_inner());
    }
    placements
}

/// How many needs of `placements` are in `status`.
fn count(placements: &[intake::Placement], status: intake::NeedStatus) -> usize {
    placements
        .iter()
        .flat_map(|p| &p.needs)
        .filter(|n| n.status == status as i32)
        .count()
}

/// Waits until every need of `groups` is waitlisted.
async fn wait_until_all_wait(c: &Coalition, groups: &[intake::Group]) {
    let started = Instant::now();
    loop {
        let waiting = count(&placements_of(c, groups).await, intake::NeedStatus::Waitlisted);
        if waiting == GROUPS * MEMBERS {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{waiting} waitlisted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
