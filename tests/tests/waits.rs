//! A wait intake can see, that survives the matcher (docs/matching.md,
//! "Over a night"): over real gRPC and a real nats-server, a routine need
//! held back while the last bed is kept for the urgent is shown to intake
//! as waiting for that reason until a known instant; a matcher restarted
//! keeps that instant (it writes nothing again); at that instant the need
//! is matched like any other. A need no unit serves says so.

use refer_domain::need::{Need, NeedStatus};
use refer_domain::sample::NIGHT;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as intake;
use refer_tests::*;
use uuid::Uuid;

async fn request(c: &Coalition, key: &str, urgency: pb::Urgency, needs: &[pb::NeedKind]) -> intake::Placement {
    let mut person = person("WAIT-CASE", needs);
    person.urgency = urgency as i32;
    request_person(c, key, person).await
}

fn waiting(p: &intake::Placement) -> Option<&intake::WaitingFor> {
    p.needs[0].waiting_for.as_ref()
}

#[tokio::test]
async fn a_need_held_back_for_the_urgent_is_shown_with_its_reason_and_end_and_a_restart_keeps_it() {
    let mut c = Coalition::start(1, 0).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    accept_every_referral(&c, 0, shelter);
    // An urgent person half an hour before: placed (one bed left).
    c.clock.set(NIGHT.plus_secs(-30 * 60));
    let urgent = request(&c, "wait-urgent", pb::Urgency::Immediate, &[pb::NeedKind::Shelter]).await;
    placement_until(&c.intake, &urgent.placement_id, "the urgent person placed", |p| {
        p.needs[0].status == intake::NeedStatus::Accepted as i32
    })
    .await;

    // Given the last bed kept for the urgent expected, when a routine
    // person asks, then intake sees the need wait for that reason, until a
    // known instant (the routine bound from now).
    c.clock.set(NIGHT);
    let routine = request(&c, "wait-routine", pb::Urgency::Routine, &[pb::NeedKind::Shelter]).await;
    let held = placement_until(&c.intake, &routine.placement_id, "held back", |p| {
        waiting(p).is_some_and(|w| w.held_until_ms != 0)
    })
    .await;
    // A routine need waits at most 4 hours (docs/matching.md).
    let until = NIGHT.plus_secs(4 * 3600);
    let w = waiting(&held).unwrap();
    assert_eq!(held.needs[0].status, intake::NeedStatus::Waitlisted as i32);
    assert_eq!(w.reason, intake::WaitReason::HeldForUrgent as i32);
    assert_eq!(w.held_until_ms, until.millis());

    // A matcher restarted (its state and in-flight plans lost) keeps the
    // recorded wait: it writes nothing new for the need.
    let need = Uuid::parse_str(&held.needs[0].need_id).unwrap();
    let before = c.store.load::<Need>(need).await.unwrap();
    // (Ten minutes on, so a wait counted from the restart would end later.)
    c.clock.advance_secs(600);
    c.apps[3].restart().await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = c.store.load::<Need>(need).await.unwrap();
    assert_eq!(after.version, before.version, "nothing decided again after the restart");
    assert_eq!(after.state.held_until, Some(until));

    // A need nothing serves waits for capacity, plainly.
    let legal = request(&c, "wait-legal", pb::Urgency::Immediate, &[pb::NeedKind::Legal]).await;
    let plain = placement_until(&c.intake, &legal.placement_id, "waitlisted", |p| waiting(p).is_some()).await;
    assert_eq!(waiting(&plain).unwrap().reason, intake::WaitReason::NoCapacity as i32);
    assert_eq!(waiting(&plain).unwrap().held_until_ms, 0);

    // When the wait ends, the need is matched like any other: the bed.
    c.clock.set(until);
    let placed = placement_until(&c.intake, &routine.placement_id, "placed when its wait ended", |p| {
        p.needs[0].status == intake::NeedStatus::Accepted as i32
    })
    .await;
    assert!(placed.needs[0].waiting_for.is_none());
    let done = c.store.load::<Need>(need).await.unwrap().state;
    assert_eq!((done.status, done.held_until), (NeedStatus::Accepted, None));
}
