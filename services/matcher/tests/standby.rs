//! A standby matcher takes over when the active one dies (SIGKILL) or is
//! paused past its lease (SIGSTOP); a paused-then-resumed old leader makes
//! no decision and no duplicate. Real processes, a real nats-server.

use refer_domain::ids::{CorrelationId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{Need, NeedCommand, NeedStatus};
use refer_domain::provider::{Provider, ProviderCommand};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_eventstore::EventStore;
use refer_service::testing::TestSetup;
use refer_testkit::NatsServer;
use std::process::Child;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A matcher process, killed when dropped.
struct Matcher(Child);

impl Matcher {
    fn start(setup: &TestSetup, instance: &str) -> Self {
        let (mut command, _, _) = setup.process(env!("CARGO_BIN_EXE_refer-matcher"), instance);
        Self(command.spawn().expect("start refer-matcher"))
    }
    fn signal(&self, signal: &str) {
        assert!(self.send(signal), "kill {signal}");
    }
    fn send(&self, signal: &str) -> bool {
        std::process::Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Matcher {
    fn drop(&mut self) {
        self.send("-CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn meta(key: String) -> CommandMeta {
    CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new(key).unwrap()),
    }
}

async fn request(store: &EventStore, count: usize, tag: &str) -> Vec<NeedId> {
    let mut needs = Vec::new();
    for i in 0..count {
        let id = NeedId::from_uuid(Uuid::new_v4());
        let request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_uuid(Uuid::new_v4()), None);
        store
            .execute::<Need>(
                id.as_uuid(),
                &NeedCommand::Request(request),
                &meta(format!("{tag}{i}")),
                None,
            )
            .await
            .unwrap();
        needs.push(id);
    }
    needs
}

/// Waits until every need of `needs` is proposed; returns how long it took.
async fn proposed(store: &EventStore, needs: &[NeedId], what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let mut done = 0;
        for n in needs {
            if store.load::<Need>(n.as_uuid()).await.unwrap().state.status == NeedStatus::Proposed {
                done += 1;
            }
        }
        if done == needs.len() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: {done} of {} proposed",
            needs.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each need proposed exactly once, each with one hold at the shelter, and
/// no more held than there are needs.
async fn each_once(store: &EventStore, shelter: ProviderId, needs: &[NeedId]) {
    let provider = store.load::<Provider>(shelter.as_uuid()).await.unwrap().state;
    for n in needs {
        let need = store.load::<Need>(n.as_uuid()).await.unwrap().state;
        assert_eq!(
            need.proposals_made, 1,
            "need {n} proposed {} times",
            need.proposals_made
        );
        assert_eq!(
            provider.holds.values().filter(|h| h.need == *n).count(),
            1,
            "need {n}: one hold"
        );
    }
    assert_eq!(
        provider.units(ServiceKind::ShelterBed).held as usize,
        needs.len(),
        "no over-commit"
    );
}

#[tokio::test]
async fn a_standby_takes_over_from_a_killed_or_paused_matcher_and_the_old_one_decides_nothing_more() {
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
        declared: 500,
    };
    store
        .execute::<Provider>(shelter.as_uuid(), &beds, &meta("cap".into()), None)
        .await
        .unwrap();

    let mut a = Matcher::start(&setup, "matcher-a");
    let mut all = request(&store, 20, "a").await;
    proposed(&store, &all, "the first matcher").await;
    let b = Matcher::start(&setup, "matcher-b");
    tokio::time::sleep(Duration::from_millis(500)).await; // b is up, standing by

    // SIGKILL of the active matcher: the standby decides within the lease.
    a.signal("-KILL");
    let _ = a.0.wait();
    let killed = Instant::now();
    let after_kill = request(&store, 20, "b").await;
    proposed(&store, &after_kill, "after the kill").await;
    println!(
        "proposals resumed {:?} after SIGKILL of the active matcher",
        killed.elapsed()
    );
    all.extend(&after_kill);
    each_once(&store, shelter, &all).await;

    // SIGSTOP of the active matcher (b) past its lease; c takes over.
    let c = Matcher::start(&setup, "matcher-c");
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.signal("-STOP");
    let paused = Instant::now();
    let while_paused = request(&store, 20, "c").await;
    proposed(&store, &while_paused, "while the leader is paused").await;
    println!(
        "proposals resumed {:?} after SIGSTOP of the active matcher",
        paused.elapsed()
    );
    all.extend(&while_paused);
    // The old leader resumes: it must not decide again, nor double anything.
    b.signal("-CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_resume = request(&store, 20, "d").await;
    proposed(&store, &after_resume, "after the old leader resumed").await;
    all.extend(&after_resume);
    tokio::time::sleep(Duration::from_secs(1)).await;
    each_once(&store, shelter, &all).await;
    drop(c);
}
