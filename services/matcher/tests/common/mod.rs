//! What the matcher's process tests share: the binary started as an
//! operator starts it, a shelter, and needs written straight to the stream.

#![allow(dead_code)] // each test binary uses its own part

use refer_domain::ids::{CorrelationId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{Need, NeedCommand};
use refer_domain::provider::{Provider, ProviderCommand};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_eventstore::EventStore;
use refer_service::testing::TestSetup;
use std::process::Child;
use uuid::Uuid;

/// A matcher process (data and consumer named `instance`), killed when
/// dropped: a failing test leaves none behind.
pub struct Matcher(pub Child);

impl Matcher {
    pub fn start(setup: &TestSetup, instance: &str) -> Self {
        let (mut command, _, _) = setup.process(env!("CARGO_BIN_EXE_refer-matcher"), instance);
        Self(command.spawn().expect("start refer-matcher"))
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
    let shelter = ProviderId::from_uuid(Uuid::new_v4());
    let register = ProviderCommand::Register(Box::new(sample::shelter(OrgId::from_u128(1))));
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
