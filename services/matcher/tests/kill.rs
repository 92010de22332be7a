//! The matcher binary killed with SIGKILL in the middle of a burst resumes
//! from its checkpoint: no decision lost, none doubled.

use refer_domain::ids::{CorrelationId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{Need, NeedCommand, NeedEvent, NeedStatus};
use refer_domain::provider::{Provider, ProviderCommand, ProviderEvent};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{CommandMeta, Event, IdempotencyKey};
use refer_service::testing::TestSetup;
use refer_testkit::NatsServer;
use std::process::Child;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The matcher process, killed when dropped: a failing test leaves none behind.
struct Running(Child);

impl Running {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(|_| ())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn spawn_matcher(setup: &TestSetup) -> Running {
    let (mut command, _, _) = setup.process(env!("CARGO_BIN_EXE_refer-matcher"), "matcher");
    command.spawn().map(Running).expect("start refer-matcher")
}

fn meta(key: String) -> CommandMeta {
    CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new(key).unwrap()),
    }
}

#[tokio::test]
async fn a_killed_matcher_loses_and_doubles_no_decision() {
    let nats = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(nats.url(), [], NIGHT);
    let store = setup.reader().await;
    let shelter = ProviderId::from_uuid(Uuid::new_v4());
    let register = ProviderCommand::Register(Box::new(sample::shelter(OrgId::from_u128(1))));
    store
        .execute::<Provider>(shelter.as_uuid(), &register, &meta("reg".into()), None)
        .await
        .unwrap();
    let beds = ProviderCommand::SetCapacity {
        service: ServiceKind::ShelterBed,
        declared: 200,
    };
    store
        .execute::<Provider>(shelter.as_uuid(), &beds, &meta("cap".into()), None)
        .await
        .unwrap();

    let mut matcher = spawn_matcher(&setup);
    // Enough that holds go in several commits (at most 64 each) and the
    // kill can land between them.
    const NEEDS: usize = 200;
    let mut needs = Vec::new();
    for i in 0..NEEDS {
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
        needs.push(id);
    }
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

    let mut matcher = spawn_matcher(&setup);
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
