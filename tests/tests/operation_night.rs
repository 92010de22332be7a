//! Operation night, end to end: 25 provider sites and 5 businesses declare
//! capacity and donations; intake submits a group of 15 people recovered
//! together (one a juvenile), each needing a bed, medical care, counseling,
//! legal help and transport. Every call goes over real gRPC to the four
//! services, which talk only through a real nats-server.

use refer_domain::need::{NeedEvent, Target};
use refer_domain::Event;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_proto::intake::v1 as intake;
use refer_service::convert::id_pb;
use refer_service::testing::authed;
use refer_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use uuid::Uuid;

const LA: &str = "US-06-037";
const ORANGE: &str = "US-06-059";

fn eligibility(ages: &[pb::AgeBand], genders: &[pb::Gender]) -> pb::Eligibility {
    pb::Eligibility {
        age_bands: ages.iter().map(|a| *a as i32).collect(),
        genders: genders.iter().map(|g| *g as i32).collect(),
        languages: vec!["en".into(), "es".into()],
        accessibility: vec![],
        service_area: None,
    }
}

fn location(lat: f64, lon: f64) -> pb::Location {
    pb::Location {
        point: Some(pb::GeoPoint { lat, lon }),
        region: LA.into(),
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Answer {
    Accept,
    DeclineFirst,
    Silent,
}

struct Site {
    name: String,
    services: Vec<(pb::ServiceKind, u32)>,
    ages: Vec<pb::AgeBand>,
    genders: Vec<pb::Gender>,
    answer: Answer,
}

fn sites() -> Vec<Site> {
    use pb::{AgeBand::*, Gender::*, ServiceKind::*};
    let mut sites = Vec::new();
    let women = |name: String, answer| Site {
        name,
        services: vec![(ShelterBed, 2), (Counseling, 1)],
        ages: vec![Adult],
        genders: vec![Female],
        answer,
    };
    sites.push(women("Harbor House".into(), Answer::DeclineFirst));
    sites.push(women("Night Light".into(), Answer::Silent));
    for i in 0..6 {
        sites.push(women(format!("Safe Haven {i}"), Answer::Accept));
    }
    for i in 0..2 {
        let name = format!("Youth Refuge {i}");
        sites.push(Site {
            name,
            services: vec![(ShelterBed, 1)],
            ages: vec![Juvenile],
            genders: vec![Female, Male],
            answer: Answer::Accept,
        });
    }
    sites.push(Site {
        name: "Men's Shelter".into(),
        services: vec![(ShelterBed, 2)],
        ages: vec![Adult],
        genders: vec![Male],
        answer: Answer::Accept,
    });
    let everyone = |name: String, kind| Site {
        name,
        services: vec![(kind, 4)],
        ages: vec![Adult, Juvenile],
        genders: vec![Female, Male, NonBinary],
        answer: Answer::Accept,
    };
    for i in 0..6 {
        sites.push(everyone(format!("Clinic {i}"), Medical));
    }
    for i in 0..4 {
        sites.push(everyone(format!("Counseling Center {i}"), Counseling));
    }
    for i in 0..4 {
        sites.push(everyone(format!("Legal Aid {i}"), Legal));
    }
    assert_eq!(sites.len(), 25);
    sites
}

/// A coordinator at a site: watches its referrals and answers them.
fn coordinate(
    mut client: refer_proto::capacity::v1::capacity_client::CapacityClient<tonic::transport::Channel>,
    token: String,
    provider: String,
    answer: Answer,
) {
    tokio::spawn(async move {
        let request = cap::WatchReferralsRequest {
            provider_id: provider.clone(),
            after_position: 0,
        };
        let mut stream = client
            .watch_referrals(authed(&token, request))
            .await
            .unwrap()
            .into_inner();
        let mut declined = false;
        while let Some(Ok(referral)) = stream.next().await {
            if referral.status != cap::ReferralStatus::Pending as i32 || answer == Answer::Silent {
                continue;
            }
            let key = format!("answer-{}", referral.referral_id);
            if answer == Answer::DeclineFirst && !declined {
                declined = true;
                let decline = cap::DeclineReferralRequest {
                    idempotency_key: key,
                    provider_id: provider.clone(),
                    referral_id: referral.referral_id,
                    reason: refer_proto::common::v1::DeclineReason::NoCapacity as i32,
                };
                let _ = client.decline_referral(authed(&token, decline)).await;
            } else {
                let accept = cap::AcceptReferralRequest {
                    idempotency_key: key,
                    provider_id: provider.clone(),
                    referral_id: referral.referral_id,
                    handoff: SIDE_DOOR.into(),
                };
                let _ = client.accept_referral(authed(&token, accept)).await;
            }
        }
    });
}

fn person(i: usize, age: pb::AgeBand, gender: pb::Gender) -> intake::PersonRequest {
    use pb::NeedKind::*;
    intake::PersonRequest {
        case_reference: format!("NIGHTFALL-{i:02}"),
        profile: Some(pb::Profile {
            age_band: age as i32,
            gender: gender as i32,
            languages: vec![if i.is_multiple_of(2) { "es" } else { "en" }.into()],
            accessibility: vec![],
            party_size: 1,
        }),
        constraints: Some(pb::Constraints {
            origin: Some(location(33.77, -118.19)),
            max_distance_km: Some(80),
            avoid_regions: vec![ORANGE.into()],
            needed_by_ms: None,
        }),
        urgency: pb::Urgency::Immediate as i32,
        needs: [Shelter, Medical, Counseling, Legal, Transport]
            .iter()
            .map(|k| *k as i32)
            .collect(),
    }
}

#[tokio::test]
async fn operation_night() {
    let mut c = Coalition::start(25, 5).await;

    // 25 sites register and declare capacity, each by its own partner.
    let mut declared: BTreeMap<String, (usize, Vec<(pb::ServiceKind, u32)>)> = BTreeMap::new();
    let mut juvenile_sites = BTreeSet::new();
    let (mut decliner, mut silent) = (String::new(), String::new());
    for (i, site) in sites().into_iter().enumerate() {
        let id = id_pb(Uuid::new_v4());
        let spec = cap::ProviderSpec {
            org_id: String::new(),
            name: site.name.clone(),
            services: site.services.iter().map(|(k, _)| *k as i32).collect(),
            eligibility: Some(eligibility(&site.ages, &site.genders)),
            location: Some(location(33.80 + 0.01 * i as f64, -118.20 - 0.01 * i as f64)),
            hours: Some(pb::Hours {
                always: true,
                ..Default::default()
            }),
        };
        let token = provider_token(i);
        let register = cap::RegisterProviderRequest {
            idempotency_key: format!("reg-{i}"),
            provider_id: id.clone(),
            spec: Some(spec),
        };
        c.capacity.register_provider(authed(&token, register)).await.unwrap();
        for (kind, units) in &site.services {
            let set = cap::SetCapacityRequest {
                idempotency_key: format!("cap-{i}-{}", *kind as i32),
                provider_id: id.clone(),
                service: *kind as i32,
                declared: *units,
                expected_version: None,
            };
            c.capacity.set_capacity(authed(&token, set)).await.unwrap();
        }
        if site.ages.contains(&pb::AgeBand::Juvenile)
            && site.services.iter().any(|(k, _)| *k == pb::ServiceKind::ShelterBed)
        {
            juvenile_sites.insert(id.clone());
        }
        match site.answer {
            Answer::DeclineFirst => decliner = id.clone(),
            Answer::Silent => silent = id.clone(),
            Answer::Accept => {}
        }
        coordinate(c.capacity.clone(), token, id.clone(), site.answer);
        declared.insert(id, (i, site.services));
    }

    // Five businesses donate: two hotels (adults only, at most 3 nights each),
    // two vans with drivers, one rental-car fleet.
    use pb::ResourceKind::*;
    let donated = [
        (HotelRoomNight, 5),
        (HotelRoomNight, 5),
        (Vehicle, 8),
        (Vehicle, 8),
        (RentalCar, 5),
    ];
    let mut donation_ids = Vec::new();
    for (i, (kind, quantity)) in donated.iter().enumerate() {
        let adults_only = *kind == HotelRoomNight;
        let ages = if adults_only {
            vec![pb::AgeBand::Adult]
        } else {
            vec![pb::AgeBand::Adult, pb::AgeBand::Juvenile]
        };
        let spec = don::DonationSpec {
            org_id: String::new(),
            kind: *kind as i32,
            quantity: *quantity,
            window: Some(pb::TimeWindow {
                start_ms: refer_domain::sample::NIGHT.plus_secs(-3600).millis(),
                end_ms: refer_domain::sample::NIGHT.plus_secs(7 * 86_400).millis(),
            }),
            location: Some(location(33.85 + 0.02 * i as f64, -118.25)),
            max_units_per_need: if adults_only { 3 } else { 0 },
            eligibility: Some(eligibility(
                &ages,
                &[pb::Gender::Female, pb::Gender::Male, pb::Gender::NonBinary],
            )),
        };
        let request = don::RegisterDonationRequest {
            idempotency_key: format!("don-{i}"),
            donation_id: id_pb(Uuid::new_v4()),
            spec: Some(spec),
        };
        let d = c
            .donations
            .register_donation(authed(&business_token(i), request))
            .await
            .unwrap()
            .into_inner();
        let handoff = don::SetDonationHandoffRequest {
            idempotency_key: format!("don-handoff-{i}"),
            donation_id: d.donation_id.clone(),
            instructions: format!("Business {i}: ask at the front desk for the Refer booking"),
        };
        c.donations
            .set_donation_handoff(authed(&business_token(i), handoff))
            .await
            .unwrap();
        donation_ids.push((i, d.donation_id));
    }
    let contact = "Task force night desk, 555-0142";
    let set = intake::SetHandoffContactRequest {
        idempotency_key: "contact".into(),
        contact: contact.into(),
    };
    c.intake.set_handoff_contact(authed(INTAKE, set)).await.unwrap();

    // Intake submits the group: 12 women, 2 men, 1 girl.
    let mut people = Vec::new();
    for i in 0..12 {
        people.push(person(i, pb::AgeBand::Adult, pb::Gender::Female));
    }
    people.push(person(12, pb::AgeBand::Adult, pb::Gender::Male));
    people.push(person(13, pb::AgeBand::Adult, pb::Gender::Male));
    people.push(person(14, pb::AgeBand::Juvenile, pb::Gender::Female));
    let group = intake::RequestGroupRequest {
        idempotency_key: "operation-nightfall".into(),
        cohesion: 0,
        people,
    };
    let group = c
        .intake
        .request_group(authed(INTAKE, group))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(group.people.len(), 15);

    // Wait until every need is accepted. The silent site never answers: when
    // nothing moves, the clock jumps past the referral deadline.
    let started = Instant::now();
    let (mut last_accepted, mut idle) = (0, 0);
    let placements = loop {
        let mut placements = Vec::new();
        for p in &group.people {
            let get = intake::GetPlacementRequest {
                placement_id: p.placement_id.clone(),
            };
            placements.push(c.intake.get_placement(authed(INTAKE, get)).await.unwrap().into_inner());
        }
        let accepted = placements
            .iter()
            .flat_map(|p| &p.needs)
            .filter(|n| n.status == intake::NeedStatus::Accepted as i32)
            .count();
        if accepted == 75 {
            break placements;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {accepted} of 75 needs accepted"
        );
        if accepted == last_accepted {
            idle += 1;
        } else {
            (last_accepted, idle) = (accepted, 0);
        }
        if idle >= 10 {
            c.clock.advance_secs(refer_domain::need::HOLD_SECS + 1);
            idle = 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Every person has a bed or a room, medical care, counseling, legal help and transport.
    let target_of = |n: &intake::NeedUpdate| match n.placed_with.as_ref().and_then(|t| t.target.clone()) {
        Some(pb::target::Target::ProviderId(id)) => format!("p:{id}"),
        Some(pb::target::Target::DonationId(id)) => format!("d:{id}"),
        None => panic!("accepted without a place"),
    };
    for p in &placements {
        assert_eq!(p.needs.len(), 5);
        assert!(p.needs.iter().all(|n| n.status == intake::NeedStatus::Accepted as i32));
    }
    // The loop is closed between people: every accepted need shows intake
    // where and how to bring the person, and every accepting provider the
    // agency's contact.
    for n in placements.iter().flat_map(|p| &p.needs) {
        let handoff = n.handoff.as_ref().expect("every accepted need has a hand-off");
        assert!(
            !handoff.site_name.is_empty() && !handoff.instructions.is_empty(),
            "{n:?}"
        );
        match target_of(n).split_once(':') {
            Some(("p", _)) => assert_eq!(handoff.instructions, SIDE_DOOR),
            _ => assert!(handoff.instructions.ends_with("the Refer booking"), "{handoff:?}"),
        }
    }
    let mut accepted_referrals = 0;
    for (site, (i, _)) in &declared {
        for r in referrals(&c, *i, site, false)
            .await
            .iter()
            .filter(|r| r.status == cap::ReferralStatus::Accepted as i32)
        {
            assert_eq!(r.handoff.as_ref().unwrap().agency_contact, contact);
            accepted_referrals += 1;
        }
    }
    let by_providers = placements
        .iter()
        .flat_map(|p| &p.needs)
        .filter(|n| target_of(n).starts_with("p:"))
        .count();
    assert_eq!(
        accepted_referrals, by_providers,
        "every acceptance by a provider shows the contact"
    );

    // The juvenile's bed is at a site that serves juveniles.
    let girl = placements.iter().find(|p| p.case_reference == "NIGHTFALL-14").unwrap();
    let bed = girl
        .needs
        .iter()
        .find(|n| n.kind == pb::NeedKind::Shelter as i32)
        .unwrap();
    let site = target_of(bed);
    assert!(
        juvenile_sites.iter().any(|j| site == format!("p:{j}")),
        "the juvenile was placed at {site}"
    );
    // Nobody is placed at the site that never answered.
    assert!(placements
        .iter()
        .flat_map(|p| &p.needs)
        .all(|n| target_of(n) != format!("p:{silent}")));

    // The stream tells the story: a referral declined and re-matched, one
    // expired and re-matched.
    let commits = c
        .store
        .read_all(0, c.store.last_sequence().await.unwrap())
        .await
        .unwrap();
    let events: Vec<_> = commits.iter().flat_map(|x| x.events.iter()).collect();
    let declined: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Need(NeedEvent::Declined { proposal, .. }) => Some((e.aggregate.id, proposal.target)),
            _ => None,
        })
        .collect();
    let expired: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Need(NeedEvent::Expired(p)) => Some((e.aggregate.id, p.target)),
            _ => None,
        })
        .collect();
    // Decisions commit atomically: every hold the matcher placed is in one
    // batch with its proposal (the proposals of one batch follow its holds
    // at the next sequences); every answer and every expiry with its hold's
    // settlement.
    let at_seq: BTreeMap<u64, &refer_eventstore::Recorded> = commits.iter().map(|c| (c.seq, c)).collect();
    let proposed_at = |hold| {
        commits.iter().find_map(|c| {
            c.events.iter().find_map(|e| match &e.event {
                Event::Need(NeedEvent::Proposed(p)) if p.hold == hold => Some(c.seq),
                _ => None,
            })
        })
    };
    let mut holds_seen = 0;
    for commit in &commits {
        for e in &commit.events {
            match &e.event {
                Event::Provider(refer_domain::provider::ProviderEvent::HoldPlaced { hold, .. })
                | Event::Donation(refer_domain::donation::DonationEvent::HoldPlaced { hold, .. }) => {
                    holds_seen += 1;
                    let proposal = proposed_at(*hold).expect("every hold has its proposal");
                    // A batch is its holds (one commit per provider), then
                    // its proposals: nothing else comes in between.
                    let in_batch = |x: &refer_domain::Envelope| {
                        matches!(
                            x.event,
                            Event::Need(NeedEvent::Proposed(_))
                                | Event::Provider(refer_domain::provider::ProviderEvent::HoldPlaced { .. })
                        )
                    };
                    assert!(
                        proposal > commit.seq
                            && (commit.seq + 1..proposal).all(|s| at_seq[&s].events.iter().all(in_batch)),
                        "hold {hold:?} at {} and its proposal at {proposal} are not one batch",
                        commit.seq
                    );
                }
                Event::Need(NeedEvent::Accepted(p)) if matches!(p.target, Target::Provider(_)) => {
                    let next = &at_seq[&(commit.seq + 1)];
                    assert!(
                        next.events.iter().any(|x| matches!(
                            x.event,
                            Event::Provider(refer_domain::provider::ProviderEvent::HoldConfirmed { hold }) if hold == p.hold
                        )),
                        "an acceptance and its settlement are one batch"
                    );
                }
                Event::Need(NeedEvent::Declined { proposal: p, .. }) => {
                    let next = &at_seq[&(commit.seq + 1)];
                    assert!(
                        next.events.iter().any(|x| matches!(
                            x.event,
                            Event::Provider(refer_domain::provider::ProviderEvent::HoldReleased { hold, .. }) if hold == p.hold
                        )),
                        "a decline and its release are one batch"
                    );
                }
                Event::Need(NeedEvent::Expired(p)) => {
                    let next = &at_seq[&(commit.seq + 1)];
                    assert!(
                        next.events.iter().any(|x| matches!(
                            x.event,
                            Event::Provider(refer_domain::provider::ProviderEvent::HoldReleased { hold, .. }) if hold == p.hold
                        )),
                        "an expiry and its release are one batch"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(holds_seen >= 75);
    let provider = |id: &str| Target::Provider(refer_domain::ids::ProviderId::from_uuid(id.parse().unwrap()));
    assert_eq!(declined.len(), 1, "{declined:?}");
    assert_eq!(declined[0].1, provider(&decliner));
    assert!(!expired.is_empty());
    assert!(expired.iter().all(|(_, t)| *t == provider(&silent)));
    let all_needs: BTreeMap<String, String> = placements
        .iter()
        .flat_map(|p| &p.needs)
        .map(|n| (n.need_id.clone(), target_of(n)))
        .collect();
    for (need, target) in declined.iter().chain(&expired) {
        let placed = &all_needs[&id_pb(*need)];
        assert_ne!(
            placed,
            &format!(
                "p:{}",
                id_pb(match target {
                    Target::Provider(p) => p.as_uuid(),
                    Target::Donation(d) => d.as_uuid(),
                })
            )
        );
    }

    // Final free capacity is what was declared minus what was accepted.
    let mut accepted_at: BTreeMap<String, usize> = BTreeMap::new();
    for target in all_needs.values() {
        *accepted_at.entry(target.clone()).or_default() += 1;
    }
    for (id, (i, services)) in &declared {
        let get = cap::GetProviderRequest {
            provider_id: id.clone(),
        };
        let p = c
            .capacity
            .get_provider(authed(&provider_token(*i), get))
            .await
            .unwrap()
            .into_inner();
        let mut placed_here = 0;
        for (kind, initial) in services {
            let units = p.capacity.iter().find(|u| u.service == *kind as i32).unwrap();
            assert_eq!(units.held, 0, "no hold left behind at {id}");
            assert_eq!(units.free, initial - units.placed, "free = declared - accepted at {id}");
            placed_here += units.placed as usize;
        }
        assert_eq!(placed_here, accepted_at.get(&format!("p:{id}")).copied().unwrap_or(0));
    }
    for (i, id) in &donation_ids {
        let get = don::GetDonationRequest {
            donation_id: id.clone(),
        };
        let d = c
            .donations
            .get_donation(authed(&business_token(*i), get))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.held, 0);
        assert_eq!(
            d.used as usize,
            accepted_at.get(&format!("d:{id}")).copied().unwrap_or(0)
        );
        assert_eq!(d.free + d.used, d.spec.unwrap().quantity);
        assert_eq!(d.usage.iter().map(|u| u.units).sum::<u32>(), d.used);
    }
}
