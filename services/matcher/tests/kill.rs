//! The matcher binary killed with SIGKILL in the middle of a burst resumes
//! from its checkpoint: no decision lost, none doubled.

mod common;

use common::{request, shelter, Matcher};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{Need, NeedEvent, NeedStatus};
use refer_domain::provider::{Provider, ProviderEvent};
use refer_domain::sample::NIGHT;
use refer_domain::Event;
use refer_service::testing::TestSetup;
use refer_testkit::NatsServer;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_killed_matcher_loses_and_doubles_no_decision() {
    let nats = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(nats.access(), [], NIGHT);
    let store = setup.reader().await;
    let shelter = shelter(&store, 200).await;

    let mut matcher = Matcher::start(&setup, "matcher");
    // Enough that holds go in several commits (at most 64 each) and the
    // kill can land between them.
    const NEEDS: usize = 200;
    let needs = request(&store, NEEDS, "r").await;
    // Kill it as soon as it is partway through.
    let start = Instant::now();
    loop {
        let held = store
            .load::<Provider>(shelter.as_uuid())
            .await
            .unwrap()
            .state
            .units(ServiceKind::ShelterBed)
            .held;
        if held >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the matcher never started proposing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    matcher.kill().unwrap();
    let held_at_kill = store
        .load::<Provider>(shelter.as_uuid())
        .await
        .unwrap()
        .state
        .units(ServiceKind::ShelterBed)
        .held;

    let mut matcher = Matcher::start(&setup, "matcher");
    let start = Instant::now();
    loop {
        let mut proposed = 0;
        for n in &needs {
            if store.load::<Need>(n.as_uuid()).await.unwrap().state.status == NeedStatus::Proposed {
                proposed += 1;
            }
        }
        if proposed == NEEDS {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let holds = store.load::<Provider>(shelter.as_uuid()).await.unwrap().state.holds;
            let mut stuck = Vec::new();
            for n in &needs {
                let need = store.load::<Need>(n.as_uuid()).await.unwrap().state;
                if need.status != NeedStatus::Proposed {
                    let held = holds.values().filter(|h| h.need == *n).count();
                    stuck.push(format!("{:?} made {} held {held}", need.status, need.proposals_made));
                }
            }
            stuck.truncate(5);
            panic!("only {proposed} of {NEEDS} proposed after the restart; stuck: {stuck:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    matcher.kill().unwrap();

    assert!(
        held_at_kill < NEEDS as u32,
        "the kill came in the middle ({held_at_kill} held)"
    );
    let units = store
        .load::<Provider>(shelter.as_uuid())
        .await
        .unwrap()
        .state
        .units(ServiceKind::ShelterBed);
    assert_eq!(units.held, NEEDS as u32, "one hold per need");
    let commits = store.read_all(0, store.last_sequence().await.unwrap()).await.unwrap();
    let events: Vec<_> = commits.iter().flat_map(|c| c.events.iter()).collect();
    let holds = events
        .iter()
        .filter(|e| matches!(e.event, Event::Provider(ProviderEvent::HoldPlaced { .. })))
        .count();
    let proposals = events
        .iter()
        .filter(|e| matches!(e.event, Event::Need(NeedEvent::Proposed(_))))
        .count();
    assert_eq!((holds, proposals), (NEEDS, NEEDS), "no decision doubled");
    for n in &needs {
        assert_eq!(store.load::<Need>(n.as_uuid()).await.unwrap().state.proposals_made, 1);
    }
}
