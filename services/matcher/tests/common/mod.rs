//! What the matcher's process tests share: the binary started as an
//! operator starts it, a shelter, and needs written straight to the stream.

#![allow(dead_code)] // each test binary uses its own part

use refer_domain::geo::Location;
use refer_domain::ids::{CorrelationId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{Need, NeedCommand, NeedStatus};
use refer_domain::provider::{Provider, ProviderCommand};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_eventstore::EventStore;
use refer_service::testing::TestSetup;
use std::process::Child;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A matcher process (data and consumer named `instance`), killed when
/// dropped: a failing test leaves none behind.
pub struct Matcher(pub Child);

impl Matcher {
    pub fn start(setup: &TestSetup, instance: &str) -> Self {
        Self::spawn(setup, instance, None).0
    }

    /// A matcher of the partition `name` of `regions` (comma-separated),
    /// and its gRPC port.
    pub fn start_in(setup: &TestSetup, instance: &str, name: &str, regions: &str) -> (Self, u16) {
        Self::spawn(setup, instance, Some((name, regions)))
    }

    fn spawn(setup: &TestSetup, instance: &str, partition: Option<(&str, &str)>) -> (Self, u16) {
        let (mut command, port, _) = setup.process(env!("CARGO_BIN_EXE_refer-matcher"), "matcher", instance);
        if let Some((name, regions)) = partition {
            command
                .env("REFER_PARTITION", name)
                .env("REFER_PARTITION_REGIONS", regions);
        }
        (Self(command.spawn().expect("start refer-matcher")), port)
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(|_| ())
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-KILL`), which must arrive.
    pub fn signal(&self, signal: &str) {
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
        let _ = self.kill();
    }
}

pub fn meta(key: String) -> CommandMeta {
    CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new(key).unwrap()),
    }
}

/// A shelter with `beds` beds, registered on the stream.
pub async fn shelter(store: &EventStore, beds: u32) -> ProviderId {
    shelter_at(store, beds, sample::shelter(OrgId::from_u128(1)).location).await
}

/// A shelter with `beds` beds at `location`, registered on the stream.
pub async fn shelter_at(store: &EventStore, beds: u32, location: Location) -> ProviderId {
    let shelter = ProviderId::from_uuid(Uuid::new_v4());
    let mut profile = sample::shelter(OrgId::from_u128(1));
    profile.location = location;
    let register = ProviderCommand::Register(Box::new(profile));
    store
        .execute::<Provider>(shelter.as_uuid(), &register, &meta("reg".into()), None)
        .await
        .unwrap();
    let beds = ProviderCommand::SetCapacity {
        service: ServiceKind::ShelterBed,
        declared: beds,
    };
    store
        .execute::<Provider>(shelter.as_uuid(), &beds, &meta("cap".into()), None)
        .await
        .unwrap();
    shelter
}

/// `count` needs for a shelter bed, requested with keys `<tag><i>`.
pub async fn request(store: &EventStore, count: usize, tag: &str) -> Vec<NeedId> {
    let origin = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(0), None)
        .spec
        .constraints
        .origin;
    request_from(store, count, tag, origin).await
}

/// The same, for people at `origin`.
pub async fn request_from(store: &EventStore, count: usize, tag: &str, origin: Location) -> Vec<NeedId> {
    let mut needs = Vec::new();
    for i in 0..count {
        let id = NeedId::from_uuid(Uuid::new_v4());
        let mut request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_uuid(Uuid::new_v4()), None);
        request.spec.constraints.origin = origin.clone();
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
pub async fn proposed(store: &EventStore, needs: &[NeedId], what: &str) -> Duration {
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
pub async fn each_once(store: &EventStore, shelter: ProviderId, needs: &[NeedId]) {
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
