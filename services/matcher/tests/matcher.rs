//! The matcher against a real nats-server: it proposes, re-matches, waitlists,
//! expires and settles holds; it never over-commits; a replay of the stream
//! reproduces its decisions.

mod common;

use common::meta;
use refer_domain::eligibility::ServiceArea;
use refer_domain::ids::{NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{DeclineReason, Need, NeedCommand, NeedEvent, NeedStatus, Target};
use refer_domain::profile::AgeBand;
use refer_domain::provider::{Provider, ProviderCommand, ProviderProfile};
use refer_domain::sample::{self, NIGHT};
use refer_domain::Event;
use refer_matching::planner::Decision;
use refer_service::testing::Solo;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

const BED: ServiceKind = ServiceKind::ShelterBed;

type World = Solo<()>;

async fn world() -> World {
    Solo::start(refer_matcher::SERVICE, [], |_| ()).await
}

async fn provider(w: &World, profile: ProviderProfile, beds: u32) -> ProviderId {
    let id = ProviderId::from_uuid(Uuid::new_v4());
    w.store
        .execute::<Provider>(
            id.as_uuid(),
            &ProviderCommand::Register(Box::new(profile)),
            &meta("reg".into()),
            None,
        )
        .await
        .unwrap();
    let set = ProviderCommand::SetCapacity {
        service: BED,
        declared: beds,
    };
    w.store
        .execute::<Provider>(id.as_uuid(), &set, &meta("cap".into()), None)
        .await
        .unwrap();
    id
}

fn shelter_at(lat: f64, lon: f64) -> ProviderProfile {
    let mut p = sample::shelter(OrgId::from_u128(1));
    p.location = sample::location(lat, lon, "US-06-037");
    p
}

async fn need(w: &World, juvenile: bool) -> NeedId {
    let id = NeedId::from_uuid(Uuid::new_v4());
    let mut request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_uuid(Uuid::new_v4()), None);
    if juvenile {
        request.spec.profile.age_band = AgeBand::Juvenile;
    }
    w.store
        .execute::<Need>(id.as_uuid(), &NeedCommand::Request(request), &meta("req".into()), None)
        .await
        .unwrap();
    id
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn need_state(w: &World, id: NeedId) -> Need {
    w.store.load::<Need>(id.as_uuid()).await.unwrap().state
}

async fn proposed_to(w: &World, id: NeedId) -> Option<Target> {
    let n = need_state(w, id).await;
    (n.status == NeedStatus::Proposed).then(|| n.proposal.unwrap().target)
}

#[tokio::test]
async fn the_closed_loop_runs_by_itself() {
    let mut w = world().await;
    // Near and far adult shelters; a juvenile shelter further away.
    let near = provider(&w, shelter_at(33.80, -118.20), 1).await;
    let far = provider(&w, shelter_at(34.05, -118.24), 1).await;
    let mut youth = shelter_at(34.10, -118.30);
    youth.eligibility.age_bands = [AgeBand::Juvenile].into();
    youth.eligibility.service_area = ServiceArea::Anywhere;
    let youth = provider(&w, youth, 1).await;

    // The nearest eligible shelter gets the referral, with a hold.
    let first = need(&w, false).await;
    eventually("the first need is proposed", || async {
        proposed_to(&w, first).await.is_some()
    })
    .await;
    assert_eq!(proposed_to(&w, first).await, Some(Target::Provider(near)));
    assert_eq!(
        w.store
            .load::<Provider>(near.as_uuid())
            .await
            .unwrap()
            .state
            .units(BED)
            .held,
        1
    );

    // The juvenile goes only where juveniles are served.
    let child = need(&w, true).await;
    eventually("the juvenile is proposed", || async {
        proposed_to(&w, child).await.is_some()
    })
    .await;
    assert_eq!(proposed_to(&w, child).await, Some(Target::Provider(youth)));

    // A decline re-matches to the next candidate and releases the hold.
    let decline = NeedCommand::Decline {
        by: Target::Provider(near),
        reason: DeclineReason::SafetyConcern,
    };
    w.store
        .execute::<Need>(first.as_uuid(), &decline, &meta("decline".into()), None)
        .await
        .unwrap();
    eventually("re-matched to the far shelter", || async {
        proposed_to(&w, first).await == Some(Target::Provider(far))
    })
    .await;
    eventually("the declined hold is released", || async {
        w.store
            .load::<Provider>(near.as_uuid())
            .await
            .unwrap()
            .state
            .units(BED)
            .held
            == 0
    })
    .await;

    // The released bed goes to the next adult; nothing is left for a fourth:
    // waitlisted until capacity appears, then proposed at once.
    let third = need(&w, false).await;
    eventually("the third takes the released bed", || async {
        proposed_to(&w, third).await == Some(Target::Provider(near))
    })
    .await;
    let fourth = need(&w, false).await;
    eventually("the fourth is waitlisted", || async {
        need_state(&w, fourth).await.status == NeedStatus::Waitlisted
    })
    .await;
    let more = ProviderCommand::AdjustCapacity { service: BED, delta: 1 };
    w.store
        .execute::<Provider>(far.as_uuid(), &more, &meta("more".into()), None)
        .await
        .unwrap();
    eventually("the waitlisted need is proposed", || async {
        proposed_to(&w, fourth).await == Some(Target::Provider(far))
    })
    .await;

    // Nobody answers in time: the referrals expire, their holds are released,
    // and the first need, with every eligible shelter tried, waits again.
    let first_hold = need_state(&w, first).await.proposal.unwrap().hold;
    w.clock.advance_secs(refer_domain::need::HOLD_SECS + 1);
    eventually("the first referral expires", || async {
        let n = need_state(&w, first).await;
        n.excluded.contains(&Target::Provider(far)) && n.status == NeedStatus::Waitlisted
    })
    .await;
    eventually("its hold is released", || async {
        !w.store
            .load::<Provider>(far.as_uuid())
            .await
            .unwrap()
            .state
            .holds
            .contains_key(&first_hold)
    })
    .await;

    // A new shelter opens: the longest-waiting need gets it. Then intake
    // cancels that need, and the hold is released.
    let spare = provider(&w, shelter_at(33.90, -118.20), 1).await;
    eventually("the first need gets the new shelter", || async {
        proposed_to(&w, first).await == Some(Target::Provider(spare))
    })
    .await;
    w.store
        .execute::<Need>(first.as_uuid(), &NeedCommand::Cancel, &meta("cancel".into()), None)
        .await
        .unwrap();
    eventually("the cancelled need's hold is released", || async {
        w.store
            .load::<Provider>(spare.as_uuid())
            .await
            .unwrap()
            .state
            .units(BED)
            .held
            == 0
    })
    .await;

    // Every decision the matcher wrote is what a replay of the stream decides,
    // need by need (decisions about different needs are carried out
    // together, so they may land in any order between them).
    w.app.stop().await;
    let last = w.store.last_sequence().await.unwrap();
    let commits = w.store.read_all(0, last).await.unwrap();
    let mut replayed: BTreeMap<NeedId, Vec<Option<Target>>> = BTreeMap::new();
    for action in refer_matching::planner::Planner::replay(commits.iter().map(|c| (c.seq, &c.events[..]))) {
        match action {
            Decision::Propose { need, target, .. } => replayed.entry(need).or_default().push(Some(target)),
            Decision::Waitlist { need, .. } => replayed.entry(need).or_default().push(None),
            other => panic!("not a decision: {other:?}"),
        }
    }
    let mut recorded: BTreeMap<NeedId, Vec<Option<Target>>> = BTreeMap::new();
    for e in commits.iter().flat_map(|c| c.events.iter()) {
        let need = NeedId::from_uuid(e.aggregate.id);
        match &e.event {
            Event::Need(NeedEvent::Proposed(p)) => recorded.entry(need).or_default().push(Some(p.target)),
            Event::Need(NeedEvent::Waitlisted) => recorded.entry(need).or_default().push(None),
            _ => {}
        }
    }
    assert!(recorded.values().map(Vec::len).sum::<usize>() >= 6, "{recorded:?}");
    assert_eq!(replayed, recorded);
}

#[tokio::test]
async fn a_need_waitlisted_at_night_is_proposed_when_the_shelter_opens() {
    let w = world().await;
    // The only shelter opens at 09:00, seven hours after NIGHT.
    let mut profile = shelter_at(33.80, -118.20);
    profile.hours = sample::thursday_day_hours();
    let shelter = provider(&w, profile, 1).await;
    let waiting = need(&w, false).await;
    eventually("the need is waitlisted", || async {
        need_state(&w, waiting).await.status == NeedStatus::Waitlisted
    })
    .await;
    // Morning comes, and nothing is written to the stream meanwhile.
    w.clock.set(NIGHT.plus_secs(7 * 3600 + 30));
    eventually("the need is proposed once the shelter opens", || async {
        proposed_to(&w, waiting).await == Some(Target::Provider(shelter))
    })
    .await;
}

#[tokio::test]
async fn the_last_beds_are_never_over_committed() {
    let w = world().await;
    let shelter = provider(&w, shelter_at(33.80, -118.20), 3).await;
    // Many intake clients at once, while the shelter's coordinator keeps
    // changing the count.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = w.store.clone();
        tasks.push(tokio::spawn(async move {
            let id = NeedId::from_uuid(Uuid::new_v4());
            let request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_uuid(Uuid::new_v4()), None);
            store
                .execute::<Need>(
                    id.as_uuid(),
                    &NeedCommand::Request(request),
                    &meta(format!("r{i}")),
                    None,
                )
                .await
                .unwrap();
            id
        }));
    }
    for delta in [1, -1, 1, -1] {
        let adjust = ProviderCommand::AdjustCapacity { service: BED, delta };
        let _ = w
            .store
            .execute::<Provider>(
                shelter.as_uuid(),
                &adjust,
                &meta(Uuid::new_v4().simple().to_string()),
                None,
            )
            .await;
    }
    let mut needs = Vec::new();
    for t in tasks {
        needs.push(t.await.unwrap());
    }
    eventually("every need is proposed or waitlisted", || async {
        let mut done = 0;
        for n in &needs {
            if matches!(
                need_state(&w, *n).await.status,
                NeedStatus::Proposed | NeedStatus::Waitlisted
            ) {
                done += 1;
            }
        }
        done == needs.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let units = w
        .store
        .load::<Provider>(shelter.as_uuid())
        .await
        .unwrap()
        .state
        .units(BED);
    let mut proposed = 0;
    for n in &needs {
        if need_state(&w, *n).await.status == NeedStatus::Proposed {
            proposed += 1;
        }
    }
    // A decrease below what is held is refused, so a -1 that came after
    // the matcher held every bed left the count one higher.
    assert!((3..=5).contains(&units.declared), "declared {}", units.declared);
    assert_eq!(
        units.held, units.declared,
        "every bed is referred: 24 people wait for them"
    );
    assert_eq!(proposed, units.held, "one referral per held bed");
}

#[tokio::test]
async fn a_restarted_matcher_resumes_from_its_checkpoint() {
    let mut w = world().await;
    let shelter = provider(&w, shelter_at(33.80, -118.20), 10).await;
    let first = need(&w, false).await;
    eventually("proposed", || async { proposed_to(&w, first).await.is_some() }).await;
    // Stop the matcher; needs arrive while it is away.
    w.app.stop().await;
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(need(&w, false).await);
    }
    // A new matcher process on the same sled directory picks up where it left off.
    w.app.restart().await;
    for n in &waiting {
        eventually("the waiting needs are proposed", || async {
            proposed_to(&w, *n).await.is_some()
        })
        .await;
    }
    let p = w.store.load::<Provider>(shelter.as_uuid()).await.unwrap().state;
    assert_eq!(p.units(BED).held, 5, "one hold per need, none doubled");
    assert_eq!(need_state(&w, first).await.proposals_made, 1);
}

/// Fresh capacity before stale: with a bed declared two days ago near the
/// person and one declared just now farther away, the fresh one is
/// proposed; the stale bed still takes the next person, the only option
/// left.
#[tokio::test]
async fn the_matcher_prefers_fresh_capacity_and_still_uses_stale_when_it_is_all() {
    let w = world().await;
    let near = provider(&w, shelter_at(34.06, -118.25), 0).await;
    let old = refer_domain::CommandMeta {
        occurred_at: NIGHT.plus_secs(-48 * 3600),
        ..meta("stale-bed".into())
    };
    let set = ProviderCommand::SetCapacity {
        service: BED,
        declared: 1,
    };
    w.store
        .execute::<Provider>(near.as_uuid(), &set, &old, None)
        .await
        .unwrap();
    let far = provider(&w, shelter_at(34.40, -118.25), 1).await;

    let first = need(&w, false).await;
    eventually("the first need is proposed to the fresh bed", || async {
        proposed_to(&w, first).await == Some(Target::Provider(far))
    })
    .await;
    let second = need(&w, false).await;
    eventually("the second need is proposed to the stale bed", || async {
        proposed_to(&w, second).await == Some(Target::Provider(near))
    })
    .await;
}

#[tokio::test]
async fn a_site_whose_profile_changes_is_matched_by_its_new_profile() {
    let w = world().await;
    // A shelter for adults only: the juvenile waits.
    let site = provider(&w, shelter_at(34.06, -118.25), 2).await;
    let juvenile = need(&w, true).await;
    eventually("the juvenile is waitlisted", || async {
        need_state(&w, juvenile).await.status == NeedStatus::Waitlisted
    })
    .await;
    // The shelter now takes juveniles too (an HSDS import, a new policy).
    let mut profile = shelter_at(34.06, -118.25);
    profile.eligibility.age_bands.insert(AgeBand::Juvenile);
    w.store
        .execute::<Provider>(
            site.as_uuid(),
            &ProviderCommand::UpdateProfile(Box::new(profile)),
            &meta("profile".into()),
            None,
        )
        .await
        .unwrap();
    eventually("the waiting juvenile is proposed to it", || async {
        proposed_to(&w, juvenile).await == Some(Target::Provider(site))
    })
    .await;
}
